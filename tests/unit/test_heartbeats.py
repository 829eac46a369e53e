"""HeartbeatTracker with a fake agent (a real FSM, a raft that applies at once) and a
fake clock: TTL scaling, expiry into one NodeStatus entry with node-update evals."""
from __future__ import annotations

import asyncio
import itertools
import random

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.apply import FSM
from caravan.fsm.structs import Allocation, Job, Node, Task, TaskGroup
from caravan.fsm.submit import Submitter
from caravan.scheduler.eval_feed import node_update_evals
from caravan.server import ids
from caravan.server.heartbeats import HeartbeatTracker


class FakeClock:
    def __init__(self, now: float = 1000.0):
        self.now = now

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class FakeRaft:
    """Applies each submitted entry to the FSM right away, like a one-node raft."""

    def __init__(self, fsm: FSM):
        self.fsm = fsm
        self.index = 0
        self.submitted: list[tuple[e.EntryType, e.Request]] = []
        self.is_leader = True

    async def submit(self, blob: bytes) -> dict:
        self.index += 1
        self.submitted.append(e.decode(blob))
        return self.fsm.apply(self.index, blob)

    def apply(self, body: e.Request) -> dict:
        self.index += 1
        body.RequestID = body.RequestID or f"setup-{self.index}"
        return self.fsm.apply(self.index, e.encode(body))


class FakeAgent:
    def __init__(self):
        self.fsm = FSM()
        self.raft = FakeRaft(self.fsm)
        requests = itertools.count(1)
        # through self.raft at call time: a test may swap its submit
        self.submit = Submitter(lambda *a: self.raft.submit(*a), lambda: f"hb-{next(requests)}")

    def new_id(self) -> str:
        return ids.uuid4_str()


def job(job_id: str, jtype="service", priority=50) -> Job:
    return Job(ID=job_id, Name=job_id, Namespace="default", Type=jtype, Priority=priority,
               Datacenters=["dc1"], TaskGroups=[TaskGroup(Name="g", Count=1, Tasks=[
                   Task(Name="t", Driver="mock")])])


def node(node_id: str, status="ready") -> Node:
    return Node(ID=node_id, SecretID="s-" + node_id, Name=node_id, Datacenter="dc1",
                Attributes={"kernel.name": "linux"}, Status=status)


def alloc(job_id: str, i: int, node_id: str, **kw) -> Allocation:
    base = dict(ID=f"{job_id}-{node_id}-{i}", EvalID="ev", Name=f"{job_id}.g[{i}]",
                NodeID=node_id, JobID=job_id, TaskGroup="g", DesiredStatus="run",
                ClientStatus="running")
    base.update(kw)
    return Allocation(**base)


def setup_cluster(agent: FakeAgent) -> None:
    """node-1 holds: zeta and alpha (live), batchy (a batch job, live), done (all its
    allocs terminal); node-2 holds other (live)."""
    for j in (job("zeta", priority=70), job("alpha"), job("batchy", "batch", 30),
              job("done"), job("other")):
        agent.raft.apply(e.JobRegister(Job=j))
    for n in ("node-1", "node-2"):
        agent.raft.apply(e.NodeRegister(Node=node(n)))
    plans = {
        "zeta": [alloc("zeta", 0, "node-1"), alloc("zeta", 1, "node-1", ClientStatus="pending")],
        "alpha": [alloc("alpha", 0, "node-1", ClientStatus="failed"),
                  alloc("alpha", 1, "node-1")],
        "batchy": [alloc("batchy", 0, "node-1")],
        "done": [alloc("done", 0, "node-1", ClientStatus="complete"),
                 alloc("done", 1, "node-1", DesiredStatus="stop")],
        "other": [alloc("other", 0, "node-2")],
    }
    for job_id, allocs in plans.items():
        agent.raft.apply(e.PlanResults(JobID=job_id, Allocs=allocs))


def tracker_for(agent, clock, **kw) -> HeartbeatTracker:
    kw.setdefault("stagger", False)
    return HeartbeatTracker(agent, ttl=1.0, grace=1.0, clock=clock,
                            wall_clock=lambda: 1_700_000_000.5, **kw)


def test_expiry_marks_the_node_down_with_one_eval_per_live_job_in_order():
    async def scenario():
        agent, clock = FakeAgent(), FakeClock()
        setup_cluster(agent)
        hb = tracker_for(agent, clock)
        assert hb.touch("node-1") == 1.0
        assert hb.touch("node-2") == 1.0
        clock.advance(1.5)
        hb.touch("node-2")                      # node-2 keeps heartbeating
        clock.advance(0.4)                      # 1.9 s: within TTL + grace
        assert await hb.expire_due() == []
        assert agent.raft.submitted == []
        clock.advance(0.2)                      # 2.1 s: past TTL + grace for node-1
        assert await hb.expire_due() == ["node-1"]
        assert await hb.expire_due() == []      # once only

        [(etype, body)] = agent.raft.submitted
        assert etype == e.EntryType.NODE_STATUS
        assert body.NodeID == "node-1" and body.Status == "down"
        assert body.UpdatedAt == 1_700_000_000
        assert [ev.JobID for ev in body.Evals] == ["alpha", "batchy", "zeta"]
        by_job = {ev.JobID: ev for ev in body.Evals}
        assert (by_job["zeta"].Priority, by_job["zeta"].Type) == (70, "service")
        assert (by_job["batchy"].Priority, by_job["batchy"].Type) == (30, "batch")
        for ev in body.Evals:
            assert ev.TriggeredBy == "node-update" and ev.NodeID == "node-1"
            assert ev.Status == "pending" and ev.Namespace == "default"
            assert ev.CreateTime == ev.ModifyTime == 1_700_000_000_500_000_000
        assert len({ev.ID for ev in body.Evals}) == 3

        state = agent.fsm.state
        assert state.get(t.NODES, "node-1").Status == "down"
        assert state.get(t.NODES, "node-2").Status == "ready"
        assert {ev.JobID for ev in state.by_index(t.EVALS, "status", "pending")
                if ev.TriggeredBy == "node-update"} == {"alpha", "batchy", "zeta"}
        assert "node-1" not in hb.tracked() and "node-2" in hb.tracked()

    asyncio.run(scenario())


def test_node_update_evals_skip_terminal_allocs_and_other_nodes():
    agent = FakeAgent()
    setup_cluster(agent)
    evals = node_update_evals(agent.fsm.state, "node-2", 5, ids.uuid4_str)
    assert [(ev.JobID, ev.NodeID) for ev in evals] == [("other", "node-2")]
    assert node_update_evals(agent.fsm.state, "node-3", 5, ids.uuid4_str) == []


def test_a_node_already_down_or_gone_is_not_marked_again():
    async def scenario():
        agent, clock = FakeAgent(), FakeClock()
        agent.raft.apply(e.NodeRegister(Node=node("node-1")))
        agent.raft.apply(e.NodeStatus(NodeID="node-1", Status="down", UpdatedAt=1))
        hb = tracker_for(agent, clock)
        hb.touch("node-1")
        hb.touch("ghost")
        clock.advance(5)
        assert await hb.expire_due() == []
        assert agent.raft.submitted == []

    asyncio.run(scenario())


def test_ttl_scales_with_the_number_of_nodes():
    agent, clock = FakeAgent(), FakeClock()
    hb = HeartbeatTracker(agent, ttl=10.0, grace=10.0, clock=clock, stagger=False)
    assert hb.scaled_ttl(1) == 10.0
    assert hb.scaled_ttl(500) == 10.0        # 500 / 50 per second = 10 s
    assert hb.scaled_ttl(1000) == 20.0
    assert hb.scaled_ttl(5000) == 100.0
    for i in range(999):
        hb.touch(f"n{i}")
    assert hb.touch("n-last") == 20.0        # the 1000th node
    assert hb.tracked()["n-last"] == clock.now + 20.0 + 10.0
    assert hb.touch("n-last") == 20.0        # a heartbeat does not count the node twice

    # with stagger (Nomad's default) a TTL lies in [ttl, 2 ttl)
    staggered = HeartbeatTracker(agent, ttl=10.0, grace=10.0, clock=clock,
                                 rng=random.Random(7))
    ttls = [staggered.touch(f"n{i}") for i in range(200)]
    assert all(10.0 <= x < 20.0 for x in ttls) and len(set(ttls)) > 100

    # a lower heartbeat budget stretches the TTL
    slow = HeartbeatTracker(agent, ttl=1.0, grace=1.0, clock=clock, stagger=False,
                            max_per_second=2.0)
    assert slow.scaled_ttl(10) == 5.0


def test_ttl_and_grace_come_from_the_environment(monkeypatch):
    monkeypatch.setenv("CARAVAN_HEARTBEAT_TTL", "1.5")
    monkeypatch.setenv("CARAVAN_HEARTBEAT_GRACE", "0.5")
    hb = HeartbeatTracker(FakeAgent())
    assert (hb.ttl, hb.grace, hb.max_per_second) == (1.5, 0.5, 50.0)
    monkeypatch.setenv("CARAVAN_HEARTBEAT_TTL", "soon")
    assert HeartbeatTracker(FakeAgent()).ttl == 10.0
    monkeypatch.delenv("CARAVAN_HEARTBEAT_TTL")
    monkeypatch.delenv("CARAVAN_HEARTBEAT_GRACE")
    hb = HeartbeatTracker(FakeAgent())
    assert (hb.ttl, hb.grace) == (10.0, 10.0)


def test_start_gives_every_live_node_a_fresh_ttl_and_the_loop_expires_them():
    async def scenario():
        agent, clock = FakeAgent(), FakeClock()
        for n, status in (("a", "ready"), ("b", "initializing"), ("c", "down")):
            agent.raft.apply(e.NodeRegister(Node=node(n)))
            if status != "ready":
                agent.raft.apply(e.NodeStatus(NodeID=n, Status=status, UpdatedAt=1))
        hb = tracker_for(agent, clock)
        hb.touch("stale")                       # timers from before are dropped
        await hb.start()
        try:
            assert hb.running
            assert hb.tracked() == {"a": clock.now + 2.0, "b": clock.now + 2.0}
            hb.touch("a")
            clock.advance(2.5)
            # the background loop notices by itself (it re-checks at least every second)
            hb.touch("a")                       # "a" heartbeats; "b" does not
            for _ in range(100):
                if agent.raft.submitted:
                    break
                await asyncio.sleep(0.05)
            assert [(b.NodeID, b.Status) for _, b in agent.raft.submitted] == [("b", "down")]
            assert agent.fsm.state.get(t.NODES, "a").Status == "ready"
        finally:
            await hb.stop()
        assert not hb.running and hb.tracked() == {}

    asyncio.run(scenario())


def test_a_failed_submission_is_retried():
    async def scenario():
        agent, clock = FakeAgent(), FakeClock()
        agent.raft.apply(e.NodeRegister(Node=node("n1")))
        real_submit = agent.raft.submit
        calls = []

        async def flaky(blob):
            calls.append(blob)
            if len(calls) == 1:
                raise RuntimeError("No cluster leader")
            return await real_submit(blob)

        agent.raft.submit = flaky
        hb = tracker_for(agent, clock)
        await hb.start()
        try:
            clock.advance(3)
            assert await hb.expire_due() == []
            assert "n1" in hb.tracked()        # re-armed for a retry
            clock.advance(1.5)
            assert await hb.expire_due() == ["n1"]
            assert agent.fsm.state.get(t.NODES, "n1").Status == "down"
        finally:
            await hb.stop()

    asyncio.run(scenario())
