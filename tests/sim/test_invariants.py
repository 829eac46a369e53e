"""Each simulation invariant passes on a sound state and fails, with a message naming
the culprit, on a state that breaks it; the virtual-time loop reports a deadlock."""
from __future__ import annotations

import asyncio
import random

import pytest
from msgspec.structs import replace

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.apply import FSM
from caravan.fsm.store import Txn
from caravan.fsm.structs import NetworkResource, Port
from caravan.fsm.summaries import refresh_summary
from tests.sim.invariants import SameStateHashes, StateChecks
from tests.sim.memlog import InvariantViolation, MemRaft
from tests.sim.vloop import Deadlock, VirtualTimeLoop
from tests.unit.test_scheduler_harness import Harness, mkjob, mknode


@pytest.fixture
def placed():
    """Two nodes, one job with three allocations placed by the real scheduler."""
    h = Harness()
    h.node(mknode(0, cpu=2000))
    h.node(mknode(1, cpu=2000))
    h.register(mkjob("web", count=3, cpu=600))
    assert len(h.live("web")) == 3
    return h.state


def _with(state, table, *rows, delete=()):
    """``state`` with ``rows`` written (and ``delete`` removed) by one more index;
    written allocations update their job's summary, as the FSM's writes do."""
    txn = Txn(state, state.last_index + 1)
    for row in rows:
        txn.put(table, row)
        if table == t.ALLOCS:
            refresh_summary(txn, row.JobID)
    for pk in delete:
        txn.delete(table, pk)
    return txn.commit()


def test_a_sound_state_passes(placed):
    StateChecks().check(placed)


def test_an_overcommitted_node_fails(placed):
    a = placed.by_index(t.ALLOCS, "job", "web")[0]
    big = replace(a, ID="big-alloc", Resources=replace(a.Resources, CPU=1900, Networks=None))
    with pytest.raises(InvariantViolation, match=r"overcommitted on cpu.*big-alloc"):
        StateChecks().check(_with(placed, t.ALLOCS, big))
    # a terminal allocation holds nothing
    StateChecks().check(_with(placed, t.ALLOCS, replace(big, DesiredStatus="stop")))


def test_a_port_held_twice_fails(placed):
    a, b = [x for x in placed.by_index(t.ALLOCS, "job", "web")][:2]
    b = replace(b, NodeID=a.NodeID, Resources=replace(b.Resources, CPU=1))
    a = replace(a, Resources=replace(a.Resources, CPU=1))
    port = a.Resources.Networks[0].DynamicPorts[0]
    net_b = replace(b.Resources.Networks[0], IP=a.Resources.Networks[0].IP,
                    DynamicPorts=[port])
    b = replace(b, Resources=replace(b.Resources, Networks=[net_b]))
    with pytest.raises(InvariantViolation, match=f"port .*:{port.Value} held by"):
        StateChecks().check(_with(placed, t.ALLOCS, a, b))


def test_a_group_network_outside_the_held_networks_fails():
    h = Harness()
    h.node(mknode(0, cpu=2000))
    job = mkjob("grp", count=2, cpu=100, ports=False)
    job.TaskGroups[0].Networks = [NetworkResource(
        ReservedPorts=[Port(Label="admin", Value=9100)], DynamicPorts=[Port(Label="http")])]
    h.register(job)
    (a,) = h.live("grp")     # the static port fits once on the one node
    assert [p.Label for p in a.shared_ports()] == ["admin", "http"]
    StateChecks().check(h.state)
    (net,) = a.SharedResources.Networks
    moved = replace(net, DynamicPorts=[replace(net.DynamicPorts[0], Value=net.DynamicPorts[0].Value + 1)])
    bad = replace(a, SharedResources=replace(a.SharedResources, Networks=[moved]))
    with pytest.raises(InvariantViolation, match=f"alloc {a.ID} group network .* is not among"):
        StateChecks().check(_with(h.state, t.ALLOCS, bad))
    twice = replace(net, DynamicPorts=[replace(net.DynamicPorts[0], Label="admin")])
    bad = replace(a, Resources=replace(a.Resources, Networks=[twice]),
                  SharedResources=replace(a.SharedResources, Networks=[twice]))
    with pytest.raises(InvariantViolation, match="repeat a label"):
        StateChecks().check(_with(h.state, t.ALLOCS, bad))


def test_an_alloc_of_an_unknown_job_or_node_fails(placed):
    a = placed.by_index(t.ALLOCS, "job", "web")[0]
    with pytest.raises(InvariantViolation, match="unknown node 'gone'"):
        StateChecks().check(_with(placed, t.ALLOCS, replace(a, NodeID="gone")))
    with pytest.raises(InvariantViolation, match="unknown job 'web'"):
        StateChecks().check(_with(placed, t.JOBS, delete=["web"]))


def test_an_alloc_on_a_node_without_its_host_volume_fails(placed):
    from caravan.fsm.structs import ClientHostVolumeConfig, VolumeRequest
    a = placed.by_index(t.ALLOCS, "job", "web")[0]
    tg = replace(a.Job.TaskGroups[0], Volumes={
        "d": VolumeRequest(Name="d", Type="host", Source="data")})
    needy = replace(a, Job=replace(a.Job, TaskGroups=[tg]))
    with pytest.raises(InvariantViolation, match=r"needs host volume 'data'"):
        StateChecks().check(_with(placed, t.ALLOCS, needy))
    node = placed.get(t.NODES, a.NodeID)
    read_only = replace(node, HostVolumes={"data": ClientHostVolumeConfig(
        Name="data", Path="/srv", ReadOnly=True)})
    state = _with(placed, t.NODES, read_only)
    with pytest.raises(InvariantViolation, match=r"read_only=False"):
        StateChecks().check(_with(state, t.ALLOCS, needy))
    writable = replace(read_only, HostVolumes={"data": replace(
        read_only.HostVolumes["data"], ReadOnly=False)})
    StateChecks().check(_with(_with(placed, t.NODES, writable), t.ALLOCS, needy))


def test_a_node_usage_total_that_drifted_fails(placed):
    from caravan.fsm.store import State, TableState
    ts = placed.tables[t.ALLOCS]
    node_id = placed.by_index(t.ALLOCS, "job", "web")[0].NodeID
    cpu, mem, disk = placed.total(t.ALLOCS, "node_usage", node_id)
    drifted = ts.indexes["node_usage"].set(node_id, (cpu + 1, mem, disk))
    tables = {**placed.tables, t.ALLOCS: TableState(ts.rows, {**ts.indexes,
                                                              "node_usage": drifted}, ts.index)}
    with pytest.raises(InvariantViolation, match=f"node {node_id} usage total"):
        StateChecks().check(State(tables, placed.last_index))


def test_job_counts_that_drifted_fail(placed):
    from caravan.fsm.store import State, TableState
    ts = placed.tables[t.ALLOCS]
    counts = ts.indexes["job_counts"]
    (inner, sums), = counts["web"].items()
    drifted = counts.set("web", counts["web"].set(inner, (sums[0] + 1, *sums[1:])))
    tables = {**placed.tables, t.ALLOCS: TableState(ts.rows, {**ts.indexes,
                                                              "job_counts": drifted}, ts.index)}
    with pytest.raises(InvariantViolation, match="job web allocation counts"):
        StateChecks().check(State(tables, placed.last_index))


def test_a_summary_that_drifted_from_the_allocations_fails(placed):
    summary = placed.get(t.JOB_SUMMARIES, "web")
    g = summary.Summary["g"]
    drifted = replace(summary, Summary={"g": replace(g, Starting=g.Starting + 1)})
    with pytest.raises(InvariantViolation, match="job web summary"):
        StateChecks().check(_with(placed, t.JOB_SUMMARIES, drifted))


def test_replicas_with_different_states_at_one_index_fail(placed):
    hashes = SameStateHashes()
    hashes.observe("s0", placed)
    hashes.observe("s1", placed)        # the same state object: nothing to compare
    node = placed.get(t.NODES, "node-000")
    other = _with(placed, t.NODES, replace(node, Name="renamed"))
    hashes.observe("s0", other)
    same_index = _with(placed, t.NODES, replace(node, Name="other name"))
    with pytest.raises(InvariantViolation, match="s2 state hash .* differs from s0's"):
        hashes.observe("s2", same_index)


def test_a_table_index_that_goes_back_fails():
    loop = VirtualTimeLoop()

    async def main():
        group = MemRaft(1, random.Random(3), lambda line: None)
        group.start()
        replica = group.replicas[0]
        fsm = FSM()
        fsm.apply(1, e.encode(e.Noop()))
        replica._observe_indexes(fsm.state)
        fsm.state = _with(fsm.state, t.NODES, mknode(0))
        replica._observe_indexes(fsm.state)              # index 2 stamped 2: fine
        stale = fsm.state
        stale.tables[t.NODES].index = 1                  # pretend the table went back
        with pytest.raises(InvariantViolation, match="table nodes index went back"):
            replica._observe_indexes(stale)
        replica.crash()

    loop.run_until_complete(main())
    loop.close()


def test_the_virtual_loop_jumps_time_and_reports_a_deadlock():
    loop = VirtualTimeLoop()

    async def hour():
        await asyncio.sleep(3600)
        return loop.time()

    assert loop.run_until_complete(hour()) == pytest.approx(3600)
    with pytest.raises(Deadlock):
        loop.run_until_complete(asyncio.Event().wait())
    loop.close()


def test_a_scaling_policy_without_its_block_fails(placed):
    from caravan.fsm.structs import ScalingPolicy
    stray = ScalingPolicy(ID="p1", Type="horizontal", Target={"Namespace": "default",
                                                             "Job": "web", "Group": "g"},
                          Min=0, Max=3, Enabled=True, CreateIndex=1, ModifyIndex=1)
    with pytest.raises(InvariantViolation, match=r"scaling policies \['p1'\]"):
        StateChecks().check(_with(placed, t.SCALING_POLICIES, stray))
