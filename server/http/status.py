"""``/v1/status/*`` and ``/v1/agent/health``."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import Response

from server.http.common import ApiError, agent, check_method, json_response


async def leader(request: Request) -> Response:
    check_method(request, ("GET",))
    ag = agent(request)
    return json_response(ag.leader_rpc(), index=ag.fsm.state.last_index, request=request)


async def peers(request: Request) -> Response:
    check_method(request, ("GET",))
    ag = agent(request)
    return json_response(ag.peer_rpcs(), index=ag.fsm.state.last_index, request=request)


async def health(request: Request) -> Response:
    """200 once this server follows a leader; 500 with the reason otherwise."""
    check_method(request, ("GET",))
    ag = agent(request)
    leader = ag.leader_rpc()
    if not leader:
        raise ApiError(500, "No cluster leader")
    return json_response({"server": {"ok": True, "message": "ok", "leader": leader,
                                     "applied_index": ag.fsm.state.last_index}},
                         index=ag.fsm.state.last_index, request=request)
