"""A fake Docker Engine API on a unix socket, for the docker driver's tests:

    python -m tests.fake_docker SOCKET

Containers do not run anything. One whose command is ``echo ARGS...`` prints ARGS and
exits 0; ``sleep`` runs until killed (exit 130 for SIGINT, 137 for SIGKILL); ``fail N``
exits N. Images are absent until pulled. ``GET /fake/state`` shows what was asked for."""
from __future__ import annotations

import asyncio
import struct
import sys

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from starlette.routing import Route

STATE = {"images": set(), "containers": {}, "pulls": [], "kills": []}


class Container:
    def __init__(self, cid: str, spec: dict):
        self.id, self.spec = cid, spec
        self.output: list[tuple[int, bytes]] = []
        self.exit: asyncio.Future = asyncio.get_running_loop().create_future()
        self.changed = asyncio.Event()

    def start(self) -> None:
        cmd = self.spec.get("Cmd") or []
        if cmd[:1] == ["echo"]:
            self.output.append((1, (" ".join(cmd[1:]) + "\n").encode()))
            self.exit.set_result(0)
        elif cmd[:1] == ["fail"]:
            self.output.append((2, b"failing\n"))
            self.exit.set_result(int(cmd[1]))
        self.changed.set()

    def kill(self, signal: str) -> None:
        STATE["kills"].append((self.id, signal))
        if not self.exit.done():
            self.exit.set_result(130 if signal == "SIGINT" else 137)
        self.changed.set()


async def ping(request):
    return PlainTextResponse("OK")


async def version(request):
    return JSONResponse({"Version": "24.0.0-fake", "ApiVersion": "1.41"})


async def image(request):
    if request.path_params["name"] in STATE["images"]:
        return JSONResponse({"Id": "sha256:fake"})
    return JSONResponse({"message": "No such image"}, status_code=404)


async def pull(request):
    ref = f"{request.query_params['fromImage']}:{request.query_params.get('tag', 'latest')}"
    STATE["pulls"].append(ref)
    STATE["images"].add(ref)
    return PlainTextResponse('{"status":"Downloaded newer image"}\n')


async def create(request: Request):
    spec = await request.json()
    cid = f"c{len(STATE['containers']) + 1}"
    STATE["containers"][cid] = Container(cid, spec)
    return JSONResponse({"Id": cid, "Warnings": []}, status_code=201)


async def start(request):
    STATE["containers"][request.path_params["cid"]].start()
    return Response(status_code=204)


async def logs(request):
    c = STATE["containers"][request.path_params["cid"]]

    async def frames():
        sent = 0
        while True:
            for kind, data in c.output[sent:]:
                yield bytes([kind, 0, 0, 0]) + struct.pack(">I", len(data)) + data
            sent = len(c.output)
            if c.exit.done():
                return
            c.changed.clear()
            await c.changed.wait()
    return StreamingResponse(frames())


async def wait(request):
    c = STATE["containers"][request.path_params["cid"]]
    return JSONResponse({"StatusCode": await c.exit})


async def kill(request):
    STATE["containers"][request.path_params["cid"]].kill(request.query_params["signal"])
    return Response(status_code=204)


async def remove(request):
    return Response(status_code=204)


async def state(request):
    return JSONResponse({"pulls": STATE["pulls"], "kills": STATE["kills"],
                         "containers": {k: c.spec for k, c in STATE["containers"].items()}})


app = Starlette(routes=[
    Route("/_ping", ping), Route("/version", version),
    Route("/v1.41/images/{name:path}/json", image),
    Route("/v1.41/images/create", pull, methods=["POST"]),
    Route("/v1.41/containers/create", create, methods=["POST"]),
    Route("/v1.41/containers/{cid}/start", start, methods=["POST"]),
    Route("/v1.41/containers/{cid}/logs", logs),
    Route("/v1.41/containers/{cid}/wait", wait, methods=["POST"]),
    Route("/v1.41/containers/{cid}/kill", kill, methods=["POST"]),
    Route("/v1.41/containers/{cid}", remove, methods=["DELETE"]),
    Route("/fake/state", state),
])

if __name__ == "__main__":
    uvicorn.run(app, uds=sys.argv[1], log_level="warning")
