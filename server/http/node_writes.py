"""Write endpoints of the Nodes API: drain, eligibility, evaluate, purge.

Each is one log entry built from a consistent read of the state, with Nomad's checks
and error texts (``nomad/node_endpoint.go``); every time and id is decided here, and
the state machine derives the rest (the node event, LastDrain) from the state it
applies to. The entry builders are plain functions, shared with the simulation.
"""
from __future__ import annotations

import time

import msgspec
from starlette.requests import Request

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.store import State
from caravan.fsm.structs import Node
from caravan.scheduler.api import node_update_evals
from caravan.server import ids
from caravan.server.entries.nodes import DrainSpec, check_eligibility, drain_entry, eligibility_entry
from caravan.server.http.alloc_reads import require_uuid
from caravan.server.http.common import WRITE_METHODS, ApiError, check_method, consistent_state, convert, read_json
from caravan.server.http.job_writes import submit, write_reply


class DrainRequest(msgspec.Struct):
    NodeID: str = ""
    DrainSpec: DrainSpec | None = None
    MarkEligible: bool = False
    Meta: dict[str, str] | None = None


class EligibilityRequest(msgspec.Struct):
    NodeID: str = ""
    Eligibility: str = ""


# --- endpoints ----------------------------------------------------------------------------------


async def _node(request: Request) -> tuple[State, Node]:
    node_id = require_uuid(request.path_params["node_id"])
    state = await consistent_state(request)
    node = state.get(t.NODES, node_id)
    if node is None:
        raise ApiError(404, "node not found")
    return state, node


async def _body(request: Request, typ: type, what: str):
    raw = await read_json(request)
    if not isinstance(raw, dict):
        raise ApiError(400, "Request body must be a JSON object")
    body = convert(raw, typ, what)
    if body.NodeID and body.NodeID != request.path_params["node_id"]:
        raise ApiError(400, "NodeID in the body does not match the node of the path")
    return body


def _node_reply(request: Request, result: dict, **extra):
    index = result.get("Index", 0)
    return write_reply(request, {
        **extra, "EvalIDs": result.get("EvalIDs") or None,
        "EvalCreateIndex": result.get("EvalCreateIndex", 0),
        "NodeModifyIndex": result.get("NodeModifyIndex", 0), "Index": index}, index)


async def drain(request: Request):
    check_method(request, WRITE_METHODS)
    body = await _body(request, DrainRequest, "Invalid drain request")
    state, node = await _node(request)
    result = await submit(request, drain_entry(state, node, body.DrainSpec, body.MarkEligible,
                                               body.Meta, time.time_ns()))
    return _node_reply(request, result)


async def eligibility(request: Request):
    check_method(request, WRITE_METHODS)
    body = await _body(request, EligibilityRequest, "Invalid eligibility request")
    state, node = await _node(request)
    check_eligibility(node, body.Eligibility)
    if node.SchedulingEligibility == body.Eligibility:
        return _node_reply(request, {})      # nothing to do, as Nomad: nothing written
    result = await submit(request, eligibility_entry(state, node, body.Eligibility,
                                                     time.time_ns()))
    return _node_reply(request, result)


def _update_response(request: Request, result: dict, state: State):
    """Nomad's NodeUpdateResponse (what a client's register or heartbeat gets too)."""
    return _node_reply(request, result, HeartbeatTTL=0,
                       LeaderRPCAddr=request.app.state.agent.leader_rpc() or "",
                       NumNodes=sum(1 for _ in state.rows(t.NODES)), Servers=None)


async def evaluate(request: Request):
    check_method(request, WRITE_METHODS)
    state, node = await _node(request)
    evals = node_update_evals(state, node.ID, time.time_ns(), ids.uuid4_str, system_jobs=True)
    if not evals:
        return _update_response(request, {}, state)
    result = await submit(request, e.EvalUpdate(Evals=[
        msgspec.structs.replace(ev, NodeModifyIndex=node.ModifyIndex) for ev in evals]))
    return _update_response(request, {"EvalIDs": [ev.ID for ev in evals],
                                      "EvalCreateIndex": result["Index"],
                                      "NodeModifyIndex": node.ModifyIndex,
                                      "Index": result["Index"]}, state)


async def purge(request: Request):
    check_method(request, WRITE_METHODS)
    state, node = await _node(request)
    evals = node_update_evals(state, node.ID, time.time_ns(), ids.uuid4_str) or None
    result = await submit(request, e.NodeDeregister(NodeID=node.ID, Evals=evals))
    return _update_response(request, result, state)
