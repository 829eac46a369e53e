"""Allocations, evaluations and nodes inside a write transaction.

Job summaries are derived, not counted: whenever a job's allocations or evals change,
its per-group counts are recomputed, inside the same transaction, from the store's
running counts of its allocations (``job_counts`` in ``fsm.schema``: each row's share
is moved from its old to its new bucket on every write, so they always equal a
recount, which the simulation checks after every entry), and Queued from its newest
eval that reports queued allocations. Nomad's incremental counters drift and even go
negative (reference §10.3), because each code path adjusts them by hand.
"""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import deployments, jobs
from caravan.fsm import node_events as ev_
from caravan.fsm import reschedule as rs
from caravan.fsm import schema as t
from caravan.fsm.jobs import Rejected
from caravan.fsm.store import Txn
from caravan.fsm.structs import Allocation, DesiredTransition, Evaluation, Node, TaskGroupSummary

_BUCKETS = t.SUMMARY_BUCKETS


# --- nodes ------------------------------------------------------------------------------


def register_node(txn: Txn, node: Node) -> Node:
    existing = txn.get(t.NODES, node.ID)
    at = node.StatusUpdatedAt * 1_000_000_000
    if existing is None:
        node = replace(node, CreateIndex=txn.index, ModifyIndex=txn.index, Events=None)
        events = [ev_.event(ev_.REGISTERED, ev_.SUBSYSTEM_CLUSTER, at)]
    else:
        # drain and eligibility belong to operators, not to the node's own registration
        node = replace(node, CreateIndex=existing.CreateIndex, ModifyIndex=txn.index,
                       Drain=existing.Drain, DrainStrategy=existing.DrainStrategy,
                       LastDrain=existing.LastDrain, Events=existing.Events,
                       SchedulingEligibility=existing.SchedulingEligibility)
        events = [ev_.event(ev_.REREGISTERED, ev_.SUBSYSTEM_CLUSTER, at)] \
            if existing.Status == "down" and node.Status != "down" else []
    node = ev_.append(node, events, txn.index)
    txn.put(t.NODES, node)
    return node


def set_node_status(txn: Txn, node_id: str, status: str, updated_at: int) -> Node:
    node = txn.get(t.NODES, node_id)
    if node is None:
        raise Rejected(404, "node not found")
    if status not in ("initializing", "ready", "down"):
        raise Rejected(400, "invalid status for node")
    events = []
    if status == "down" and node.Status != "down":
        events.append(ev_.event(ev_.HEARTBEAT_MISSED, ev_.SUBSYSTEM_CLUSTER,
                                updated_at * 1_000_000_000))
    elif node.Status == "down" and status != "down":
        events.append(ev_.event(ev_.HEARTBEAT_REREGISTERED, ev_.SUBSYSTEM_CLUSTER,
                                updated_at * 1_000_000_000))
    node = ev_.append(replace(node, Status=status, StatusUpdatedAt=updated_at,
                              ModifyIndex=txn.index), events, txn.index)
    txn.put(t.NODES, node)
    return node


# --- evaluations ---------------------------------------------------------------------------


def upsert_evals(txn: Txn, evals: list[Evaluation]) -> None:
    touched_jobs = set()
    for ev in evals:
        old = txn.get(t.EVALS, ev.ID)
        ev = replace(ev, CreateIndex=old.CreateIndex if old else txn.index, ModifyIndex=txn.index)
        txn.put(t.EVALS, ev)
        touched_jobs.add(ev.JobID)
        if ev.Status == "complete" and not ev.FailedTGAllocs:
            _cancel_blocked(txn, ev, f'evaluation "{ev.ID}" successful')
        elif ev.Status == "blocked" and old is None:
            # one blocked eval per job waits for capacity: a new one supersedes the old
            _cancel_blocked(txn, ev, f'superseded by blocked evaluation "{ev.ID}"')
    for job_id in sorted(touched_jobs):
        refresh_summary(txn, job_id)
        jobs.refresh_status(txn, job_id)


def _cancel_blocked(txn: Txn, by: Evaluation, description: str) -> None:
    """Cancel the job's other blocked evals (Nomad spells it "canceled")."""
    for ev in txn.by_index(t.EVALS, "job", by.JobID):
        if ev.Status == "blocked" and ev.ID != by.ID:
            txn.put(t.EVALS, replace(ev, Status="canceled", ModifyIndex=txn.index,
                                     StatusDescription=description))


# --- plans and client updates ----------------------------------------------------------------


def apply_plan(txn: Txn, job_id: str, job_version: int, allocs: list[Allocation],
               stops, evals: list[Evaluation], deployment=None, deployment_updates=(),
               preemptions=(), followup_evals=(),
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


def force_reschedule(txn: Txn, job) -> None:
    """``EvalOptions.ForceReschedule``: every failed allocation of the job not yet
    replaced, in a group with a reschedule policy, is to be rescheduled now."""
    groups = {tg.Name: tg for tg in job.TaskGroups or ()}
    chosen = {}
    for alloc in txn.by_index(t.ALLOCS, "job", job.ID):
        tg = groups.get(alloc.TaskGroup)
        if tg is None or not rs.enabled(tg.ReschedulePolicy):
            continue
        if alloc.NextAllocation or alloc.ClientStatus != "failed" or \
                alloc.should_force_reschedule():
            continue
        chosen[alloc.ID] = DesiredTransition(ForceReschedule=True)
    set_desired_transitions(txn, chosen)


_FINISHED = ("complete", "failed")


def client_update(txn: Txn, updates) -> None:
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


# --- summaries ----------------------------------------------------------------------------------


def summarize(txn: Txn, job_id: str, summary) -> dict[str, TaskGroupSummary]:
    """Per-group counts recomputed from the job's allocations of this incarnation,
    Queued from the newest eval that reported queued allocations."""
    counts: dict[str, dict[str, int]] = {g: {} for g in summary.Summary}
    # the store's running counts per (incarnation, group): allocations of an earlier
    # job that had the same ID count nowhere (``summary_bucket``)
    for (create_index, name), sums in (txn.total(t.ALLOCS, "job_counts", job_id) or {}).items():
        if create_index is not None and create_index != summary.CreateIndex:
            continue
        for bucket, n in zip(_BUCKETS.values(), sums[2:]):
            if n:
                group = counts.setdefault(name, {})
                group[bucket] = group.get(bucket, 0) + n
    collected = txn.get(t.COLLECTED_ALLOCS, job_id)
    if collected is not None and collected.JobCreateIndex == summary.CreateIndex:
        # allocations the garbage collector deleted still count (fsm.gc)
        for g, base in collected.Summary.items():
            group = counts.setdefault(g, {})
            for bucket in _BUCKETS.values():
                if getattr(base, bucket):
                    group[bucket] = group.get(bucket, 0) + getattr(base, bucket)
    queued_eval = queued_eval_of(txn, job_id)
    queued = queued_eval.QueuedAllocations if queued_eval is not None else {}
    return {g: TaskGroupSummary(Queued=max(0, queued.get(g, 0)), **c)
            for g, c in sorted(counts.items())}


def queued_eval_of(txn: Txn, job_id: str) -> Evaluation | None:
    """The job's newest eval that reported queued allocations: its Queued figures."""
    return max((e for e in txn.by_index(t.EVALS, "job", job_id)
                if e.QueuedAllocations is not None),
               key=lambda e: (e.ModifyIndex, e.ID), default=None)


def summary_bucket(alloc: Allocation, summary) -> str | None:
    """The summary counter ``alloc`` adds to (``Running``...), or None when it counts
    nowhere: a status without a bucket, or an earlier job that had the same ID."""
    if alloc.Job is not None and alloc.Job.CreateIndex != summary.CreateIndex:
        return None
    return _BUCKETS.get(alloc.ClientStatus)


def refresh_summary(txn: Txn, job_id: str) -> None:
    summary = txn.get(t.JOB_SUMMARIES, job_id)
    if summary is None:
        return
    groups = summarize(txn, job_id, summary)
    if groups != summary.Summary:
        txn.put(t.JOB_SUMMARIES, replace(summary, Summary=groups, ModifyIndex=txn.index))
