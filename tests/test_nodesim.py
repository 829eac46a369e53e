"""The gRPC node service and ``nodesim``: registration checks, leader redirects,
blocking watches, batched alloc updates, and simulated nodes that heartbeat, run their
allocations and go down after their TTL plus grace once the simulator stops.

The service runs in-process here (a real FSM, a raft that applies each entry at once,
the real notifier, on a grpc.aio server in a background thread), with short TTLs;
``nodesim`` runs as a real subprocess against it. When ``server/agent.py`` wires the
service, one more test runs nodesim against a real ``caravan agent -dev``.
"""
from __future__ import annotations

import asyncio
import concurrent.futures
import json
import os
import signal
import subprocess
import sys
import threading
import time

import grpc
import httpx
import msgspec
import pytest

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.apply import FSM
from caravan.fsm.structs import (
    Allocation,
    Job,
    NetworkResource,
    Node,
    NodeCpuResources,
    NodeMemoryResources,
    NodeReservedNetworkResources,
    NodeReservedResources,
    NodeResources,
    Task,
    TaskGroup,
    UpdateStrategy,
)
from caravan.fsm.submit import Submitter
from caravan.proto import node_pb2 as pb
from caravan.proto import node_pb2_grpc as pb_grpc
from caravan.proto import status_pb2_grpc as status_grpc
from caravan.server import ids as server_ids
from caravan.server.heartbeats import HeartbeatTracker
from caravan.server.notify import Notifier
from caravan.server.rpc.node import register_node_service
from caravan.server.rpc.status import StatusService
from tests.procs import ROOT, dev_server, wait_until

TTL, GRACE = 0.6, 1.0


# --- an in-process server ---------------------------------------------------------------------


class ApplyingRaft:
    """A one-node raft: each entry is applied to the FSM at once, on the loop."""

    def __init__(self, fsm: FSM):
        self.fsm = fsm
        self.index = 0
        self.is_leader = True
        self.types: list[e.EntryType] = []

    async def submit(self, blob: bytes) -> dict:
        self.index += 1
        self.types.append(e.EntryType(blob[0]))
        return self.fsm.apply(self.index, blob)


class InProcessServer:
    def __init__(self, with_status: bool = True):
        self.with_status = with_status
        self.fsm = FSM()
        self.raft = ApplyingRaft(self.fsm)
        self.submit = Submitter(self.raft.submit, lambda: f"test-{time.monotonic_ns()}")
        self.notifier: Notifier | None = None
        self.rpc = ""
        self.leader_addr = ""
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self._server: grpc.aio.Server | None = None
        self.heartbeats: HeartbeatTracker | None = None

    # what the service reads of an agent (a server.context.ServiceContext)
    def new_id(self) -> str:
        return server_ids.uuid4_str()

    def leader_rpc(self) -> str:
        return self.rpc if self.raft.is_leader else self.leader_addr

    def peer_rpcs(self) -> list[str]:
        return [self.rpc]

    def start(self) -> InProcessServer:
        self._thread.start()
        self.run(self._start())
        return self

    async def _start(self):
        self.notifier = Notifier(asyncio.get_running_loop())
        self.fsm.on_commit = self.notifier.notify_threadsafe
        self.heartbeats = HeartbeatTracker(self, ttl=TTL, grace=GRACE, stagger=False)
        self._server = grpc.aio.server()
        register_node_service(self._server, self)
        if self.with_status:
            status_grpc.add_StatusServicer_to_server(StatusService(self), self._server)
        port = self._server.add_insecure_port("127.0.0.1:0")
        self.rpc = f"127.0.0.1:{port}"
        await self._server.start()
        await self.heartbeats.start()

    def run(self, coro, timeout: float = 10):
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)

    def apply(self, body: e.Request) -> dict:
        body.RequestID = body.RequestID or f"test-{time.monotonic_ns()}"
        return self.run(self.raft.submit(e.encode(body)))

    def stop(self) -> None:
        async def _stop():
            await self.heartbeats.stop()
            await self._server.stop(grace=0.2)
        self.run(_stop())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(5)

    @property
    def state(self):
        return self.fsm.state


@pytest.fixture
def server():
    srv = InProcessServer().start()
    try:
        yield srv
    finally:
        srv.stop()


@pytest.fixture
def stub(server):
    with grpc.insecure_channel(server.rpc) as channel:
        yield pb_grpc.NodeStub(channel)


def make_node(node_id="node-a", secret="secret-a", **kw) -> Node:
    base = dict(ID=node_id, SecretID=secret, Name="a", Datacenter="dc1",
                Attributes={"kernel.name": "linux", "unique.hostname": "a"},
                NodeResources=NodeResources(
                    Cpu=NodeCpuResources(CpuShares=4000, TotalCpuCores=4),
                    Memory=NodeMemoryResources(MemoryMB=8192),
                    Networks=[NetworkResource(Device="eth0", IP="127.0.0.1", MBits=1000)]),
                ReservedResources=NodeReservedResources(
                    Networks=NodeReservedNetworkResources(ReservedHostPorts="22,80-81")))
    base.update(kw)
    return Node(**base)


def register(stub, node: Node):
    return stub.Register(pb.RegisterRequest(node_json=msgspec.json.encode(node)), timeout=5)


def rpc_error(call) -> grpc.RpcError:
    with pytest.raises(grpc.RpcError) as info:
        call()
    return info.value


def make_job(job_id="web", update: UpdateStrategy | None = None) -> Job:
    return Job(ID=job_id, Name=job_id, Namespace="default", Type="service", Priority=60,
               Datacenters=["dc1"], TaskGroups=[TaskGroup(
                   Name="g", Count=2, Update=update,
                   Tasks=[Task(Name="t1", Driver="mock"), Task(Name="t2", Driver="mock")])])


def place(server: InProcessServer, job: Job, node_ids: list[str], deployment="") -> list[str]:
    if server.state.get(t.JOBS, job.ID) is None:
        server.apply(e.JobRegister(Job=job))
    allocs = [Allocation(ID=f"{job.ID}-{i}", EvalID="ev", Name=f"{job.ID}.g[{i}]", NodeID=n,
                         JobID=job.ID, TaskGroup="g", DesiredStatus="run",
                         ClientStatus="pending", DeploymentID=deployment)
              for i, n in enumerate(node_ids)]
    server.apply(e.PlanResults(JobID=job.ID, Allocs=allocs))
    return [a.ID for a in allocs]


# --- the service ---------------------------------------------------------------------------------


@pytest.mark.parametrize("field, message", [
    ("ID", "missing node ID for client registration"),
    ("Datacenter", "missing datacenter for client registration"),
    ("Name", "missing node name for client registration"),
    ("Attributes", "missing attributes for client registration"),
    ("SecretID", "missing node secret ID for client registration"),
])
def test_register_checks_use_nomads_messages(stub, field, message):
    err = rpc_error(lambda: register(stub, make_node(**{field: None if field == "Attributes"
                                                        else ""})))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and err.details() == message


def test_register_fills_the_node_and_guards_its_secret(server, stub):
    err = rpc_error(lambda: stub.Register(pb.RegisterRequest(node_json=b'{"ID": 5}'), timeout=5))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "ID" in err.details()
    err = rpc_error(lambda: register(stub, make_node(ReservedResources=NodeReservedResources(
        Networks=NodeReservedNetworkResources(ReservedHostPorts="22,x")))))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT and "x" in err.details()

    resp = register(stub, make_node(Drivers={"mock": {"Detected": True, "Healthy": True}}))
    assert resp.heartbeat_ttl_ms == int(TTL * 1000) and resp.index > 0
    node = server.state.get(t.NODES, "node-a")
    assert node.Status == "ready" and node.StatusUpdatedAt > 0
    assert node.ModifyIndex == resp.index
    assert node.ComputedClass.startswith("v1:")
    assert node.Attributes["driver.mock"] == "1"
    assert (node.Resources.CPU, node.Resources.MemoryMB) == (4000, 8192)
    assert node.Resources.Networks[0].MBits == 1000
    assert [p.Value for p in node.Reserved.Networks[0].ReservedPorts] == [22, 80, 81]
    assert "node-a" in server.heartbeats.tracked()

    # same attributes but another unique.* value: same class; another datacenter: not
    twin = register(stub, make_node("node-b", "secret-b", Attributes={
        "kernel.name": "linux", "unique.hostname": "b"},
        Drivers={"mock": {"Detected": True, "Healthy": True}}))
    assert twin.index > resp.index
    assert server.state.get(t.NODES, "node-b").ComputedClass == node.ComputedClass
    register(stub, make_node("node-c", "secret-c", Datacenter="dc2"))
    assert server.state.get(t.NODES, "node-c").ComputedClass != node.ComputedClass

    err = rpc_error(lambda: register(stub, make_node(secret="stolen")))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details().startswith("node secret ID does not match")
    assert register(stub, make_node(Name="renamed")).index > twin.index   # same secret: fine


def test_heartbeats_authenticate_and_bring_a_down_node_back(server, stub):
    register(stub, make_node())
    hb = pb.HeartbeatRequest(node_id="node-a", secret_id="secret-a")
    assert stub.Heartbeat(hb, timeout=5).heartbeat_ttl_ms == int(TTL * 1000)
    err = rpc_error(lambda: stub.Heartbeat(pb.HeartbeatRequest(node_id="node-a",
                                                               secret_id="nope"), timeout=5))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    assert err.details() == "node secret ID does not match"
    err = rpc_error(lambda: stub.Heartbeat(pb.HeartbeatRequest(node_id="ghost"), timeout=5))
    assert err.code() == grpc.StatusCode.NOT_FOUND

    job = make_job()
    place(server, job, ["node-a"])
    # no heartbeats: down after TTL + grace, with an eval for the job on it
    wait_until(lambda: server.state.get(t.NODES, "node-a").Status == "down", 5, "node down")
    evals = [ev for ev in server.state.by_index(t.EVALS, "job", "web")
             if ev.TriggeredBy == "node-update"]
    assert [(ev.NodeID, ev.Priority, ev.Type, ev.Status) for ev in evals] == \
        [("node-a", 60, "service", "pending")]
    assert e.EntryType.NODE_STATUS in server.raft.types

    n_status = server.raft.types.count(e.EntryType.NODE_STATUS)
    resp = stub.Heartbeat(hb, timeout=5)
    node = server.state.get(t.NODES, "node-a")
    assert node.Status == "ready" and resp.index == node.ModifyIndex
    assert server.raft.types.count(e.EntryType.NODE_STATUS) == n_status + 1
    stub.Heartbeat(hb, timeout=5)      # already ready: no entry
    assert server.raft.types.count(e.EntryType.NODE_STATUS) == n_status + 1


def test_a_follower_redirects_to_the_leader_but_serves_watches(server, stub):
    register(stub, make_node())
    [alloc_id] = place(server, make_job(), ["node-a"])
    server.raft.is_leader = False
    server.leader_addr = "10.9.8.7:4647"
    try:
        calls = [
            lambda: register(stub, make_node()),
            lambda: stub.Heartbeat(pb.HeartbeatRequest(node_id="node-a", secret_id="secret-a"),
                                   timeout=5),
            lambda: stub.UpdateAllocations(pb.UpdateRequest(
                node_id="node-a", secret_id="secret-a", updates_json=b"[]"), timeout=5),
        ]
        for call in calls:
            err = rpc_error(call)
            assert err.code() == grpc.StatusCode.FAILED_PRECONDITION
            assert err.details() == "not the leader; leader at 10.9.8.7:4647"
            assert dict(err.trailing_metadata())["leader"] == "10.9.8.7:4647"
        watched = stub.WatchAllocations(pb.WatchRequest(
            node_id="node-a", secret_id="secret-a", min_index=0), timeout=5)
        assert watched.index >= 1 and [a["ID"] for a in json.loads(watched.allocs_json)] == [alloc_id]
    finally:
        server.raft.is_leader = True


def test_a_follower_waits_for_a_node_it_has_not_applied_yet(monkeypatch):
    """Clients send their watches to followers, so a node's first watch can reach a
    follower before the follower applied its registration: it waits for it (up to
    ``UNKNOWN_NODE_WAIT``) instead of answering NOT_FOUND at once."""
    from caravan.server.rpc import node as node_rpc
    follower = InProcessServer().start()
    follower.raft.is_leader = False
    try:
        with grpc.insecure_channel(follower.rpc) as channel, \
                concurrent.futures.ThreadPoolExecutor(1) as pool:
            fstub = pb_grpc.NodeStub(channel)
            pending = pool.submit(fstub.WatchAllocations, pb.WatchRequest(
                node_id="node-a", secret_id="secret-a", min_index=0, wait_ms=20000), timeout=25)
            time.sleep(0.3)
            assert not pending.done()
            follower.apply(e.NodeRegister(Node=make_node()))     # replication catches up
            got = pending.result(10)
            assert got.index >= 1 and json.loads(got.allocs_json) == []

            monkeypatch.setattr(node_rpc, "UNKNOWN_NODE_WAIT", 0.3)
            started = time.monotonic()
            err = rpc_error(lambda: fstub.WatchAllocations(pb.WatchRequest(
                node_id="node-z", secret_id="s", min_index=0, wait_ms=20000), timeout=10))
            assert err.code() == grpc.StatusCode.NOT_FOUND
            assert 0.25 <= time.monotonic() - started < 5
    finally:
        follower.stop()


def test_read_calls_keep_to_one_follower_per_key_and_skip_an_unreachable_one(server, stub):
    """``ServerConn.read_call``: key k goes to follower k mod n (the servers other than
    the one it follows as leader); one that does not answer moves that key on to the
    next server for good, the leader last, and other keys stay where they were."""
    from caravan.client.conn import ServerConn
    other = InProcessServer().start()

    async def go():
        dead = f"127.0.0.1:{_free_port()}"
        conn = ServerConn([server.rpc, dead, other.rpc])   # follows server.rpc as leader
        req = pb.WatchRequest(node_id="node-a", secret_id="secret-a", min_index=0, wait_ms=10)
        try:
            answers = [await conn.read_call("WatchAllocations", req, key=k, timeout=2)
                       for k in (0, 0, 1)]
            return answers, dict(conn._read_skew)
        finally:
            await conn.close()

    try:
        register(stub, make_node())
        other.apply(e.NodeRegister(Node=make_node()))
        place(other, make_job(), ["node-a"])          # tells the two servers apart
        answers, skew = asyncio.run(go())
        assert [len(json.loads(a.allocs_json)) for a in answers] == [1, 1, 1]   # all from other
        assert skew == {0: 1}      # key 0 moved past the dead follower once; key 1 never did
    finally:
        other.stop()


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_watch_blocks_until_the_nodes_allocations_change(server, stub):
    register(stub, make_node())
    register(stub, make_node("node-b", "secret-b"))
    req = dict(node_id="node-a", secret_id="secret-a")
    first = stub.WatchAllocations(pb.WatchRequest(**req, min_index=0), timeout=5)
    assert json.loads(first.allocs_json) == []

    started = time.monotonic()
    timed_out = stub.WatchAllocations(pb.WatchRequest(**req, min_index=first.index,
                                                      wait_ms=300), timeout=5)
    assert time.monotonic() - started >= 0.25 and timed_out.index == first.index

    with concurrent.futures.ThreadPoolExecutor(1) as pool:
        pending = pool.submit(stub.WatchAllocations, pb.WatchRequest(
            **req, min_index=first.index, wait_ms=20000), timeout=25)
        time.sleep(0.2)
        place(server, make_job("elsewhere"), ["node-b"])     # another node's: no wake-up
        time.sleep(0.2)
        assert not pending.done()
        [alloc_id] = place(server, make_job("mine"), ["node-a"])
        got = pending.result(10)
    allocs = msgspec.json.decode(got.allocs_json, type=list[Allocation])
    assert [a.ID for a in allocs] == [alloc_id] and got.index > first.index
    assert allocs[0].Job is not None and allocs[0].Job.ID == "mine"   # full allocations

    err = rpc_error(lambda: stub.WatchAllocations(pb.WatchRequest(node_id="node-a",
                                                                  secret_id="x"), timeout=5))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


def test_a_watch_stream_answers_each_change_then_ends_after_its_wait(server, stub):
    """``StreamAllocations``: what ``WatchAllocations`` answers, once per change on one
    open stream; it ends when its wait runs out (the client opens the next one)."""
    register(stub, make_node())
    register(stub, make_node("node-b", "secret-b"))
    [first] = place(server, make_job("one"), ["node-a"])
    stream = stub.StreamAllocations(pb.WatchRequest(
        node_id="node-a", secret_id="secret-a", min_index=0, wait_ms=1500), timeout=10)
    got = [next(stream)]
    place(server, make_job("elsewhere"), ["node-b"])        # not this node's: no answer
    [second] = place(server, make_job("two"), ["node-a"])
    got.append(next(stream))
    started = time.monotonic()
    assert list(stream) == []                                # nothing more; then it ends
    assert time.monotonic() - started < 3
    changed = [[a["ID"] for a in json.loads(g.allocs_json)] for g in got]
    assert changed == [[first], [second]]
    assert got[1].index > got[0].index and sorted(got[1].alloc_ids) == sorted([first, second])

    err = rpc_error(lambda: next(stub.StreamAllocations(pb.WatchRequest(
        node_id="node-a", secret_id="wrong"), timeout=5)))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED


def test_alloc_updates_from_many_callers_become_one_entry(server, stub):
    ids = []
    for i in range(6):
        register(stub, make_node(f"n{i}", f"s{i}"))
        ids += place(server, make_job(f"j{i}"), [f"n{i}"])
    before = server.raft.types.count(e.EntryType.ALLOC_CLIENT_UPDATE)

    def report(i):
        body = [{"AllocID": ids[i], "ClientStatus": "running",
                 "TaskStates": {"t1": {"State": "running"}}}]
        return stub.UpdateAllocations(pb.UpdateRequest(
            node_id=f"n{i}", secret_id=f"s{i}", updates_json=json.dumps(body).encode()),
            timeout=5)

    with concurrent.futures.ThreadPoolExecutor(6) as pool:
        acks = list(pool.map(report, range(6)))
    assert server.raft.types.count(e.EntryType.ALLOC_CLIENT_UPDATE) == before + 1
    assert len({a.index for a in acks}) == 1
    for alloc_id in ids:
        a = server.state.get(t.ALLOCS, alloc_id)
        assert a.ClientStatus == "running" and a.TaskStates["t1"].State == "running"
        assert a.ModifyIndex == acks[0].index and a.ModifyTime > 0

    bad = [{"AllocID": ids[1], "ClientStatus": "running"}]
    err = rpc_error(lambda: stub.UpdateAllocations(pb.UpdateRequest(
        node_id="n0", secret_id="s0", updates_json=json.dumps(bad).encode()), timeout=5))
    assert err.code() == grpc.StatusCode.PERMISSION_DENIED
    bad = [{"AllocID": ids[0], "ClientStatus": "lost"}]
    err = rpc_error(lambda: stub.UpdateAllocations(pb.UpdateRequest(
        node_id="n0", secret_id="s0", updates_json=json.dumps(bad).encode()), timeout=5))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT
    err = rpc_error(lambda: stub.UpdateAllocations(pb.UpdateRequest(
        node_id="n0", secret_id="s0", updates_json=b"{"), timeout=5))
    assert err.code() == grpc.StatusCode.INVALID_ARGUMENT


# --- nodesim ----------------------------------------------------------------------------------


def nodesim_command(*args: str) -> list[str]:
    """``caravan nodesim`` as a user runs it."""
    return [sys.executable, "-m", "caravan", "nodesim", *args]


class NodeSim:
    def __init__(self, tmp_path, *args: str):
        self.log_path = tmp_path / "nodesim.log"
        self._log = open(self.log_path, "w")
        self.proc = subprocess.Popen(nodesim_command(*args), cwd=ROOT, stdout=self._log,
                                     stderr=subprocess.STDOUT, start_new_session=True)

    def output(self) -> str:
        return self.log_path.read_text()

    def node_ids(self) -> list[str]:
        return [line.split()[4] for line in self.output().splitlines()
                if line.startswith("nodesim: registered node")]

    def interrupt(self, sig=signal.SIGINT) -> int:
        self.proc.send_signal(sig)
        return self.proc.wait(10)

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)
        self._log.close()


def test_nodesim_nodes_advertise_host_volumes(server, tmp_path):
    sim = NodeSim(tmp_path, "-server", server.rpc, "-count", "2",
                  "-host-volume", "data=/srv/data", "-host-volume", "conf=/etc/app:ro")
    try:
        ids = wait_until(lambda: len(sim.node_ids()) == 2 and sim.node_ids(), 20,
                         f"2 nodes registered: {sim.output()}")
        for node_id in ids:
            volumes = server.state.get(t.NODES, node_id).HostVolumes
            assert {n: (v.Name, v.Path, v.ReadOnly) for n, v in volumes.items()} == {
                "data": ("data", "/srv/data", False), "conf": ("conf", "/etc/app", True)}
    finally:
        sim.kill()
    bad = NodeSim(tmp_path, "-server", server.rpc, "-host-volume", "data")
    try:
        assert bad.proc.wait(20) == 2
        assert "-host-volume 'data': expected name=/absolute/path[:ro]" in bad.output()
    finally:
        bad.kill()


def test_nodesim_registers_heartbeats_runs_allocations_and_its_nodes_go_down(server, tmp_path):
    sim = NodeSim(tmp_path, "-server", server.rpc, "-count", "4", "-cpu", "3000",
                  "-memory", "2048", "-class", "sim", "-drivers", "mock,docker",
                  "-reserved-ports", "22")
    try:
        ids = wait_until(lambda: len(sim.node_ids()) == 4 and sim.node_ids(), 20,
                         f"4 nodes registered: {sim.output()}")
        assert len(set(ids)) == 4
        nodes = [server.state.get(t.NODES, i) for i in ids]
        for n in nodes:
            assert n.Status == "ready" and n.NodeClass == "sim" and n.Datacenter == "dc1"
            assert n.Attributes["kernel.name"] == "linux"
            assert n.Attributes["driver.mock"] == n.Attributes["driver.docker"] == "1"
            assert "SIGUSR2" in n.Attributes["os.signals"]
            assert n.Attributes["cpu.totalcompute"] == "3000"
            assert set(n.Drivers) == {"mock", "docker"} and n.Drivers["docker"].Healthy
            assert n.NodeResources.Cpu.CpuShares == 3000
            assert n.NodeResources.Memory.MemoryMB == 2048
            assert n.NodeResources.Networks[0].Device == "eth0"
            assert n.NodeResources.Networks[0].IP == "127.0.0.1"
            assert n.ReservedResources.Networks.ReservedHostPorts == "22"
        assert len({n.ComputedClass for n in nodes}) == 1     # unique.* left out

        # heartbeats keep them ready well past several TTL + grace periods
        until = time.monotonic() + 3 * (TTL + GRACE)
        while time.monotonic() < until:
            assert all(server.state.get(t.NODES, i).Status == "ready" for i in ids)
            time.sleep(0.1)
        assert e.EntryType.NODE_STATUS not in server.raft.types

        # allocations are accepted and reported running, one with deployment health
        web = place(server, make_job(), ids[:2])
        canary = place(server, make_job("canary", UpdateStrategy(MinHealthyTime=200_000_000)),
                       [ids[2]], deployment="dep-1")

        def running(alloc_id):
            a = server.state.get(t.ALLOCS, alloc_id)
            return a.ClientStatus == "running" and a.TaskStates and \
                set(a.TaskStates) == {"t1", "t2"} and \
                all(s.State == "running" and [ev.Type for ev in s.Events] ==
                    ["Received", "Started"] for s in a.TaskStates.values())

        wait_until(lambda: all(running(a) for a in web + canary), 10, "allocs running")
        def healthy(alloc_id):
            status = server.state.get(t.ALLOCS, alloc_id).DeploymentStatus
            return status is not None and status.Healthy

        wait_until(lambda: healthy(canary[0]), 10, "deployment health reported")
        assert not healthy(web[0])

        # a stop is reported complete, tasks dead
        server.apply(e.PlanResults(JobID="web", Stops=[e.AllocStop(AllocID=web[0])]))
        wait_until(lambda: server.state.get(t.ALLOCS, web[0]).ClientStatus == "complete",
                   10, "stopped alloc complete")
        stopped = server.state.get(t.ALLOCS, web[0])
        assert all(s.State == "dead" and s.FinishedAt != "0001-01-01T00:00:00Z"
                   for s in stopped.TaskStates.values())

        # stopping nodesim: exit 0 with a summary; nodes go down after TTL + grace
        assert sim.interrupt() == 0
        out = sim.output()
        summary = out.strip().splitlines()[-1]
        assert summary.startswith("nodesim: stopped after") and "4/4 nodes registered" in summary
        assert "3 allocations started" in summary and "1 stopped" in summary
        stopped_at = time.monotonic()
        wait_until(lambda: all(server.state.get(t.NODES, i).Status == "down" for i in ids),
                   10, "nodes down")
        assert time.monotonic() - stopped_at >= TTL + GRACE - 0.35
        evals = [ev for ev in server.state.rows(t.EVALS) if ev.TriggeredBy == "node-update"]
        # web[1] on ids[1] and canary on ids[2] are live; web[0] is terminal
        assert sorted((ev.JobID, ev.NodeID) for ev in evals) == \
            sorted([("web", ids[1]), ("canary", ids[2])])
    finally:
        sim.kill()


def test_nodesim_follows_the_leader_named_by_a_follower(server, tmp_path):
    """A follower in front (without the Status service, so nodesim cannot ask it who
    leads): it names the leader in trailing metadata; nodesim re-dials."""
    follower = InProcessServer(with_status=False).start()
    follower.raft.is_leader = False
    follower.leader_addr = server.rpc
    sim = NodeSim(tmp_path, "-server", follower.rpc, "-count", "2")
    try:
        wait_until(lambda: len(sim.node_ids()) == 2, 20, f"nodes registered: {sim.output()}")
        assert server.state.count(t.NODES) == 2 and follower.state.count(t.NODES) == 0
        assert sim.interrupt(signal.SIGTERM) == 0
        assert "1 leader switches" in sim.output()
        ids = sim.node_ids()
        # heartbeats went to the leader too (watches, stale reads, may stay on the follower)
        wait_until(lambda: server.heartbeats.tracked().keys() >= set(ids), 5, "tracked")
    finally:
        sim.kill()
        follower.stop()


def test_nodesim_rejects_bad_flags():
    out = subprocess.run(nodesim_command("-server", "127.0.0.1:1", "-count", "0"), cwd=ROOT,
                         capture_output=True, text=True, timeout=20)
    assert out.returncode == 2 and "-count" in out.stderr


# --- against a real agent, once the service is wired into it -------------------------------------


def test_nodesim_against_a_dev_agent(tmp_path, monkeypatch):
    monkeypatch.setenv("CARAVAN_HEARTBEAT_TTL", str(TTL))
    monkeypatch.setenv("CARAVAN_HEARTBEAT_GRACE", str(GRACE))
    agent = dev_server(tmp_path).start()
    sim = None
    try:
        agent.wait_healthy()
        sim = NodeSim(tmp_path, "-server", agent.rpc, "-count", "3")
        ids = wait_until(lambda: len(sim.node_ids()) == 3 and sim.node_ids(), 20,
                         f"3 nodes registered: {sim.output()}")

        def statuses():
            r = httpx.get(f"{agent.url}/v1/nodes", timeout=5)
            return {n["ID"]: n["Status"] for n in r.json()}

        wait_until(lambda: all(statuses().get(i) == "ready" for i in ids), 10, "nodes ready")
        until = time.monotonic() + 2 * (TTL + GRACE)
        while time.monotonic() < until:
            assert all(statuses()[i] == "ready" for i in ids)
            time.sleep(0.1)
        assert sim.interrupt() == 0
        wait_until(lambda: all(statuses()[i] == "down" for i in ids), 15, "nodes down")
    finally:
        if sim is not None:
            sim.kill()
        agent.stop()
