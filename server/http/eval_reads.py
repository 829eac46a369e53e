"""Endpoints of the Evaluations API.

Rows are served as stored: an Evaluation row already has Nomad's shape, plus
``RelatedEvals`` (filled with ``?related=true``). The list takes Nomad 1.x's legacy
filters ``?status=`` and ``?job=`` (exact matches). ``DELETE /v1/evaluations`` is
refused as Nomad refuses it while the eval broker runs (Caravan's always does).
"""
from __future__ import annotations

import msgspec
from starlette.requests import Request

from caravan.fsm import schema as t
from caravan.fsm.store import State
from caravan.server.http.alloc_reads import GET, by_creation, listed, require_uuid, stub
from caravan.server.http.common import ApiError, blocking_read, check_method, query_bool, query_options, read_json

# Nomad's structs.MaxUUIDsPerWriteRequest
MAX_IDS_PER_WRITE = 7281


def _evals(state: State, prefix: str, status: str, job: str) -> list:
    if status and not prefix:
        rows = by_creation(state.by_index(t.EVALS, t.BY_STATUS, status))  # the index, not a scan
    else:
        rows = listed(state, t.EVALS, prefix)
    return [e for e in rows if (not status or e.Status == status) and (not job or e.JobID == job)]


async def evals_collection(request: Request):
    if request.method == "DELETE":
        return await delete_evals(request)
    return await list_evals(request)


async def delete_evals(request: Request):
    """Nomad's checks of an ``EvalDeleteRequest`` (IDs or a filter, not both, not too
    many), then its refusal: evals may only be deleted while the broker is paused."""
    body = await read_json(request, required=False)
    if body is None:
        body = {}
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    ids, flt = body.get("EvalIDs"), body.get("Filter")
    if ids is not None and (not isinstance(ids, list) or not all(isinstance(i, str) for i in ids)):
        raise ApiError(400, "EvalIDs: expected an array of strings")
    if flt is not None and not isinstance(flt, str):
        raise ApiError(400, "Filter: expected a string")
    ids, flt = ids or [], flt or ""
    if flt and ids:
        raise ApiError(400, "evals cannot be deleted by both ID and filter")
    if not flt and not ids:
        raise ApiError(400, "evals must be deleted by either ID or filter")
    if len(ids) > MAX_IDS_PER_WRITE:
        raise ApiError(400, f"request includes {len(ids)} evals IDs, must be "
                            f"{MAX_IDS_PER_WRITE} or fewer")
    raise ApiError(400, "eval broker is enabled; eval broker must be paused to delete evals")


def eval_stub(ev) -> dict:
    """Nomad's ``EvaluationStub``."""
    return {"ID": ev.ID, "Namespace": ev.Namespace, "Priority": ev.Priority, "Type": ev.Type,
            "TriggeredBy": ev.TriggeredBy, "JobID": ev.JobID, "NodeID": ev.NodeID,
            "DeploymentID": ev.DeploymentID, "Status": ev.Status,
            "StatusDescription": ev.StatusDescription, "WaitUntil": ev.WaitUntil,
            "NextEval": ev.NextEval, "PreviousEval": ev.PreviousEval,
            "BlockedEval": ev.BlockedEval, "CreateIndex": ev.CreateIndex,
            "ModifyIndex": ev.ModifyIndex, "CreateTime": ev.CreateTime,
            "ModifyTime": ev.ModifyTime}


def related_evals(state: State, ev) -> list[dict]:
    """Nomad's ``EvalsRelatedToID``: every eval reachable through NextEval,
    PreviousEval and BlockedEval links, breadth first, the eval itself left out."""
    out, done = [], {ev.ID}
    todo = [ev.NextEval, ev.PreviousEval, ev.BlockedEval]
    while todo:
        current = todo.pop(0)
        if not current or current in done:
            continue
        other = state.get(t.EVALS, current)
        if other is None:
            continue
        done.add(other.ID)
        todo += [other.NextEval, other.PreviousEval, other.BlockedEval]
        out.append(eval_stub(other))
    return out


async def list_evals(request: Request):
    check_method(request, GET)
    prefix = query_options(request).prefix
    status = request.query_params.get("status", "")
    job = request.query_params.get("job", "")

    def query(state: State):
        return state.table_index(t.EVALS), _evals(state, prefix, status, job)

    return await blocking_read(request, (t.EVALS,), query)


async def read_eval(request: Request):
    check_method(request, GET)
    eval_id = require_uuid(request.path_params["eval_id"])
    related = query_bool(request, "related")

    def query(state: State):
        ev = state.get(t.EVALS, eval_id)
        if ev is None:
            return state.table_index(t.EVALS), None
        if not related:
            return ev.ModifyIndex, ev
        out = msgspec.to_builtins(ev)
        out["RelatedEvals"] = related_evals(state, ev)
        return ev.ModifyIndex, out

    return await blocking_read(request, (t.EVALS,), query, missing="eval not found")


async def eval_allocations(request: Request):
    """Stubs of the allocations the eval placed; an unknown eval has none (``[]``)."""
    check_method(request, GET)
    eval_id = request.path_params["eval_id"]

    def query(state: State):
        allocs = by_creation(state.by_index(t.ALLOCS, t.BY_EVAL, eval_id))
        return state.table_index(t.ALLOCS), [stub(a) for a in allocs]

    return await blocking_read(request, (t.ALLOCS,), query)
