"""``/v1/status/*``, ``/v1/agent/health`` and ``/v1/agent/members``."""
from __future__ import annotations

import asyncio
from importlib import metadata

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from caravan.client.http_api import health_part
from caravan.fsm.store import state_hash
from caravan.server.http.common import agent, check_method, json_response
from caravan.server.raft import NoLeaderError

LEADER_POLL = 0.05


async def wait_for_leader(ag) -> str:
    """The leader's RPC address; before an election (or during one), wait up to the
    cluster's ``rpc_hold_timeout`` for a leader, as Nomad's RPC forwarding does, then
    give up with "No cluster leader". Never answers an empty address."""
    leader = ag.leader_rpc()
    if leader:
        return leader
    loop = asyncio.get_running_loop()
    deadline = loop.time() + ag.config.cluster.duration_ns("rpc_hold_timeout") / 1e9
    while not leader:
        remaining = deadline - loop.time()
        if remaining <= 0:
            raise NoLeaderError()
        await asyncio.sleep(min(LEADER_POLL, remaining))
        leader = ag.leader_rpc()
    return leader


async def leader(request: Request) -> Response:
    check_method(request, ("GET",))
    ag = agent(request)
    address = await wait_for_leader(ag)
    return json_response(address, index=ag.fsm.state.last_index, request=request)


async def peers(request: Request) -> Response:
    check_method(request, ("GET",))
    ag = agent(request)
    return json_response(ag.peer_rpcs(), index=ag.fsm.state.last_index, request=request)


async def members(request: Request) -> Response:
    """``/v1/agent/members``: every server of the cluster file, as this server sees it.
    Nomad answers from its gossip pool; Caravan has no gossip, so a peer is ``alive``
    while this server's raft link to it is connected and ``failed`` otherwise (this
    server itself is always ``alive``). ``Port`` is the raft port (where Nomad shows
    serf's), and the ``port`` tag the RPC port, as in Nomad."""
    check_method(request, ("GET",))
    ag = agent(request)
    cluster, me = ag.config.cluster, ag.me
    status = ag.raft.status()
    leader = ag.leader_rpc()
    out = []
    for server in ag.config.servers:
        dialed = me.raft_peers.get(server.name, server.raft)
        if server.name == me.name:
            alive = True
        else:
            alive = status.get(f"partner_node_status_server_{dialed}") == 2
        host, _, port = server.raft.rpartition(":")
        out.append({
            "Name": f"{server.name}.{cluster.region}", "Addr": host.strip("[]"),
            "Port": int(port), "Status": "alive" if alive else "failed",
            "Tags": {"role": "nomad", "region": cluster.region, "dc": cluster.datacenter,
                     "port": server.rpc.rpartition(":")[2], "build": _BUILD,
                     "leader": "true" if server.rpc == leader else "false",
                     "expect": str(len(ag.config.servers)), "raft_vsn": "3"},
            "ProtocolMin": 1, "ProtocolMax": 5, "ProtocolCur": 2,
            "DelegateMin": 2, "DelegateMax": 5, "DelegateCur": 4})
    return json_response({"ServerName": me.name, "ServerRegion": cluster.region,
                          "ServerDC": cluster.datacenter, "Members": out},
                         index=ag.fsm.state.last_index, request=request)


def _build() -> str:
    try:
        return metadata.version("caravan")
    except metadata.PackageNotFoundError:   # run from a checkout that is not installed
        return "0.0.0"


_BUILD = _build()


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
    leader = await wait_for_leader(ag)
    body = {"server": {"ok": True, "message": "ok", "leader": leader,
                       "applied_index": ag.fsm.state.last_index}}
    if getattr(ag, "client", None) is not None and ag.client.registered.is_set():
        body["client"] = health_part(ag.client)
    return json_response(body, index=ag.fsm.state.last_index, request=request)


async def metrics(request: Request) -> Response:
    """``/v1/metrics``: this agent's counters (see server/metrics.py)."""
    from caravan.server.metrics import METRICS
    return JSONResponse(METRICS.snapshot())
