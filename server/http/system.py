"""``/v1/system/gc``: garbage-collect now."""
from __future__ import annotations

import time

from starlette.requests import Request
from starlette.responses import Response

from caravan.scheduler.api import force_gc
from caravan.server.http.common import WRITE_METHODS, agent, check_method, consistent_state
from caravan.server.metrics import count_collected


async def garbage_collect(request: Request) -> Response:
    """Nomad's force-gc: everything eligible, whatever its age, from the state as it
    stands once every acknowledged write is applied here; 200 with an empty body once
    the collection's entries are applied."""
    check_method(request, WRITE_METHODS)
    ag = agent(request)
    state = await consistent_state(request)
    done = await force_gc(state, ag.submit, time.time_ns())
    for kind, n in done.items():
        if n:
            count_collected(kind, n)
    return Response(status_code=200)
