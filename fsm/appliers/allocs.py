"""Appliers of allocation and evaluation entries: plan results, client updates,
desired transitions and eval updates."""
from __future__ import annotations

from caravan.fsm import allocs
from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.appliers import Result
from caravan.fsm.evals import upsert_evals
from caravan.fsm.jobs import Rejected
from caravan.fsm.store import Txn


def plan_results(txn: Txn, body: e.PlanResults) -> Result:
    # A deposed leader's applier may still have a plan in flight (the submit retries
    # across leader changes); it was checked against that leader's state, not the
    # new leader's, so it must not land after the new leader began.
    current = txn.get(t.LEADERSHIP, "leader")
    if body.Epoch and current is not None and body.Epoch < current.Index:
        raise Rejected(409, f"plan from an earlier leadership (epoch {body.Epoch}, "
                            f"current {current.Index}) refused")
    allocs.apply_plan(txn, body.JobID, body.JobVersion, body.Allocs or [],
                      body.Stops or [], body.Evals or [], body.Deployment,
                      body.DeploymentUpdates or (), body.Preemptions or (),
                      body.FollowupEvals or (), body.AllocFollowups or {})
    return {"AllocIndex": txn.index}


def alloc_client_update(txn: Txn, body: e.AllocClientUpdate) -> Result:
    allocs.client_update(txn, body.Updates)
    if body.Evals:
        upsert_evals(txn, body.Evals)
    return {}


def alloc_desired_transition(txn: Txn, body: e.AllocDesiredTransition) -> Result:
    allocs.set_desired_transitions(txn, body.Allocs)
    if body.Evals:
        upsert_evals(txn, body.Evals)
    return {"EvalIDs": [ev.ID for ev in body.Evals or ()]}


def eval_update(txn: Txn, body: e.EvalUpdate) -> Result:
    upsert_evals(txn, body.Evals)
    return {}
