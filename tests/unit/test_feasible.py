"""Feasibility: targets, every constraint operand, checkers, computed class and its memo."""
from __future__ import annotations

import re

import pytest

from caravan.fsm.structs import (
    Allocation,
    AllocMetric,
    ClientHostVolumeConfig,
    Constraint,
    DriverInfo,
    Job,
    NetworkResource,
    Node,
    NodeResources,
    Port,
    Task,
    TaskGroup,
    VolumeRequest,
)
from caravan.scheduler import feasible as f
from caravan.scheduler import versions


def make_node(**kw) -> Node:
    base = dict(ID="id-1", Name="node-1", Datacenter="dc1", NodeClass="large", NodePool="gpu",
                Status="ready", Attributes={"kernel.name": "linux", "driver.docker": "1",
                                            "unique.hostname": "h1", "cpu.numcores": "8"},
                Meta={"rack": "r1", "unique.serial": "s1"})
    base.update(kw)
    return Node(**base)


# --- targets ---------------------------------------------------------------------------

@pytest.mark.parametrize("target,expected", [
    ("linux", ("linux", True)),
    ("", ("", True)),
    ("$attr.kernel.name", ("$attr.kernel.name", True)),       # no "${": a literal
    ("${node.unique.id}", ("id-1", True)),
    ("${node.datacenter}", ("dc1", True)),
    ("${node.unique.name}", ("node-1", True)),
    ("${node.class}", ("large", True)),
    ("${node.pool}", ("gpu", True)),
    ("${attr.kernel.name}", ("linux", True)),
    ("${attr.unique.hostname}", ("h1", True)),
    ("${meta.rack}", ("r1", True)),
    ("${attr.missing}", (None, False)),
    ("${meta.missing}", (None, False)),
    ("${node.unknown}", (None, False)),
    ("${env.HOME}", (None, False)),
])
def test_resolve_target(target, expected):
    assert f.resolve_target(target, make_node()) == expected


def test_resolve_target_without_attribute_maps():
    node = make_node(Attributes=None, Meta=None)
    assert f.resolve_target("${attr.kernel.name}", node) == (None, False)
    assert f.resolve_target("${meta.rack}", node) == (None, False)


def test_constraint_string_is_the_filter_key():
    c = Constraint(LTarget="${attr.kernel.name}", RTarget="linux", Operand="=")
    assert f.constraint_string(c) == "${attr.kernel.name} = linux"


# --- operands --------------------------------------------------------------------------

def ok(op, left, right, lfound=True, rfound=True):
    return f.check_constraint(op, left, right, lfound, rfound)


@pytest.mark.parametrize("op", ["=", "==", "is"])
def test_equality(op):
    assert ok(op, "linux", "linux")
    assert not ok(op, "linux", "Linux")
    assert not ok(op, None, "", lfound=False)        # a missing side never equals
    assert not ok(op, "", None, rfound=False)


@pytest.mark.parametrize("op", ["!=", "not"])
def test_inequality_compares_missing_as_empty_string(op):
    assert ok(op, "linux", "windows")
    assert not ok(op, "linux", "linux")
    assert ok(op, None, "windows", lfound=False)      # 1.x: missing != x holds
    assert not ok(op, None, "", lfound=False)         # ...but missing != "" does not


@pytest.mark.parametrize("left,op,right,expected", [
    ("10", ">", "9", True),          # both integers: numeric, not lexical
    ("-3", "<", "2", True),
    ("+5", "==", "5", False),        # only ordering operands parse numbers
    ("+5", ">=", "5", True),
    ("1.5", "<", "1.10", False),     # floats: 1.5 > 1.1
    ("2", "<", "10.5", True),        # int and float: compared as floats
    ("1e3", ">", "999", True),
    ("a10", "<", "a9", True),        # lexical
    ("10", "<", "9a", True),         # one side not a number: lexical
    ("", "<", "a", True),
    ("b", "<=", "b", True),
    ("b", ">=", "c", False),
    ("nan", "<", "1", False),        # NaN compares false, as in Go
    ("9223372036854775808", ">", "9223372036854775807", False),  # beyond int64: floats equal
    (" 1", "<", "2", True),          # space: not a number, lexical " 1" < "2"
    ("1_000", ">", "2", True),       # Go's ParseFloat takes digit-separating underscores
    ("1__0", ">", "2", False),       # ...but not doubled ones: lexical
    ("-inf", "<", "-5", True),
    ("١٠", ">", "9", True),          # non-ASCII digits are not numbers: lexical
])
def test_ordering(left, op, right, expected):
    assert ok(op, left, right) is expected


def test_ordering_needs_both_sides():
    assert not ok("<", None, "1", lfound=False)
    assert not ok(">=", "1", None, rfound=False)


def test_is_set_and_is_not_set():
    assert ok("is_set", "x", None, rfound=False)
    assert not ok("is_set", None, None, lfound=False, rfound=False)
    assert ok("is_not_set", None, "", lfound=False)
    assert not ok("is_not_set", "x", "")


def test_regexp():
    assert ok("regexp", "linux-5.4", r"^linux")
    assert ok("regexp", "my-linux", "linux")          # unanchored
    assert not ok("regexp", "darwin", "linux")
    assert not ok("regexp", "linux", "([")            # does not compile
    assert not ok("regexp", None, "linux", lfound=False)
    assert ok("regexp", "", "")


@pytest.mark.parametrize("version,constraint,expected", [
    ("1.2.3", ">= 1.2, < 2.0", True),
    ("2.0.0", ">= 1.2, < 2.0", False),
    ("1.2", "= 1.2.0", True),
    ("1.2.0", "1.2", True),                 # no operator means =
    ("v1.2.3", "> 1.2", True),
    ("1.2.3", "!= 1.2.3", False),
    ("1.9.0", "~> 1.2", True),
    ("2.0.0", "~> 1.2", False),
    ("1.2.9", "~> 1.2.3", True),
    ("1.3.0", "~> 1.2.3", False),
    ("1.2.2", "~> 1.2.3", False),
    ("1.3.0-beta1", ">= 1.2", False),       # go-version: prerelease needs a prerelease bound
    ("1.3.0-beta2", ">= 1.3.0-beta1", True),
    ("1.4.0-beta2", ">= 1.3.0-beta1", False),  # ...with the same segments
    ("1.3.0", ">= 1.3.0-beta1", True),
    ("1.3.0-rc1", "~> 1.3.0-beta1", True),
    ("1.3.0", "~> 1.3.0-beta1", False),
    ("1.2.3+build", "= 1.2.3", True),       # metadata is ignored
    ("1.2.3.4", "> 1.2.3", True),
    ("1.2.3.0", "= 1.2.3", True),
    ("12", ">= 9", True),
    ("not-a-version", ">= 1.0", False),
    ("1.2.3", ">= nonsense", False),
    ("1.2.3", ">= 1.0,", False),            # an empty part is malformed
    ("1.2.3", "=> 1.0", False),
    ("", ">= 1.0", False),
])
def test_version(version, constraint, expected):
    assert ok("version", version, constraint) is expected


@pytest.mark.parametrize("version,constraint,expected", [
    ("1.3.0-beta1", ">= 1.2.0", True),      # plain Semver ordering, no prerelease rule
    ("1.3.0-beta1", "< 1.3.0", True),
    ("1.3.0-alpha", "< 1.3.0-alpha.1", True),
    ("1.3.0-alpha.1", "< 1.3.0-beta", True),
    ("1.3.0-beta.2", "< 1.3.0-beta.11", True),
    ("1.2.3", "~> 1.2", False),             # no pessimistic operator in semver
    ("1.2.3", ">= 1.2.3beta", False),       # strict: a prerelease needs its dash
    ("1.2.3beta", "> 1.2.2", True),         # the version side is parsed loosely
])
def test_semver(version, constraint, expected):
    assert ok("semver", version, constraint) is expected


def test_version_needs_both_sides():
    assert not ok("version", None, ">= 1.0", lfound=False)
    assert not ok("semver", "1.0.0", None, rfound=False)


def test_version_constraints_are_cached():
    versions.parse_version_constraint.cache_clear()
    for _ in range(3):
        ok("version", "1.2.3", ">= 1.0, < 2")
    info = versions.parse_version_constraint.cache_info()
    assert info.misses == 1 and info.hits == 2


@pytest.mark.parametrize("op,left,right,expected", [
    ("set_contains", "a,b,c", "a, c", True),
    ("set_contains", "a, b ,c", "b", True),
    ("set_contains", "a,b", "a,d", False),
    ("set_contains_all", "SIGHUP,SIGINT", "SIGINT", True),
    ("set_contains_any", "a,b", "d,b", True),
    ("set_contains_any", "a,b", "d,e", False),
    ("set_contains", "", "", True),          # "" splits to {""}
    ("set_contains_any", "a", "", False),
])
def test_sets(op, left, right, expected):
    assert ok(op, left, right) is expected


def test_sets_need_both_sides():
    assert not ok("set_contains", None, "a", lfound=False)
    assert not ok("set_contains_any", "a", None, rfound=False)


def test_distinct_operands_pass_and_unknown_operands_fail():
    assert ok("distinct_hosts", None, None, False, False)
    assert ok("distinct_property", "x", "2")
    assert not ok("~=", "a", "a")
    assert not ok("", "a", "a")


# --- checkers --------------------------------------------------------------------------

@pytest.mark.parametrize("attrs,drivers,expected", [
    ({"driver.docker": "1"}, None, None),
    ({"driver.docker": "true"}, None, None),
    ({"driver.docker": "0"}, None, f.FILTER_DRIVERS),
    ({"driver.docker": "yes"}, None, f.FILTER_DRIVERS),       # ParseBool error: not usable
    ({}, None, f.FILTER_DRIVERS),
    ({}, {"docker": DriverInfo(Detected=True, Healthy=True)}, None),
    ({"driver.docker": "1"}, {"docker": DriverInfo(Detected=True, Healthy=False)},
     f.FILTER_DRIVERS),                                        # DriverInfo wins
    ({}, {"docker": DriverInfo(Detected=False, Healthy=True)}, f.FILTER_DRIVERS),
])
def test_driver_checker(attrs, drivers, expected):
    node = make_node(Attributes=attrs, Drivers=drivers)
    assert f.driver_checker({"docker"})(node) == expected


def test_driver_checker_needs_every_driver():
    node = make_node(Attributes={"driver.docker": "1"})
    assert f.driver_checker(["docker", "exec"])(node) == f.FILTER_DRIVERS
    assert f.driver_checker([])(node) is None


def test_constraint_checker_reports_first_failure():
    cons = [Constraint(LTarget="${attr.kernel.name}", RTarget="linux", Operand="="),
            Constraint(LTarget="${meta.rack}", RTarget="r2", Operand="="),
            Constraint(LTarget="${attr.x}", RTarget="y", Operand="=")]
    assert f.constraint_checker(cons)(make_node()) == "${meta.rack} = r2"
    assert f.constraint_checker(cons[:1])(make_node()) is None


def test_network_checker():
    host = TaskGroup(Name="g", Networks=[NetworkResource(Mode="")])
    bridge = TaskGroup(Name="g", Networks=[NetworkResource(Mode="bridge")])
    none = TaskGroup(Name="g", Networks=[NetworkResource(Mode="none")])
    with_host = make_node(NodeResources=NodeResources(Networks=[NetworkResource(Device="eth0")]))
    bare = make_node(NodeResources=None)
    assert f.network_checker(host)(with_host) is None
    assert f.network_checker(bridge)(with_host) == f.FILTER_NETWORK
    assert f.network_checker(host)(bare) == f.FILTER_NETWORK
    assert f.network_checker(none)(bare) is None
    assert f.network_checker(TaskGroup(Name="g"))(bare) is None   # no network asked


def host_volumes(**volumes) -> dict:
    return {name: ClientHostVolumeConfig(Name=name, Path=f"/srv/{name}", ReadOnly=ro)
            for name, ro in volumes.items()}


def volume_group(**requests) -> TaskGroup:
    return TaskGroup(Name="g", Volumes={
        alias: VolumeRequest(Name=alias, Type="host", Source=source, ReadOnly=ro)
        for alias, (source, ro) in requests.items()})


@pytest.mark.parametrize("offered, requests, expected", [
    ({}, {}, None),                                            # nothing asked
    ({}, {"a": ("data", False)}, f.FILTER_HOST_VOLUMES),       # node offers none
    ({"other": False}, {"a": ("data", False)}, f.FILTER_HOST_VOLUMES),
    ({"data": False}, {"a": ("data", False)}, None),
    ({"data": False}, {"a": ("data", True)}, None),            # rw volume serves ro too
    ({"data": True}, {"a": ("data", True)}, None),
    ({"data": True}, {"a": ("data", False)}, f.FILTER_HOST_VOLUMES),   # ro volume, rw ask
    ({"data": True}, {"a": ("data", True), "b": ("data", False)}, f.FILTER_HOST_VOLUMES),
    ({"data": False, "logs": True}, {"a": ("data", False), "b": ("logs", True)}, None),
    ({"data": False}, {"a": ("data", False), "b": ("logs", True)}, f.FILTER_HOST_VOLUMES),
])
def test_host_volume_checker(offered, requests, expected):
    check = f.host_volume_checker(volume_group(**requests))
    assert check(make_node(HostVolumes=host_volumes(**offered) or None)) == expected
    assert f.FILTER_HOST_VOLUMES == "missing compatible host volumes"


def test_host_volume_checker_ignores_other_volume_types_and_per_alloc_uses_the_index():
    tg = TaskGroup(Name="g", Volumes={"c": VolumeRequest(Type="csi", Source="ebs")})
    assert f.host_volume_checker(tg)(make_node()) is None
    tg = TaskGroup(Name="g", Volumes={"d": VolumeRequest(Type="host", Source="data",
                                                         PerAlloc=True)})
    node = make_node(HostVolumes=host_volumes(**{"data[1]": False}))
    assert f.host_volume_checker(tg, "web.g[1]")(node) is None
    assert f.host_volume_checker(tg, "web.g[0]")(node) == f.FILTER_HOST_VOLUMES
    assert f.per_alloc_volumes(tg) and not f.per_alloc_volumes(volume_group(a=("x", False)))


def test_network_checker_host_networks():
    node = make_node(NodeResources=NodeResources(Networks=[NetworkResource(Device="eth0")]),
                     Meta={"net": "public"})

    def tg(host_network, label="http"):
        return TaskGroup(Name="g", Networks=[NetworkResource(
            DynamicPorts=[Port(Label=label, HostNetwork=host_network)])])
    assert f.network_checker(tg(""))(node) is None
    assert f.network_checker(tg("default"))(node) is None
    assert f.network_checker(tg("public"))(node) == 'missing host network "public" for port "http"'
    assert f.network_checker(tg("${meta.net}"))(node) == \
        'missing host network "public" for port "http"'
    assert f.network_checker(tg("${meta.nope}", "db"))(node) == \
        'invalid host network "${meta.nope}" template for port "db"'


def test_group_constraints_collects_group_then_tasks():
    c1, c2 = Constraint(LTarget="a", RTarget="a", Operand="="), Constraint(LTarget="b",
                                                                           Operand="is_set")
    tg = TaskGroup(Name="g", Constraints=[c1], Tasks=[Task(Name="t1", Driver="docker",
                                                           Constraints=[c2]),
                                                      Task(Name="t2", Driver="exec")])
    assert f.group_constraints(tg) == ([c1, c2], {"docker", "exec"})


@pytest.mark.parametrize("dcs,expected", [
    (["dc1"], True), (["dc2"], False), (["*"], True), (["dc*"], True), (["*1"], True),
    (["d*1"], True), (["x*"], False), (["dc2", "dc1"], True), ([], False),
    (["d?1"], False),            # only "*" is special
    (["[d]c1"], False),
])
def test_in_datacenters(dcs, expected):
    assert f.in_datacenters(make_node(), dcs) is expected


def test_in_pool():
    node = make_node(NodePool="gpu")
    assert f.in_pool(node, "gpu") and f.in_pool(node, "all") and f.in_pool(node, None)
    assert not f.in_pool(node, "default")


# --- computed class --------------------------------------------------------------------

def test_computed_class_ignores_unique_fields():
    a = make_node(NodeResources=NodeResources(Networks=[NetworkResource(Device="eth0",
                                                                        IP="10.0.0.1")]))
    b = make_node(ID="id-2", Name="node-2", SecretID="s", HTTPAddr="10.0.0.2:4646",
                  NodeResources=NodeResources(Networks=[NetworkResource(Device="eth1",
                                                                        IP="10.0.0.2")]),
                  Attributes={**a.Attributes, "unique.hostname": "h2"},
                  Meta={**a.Meta, "unique.serial": "s2"}, Status="down")
    assert f.computed_class(a) == f.computed_class(b)
    assert re.fullmatch(r"v1:\d+", f.computed_class(a))


def test_computed_class_is_independent_of_map_order():
    a = make_node(Attributes={"x": "1", "y": "2"})
    b = make_node(Attributes={"y": "2", "x": "1"})
    assert f.computed_class(a) == f.computed_class(b)


@pytest.mark.parametrize("change", [
    dict(Datacenter="dc2"), dict(NodeClass="small"), dict(NodePool="default"),
    dict(Attributes={"kernel.name": "darwin"}), dict(Meta={"rack": "r2"}),
    dict(Drivers={"docker": DriverInfo(Detected=True, Healthy=False)}),
    dict(NodeResources=NodeResources(Networks=[NetworkResource(Mode="bridge")])),
    dict(HostVolumes={"data": ClientHostVolumeConfig(Name="data", Path="/srv")}),
])
def test_computed_class_changes_with_shared_fields(change):
    assert f.computed_class(make_node()) != f.computed_class(make_node(**change))


def test_escaped_constraints():
    plain = Constraint(LTarget="${attr.kernel.name}", RTarget="linux", Operand="=")
    assert not f.escapes([plain])
    for target in ("${node.unique.id}", "${attr.unique.hostname}", "${meta.unique.serial}",
                   "${unique.x}"):
        assert f.escapes([plain, Constraint(LTarget=target, RTarget="x", Operand="=")])
        assert f.escapes([Constraint(LTarget="x", RTarget=target, Operand="=")])


# --- distinct_hosts / distinct_property ------------------------------------------------

def _alloc(job="j", tg="g", ns="default", node="id-1", **kw):
    return Allocation(ID=kw.pop("ID", f"{job}-{tg}-{node}"), JobID=job, TaskGroup=tg,
                      Namespace=ns, NodeID=node, **kw)


@pytest.mark.parametrize("where,allocs,expected", [
    ("job", [_alloc(tg="other")], False),      # job level: any group of the job
    ("group", [_alloc(tg="other")], True),     # group level: only the same group
    ("group", [_alloc()], False),
    ("group", [_alloc(job="k")], True),
    ("group", [_alloc(ns="prod")], True),      # another namespace is another job
    ("none", [_alloc()], True),
])
def test_distinct_hosts(where, allocs, expected):
    dh = Constraint(Operand="distinct_hosts")
    tg = TaskGroup(Name="g", Constraints=[dh] if where == "group" else None)
    job = Job(ID="j", Namespace="default", Constraints=[dh] if where == "job" else None)
    metric = AllocMetric()
    out = list(f.distinct_hosts([make_node()], job, tg, lambda _id: allocs, metric))
    assert bool(out) is expected
    assert metric.ConstraintFiltered == (None if expected else {"distinct_hosts": 1})


@pytest.mark.parametrize("rtarget,enforced", [("", True), ("true", True), ("false", False),
                                              ("0", False), ("maybe", True)])
def test_distinct_hosts_rtarget(rtarget, enforced):
    job = Job(ID="j", Namespace="default",
              Constraints=[Constraint(Operand="distinct_hosts", RTarget=rtarget)])
    out = list(f.distinct_hosts([make_node()], job, TaskGroup(Name="g"),
                                lambda _id: [_alloc()], AllocMetric()))
    assert (not out) is enforced


def test_property_set_counts_and_limits():
    nodes = {"a": make_node(ID="a", Meta={"rack": "r1"}),
             "b": make_node(ID="b", Meta={"rack": "r1"}),
             "c": make_node(ID="c", Meta={"rack": "r2"}), "d": make_node(ID="d", Meta={})}
    placed = [("a", _alloc(node="a")), ("c", _alloc(node="c", tg="other")),
              ("gone", _alloc(node="gone"))]
    ps = f.PropertySet(Constraint(LTarget="${meta.rack}", Operand="distinct_property"), None)
    counts = ps.usage(placed, nodes)
    assert counts == {"r1": 1, "r2": 1}
    assert ps.check(nodes["b"], counts) == "distinct_property: ${meta.rack}=r1 used by 1 allocs"
    assert ps.check(nodes["d"], counts) == 'missing property "${meta.rack}"'
    two = f.PropertySet(Constraint(LTarget="${meta.rack}", RTarget="2"), None)
    assert two.check(nodes["b"], counts) is None
    group = f.PropertySet(Constraint(LTarget="${meta.rack}"), "g")
    assert group.usage(placed, nodes) == {"r1": 1}


def test_property_set_bad_rtarget():
    ps = f.PropertySet(Constraint(LTarget="${meta.rack}", RTarget="x"), None)
    assert ps.check(make_node(), {}).startswith('failed to convert RTarget "x" to uint64')


def test_distinct_property_stage_records_reason():
    ps = f.PropertySet(Constraint(LTarget="${meta.rack}"), None)
    metric = AllocMetric()
    out = list(f.distinct_property([make_node()], [(ps, {"r1": 1})], metric))
    assert out == [] and metric.ConstraintFiltered == {
        "distinct_property: ${meta.rack}=r1 used by 1 allocs": 1}
