"""``caravan nodesim``: many simulated client nodes in one process, over the real gRPC
node protocol (``proto/node.proto``), so scheduling can be exercised and measured at
scale without running tasks.

    caravan nodesim -server HOST:PORT -count N [-cpu MHZ] [-memory MB] [-disk MB]
                    [-datacenter DC] [-class CLASS] [-drivers mock,docker,...]
                    [-network-mbits MBITS] [-reserved-ports 22,80] [-name-prefix nodesim]
                    [-host-volume NAME=PATH[:ro] ...]

``HOST:PORT`` is any server's RPC address; the simulator follows the leader when a
follower answers ``FAILED_PRECONDITION`` (trailing metadata ``leader``) and tries the
other servers (learned from ``Status.Peers``) when one is unreachable.

Each node gets fresh UUIDs every run (printed at registration), heartbeats at half the
TTL the server hands out, watches its allocations on a stream (a stale read from a
follower its node number picks), and reports a
new allocation "running" (every task running, with Received and Started events; its
deployment health after the group's ``MinHealthyTime``) and a stopped or evicted one
"complete" (tasks dead). An allocation updated in place into a new deployment has its
health reported again after ``MinHealthyTime``. A node's reports from one watch answer
go in one call; the leader batches calls further. SIGINT/SIGTERM stop it (exit 0) with
a summary; the nodes are not deregistered, so the servers mark them down after TTL
plus grace.

Tasks with driver ``mock`` honour the mock driver's config the way a client would for
health:

- ``start_error`` (a non-empty string): the task fails to start; the allocation is
  reported ``failed`` (a "Driver Failure" event with that error) and, in a
  deployment, unhealthy at once;
- ``nodesim_healthy`` (a simulator-only key, default true): ``false`` runs the task
  but reports the allocation unhealthy once ``HealthyDeadline`` passes, as a client
  whose health checks never pass would.

With the update strategy's ``HealthCheck = "manual"`` no health is reported: the
operator sets it (``/v1/deployment/allocation-health/:id``). A service allocation in
no deployment has its health reported after the group's ``migrate`` block's
``MinHealthyTime`` (default 10s), as a Nomad client does: the node drainer waits for it.
"""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import sys
import time
import uuid
from dataclasses import dataclass

import grpc
import msgspec

from caravan.client.clock import rfc3339
from caravan.client.conn import CALL_TIMEOUT, ServerConn
from caravan.client.volumes import HostVolumeFlagError, parse_host_volume_flag
from caravan.fsm.entries import AllocClientState
from caravan.fsm.structs import (
    Allocation,
    AllocDeploymentStatus,
    ClientHostVolumeConfig,
    DriverInfo,
    NetworkResource,
    Node,
    NodeCpuResources,
    NodeDiskResources,
    NodeMemoryResources,
    NodeReservedNetworkResources,
    NodeReservedResources,
    NodeResources,
    TaskEvent,
    TaskState,
)
from caravan.proto import node_pb2 as pb

log = logging.getLogger("caravan.nodesim")

OS_SIGNALS = ("SIGABRT,SIGALRM,SIGBUS,SIGCHLD,SIGCONT,SIGFPE,SIGHUP,SIGILL,SIGINT,SIGIO,"
              "SIGIOT,SIGKILL,SIGPIPE,SIGPROF,SIGQUIT,SIGSEGV,SIGSTOP,SIGSYS,SIGTERM,SIGTRAP,"
              "SIGTSTP,SIGTTIN,SIGTTOU,SIGURG,SIGUSR1,SIGUSR2,SIGWINCH,SIGXCPU,SIGXFSZ")
REGISTER_CONCURRENCY = 64
NODES_PER_CHANNEL = 200      # blocking watches per HTTP/2 connection

_allocs_decoder = msgspec.json.Decoder(list[Allocation])
_json = msgspec.json.Encoder()


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="caravan nodesim",
                                description="Register N simulated nodes and keep them "
                                            "heartbeating until stopped.")
    p.add_argument("-server", "--server", required=True, metavar="HOST:PORT",
                   help="a server's RPC (gRPC) address")
    p.add_argument("-count", "--count", type=int, default=1, help="how many nodes")
    p.add_argument("-cpu", "--cpu", type=int, default=4000, metavar="MHZ",
                   help="CPU of each node, MHz in total (default 4000)")
    p.add_argument("-memory", "--memory", type=int, default=8192, metavar="MB")
    p.add_argument("-disk", "--disk", type=int, default=100000, metavar="MB")
    p.add_argument("-datacenter", "--datacenter", default="dc1",
                   help="the nodes' datacenter; a comma-separated list deals them out in turn")
    p.add_argument("-class", "--class", dest="node_class", default="")
    p.add_argument("-meta", "--meta", action="append", default=[], metavar="KEY=VALUE",
                   type=_meta_pair, help="node metadata (repeatable), for constraints, "
                   "affinities and spreads on ${meta.KEY}")
    p.add_argument("-drivers", "--drivers", default="mock",
                   help="comma-separated driver names (default mock)")
    p.add_argument("-network-mbits", "--network-mbits", type=int, default=1000)
    p.add_argument("-reserved-ports", "--reserved-ports", default="",
                   help='host ports reserved on each node, e.g. "22,8000-8100"')
    p.add_argument("-name-prefix", "--name-prefix", default="nodesim")
    p.add_argument("-host-volume", "--host-volume", action="append", default=[],
                   metavar="NAME=PATH[:ro]",
                   help="a host volume every node advertises (read-only with :ro); "
                        "repeatable. Nothing is mounted: tasks do not run")
    p.add_argument("-watch-wait", "--watch-wait", type=float, default=60.0,
                   help="seconds one blocking allocation watch may wait")
    p.add_argument("-log-level", "--log-level", default="WARNING")
    return p


def _meta_pair(text: str) -> tuple[str, str]:
    key, sep, value = text.partition("=")
    if not sep or not key:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    return key, value


def _datacenter(i: int, args) -> str:
    names = [d.strip() for d in args.datacenter.split(",") if d.strip()] or ["dc1"]
    return names[i % len(names)]


def build_node(i: int, args) -> Node:
    """The registration of simulated node ``i``: fresh ids, fingerprint-like attributes."""
    name = f"{args.name_prefix}-{i}"
    drivers = [d.strip() for d in args.drivers.split(",") if d.strip()]
    cores = max(1, args.cpu // 1000)
    now = rfc3339()
    attributes = {
        "kernel.name": "linux", "kernel.version": "6.1.0", "os.name": "caravan-nodesim",
        "os.signals": OS_SIGNALS, "arch": "amd64", "cpu.arch": "amd64",
        "cpu.numcores": str(cores), "cpu.frequency": str(args.cpu // cores),
        "cpu.totalcompute": str(args.cpu), "cpu.modelname": "simulated",
        "memory.totalbytes": str(args.memory * 1024 * 1024),
        "unique.hostname": name, "unique.network.ip-address": "127.0.0.1",
        "unique.storage.bytestotal": str(args.disk * 1024 * 1024),
        "unique.storage.volume": "/dev/sim",
        "nomad.version": "0.6.0", "nomad.simulated": "true",
    }
    for d in drivers:
        attributes[f"driver.{d}"] = "1"
    return Node(
        ID=str(uuid.uuid4()), SecretID=str(uuid.uuid4()), Datacenter=_datacenter(i, args),
        Name=name, HTTPAddr="127.0.0.1:4646", Attributes=attributes,
        NodeResources=NodeResources(
            Cpu=NodeCpuResources(CpuShares=args.cpu, TotalCpuCores=cores),
            Memory=NodeMemoryResources(MemoryMB=args.memory),
            Disk=NodeDiskResources(DiskMB=args.disk),
            Networks=[NetworkResource(Mode="host", Device="eth0", CIDR="127.0.0.1/32",
                                      IP="127.0.0.1", MBits=args.network_mbits)]),
        ReservedResources=NodeReservedResources(
            Networks=NodeReservedNetworkResources(ReservedHostPorts=args.reserved_ports)),
        Meta={"simulated": "true", **dict(args.meta)}, NodeClass=args.node_class,
        Status="initializing",
        Drivers={d: DriverInfo(Detected=True, Healthy=True, HealthDescription="Healthy",
                               UpdateTime=now, Attributes={f"driver.{d}": "1"})
                 for d in drivers},
        HostVolumes=host_volumes(getattr(args, "host_volume", None) or []))


def host_volumes(flags: list[str]) -> dict[str, ClientHostVolumeConfig] | None:
    """``-host-volume name=/path[:ro]`` flags as a node's HostVolumes."""
    out = {}
    for text in flags:
        name, vol = parse_host_volume_flag(text)
        out[name] = ClientHostVolumeConfig(Name=name, Path=vol["path"],
                                           ReadOnly=vol["read_only"])
    return out or None


# --- task states ----------------------------------------------------------------------------


def _tasks_of(alloc: Allocation) -> list[str]:
    job = alloc.Job
    if job is not None:
        for tg in job.TaskGroups or ():
            if tg.Name == alloc.TaskGroup:
                return [task.Name for task in tg.Tasks or ()]
    return sorted(alloc.TaskResources or {})


def _update_strategy(alloc: Allocation):
    job = alloc.Job
    if job is None:
        return None
    update = None
    for tg in job.TaskGroups or ():
        if tg.Name == alloc.TaskGroup:
            update = tg.Update
    return update or job.Update


MIGRATE_MIN_HEALTHY_NS = 10_000_000_000       # Nomad's DefaultMigrateStrategy
MIGRATE_HEALTHY_DEADLINE_NS = 300_000_000_000


def _migrate_strategy(alloc: Allocation) -> dict:
    job = alloc.Job
    for tg in (job.TaskGroups or ()) if job is not None else ():
        if tg.Name == alloc.TaskGroup and isinstance(tg.Migrate, dict):
            return tg.Migrate
    return {}


def _health_wait_seconds(alloc: Allocation) -> float:
    """When a client knows the allocation's health: healthy after MinHealthyTime,
    unhealthy when HealthyDeadline passes; the update strategy's in a deployment, else
    the group's ``migrate`` block's (Nomad's defaults 10s and 5m)."""
    healthy = reports_healthy(alloc)
    if not alloc.DeploymentID:
        m = _migrate_strategy(alloc)
        wait = m.get("MinHealthyTime", MIGRATE_MIN_HEALTHY_NS) if healthy else \
            m.get("HealthyDeadline", MIGRATE_HEALTHY_DEADLINE_NS)
        return (wait if isinstance(wait, int) else 0) / 1e9
    update = _update_strategy(alloc)
    if update is None:
        return 0.0
    wait = update.MinHealthyTime if healthy else update.HealthyDeadline
    return (wait or 0) / 1e9


def _health_reported(alloc: Allocation) -> bool:
    """A client reports deployment health unless the operator sets it (``manual``); out
    of a deployment it reports a service allocation's health for migrations (Nomad's
    health watcher with the ``migrate`` block), which the node drainer waits for."""
    if not alloc.DeploymentID:
        return alloc.Job is not None and alloc.Job.Type == "service"
    update = _update_strategy(alloc)
    return not (update is not None and update.HealthCheck == "manual")


def _mock_configs(alloc: Allocation) -> list[dict]:
    job = alloc.Job
    for tg in (job.TaskGroups or ()) if job is not None else ():
        if tg.Name == alloc.TaskGroup:
            return [task.Config or {} for task in tg.Tasks or () if task.Driver == "mock"]
    return []


def start_error(alloc: Allocation) -> str:
    """The mock driver's ``start_error`` of the first task that has one, or ""."""
    return next((str(c["start_error"]) for c in _mock_configs(alloc) if c.get("start_error")), "")


def reports_healthy(alloc: Allocation) -> bool:
    """False when a mock task says ``nodesim_healthy = false``."""
    return not any(c.get("nodesim_healthy") in (False, "false") for c in _mock_configs(alloc))


def failed_update(alloc: Allocation, error: str) -> AllocClientState:
    now = time.time_ns()
    stamp = rfc3339(now)
    states = {name: TaskState(State="dead", Failed=True, StartedAt=stamp, FinishedAt=stamp, Events=[
        TaskEvent(Type="Received", Time=now, Message="Task received by client",
                  DisplayMessage="Task received by client"),
        TaskEvent(Type="Driver Failure", Time=now, FailsTask=True, DriverError=error,
                  DisplayMessage=f"Failed to start task: {error}")]) for name in _tasks_of(alloc)}
    return AllocClientState(
        AllocID=alloc.ID, ClientStatus="failed", ClientDescription="Failed tasks",
        TaskStates=states, ModifyTime=now,
        DeploymentStatus=AllocDeploymentStatus(Healthy=False, Timestamp=stamp)
        if alloc.DeploymentID else None)


def running_update(alloc: Allocation, healthy: bool | None) -> AllocClientState:
    """Tasks running; ``healthy`` None leaves the deployment health unreported."""
    now = time.time_ns()
    started = rfc3339(now)
    states = {name: TaskState(State="running", StartedAt=started, Events=[
        TaskEvent(Type="Received", Time=now, Message="Task received by client",
                  DisplayMessage="Task received by client"),
        TaskEvent(Type="Started", Time=now, Message="Task started by client",
                  DisplayMessage="Task started by client")]) for name in _tasks_of(alloc)}
    return AllocClientState(
        AllocID=alloc.ID, ClientStatus="running", ClientDescription="Tasks are running",
        TaskStates=states, ModifyTime=now,
        DeploymentStatus=AllocDeploymentStatus(Healthy=healthy, Timestamp=started)
        if healthy is not None else None)


def complete_update(alloc: Allocation) -> AllocClientState:
    now = time.time_ns()
    finished = rfc3339(now)
    states = {}
    for name in _tasks_of(alloc):
        old = (alloc.TaskStates or {}).get(name)
        events = list(old.Events or ()) if old is not None else []
        events.append(TaskEvent(Type="Killed", Time=now, Message="Task successfully killed",
                                DisplayMessage="Task successfully killed"))
        states[name] = TaskState(State="dead", StartedAt=old.StartedAt if old else finished,
                                 FinishedAt=finished, Events=events,
                                 Restarts=old.Restarts if old else 0)
    return AllocClientState(AllocID=alloc.ID, ClientStatus="complete",
                            ClientDescription="All tasks have completed", TaskStates=states,
                            ModifyTime=now)


# --- the connection to the cluster -------------------------------------------------------------


@dataclass
class Stats:
    registered: int = 0
    heartbeats: int = 0
    started: int = 0
    stopped: int = 0
    healthy: int = 0
    update_calls: int = 0
    errors: int = 0


# --- one simulated node ----------------------------------------------------------------------------


class SimNode:
    def __init__(self, index: int, node: Node, cluster: ServerConn, stats: Stats,
                 watch_wait: float):
        self.index = index
        self.node = node
        self.cluster = cluster
        self.stats = stats
        self.watch_wait = watch_wait
        self.shard = index // NODES_PER_CHANNEL
        self.ttl = 10.0
        self.reported: dict[str, str] = {}     # alloc id -> status this node reported
        self.health_for: dict[str, str] = {}   # alloc id -> deployment its health is for
        self._health_tasks: set[asyncio.Task] = set()

    async def register(self) -> None:
        resp = await self.cluster.call("Register", pb.RegisterRequest(
            node_json=_json.encode(self.node)), self.shard)
        self.ttl = max(resp.heartbeat_ttl_ms / 1000.0, 0.1)

    async def run(self, registered: asyncio.Semaphore, total: int) -> None:
        async with registered:
            await self.register()
        self.stats.registered += 1
        print(f"nodesim: registered node {self.index + 1}/{total} {self.node.ID} "
              f"name={self.node.Name} dc={self.node.Datacenter} ttl={self.ttl:.1f}s",
              flush=True)
        await asyncio.gather(self._heartbeats(), self._watch())

    async def _heartbeats(self) -> None:
        while True:
            await asyncio.sleep(self.ttl / 2)
            try:
                resp = await self.cluster.call("Heartbeat", pb.HeartbeatRequest(
                    node_id=self.node.ID, secret_id=self.node.SecretID), self.shard)
                self.ttl = max(resp.heartbeat_ttl_ms / 1000.0, 0.1)
                self.stats.heartbeats += 1
            except grpc.aio.AioRpcError as err:
                self.stats.errors += 1
                if err.code() == grpc.StatusCode.NOT_FOUND:   # the servers forgot it
                    log.warning("node %s unknown to the servers; registering again",
                                self.node.ID)
                    try:
                        await self.register()
                    except grpc.aio.AioRpcError as again:
                        log.warning("node %s: registering again failed: %s", self.node.ID,
                                    again.details())
                else:
                    log.warning("node %s heartbeat failed: %s", self.node.ID, err.details())

    async def _watch(self) -> None:
        index = 0
        while True:   # a stream lasts watch_wait; the next one starts at the last index
            try:
                async for resp in self.cluster.read_stream("StreamAllocations", pb.WatchRequest(
                        node_id=self.node.ID, secret_id=self.node.SecretID, min_index=index,
                        wait_ms=int(self.watch_wait * 1000)), key=self.index, shard=self.shard,
                        timeout=self.watch_wait + CALL_TIMEOUT):
                    index = resp.index
                    await self._handle(_allocs_decoder.decode(resp.allocs_json))
            except grpc.aio.AioRpcError as err:
                self.stats.errors += 1
                log.warning("node %s watch failed: %s", self.node.ID, err.details())
                await asyncio.sleep(1.0)

    async def _handle(self, allocs: list[Allocation]) -> None:
        updates, started, stopped, healthy_later = [], 0, 0, []
        for alloc in allocs:
            seen = self.reported.get(alloc.ID)
            if alloc.DesiredStatus in ("stop", "evict"):
                if seen != "complete" and alloc.ClientStatus not in ("complete", "failed", "lost"):
                    updates.append(complete_update(alloc))
                    self.reported[alloc.ID] = "complete"
                    stopped += 1
            elif alloc.DesiredStatus == "run" and seen is None and \
                    alloc.ClientStatus in ("", "pending"):
                error = start_error(alloc)
                if error:
                    updates.append(failed_update(alloc, error))
                    self.reported[alloc.ID] = "failed"
                    continue
                wait = _health_wait_seconds(alloc)
                report_now = _health_reported(alloc) and wait <= 0
                updates.append(running_update(alloc, reports_healthy(alloc) if report_now else None))
                self.reported[alloc.ID] = "running"
                self.health_for[alloc.ID] = alloc.DeploymentID
                started += 1
                if _health_reported(alloc) and not report_now:
                    healthy_later.append((alloc, wait))
            elif alloc.DesiredStatus == "run" and seen == "running" and _health_reported(alloc) \
                    and self.health_for.get(alloc.ID) != alloc.DeploymentID:
                # updated in place into a new deployment: its health is checked again
                self.health_for[alloc.ID] = alloc.DeploymentID
                healthy_later.append((alloc, _health_wait_seconds(alloc)))
        if updates:
            if not await self._send(updates):   # let the next watch answer retry them
                for u in updates:
                    self.reported.pop(u.AllocID, None)
                    self.health_for.pop(u.AllocID, None)
                return
            self.stats.started += started
            self.stats.stopped += stopped
            self.stats.healthy += sum(1 for u in updates if u.DeploymentStatus is not None
                                      and u.DeploymentStatus.Healthy)
        for alloc, wait in healthy_later:
            task = asyncio.ensure_future(self._health_after(alloc, wait))
            self._health_tasks.add(task)
            task.add_done_callback(self._health_tasks.discard)

    async def _health_after(self, alloc: Allocation, wait: float) -> None:
        await asyncio.sleep(wait)
        if self.reported.get(alloc.ID) != "running":
            return
        now = time.time_ns()
        healthy = reports_healthy(alloc)
        update = AllocClientState(
            AllocID=alloc.ID, ClientStatus="running", ClientDescription="Tasks are running",
            ModifyTime=now,
            DeploymentStatus=AllocDeploymentStatus(Healthy=healthy, Timestamp=rfc3339(now)))
        if await self._send([update]) and healthy:
            self.stats.healthy += 1

    async def _send(self, updates: list[AllocClientState]) -> bool:
        try:
            await self.cluster.call("UpdateAllocations", pb.UpdateRequest(
                node_id=self.node.ID, secret_id=self.node.SecretID,
                updates_json=_json.encode(updates)), self.shard)
        except grpc.aio.AioRpcError as err:
            self.stats.errors += 1
            log.warning("node %s: reporting %d allocations failed: %s", self.node.ID,
                        len(updates), err.details())
            return False
        self.stats.update_calls += 1
        return True


# --- the command ------------------------------------------------------------------------------------


async def run(args) -> int:
    stats = Stats()
    cluster = ServerConn(args.server)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    started = time.monotonic()
    await cluster.discover()
    nodes = [SimNode(i, build_node(i, args), cluster, stats, args.watch_wait)
             for i in range(args.count)]
    registering = asyncio.Semaphore(REGISTER_CONCURRENCY)
    tasks = [asyncio.ensure_future(n.run(registering, len(nodes))) for n in nodes]
    stopper = asyncio.ensure_future(stop.wait())
    status = 0
    try:
        pending = set(tasks) | {stopper}
        while not stop.is_set():
            done, pending = await asyncio.wait(pending, return_when=asyncio.FIRST_COMPLETED)
            for task in done:
                if task is stopper or task.cancelled():
                    continue
                exc = task.exception()
                if exc is not None:
                    node = nodes[tasks.index(task)]
                    print(f"nodesim: node {node.node.ID} stopped: {exc}", file=sys.stderr,
                          flush=True)
                    stats.errors += 1
            if pending == {stopper}:
                status = 1   # every node failed
                break
    finally:
        for task in tasks + [stopper]:
            task.cancel()
        for n in nodes:
            for task in list(n._health_tasks):
                task.cancel()
        await asyncio.gather(*tasks, stopper, return_exceptions=True)
        await cluster.close()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)
    elapsed = time.monotonic() - started
    print(f"nodesim: stopped after {elapsed:.1f}s: {stats.registered}/{len(nodes)} nodes "
          f"registered, {stats.heartbeats} heartbeats, {stats.started} allocations started, "
          f"{stats.stopped} stopped, {stats.healthy} reported healthy, "
          f"{stats.update_calls} update calls, {cluster.leader_switches} leader switches, "
          f"{stats.errors} errors", flush=True)
    return status


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(sys.argv[1:] if argv is None else argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    if args.count < 1:
        print("caravan nodesim: -count must be at least 1", file=sys.stderr)
        return 2
    for flag in ("cpu", "memory", "disk"):
        if getattr(args, flag) <= 0:
            print(f"caravan nodesim: -{flag} must be positive", file=sys.stderr)
            return 2
    try:
        host_volumes(args.host_volume)
    except HostVolumeFlagError as exc:
        print(f"caravan nodesim: {exc}", file=sys.stderr)
        return 2
    try:
        import uvloop
    except ImportError:
        return asyncio.run(run(args))
    return uvloop.run(run(args))


if __name__ == "__main__":
    sys.exit(main())
