"""NetworkIndex: reserved ports, live allocations, static and dynamic asks, bandwidth."""
from __future__ import annotations

import random

import pytest

from caravan.fsm.structs import (
    Allocation,
    NetworkResource,
    Node,
    NodeReservedNetworkResources,
    NodeReservedResources,
    NodeResources,
    Port,
    Resources,
)
from caravan.scheduler import ports as p


def make_node(reserved_ports="", mbits=1000, min_port=20000, max_port=32000, nets=None,
              **kw) -> Node:
    nets = nets if nets is not None else [
        NetworkResource(Device="eth0", CIDR="10.0.0.1/32", IP="10.0.0.1", MBits=mbits)]
    return Node(ID="n1", NodeResources=NodeResources(Networks=nets, MinDynamicPort=min_port,
                                                     MaxDynamicPort=max_port),
                ReservedResources=NodeReservedResources(
                    Networks=NodeReservedNetworkResources(ReservedHostPorts=reserved_ports)),
                **kw)


def index(node: Node, allocs=()) -> p.NetworkIndex:
    idx = p.NetworkIndex()
    assert idx.set_node(node) is None
    assert idx.add_allocs(allocs) == (False, "")
    return idx


def ask(static=(), dynamic=(), mbits=0) -> NetworkResource:
    return NetworkResource(MBits=mbits,
                           ReservedPorts=[Port(Label=lbl, Value=v) for lbl, v in static] or None,
                           DynamicPorts=[Port(Label=lbl, To=to) for lbl, to in dynamic] or None)


def alloc_with(ports: list[int], ip="10.0.0.1", mbits=0, **kw) -> Allocation:
    net = NetworkResource(Device="eth0", IP=ip, MBits=mbits,
                          ReservedPorts=[Port(Label=f"p{v}", Value=v) for v in ports])
    kw.setdefault("ID", f"a{ports}")
    return Allocation(Resources=Resources(Networks=[net]), **kw)


# --- port ranges -----------------------------------------------------------------------

@pytest.mark.parametrize("spec,expected", [
    ("", []), ("  ", []), ("22", [22]), ("22,80", [22, 80]), ("80, 22", [22, 80]),
    ("8000-8002", [8000, 8001, 8002]), ("22,22,21-22", [21, 22]), ("65536", [65536]),
])
def test_parse_port_ranges(spec, expected):
    assert p.parse_port_ranges(spec) == expected


@pytest.mark.parametrize("spec,message", [
    ("22,", "can't specify empty port"), ("a", "invalid port"), ("10-5", "invalid range"),
    ("1-2-3", "can only parse"), ("0", "port must be > 0"), ("70000", "port must be <"),
])
def test_parse_port_ranges_errors(spec, message):
    with pytest.raises(ValueError, match=message):
        p.parse_port_ranges(spec)


# --- static ports ----------------------------------------------------------------------

def test_static_port_offer():
    offer = index(make_node()).assign(ask(static=[("http", 8080)]), random.Random(1))
    assert isinstance(offer, NetworkResource)
    assert (offer.Device, offer.IP) == ("eth0", "10.0.0.1")
    assert [(x.Label, x.Value) for x in offer.ReservedPorts] == [("http", 8080)]
    assert offer.DynamicPorts is None


def test_static_port_collides_with_node_reserved_ports():
    idx = index(make_node(reserved_ports="22,80,8000-8100"))
    assert idx.assign(ask(static=[("web", 8050)]), random.Random(1)) == \
        "reserved port collision web=8050"
    assert isinstance(idx.assign(ask(static=[("web", 8101)]), random.Random(1)), NetworkResource)


def test_static_port_collides_with_network_and_seed_era_reserved_ports():
    net = NetworkResource(Device="eth0", IP="10.0.0.1", MBits=100,
                          ReservedPorts=[Port(Label="ssh", Value=22)])
    node = make_node(nets=[net], Reserved=Resources(Networks=[
        NetworkResource(ReservedPorts=[Port(Label="dns", Value=53)])]))
    idx = index(node)
    rng = random.Random(1)
    assert idx.assign(ask(static=[("x", 22)]), rng) == "reserved port collision x=22"
    assert idx.assign(ask(static=[("y", 53)]), rng) == "reserved port collision y=53"


def test_static_port_collides_with_existing_alloc():
    idx = index(make_node(), [alloc_with([9000])])
    assert idx.assign(ask(static=[("a", 9000)]), random.Random(1)) == \
        "reserved port collision a=9000"


def test_terminal_allocs_hold_no_ports():
    idx = index(make_node(), [alloc_with([9000], ClientStatus="complete"),
                              alloc_with([9001], DesiredStatus="stop")])
    assert isinstance(idx.assign(ask(static=[("a", 9000), ("b", 9001)]), random.Random(1)),
                      NetworkResource)


def test_out_of_range_static_port():
    assert index(make_node()).assign(ask(static=[("a", 70000)]), random.Random(1)) == \
        "invalid port 70000 (out of range)"


def test_add_reserved_then_same_port_collides():
    idx = index(make_node())
    rng = random.Random(1)
    offer = idx.assign(ask(static=[("a", 7000)]), rng)
    assert idx.add_reserved(offer) == (False, [])
    assert idx.assign(ask(static=[("b", 7000)]), rng) == "reserved port collision b=7000"
    assert idx.add_reserved(offer) == (True, ["port 7000 already in use"])


# --- dynamic ports ---------------------------------------------------------------------

def test_dynamic_ports_in_range_distinct_and_mapped():
    idx = index(make_node(reserved_ports="20000-20100"), [alloc_with([20200])])
    offer = idx.assign(ask(static=[("s", 20150)], dynamic=[("a", 0), ("b", -1), ("c", 8080)]),
                       random.Random(7))
    values = [x.Value for x in offer.DynamicPorts]
    assert len(set(values)) == 3
    assert all(20101 <= v <= 32000 and v not in (20150, 20200) for v in values)
    a, b, c = offer.DynamicPorts
    assert (a.To, b.To, c.To) == (0, b.Value, 8080)       # To=-1 maps to the host port
    assert [x.Label for x in offer.DynamicPorts] == ["a", "b", "c"]


def test_dynamic_ports_are_deterministic_for_a_seed():
    def pick(seed):
        return [x.Value for x in index(make_node()).assign(
            ask(dynamic=[("a", 0), ("b", 0)]), random.Random(seed)).DynamicPorts]
    assert pick(3) == pick(3)
    assert pick(3) != pick(4)


def test_precise_scan_finds_the_last_free_port():
    # 11 ports in range, 10 taken: random probes will usually miss, the scan cannot.
    idx = index(make_node(reserved_ports="20000-20009", min_port=20000, max_port=20010))
    for seed in range(20):
        offer = idx.assign(ask(dynamic=[("a", 0)]), random.Random(seed))
        assert offer.DynamicPorts[0].Value == 20010


def test_dynamic_port_exhaustion():
    idx = index(make_node(reserved_ports="20000-20010", min_port=20000, max_port=20010))
    assert idx.assign(ask(dynamic=[("a", 0)]), random.Random(1)) == p.ERR_DYNAMIC
    idx = index(make_node(min_port=20000, max_port=20001))
    assert idx.assign(ask(dynamic=[("a", 0), ("b", 0), ("c", 0)]), random.Random(1)) == \
        "dynamic port selection failed"


def test_dynamic_ports_avoid_the_asks_static_ports():
    idx = index(make_node(reserved_ports="20000-20008", min_port=20000, max_port=20010))
    offer = idx.assign(ask(static=[("s", 20009)], dynamic=[("d", 0)]), random.Random(2))
    assert offer.DynamicPorts[0].Value == 20010


# --- bandwidth and networks -------------------------------------------------------------

def test_bandwidth():
    idx = index(make_node(mbits=100), [alloc_with([], mbits=60)])
    rng = random.Random(1)
    assert idx.assign(ask(mbits=50), rng) == "bandwidth exceeded"
    offer = idx.assign(ask(mbits=40), rng)
    assert offer.MBits == 40
    idx.add_reserved(offer)
    assert not idx.overcommitted()
    idx.add_reserved(NetworkResource(Device="eth0", IP="10.0.0.1", MBits=1))
    assert idx.overcommitted()


def test_no_networks():
    rng = random.Random(1)
    assert index(make_node(nets=[])).assign(ask(), rng) == "no networks available"
    bridge_only = make_node(nets=[NetworkResource(Mode="bridge")])   # no device
    assert index(bridge_only).assign(ask(), rng) == "no networks available"
    bad_cidr = make_node(nets=[NetworkResource(Device="eth0", CIDR="nonsense")])
    assert index(bad_cidr).assign(ask(), rng) == "no networks available"


def test_ip_without_cidr_and_cidr_walk():
    rng = random.Random(1)
    only_ip = make_node(nets=[NetworkResource(Device="eth0", IP="192.168.1.5", MBits=10)])
    assert index(only_ip).assign(ask(), rng).IP == "192.168.1.5"
    # Two addresses: port 80 is taken on the first, so the second is offered.
    two = make_node(nets=[NetworkResource(Device="eth0", CIDR="10.1.0.0/31", MBits=10)])
    idx = index(two, [alloc_with([80], ip="10.1.0.0")])
    assert idx.assign(ask(static=[("http", 80)]), rng).IP == "10.1.0.1"


def test_dynamic_range_from_node_and_defaults():
    idx = index(make_node(min_port=0, max_port=0))
    assert (idx.min_dynamic_port, idx.max_dynamic_port) == (20000, 32000)


def test_invalid_node_and_alloc_collisions():
    idx = p.NetworkIndex()
    assert idx.set_node(make_node(reserved_ports="22-x")).startswith("error parsing reserved_ports")
    idx = index(make_node())
    collide, reason = idx.add_allocs([alloc_with([9000]), alloc_with([9000, 9001], ID="b")])
    assert collide and "port 9000 already in use" in reason


def test_alloc_networks_layouts():
    net = NetworkResource(Device="eth0", IP="10.0.0.1", ReservedPorts=[Port(Label="a", Value=1)])
    combined = Allocation(Resources=Resources(Networks=[net]),
                          TaskResources={"t": Resources(Networks=[net])})
    assert p.alloc_networks(combined) == [net]          # not counted twice
    per_task = Allocation(TaskResources={"t": Resources(Networks=[net, net]), "u": Resources()},
                          SharedResources=Resources(Networks=[net]))
    assert p.alloc_networks(per_task) == [net, net]
