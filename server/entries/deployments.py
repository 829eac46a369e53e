"""The log entries of the Deployments API's writes (promote, fail, pause/resume,
allocation health), built from a consistent read of the state with the checks
Nomad's RPC makes; shared by the gateway (``server.http.deployment_writes``) and
anything else that writes them. Every time and id is decided here."""
from __future__ import annotations

from caravan.fsm import deployments as dep
from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.store import State
from caravan.fsm.structs import Deployment, Evaluation
from caravan.fsm.times import format_rfc3339
from caravan.scheduler.api import deployment_eval, deployment_failure
from caravan.server import ids
from caravan.server.errors import ApiError


def _eval(state: State, d: Deployment, now_ns: int) -> Evaluation:
    return deployment_eval(state.get(t.JOBS, d.JobID), d, ids.uuid4_str(), now_ns)


def promote_entry(state: State, d: Deployment, all_groups: bool, groups: list[str],
                  now_ns: int) -> e.DeploymentPromote:
    return e.DeploymentPromote(DeploymentID=d.ID, All=all_groups, Groups=groups or None,
                               Eval=_eval(state, d, now_ns), Now=now_ns)


def fail_entry(state: State, d: Deployment, now_ns: int) -> e.DeploymentStatusChange:
    """Failed by the operator: the job rolled back as the deployment watcher would."""
    description, revert_to = deployment_failure(state, d, dep.DESC_FAILED_BY_USER,
                                                sorted(d.TaskGroups or {}))
    return e.DeploymentStatusChange(
        DeploymentUpdate=e.DeploymentStatusUpdate(DeploymentID=d.ID, Status="failed",
                                                  StatusDescription=description),
        RevertToVersion=revert_to, Eval=_eval(state, d, now_ns), SubmitTime=now_ns)


def pause_entry(state: State, d: Deployment, pausing: bool,
                now_ns: int) -> e.DeploymentStatusChange:
    """Paused, or resumed (with an eval, and the description of a deployment that still
    waits for its promotion)."""
    if pausing:
        status, description, ev = "paused", dep.DESC_PAUSED, None
    else:
        status, description, ev = "running", dep.DESC_RUNNING, _eval(state, d, now_ns)
        resumed = Deployment(Status="running", TaskGroups=d.TaskGroups)
        if resumed.requires_promotion():
            description = dep.DESC_AUTO_PROMOTION if resumed.has_auto_promote() \
                else dep.DESC_NEEDS_PROMOTION
    return e.DeploymentStatusChange(
        DeploymentUpdate=e.DeploymentStatusUpdate(DeploymentID=d.ID, Status=status,
                                                  StatusDescription=description),
        Eval=ev, SubmitTime=now_ns)


def check_alloc_health(state: State, d: Deployment, healthy: list[str],
                       unhealthy: list[str]) -> None:
    """Every allocation named exists and belongs to ``d``; 404/400 otherwise."""
    if not healthy and not unhealthy:
        raise ApiError(400, "must specify at least one healthy/unhealthy allocation ID")
    for alloc_id in healthy + unhealthy:
        alloc = state.get(t.ALLOCS, alloc_id)
        if alloc is None:
            raise ApiError(404, f'unknown alloc "{alloc_id}"')
        if alloc.DeploymentID != d.ID:
            raise ApiError(400, f'alloc "{alloc_id}" is not part of deployment "{d.ID}"')


def alloc_health_entry(state: State, d: Deployment, healthy: list[str], unhealthy: list[str],
                       now_ns: int) -> e.DeploymentAllocHealth:
    """Checked allocations' health; an unhealthy one fails the deployment (and rolls
    the job back as the deployment watcher would)."""
    update, revert_to = None, None
    if unhealthy:
        groups = sorted({state.get(t.ALLOCS, a).TaskGroup for a in unhealthy})
        description, revert_to = deployment_failure(state, d, dep.DESC_FAILED_ALLOCS, groups)
        update = e.DeploymentStatusUpdate(DeploymentID=d.ID, Status="failed",
                                          StatusDescription=description)
    return e.DeploymentAllocHealth(
        DeploymentID=d.ID, HealthyAllocationIDs=healthy or None,
        UnhealthyAllocationIDs=unhealthy or None, Timestamp=format_rfc3339(now_ns),
        DeploymentUpdate=update, RevertToVersion=revert_to, Eval=_eval(state, d, now_ns),
        SubmitTime=now_ns)
