"""What a server checks and fills in when a node registers: Nomad's ``Node.Register``
checks, the ``ComputedClass``, the pre-0.9 ``Resources``/``Reserved`` views from
``NodeResources`` (or the reverse) and the driver attributes of healthy drivers."""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm.structs import (
    NetworkResource,
    Node,
    NodeCpuResources,
    NodeDiskResources,
    NodeMemoryResources,
    NodeResources,
    Port,
    Resources,
)
from caravan.scheduler.api import computed_class


def parse_port_ranges(spec: str) -> list[int]:
    """``"22,80,8000-8100"`` -> sorted unique ports (Nomad's ``ParsePortRanges``)."""
    ports: set[int] = set()
    for part in (p.strip() for p in spec.split(",")):
        if not part:
            continue
        lo_s, sep, hi_s = part.partition("-")
        try:
            lo = int(lo_s)
            hi = int(hi_s) if sep else lo
        except ValueError:
            raise ValueError(f"invalid port range {part!r}") from None
        if not (0 <= lo <= hi < 65536):
            raise ValueError(f"invalid port range {part!r}")
        ports.update(range(lo, hi + 1))
    return sorted(ports)


def validate_registration(node: Node) -> str | None:
    """Nomad's ``Node.Register`` checks; the first failure's message, or None."""
    if not node.ID:
        return "missing node ID for client registration"
    if not node.Datacenter:
        return "missing datacenter for client registration"
    if not node.Name:
        return "missing node name for client registration"
    if not node.Attributes:
        return "missing attributes for client registration"
    if not node.SecretID:
        return "missing node secret ID for client registration"
    if node.Status and node.Status not in ("initializing", "ready", "down"):
        return "invalid status for node"
    reserved = node.ReservedResources
    if reserved is not None and reserved.Networks.ReservedHostPorts:
        try:
            parse_port_ranges(reserved.Networks.ReservedHostPorts)
        except ValueError as exc:
            return f"invalid reserved host ports: {exc}"
    return None


def prepare_node(node: Node, now: float) -> Node:
    """What the server fills in before the node enters the log: NodeResources from a
    pre-0.9 client's Resources (or the reverse), driver attributes for healthy
    drivers, ComputedClass, status ready."""
    nr = node.NodeResources
    if nr is None and node.Resources is not None:
        r = node.Resources
        nr = NodeResources(Cpu=NodeCpuResources(CpuShares=r.CPU or 0),
                           Memory=NodeMemoryResources(MemoryMB=r.MemoryMB or 0),
                           Disk=NodeDiskResources(DiskMB=r.DiskMB or 0),
                           Networks=r.Networks)
    resources = node.Resources
    reserved = node.Reserved
    if nr is not None:
        resources = Resources(CPU=nr.Cpu.CpuShares, MemoryMB=nr.Memory.MemoryMB,
                              DiskMB=nr.Disk.DiskMB, IOPS=0,
                              Networks=list(nr.Networks) if nr.Networks else None)
    rr = node.ReservedResources
    if rr is not None:
        ports = parse_port_ranges(rr.Networks.ReservedHostPorts)
        networks = None
        if ports:
            devices = (nr.Networks if nr is not None and nr.Networks else None) or \
                [NetworkResource()]
            networks = [NetworkResource(Mode=d.Mode, Device=d.Device, CIDR=d.CIDR, IP=d.IP,
                                        ReservedPorts=[Port(Label=str(p), Value=p)
                                                       for p in ports])
                        for d in devices]
        reserved = Resources(CPU=rr.Cpu.CpuShares, MemoryMB=rr.Memory.MemoryMB,
                             DiskMB=rr.Disk.DiskMB, IOPS=0, Networks=networks)
    attributes = dict(node.Attributes or {})
    for name, driver in (node.Drivers or {}).items():
        if driver.Detected and driver.Healthy:
            attributes.setdefault(f"driver.{name}", "1")
    # drain, eligibility and events are the servers' (kept from the stored node)
    node = replace(node, NodeResources=nr, Resources=resources, Reserved=reserved,
                   Attributes=attributes, Status="ready", StatusUpdatedAt=int(now),
                   Drain=False, DrainStrategy=None, LastDrain=None, Events=None,
                   CreateIndex=0, ModifyIndex=0)
    return replace(node, ComputedClass=computed_class(node))
