"""Read endpoints of the Nodes API.

Nodes register with 1.x ``NodeResources``/``ReservedResources``; pre-0.9 clients read
``Resources``/``Reserved`` instead, so those are derived here when the row lacks them.
The node's ``SecretID`` is its credential and is never served (Nomad 1.x blanks it too).
"""
from __future__ import annotations

import msgspec
from starlette.requests import Request

from caravan.fsm import schema as t
from caravan.fsm.store import State
from caravan.server.http.alloc_reads import GET, by_creation, full_alloc, require_uuid
from caravan.server.http.common import blocking_read, check_method, query_bool, query_options, read_row


def http_host(addr: str) -> str:
    """The host part of ``host:port``, as Go's ``net.SplitHostPort`` gives it; Nomad's
    stub shows "" when the address has no port (SplitHostPort fails)."""
    if addr.startswith("["):
        end = addr.find("]")
        return addr[1:end] if end > 0 and addr[end + 1:end + 2] == ":" else ""
    host, sep, _ = addr.rpartition(":")
    return host if sep and ":" not in host else ""


def node_stub(n, *, os: bool = False, resources: bool = False) -> dict:
    """Nomad 1.x NodeListStub. Attributes, NodeResources and ReservedResources are
    ``omitempty`` there: present only when ``?os=true`` / ``?resources=true`` asked
    (and Attributes then holds ``os.name`` alone)."""
    attrs = n.Attributes or {}
    s = {"Address": http_host(n.HTTPAddr), "ID": n.ID}
    if os:
        s["Attributes"] = {"os.name": attrs.get("os.name", "")}
    s.update(Datacenter=n.Datacenter, Name=n.Name, NodeClass=n.NodeClass, NodePool=n.NodePool,
             Version=attrs.get("nomad.version", ""), Drain=n.Drain,
             SchedulingEligibility=n.SchedulingEligibility, Status=n.Status,
             StatusDescription=n.StatusDescription, Drivers=n.Drivers,
             HostVolumes=n.HostVolumes)
    if resources:
        s.update(NodeResources=n.NodeResources, ReservedResources=n.ReservedResources)
    s.update(LastDrain=n.LastDrain, CreateIndex=n.CreateIndex, ModifyIndex=n.ModifyIndex)
    return s


def parse_ports(spec: str) -> list[int] | None:
    """Nomad's port-range syntax (``"22,80,8000-8100"``); ``None`` if malformed."""
    ports: set[int] = set()
    for part in filter(None, (p.strip() for p in spec.split(","))):
        lo, _, hi = part.partition("-")
        try:
            a, b = int(lo), int(hi or lo)
        except ValueError:
            return None
        if not 0 < a <= b <= 65535:
            return None
        ports.update(range(a, b + 1))
    return sorted(ports)


def legacy_resources(nr) -> dict | None:
    if nr is None:
        return None
    return {"CPU": nr.Cpu.CpuShares, "Cores": 0, "MemoryMB": nr.Memory.MemoryMB,
            "MemoryMaxMB": 0, "DiskMB": nr.Disk.DiskMB, "IOPS": 0,
            "Networks": msgspec.to_builtins(nr.Networks) if nr.Networks else None,
            "Devices": None}


def legacy_reserved(rr, nr) -> dict | None:
    """Seed-era ``Reserved``: reserved host ports became, on each fingerprinted network,
    a copy of it without bandwidth holding the ports (the 0.x client's ``reservePorts``)."""
    if rr is None:
        return None
    networks = None
    ports = parse_ports(rr.Networks.ReservedHostPorts) if rr.Networks.ReservedHostPorts else None
    if ports and nr is not None and nr.Networks:
        networks = []
        for net in nr.Networks:
            copy = msgspec.to_builtins(net)
            copy.update(MBits=0, DynamicPorts=None,
                        ReservedPorts=[{"Label": "", "Value": p, "To": 0, "HostNetwork": ""}
                                       for p in ports])
            networks.append(copy)
    return {"CPU": rr.Cpu.CpuShares, "Cores": 0, "MemoryMB": rr.Memory.MemoryMB,
            "MemoryMaxMB": 0, "DiskMB": rr.Disk.DiskMB, "IOPS": 0, "Networks": networks,
            "Devices": None}


def full_node(n) -> dict:
    out = msgspec.to_builtins(n)
    out["SecretID"] = ""
    if n.Resources is None:
        out["Resources"] = legacy_resources(n.NodeResources)
    if n.Reserved is None:
        out["Reserved"] = legacy_reserved(n.ReservedResources, n.NodeResources)
    # 1.x fields Caravan does not track yet, at their empty values
    out.update(HostNetworks=None, CSIControllerPlugins=None,
               CSINodePlugins=None, CgroupParent="")
    return out


# --- endpoints ---------------------------------------------------------------------------


async def list_nodes(request: Request):
    check_method(request, GET)
    prefix = query_options(request).prefix
    os, resources = query_bool(request, "os"), query_bool(request, "resources")

    def query(state: State):
        nodes = state.prefix(t.NODES, prefix)
        return state.table_index(t.NODES), [node_stub(n, os=os, resources=resources)
                                            for n in nodes]

    return await blocking_read(request, (t.NODES,), query)


async def read_node(request: Request):
    check_method(request, GET)
    node_id = require_uuid(request.path_params["node_id"])
    return await read_row(request, t.NODES, node_id, "node not found", render=full_node)


async def node_allocations(request: Request):
    """Every allocation placed on the node, terminal ones included; an unknown node has
    none (Nomad answers ``[]``, not 404, and does not validate the ID here)."""
    check_method(request, GET)
    node_id = request.path_params["node_id"]

    def query(state: State):
        allocs = by_creation(state.by_index(t.ALLOCS, t.BY_NODE, node_id))
        return state.table_index(t.ALLOCS), [full_alloc(a) for a in allocs]

    return await blocking_read(request, (t.ALLOCS,), query)
