"""A client agent's own HTTP API: its allocations' logs and its health.

``/v1/client/fs/logs/:alloc_id`` streams a task's stdout or stderr from this client's
allocation directory. Parameters as Nomad's: ``task`` (required), ``type`` (``stdout`` or
``stderr``), ``follow``, ``plain``, ``origin`` (``start``/``end``) and ``offset``. Plain
answers are the raw bytes; otherwise a stream of JSON frames ``{"File", "Offset", "Data"
(base64)}``, as Nomad's ``StreamFrame``. ``/v1/agent/health`` answers 200 once the node
is registered with the servers.

A client-only agent (``caravan agent -config FILE -client NAME``) serves this app; a
server agent serves the same logs route (``server/http/client_fs.py``) with these
helpers, forwarding to the allocation's node when the allocation is not its own.
Refusals are starlette ``HTTPException``s: a plain-text body with the message alone.
"""
from __future__ import annotations

import base64
import functools
import logging
import os

from starlette.applications import Starlette
from starlette.datastructures import QueryParams
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

from caravan.client.logs import LogFiles

log = logging.getLogger("caravan.client.http")


def parse_bool(value: str, name: str) -> bool:
    """Go's ``strconv.ParseBool``, the way Nomad parses ``?follow=`` and friends."""
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise HTTPException(400, f'Failed to parse value of "{name}" ({value}) as a bool: '
                             f'strconv.ParseBool: parsing "{value}": invalid syntax')


def log_options(q: QueryParams) -> dict:
    """The logs route's query parameters, checked as Nomad checks them."""
    task = q.get("task", "")
    if not task:
        raise HTTPException(400, "must include task name")
    kind = q.get("type", "")
    if kind not in ("stdout", "stderr"):
        raise HTTPException(400, "must include type (stdout/stderr)")
    origin = q.get("origin", "start")
    if origin not in ("start", "end"):
        raise HTTPException(400, 'origin must be "start" or "end"')
    try:
        offset = int(q.get("offset", "0") or 0)
    except ValueError:
        raise HTTPException(400, f"offset: invalid value {q.get('offset')!r}") from None
    if offset < 0:
        raise HTTPException(400, "offset: must not be negative")
    follow = parse_bool(q["follow"], "follow") if q.get("follow") else False
    plain = parse_bool(q["plain"], "plain") if q.get("plain") else False
    return {"task": task, "type": kind, "origin": origin, "offset": offset,
            "follow": follow, "plain": plain}


def runs_here(client, alloc_id: str) -> bool:
    """Whether this client has the allocation's directory (and so its logs)."""
    return client is not None and os.path.isdir(os.path.join(client.alloc_dir, alloc_id))


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


def serve_logs(client, alloc_id: str, opts: dict) -> StreamingResponse:
    """Stream one of this client's tasks' logs, as ``log_options`` asked."""
    runner = client.runners.get(alloc_id)
    if runner is not None and opts["task"] not in runner.runners:
        raise HTTPException(400, f"unknown task name \"{opts['task']}\"")
    files = LogFiles(os.path.join(client.alloc_dir, alloc_id, "alloc", "logs"),
                     opts["task"], opts["type"])

    def done() -> bool:
        task = runner.runners.get(opts["task"]) if runner is not None else None
        return task is None or task.dead

    chunks = files.stream(opts["origin"], opts["offset"], opts["follow"], done)
    media = "text/plain; charset=utf-8" if opts["plain"] else "application/json"
    return StreamingResponse(_frames(chunks, opts["plain"]), media_type=media)


def health_part(client) -> dict:
    """The ``client`` part of ``/v1/agent/health``: 500 until the node is registered."""
    if not client.registered.is_set():
        raise HTTPException(500, "client: node not registered yet")
    return {"ok": True, "message": "ok", "node_id": client.node.ID}


# --- the client-only agent's app ----------------------------------------------------------

async def _alloc_logs(request: Request) -> Response:
    opts = log_options(request.query_params)
    alloc_id = request.path_params["alloc_id"]
    client = request.app.state.client
    if not runs_here(client, alloc_id):
        raise HTTPException(404, f"Unknown allocation \"{alloc_id}\"")
    return serve_logs(client, alloc_id, opts)


async def _health(request: Request) -> Response:
    return JSONResponse({"client": health_part(request.app.state.client)})


def _text(code: int, message: str) -> PlainTextResponse:
    return PlainTextResponse(message, status_code=code)


async def _http_error(request: Request, exc: HTTPException):
    return _text(exc.status_code, exc.detail or "")


async def _fault(request: Request, exc: Exception):
    log.exception("unhandled error serving %s %s", request.method, request.url.path)
    return _text(500, "internal server error")


def _guarded(handler):
    """Answer an unexpected exception here, as a 500, instead of in starlette's
    ServerErrorMiddleware: that one re-raises after responding, and uvicorn then drops
    the connection, so a keep-alive client's next request fails with a reset."""
    @functools.wraps(handler)
    async def endpoint(request: Request):
        try:
            return await handler(request)
        except HTTPException:
            raise
        except Exception as exc:
            return await _fault(request, exc)
    return endpoint


CLIENT_ROUTES = [
    Route("/v1/client/fs/logs/{alloc_id}", _guarded(_alloc_logs), methods=["GET"]),
    Route("/v1/agent/health", _guarded(_health), methods=["GET"]),
]


def build_client_app(client) -> Starlette:
    """The HTTP API of a client-only agent: its allocations' logs and its health."""
    app = Starlette(routes=CLIENT_ROUTES, exception_handlers={
        HTTPException: _http_error, Exception: _fault})
    app.state.client = client
    return app
