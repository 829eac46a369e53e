"""Deployments inside a write transaction: creation, status, promotion, health.

A deployment's per-group counters (PlacedAllocs, HealthyAllocs, UnhealthyAllocs,
PlacedCanaries) are derived, like job summaries: whenever allocations of a deployment
change, they are recounted from the allocations in the same transaction, so they
cannot drift. ``RequireProgressBy`` only moves forward: it starts at the first
placement plus ``ProgressDeadline``, moves to each healthy report's time plus the
deadline, and restarts at promotion (Nomad's ``updateDeploymentWithAlloc``). Every
time comes from the log entry (plan times, client timestamps, ``Now`` of a promotion).
"""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import jobs
from caravan.fsm import schema as t
from caravan.fsm.jobs import Rejected
from caravan.fsm.store import Txn
from caravan.fsm.structs import Allocation, AllocDeploymentStatus, Deployment, DeploymentState
from caravan.fsm.times import ZERO_TIME, format_rfc3339, parse_rfc3339

# Nomad's status descriptions (nomad/structs/deployment.go), exactly.
DESC_RUNNING = "Deployment is running"
DESC_NEEDS_PROMOTION = "Deployment is running but requires manual promotion"
DESC_AUTO_PROMOTION = "Deployment is running pending automatic promotion"
DESC_PAUSED = "Deployment is paused"
DESC_SUCCESSFUL = "Deployment completed successfully"
DESC_STOPPED_JOB = "Cancelled because job is stopped"
DESC_NEWER_JOB = "Cancelled due to newer version of job"
DESC_FAILED_ALLOCS = "Failed due to unhealthy allocations"
DESC_PROGRESS_DEADLINE = "Failed due to progress deadline"
DESC_FAILED_BY_USER = "Deployment marked as failed"


def desc_rollback(base: str, version: int) -> str:
    return f"{base} - rolling back to job version {version}"


def desc_rollback_noop(base: str, version: int) -> str:
    return (f"{base} - not rolling back to stable job version {version} as current job has "
            f"same specification")


def desc_no_rollback_target(base: str) -> str:
    return f"{base} - no stable job version to auto revert to"


# --- rows -----------------------------------------------------------------------------------


def upsert(txn: Txn, deployment: Deployment) -> Deployment:
    old = txn.get(t.DEPLOYMENTS, deployment.ID)
    deployment = replace(deployment, CreateIndex=old.CreateIndex if old else txn.index,
                         ModifyIndex=txn.index)
    txn.put(t.DEPLOYMENTS, deployment)
    return deployment


def require_active(txn: Txn, deployment_id: str) -> Deployment:
    d: Deployment | None = txn.get(t.DEPLOYMENTS, deployment_id)
    if d is None:
        raise Rejected(404, "deployment not found")
    if not d.active():
        raise Rejected(400, f'Deployment "{d.ID}" has terminal status "{d.Status}":')
    return d


def set_status(txn: Txn, deployment_id: str, status: str, description: str) -> Deployment:
    """Move an active deployment to ``status``; a successful one marks its job
    version stable (if that version is still tracked)."""
    d = require_active(txn, deployment_id)
    d = replace(d, Status=status, StatusDescription=description, ModifyIndex=txn.index)
    txn.put(t.DEPLOYMENTS, d)
    if status == "successful" and txn.get(t.JOB_VERSIONS, (d.JobID, d.JobVersion)) is not None:
        jobs.set_stability(txn, d.JobID, d.JobVersion, True)
    return d


# --- counters -------------------------------------------------------------------------------


def refresh(txn: Txn, deployment_id: str) -> None:
    """Recount the deployment's groups from its allocations (see the module doc)."""
    d = txn.get(t.DEPLOYMENTS, deployment_id)
    if d is None or not d.TaskGroups:
        return
    allocs = sorted(txn.by_index(t.ALLOCS, t.BY_DEPLOYMENT, deployment_id),
                    key=lambda a: (a.CreateIndex, a.ID))
    groups = {name: _recount(state, [a for a in allocs if a.TaskGroup == name])
              for name, state in d.TaskGroups.items()}
    if groups != d.TaskGroups:
        txn.put(t.DEPLOYMENTS, replace(d, TaskGroups=groups, ModifyIndex=txn.index))


def _health(alloc: Allocation) -> bool | None:
    return alloc.DeploymentStatus.Healthy if alloc.DeploymentStatus is not None else None


def _recount(state: DeploymentState, allocs: list[Allocation]) -> DeploymentState:
    healthy = [a for a in allocs if _health(a) is True]
    progress_by = state.RequireProgressBy
    deadline = state.ProgressDeadline
    if deadline > 0 and allocs:
        candidates = [parse_rfc3339(progress_by)]
        if progress_by == ZERO_TIME:
            candidates.append(min(a.ModifyTime or a.CreateTime for a in allocs) + deadline)
        candidates += [parse_rfc3339(a.DeploymentStatus.Timestamp) + deadline for a in healthy
                       if a.DeploymentStatus is not None]   # (healthy ones have a status)
        progress_by = format_rfc3339(max(candidates))
    return replace(
        state, PlacedAllocs=len(allocs), HealthyAllocs=len(healthy),
        UnhealthyAllocs=sum(1 for a in allocs if _health(a) is False),
        PlacedCanaries=[a.ID for a in allocs
                        if a.DeploymentStatus is not None and a.DeploymentStatus.Canary] or None,
        RequireProgressBy=progress_by)


def merge_client_health(old: AllocDeploymentStatus | None, new: AllocDeploymentStatus | None,
                        index: int) -> AllocDeploymentStatus | None:
    """What a client may set of an allocation's deployment status: its health and
    timestamp (Nomad's ``updateAllocsFromClient``); the canary flag stays the server's."""
    if new is None:
        return old
    if old is None:
        return replace(new, ModifyIndex=index)
    if new.Healthy is not None and new.Healthy != old.Healthy:
        return replace(old, Healthy=new.Healthy, Timestamp=new.Timestamp, ModifyIndex=index)
    return old


# --- operator actions -----------------------------------------------------------------------


def promote(txn: Txn, deployment_id: str, all_groups: bool, groups: list[str] | None,
            now_ns: int) -> Deployment:
    d = require_active(txn, deployment_id)
    wanted = set(groups or ())
    canaries = {c for s in (d.TaskGroups or {}).values() for c in s.PlacedCanaries or ()}
    unhealthy, have = [], False
    for alloc in txn.by_index(t.ALLOCS, t.BY_DEPLOYMENT, d.ID):
        if alloc.ID not in canaries or (not all_groups and alloc.TaskGroup not in wanted):
            continue
        if _health(alloc) is not True:
            unhealthy.append(f'Canary allocation "{alloc.ID}" for group "{alloc.TaskGroup}" '
                             f'is not healthy')
            continue
        have = True
    if unhealthy:
        raise Rejected(400, _multierror(unhealthy))
    if not have:
        raise Rejected(400, "no canaries to promote")
    states = {}
    for name, state in (d.TaskGroups or {}).items():
        if all_groups or name in wanted:
            progress_by = state.RequireProgressBy
            if state.ProgressDeadline > 0 and progress_by != ZERO_TIME:
                progress_by = format_rfc3339(now_ns + state.ProgressDeadline)
            state = replace(state, Promoted=True, RequireProgressBy=progress_by)
        states[name] = state
    d = replace(d, TaskGroups=states, ModifyIndex=txn.index)
    if d.Status == "running" and not d.requires_promotion():
        d = replace(d, StatusDescription=DESC_RUNNING)
    txn.put(t.DEPLOYMENTS, d)
    return d


def set_alloc_health(txn: Txn, deployment_id: str, healthy: list[str], unhealthy: list[str],
                     timestamp: str) -> Deployment:
    d = require_active(txn, deployment_id)
    for ids, flag in ((healthy, True), (unhealthy, False)):
        for alloc_id in ids:
            alloc = txn.get(t.ALLOCS, alloc_id)
            if alloc is None:
                raise Rejected(404, f'unknown alloc "{alloc_id}"')
            if alloc.DeploymentID != d.ID:
                raise Rejected(400, f'alloc "{alloc_id}" is not part of deployment "{d.ID}"')
            status = alloc.DeploymentStatus or AllocDeploymentStatus()
            txn.put(t.ALLOCS, replace(alloc, ModifyIndex=txn.index, DeploymentStatus=replace(
                status, Healthy=flag, Timestamp=timestamp, ModifyIndex=txn.index)))
    refresh(txn, d.ID)
    updated: Deployment = txn.get(t.DEPLOYMENTS, d.ID)
    return updated


def _multierror(errors: list[str]) -> str:
    """go-multierror's text, as Nomad answers a refused promotion."""
    head = "1 error occurred" if len(errors) == 1 else f"{len(errors)} errors occurred"
    return head + ":\n\t" + "\n\t".join(f"* {e}" for e in errors) + "\n\n"
