"""Service checks run by the client itself (Nomad needs Consul for these): ``tcp``
(a connection opens), ``http`` (a 2xx answer; 429 is a warning) and ``script`` (exit 0
passing, 1 warning, anything else critical), each every ``Interval`` with ``Timeout``,
starting from ``InitialStatus`` (critical when unset). Deployment health with
``HealthCheck = "checks"`` waits for every check to pass."""
from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable

import httpx

from caravan.client.drivers.raw_exec import kill_group
from caravan.client.proc import spawn
from caravan.client.taskenv import interpolate_service, networks
from caravan.fsm.structs import Allocation, Node, Service, ServiceCheck, Task

log = logging.getLogger("caravan.client.checks")

PASSING, WARNING, CRITICAL = "passing", "warning", "critical"
DEFAULT_INTERVAL = 10.0
DEFAULT_TIMEOUT = 5.0


def address(alloc: Allocation, task: Task, label: str) -> tuple[str, int] | None:
    """The host address of the port ``label``: the group network's ports first, then
    the allocation's networks; a label that is a port number (an interpolated
    ``${NOMAD_PORT_x}``) is that port on the allocation's first network address."""
    for mapping in alloc.shared_ports():
        if mapping.Label == label:
            return mapping.HostIP, mapping.Value
    nets = networks(alloc, task)
    for net in nets:
        for port in list(net.ReservedPorts or ()) + list(net.DynamicPorts or ()):
            if port.Label == label:
                return net.IP, port.Value
    if label.isascii() and label.isdigit() and 0 < int(label) < 65536 and nets:
        return nets[0].IP, int(label)
    return None


class CheckRunner:
    def __init__(self, *, check: ServiceCheck, service: Service, alloc: Allocation,
                 task: Task, env: dict[str, str], task_dir: str,
                 on_change: Callable[[], None]):
        self.check = check
        self.name = check.Name or f"service: {service.Name!r} check"
        self.status = check.InitialStatus or CRITICAL
        self.output = ""
        self.env = env
        self.task_dir = task_dir
        self.on_change = on_change
        self.interval = (check.Interval or 0) / 1e9 or DEFAULT_INTERVAL
        self.timeout = (check.Timeout or 0) / 1e9 or DEFAULT_TIMEOUT
        self.addr = address(alloc, task, check.PortLabel or service.PortLabel)
        self._task: asyncio.Task | None = None

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.ensure_future(self._loop())

    def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()

    async def _loop(self) -> None:
        while True:
            try:
                status, output = await asyncio.wait_for(self.once(), self.timeout)
            except TimeoutError:
                status, output = CRITICAL, f"timed out after {self.timeout:g}s"
            if (status, output) != (self.status, self.output):
                self.status, self.output = status, output
                self.on_change()
            await asyncio.sleep(self.interval)

    async def once(self) -> tuple[str, str]:
        kind = self.check.Type
        if kind == "script":
            return await self._script()
        if self.addr is None:
            return CRITICAL, f"no port labelled {self.check.PortLabel!r} in the allocation"
        host, port = self.addr
        if kind == "tcp":
            try:
                _reader, writer = await asyncio.open_connection(host, port)
            except OSError as exc:
                return CRITICAL, f"dial tcp {host}:{port}: {exc.strerror or exc}"
            writer.close()
            return PASSING, f"TCP connect {host}:{port}: Success"
        if kind in ("http", "https"):
            return await self._http(host, port)
        return CRITICAL, f"unsupported check type {kind!r}"

    async def _http(self, host: str, port: int) -> tuple[str, str]:
        scheme = self.check.Protocol or self.check.Type or "http"
        path = self.check.Path or "/"
        url = f"{scheme}://{host}:{port}{path if path.startswith('/') else '/' + path}"
        headers = [(k, v) for k, vs in (self.check.Header or {}).items() for v in vs]
        try:
            async with httpx.AsyncClient(verify=not self.check.TLSSkipVerify,
                                         timeout=self.timeout) as client:
                resp = await client.request(self.check.Method or "GET", url, headers=headers)
        except httpx.HTTPError as exc:
            return CRITICAL, f"{url}: {exc}"
        text = f"HTTP {self.check.Method or 'GET'} {url}: {resp.status_code}"
        if 200 <= resp.status_code < 300:
            return PASSING, text
        if resp.status_code == 429:
            return WARNING, text
        return CRITICAL, text

    async def _script(self) -> tuple[str, str]:
        if not self.check.Command:
            return CRITICAL, "script check without a command"
        try:
            proc = await spawn([self.check.Command, *(self.check.Args or ())],
                               cwd=self.task_dir, env=self.env, merge_stderr=True)
        except OSError as exc:
            return CRITICAL, f"failed to run {self.check.Command!r}: {exc}"
        try:
            out = await proc.stdout.read()
            code = await proc.wait()
        except asyncio.CancelledError:   # timed out: the check's process goes too
            kill_group(proc.pid, signal.SIGKILL)
            raise
        text = out.decode(errors="replace")[-1024:]
        return (PASSING if code == 0 else WARNING if code == 1 else CRITICAL), text


def checks_for(tg, task: Task, env: dict[str, str] | None = None,
               node: Node | None = None) -> list[tuple[Service, ServiceCheck]]:
    """The checks of the task's services; the group's own services' checks run with the
    group's leader task (its first task when none leads). Given the task's environment
    and node, each service is interpolated first (``${NOMAD_PORT_http}`` and the like)."""
    services = list(task.Services or ())
    tasks = list(tg.Tasks or ()) if tg is not None else []
    owner = next((t for t in tasks if t.Leader), tasks[0] if tasks else None)
    if owner is not None and owner.Name == task.Name:
        services += list(tg.Services or ())
    if env is not None and node is not None:
        services = [interpolate_service(s, env, node) for s in services]
    return [(s, c) for s in services for c in s.Checks or ()]
