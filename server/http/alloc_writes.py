"""``/v1/allocation/:id/stop`` (Nomad's ``Alloc.Stop``): one entry marks the allocation
to migrate and creates the ``alloc-stop`` eval that acts on it; the scheduler then
stops it and places a replacement."""
from __future__ import annotations

import time

from starlette.requests import Request

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.structs import DesiredTransition, Evaluation
from caravan.server import ids
from caravan.server.http.common import WRITE_METHODS, ApiError, check_method, consistent_state, query_bool
from caravan.server.http.job_writes import submit, write_reply


def stop_entry(alloc, no_shutdown_delay: bool, now_ns: int | None = None) -> e.AllocDesiredTransition:
    now = time.time_ns() if now_ns is None else now_ns
    job = alloc.Job
    ev = Evaluation(ID=ids.uuid4_str(), Namespace=alloc.Namespace,
                    Priority=(job.Priority if job else None) or 50,
                    Type=(job.Type if job else None) or "service", TriggeredBy="alloc-stop",
                    JobID=alloc.JobID, JobModifyIndex=job.ModifyIndex if job else 0,
                    Status="pending", CreateTime=now, ModifyTime=now)
    return e.AllocDesiredTransition(
        Allocs={alloc.ID: DesiredTransition(Migrate=True, NoShutdownDelay=no_shutdown_delay)},
        Evals=[ev])


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
