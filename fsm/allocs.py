"""Allocations inside a write transaction: plan results, desired transitions, forced
reschedules and client updates. Every change recomputes, in the same transaction, the
summaries (``fsm.summaries``) and statuses of the jobs and the counters of the
deployments it touched.
"""
from __future__ import annotations

from collections.abc import Sequence

from msgspec.structs import replace

from caravan.fsm import deployments, jobs
from caravan.fsm import reschedule as rs
from caravan.fsm import schema as t
from caravan.fsm.entries import AllocClientState, AllocPreempt, AllocStop, DeploymentStatusUpdate
from caravan.fsm.evals import upsert_evals
from caravan.fsm.store import Txn
from caravan.fsm.structs import Allocation, Deployment, DesiredTransition, Evaluation, Job
from caravan.fsm.summaries import refresh_summary


def apply_plan(txn: Txn, job_id: str, job_version: int, allocs: list[Allocation],
               stops: list[AllocStop], evals: list[Evaluation], deployment: Deployment | None = None,
               deployment_updates: Sequence[DeploymentStatusUpdate] = (),
               preemptions: Sequence[AllocPreempt] = (), followup_evals: Sequence[Evaluation] = (),
               alloc_followups: dict[str, str] | None = None) -> None:
    """One plan, in Nomad's order: the new deployment, status changes of deployments
    (skipping any that became terminal meanwhile), allocations (a replacement links
    its previous allocation to itself: ``NextAllocation``), stops, preemptions (an
    allocation that finished meanwhile stays as it is), evals, then the follow-up
    evals of failed allocations and their ``FollowupEvalID``."""
    job = txn.get(t.JOB_VERSIONS, (job_id, job_version)) or txn.get(t.JOBS, job_id)
    touched_jobs = {job_id}
    if deployment is not None:
        deployments.upsert(txn, deployment)
    for u in deployment_updates or ():
        current = txn.get(t.DEPLOYMENTS, u.DeploymentID)
        if current is not None and current.active():
            deployments.set_status(txn, u.DeploymentID, u.Status, u.StatusDescription)
    for alloc in allocs:
        old = txn.get(t.ALLOCS, alloc.ID)
        if old is None:
            alloc = replace(alloc, Job=job, CreateIndex=txn.index, ModifyIndex=txn.index,
                            AllocModifyIndex=txn.index)
            prev = txn.get(t.ALLOCS, alloc.PreviousAllocation) if alloc.PreviousAllocation \
                else None
            if prev is not None:
                txn.put(t.ALLOCS, replace(prev, NextAllocation=alloc.ID, ModifyIndex=txn.index))
        else:
            # the client owns its status and task states; an update keeps them, and
            # its health too while the alloc stays in the same deployment
            alloc = replace(alloc, Job=job or old.Job, CreateIndex=old.CreateIndex,
                            ModifyIndex=txn.index, AllocModifyIndex=txn.index,
                            ClientStatus=old.ClientStatus,
                            ClientDescription=old.ClientDescription,
                            TaskStates=old.TaskStates,
                            DeploymentStatus=old.DeploymentStatus
                            if alloc.DeploymentID == old.DeploymentID else alloc.DeploymentStatus)
        txn.put(t.ALLOCS, alloc)
    for stop in stops:
        old = txn.get(t.ALLOCS, stop.AllocID)
        if old is None:
            continue
        touched_jobs.add(old.JobID)
        txn.put(t.ALLOCS, replace(
            old, DesiredStatus="stop", DesiredDescription=stop.DesiredDescription,
            ClientStatus=stop.ClientStatus or old.ClientStatus, ModifyIndex=txn.index,
            AllocModifyIndex=txn.index))
    for p in preemptions:
        old = txn.get(t.ALLOCS, p.AllocID)
        if old is None or old.terminal():
            continue
        touched_jobs.add(old.JobID)
        txn.put(t.ALLOCS, replace(
            old, DesiredStatus="evict",
            DesiredDescription=f"Preempted by alloc ID {p.PreemptedByAllocation}",
            PreemptedByAllocation=p.PreemptedByAllocation, ModifyIndex=txn.index,
            AllocModifyIndex=txn.index))
    for deployment_id in sorted({a.DeploymentID for a in allocs if a.DeploymentID}):
        deployments.refresh(txn, deployment_id)
    if evals:
        upsert_evals(txn, evals)
    if followup_evals:
        upsert_evals(txn, list(followup_evals))
    for alloc_id, eval_id in sorted((alloc_followups or {}).items()):
        old = txn.get(t.ALLOCS, alloc_id)
        if old is not None and not old.NextAllocation:
            txn.put(t.ALLOCS, replace(old, FollowupEvalID=eval_id, ModifyIndex=txn.index,
                                      AllocModifyIndex=txn.index))
    for jid in sorted(touched_jobs):
        refresh_summary(txn, jid)
        jobs.refresh_status(txn, jid)


def set_desired_transitions(txn: Txn, transitions: dict[str, DesiredTransition]) -> None:
    """Merge each transition's set fields into its allocation's (Nomad's
    ``DesiredTransition.Merge``); an allocation that no longer exists is skipped."""
    for alloc_id in sorted(transitions):
        old = txn.get(t.ALLOCS, alloc_id)
        if old is None:
            continue
        merged = old.DesiredTransition or DesiredTransition()
        change = {f: v for f in DesiredTransition.__struct_fields__
                  if (v := getattr(transitions[alloc_id], f)) is not None}
        txn.put(t.ALLOCS, replace(old, DesiredTransition=replace(merged, **change),
                                  ModifyIndex=txn.index))


def force_reschedule(txn: Txn, job: Job) -> None:
    """``EvalOptions.ForceReschedule``: every failed allocation of the job not yet
    replaced, in a group with a reschedule policy, is to be rescheduled now."""
    groups = {tg.Name: tg for tg in job.TaskGroups or ()}
    chosen = {}
    for alloc in txn.by_index(t.ALLOCS, t.BY_JOB, job.ID):
        tg = groups.get(alloc.TaskGroup)
        if tg is None or not rs.enabled(tg.ReschedulePolicy):
            continue
        if alloc.NextAllocation or alloc.ClientStatus != "failed" or \
                alloc.should_force_reschedule():
            continue
        chosen[alloc.ID] = DesiredTransition(ForceReschedule=True)
    set_desired_transitions(txn, chosen)


_FINISHED = ("complete", "failed")


def client_update(txn: Txn, updates: list[AllocClientState]) -> None:
    touched_jobs, touched_deployments = set(), set()
    for u in updates:
        old = txn.get(t.ALLOCS, u.AllocID)
        if old is None or old.ClientStatus == "lost":
            # lost was decided by the servers while the node was gone; a late report
            # from the node does not bring the allocation back
            continue
        if old.ClientStatus in _FINISHED and u.ClientStatus not in _FINISHED:
            # a report that arrives after the allocation finished (reordered, or from
            # a restarted node) does not make it pending or running again
            continue
        txn.put(t.ALLOCS, replace(
            old, ClientStatus=u.ClientStatus, ClientDescription=u.ClientDescription,
            TaskStates=u.TaskStates if u.TaskStates is not None else old.TaskStates,
            DeploymentStatus=deployments.merge_client_health(
                old.DeploymentStatus, u.DeploymentStatus, txn.index),
            ModifyTime=u.ModifyTime or old.ModifyTime, ModifyIndex=txn.index))
        touched_jobs.add(old.JobID)
        if old.DeploymentID:
            touched_deployments.add(old.DeploymentID)
    for deployment_id in sorted(touched_deployments):
        deployments.refresh(txn, deployment_id)
    for jid in sorted(touched_jobs):
        refresh_summary(txn, jid)
        jobs.refresh_status(txn, jid)
