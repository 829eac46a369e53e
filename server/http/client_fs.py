"""``/v1/client/fs/logs/:alloc_id``: a task's stdout or stderr.

Served by the agent whose client runs the allocation; any other agent (a server) looks
up the allocation's node and forwards the request to that node's HTTP address, streaming
the answer back. Parameters as Nomad's: ``task`` (required), ``type`` (``stdout`` or
``stderr``), ``follow``, ``plain``, ``origin`` (``start``/``end``) and ``offset``.
Plain answers are the raw bytes; otherwise a stream of JSON frames
``{"File", "Offset", "Data" (base64)}``, as Nomad's ``StreamFrame``.
"""
from __future__ import annotations

import base64
import os

import httpx
from starlette.requests import Request
from starlette.responses import StreamingResponse

from caravan.client.logs import LogFiles
from caravan.fsm import schema as t
from caravan.server.http.common import ApiError, agent, parse_bool

FORWARDED = "X-Caravan-Forwarded"


def _options(request: Request) -> dict:
    q = request.query_params
    task = q.get("task", "")
    if not task:
        raise ApiError(400, "must include task name")
    kind = q.get("type", "")
    if kind not in ("stdout", "stderr"):
        raise ApiError(400, "must include type (stdout/stderr)")
    origin = q.get("origin", "start")
    if origin not in ("start", "end"):
        raise ApiError(400, 'origin must be "start" or "end"')
    try:
        offset = int(q.get("offset", "0") or 0)
    except ValueError:
        raise ApiError(400, f"offset: invalid value {q.get('offset')!r}") from None
    if offset < 0:
        raise ApiError(400, "offset: must not be negative")
    follow = parse_bool(q["follow"], "follow") if q.get("follow") else False
    plain = parse_bool(q["plain"], "plain") if q.get("plain") else False
    return {"task": task, "type": kind, "origin": origin, "offset": offset,
            "follow": follow, "plain": plain}


def _frames(chunks, plain: bool):
    async def gen():
        async for name, offset, data in chunks:
            if plain:
                yield data
            else:
                yield (b'{"File":"alloc/logs/' + name.encode() + b'","Offset":'
                       + str(offset + len(data)).encode() + b',"Data":"'
                       + base64.b64encode(data) + b'"}')
    return gen()


async def alloc_logs(request: Request):
    opts = _options(request)
    alloc_id = request.path_params["alloc_id"]
    ag = agent(request)
    client = getattr(ag, "client", None)
    if client is not None and os.path.isdir(os.path.join(client.alloc_dir, alloc_id)):
        return _serve_local(client, alloc_id, opts)
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


def _serve_local(client, alloc_id: str, opts: dict) -> StreamingResponse:
    runner = client.runners.get(alloc_id)
    if runner is not None and opts["task"] not in runner.runners:
        raise ApiError(400, f"unknown task name \"{opts['task']}\"")
    files = LogFiles(os.path.join(client.alloc_dir, alloc_id, "alloc", "logs"),
                     opts["task"], opts["type"])

    def done() -> bool:
        task = runner.runners.get(opts["task"]) if runner is not None else None
        return task is None or task.dead

    chunks = files.stream(opts["origin"], opts["offset"], opts["follow"], done)
    media = "text/plain; charset=utf-8" if opts["plain"] else "application/json"
    return StreamingResponse(_frames(chunks, opts["plain"]), media_type=media)


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
