"""Write endpoints of the Deployments API: promote, fail, pause/resume, allocation health.

In Nomad these go to the leader's deployment watcher; here each is one log entry built
from a consistent read of the state (the checks Nomad's RPC makes, with its error
texts), and the FSM checks again at apply time that the deployment is still active.
Every answer is Nomad's DeploymentUpdateResponse.
"""
from __future__ import annotations

import time

from starlette.requests import Request

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.store import State
from caravan.fsm.structs import Deployment
from caravan.server.entries.deployments import (
    alloc_health_entry,
    check_alloc_health,
    fail_entry,
    pause_entry,
    promote_entry,
)
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
    return await _reply(request, promote_entry(state, d, all_groups, groups, time.time_ns()))


async def fail(request: Request):
    check_method(request, WRITE_METHODS)
    deployment_id = request.path_params["deployment_id"]
    state, d = await _deployment(request, deployment_id, "can't fail terminal deployment")
    return await _reply(request, fail_entry(state, d, time.time_ns()))


async def pause(request: Request):
    check_method(request, WRITE_METHODS)
    deployment_id = request.path_params["deployment_id"]
    body = await _body(request, deployment_id, ("Pause",))
    pausing = _bool_option(body, "Pause")
    verb = "pause" if pausing else "resume"
    state, d = await _deployment(request, deployment_id, f"can't {verb} terminal deployment")
    return await _reply(request, pause_entry(state, d, pausing, time.time_ns()))


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
    check_alloc_health(state, d, healthy, unhealthy)
    return await _reply(request, alloc_health_entry(state, d, healthy, unhealthy, time.time_ns()))
