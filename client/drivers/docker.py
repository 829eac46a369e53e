"""The ``docker`` driver, over the Docker Engine HTTP API (``DOCKER_HOST``, default the
unix socket ``/var/run/docker.sock``). Fingerprinted only when the engine answers
``/_ping``; otherwise the node has no ``driver.docker`` attribute and jobs that need it
fail feasibility ("missing drivers").

A task's container: ``image`` (pulled when absent, reported as a "Driver" event),
``command``/``args``, ``entrypoint``, ``work_dir``, ``labels``, the task's environment,
the allocation and task directories mounted at ``/alloc``, ``/local`` and ``/secrets``,
host volumes bind-mounted at their ``volume_mount`` destinations (``:ro`` when read-only),
the task's ports published on the node's IP (``port_map`` or the port's ``To`` as the
container port), and its memory/CPU limits. Output is streamed into the task's logs;
stopping sends the kill signal, waits ``KillTimeout``, then SIGKILL; the container is
removed once it has exited.
"""
from __future__ import annotations

import asyncio
import os
import signal as signals
import struct
import urllib.parse

import httpx

from caravan.client.drivers.base import DriverError, ExitResult, TaskContext
from caravan.client.taskenv import networks

API = "v1.41"


def engine() -> tuple[str | None, str]:
    """(unix socket path or None, base URL) of the configured engine."""
    host = os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock")
    if host.startswith("unix://"):
        return host[len("unix://"):], "http://docker"
    if host.startswith("tcp://"):
        return None, "http://" + host[len("tcp://"):]
    return None, host


def _image_ref(image: str) -> tuple[str, str]:
    name, tag = image, "latest"
    if "@" not in image and ":" in image.rsplit("/", 1)[-1]:
        name, tag = image.rsplit(":", 1)
    return name, tag


class DockerHandle:
    def __init__(self, client: httpx.AsyncClient, container: str, ctx: TaskContext):
        self.client = client
        self.container = container
        self.pid = None
        self.ctx = ctx
        self._logs = asyncio.ensure_future(self._stream_logs())
        self._result: asyncio.Task | None = None

    async def _stream_logs(self) -> None:
        """Docker's multiplexed stream: 8-byte headers (stream, 0, 0, 0, size)."""
        buf = b""
        async with self.client.stream(
                "GET", f"/{API}/containers/{self.container}/logs",
                params={"follow": "1", "stdout": "1", "stderr": "1"}, timeout=None) as resp:
            async for chunk in resp.aiter_bytes():
                buf += chunk
                while len(buf) >= 8:
                    kind, size = buf[0], struct.unpack(">I", buf[4:8])[0]
                    if len(buf) < 8 + size:
                        break
                    data, buf = buf[8:8 + size], buf[8 + size:]
                    (self.ctx.stderr if kind == 2 else self.ctx.stdout).write(data)

    async def _wait(self) -> ExitResult:
        resp = await self.client.post(f"/{API}/containers/{self.container}/wait", timeout=None)
        body = resp.json() if resp.status_code == 200 else {}
        try:
            await asyncio.wait_for(self._logs, 5)
        except (TimeoutError, httpx.HTTPError):
            self._logs.cancel()
        await self.client.delete(f"/{API}/containers/{self.container}", params={"force": "1"})
        err = (body.get("Error") or {}).get("Message", "") if isinstance(body, dict) else ""
        return ExitResult(exit_code=int(body.get("StatusCode", 0)), err=err or "")

    async def wait(self) -> ExitResult:
        if self._result is None:
            self._result = asyncio.ensure_future(self._wait())
        return await asyncio.shield(self._result)

    async def kill(self, signal: int, timeout: float) -> None:
        url = f"/{API}/containers/{self.container}/kill"
        await self.client.post(url, params={"signal": signals.Signals(signal).name})
        try:
            await asyncio.wait_for(asyncio.shield(self.wait()), timeout)
        except TimeoutError:
            await self.client.post(url, params={"signal": "SIGKILL"})
            await self.wait()


class DockerDriver:
    links_mounts = False    # host volumes are bind mounts of the container
    name = "docker"

    def __init__(self):
        self.uds, self.base = engine()

    def _client(self) -> httpx.AsyncClient:
        transport = httpx.AsyncHTTPTransport(uds=self.uds) if self.uds else None
        return httpx.AsyncClient(transport=transport, base_url=self.base, timeout=30)

    def fingerprint(self) -> dict[str, str] | None:
        if self.uds and not os.path.exists(self.uds):
            return None
        transport = httpx.HTTPTransport(uds=self.uds) if self.uds else None
        try:
            with httpx.Client(transport=transport, base_url=self.base, timeout=1) as c:
                if c.get("/_ping").status_code != 200:
                    return None
                version = c.get("/version").json().get("Version", "")
        except (httpx.HTTPError, ValueError):
            return None
        return {"driver.docker": "1", "driver.docker.version": version}

    async def start(self, ctx: TaskContext) -> DockerHandle:
        config = ctx.config
        image = config.get("image")
        if not isinstance(image, str) or not image:
            raise DriverError("docker: config.image: missing image", recoverable=False)
        client = self._client()
        try:
            return await self._start(client, ctx, image)
        except httpx.HTTPError as exc:
            await client.aclose()
            raise DriverError(f"failed to talk to the docker engine: {exc}") from None

    async def _start(self, client: httpx.AsyncClient, ctx: TaskContext,
                     image: str) -> DockerHandle:
        inspect = await client.get(f"/{API}/images/{urllib.parse.quote(image, safe='')}/json")
        if inspect.status_code == 404:
            ctx.driver_event(f"Downloading image {image}")
            name, tag = _image_ref(image)
            pull = await client.post(f"/{API}/images/create",
                                     params={"fromImage": name, "tag": tag}, timeout=None)
            if pull.status_code != 200 or b'"error"' in pull.content:
                raise DriverError(f"Failed to pull `{image}`: {pull.text.strip()[-300:]}")
        body = self._container_spec(ctx, image)
        created = await client.post(f"/{API}/containers/create", json=body,
                                    params={"name": f"{ctx.task.Name}-{ctx.alloc.ID}"})
        if created.status_code != 201:
            raise DriverError(f"failed to create container: {created.text.strip()}")
        container = created.json()["Id"]
        started = await client.post(f"/{API}/containers/{container}/start")
        if started.status_code not in (204, 304):
            await client.delete(f"/{API}/containers/{container}", params={"force": "1"})
            raise DriverError(f"failed to start container: {started.text.strip()}")
        return DockerHandle(client, container, ctx)

    @staticmethod
    def _container_spec(ctx: TaskContext, image: str) -> dict:
        config = ctx.config
        cmd = []
        if config.get("command"):
            cmd = [str(config["command"]), *map(str, config.get("args") or [])]
        exposed, bindings = {}, {}
        port_map = config.get("port_map") or {}
        if isinstance(port_map, list):   # HCL blocks arrive as a list of maps
            port_map = {k: v for m in port_map for k, v in m.items()}
        for net in networks(ctx.alloc, ctx.task):
            for port in list(net.ReservedPorts or ()) + list(net.DynamicPorts or ()):
                inner = int(port_map.get(port.Label) or port.To or port.Value)
                key = f"{inner}/tcp"
                exposed[key] = {}
                bindings.setdefault(key, []).append(
                    {"HostIp": net.IP, "HostPort": str(port.Value)})
        res = (ctx.alloc.TaskResources or {}).get(ctx.task.Name) or ctx.task.Resources
        host_config = {
            "Binds": [f"{ctx.dirs.shared}:/alloc", f"{ctx.dirs.local}:/local",
                      f"{ctx.dirs.secrets}:/secrets",
                      # host volumes, read-only ones mounted read-only by the engine
                      *(f"{m.host_path}:{m.task_path}{':ro' if m.read_only else ''}"
                        for m in ctx.mounts)],
            "PortBindings": bindings,
        }
        if res is not None and res.MemoryMB:
            host_config["Memory"] = res.MemoryMB * 1024 * 1024
        if res is not None and res.CPU:
            host_config["CpuShares"] = res.CPU
        # the container gets Nomad's variables (with its own paths) and the task's Env,
        # not the agent's environment
        env = {k: v for k, v in ctx.env.items()
               if k.startswith("NOMAD_") or k in (ctx.task.Env or {})}
        env.update(NOMAD_ALLOC_DIR="/alloc", NOMAD_TASK_DIR="/local",
                   NOMAD_SECRETS_DIR="/secrets")
        spec = {"Image": image, "Env": [f"{k}={v}" for k, v in env.items()],
                "Labels": {str(k): str(v) for k, v in (config.get("labels") or {}).items()},
                "ExposedPorts": exposed, "HostConfig": host_config}
        if cmd:
            spec["Cmd"] = cmd
        if config.get("entrypoint"):
            spec["Entrypoint"] = list(map(str, config["entrypoint"]))
        if config.get("work_dir"):
            spec["WorkingDir"] = str(config["work_dir"])
        return spec
