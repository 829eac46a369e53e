"""``/v1/status/*`` and ``/v1/agent/health``."""
from __future__ import annotations

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from fsm.store import state_hash
from server.http.common import ApiError, agent, check_method, json_response


async def leader(request: Request) -> Response:
    check_method(request, ("GET",))
    ag = agent(request)
    return json_response(ag.leader_rpc(), index=ag.fsm.state.last_index, request=request)


async def peers(request: Request) -> Response:
    check_method(request, ("GET",))
    ag = agent(request)
    return json_response(ag.peer_rpcs(), index=ag.fsm.state.last_index, request=request)


async def state_digest(request: Request) -> Response:
    """Caravan's own read-only debug surface (not in Nomad): this server's applied index
    and a SHA-256 of its whole FSM state, as it stands locally (no barrier). Servers
    that applied the same log prefix answer the same pair; the fault-injection tests
    use it to check that they converge."""
    check_method(request, ("GET",))
    state = agent(request).fsm.state
    return JSONResponse({"AppliedIndex": state.last_index, "StateHash": state_hash(state)})


async def health(request: Request) -> Response:
    """200 once this server follows a leader; 500 with the reason otherwise."""
    check_method(request, ("GET",))
    ag = agent(request)
    leader = ag.leader_rpc()
    if not leader:
        raise ApiError(500, "No cluster leader")
    body = {"server": {"ok": True, "message": "ok", "leader": leader,
                       "applied_index": ag.fsm.state.last_index}}
    if getattr(ag, "client", None) is not None and ag.client.registered.is_set():
        body["client"] = _client_part(ag.client)
    return json_response(body, index=ag.fsm.state.last_index, request=request)


def _client_part(client) -> dict:
    if not client.registered.is_set():
        raise ApiError(500, "client: node not registered yet")
    return {"ok": True, "message": "ok", "node_id": client.node.ID}


async def client_health(request: Request) -> Response:
    """A client-only agent: 200 once its node is registered with the servers."""
    client = agent(request).client
    return JSONResponse({"client": _client_part(client)})


async def metrics(request: Request) -> Response:
    """``/v1/metrics``: this agent's counters (see server/metrics.py)."""
    from server.metrics import METRICS
    return JSONResponse(METRICS.snapshot())
