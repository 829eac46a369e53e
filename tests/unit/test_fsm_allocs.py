"""Nodes, evals, plan results and client updates applied by the FSM."""
from __future__ import annotations

import random

import pytest

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.store import Txn
from caravan.fsm.structs import Allocation, Evaluation, Node, Resources
from caravan.fsm.summaries import summarize
from tests.unit.test_fsm import Log, assert_replays_identically, make_eval, make_job


def node(i: int, **kw) -> Node:
    base = dict(ID=f"node-{i}", Name=f"n{i}", Datacenter="dc1", Status="ready",
                Attributes={"kernel.name": "linux"}, ComputedClass="v1:1")
    base.update(kw)
    return Node(**base)


def alloc(job_id: str, i: int, node_id: str = "node-1", group: str = "g", **kw) -> Allocation:
    base = dict(ID=f"{job_id}-alloc-{i}", EvalID="ev", Name=f"{job_id}.{group}[{i}]",
                NodeID=node_id, JobID=job_id, TaskGroup=group, DesiredStatus="run",
                ClientStatus="pending", Resources=Resources(CPU=100, MemoryMB=300))
    base.update(kw)
    return Allocation(**base)


def test_node_register_keeps_operator_fields_and_status_updates_create_evals():
    log = Log()
    log.apply(e.NodeRegister(Node=node(1)))
    stored = log.fsm.state.get(t.NODES, "node-1")
    assert stored.CreateIndex == stored.ModifyIndex == 1
    log.apply(e.NodeRegister(Node=node(1, Drain=True, Name="renamed")))
    again = log.fsm.state.get(t.NODES, "node-1")
    assert again.Name == "renamed" and again.Drain is False and again.CreateIndex == 1
    ev = Evaluation(ID="ev-node", JobID="web", TriggeredBy="node-update", Status="pending",
                    NodeID="node-1", Type="service", Priority=50)
    res = log.apply(e.NodeStatus(NodeID="node-1", Status="down", UpdatedAt=5, Evals=[ev]))
    assert res["EvalIDs"] == ["ev-node"]
    assert log.fsm.state.get(t.NODES, "node-1").Status == "down"
    assert log.fsm.state.get(t.EVALS, "ev-node").NodeModifyIndex == res["NodeModifyIndex"]
    assert log.apply(e.NodeStatus(NodeID="nope", Status="down", UpdatedAt=1))["Code"] == 404
    assert log.apply(e.NodeStatus(NodeID="node-1", Status="weird", UpdatedAt=1))["Code"] == 400


def test_plan_results_attach_the_job_and_drive_summary_and_status():
    log = Log()
    log.register(make_job())
    log.apply(e.NodeRegister(Node=node(1)))
    ev = log.fsm.state.by_index(t.EVALS, t.BY_JOB, "web")[0]
    done = Evaluation(**{**{f: getattr(ev, f) for f in ev.__struct_fields__},
                         "Status": "complete", "QueuedAllocations": {"g": 0}})
    log.apply(e.PlanResults(JobID="web", JobVersion=0, Allocs=[alloc("web", 0)], Evals=[done]))
    a = log.fsm.state.get(t.ALLOCS, "web-alloc-0")
    assert a.Job is not None and a.Job.Version == 0 and a.CreateIndex == a.AllocModifyIndex
    summary = log.fsm.state.get(t.JOB_SUMMARIES, "web").Summary["g"]
    assert (summary.Starting, summary.Queued) == (1, 0)
    assert log.fsm.state.get(t.JOBS, "web").Status == "running"

    log.apply(e.AllocClientUpdate(Updates=[e.AllocClientState(AllocID="web-alloc-0",
                                                              ClientStatus="running")]))
    a2 = log.fsm.state.get(t.ALLOCS, "web-alloc-0")
    assert a2.ClientStatus == "running" and a2.AllocModifyIndex == a.AllocModifyIndex
    assert log.fsm.state.get(t.JOB_SUMMARIES, "web").Summary["g"].Running == 1

    # a scheduler update of the alloc keeps the client's status
    log.apply(e.PlanResults(JobID="web", JobVersion=0,
                            Allocs=[alloc("web", 0, DesiredDescription="in-place")]))
    assert log.fsm.state.get(t.ALLOCS, "web-alloc-0").ClientStatus == "running"

    # node down: the scheduler stops it as lost
    log.apply(e.PlanResults(JobID="web", JobVersion=0, Stops=[e.AllocStop(
        AllocID="web-alloc-0", DesiredDescription="alloc is lost since its node is down",
        ClientStatus="lost")]))
    s = log.fsm.state.get(t.JOB_SUMMARIES, "web").Summary["g"]
    assert (s.Running, s.Lost) == (0, 1)
    assert log.fsm.state.get(t.JOBS, "web").Status == "dead"


def test_a_successful_eval_cancels_the_jobs_blocked_evals():
    log = Log()
    log.register(make_job())
    blocked = Evaluation(ID="blocked-1", JobID="web", Status="blocked", Type="service")
    log.apply(e.EvalUpdate(Evals=[blocked]))
    assert log.fsm.state.get(t.JOBS, "web").Status == "pending"
    log.apply(e.EvalUpdate(Evals=[Evaluation(ID="ok", JobID="web", Status="complete")]))
    b = log.fsm.state.get(t.EVALS, "blocked-1")
    assert b.Status == "canceled" and b.StatusDescription == 'evaluation "ok" successful'


def _random_alloc_workload(log: Log, rng: random.Random, steps: int) -> None:
    for j in range(3):
        log.register(make_job(f"job-{j}"))
    for i in range(4):
        log.apply(e.NodeRegister(Node=node(i)))
    n = 0
    for step in range(steps):
        op = rng.choice(["place", "place", "client", "client", "stop", "eval", "reregister"])
        jid = f"job-{rng.randrange(3)}"
        if op == "place":
            n += 1
            log.apply(e.PlanResults(JobID=jid, JobVersion=log.fsm.state.get(t.JOBS, jid).Version,
                                    Allocs=[alloc(jid, n, node_id=f"node-{rng.randrange(4)}")],
                                    Evals=[Evaluation(ID=f"pe-{step}", JobID=jid, Status="complete",
                                                      QueuedAllocations={"g": rng.randrange(3)})]))
        elif op == "client":
            ids = [a.ID for a in log.fsm.state.rows(t.ALLOCS)]
            if ids:
                log.apply(e.AllocClientUpdate(Updates=[e.AllocClientState(
                    AllocID=rng.choice(ids),
                    ClientStatus=rng.choice(["running", "complete", "failed", "pending"]))]))
        elif op == "stop":
            ids = [a.ID for a in log.fsm.state.rows(t.ALLOCS)]
            if ids:
                log.apply(e.PlanResults(JobID=jid, Stops=[e.AllocStop(
                    AllocID=rng.choice(ids), DesiredDescription="x",
                    ClientStatus=rng.choice(["", "lost"]))]))
        elif op == "eval":
            log.apply(e.EvalUpdate(Evals=[make_eval(jid, step)]))
        else:
            log.register(make_job(jid, Priority=rng.randint(1, 99)))


@pytest.mark.parametrize("seed", range(6))
def test_summaries_always_equal_a_recomputation_and_never_go_negative(seed):
    log = Log()
    _random_alloc_workload(log, random.Random(seed), 200)
    state = log.fsm.state
    txn = Txn(state, state.last_index)
    for summary in state.rows(t.JOB_SUMMARIES):
        assert summary.Summary == summarize(txn, summary.JobID, summary)
        for g in summary.Summary.values():
            assert min(g.Queued, g.Starting, g.Running, g.Complete, g.Failed, g.Lost) >= 0


@pytest.mark.parametrize("seed", range(3))
def test_alloc_entries_are_deterministic_and_snapshot_safe(seed):
    log = Log()
    _random_alloc_workload(log, random.Random(seed), 150)
    assert_replays_identically(log.entries, log.fsm.state)


def _kept_totals(state) -> tuple[dict, dict]:
    return (dict(state.totals(t.ALLOCS, t.NODE_USAGE).items()),
            {job: dict(m.items()) for job, m in state.totals(t.ALLOCS, t.JOB_COUNTS).items()})


@pytest.mark.parametrize("seed", range(4))
def test_running_totals_follow_every_write_and_survive_a_snapshot(seed):
    """The store's running totals (each node's usage, each job's counts per
    incarnation and group) equal a recount from the rows after each entry of a random
    workload (placements, client updates, stops, re-registrations), after allocations
    are deleted, and in a state restored from a snapshot."""
    from caravan.fsm.store import decode_state, encode_state
    from tests.sim.invariants import recount_totals
    log, rng = Log(), random.Random(seed)
    for _ in range(12):
        _random_alloc_workload(log, rng, 10)
        state = log.fsm.state
        assert _kept_totals(state) == recount_totals(state)
    txn = Txn(state, state.last_index + 1)
    for a in list(state.rows(t.ALLOCS))[::2]:
        txn.delete(t.ALLOCS, a.ID)
    txn.put(t.ALLOCS, alloc("job-0", 999, node_id="node-2",
                            Resources=Resources(CPU=7, MemoryMB=8, DiskMB=9)))
    pruned = txn.commit()
    assert _kept_totals(pruned) == recount_totals(pruned)
    assert _kept_totals(decode_state(encode_state(pruned))) == recount_totals(pruned)
    assert pruned.total(t.ALLOCS, "node_usage", "no-such-node") is None


def test_purging_a_job_cancels_its_blocked_eval():
    log = Log()
    log.register(make_job())
    log.apply(e.EvalUpdate(Evals=[Evaluation(ID="blocked-1", JobID="web", Status="blocked")]))
    log.apply(e.JobDeregister(JobID="web", Purge=True))
    blocked = log.fsm.state.get(t.EVALS, "blocked-1")
    assert blocked.Status == "canceled" and blocked.StatusDescription == "job purged"
    # a new job with the same ID starts without an inherited blocked eval
    log.register(make_job())
    assert log.fsm.state.get(t.JOBS, "web").Status == "pending"
    assert not [x for x in log.fsm.state.by_index(t.EVALS, t.BY_JOB, "web") if x.Status == "blocked"]


@pytest.mark.parametrize("final", ["complete", "failed", "lost"])
def test_a_late_report_does_not_revive_a_finished_or_lost_allocation(final):
    log = Log()
    log.register(make_job())
    log.apply(e.NodeRegister(Node=node(1)))
    log.apply(e.PlanResults(JobID="web", JobVersion=0, Allocs=[alloc("web", 0)]))
    if final == "lost":
        log.apply(e.PlanResults(JobID="web", JobVersion=0, Stops=[e.AllocStop(
            AllocID="web-alloc-0", DesiredDescription="alloc is lost since its node is down",
            ClientStatus="lost")]))
    else:
        log.apply(e.AllocClientUpdate(Updates=[e.AllocClientState(AllocID="web-alloc-0",
                                                                  ClientStatus=final)]))
    log.apply(e.AllocClientUpdate(Updates=[e.AllocClientState(AllocID="web-alloc-0",
                                                              ClientStatus="running")]))
    assert log.fsm.state.get(t.ALLOCS, "web-alloc-0").ClientStatus == final
    summary = log.fsm.state.get(t.JOB_SUMMARIES, "web").Summary["g"]
    assert summary.Running == 0


def test_plans_of_an_earlier_leadership_are_refused():
    log = Log()
    log.register(make_job())
    log.apply(e.NodeRegister(Node=node(1)))
    first = log.apply(e.LeaderEpochStart())["Epoch"]
    second = log.apply(e.LeaderEpochStart())["Epoch"]
    assert second > first and log.fsm.state.get(t.LEADERSHIP, "leader").Index == second
    stale = log.apply(e.PlanResults(JobID="web", Allocs=[alloc("web", 0)], Epoch=first))
    assert stale["Code"] == 409 and "earlier leadership" in stale["Error"]
    assert log.fsm.state.get(t.ALLOCS, "web-alloc-0") is None
    fresh = log.apply(e.PlanResults(JobID="web", Allocs=[alloc("web", 0)], Epoch=second))
    assert "Error" not in fresh and log.fsm.state.get(t.ALLOCS, "web-alloc-0") is not None
