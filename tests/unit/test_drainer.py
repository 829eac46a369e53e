"""The node drainer's decisions and the drain, eligibility and transition entries,
over a real FSM (no processes)."""
from __future__ import annotations

import itertools

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.node_events import MAX_NODE_EVENTS
from caravan.fsm.structs import AllocDeploymentStatus, DrainStrategy, Job, Task, TaskGroup
from caravan.scheduler import drainer
from tests.unit.test_fsm import Log, make_job
from tests.unit.test_fsm_allocs import alloc, node

SECOND = 1_000_000_000
NOW = 1_700_000_000 * SECOND


def service(job_id: str, count: int, max_parallel: int | None = None, jtype="service") -> Job:
    migrate = {"MaxParallel": max_parallel} if max_parallel is not None else None
    return make_job(job_id, Type=jtype, TaskGroups=[TaskGroup(
        Name="g", Count=count, Migrate=migrate, Tasks=[Task(Name="t", Driver="mock")])])


def world(*jobs_and_nodes) -> Log:
    """Nodes node-1 (to drain) and node-2; each (job, [node ids]) placed, running, healthy."""
    log = Log()
    log.apply(e.NodeRegister(Node=node(1, StatusUpdatedAt=100)))
    log.apply(e.NodeRegister(Node=node(2, StatusUpdatedAt=100)))
    for job, where in jobs_and_nodes:
        log.register(job)
        allocs = [alloc(job.ID, i, n) for i, n in enumerate(where)]
        log.apply(e.PlanResults(JobID=job.ID, Allocs=allocs))
        log.apply(e.AllocClientUpdate(Updates=[e.AllocClientState(
            AllocID=a.ID, ClientStatus="running",
            DeploymentStatus=AllocDeploymentStatus(Healthy=True)) for a in allocs]))
    return log


def drain(log: Log, deadline: int = 0, ignore_system: bool = False, now: int = NOW) -> dict:
    return log.apply(e.NodeDrain(NodeID="node-1", Now=now, DrainStrategy=DrainStrategy(
        Deadline=deadline, IgnoreSystemJobs=ignore_system)))


def act(log: Log, now: int = NOW) -> drainer.DrainPlan:
    """One drainer pass, its entries applied."""
    state = log.fsm.state
    plan = drainer.decide(state, now)
    ids = (f"ev-{i}" for i in itertools.count(log.index))
    if plan.migrate:
        log.apply(drainer.migrate_entry(state, plan.migrate, lambda: next(ids), now))
    for n, deadlined in plan.complete:
        log.apply(drainer.complete_entry(n, deadlined, now))
    return plan


def marked(log: Log) -> list[str]:
    return sorted(a.ID for a in log.fsm.state.rows(t.ALLOCS) if a.should_migrate())


def test_drain_sets_the_strategy_lastdrain_and_events():
    log = world()
    r = drain(log, deadline=30 * SECOND)
    n = log.fsm.state.get(t.NODES, "node-1")
    assert r["NodeModifyIndex"] == n.ModifyIndex and r["EvalIDs"] == []
    assert n.Drain and n.SchedulingEligibility == "ineligible"
    assert n.DrainStrategy.StartedAt == "2023-11-14T22:13:20.000000000Z"
    assert n.DrainStrategy.ForceDeadline == "2023-11-14T22:13:50.000000000Z"
    assert (n.LastDrain.Status, n.LastDrain.StartedAt) == ("draining", n.DrainStrategy.StartedAt)
    assert [ev.Message for ev in n.Events] == ["Node registered", "Node drain strategy set"]
    assert n.Events[-1].CreateIndex == r["Index"] and n.Events[-1].Subsystem == "Drain"
    # updating keeps the start; cancelling with MarkEligible ends it as canceled
    drain(log, deadline=0, now=NOW + SECOND)
    n = log.fsm.state.get(t.NODES, "node-1")
    assert n.DrainStrategy.StartedAt == "2023-11-14T22:13:20.000000000Z"
    assert n.DrainStrategy.ForceDeadline == "0001-01-01T00:00:00Z"
    assert n.Events[-1].Message == "Node drain strategy updated"
    refused = log.apply(e.NodeEligibility(NodeID="node-1", Eligibility="eligible", Now=NOW))
    assert refused["Code"] == 400 and "while it is draining" in refused["Error"]
    log.apply(e.NodeDrain(NodeID="node-1", MarkEligible=True, Now=NOW + 2 * SECOND))
    n = log.fsm.state.get(t.NODES, "node-1")
    assert n.DrainStrategy is None and not n.Drain and n.SchedulingEligibility == "eligible"
    assert n.LastDrain.Status == "canceled" and n.Events[-1].Message == "Node drain disabled"
    # the drainer cannot complete a drain that is over
    done = log.apply(e.NodeDrain(NodeID="node-1", Completed=True, Now=NOW))
    assert done["Code"] == 409


def test_node_events_are_bounded_and_a_re_registration_keeps_them():
    log = world()
    for i in range(12):
        log.apply(e.NodeEligibility(NodeID="node-1", Now=NOW + i,
                                    Eligibility="ineligible" if i % 2 == 0 else "eligible"))
    n = log.fsm.state.get(t.NODES, "node-1")
    assert len(n.Events) == MAX_NODE_EVENTS
    assert n.Events[-1].Message == "Node marked as eligible for scheduling"
    log.apply(e.NodeStatus(NodeID="node-1", Status="down", UpdatedAt=200))
    log.apply(e.NodeRegister(Node=node(1, StatusUpdatedAt=300)))
    n = log.fsm.state.get(t.NODES, "node-1")
    assert [ev.Message for ev in n.Events[-2:]] == ["Node heartbeat missed", "Node re-registered"]
    assert len(n.Events) == MAX_NODE_EVENTS and n.Status == "ready"


def test_a_service_group_moves_max_parallel_at_a_time_after_healthy_replacements():
    job = service("web", 4, max_parallel=2)
    log = world((job, ["node-1"] * 4))
    drain(log)
    plan = act(log)
    assert len(plan.migrate) == 2 and not plan.complete
    assert not act(log).migrate            # the marked ones are on their way: no more
    # the scheduler stops the two and places replacements; until those are healthy
    # nothing more moves
    first = marked(log)
    repl = [alloc("web", 10 + i, "node-2") for i in range(2)]
    log.apply(e.PlanResults(JobID="web", Allocs=repl, Stops=[
        e.AllocStop(AllocID=i, DesiredDescription="alloc is being migrated") for i in first]))
    assert not act(log).migrate
    log.apply(e.AllocClientUpdate(Updates=[e.AllocClientState(
        AllocID=a.ID, ClientStatus="running",
        DeploymentStatus=AllocDeploymentStatus(Healthy=True)) for a in repl]))
    assert len(act(log).migrate) == 2
    assert len(marked(log)) == 4
    evals = [ev for ev in log.fsm.state.rows(t.EVALS) if ev.TriggeredBy == "node-drain"]
    assert len(evals) == 2 and {ev.JobID for ev in evals} == {"web"}


def test_batch_waits_for_the_deadline_and_system_goes_last_unless_ignored():
    batch = service("crunch", 1, jtype="batch")
    system = service("sys", 1, jtype="system")
    log = world((batch, ["node-1"]), (system, ["node-1"]))
    drain(log, deadline=10 * SECOND)
    assert not act(log)                      # the batch alloc runs on; nothing is done
    # it finishes: only the system alloc is left, so it is marked and the drain ends
    log.apply(e.AllocClientUpdate(Updates=[e.AllocClientState(
        AllocID="crunch-alloc-0", ClientStatus="complete")]))
    plan = act(log)
    assert [a.ID for a in plan.migrate] == ["sys-alloc-0"]
    assert [(n.ID, deadlined) for n, deadlined in plan.complete] == [("node-1", False)]
    n = log.fsm.state.get(t.NODES, "node-1")
    assert n.DrainStrategy is None and n.LastDrain.Status == "complete"
    assert n.SchedulingEligibility == "ineligible" and n.Events[-1].Details is None


def test_the_deadline_forces_everything_off_but_ignored_system_allocs():
    log = world((service("crunch", 1, jtype="batch"), ["node-1"]),
                (service("sys", 1, jtype="system"), ["node-1"]),
                (service("web", 2), ["node-1", "node-1"]))
    drain(log, deadline=10 * SECOND, ignore_system=True)
    act(log)                                  # one web alloc moves within MaxParallel 1
    assert marked(log) == ["web-alloc-0"]
    plan = act(log, now=NOW + 10 * SECOND)    # the deadline
    assert sorted(a.ID for a in plan.migrate) == ["crunch-alloc-0", "web-alloc-1"]
    assert [d for _, d in plan.complete] == [True]
    n = log.fsm.state.get(t.NODES, "node-1")
    assert n.LastDrain.Status == "complete"
    assert n.Events[-1].Details == {"deadline_reached": "true"}
    assert "sys-alloc-0" not in marked(log)


def test_a_negative_deadline_forces_at_once_and_finished_allocs_are_left_alone():
    log = world((service("web", 2), ["node-1", "node-1"]))
    drain(log, deadline=-1)
    assert drainer.deadline_reached(log.fsm.state.get(t.NODES, "node-1"), NOW)
    log.apply(e.AllocClientUpdate(Updates=[e.AllocClientState(
        AllocID="web-alloc-0", ClientStatus="failed")]))
    plan = act(log)
    assert [a.ID for a in plan.migrate] == ["web-alloc-1"] and plan.complete
