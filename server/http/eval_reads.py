"""Read endpoints of the Evaluations API.

Rows are served as stored: an Evaluation row already has Nomad's shape. The list
takes Nomad 1.x's legacy filters ``?status=`` and ``?job=`` (exact matches).
"""
from __future__ import annotations

from starlette.requests import Request

from fsm import schema as t
from fsm.store import State
from server.http.alloc_reads import GET, by_creation, listed, require_uuid, stub
from server.http.common import blocking_read, check_method, query_options, read_row


def _evals(state: State, prefix: str, status: str, job: str) -> list:
    if status and not prefix:
        rows = by_creation(state.by_index(t.EVALS, "status", status))  # the index, not a scan
    else:
        rows = listed(state, t.EVALS, prefix)
    return [e for e in rows if (not status or e.Status == status) and (not job or e.JobID == job)]


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
    return await read_row(request, t.EVALS, eval_id, "eval not found")


async def eval_allocations(request: Request):
    """Stubs of the allocations the eval placed; an unknown eval has none (``[]``)."""
    check_method(request, GET)
    eval_id = request.path_params["eval_id"]

    def query(state: State):
        allocs = by_creation(state.by_index(t.ALLOCS, "eval", eval_id))
        return state.table_index(t.ALLOCS), [stub(a) for a in allocs]

    return await blocking_read(request, (t.ALLOCS,), query)
