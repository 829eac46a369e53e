"""Fit and score: AllocsFit, ScoreFitBinPack, anti-affinity, normalization, limit, max."""
from __future__ import annotations

import math
import random

import pytest
from msgspec.structs import replace

from caravan.fsm.structs import (
    Allocation,
    AllocMetric,
    EphemeralDisk,
    Job,
    NetworkResource,
    Node,
    NodeCpuResources,
    NodeDiskResources,
    NodeMemoryResources,
    NodeReservedResources,
    NodeResources,
    Port,
    Resources,
    Task,
    TaskGroup,
)
from caravan.scheduler import fit
from caravan.scheduler import rank as r


def make_node(cpu=4096, mem=8192, disk=100_000, rcpu=0, rmem=0, rdisk=0, node_id="n1",
              **kw) -> Node:
    return Node(ID=node_id, NodeResources=NodeResources(
        Cpu=NodeCpuResources(CpuShares=cpu), Memory=NodeMemoryResources(MemoryMB=mem),
        Disk=NodeDiskResources(DiskMB=disk),
        Networks=[NetworkResource(Device="eth0", IP="10.0.0.1", MBits=1000)]),
        ReservedResources=NodeReservedResources(
            Cpu=NodeCpuResources(CpuShares=rcpu), Memory=NodeMemoryResources(MemoryMB=rmem),
            Disk=NodeDiskResources(DiskMB=rdisk)), **kw)


def used(cpu=0, mem=0, disk=0, **kw) -> Allocation:
    return Allocation(ID=kw.pop("ID", f"a{cpu}-{mem}-{disk}"),
                      Resources=Resources(CPU=cpu, MemoryMB=mem, DiskMB=disk), **kw)


# --- ScoreFit --------------------------------------------------------------------------

def nomad_score(free_cpu, free_mem):
    return min(max(20 - (10 ** free_cpu + 10 ** free_mem), 0), 18)


@pytest.mark.parametrize("util,expected", [
    (fit.Usage(0, 0), 0.0),                                  # empty node
    (fit.Usage(2048, 4096), 13.675444679663241),             # half used: 20 - 2*10^0.5
    (fit.Usage(1024, 2048), 8.753173496193018),              # quarter used: 20 - 2*10^0.75
    (fit.Usage(4096, 8192), 18.0),                           # perfectly full
    (fit.Usage(8192, 16384), 18.0),                          # over: clamped
    (fit.Usage(4096, 0), 9.0),                               # 20 - (10^0 + 10^1)
])
def test_score_fit_matches_nomads_formula(util, expected):
    node = make_node()
    assert fit.score_fit(node, util) == pytest.approx(expected)
    assert fit.score_fit(node, util) == pytest.approx(
        nomad_score(1 - util.cpu / 4096, 1 - util.memory_mb / 8192))


def test_score_fit_uses_capacity_after_reserved():
    node = make_node(cpu=5096, mem=9216, rcpu=1000, rmem=1024)
    assert fit.score_fit(node, fit.Usage(2048, 4096)) == pytest.approx(20 - 2 * math.sqrt(10))


def test_score_fit_without_capacity_counts_as_full():
    node = make_node(cpu=0, mem=0)
    assert fit.score_fit(node, fit.Usage(0, 0)) == 18.0


def test_seed_era_node_resources():
    node = Node(ID="old", Resources=Resources(CPU=2000, MemoryMB=1000, DiskMB=500),
                Reserved=Resources(CPU=1000, MemoryMB=0, DiskMB=0))
    assert fit.node_capacity(node) == fit.Usage(1000, 1000, 500)


# --- AllocsFit -------------------------------------------------------------------------

@pytest.mark.parametrize("allocs,fits,dim", [
    ([used(1000, 1000, 1000)], True, ""),
    ([used(4096, 8192, 100_000)], True, ""),                      # exactly full fits
    ([used(4097, 1, 1)], False, "cpu exhausted"),
    ([used(1, 8193, 1)], False, "memory exhausted"),
    ([used(1, 1, 100_001)], False, "disk exhausted"),
    ([used(5000, 9000, 200_000)], False, "cpu exhausted"),        # cpu is checked first
    ([used(3000, 0, 0), used(2000, 0, 0, ID="b")], False, "cpu exhausted"),
    ([used(3000, 0, 0), used(2000, 0, 0, ID="b", ClientStatus="complete")], True, ""),
    ([used(3000, 0, 0), used(2000, 0, 0, ID="b", DesiredStatus="stop")], True, ""),
])
def test_allocs_fit(allocs, fits, dim):
    ok, why, _ = fit.allocs_fit(make_node(), allocs)
    assert (ok, why) == (fits, dim)


def test_allocs_fit_counts_reserved_and_reports_usage():
    node = make_node(cpu=2000, rcpu=1500)
    assert fit.allocs_fit(node, [used(600)]) == (False, "cpu exhausted", fit.Usage(600, 0, 0))
    assert fit.allocs_fit(node, [used(500)])[:2] == (True, "")


def test_allocs_fit_network_checks():
    net = NetworkResource(Device="eth0", IP="10.0.0.1", MBits=600,
                          ReservedPorts=[Port(Label="a", Value=80)])
    a = Allocation(ID="a", Resources=Resources(CPU=1, Networks=[net]))
    b = Allocation(ID="b", Resources=Resources(CPU=1, Networks=[net]))
    assert fit.allocs_fit(make_node(), [a, b])[:2] == (False, "reserved port collision")
    wide = NetworkResource(Device="eth0", IP="10.0.0.1", MBits=1001)
    assert fit.allocs_fit(make_node(), [Allocation(Resources=Resources(Networks=[wide]))])[:2] == \
        (False, "bandwidth exceeded")


def test_alloc_usage_from_task_resources():
    alloc = Allocation(TaskResources={"a": Resources(CPU=100, MemoryMB=64, DiskMB=999),
                                      "b": Resources(CPU=50, MemoryMB=32)},
                       SharedResources=Resources(DiskMB=300))
    assert fit.alloc_usage(alloc) == fit.Usage(150, 96, 300)


# --- stages ----------------------------------------------------------------------------

def group(cpu=500, mem=256, count=3, networks=None, task_networks=None) -> TaskGroup:
    return TaskGroup(Name="g", Count=count, EphemeralDisk=EphemeralDisk(SizeMB=300),
                     Networks=networks,
                     Tasks=[Task(Name="t", Driver="docker", Resources=Resources(
                         CPU=cpu, MemoryMB=mem, Networks=task_networks))])


def run_binpack(nodes, tg, allocs=None):
    metric, board = AllocMetric(), r.ScoreBoard()
    out = list(r.binpack(nodes, tg, lambda nid: (allocs or {}).get(nid, []), random.Random(1),
                         metric, board))
    return out, metric, board


def test_binpack_scores_tighter_nodes_higher():
    busy = make_node(node_id="busy")
    idle = make_node(node_id="idle")
    out, metric, board = run_binpack([idle, busy], group(), {"busy": [used(2048, 4096)]})
    board.finish(metric)
    scores = {o.node.ID: o.scores[0] for o in out}
    assert scores["busy"] > scores["idle"]
    assert scores["idle"] == pytest.approx(
        nomad_score(1 - 500 / 4096, 1 - 256 / 8192) / 18)
    assert board.scores_of("busy")["binpack"] == scores["busy"]
    assert metric.Scores is None  # deprecated since Nomad 0.9; 1.x leaves it unset


def test_binpack_resources_and_ports():
    tg = group(networks=[NetworkResource(ReservedPorts=[Port(Label="http", Value=8080)])],
               task_networks=[NetworkResource(DynamicPorts=[Port(Label="rpc")])])
    (option,), _, _ = run_binpack([make_node()], tg)
    res = option.resources
    assert (res.CPU, res.MemoryMB, res.DiskMB) == (500, 256, 300)
    assert [n.ReservedPorts[0].Value for n in res.Networks[:1]] == [8080]
    rpc = option.task_resources["t"].Networks[0].DynamicPorts[0]
    assert 20000 <= rpc.Value <= 32000 and rpc.Label == "rpc"
    assert res.Networks[1] == option.task_resources["t"].Networks[0]


def test_binpack_group_network_is_the_shared_offer():
    tg = group(networks=[NetworkResource(Mode="host", Hostname="web-1",
                                         ReservedPorts=[Port(Label="admin", Value=9100)],
                                         DynamicPorts=[Port(Label="http"),
                                                       Port(Label="grpc", To=-1),
                                                       Port(Label="app", To=8080)])],
               task_networks=[NetworkResource(DynamicPorts=[Port(Label="rpc")])])
    (option,), _, _ = run_binpack([make_node()], tg)
    (net,) = option.shared.Networks
    assert option.shared.DiskMB == 300 and net == option.resources.Networks[0]
    assert (net.Mode, net.IP, net.Device, net.Hostname) == ("host", "10.0.0.1", "eth0", "web-1")
    assert [(p.Label, p.Value, p.To) for p in net.ReservedPorts] == [("admin", 9100, 0)]
    http, grpc, app = net.DynamicPorts
    assert all(20000 <= p.Value <= 32000 for p in (http, grpc, app))
    assert len({http.Value, grpc.Value, app.Value, 9100,
                option.task_resources["t"].Networks[0].DynamicPorts[0].Value}) == 5
    assert (http.To, grpc.To, app.To) == (0, grpc.Value, 8080)   # -1: the host's port
    alloc = Allocation(ID="a", SharedResources=option.shared)
    assert [(p.Label, p.Value, p.To, p.HostIP) for p in alloc.shared_ports()] == [
        ("admin", 9100, 0, "10.0.0.1"), ("http", http.Value, 0, "10.0.0.1"),
        ("grpc", grpc.Value, grpc.Value, "10.0.0.1"), ("app", app.Value, 8080, "10.0.0.1")]


def test_binpack_without_group_network_shares_only_the_disk():
    (option,), _, _ = run_binpack([make_node()], group())
    assert option.shared == Resources(DiskMB=300)
    (option,), _, _ = run_binpack([make_node()], group(
        task_networks=[NetworkResource(DynamicPorts=[Port(Label="rpc")])]))
    assert option.shared == Resources(DiskMB=300)


def test_group_static_port_is_reserved_once_per_node():
    tg = group(networks=[NetworkResource(ReservedPorts=[Port(Label="admin", Value=9100)],
                                         DynamicPorts=[Port(Label="http")])])
    node = make_node()
    (first,), _, _ = run_binpack([node], tg)
    placed = Allocation(ID="p", Resources=first.resources, SharedResources=first.shared)
    out, metric, _ = run_binpack([node], tg, {"n1": [placed]})
    assert out == []
    assert metric.DimensionExhausted == {"network: reserved port collision admin=9100": 1}
    # the plan applier's re-check refuses the same placement twice on the node
    assert fit.allocs_fit(node, [placed, replace(placed, ID="q")])[:2] == (
        False, fit.DIM_PORT_COLLISION)


def test_binpack_exhaustion_dimensions():
    full = make_node(node_id="full", cpu=100)
    taken = make_node(node_id="taken")
    port = Allocation(ID="x", Resources=Resources(Networks=[NetworkResource(
        Device="eth0", IP="10.0.0.1", ReservedPorts=[Port(Label="h", Value=8080)])]))
    tg = group(networks=[NetworkResource(ReservedPorts=[Port(Label="http", Value=8080)])])
    out, metric, _ = run_binpack([full, taken], tg, {"taken": [port]})
    assert out == []
    assert metric.NodesExhausted == 2
    assert metric.DimensionExhausted == {"cpu exhausted": 1,
                                         "network: reserved port collision http=8080": 1}


def test_binpack_two_tasks_never_share_a_port():
    tg = TaskGroup(Name="g", Count=1, Tasks=[
        Task(Name=n, Driver="d", Resources=Resources(CPU=1, MemoryMB=1, Networks=[
            NetworkResource(DynamicPorts=[Port(Label="p")])])) for n in ("a", "b")])
    node = make_node()
    node.NodeResources.MinDynamicPort = node.NodeResources.MaxDynamicPort = 25000
    out, metric, _ = run_binpack([node], tg)
    assert out == [] and metric.DimensionExhausted == {"network: dynamic port selection failed": 1}


def ranked(node_id, *scores, final=None):
    opt = r.RankedNode(make_node(node_id=node_id), [], Resources(), {}, list(scores))
    opt.final_score = scores[0] if final is None and scores else (final or 0.0)
    return opt


def test_job_anti_affinity_penalty():
    job, tg = Job(ID="j"), group(count=4)
    mine = [Allocation(ID=str(i), JobID="j", TaskGroup="g") for i in range(2)]
    other = [Allocation(ID="o", JobID="j", TaskGroup="other"), Allocation(ID="k", JobID="k",
                                                                          TaskGroup="g")]
    a, b = ranked("a", 0.5), ranked("b", 0.5)
    a.proposed, b.proposed = mine, other
    board = r.ScoreBoard()
    out = list(r.job_anti_affinity([a, b], job, tg, board))
    assert out[0].scores == [0.5, -(2 + 1) / 4]
    assert out[1].scores == [0.5]                   # no collision: not averaged in
    metric = AllocMetric()
    board.finish(metric)
    assert board.scores_of("a") == {"job-anti-affinity": -0.75}
    assert board.scores_of("b") == {"job-anti-affinity": 0.0}


def test_normalize_averages_and_score_metadata_keeps_top_five():
    board = r.ScoreBoard()
    options = []
    for i in range(7):
        opt = ranked(f"n{i}", i / 10, -0.1)
        board.record(opt.node, "binpack", i / 10)
        options.append(opt)
    out = list(r.normalize_scores(options, board))
    assert out[3].final_score == pytest.approx((0.3 - 0.1) / 2)
    metric = AllocMetric()
    board.finish(metric)
    assert [m.NodeID for m in metric.ScoreMetaData] == ["n6", "n5", "n4", "n3", "n2"]
    assert metric.ScoreMetaData[0].Scores == {"binpack": 0.6}
    assert metric.ScoreMetaData[0].NormScore == pytest.approx(0.25)


def test_limit_stops_after_count():
    opts = [ranked(f"n{i}", 0.5) for i in range(5)]
    assert [o.node.ID for o in r.limit(opts, 2)] == ["n0", "n1"]
    assert [o.node.ID for o in r.limit(opts[:1], 3)] == ["n0"]
    assert list(r.limit([], 2)) == []


def test_limit_skips_low_scores_while_better_ones_follow():
    opts = [ranked("bad1", -0.5), ranked("good1", 0.5), ranked("bad2", 0.0), ranked("good2", 0.4)]
    assert [o.node.ID for o in r.limit(opts, 2)] == ["good1", "good2"]


def test_limit_falls_back_to_skipped_options():
    opts = [ranked("bad1", -0.5), ranked("bad2", -0.2)]
    assert [o.node.ID for o in r.limit(opts, 2)] == ["bad1", "bad2"]
    many_bad = [ranked(f"bad{i}", -0.1) for i in range(5)] + [ranked("good", 0.1)]
    # At most 3 are skipped; the 4th poor option is taken as it comes.
    assert [o.node.ID for o in r.limit(many_bad, 1)] == ["bad3"]


def test_max_score_first_wins_ties():
    opts = [ranked("a", 0.2), ranked("b", 0.7), ranked("c", 0.7)]
    assert r.max_score(opts).node.ID == "b"
    assert r.max_score([]) is None


def test_node_allocs_follow_the_rows_index_and_hand_back_the_same_list():
    """The allocations' node index holds the rows, and a node's entry is replaced when
    any of its rows changes: ``NodeAllocs`` returns the same list object while nothing
    on the node changed (so ``LiveAllocs`` knows it at once), and a fresh one after; the
    store's running total of the node's usage follows the same writes."""
    from msgspec.structs import replace

    from caravan.fsm import schema as t
    from caravan.fsm.store import State, Txn

    def commit(state, index, *rows):
        txn = Txn(state, index)
        for row in rows:
            txn.put(t.ALLOCS, row)
        return txn.commit()

    a1 = Allocation(ID="a1", NodeID="n1", JobID="j", Resources=Resources(CPU=100, MemoryMB=10))
    a2 = Allocation(ID="a2", NodeID="n1", JobID="j", Resources=Resources(CPU=200, MemoryMB=20))
    b1 = Allocation(ID="b1", NodeID="n2", JobID="j", Resources=Resources(CPU=50, MemoryMB=5))
    s1 = commit(State.empty(), 1, a2, a1, b1)
    cache, live = fit.NodeAllocs(), fit.LiveAllocs()
    rows = cache(s1, "n1")
    assert [a.ID for a in rows] == ["a1", "a2"] and cache(s1, "nope") == []
    assert live("n1", rows) == rows and fit.node_usage(s1, "n1") == fit.Usage(300, 30, 0)

    s2 = commit(s1, 2, replace(b1, ClientStatus="running"))     # another node's row
    assert cache(s2, "n1") is rows
    assert s2.by_index(t.ALLOCS, "node", "n2")[0].ClientStatus == "running"

    s3 = commit(s2, 3, replace(a2, ClientStatus="complete"))    # same key, new row
    fresh = cache(s3, "n1")
    assert fresh is not rows and fresh[1].ClientStatus == "complete"
    assert s3.by_index(t.ALLOCS, "node", "n1") == fresh
    assert [a.ID for a in live("n1", fresh)] == ["a1"]
    assert fit.node_usage(s3, "n1") == fit.Usage(100, 10, 0)

    s4 = commit(s3, 4, replace(a1, NodeID="n2"))                # moved: both keys change
    assert [a.ID for a in cache(s4, "n1")] == ["a2"]
    assert [a.ID for a in cache(s4, "n2")] == ["a1", "b1"]
    assert fit.node_usage(s4, "n1") == fit.Usage() and fit.node_usage(s4, "n2") == fit.Usage(150, 15, 0)


# --- node affinity, spread, preemption (scheduler/affinity.py, spread.py, preemption.py) --

import msgspec  # noqa: E402

from caravan.fsm.structs import Affinity, Spread, SpreadTarget  # noqa: E402
from caravan.scheduler import affinity as aff  # noqa: E402
from caravan.scheduler import preemption as pre  # noqa: E402
from caravan.scheduler import spread as sp  # noqa: E402


def dc_node(node_id, dc, **meta):
    return make_node(node_id=node_id, Datacenter=dc, Meta=meta)


def test_affinity_score_is_matching_weight_over_absolute_weights():
    affinities = [Affinity(LTarget="${node.datacenter}", RTarget="dc1", Operand="=", Weight=60),
                  Affinity(LTarget="${meta.rack}", RTarget="r1", Operand="=", Weight=-40)]
    assert aff.affinity_score(dc_node("a", "dc1", rack="r2"), affinities) == 0.6
    assert aff.affinity_score(dc_node("b", "dc1", rack="r1"), affinities) == pytest.approx(0.2)
    assert aff.affinity_score(dc_node("c", "dc2", rack="r1"), affinities) == -0.4
    assert aff.affinity_score(dc_node("d", "dc2"), affinities) == 0.0
    assert aff.affinity_score(dc_node("d", "dc2"), []) == 0.0


def test_affinity_operands_are_the_constraint_operands():
    node = make_node(node_id="n", Attributes={"kernel.version": "5.10.2", "cpu.arch": "amd64"})
    assert aff.matches(Affinity(LTarget="${attr.kernel.version}", RTarget=">= 5.4",
                                Operand="version", Weight=10), node)
    assert aff.matches(Affinity(LTarget="${attr.cpu.arch}", RTarget="^amd", Operand="regexp",
                                Weight=10), node)
    assert not aff.matches(Affinity(LTarget="${attr.missing}", RTarget="x", Operand="=",
                                    Weight=10), node)


def test_group_affinities_job_group_and_tasks():
    a1, a2, a3 = (Affinity(LTarget=f"${{meta.{k}}}", RTarget="1", Operand="=", Weight=10)
                  for k in "xyz")
    tg = TaskGroup(Name="g", Affinities=[a2], Tasks=[Task(Name="t", Affinities=[a3])])
    assert aff.group_affinities(Job(ID="j", Affinities=[a1]), tg) == [a1, a2, a3]


def test_node_affinity_stage_scores_only_non_zero():
    affinities = [Affinity(LTarget="${node.datacenter}", RTarget="dc1", Operand="=", Weight=50)]
    a = r.RankedNode(dc_node("a", "dc1"), [], Resources(), {}, [0.5])
    b = r.RankedNode(dc_node("b", "dc2"), [], Resources(), {}, [0.5])
    board = r.ScoreBoard()
    out = list(aff.node_affinity([a, b], affinities, board))
    assert out[0].scores == [0.5, 1.0] and out[1].scores == [0.5]
    assert board.scores_of("a") == {"node-affinity": 1.0}
    assert board.scores_of("b") == {}
    board = r.ScoreBoard()
    list(aff.node_affinity([r.RankedNode(dc_node("c", "dc1"), [], Resources(), {}, [])], [], board))
    assert board.scores_of("c") == {"node-affinity": 0.0}   # as Nomad shows without affinities


def spread_job(count, *spreads, job_spreads=None):
    tg = TaskGroup(Name="g", Count=count, Spreads=list(spreads) or None)
    return Job(ID="j", Spreads=job_spreads, TaskGroups=[tg]), tg


def test_spread_targets_desired_counts_and_boosts():
    spread = Spread(Attribute="${node.datacenter}", Weight=100, SpreadTarget=[
        SpreadTarget(Value="dc1", Percent=70), SpreadTarget(Value="dc2", Percent=30)])
    job, tg = spread_job(10, spread)
    nodes = {"a": dc_node("a", "dc1"), "b": dc_node("b", "dc2"), "c": dc_node("c", "dc3")}
    scorer = sp.SpreadScorer(job, tg, {"a": 3, "b": 1}, nodes.get)
    use = scorer.use_maps({})
    assert use == [{"dc1": 3, "dc2": 1}]
    # dc1: desired 7, used 3 (+1 for this placement) -> (7-4)/7
    assert scorer.score(nodes["a"], use) == pytest.approx(3 / 7)
    assert scorer.score(nodes["b"], use) == pytest.approx((3 - 2) / 3)
    # dc3 has no target and the targets take 100%: no implicit target, the penalty
    assert scorer.score(nodes["c"], use) == -1.0
    # the plan's placements count too, its stops count as gone
    proposed = {"b": [Allocation(ID="p1", JobID="j", TaskGroup="g"),
                      Allocation(ID="p2", JobID="j", TaskGroup="g")],
                "a": [Allocation(ID="s", JobID="j", TaskGroup="g", DesiredStatus="stop")]}
    use = scorer.use_maps(proposed)
    assert use == [{"dc1": 2, "dc2": 3}]
    assert scorer.score(nodes["b"], use) == pytest.approx((3 - 4) / 3)   # past desired


def test_spread_implicit_target_and_missing_attribute():
    spread = Spread(Attribute="${meta.rack}", Weight=50,
                    SpreadTarget=[SpreadTarget(Value="r1", Percent=50)])
    job, tg = spread_job(4, spread)
    nodes = {"a": dc_node("a", "dc1", rack="r1"), "b": dc_node("b", "dc1", rack="r2"),
             "c": dc_node("c", "dc1", rack="r3"), "d": dc_node("d", "dc1")}
    scorer = sp.SpreadScorer(job, tg, {"b": 1}, nodes.get)
    use = scorer.use_maps({})
    assert use == [{"*": 1}]            # r2 counts as the implicit target
    assert scorer.score(nodes["c"], use) == pytest.approx((2 - 2) / 2)
    assert scorer.score(nodes["a"], use) == pytest.approx((2 - 1) / 2)
    assert scorer.score(nodes["d"], use) == -1.0


def test_even_spread_boost():
    assert sp.even_boost({}, "dc1", True) == 0.0
    assert sp.even_boost({"dc1": 2}, "dc9", False) == -1.0
    assert sp.even_boost({"dc1": 2, "dc2": 2}, "dc1", True) == -1.0     # even: penalty
    assert sp.even_boost({"dc1": 2, "dc2": 1}, "dc3", True) == 1.0      # unused value
    assert sp.even_boost({"dc1": 3, "dc2": 1}, "dc2", True) == 2.0      # least used
    assert sp.even_boost({"dc1": 3, "dc2": 1}, "dc1", True) == -2.0     # most used


def test_spread_weights_are_shares_of_the_sum():
    s1 = Spread(Attribute="${node.datacenter}", Weight=75,
                SpreadTarget=[SpreadTarget(Value="dc1", Percent=100)])
    s2 = Spread(Attribute="${meta.rack}", Weight=25,
                SpreadTarget=[SpreadTarget(Value="r1", Percent=100)])
    job, tg = spread_job(2, s1, job_spreads=[s2])
    node = dc_node("a", "dc1", rack="r1")
    scorer = sp.SpreadScorer(job, tg, {}, {"a": node}.get)
    # each: (2 - 1) / 2 times its share of the weights
    assert scorer.score(node, scorer.use_maps({})) == pytest.approx(0.5 * 0.75 + 0.5 * 0.25)


def prio_alloc(alloc_id, priority, cpu, mem, job=None, tg="g", migrate=None):
    j = Job(ID=job or f"job-p{priority}", Priority=priority,
            TaskGroups=[TaskGroup(Name=tg, Migrate=migrate)])
    return Allocation(ID=alloc_id, JobID=j.ID, Job=j, TaskGroup=tg, NodeID="n1",
                      Resources=Resources(CPU=cpu, MemoryMB=mem, DiskMB=0))


def test_preempt_takes_lowest_priorities_first_and_only_what_is_needed():
    node = make_node(cpu=4000, mem=4000, disk=10_000)
    current = [prio_alloc("low-big", 20, 2000, 2000), prio_alloc("low-small", 20, 1000, 1000),
               prio_alloc("mid", 40, 1000, 1000)]
    victims = pre.preempt_for_group(node, current, fit.Usage(1000, 1000, 0), job_priority=100)
    assert [a.ID for a in victims] == ["low-small"]     # the closest to the ask
    victims = pre.preempt_for_group(node, current, fit.Usage(2500, 2500, 0), job_priority=100)
    assert [a.ID for a in victims] == ["low-small", "low-big"]   # farthest from the ask first
    # priorities within 10 of the job's are never candidates
    assert pre.preempt_for_group(node, current, fit.Usage(1000, 1000, 0), job_priority=25) is None


def test_preempt_none_when_evicting_everything_would_not_do():
    node = make_node(cpu=4000, mem=4000, disk=10_000)
    current = [prio_alloc("low", 20, 1000, 1000), prio_alloc("high", 95, 3000, 3000)]
    assert pre.preempt_for_group(node, current, fit.Usage(2000, 2000, 0), job_priority=100) is None


def test_preempt_penalizes_groups_past_their_migrate_max_parallel():
    node = make_node(cpu=3000, mem=3000, disk=10_000)
    current = [prio_alloc("a", 20, 1000, 1000, job="ja", migrate={"MaxParallel": 1}),
               prio_alloc("b", 20, 1200, 1200, job="jb")]
    ask = fit.Usage(1000, 1000, 0)
    assert [v.ID for v in pre.preempt_for_group(node, current, ask, 100)] == ["a"]
    taken = {("default", "ja", "g"): 1}
    assert [v.ID for v in pre.preempt_for_group(node, current, ask, 100, taken)] == ["b"]


def test_preemption_score_prefers_fewer_and_lower_priorities():
    low = [prio_alloc("a", 20, 1, 1)]
    many = [prio_alloc(str(i), 20, 1, 1) for i in range(5)]
    high = [prio_alloc("h", 80, 1, 1)]
    assert pre.net_priority(many) == 20 + 100 / 20
    assert pre.preemption_score(low) > pre.preemption_score(many) > 0.5
    assert pre.preemption_score(low) > pre.preemption_score(high)
    assert pre.preemption_score([]) == pytest.approx(1 / (1 + math.exp(0.0048 * -2048)))


def test_binpack_offers_a_full_node_when_preemption_frees_it():
    node = make_node(cpu=2000, mem=2000, disk=10_000, node_id="n1")
    victim = prio_alloc("v", 20, 1500, 1500)
    tg = group(cpu=1000, mem=1000)
    board, metric = r.ScoreBoard(), AllocMetric()
    plain = list(r.binpack([node], tg, lambda _: [victim], random.Random(1), metric, board))
    assert plain == [] and metric.NodesExhausted == 1
    out = list(r.binpack([node], tg, lambda _: [victim], random.Random(1), AllocMetric(),
                         r.ScoreBoard(), preempt=pre.Preemptor(100, tg)))
    assert [o.node.ID for o in out] == ["n1"] and [a.ID for a in out[0].preempted] == ["v"]
    scored = list(pre.preemption_scores(out, board))
    assert scored[0].scores[-1] == pytest.approx(pre.preemption_score([victim]))


def port_alloc(alloc_id, priority, port, mbits=0, cpu=100):
    a = prio_alloc(alloc_id, priority, cpu, 64)
    net = NetworkResource(Device="eth0", IP="10.0.0.1", MBits=mbits,
                          ReservedPorts=[Port(Label="p", Value=port)] if port else None)
    return msgspec.structs.replace(a, Resources=Resources(CPU=cpu, MemoryMB=64, DiskMB=0,
                                                          Networks=[net]))


def test_network_preemption_frees_a_reserved_port():
    node = make_node(cpu=4000, mem=4000, disk=10_000, node_id="n1")
    tg = group(cpu=100, mem=64, task_networks=[NetworkResource(
        MBits=0, ReservedPorts=[Port(Label="web", Value=8080)])])
    holder = port_alloc("holder", 20, 8080)
    other = port_alloc("other", 20, 9090)
    board, metric = r.ScoreBoard(), AllocMetric()
    assert list(r.binpack([node], tg, lambda _: [holder, other], random.Random(1), metric,
                          board)) == []
    out = list(r.binpack([node], tg, lambda _: [holder, other], random.Random(1),
                         AllocMetric(), r.ScoreBoard(), preempt=pre.Preemptor(100, tg)))
    assert [a.ID for a in out[0].preempted] == ["holder"]
    assert out[0].task_resources["t"].Networks[0].ReservedPorts[0].Value == 8080
    # a holder too close in priority cannot be evicted, so the node is not an option
    assert list(r.binpack([node], tg, lambda _: [holder], random.Random(1), AllocMetric(),
                          r.ScoreBoard(), preempt=pre.Preemptor(25, tg))) == []


def test_network_preemption_frees_bandwidth_with_no_more_victims_than_needed():
    node = make_node(cpu=4000, mem=4000, disk=10_000, node_id="n1")   # 1000 MBits
    tg = group(cpu=100, mem=64, task_networks=[NetworkResource(MBits=400)])
    current = [port_alloc("mid", 40, 0, mbits=500), port_alloc("low", 20, 0, mbits=300),
               port_alloc("high", 95, 0, mbits=200)]
    out = list(r.binpack([node], tg, lambda _: current, random.Random(1), AllocMetric(),
                         r.ScoreBoard(), preempt=pre.Preemptor(100, tg)))
    # low (300) first, not enough; mid (500) then suffices alone, so low stays
    assert [a.ID for a in out[0].preempted] == ["mid"]
    current = [port_alloc("mid", 40, 0, mbits=200), port_alloc("low", 20, 0, mbits=150),
               port_alloc("high", 95, 0, mbits=600)]
    out = list(r.binpack([node], tg, lambda _: current, random.Random(1), AllocMetric(),
                         r.ScoreBoard(), preempt=pre.Preemptor(100, tg)))
    assert [a.ID for a in out[0].preempted] == ["low", "mid"]
