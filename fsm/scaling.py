"""Scaling policies and scaling events inside a write transaction.

A group's ``scaling`` block is kept twice, as Nomad keeps it: in the job's spec and as
a row of ``scaling_policies``, which the autoscaler lists. A policy's ID belongs to its
target (job, group and type): a new version of the job keeps the IDs of the version
before it; a new target gets an ID derived from the job, group and log index, so every
replica derives the same one. The rows follow the current job: written with it,
disabled while it is stopped, deleted with its group or when the job is purged.

Scaling events (``/v1/job/:id/scale``) are kept per group, newest first, at most
``TRACKED_EVENTS`` of them (Nomad's ``JobTrackedScalingEvents``).
"""
from __future__ import annotations

import random

from msgspec.structs import replace

from caravan.fsm import schema as t
from caravan.fsm.ids import uuid4_from
from caravan.fsm.store import Txn
from caravan.fsm.structs import Job, JobScalingEvents, ScalingEvent, ScalingPolicy

TRACKED_EVENTS = 20
HORIZONTAL = "horizontal"


def _key(group: str, policy: ScalingPolicy) -> tuple[str, str]:
    """Nomad's ``JobKey``: what identifies a policy within its job."""
    return group, policy.Type or HORIZONTAL


def with_policy_ids(job: Job, existing: Job | None, index: int) -> Job:
    """``job`` with every scaling block targeted at it and carrying its ID: the ID of
    the same target in ``existing`` (the stored job), else a new one."""
    if not any(tg.Scaling is not None for tg in job.TaskGroups or ()):
        return job
    old_ids = {}
    if existing is not None:
        for tg in existing.TaskGroups or ():
            if tg.Scaling is not None and tg.Scaling.ID:
                old_ids[_key(tg.Name or "", tg.Scaling)] = tg.Scaling.ID
    groups = []
    for tg in job.TaskGroups or ():
        p = tg.Scaling
        if p is not None:
            name = tg.Name or ""
            policy_id = old_ids.get(_key(name, p)) or uuid4_from(
                random.Random(f"scaling-policy/{job.ID}/{name}/{p.Type}/{index}"))
            target = {"Namespace": job.Namespace or "default", "Job": job.ID or "",
                      "Group": name}
            tg = replace(tg, Scaling=replace(p, ID=policy_id, Target=target,
                                             Namespace=job.Namespace or "default"))
        groups.append(tg)
    return replace(job, TaskGroups=groups)


def sync_policies(txn: Txn, job: Job) -> None:
    """Make the policy rows of ``job`` (just written) match its scaling blocks."""
    wanted = {}
    for tg in job.TaskGroups or ():
        if tg.Scaling is not None and tg.Scaling.ID:
            wanted[tg.Scaling.ID] = replace(
                tg.Scaling, Enabled=bool(tg.Scaling.Enabled) and not job.Stop,
                CreateIndex=0, ModifyIndex=0)
    for old in txn.by_index(t.SCALING_POLICIES, t.BY_JOB, job.ID):
        if old.ID not in wanted:
            txn.delete(t.SCALING_POLICIES, old.ID)
    for policy_id in sorted(wanted):
        policy = wanted[policy_id]
        old = txn.get(t.SCALING_POLICIES, policy_id)
        if old is not None and replace(old, CreateIndex=0, ModifyIndex=0) == policy:
            continue
        txn.put(t.SCALING_POLICIES, replace(
            policy, CreateIndex=old.CreateIndex if old is not None else txn.index,
            ModifyIndex=txn.index))


def add_event(txn: Txn, job: Job, group: str, event: ScalingEvent) -> None:
    assert job.ID is not None, "a stored job has its ID"
    row = txn.get(t.SCALING_EVENTS, job.ID)
    events = dict(row.ScalingEvents) if row is not None else {}
    events[group] = [replace(event, CreateIndex=txn.index),
                     *events.get(group, ())][:TRACKED_EVENTS]
    txn.put(t.SCALING_EVENTS, JobScalingEvents(
        JobID=job.ID, Namespace=job.Namespace or "default", ScalingEvents=events,
        CreateIndex=row.CreateIndex if row is not None else txn.index, ModifyIndex=txn.index))


def purge(txn: Txn, job_id: str) -> None:
    """Everything scaling of a job that is being deleted."""
    for policy in txn.by_index(t.SCALING_POLICIES, t.BY_JOB, job_id):
        txn.delete(t.SCALING_POLICIES, policy.ID)
    txn.delete(t.SCALING_EVENTS, job_id)
