"""``caravan agent -config FILE -client NAME``: a client agent in its own process, with
a small HTTP API (its allocations' logs, its health) on the entry's ``http`` address."""
from __future__ import annotations

import asyncio
import signal
import sys

import uvicorn

from caravan.client.agent import ClientAgent, ClientSettings
from caravan.client.http_api import build_client_app


async def run_client(settings: ClientSettings) -> int:
    client = ClientAgent(settings)
    host, _, port = settings.http_addr.rpartition(":")
    server = uvicorn.Server(uvicorn.Config(
        build_client_app(client), host=host.strip("[]"),
        port=int(port), log_level="warning", access_log=False, lifespan="off",
        timeout_graceful_shutdown=2))

    def stop(signum, frame):
        server.should_exit = True
    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    starting = asyncio.ensure_future(client.start())

    def failed(task: asyncio.Task) -> None:
        if not task.cancelled() and task.exception() is not None:
            print(f"caravan: client {settings.name!r}: {task.exception()}", file=sys.stderr,
                  flush=True)
            server.should_exit = True
    starting.add_done_callback(failed)
    try:
        await server.serve()
    finally:
        starting.cancel()
        await client.stop()
    if not server.started:
        print(f"caravan: could not listen on {settings.http_addr}", file=sys.stderr)
        return 1
    if starting.done() and not starting.cancelled() and starting.exception() is not None:
        return 1
    return 0
