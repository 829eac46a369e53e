"""``/v1/client/fs/logs/:alloc_id`` on a server agent: a task's stdout or stderr.

An allocation whose directory this agent's own client holds is served here by the
client's HTTP API (``client/http_api.py``, which also checks the parameters); any other
is looked up in the state and the request forwarded to its node's HTTP address, the
answer streamed back.
"""
from __future__ import annotations

import httpx
from starlette.requests import Request
from starlette.responses import StreamingResponse

from caravan.client.http_api import log_options, runs_here, serve_logs
from caravan.fsm import schema as t
from caravan.server.http.common import ApiError, agent

FORWARDED = "X-Caravan-Forwarded"


async def alloc_logs(request: Request):
    opts = log_options(request.query_params)
    alloc_id = request.path_params["alloc_id"]
    ag = agent(request)
    client = getattr(ag, "client", None)
    if runs_here(client, alloc_id):
        return serve_logs(client, alloc_id, opts)
    fsm = getattr(ag, "fsm", None)
    if fsm is None or request.headers.get(FORWARDED):
        raise ApiError(404, f"Unknown allocation \"{alloc_id}\"")
    alloc = fsm.state.get(t.ALLOCS, alloc_id)
    if alloc is None:
        raise ApiError(404, f"Unknown allocation \"{alloc_id}\"")
    node = fsm.state.get(t.NODES, alloc.NodeID)
    if node is None or not node.HTTPAddr:
        raise ApiError(404, f"Unknown node \"{alloc.NodeID}\" for allocation \"{alloc_id}\"")
    return await _forward(request, node.HTTPAddr)

async def _forward(request: Request, http_addr: str) -> StreamingResponse:
    url = f"http://{http_addr}{request.url.path}"
    client = httpx.AsyncClient(timeout=httpx.Timeout(10.0, read=None))
    try:
        upstream = await client.send(
            client.build_request("GET", url, params=request.query_params,
                                 headers={FORWARDED: "1"}), stream=True)
    except httpx.HTTPError as exc:
        await client.aclose()
        raise ApiError(500, f"failed to reach the client at {http_addr}: {exc}") from None

    async def body():
        try:
            async for chunk in upstream.aiter_raw():
                yield chunk
        finally:
            await upstream.aclose()
            await client.aclose()
    media = upstream.headers.get("content-type", "text/plain")
    return StreamingResponse(body(), status_code=upstream.status_code, media_type=media)
