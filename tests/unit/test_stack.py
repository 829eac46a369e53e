"""The whole chain: candidates, filters, bin-packing, limit, metrics, determinism."""
from __future__ import annotations

import random

import msgspec
import pytest

from caravan.fsm.structs import (
    Allocation,
    AllocMetric,
    Constraint,
    DriverInfo,
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
from caravan.scheduler.feasible import FILTER_CLASS_INELIGIBLE, FILTER_DRIVERS, computed_class, constraint_checker
from caravan.scheduler.stack import Eligibility, Placement, Stack, select_limit, wrapped_checks


def make_node(i, cpu=4000, mem=8192, drivers=("docker",), dc="dc1", node_class="",
              meta=None, **kw) -> Node:
    kw.setdefault("Status", "ready")
    return Node(
        ID=f"node-{i:02d}", Name=f"n{i}", Datacenter=dc, NodeClass=node_class,
        Attributes={"kernel.name": "linux", **{f"driver.{d}": "1" for d in drivers}},
        Meta=meta or {},
        NodeResources=NodeResources(
            Cpu=NodeCpuResources(CpuShares=cpu), Memory=NodeMemoryResources(MemoryMB=mem),
            Disk=NodeDiskResources(DiskMB=50_000),
            Networks=[NetworkResource(Device="eth0", CIDR=f"10.0.0.{i}/32", IP=f"10.0.0.{i}",
                                      MBits=1000)]),
        ReservedResources=NodeReservedResources(), **kw)


def make_job(count=3, job_type="service", constraints=None, tg_constraints=None,
             networks=None, cpu=500, mem=256, driver="docker", **kw) -> Job:
    tg = TaskGroup(Name="web", Count=count, Constraints=tg_constraints, Networks=networks,
                   EphemeralDisk=EphemeralDisk(SizeMB=300),
                   Tasks=[Task(Name="app", Driver=driver,
                               Resources=Resources(CPU=cpu, MemoryMB=mem, DiskMB=0))])
    base = dict(ID="web", Namespace="default", Type=job_type, Datacenters=["dc1"],
                NodePool="default", Constraints=constraints, TaskGroups=[tg])
    base.update(kw)
    return Job(**base)


def existing(node: Node, cpu, mem, job="other", tg="x", alloc_id=None, **kw) -> Allocation:
    return Allocation(ID=alloc_id or f"{job}-{node.ID}-{cpu}", JobID=job, TaskGroup=tg,
                      NodeID=node.ID, Resources=Resources(CPU=cpu, MemoryMB=mem, DiskMB=0),
                      **kw)


def place(job, nodes, allocs=None, seed=1, times=1):
    """Place ``times`` allocations the way a scheduler would: each one proposed."""
    stack = Stack(job, nodes, allocs or {}, random.Random(seed))
    tg = job.TaskGroups[0]
    proposed: dict[str, list[Allocation]] = {}
    out = []
    for i in range(times):
        placement = stack.select(tg, proposed)
        out.append(placement)
        if placement.node is not None:
            alloc = Allocation(ID=f"new-{i}", JobID=job.ID, TaskGroup=tg.Name,
                               Namespace="default", NodeID=placement.node.ID,
                               Resources=placement.resources,
                               TaskResources=placement.task_resources)
            proposed.setdefault(placement.node.ID, []).append(alloc)
    return out


def test_places_on_the_better_packed_node():
    nodes = [make_node(1), make_node(2)]
    allocs = {"node-02": [existing(nodes[1], 2000, 4096)]}
    for seed in range(10):   # both nodes are compared whatever the shuffle
        (p,) = place(make_job(), nodes, allocs, seed=seed)
        assert p.node.ID == "node-02"
    metas = {m.NodeID: m for m in p.metric.ScoreMetaData}
    assert metas["node-02"].Scores["binpack"] > metas["node-01"].Scores["binpack"]
    assert [m.NodeID for m in p.metric.ScoreMetaData] == ["node-02", "node-01"]


def test_placement_resources():
    job = make_job(networks=[NetworkResource(DynamicPorts=[Port(Label="http", To=-1)],
                                             ReservedPorts=[Port(Label="admin", Value=9090)])])
    (p,) = place(job, [make_node(1)])
    assert isinstance(p, Placement)
    assert (p.resources.CPU, p.resources.MemoryMB, p.resources.DiskMB) == (500, 256, 300)
    (net,) = p.resources.Networks
    assert (net.IP, net.Device, net.ReservedPorts[0].Value) == ("10.0.0.1", "eth0", 9090)
    assert net.DynamicPorts[0].Value == net.DynamicPorts[0].To
    assert p.task_resources["app"].CPU == 500


def test_metrics_explain_filtered_and_exhausted_nodes():
    nodes = [make_node(1), make_node(2, drivers=("exec",)), make_node(3, cpu=100)]
    (p,) = place(make_job(), nodes)
    assert p.node.ID == "node-01"
    m = p.metric
    assert (m.NodesEvaluated, m.NodesFiltered, m.NodesExhausted, m.NodesInPool) == (3, 1, 1, 3)
    assert m.NodesAvailable == {"dc1": 3}
    assert m.ConstraintFiltered == {"missing drivers": 1}
    assert m.DimensionExhausted == {"cpu exhausted": 1}
    assert m.AllocationTime == 0        # measured by the caller


def test_no_fit_is_a_placement_without_node():
    nodes = [make_node(1, cpu=100, node_class="small"), make_node(2, cpu=100, node_class="small")]
    (p,) = place(make_job(), nodes)
    assert p.node is None and p.task_resources == {} and p.resources == Resources()
    assert p.metric.NodesExhausted == 2
    assert p.metric.ClassExhausted == {"small": 2}
    assert p.metric.DimensionExhausted == {"cpu exhausted": 2}
    encoded = msgspec.json.decode(msgspec.json.encode(p.metric))
    assert encoded["DimensionExhausted"] == {"cpu exhausted": 2}


def test_candidates_are_ready_nodes_in_pool_and_datacenters():
    nodes = [make_node(1), make_node(2, dc="dc2"), make_node(3, Status="down"),
             make_node(4, SchedulingEligibility="ineligible"), make_node(5, Drain=True),
             make_node(6, NodePool="gpu"), make_node(7, dc="dc1-east")]
    (p,) = place(make_job(Datacenters=["dc1*"]), nodes)
    assert p.metric.NodesInPool == 2 and p.metric.NodesEvaluated == 2
    assert p.metric.NodesAvailable == {"dc1": 1, "dc1-east": 1}
    assert p.metric.NodesFiltered == 0
    (p,) = place(make_job(Datacenters=["dc2"]), nodes)
    assert p.node.ID == "node-02"
    (p,) = place(make_job(NodePool="all", Datacenters=["*"]), nodes)
    assert p.metric.NodesInPool == 4


def test_no_candidates():
    (p,) = place(make_job(Datacenters=["nowhere"]), [make_node(1)])
    assert p.node is None
    assert (p.metric.NodesInPool, p.metric.NodesEvaluated, p.metric.NodesAvailable) == (0, 0, {})


def test_constraints_filter_with_their_string_as_reason():
    nodes = [make_node(1, meta={"rack": "r1"}), make_node(2, meta={"rack": "r2"}, node_class="c")]
    job = make_job(tg_constraints=[Constraint(LTarget="${meta.rack}", RTarget="r1", Operand="=")])
    (p,) = place(job, nodes)
    assert p.node.ID == "node-01"
    assert p.metric.ConstraintFiltered == {"${meta.rack} = r1": 1}
    assert p.metric.ClassFiltered == {"c": 1}
    job = make_job(constraints=[Constraint(LTarget="${attr.kernel.name}", RTarget="windows",
                                           Operand="=")])
    (p,) = place(job, nodes)
    assert p.node is None
    assert p.metric.ConstraintFiltered == {"${attr.kernel.name} = windows": 2}


def test_driver_health_from_driver_info():
    sick = make_node(1, Drivers={"docker": DriverInfo(Detected=True, Healthy=False)})
    (p,) = place(make_job(), [sick, make_node(2)])
    assert p.node.ID == "node-02"


def test_class_memo_reports_computed_class_ineligible_on_later_selects():
    nodes = [make_node(i, drivers=("exec",)) for i in (1, 2)] + [make_node(3)]
    p1, p2 = place(make_job(count=2), nodes, times=2)
    assert p1.metric.ConstraintFiltered == {"missing drivers": 1,
                                            "computed class ineligible": 1}
    assert p2.metric.ConstraintFiltered == {"computed class ineligible": 2}


def test_proposed_allocs_count_against_capacity():
    nodes = [make_node(1, cpu=1000)]
    placements = place(make_job(cpu=400), nodes, times=3)
    assert [p.node is not None for p in placements] == [True, True, False]
    assert placements[2].metric.DimensionExhausted == {"cpu exhausted": 1}


def test_terminal_existing_allocs_never_count():
    node = make_node(1, cpu=1000)
    gone = [existing(node, 1000, 1000, alloc_id="a", ClientStatus="complete"),
            existing(node, 1000, 1000, alloc_id="b", DesiredStatus="stop")]
    (p,) = place(make_job(), [node], {"node-01": gone})
    assert p.node is not None


def test_a_plan_can_stage_a_stop_through_proposed():
    node = make_node(1, cpu=1000)
    old = existing(node, 900, 100, job="web", tg="web", alloc_id="old")
    stack = Stack(make_job(), [node], {"node-01": [old]}, random.Random(1))
    assert stack.select(make_job().TaskGroups[0], {}).node is None
    stopping = msgspec.structs.replace(old, DesiredStatus="stop")
    assert stack.select(make_job().TaskGroups[0], {"node-01": [stopping]}).node is not None


def test_static_port_clash_with_proposed():
    job = make_job(networks=[NetworkResource(ReservedPorts=[Port(Label="http", Value=8080)])])
    p1, p2 = place(job, [make_node(1)], times=2)
    assert p1.node is not None and p2.node is None
    assert p2.metric.DimensionExhausted == {"network: reserved port collision http=8080": 1}


def test_distinct_hosts():
    dh = [Constraint(Operand="distinct_hosts")]
    nodes = [make_node(i) for i in range(1, 4)]
    placements = place(make_job(count=4, tg_constraints=dh), nodes, times=4)
    hosts = [p.node.ID for p in placements[:3]]
    assert sorted(hosts) == ["node-01", "node-02", "node-03"]
    assert placements[3].node is None
    assert placements[3].metric.ConstraintFiltered == {"distinct_hosts": 3}


def test_distinct_hosts_counts_existing_allocs_of_the_job():
    nodes = [make_node(1), make_node(2)]
    mine = existing(nodes[0], 100, 100, job="web", tg="other", Namespace="default")
    job = make_job(constraints=[Constraint(Operand="distinct_hosts")])
    for seed in range(5):
        (p,) = place(job, nodes, {"node-01": [mine]}, seed=seed)
        assert p.node.ID == "node-02"


def test_distinct_property():
    nodes = [make_node(1, meta={"rack": "a"}), make_node(2, meta={"rack": "a"}),
             make_node(3, meta={"rack": "b"}), make_node(4)]
    job = make_job(constraints=[Constraint(LTarget="${meta.rack}", Operand="distinct_property")])
    placements = place(job, nodes, times=3)
    racks = [p.node.Meta["rack"] for p in placements[:2]]
    assert sorted(racks) == ["a", "b"]
    assert placements[2].node is None
    assert placements[2].metric.ConstraintFiltered == {
        'missing property "${meta.rack}"': 1,
        "distinct_property: ${meta.rack}=a used by 1 allocs": 2,
        "distinct_property: ${meta.rack}=b used by 1 allocs": 1}


@pytest.mark.parametrize("n,batch,expected", [
    (0, False, 2), (1, False, 2), (4, False, 2), (5, False, 3), (16, False, 4),
    (17, False, 5), (1000, False, 10), (1000, True, 2),
])
def test_select_limit(n, batch, expected):
    assert select_limit(n, batch) == expected


def test_limit_bounds_how_many_nodes_are_ranked():
    nodes = [make_node(i) for i in range(1, 17)]
    (p,) = place(make_job(), nodes)
    assert p.metric.NodesEvaluated == 4 and len(p.metric.ScoreMetaData) == 4
    (p,) = place(make_job(job_type="batch"), nodes)
    assert p.metric.NodesEvaluated == 2


def test_infeasible_nodes_do_not_use_up_the_limit():
    nodes = [make_node(i, drivers=("exec",)) for i in range(1, 9)] + [make_node(9), make_node(10)]
    for seed in range(5):
        (p,) = place(make_job(job_type="batch"), nodes, seed=seed)
        assert p.node.ID in ("node-09", "node-10")
        assert {m.NodeID for m in p.metric.ScoreMetaData} == {"node-09", "node-10"}
        assert p.metric.NodesEvaluated - p.metric.NodesFiltered == 2


def test_anti_affinity_spreads_equal_nodes():
    nodes = [make_node(i) for i in (1, 2)]
    p1, p2 = place(make_job(count=2), nodes, times=2)
    assert p1.node.ID != p2.node.ID
    meta = {m.NodeID: m for m in p2.metric.ScoreMetaData}
    assert meta[p1.node.ID].Scores["job-anti-affinity"] == pytest.approx(-1.0)


def test_same_seed_same_choices():
    nodes = [make_node(i) for i in range(1, 30)]
    job = make_job(count=10)
    runs = [[p.node.ID for p in place(job, nodes, seed=s, times=10)] for s in (42, 42, 43)]
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]
    shuffled = list(reversed(nodes))      # the caller's order does not matter
    assert [p.node.ID for p in place(job, shuffled, seed=42, times=10)] == runs[0]


def test_selects_resume_where_the_last_one_stopped():
    nodes = [make_node(i) for i in range(1, 9)]      # limit 3
    stack = Stack(make_job(), nodes, {}, random.Random(5))
    tg = make_job().TaskGroups[0]
    first = {m.NodeID for m in stack.select(tg, {}).metric.ScoreMetaData}
    second = {m.NodeID for m in stack.select(tg, {}).metric.ScoreMetaData}
    assert len(first) == len(second) == 3 and not first & second


# --- the per-class memo ----------------------------------------------------------------

def feasible_node(**kw) -> Node:
    base = dict(ID="id-1", Name="node-1", Datacenter="dc1", NodeClass="large", Status="ready",
                Attributes={"kernel.name": "linux", "unique.hostname": "h1"})
    base.update(kw)
    return Node(**base)


def _counting(reason=None):
    calls = []

    def check(node):
        calls.append(node.ID)
        return reason
    return check, calls


def _run(nodes, job, checks_job, checks_tg, elig=None):
    metric = AllocMetric()
    elig = elig or Eligibility(job)
    out = list(wrapped_checks(nodes, elig.job, elig.group(job.TaskGroups[0]), computed_class,
                              checks_job, checks_tg, metric))
    return out, metric, elig


def test_wrapper_memoizes_per_class():
    job = Job(ID="j", TaskGroups=[TaskGroup(Name="g")])
    nodes = [feasible_node(ID=f"n{i}") for i in range(3)]          # one class
    job_check, job_calls = _counting()
    tg_check, tg_calls = _counting()
    out, metric, _ = _run(nodes, job, [job_check], [tg_check])
    assert [n.ID for n in out] == ["n0", "n1", "n2"]
    assert job_calls == ["n0"] and tg_calls == ["n0"]
    assert metric.NodesFiltered == 0


def test_wrapper_filters_known_bad_class_without_rechecking():
    job = Job(ID="j", TaskGroups=[TaskGroup(Name="g")])
    nodes = [feasible_node(ID="n0", NodeClass=""), feasible_node(ID="n1", NodeClass=""),
             feasible_node(ID="other", NodeClass="", Datacenter="dc9")]
    tg_check, calls = _counting(FILTER_DRIVERS)
    out, metric, elig = _run(nodes, job, [], [tg_check])
    assert out == [] and calls == ["n0", "other"]
    assert metric.NodesFiltered == 3
    assert metric.ConstraintFiltered == {FILTER_DRIVERS: 2, FILTER_CLASS_INELIGIBLE: 1}
    assert metric.ClassFiltered is None          # nodes without a NodeClass
    # The memo outlives one pass over the nodes (one eval, several placements).
    out, metric, _ = _run(nodes[:1], job, [], [tg_check], elig=elig)
    assert metric.ConstraintFiltered == {FILTER_CLASS_INELIGIBLE: 1}


def test_wrapper_does_not_memoize_escaped_constraints():
    unique = Constraint(LTarget="${node.unique.name}", RTarget="node-1", Operand="=")
    job = Job(ID="j", TaskGroups=[TaskGroup(Name="g", Constraints=[unique])])
    nodes = [feasible_node(ID="a", Name="node-1"), feasible_node(ID="b", Name="node-2"),
             feasible_node(ID="c", Name="node-1")]
    out, metric, _ = _run(nodes, job, [], [constraint_checker([unique])])
    assert [n.ID for n in out] == ["a", "c"]
    assert metric.ConstraintFiltered == {"${node.unique.name} = node-1": 1}
    assert metric.ClassFiltered == {"large": 1}


def test_job_level_escape():
    unique = Constraint(LTarget="${attr.unique.hostname}", RTarget="h1", Operand="=")
    job = Job(ID="j", Constraints=[unique], TaskGroups=[TaskGroup(Name="g")])
    nodes = [feasible_node(ID="a"),
             feasible_node(ID="b", Attributes={"kernel.name": "linux", "unique.hostname": "h2"}),
             feasible_node(ID="c")]
    assert len({computed_class(n) for n in nodes}) == 1
    out, _, _ = _run(nodes, job, [constraint_checker([unique])], [])
    assert [n.ID for n in out] == ["a", "c"]


# --- affinities, spreads, preemption in the chain ------------------------------------------

from caravan.fsm.structs import Affinity, Spread, SpreadTarget  # noqa: E402
from caravan.scheduler.stack import SPREAD_LIMIT, scored_limit  # noqa: E402


def two_dc_nodes(per_dc=5):
    return [make_node(i, dc="dc1" if i < per_dc else "dc2") for i in range(2 * per_dc)]


@pytest.mark.parametrize("weight,wanted", [(100, "dc1"), (-100, "dc2")])
def test_affinity_steers_placements(weight, wanted):
    nodes = two_dc_nodes()
    job = make_job(count=6, Datacenters=["*"], Affinities=[
        Affinity(LTarget="${node.datacenter}", RTarget="dc1", Operand="=", Weight=weight)])
    placements = place(job, nodes, times=6)
    assert {p.node.Datacenter for p in placements} == {wanted}
    dc1 = {n.ID for n in nodes if n.Datacenter == "dc1"}
    metas = placements[0].metric.ScoreMetaData
    assert all("binpack" in m.Scores for m in metas)
    # a node matching the affinity shows its score; one matching none is not scored
    assert {m.Scores.get("node-affinity") for m in metas if m.NodeID in dc1} <= {weight / 100}
    assert {m.Scores.get("node-affinity") for m in metas if m.NodeID not in dc1} <= {None}
    if weight > 0:
        assert metas[0].Scores["node-affinity"] == 1.0


def test_spread_with_targets_places_by_percentage():
    nodes = two_dc_nodes()
    job = make_job(count=10, Datacenters=["*"], Spreads=[Spread(
        Attribute="${node.datacenter}", Weight=100, SpreadTarget=[
            SpreadTarget(Value="dc1", Percent=70), SpreadTarget(Value="dc2", Percent=30)])])
    for seed in range(3):
        placements = place(job, nodes, seed=seed, times=10)
        dcs = [p.node.Datacenter for p in placements]
        assert (dcs.count("dc1"), dcs.count("dc2")) == (7, 3)
    assert any("allocation-spread" in m.Scores for m in placements[0].metric.ScoreMetaData)


def test_even_spread_without_targets():
    nodes = [make_node(i, dc=f"dc{i % 3}") for i in range(9)]
    job = make_job(count=9, Datacenters=["*"],
                   Spreads=[Spread(Attribute="${node.datacenter}", Weight=50)])
    dcs = [p.node.Datacenter for p in place(job, nodes, times=9)]
    assert sorted(dcs.count(dc) for dc in ("dc0", "dc1", "dc2")) == [3, 3, 3]


def test_spread_counts_allocations_already_placed():
    nodes = two_dc_nodes()
    job = make_job(count=4, Datacenters=["*"], Spreads=[Spread(
        Attribute="${node.datacenter}", Weight=100, SpreadTarget=[
            SpreadTarget(Value="dc1", Percent=50), SpreadTarget(Value="dc2", Percent=50)])])
    allocs = {n.ID: [existing(n, 100, 100, job="web", tg="web", alloc_id=f"old-{n.ID}")]
              for n in nodes[:2]}                       # two in dc1 already
    dcs = [p.node.Datacenter for p in place(job, nodes, allocs, times=2)]
    assert dcs == ["dc2", "dc2"]


def test_scored_limit():
    tg = TaskGroup(Name="g", Count=3)
    assert scored_limit(4, tg, False) == 4
    assert scored_limit(4, tg, True) == SPREAD_LIMIT
    assert scored_limit(4, TaskGroup(Name="g", Count=500), True) == 500


def low_alloc(node, alloc_id, priority, cpu, mem):
    other = Job(ID=f"low-{priority}", Priority=priority, TaskGroups=[TaskGroup(Name="x")])
    return existing(node, cpu, mem, job=other.ID, alloc_id=alloc_id, Job=other,
                    Namespace="default", DesiredStatus="run", ClientStatus="running")


def test_stack_preempts_only_when_allowed():
    (node,) = nodes = [make_node(1, cpu=2000, mem=2048)]
    allocs = {node.ID: [low_alloc(node, "victim", 30, 1800, 1800)]}
    job = make_job(count=1, job_type="system", Priority=50)
    stack = Stack(job, nodes, allocs, random.Random(1))
    assert stack.select(job.TaskGroups[0], {}).node is None
    stack = Stack(job, nodes, allocs, random.Random(1), preempt=True)
    p = stack.select(job.TaskGroups[0], {})
    assert p.node.ID == node.ID and [a.ID for a in p.preempted] == ["victim"]
    assert "preemption" in p.metric.ScoreMetaData[0].Scores
    # a job within 10 priorities of the victim's cannot evict it
    close = make_job(count=1, job_type="system", Priority=39)
    assert Stack(close, nodes, allocs, random.Random(1), preempt=True).select(
        close.TaskGroups[0], {}).node is None


def test_host_volumes_filter_nodes_and_per_alloc_sources_follow_the_alloc_name():
    from caravan.fsm.structs import ClientHostVolumeConfig, VolumeRequest
    from caravan.scheduler.feasible import FILTER_HOST_VOLUMES

    def vol(name, ro=False):
        return {name: ClientHostVolumeConfig(Name=name, Path=f"/srv/{name}", ReadOnly=ro)}
    nodes = [make_node(1), make_node(2, HostVolumes=vol("data")),
             make_node(3, HostVolumes=vol("data", ro=True))]
    job = make_job(count=1)
    job.TaskGroups[0].Volumes = {"d": VolumeRequest(Name="d", Type="host", Source="data")}
    for seed in range(5):
        (p,) = place(job, nodes, seed=seed)
        assert p.node.ID == "node-02"
        assert p.metric.ConstraintFiltered == {FILTER_HOST_VOLUMES: 2}
    job.TaskGroups[0].Volumes["d"].ReadOnly = True      # the read-only one serves it too
    assert {place(job, nodes, seed=s)[0].node.ID for s in range(12)} == {"node-02", "node-03"}

    job.TaskGroups[0].Volumes = {"d": VolumeRequest(Type="host", Source="data", PerAlloc=True)}
    nodes = [make_node(1, HostVolumes=vol("data[0]")), make_node(2, HostVolumes=vol("data[1]"))]
    stack = Stack(job, nodes, {}, random.Random(3))
    tg = job.TaskGroups[0]
    assert stack.select(tg, {}, "web.web[1]").node.ID == "node-02"
    assert stack.select(tg, {}, "web.web[0]").node.ID == "node-01"
    assert stack.select(tg, {}, "web.web[2]").node is None
