"""``/v1/allocation/:id/stop`` (Nomad's ``Alloc.Stop``): one entry marks the allocation
to migrate and creates the ``alloc-stop`` eval that acts on it; the scheduler then
stops it and places a replacement."""
from __future__ import annotations

from starlette.requests import Request

from caravan.fsm import schema as t
from caravan.server.entries.allocs import stop_entry
from caravan.server.http.common import WRITE_METHODS, ApiError, check_method, consistent_state, query_bool
from caravan.server.http.job_writes import submit, write_reply


async def stop_alloc(request: Request):
    check_method(request, WRITE_METHODS)
    alloc_id = request.path_params["alloc_id"]
    no_delay = query_bool(request, "no_shutdown_delay")
    alloc = (await consistent_state(request)).get(t.ALLOCS, alloc_id)
    if alloc is None:
        raise ApiError(404, f'Unknown allocation "{alloc_id}"')
    result = await submit(request, stop_entry(alloc, no_delay))
    return write_reply(request, {"EvalID": result["EvalIDs"][0], "Index": result["Index"]},
                       result["Index"])
