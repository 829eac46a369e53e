"""``/v1/job/:id/plan``: the real scheduler over a private copy of the state.

The submitted job is upserted into a transaction over a snapshot exactly as the FSM
would (a new version only if the spec changed), the transaction's state is never
published, and ``compute_plan`` runs over it with an eval marked ``AnnotatePlan``.
Nothing is written.
"""
from __future__ import annotations

import random

from caravan.fsm import jobs
from caravan.fsm import schema as t
from caravan.fsm.store import State, Txn
from caravan.fsm.structs import Evaluation, Job
from caravan.scheduler.generic import compute_plan
from caravan.scheduler.plan import Plan


def dry_run(state: State, job: Job, *, tracked_versions: int, now_ns: int,
            eval_id: str) -> tuple[Plan, Evaluation]:
    assert job.ID is not None, "a job to plan has passed validation (it has an ID)"
    txn = Txn(state, state.last_index + 1)
    existing = txn.get(t.JOBS, job.ID)
    if existing is None or jobs.spec_changed(existing, job):
        jobs.upsert_job(txn, job, tracked_versions=tracked_versions)
    private = txn.commit()
    stored = private.get(t.JOBS, job.ID)
    ev = Evaluation(ID=eval_id, Namespace=job.Namespace or "default",
                    Priority=job.Priority or 50, Type=job.Type or "service",
                    TriggeredBy="job-register", JobID=job.ID,
                    JobModifyIndex=stored.JobModifyIndex, Status="pending", AnnotatePlan=True,
                    CreateTime=now_ns, ModifyTime=now_ns)
    plan = compute_plan(private, ev, random.Random(eval_id), now_ns)
    return plan, ev
