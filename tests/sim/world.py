"""One simulated Caravan cluster on virtual time, driven by one seed.

What is real: the FSM and its store, the leader services (eval feeder, broker, workers
planning with ``scheduler.generic.compute_plan``, plan applier, blocked-eval unblocker,
heartbeat tracker), the node RPC service's register / heartbeat / watch / update
handlers, and the gateway's checks and entry builders (``server.entries``).
What is simulated: the log below them (``tests.sim.memlog``), the client agents
(``SimNode``: start, run, finish and stop allocations, and die for a while), the HTTP
clients (``Client``: register, update, stop, scale, alloc stop, dispatch), and a nemesis
that changes
leaders, crashes and restarts servers and kills nodes.

Every random choice comes from a ``random.Random`` derived from the seed, every clock
from the virtual-time loop, and every id from ``server.ids`` reseeded by the seed, so a
seed replays exactly: the trace of events (``World.trace``) hashes the same.
"""
from __future__ import annotations

import asyncio
import collections
import hashlib
import logging
import random
from dataclasses import dataclass, field

import msgspec

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.entries import AllocClientState
from caravan.fsm.ids import uuid4_from
from caravan.fsm.jobs import dispatch_rejection
from caravan.fsm.store import state_hash
from caravan.fsm.structs import (
    Allocation,
    AllocDeploymentStatus,
    ClientHostVolumeConfig,
    DriverInfo,
    Job,
    NetworkResource,
    Node,
    NodeCpuResources,
    NodeDiskResources,
    NodeMemoryResources,
    NodeReservedNetworkResources,
    NodeReservedResources,
    NodeResources,
)
from caravan.fsm.submit import Applied, EntryRejected, Submitter
from caravan.fsm.times import format_rfc3339
from caravan.proto import node_pb2 as pb
from caravan.scheduler.core_gc import CoreGarbageCollector, Thresholds
from caravan.scheduler.drainer import NodeDrainer
from caravan.server import ids
from caravan.server.entries import allocs as alloc_entries
from caravan.server.entries import jobs as job_entries
from caravan.server.entries import nodes as node_entries
from caravan.server.entries import scale as scale_entries
from caravan.server.errors import ApiError
from caravan.server.heartbeats import HeartbeatTracker
from caravan.server.leader import LeaderServices, begin_leadership
from caravan.server.notify import Notifier
from caravan.server.raft import ApplyTimeout, NoLeaderError
from caravan.server.rpc.node import NodeService
from tests.sim.invariants import SameStateHashes, StateChecks
from tests.sim.memlog import InvariantViolation, MemRaft, Replica
from tests.sim.vloop import Deadlock, VirtualTimeLoop

DATACENTERS = ("dc1", "dc2")
RACKS = ("r1", "r2", "r3")
_SEC = 1_000_000_000
WALL_ORIGIN = 1_767_225_600.0    # the virtual wall clock starts at 2026-01-01T00:00:00Z
HEARTBEAT_TTL = 2.0
HEARTBEAT_GRACE = 2.0
# The core garbage collector runs every few virtual seconds with thresholds short
# enough that runs collect evals, allocations, stopped jobs and finished dispatched
# children while the workload goes on. Nodes are kept: a SimNode does not register
# again after the servers forgot it (real clients and nodesim do).
GC_INTERVAL = 2.0
GC_THRESHOLDS = Thresholds(eval_ns=3 * 10**9, job_ns=5 * 10**9, deployment_ns=3 * 10**9,
                           node_ns=3600 * 10**9)
_json = msgspec.json.Encoder()


@dataclass(frozen=True)
class SimConfig:
    servers: int = 3
    nodes: int = 5
    clients: int = 2
    duration: float = 20.0        # virtual seconds of workload and faults
    settle: float = 10.0          # virtual seconds to converge after healing
    op_gap: float = 0.8           # mean seconds between one client's operations
    fault_gap: float = 2.0        # mean seconds between faults


class SimFailure(Exception):
    """A seed broke an invariant (or crashed the simulation); carries the seed and the
    last trace lines."""


# --- a server ----------------------------------------------------------------------------------


class SimServer:
    """What ``server.agent.Agent`` is to the services: a ``server.context.ServiceContext``
    (``fsm``, ``raft``, ``submit``, ``notifier``, ``leader_rpc()``, ``new_id()``); rebuilt from scratch
    on every (re)start of its replica."""

    def __init__(self, world: World, replica: Replica):
        self.world = world
        self.raft = replica
        self.submit = Submitter(replica.submit, ids.request_id)
        self.name = replica.name
        self.notifier: Notifier | None = None
        self.leader_services: LeaderServices | None = None
        self.heartbeats: HeartbeatTracker | None = None
        self.node_service: NodeService | None = None
        self._leadership_task: asyncio.Task | None = None
        replica.on_boot = self._booted
        replica.on_leadership = self._on_leadership

    @property
    def fsm(self):
        return self.raft.fsm

    @property
    def up(self) -> bool:
        return self.raft.up

    def leader_rpc(self) -> str:
        return self.raft.leader() or ""

    def new_id(self) -> str:
        return ids.uuid4_str()   # reseeded by the seed: a run replays its ids

    def _booted(self, replica: Replica) -> None:
        loop = asyncio.get_running_loop()
        w = self.world
        self.notifier = Notifier(loop)
        replica.fsm.on_commit = self.notifier.notify_threadsafe
        self.leader_services = LeaderServices(self, workers=2, now_ns=w.now_ns)
        self.heartbeats = HeartbeatTracker(
            self, ttl=HEARTBEAT_TTL, grace=HEARTBEAT_GRACE, clock=loop.time,
            wall_clock=w.now, rng=w.rng_for(f"heartbeats/{self.name}/{replica.incarnation}"))
        self.leader_services.add(self.heartbeats)
        self.leader_services.add(NodeDrainer(
            lambda: replica.fsm.state, self.submit, lambda: self.notifier, w.now_ns,
            ids.uuid4_str))
        self.leader_services.add(CoreGarbageCollector(
            lambda: replica.fsm.state, self.submit, w.now_ns,
            interval=GC_INTERVAL, thresholds=GC_THRESHOLDS))
        self.node_service = NodeService(self, self.heartbeats, clock=w.now)
        self._leadership_task = None

    def _on_leadership(self, leading: bool) -> None:
        previous = self._leadership_task
        self._leadership_task = asyncio.ensure_future(self._switch(leading, previous,
                                                                   self.leader_services))

    async def _switch(self, leading: bool, previous, services: LeaderServices) -> None:
        """``Agent._switch_leadership``: services start only after the new leader's
        LEADER_EPOCH entry has been applied here (``begin_leadership``)."""
        if previous is not None:
            await asyncio.wait([previous])    # whatever its outcome; never raises
        if leading:
            if services is not self.leader_services:
                return
            if await begin_leadership(self.raft, self.submit, services):
                self.world.trace(f"{self.name} leader services started")
            else:
                self.world.trace(f"{self.name} leader epoch not committed")
        else:
            await services.stop()

    async def crash(self) -> None:
        """The process dies: its services run nothing more."""
        services, task = self.leader_services, self._leadership_task
        self.raft.crash()
        if task is not None:
            task.cancel()
        await services.stop()


# --- a client agent ------------------------------------------------------------------------------


def sim_host_volumes(rng: random.Random) -> dict[str, ClientHostVolumeConfig] | None:
    """Half the nodes offer host volume "data", a third of those read-only."""
    if rng.random() < 0.5:
        return None
    return {"data": ClientHostVolumeConfig(Name="data", Path="/srv/data",
                                           ReadOnly=rng.random() < 1 / 3)}


class SimNode:
    """A client agent: registers, heartbeats, watches its allocations and reports them
    running (or failed: at random, and always for a task whose config has
    ``start_error``), finished (batch) and stopped. While dead it does nothing."""

    def __init__(self, world: World, i: int):
        self.world = world
        self.rng = world.rng_for(f"node/{i}")
        cpu = self.rng.choice((2000, 4000, 8000))
        mem = self.rng.choice((2048, 4096, 8192))
        # two datacenters and three racks, for the workload's affinities and spreads
        self.node = Node(
            ID=uuid4_from(self.rng), SecretID=uuid4_from(self.rng),
            Datacenter=self.rng.choice(DATACENTERS),
            Meta={"rack": self.rng.choice(RACKS)},
            Name=f"n{i}", Attributes={"kernel.name": "linux", "driver.mock": "1",
                                      "os.signals": "SIGHUP,SIGINT,SIGKILL"},
            NodeResources=NodeResources(
                Cpu=NodeCpuResources(CpuShares=cpu), Memory=NodeMemoryResources(MemoryMB=mem),
                Disk=NodeDiskResources(DiskMB=20_000),
                Networks=[NetworkResource(Mode="host", Device="eth0", CIDR="10.0.0.1/32",
                                          IP=f"10.0.0.{i + 1}", MBits=1000)]),
            ReservedResources=NodeReservedResources(
                Networks=NodeReservedNetworkResources(ReservedHostPorts="22,9000")),
            Drivers={"mock": DriverInfo(Detected=True, Healthy=True)}, Status="initializing",
            HostVolumes=sim_host_volumes(world.rng_for(f"node/{i}/volumes")))
        self.alive = True
        self.reported: dict[str, str] = {}     # alloc id -> the status we last reported

    def _ids(self):
        return {"node_id": self.node.ID, "secret_id": self.node.SecretID}

    async def run(self) -> None:
        w = self.world
        ttl = await self._until_ok(lambda s: s.node_service._register(pb.RegisterRequest(
            node_json=_json.encode(self.node))))
        w.trace(f"node {self.node.Name} registered")
        asyncio.ensure_future(self._watch())
        ttl = ttl.heartbeat_ttl_ms / 1000
        while True:
            await asyncio.sleep(ttl * self.rng.uniform(0.3, 0.7))
            if not self.alive:
                continue
            resp = await self._until_ok(
                lambda s: s.node_service._heartbeat(pb.HeartbeatRequest(**self._ids())),
                attempts=3)
            if resp is not None:
                ttl = resp.heartbeat_ttl_ms / 1000

    async def _until_ok(self, call, attempts: int | None = None):
        """Call the leader's node service, retrying on any refusal or failure."""
        n = 0
        while attempts is None or n < attempts:
            n += 1
            await asyncio.sleep(self.rng.uniform(0.001, 0.01))   # the network
            server = self.world.leader_server()
            if server is not None and self.alive:
                incarnation = server.raft.incarnation
                try:
                    resp = await call(server)
                except Exception as exc:
                    self.world.trace(f"node {self.node.Name} call failed: "
                                     f"{type(exc).__name__}")
                else:
                    if server.up and server.raft.incarnation == incarnation:
                        return resp
            await asyncio.sleep(self.rng.uniform(0.1, 0.5))
        return None

    async def _watch(self) -> None:
        w = self.world
        index = 0
        while True:
            server = self.rng.choice(w.servers)
            if not self.alive or not server.up:
                await asyncio.sleep(0.5)
                continue
            incarnation = server.raft.incarnation
            try:
                resp = await server.node_service._watch(pb.WatchRequest(
                    min_index=index, wait_ms=3000, **self._ids()))
            except Exception:
                await asyncio.sleep(0.5)
                continue
            if not server.up or server.raft.incarnation != incarnation or not self.alive:
                continue
            index = resp.index
            self._handle(server.fsm.state.by_index(t.ALLOCS, "node", self.node.ID))

    def _handle(self, allocs: list[Allocation]) -> None:
        for alloc in allocs:
            seen = self.reported.get(alloc.ID)
            if alloc.DesiredStatus in ("stop", "evict"):
                if alloc.ClientStatus in ("pending", "running") and seen != "complete":
                    self._report(alloc, "complete", 0.0)
            elif alloc.ClientStatus == "pending" and seen is None:
                status = "running" if self.rng.random() < 0.93 else "failed"
                if _start_error(alloc):
                    status = "failed"
                self._report(alloc, status, self.rng.uniform(0.05, 1.0))
            elif alloc.ClientStatus == "running" and seen == "running" and \
                    alloc.Job is not None and alloc.Job.Type == "batch":
                self._report(alloc, "complete", self.rng.uniform(1.0, 15.0))

    def _report(self, alloc: Allocation, status: str, after: float) -> None:
        self.reported[alloc.ID] = status
        service = alloc.Job is not None and alloc.Job.Type == "service"
        asyncio.ensure_future(self._send(alloc.ID, status, after, service))

    async def _send(self, alloc_id: str, status: str, after: float, service: bool) -> None:
        await asyncio.sleep(after)
        if self.reported.get(alloc_id) != status:
            return      # superseded meanwhile: a client reports an alloc's latest state only
        # a running service alloc is healthy at once (deployments and drains go on), a
        # failed one unhealthy (its deployment may allow its replacement)
        health = AllocDeploymentStatus(Healthy=status == "running", Timestamp=format_rfc3339(
            self.world.now_ns())) if status in ("running", "failed") and service else None
        update = AllocClientState(AllocID=alloc_id, ClientStatus=status,
                                  ModifyTime=self.world.now_ns(), DeploymentStatus=health)
        resp = await self._until_ok(lambda s: s.node_service._update(pb.UpdateRequest(
            updates_json=_json.encode([update]), **self._ids())), attempts=3)
        self.world.trace(f"node {self.node.Name} alloc {alloc_id[:8]} {status}: "
                         f"{'ok' if resp is not None else 'failed'}")
        if resp is None and self.reported.get(alloc_id) == status:
            del self.reported[alloc_id]     # the next watch answer retries it


def _start_error(alloc: Allocation) -> bool:
    job = alloc.Job
    tg = next((g for g in (job.TaskGroups or ()) if g.Name == alloc.TaskGroup), None) \
        if job is not None else None
    return tg is not None and any((task.Config or {}).get("start_error") for task in tg.Tasks or ())


# --- an HTTP client ----------------------------------------------------------------------------


class Client:
    """Writes jobs through random servers, building each entry as the gateway does."""

    PARENT = "batchy"

    def __init__(self, world: World, i: int):
        self.world = world
        self.i = i
        self.rng = world.rng_for(f"client/{i}")
        self.jobs: dict[str, dict] = {}
        self.n = 0
        self.ops = collections.Counter()

    def _spec(self, job_id: str) -> dict:
        rng = self.rng
        task = {"Name": "t", "Driver": "mock", "Config": {"run_for": "1h"},
                "Resources": {"CPU": rng.choice((100, 250, 500, 1000, 1500)),
                              "MemoryMB": rng.choice((64, 128, 256, 512, 1024))}}
        roll = rng.random()
        if roll < 0.3:
            task["Resources"]["Networks"] = [{"DynamicPorts": [{"Label": "http"}]}]
        elif roll < 0.4:
            port = rng.choice((8080, 8081, 9000))
            task["Resources"]["Networks"] = [{"ReservedPorts": [{"Label": "web",
                                                                 "Value": port}]}]
        if rng.random() < 0.1:
            # a system job, above the others' priority: it preempts where it does not fit
            task["Resources"] = {"CPU": rng.choice((100, 500, 1500)), "MemoryMB": 64}
            return {"ID": job_id, "Datacenters": list(DATACENTERS), "Type": "system",
                    "Priority": 70, "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [task]}]}
        group = {"Name": "g", "Count": rng.randint(1, 4), "Tasks": [task]}
        if rng.random() < 0.3:
            group["Scaling"] = {"Min": 0, "Max": 5, "Policy": {"cooldown": "1m"}}
        if 0.4 <= roll < 0.5:
            # a group network (Nomad >= 0.12): dynamic ports, one mapped to itself
            group["Networks"] = [{"Mode": "host", "DynamicPorts": [
                {"Label": "http"}, {"Label": "metrics", "To": -1}]}]
        elif 0.5 <= roll < 0.55:
            # a group network with a static port (once per node) beside a dynamic one
            group["Networks"] = [{"ReservedPorts": [{"Label": "admin",
                                                      "Value": rng.choice((8080, 8082))}],
                                  "DynamicPorts": [{"Label": "http", "To": 8000}]}]
        # reschedule policies and tasks that never start (their own random stream)
        rrng = self.world.rng_for(f"reschedule/{job_id}")
        if rrng.random() < 0.1:     # a task that never starts: rescheduled per its policy
            task["Config"]["start_error"] = "boom"
        rroll = rrng.random()
        if rroll < 0.35:            # retried forever, quickly
            group["ReschedulePolicy"] = {
                "Delay": 1 * _SEC, "MaxDelay": 4 * _SEC, "Unlimited": True,
                "DelayFunction": rrng.choice(("constant", "exponential", "fibonacci"))}
        elif rroll < 0.6:           # a few attempts in an interval
            group["ReschedulePolicy"] = {
                "Attempts": rrng.randint(1, 3), "Interval": 60 * _SEC, "Delay": 1 * _SEC,
                "DelayFunction": "constant", "Unlimited": False}
        # else the job type's defaults (service: from 30 s; batch: once after 5 s)
        spec = {"ID": job_id, "Datacenters": list(DATACENTERS),
                "Type": "batch" if rng.random() < 0.3 else "service",
                "Priority": rng.choice((30, 50, 50, 60)), "TaskGroups": [group]}
        roll = rng.random()
        if roll < 0.25:
            spec["Affinities"] = [{"LTarget": "${meta.rack}", "RTarget": rng.choice(RACKS),
                                   "Operand": rng.choice(("=", "!=")),
                                   "Weight": rng.choice((-80, -20, 30, 100))}]
        elif roll < 0.5:
            targets = [{"Value": "dc1", "Percent": rng.choice((50, 70, 100))}] \
                if rng.random() < 0.6 else None
            group["Spreads"] = [{
                "Attribute": rng.choice(("${node.datacenter}", "${meta.rack}")),
                "Weight": rng.choice((25, 50, 100)), "SpreadTarget": targets}]
        # some jobs need a host volume (their own random stream: the others' draws stay)
        vrng = self.world.rng_for(f"volumes/{job_id}")
        if vrng.random() < 0.2:
            group["Volumes"] = {
                "d": {"Type": "host", "Source": "data", "ReadOnly": vrng.random() < 0.5}}
            task["VolumeMounts"] = [{"Volume": "d", "Destination": "/data"}]
        return spec

    async def run(self, until: float) -> None:
        loop = asyncio.get_running_loop()
        if self.i == 0:
            await self._write("register-parent", self._register_parent)
        while loop.time() < until:
            await asyncio.sleep(self.rng.expovariate(1.0 / self.world.config.op_gap))
            roll = self.rng.random()
            mine = sorted(self.jobs)
            if roll < 0.35 or not mine:
                self.n += 1
                job_id = f"c{self.i}-j{self.n}"
                spec = self._spec(job_id)
                self.jobs[job_id] = spec
                op = ("register", lambda s, spec=spec: self._register(s, spec))
            elif roll < 0.65:
                spec = self.jobs[self.rng.choice(mine)]
                group = spec["TaskGroups"][0]
                if self.rng.random() < 0.5 and spec.get("Type") != "system":
                    group["Count"] = self.rng.randint(0, 5)
                else:
                    group["Tasks"][0]["Resources"]["CPU"] = self.rng.choice((100, 300, 700))
                op = ("update", lambda s, spec=spec: self._register(s, spec))
            elif roll < 0.75:
                job_id = self.rng.choice(mine)
                del self.jobs[job_id]
                op = ("stop", lambda s, job_id=job_id: self._stop(s, job_id))
            elif roll < 0.82:
                # system jobs are not scaled (their count is one per node)
                job_id = self.rng.choice([j for j in mine
                                          if self.jobs[j].get("Type") != "system"] or mine)
                count = self.rng.choice((None, 0, 1, 2, 3, 5, 6))
                if count is not None:
                    self.jobs[job_id]["TaskGroups"][0]["Count"] = count
                op = ("scale", lambda s, job_id=job_id, count=count: self._scale(s, job_id, count))
            elif roll < 0.86:
                op = ("alloc-stop", lambda s, job_id=self.rng.choice(mine): self._alloc_stop(s, job_id))  # noqa: B008
            elif roll < 0.91:
                op = ("dispatch", self._dispatch)
            elif roll < 0.94:
                op = ("drain", self._drain)
            else:
                op = ("undrain", self._undrain)
            # operations overlap: a slow write does not hold up the next one
            asyncio.ensure_future(self._write(*op))

    async def _write(self, what: str, call) -> None:
        w = self.world
        server = self.rng.choice([s for s in w.servers if s.up] or w.servers)
        await asyncio.sleep(self.rng.uniform(0.001, 0.01))     # the network
        if not server.up:
            self.ops[f"{what} unreachable"] += 1
            return
        try:
            detail = await call(server)
        except (ApiError, EntryRejected) as exc:
            outcome, detail = f"rejected {exc.code}", exc.message[:60]
        except Exception as exc:
            outcome, detail = f"failed {type(exc).__name__}", ""
        else:
            outcome = "ok"
        self.ops[f"{what} {outcome.split(' ')[0]}"] += 1
        w.trace(f"client {self.i} {what} via {server.name}: {outcome} {detail}")

    async def _submit(self, server: SimServer, body: e.Request) -> Applied:
        return await server.submit(body, hold=True)   # as server.http.job_writes.submit does

    async def _register_parent(self, server: SimServer) -> str:
        spec = self._spec(self.PARENT)
        spec.update(Type="batch", ParameterizedJob={"Payload": "optional"})
        return await self._register(server, spec)

    async def _register(self, server: SimServer, spec: dict) -> str:
        job = msgspec.convert(spec, Job)
        job_entries.check_job(job, "global", server.fsm.state.get(t.JOBS, job.ID))
        result = await self._submit(server, job_entries.register_entry(
            job, now_ns=self.world.now_ns()))
        return f"{job.ID} at {result['Index']}"

    async def _stop(self, server: SimServer, job_id: str) -> str:
        await server.raft.read_barrier()          # server.http.job_writes.deregister reads consistently
        job = server.fsm.state.get(t.JOBS, job_id)
        if job is None:
            return f"{job_id} unknown"
        result = await self._submit(server, job_entries.deregister_entry(
            job, purge=False, now_ns=self.world.now_ns()))
        return f"{job_id} at {result['Index']}"

    async def _scale(self, server: SimServer, job_id: str, count: int | None) -> str:
        body = {"Target": {"Group": "g"}, "Message": "sim"}
        if count is None:
            body["Error"] = True
        else:
            body["Count"] = count
        req = scale_entries.parse_scale_request(body, job_id)         # as the gateway does
        await server.raft.read_barrier()
        job = server.fsm.state.get(t.JOBS, job_id)
        if job is None:
            return f"{job_id} unknown"
        result = await self._submit(server, scale_entries.scale_entry(job, req, now_ns=self.world.now_ns()))
        return f"{job_id} to {count} at {result['Index']}"

    async def _alloc_stop(self, server: SimServer, job_id: str) -> str:
        await server.raft.read_barrier()
        live = sorted((a for a in server.fsm.state.by_index(t.ALLOCS, "job", job_id)
                       if not a.terminal()), key=lambda a: a.ID)
        if not live:
            return f"{job_id} has no live allocation"
        alloc = self.rng.choice(live)
        result = await self._submit(server, alloc_entries.stop_entry(
            alloc, False, now_ns=self.world.now_ns()))
        return f"{alloc.ID} at {result['Index']}"

    async def _drain(self, server: SimServer) -> str:
        """Drain a node (as ``PUT /v1/node/:id/drain``): no deadline, a short one, or
        forced at once; sometimes leaving system jobs; sometimes toggling eligibility."""
        await server.raft.read_barrier()
        state = server.fsm.state
        nodes = sorted(n.ID for n in state.rows(t.NODES))
        if not nodes:
            return "no nodes"
        node = state.get(t.NODES, self.rng.choice(nodes))
        if self.rng.random() < 0.3:
            node_entries.check_eligibility(node, "ineligible")
            if node.SchedulingEligibility == "ineligible":
                return f"{node.Name} already ineligible"
            body = node_entries.eligibility_entry(state, node, "ineligible", self.world.now_ns())
        else:
            deadline = self.rng.choice((0, 5_000_000_000, 30_000_000_000, -1))
            spec = node_entries.DrainSpec(Deadline=deadline,
                                         IgnoreSystemJobs=self.rng.random() < 0.3)
            body = node_entries.drain_entry(state, node, spec, False, {"by": f"client {self.i}"},
                                           self.world.now_ns())
        result = await self._submit(server, body)
        return f"{node.Name} at {result['Index']}"

    async def _undrain(self, server: SimServer) -> str:
        """Make an ineligible node eligible again: cancel its drain (MarkEligible) or
        set its eligibility."""
        await server.raft.read_barrier()
        state = server.fsm.state
        nodes = sorted(n.ID for n in state.rows(t.NODES) if n.SchedulingEligibility != "eligible")
        if not nodes:
            return "all eligible"
        node = state.get(t.NODES, self.rng.choice(nodes))
        if node.DrainStrategy is not None:
            body = node_entries.drain_entry(state, node, None, True, None, self.world.now_ns())
        else:
            node_entries.check_eligibility(node, "eligible")
            body = node_entries.eligibility_entry(state, node, "eligible", self.world.now_ns())
        result = await self._submit(server, body)
        return f"{node.Name} at {result['Index']}"

    async def _dispatch(self, server: SimServer) -> str:
        await server.raft.read_barrier()
        parent = server.fsm.state.get(t.JOBS, self.PARENT)
        rejection = dispatch_rejection(parent, self.PARENT, None, None)   # as the gateway
        if rejection is not None:
            raise ApiError(rejection.code, rejection.message)
        result = await self._submit(server, job_entries.dispatch_entry(
            parent, None, None, now_ns=self.world.now_ns()))
        return f"{result['DispatchedJobID']} at {result['Index']}"


# --- the world ---------------------------------------------------------------------------------


@dataclass
class Outcome:
    seed: int
    trace_hash: str
    entries: int
    virtual_seconds: float
    checks: int
    hash_compares: int
    stats: dict = field(default_factory=dict)


class World:
    def __init__(self, seed: int, config: SimConfig = SimConfig()):
        self.seed = seed
        self.config = config
        self.loop = VirtualTimeLoop()
        self._trace_hash = hashlib.sha256()
        self.recent: collections.deque[str] = collections.deque(maxlen=60)
        self.checks = StateChecks()
        self.hashes = SameStateHashes()
        self._checked_upto = 0
        self.raft = MemRaft(config.servers, self.rng_for("log"), self.trace,
                            on_apply=self._applied)
        self.servers = [SimServer(self, r) for r in self.raft.replicas]
        self.nodes = [SimNode(self, i) for i in range(config.nodes)]
        self.clients = [Client(self, i) for i in range(config.clients)]
        self.faults = collections.Counter()
        self.collected = collections.Counter()

    # --- determinism -----------------------------------------------------------------------------

    def rng_for(self, purpose: str) -> random.Random:
        return random.Random(f"{self.seed}/{purpose}")

    def now(self) -> float:
        return WALL_ORIGIN + self.loop.time()

    def now_ns(self) -> int:
        return int(WALL_ORIGIN * 1e9) + int(self.loop.time() * 1e9)

    def trace(self, line: str) -> None:
        line = f"{self.loop.time():.6f} {line}"
        self._trace_hash.update(line.encode())
        self._trace_hash.update(b"\n")
        self.recent.append(line)

    # --- invariants -------------------------------------------------------------------------------

    def _applied(self, replica: Replica, index: int) -> None:
        state = replica.fsm.state
        if index > self._checked_upto:
            self.checks.check(state)
            self._checked_upto = index
            blob = self.raft.log[index - 1]
            etype, body = e.decode(blob)
            if etype == e.EntryType.CORE_GC:
                self.collected["gc entries"] += 1
                self.collected["gc objects proposed"] += sum(
                    len(getattr(body, k) or ()) for k in ("Jobs", "Evals", "Allocs",
                                                          "Deployments", "Nodes"))
            elif etype == e.EntryType.PLAN_RESULTS and body.Preemptions:
                self.collected["preemptions proposed"] += len(body.Preemptions)
            digest = hashlib.blake2b(blob, digest_size=6).hexdigest()
            self.trace(f"commit {index} {etype.name} {digest}")
        if replica.applied_index() == index and self._batch_end(replica, index):
            self.hashes.observe(replica.name, state)

    def _batch_end(self, replica: Replica, index: int) -> bool:
        """Whole-state hashes are compared every 16 entries, and at the end by
        ``_converge`` (encoding the state after every entry would cost most of a run)."""
        return index % 16 == 0

    def leader_server(self) -> SimServer | None:
        lid = self.raft.leader_id
        return self.servers[lid] if lid is not None else None

    # --- the run ---------------------------------------------------------------------------------

    def run(self) -> Outcome:
        logging.getLogger("caravan").setLevel(logging.CRITICAL)
        ids.reseed(f"{self.seed}/ids")
        try:
            self.loop.run_until_complete(asyncio.wait_for(self._main(), self._time_limit()))
        except Exception as exc:
            tail = "\n  ".join(self.recent)
            raise SimFailure(f"seed {self.seed}: {type(exc).__name__}: {exc}\n"
                             f"last events:\n  {tail}\n"
                             f"replay with: pytest tests/sim --sim-seed {self.seed}") from exc
        finally:
            self._shutdown()
        return Outcome(self.seed, self._trace_hash.hexdigest(), len(self.raft.log),
                       self.loop.time(), self.checks.checked, self.hashes.compared,
                       {**self.raft.stats, **self.faults, **self.collected,
                        **{k: sum(c.ops[k] for c in self.clients)
                           for k in sorted({k for c in self.clients for k in c.ops})}})

    def _time_limit(self) -> float:
        """Virtual seconds a run may take: its workload, the settling time, and a
        generous bound for the replicas to converge after healing."""
        return self.config.duration + self.config.settle + 120.0

    async def _main(self) -> None:
        cfg = self.config
        main_task = asyncio.current_task()

        def crash_on_error(task: asyncio.Task) -> None:
            # an exception in any background task (an invariant raised inside a pump,
            # a bug in a service) fails the run instead of vanishing
            if task.cancelled():
                return
            exc = task.exception()
            if exc is None:
                return
            if isinstance(exc, (NoLeaderError, ApplyTimeout)):
                # a fire-and-forget write of a service (a failed eval's follow-up)
                # that found no leader: the service's own retry covers it
                self.trace(f"background write failed: {type(exc).__name__}")
                return
            if self._failure is None:
                self._failure = exc
                main_task.cancel()

        self._failure = None
        self.loop.set_task_factory(_task_factory(crash_on_error))
        self.raft.start()
        self.raft.elect(self.raft.replicas[0])
        try:
            for node in self.nodes:
                asyncio.ensure_future(node.run())
            end = self.loop.time() + cfg.duration
            for c in self.clients:
                asyncio.ensure_future(c.run(end))
            asyncio.ensure_future(self._elections())
            await self._nemesis(end)
            await self._heal()
            await asyncio.sleep(cfg.settle)
            await self._converge()
        except asyncio.CancelledError:
            if self._failure is not None:
                raise self._failure from None
            raise

    async def _elections(self) -> None:
        rng = self.rng_for("elections")
        while True:
            await asyncio.sleep(0.05)
            if self.raft.leader_id is None:
                await asyncio.sleep(rng.uniform(0.15, 1.5))     # election timeout
                up = self.raft.up()
                if up:
                    self.raft.elect(rng.choice(up))

    async def _nemesis(self, until: float) -> None:
        rng = self.rng_for("nemesis")
        cfg = self.config
        max_down = (cfg.servers - 1) // 2
        while True:
            await asyncio.sleep(rng.expovariate(1.0 / cfg.fault_gap))
            if self.loop.time() >= until:
                return
            roll = rng.random()
            if roll < 0.3:
                self.faults["leader changes"] += 1
                self.raft.step_down("nemesis")
            elif roll < 0.6 and sum(not s.up for s in self.servers) < max_down:
                victim = self.leader_server() if rng.random() < 0.5 else None
                victim = victim or rng.choice([s for s in self.servers if s.up])
                self.faults["server crashes"] += 1
                await victim.crash()
                asyncio.ensure_future(self._restart_later(victim, rng.uniform(0.5, 6.0)))
            else:
                node = rng.choice(self.nodes)
                if node.alive:
                    self.faults["node failures"] += 1
                    node.alive = False
                    self.trace(f"node {node.node.Name} dies")
                    asyncio.ensure_future(self._revive_later(node, rng.uniform(2.0, 15.0)))

    async def _restart_later(self, server: SimServer, after: float) -> None:
        await asyncio.sleep(after)
        if not server.up:
            server.raft.boot()
            self.raft.stats["restarts"] += 1
            self.trace(f"{server.name} restarted")

    async def _revive_later(self, node: SimNode, after: float) -> None:
        await asyncio.sleep(after)
        node.alive = True
        self.trace(f"node {node.node.Name} back")

    async def _heal(self) -> None:
        for s in self.servers:
            if not s.up:
                s.raft.boot()
                self.raft.stats["restarts"] += 1
        for n in self.nodes:
            n.alive = True
        self.trace("healed")

    async def _converge(self) -> None:
        """Every replica applies the whole log and ends in the same state."""
        while any(s.fsm.state.last_index < len(self.raft.log) for s in self.servers):
            await asyncio.sleep(0.1)
        final = {s.name: state_hash(s.fsm.state) for s in self.servers}
        if len(set(final.values())) != 1:
            raise InvariantViolation(f"replicas differ after applying all "
                                     f"{len(self.raft.log)} entries: {final}")
        self.trace(f"converged at {len(self.raft.log)}: {next(iter(final.values()))}")
        state = self.servers[0].fsm.state
        self.collected["rescheduled allocs"] = sum(
            1 for a in state.rows(t.ALLOCS) if a.RescheduleTracker is not None)
        self.collected["follow-up evals"] = sum(
            1 for ev in state.rows(t.EVALS) if ev.TriggeredBy == "alloc-failure"
            and ev.WaitUntil != "0001-01-01T00:00:00Z")

    def _shutdown(self) -> None:
        """Cancel what still runs, a few rounds and a bounded number of loop turns
        (a cancelled service may start another task on its way out), then close."""
        loop = self.loop
        loop.set_exception_handler(lambda loop, context: None)
        for _ in range(5):
            tasks = [t for t in asyncio.all_tasks(loop) if not t.done()]
            if not tasks:
                break
            for task in tasks:
                task.cancel()
            loop.refill(100_000)
            try:
                loop.run_until_complete(asyncio.wait(tasks, timeout=5.0))
            except Deadlock:
                break
        loop.close()


def _task_factory(on_done):
    def factory(loop, coro, **kwargs):
        task = asyncio.Task(coro, loop=loop, **kwargs)
        task.add_done_callback(on_done)
        return task
    return factory


def run_seed(seed: int, config: SimConfig = SimConfig()) -> Outcome:
    return World(seed, config).run()
