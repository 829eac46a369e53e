"""Write endpoints of the Deployments API: promote, fail, pause/resume, allocation health.

In Nomad these go to the leader's deployment watcher; here each is one log entry built
from a consistent read of the state (the checks Nomad's RPC makes, with its error
texts), and the FSM checks again at apply time that the deployment is still active.
Every answer is Nomad's DeploymentUpdateResponse.
"""
from __future__ import annotations

import time

from starlette.requests import Request

from caravan.fsm import deployments as dep
from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.store import State
from caravan.fsm.structs import Deployment
from caravan.fsm.times import format_rfc3339
from caravan.scheduler.api import deployment_eval, deployment_failure
from caravan.server import ids
from caravan.server.http.common import WRITE_METHODS, ApiError, check_method, consistent_state, go_fields, read_json
from caravan.server.http.job_writes import _bool_option, submit, write_reply


async def _body(request: Request, deployment_id: str, fields: tuple[str, ...]) -> dict:
    """The JSON body, its keys matched to the request's ``fields`` as Go matches them
    (in any case); its DeploymentID must name the deployment of the path."""
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    body = go_fields(body, ("DeploymentID", *fields))
    if not body.get("DeploymentID"):
        raise ApiError(400, "DeploymentID must be specified")
    if body["DeploymentID"] != deployment_id:
        raise ApiError(400, "Deployment ID does not match")
    return body


def _strings(body: dict, name: str) -> list[str]:
    value = body.get(name)
    if value is None:
        return []
    if isinstance(value, list):   # a null element is Go's zero value, ""
        value = ["" if v is None else v for v in value]
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise ApiError(400, f"{name}: expected a list of strings")
    return value


async def _deployment(request: Request, deployment_id: str, terminal_msg: str
                      ) -> tuple[State, Deployment]:
    state = await consistent_state(request)
    d = state.get(t.DEPLOYMENTS, deployment_id)
    if d is None:
        raise ApiError(404, "deployment not found")
    if not d.active():
        raise ApiError(400, terminal_msg)
    return state, d


def _eval(state: State, d: Deployment, now: int):
    return deployment_eval(state.get(t.JOBS, d.JobID), d, ids.uuid4_str(), now)


async def _reply(request: Request, body: e.Request):
    result = await submit(request, body)
    return write_reply(request, {
        "EvalID": result["EvalID"], "EvalCreateIndex": result["EvalCreateIndex"],
        "DeploymentModifyIndex": result["DeploymentModifyIndex"],
        "RevertedJobVersion": result["RevertedJobVersion"], "Index": result["Index"]},
        result["Index"])


async def promote(request: Request):
    check_method(request, WRITE_METHODS)
    deployment_id = request.path_params["deployment_id"]
    body = await _body(request, deployment_id, ("All", "Groups"))
    all_groups, groups = _bool_option(body, "All"), _strings(body, "Groups")
    state, d = await _deployment(request, deployment_id, "can't promote terminal deployment")
    now = time.time_ns()
    return await _reply(request, e.DeploymentPromote(
        DeploymentID=d.ID, All=all_groups, Groups=groups or None, Eval=_eval(state, d, now),
        Now=now))


async def fail(request: Request):
    check_method(request, WRITE_METHODS)
    deployment_id = request.path_params["deployment_id"]
    state, d = await _deployment(request, deployment_id, "can't fail terminal deployment")
    description, revert_to = deployment_failure(state, d, dep.DESC_FAILED_BY_USER, sorted(d.TaskGroups or {}))
    now = time.time_ns()
    return await _reply(request, e.DeploymentStatusChange(
        DeploymentUpdate=e.DeploymentStatusUpdate(DeploymentID=d.ID, Status="failed",
                                                  StatusDescription=description),
        RevertToVersion=revert_to, Eval=_eval(state, d, now), SubmitTime=now))


async def pause(request: Request):
    check_method(request, WRITE_METHODS)
    deployment_id = request.path_params["deployment_id"]
    body = await _body(request, deployment_id, ("Pause",))
    pausing = _bool_option(body, "Pause")
    verb = "pause" if pausing else "resume"
    state, d = await _deployment(request, deployment_id, f"can't {verb} terminal deployment")
    now = time.time_ns()
    if pausing:
        status, description, ev = "paused", dep.DESC_PAUSED, None
    else:
        status, description, ev = "running", dep.DESC_RUNNING, _eval(state, d, now)
        resumed = Deployment(Status="running", TaskGroups=d.TaskGroups)
        if resumed.requires_promotion():
            description = dep.DESC_AUTO_PROMOTION if resumed.has_auto_promote() \
                else dep.DESC_NEEDS_PROMOTION
    return await _reply(request, e.DeploymentStatusChange(
        DeploymentUpdate=e.DeploymentStatusUpdate(DeploymentID=d.ID, Status=status,
                                                  StatusDescription=description),
        Eval=ev, SubmitTime=now))


async def allocation_health(request: Request):
    check_method(request, WRITE_METHODS)
    deployment_id = request.path_params["deployment_id"]
    body = await _body(request, deployment_id,
                       ("HealthyAllocationIDs", "UnhealthyAllocationIDs"))
    healthy = _strings(body, "HealthyAllocationIDs")
    unhealthy = _strings(body, "UnhealthyAllocationIDs")
    if not healthy and not unhealthy:
        raise ApiError(400, "must specify at least one healthy/unhealthy allocation ID")
    state, d = await _deployment(request, deployment_id,
                                 "can't set health of allocations for a terminal deployment")
    for alloc_id in healthy + unhealthy:
        alloc = state.get(t.ALLOCS, alloc_id)
        if alloc is None:
            raise ApiError(404, f'unknown alloc "{alloc_id}"')
        if alloc.DeploymentID != d.ID:
            raise ApiError(400, f'alloc "{alloc_id}" is not part of deployment "{d.ID}"')
    now = time.time_ns()
    update, revert_to = None, None
    if unhealthy:
        groups = sorted({state.get(t.ALLOCS, a).TaskGroup for a in unhealthy})
        description, revert_to = deployment_failure(state, d, dep.DESC_FAILED_ALLOCS, groups)
        update = e.DeploymentStatusUpdate(DeploymentID=d.ID, Status="failed",
                                          StatusDescription=description)
    return await _reply(request, e.DeploymentAllocHealth(
        DeploymentID=d.ID, HealthyAllocationIDs=healthy or None,
        UnhealthyAllocationIDs=unhealthy or None, Timestamp=format_rfc3339(now),
        DeploymentUpdate=update, RevertToVersion=revert_to, Eval=_eval(state, d, now),
        SubmitTime=now))
