"""The client agent: one node's registration, heartbeats, allocation watch, allocation
runners and batched status reports.

The servers are reached through ``ServerConn`` (any server; it follows the leader and
fails over). The watch is a blocking query; a server failover only moves it to another
server, so running tasks are never restarted by it. Reports are coalesced per
allocation and sent at most every ``REPORT_INTERVAL`` in one call; the leader batches
calls further into one log entry.
"""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import socket
import time
import zlib
from dataclasses import dataclass, field

import grpc
import msgspec
from msgspec.structs import replace

from caravan.client import fingerprint
from caravan.client.alloc_runner import AllocRunner
from caravan.client.clock import rfc3339
from caravan.client.conn import CALL_TIMEOUT, ServerConn
from caravan.client.drivers import available_drivers
from caravan.client.state import ProcessRecord, node_identity
from caravan.client.task_runner import event
from caravan.fsm.entries import AllocClientState
from caravan.fsm.structs import Allocation
from caravan.proto import node_pb2 as pb

log = logging.getLogger("caravan.client")

REPORT_INTERVAL = 0.2          # Nomad's client batches alloc updates every 200 ms
WATCH_WAIT = 60.0
_allocs_decoder = msgspec.json.Decoder(list[Allocation])
_json = msgspec.json.Encoder()


@dataclass
class ClientSettings:
    name: str
    servers: list[str]                       # RPC addresses of the servers
    data_dir: str
    http_addr: str                           # where this client serves its logs
    region: str = "global"
    datacenter: str = "dc1"
    node_class: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    raw_exec: bool = False
    reserved: dict = field(default_factory=dict)   # cpu, memory, disk, reserved_ports
    cpu_total_compute: int = 0
    memory_total_mb: int = 0
    network_mbits: int = 1000
    # host volumes offered to tasks: name -> {"path": absolute dir, "read_only": bool}
    host_volumes: dict = field(default_factory=dict)


@dataclass
class ReportStats:
    calls: int = 0
    updates: int = 0
    largest: int = 0


class ClientAgent:
    def __init__(self, settings: ClientSettings):
        self.settings = settings
        self.state_dir = os.path.join(settings.data_dir, "client")
        self.alloc_dir = os.path.join(settings.data_dir, "alloc")
        os.makedirs(self.state_dir, exist_ok=True)
        os.makedirs(self.alloc_dir, exist_ok=True)
        self.conn = ServerConn(settings.servers)
        self.processes = ProcessRecord(self.state_dir)
        self.runners: dict[str, AllocRunner] = {}
        self._swept_for: set[str] | None = None   # the allocation set last swept against
        self.node = None
        self.ttl = 10.0
        self.stats = ReportStats()
        self.registered = asyncio.Event()
        self._pending: dict[str, AllocClientState] = {}
        self._wake = asyncio.Event()
        self._closing = False
        self._tasks: list[asyncio.Task] = []

    # --- start and stop ---------------------------------------------------------------------

    def _build_node(self):
        s = self.settings
        node_id, secret = node_identity(self.state_dir)
        self.drivers, infos = available_drivers(raw_exec=s.raw_exec)
        return fingerprint.build_node(
            node_id=node_id, secret_id=secret, name=s.name, datacenter=s.datacenter,
            node_class=s.node_class, meta=s.meta, data_dir=s.data_dir,
            server_addr=s.servers[0], http_addr=s.http_addr, drivers=infos,
            reserved=s.reserved, cpu_total_compute=s.cpu_total_compute,
            memory_total_mb=s.memory_total_mb, network_mbits=s.network_mbits,
            host_volumes=fingerprint.host_volumes(s.host_volumes))

    async def start(self) -> None:
        """Fingerprint, register (retrying until a server answers), then run the
        heartbeat, watch and report loops in the background."""
        leftovers = self.processes.kill_leftovers()
        if leftovers:
            log.warning("killed %d task process groups left by a previous run", leftovers)
        self.node = self._build_node()
        self._server_key = zlib.crc32(self.node.ID.encode())   # picks the follower it watches
        await self.conn.discover()
        await self._register()
        print(f"caravan: client {self.settings.name!r}: node {self.node.ID} registered "
              f"(drivers: {', '.join(sorted(self.drivers))})", flush=True)
        self.registered.set()
        self._tasks = [asyncio.ensure_future(self._heartbeats()),
                       asyncio.ensure_future(self._watch()),
                       asyncio.ensure_future(self._reporter())]

    async def stop(self) -> None:
        """Stop the loops and the tasks. Nothing more is reported: the node stops
        heartbeating and the servers decide what becomes of its allocations."""
        self._closing = True
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(r.shutdown() for r in self.runners.values()),
                             return_exceptions=True)
        await self.conn.close()

    # --- registration and heartbeats --------------------------------------------------------

    async def _register(self) -> None:
        resp = await self.conn.call("Register", pb.RegisterRequest(
            node_json=_json.encode(self.node)))
        self.ttl = max(resp.heartbeat_ttl_ms / 1000.0, 0.1)

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 2)
            try:
                resp = await self.conn.call("Heartbeat", pb.HeartbeatRequest(
                    node_id=self.node.ID, secret_id=self.node.SecretID))
                self.ttl = max(resp.heartbeat_ttl_ms / 1000.0, 0.1)
            except grpc.aio.AioRpcError as err:
                if err.code() == grpc.StatusCode.NOT_FOUND:   # the servers forgot it
                    log.warning("node unknown to the servers; registering again")
                    try:
                        await self._register()
                    except grpc.aio.AioRpcError as again:
                        log.warning("registering again failed: %s", again.details())
                else:
                    log.warning("heartbeat failed: %s", err.details())

    # --- allocations ------------------------------------------------------------------------

    async def _watch(self) -> None:
        index = 0
        while True:
            try:
                resp = await self.conn.read_call("WatchAllocations", pb.WatchRequest(
                    node_id=self.node.ID, secret_id=self.node.SecretID, min_index=index,
                    wait_ms=int(WATCH_WAIT * 1000)), key=self._server_key,
                    timeout=WATCH_WAIT + CALL_TIMEOUT)
            except grpc.aio.AioRpcError as err:
                log.warning("allocation watch failed: %s", err.details())
                await asyncio.sleep(1.0)
                continue
            index = resp.index
            for alloc in _allocs_decoder.decode(resp.allocs_json):
                self._handle(alloc)
            present = set(resp.alloc_ids)
            for alloc_id in [a for a in self.runners if a not in present]:
                runner = self.runners.pop(alloc_id)   # collected by the servers
                asyncio.ensure_future(runner.destroy())
            if present != self._swept_for:
                self._swept_for = present
                await self._sweep(present)

    async def _sweep(self, present: set[str]) -> None:
        """Remove the directories of allocations the servers no longer hold for this node
        and nothing here runs. A running agent removes an allocation's directory when the
        servers collect it; one that was down then (or restarted since it ran it) would
        otherwise keep it forever."""
        try:
            names = os.listdir(self.alloc_dir)
        except OSError:
            return
        stale = [os.path.join(self.alloc_dir, n) for n in names
                 if n not in present and n not in self.runners]
        if stale:
            log.info("removing %d allocation directories the servers no longer hold",
                     len(stale))
            await asyncio.to_thread(_remove_all, stale)

    def _handle(self, alloc: Allocation) -> None:
        runner = self.runners.get(alloc.ID)
        if runner is not None:
            runner.update(alloc)
            return
        if alloc.DesiredStatus == "run" and alloc.ClientStatus in ("", "pending", "running"):
            runner = AllocRunner(alloc, alloc_dir=self.alloc_dir, node=self.node,
                                 drivers=self.drivers, region=self.settings.region,
                                 report=self.report, on_pid=self.processes.set)
            self.runners[alloc.ID] = runner
            runner.start()
        elif alloc.DesiredStatus in ("stop", "evict") and \
                alloc.ClientStatus in ("pending", "running"):
            # it ran here before this agent restarted; nothing runs it now
            self.report(_stopped(alloc))

    def report(self, update: AllocClientState) -> None:
        if self._closing:
            return
        self._pending[update.AllocID] = update
        self._wake.set()

    async def _reporter(self) -> None:
        while True:
            await self._wake.wait()
            await asyncio.sleep(REPORT_INTERVAL)
            self._wake.clear()
            batch = list(self._pending.values())
            self._pending.clear()
            if not batch:
                continue
            try:
                await self.conn.call("UpdateAllocations", pb.UpdateRequest(
                    node_id=self.node.ID, secret_id=self.node.SecretID,
                    updates_json=_json.encode(batch)))
            except grpc.aio.AioRpcError as err:
                log.warning("reporting %d allocation updates failed: %s", len(batch),
                            err.details())
                for u in batch:   # retry, unless a newer state has come meanwhile
                    self._pending.setdefault(u.AllocID, u)
                self._wake.set()
                await asyncio.sleep(1.0)
                continue
            self.stats.calls += 1
            self.stats.updates += len(batch)
            self.stats.largest = max(self.stats.largest, len(batch))


def _stopped(alloc: Allocation) -> AllocClientState:
    now = time.time_ns()
    states = {}
    for name, st in (alloc.TaskStates or {}).items():
        states[name] = replace(st, State="dead", FinishedAt=rfc3339(now),
                               Events=[*(st.Events or ()), event("Killed",
                                                                 "Task successfully killed")])
    return AllocClientState(AllocID=alloc.ID, ClientStatus="complete",
                            ClientDescription="All tasks have completed",
                            TaskStates=states or None, ModifyTime=now)


def default_name() -> str:
    return socket.gethostname()


def _remove_all(paths: list[str]) -> None:
    for path in paths:
        shutil.rmtree(path, ignore_errors=True)
