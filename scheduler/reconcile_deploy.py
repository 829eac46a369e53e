"""The deployment rules of the reconciler (Nomad 1.x ``reconcile.go``), as pure helpers.

A service group whose update strategy is set (``MaxParallel > 0``) rolls out each new
job version in a *deployment*: the reconciler creates it with the plan, limits
destructive updates to ``MaxParallel`` allocations that are not yet healthy, places
``Canary`` canaries beside the old allocations and waits for their promotion, stops
placing while the deployment is paused or failed, and marks it successful once every
group has all its allocations healthy. Deployments of an older job version are
cancelled. Nothing here reads a clock or the store: the caller passes the job's latest
deployment and the id a new one would get.
"""
from __future__ import annotations

from dataclasses import dataclass

from caravan.fsm import deployments as dep
from caravan.fsm.entries import DeploymentStatusUpdate
from caravan.fsm.structs import Allocation, Deployment, DeploymentState, Job, TaskGroup, UpdateStrategy
from caravan.scheduler.names import NameIndex, alloc_index


@dataclass
class DeploymentContext:
    """What one reconcile pass knows about deployments: the job's current deployment
    (``None`` once cancelled or successful), the one it replaced, and whether
    placements are held back."""
    current: Deployment | None
    old: Deployment | None
    new_id: str
    created: Deployment | None = None

    @property
    def paused(self) -> bool:
        return self.current is not None and self.current.Status == "paused"

    @property
    def failed(self) -> bool:
        return self.current is not None and self.current.Status == "failed"

    def group_state(self, group: str) -> DeploymentState | None:
        if self.current is None:
            return None
        return (self.current.TaskGroups or {}).get(group)


def strategy_empty(update: UpdateStrategy | None) -> bool:
    """Nomad's ``UpdateStrategy.IsEmpty``: only MaxParallel decides."""
    return update is None or not update.MaxParallel


def max_parallel(update: UpdateStrategy | None) -> int:
    """The strategy's MaxParallel; 0 exactly when the strategy is empty."""
    return (update.MaxParallel or 0) if update is not None else 0


def cancel_unneeded(job: Job | None, latest: Deployment | None, new_id: str,
                    updates: list[DeploymentStatusUpdate]) -> DeploymentContext:
    """Cancel an active deployment of a stopped job or of another job version; a
    successful one is history too (``cancelUnneededDeployments``)."""
    if latest is None:
        return DeploymentContext(None, None, new_id)
    if job is None or job.Stop:
        if latest.active():
            updates.append(DeploymentStatusUpdate(DeploymentID=latest.ID, Status="cancelled",
                                                  StatusDescription=dep.DESC_STOPPED_JOB))
        return DeploymentContext(None, latest, new_id)
    if latest.JobCreateIndex != job.CreateIndex or latest.JobVersion != job.Version:
        if latest.active():
            updates.append(DeploymentStatusUpdate(DeploymentID=latest.ID, Status="cancelled",
                                                  StatusDescription=dep.DESC_NEWER_JOB))
        return DeploymentContext(None, latest, new_id)
    if latest.Status == "successful":
        return DeploymentContext(None, latest, new_id)
    return DeploymentContext(latest, None, new_id)


def initial_state(tg: TaskGroup) -> DeploymentState:
    u = tg.Update
    if u is None or strategy_empty(u):
        return DeploymentState()
    return DeploymentState(AutoRevert=bool(u.AutoRevert), AutoPromote=bool(u.AutoPromote),
                           ProgressDeadline=u.ProgressDeadline or 0)


def stale_canaries(ctx: DeploymentContext) -> set[str]:
    """Unpromoted canaries of the replaced deployment, or of a failed current one."""
    ids: set[str] = set()
    for d in (ctx.old, ctx.current if ctx.failed else None):
        if d is not None:
            for s in (d.TaskGroups or {}).values():
                if not s.Promoted:
                    ids.update(s.PlacedCanaries or ())
    return ids


def current_canaries(ctx: DeploymentContext) -> set[str]:
    if ctx.current is None:
        return set()
    return {c for s in (ctx.current.TaskGroups or {}).values() for c in s.PlacedCanaries or ()}


def under_provisioned_by(tg: TaskGroup, ctx: DeploymentContext, untainted: list[Allocation],
                         destructive: int, migrate: int, canarying: bool) -> int:
    """How many allocations this pass may replace (``computeUnderProvisionedBy``):
    MaxParallel less the deployment's allocations not yet healthy; none while paused,
    failed, waiting for promotion, or once one of them is unhealthy."""
    if strategy_empty(tg.Update) or destructive + migrate == 0:
        return tg.Count or 0
    if ctx.current is None:
        return max_parallel(tg.Update)
    if ctx.paused or ctx.failed or canarying:
        return 0
    budget = max_parallel(tg.Update)
    for alloc in untainted:
        if alloc.DeploymentID != ctx.current.ID:
            continue
        healthy = alloc.DeploymentStatus.Healthy if alloc.DeploymentStatus else None
        if healthy is False:
            return 0
        if healthy is None:
            budget -= 1
    return max(budget, 0)


def next_canaries(names: NameIndex, n: int, canaries: list[Allocation],
                  destructive: list[Allocation]) -> list[str]:
    """Canary names: first those of allocations being replaced (so the promoted
    canary takes over the name), then the lowest free ones (``NextCanaries``)."""
    taken = {a.Name for a in canaries}
    out: list[str] = []
    for index in sorted({i for a in destructive if (i := alloc_index(a.Name)) is not None}):
        name = names.name(index)
        if len(out) < n and index < names.count and name not in taken:
            out.append(name)
    return out + names.next(n - len(out)) if len(out) < n else out


def attach_group(ctx: DeploymentContext, job: Job, group: str, state: DeploymentState,
                 existing_state: bool, had_running: bool, updating_spec: bool) -> None:
    """Create the deployment (once per pass) and attach the group's state to it,
    unless the group has no strategy, wants nothing, or only runs the same version
    again (``createDeployment``)."""
    tg = next(g for g in job.TaskGroups or () if g.Name == group)
    if existing_state or strategy_empty(tg.Update) or state.DesiredTotal == 0:
        return
    if ctx.current is not None and ctx.created is None:
        return      # a stored deployment is not changed here; the group is not part of it
    if had_running and not updating_spec:
        return
    if ctx.current is None:
        ctx.current = ctx.created = Deployment(
            ID=ctx.new_id, Namespace=job.Namespace or "default", JobID=job.ID or "",
            JobVersion=job.Version, JobModifyIndex=job.ModifyIndex,
            JobSpecModifyIndex=job.JobModifyIndex, JobCreateIndex=job.CreateIndex,
            TaskGroups={}, Status="running", StatusDescription=dep.DESC_RUNNING)
    assert ctx.current.TaskGroups is not None   # the deployment this pass created
    ctx.current.TaskGroups[group] = state


def group_complete(ctx: DeploymentContext, group: str, pending_work: bool) -> bool:
    """Done: nothing left to do, enough healthy allocations, canaries promoted."""
    if pending_work or ctx.current is None:
        return False
    state = (ctx.current.TaskGroups or {}).get(group)
    if state is None:
        return True
    return state.HealthyAllocs >= max(state.DesiredTotal, state.DesiredCanaries) and \
        not (state.DesiredCanaries > 0 and not state.Promoted)


def finish(ctx: DeploymentContext, complete: bool,
           updates: list[DeploymentStatusUpdate]) -> None:
    """Mark the current deployment successful when every group completed; describe a
    new one that waits for promotion (``computeDeploymentUpdates``)."""
    if ctx.current is not None and complete and ctx.current.active():
        updates.append(DeploymentStatusUpdate(DeploymentID=ctx.current.ID, Status="successful",
                                              StatusDescription=dep.DESC_SUCCESSFUL))
    d = ctx.created
    if d is not None and d.requires_promotion():
        d.StatusDescription = dep.DESC_AUTO_PROMOTION if d.has_auto_promote() \
            else dep.DESC_NEEDS_PROMOTION
