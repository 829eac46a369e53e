"""Ports and bandwidth on one node: Nomad's ``NetworkIndex`` (``nomad/structs/network.go``).

One index is built per candidate node per placement: the node's reserved ports, then
the ports and bandwidth of its live allocations, then each ask of the placement in turn
(so two tasks of one group never get the same port). Both group and task network asks
are served the way Nomad serves ``task.resources.network`` (``AssignTaskNetwork``): Caravan
nodes report ``NodeResources.Networks`` only, not the 1.x ``NodeNetworks`` host-network
aliases that ``AssignPorts`` needs. Randomness comes from the caller's ``random.Random``.
"""
from __future__ import annotations

import functools
import ipaddress
import random
from collections.abc import Iterable

import msgspec

from caravan.fsm.structs import Allocation, NetworkResource, Node, Port
from caravan.scheduler.memo import IdentityMemo

MAX_VALID_PORT = 65536
MAX_RAND_PORT_ATTEMPTS = 20   # random probes before the precise scan
MAX_IPS_PER_NETWORK = 256     # Nomad walks a whole CIDR; a /64 would never end

ERR_NO_NETWORKS = "no networks available"
ERR_BANDWIDTH = "bandwidth exceeded"
ERR_DYNAMIC = "dynamic port selection failed"


def parse_port_ranges(spec: str) -> list[int]:
    """``ParsePortRanges``: "22,80,8000-8100" -> sorted unique ports; ValueError worded
    like Nomad's on bad input."""
    if spec.strip() == "":
        return []
    ports: set[int] = set()
    for part in spec.split(","):
        bounds = part.strip().split("-")
        if len(bounds) > 2:
            raise ValueError("can only parse single port numbers or port ranges "
                             "(ex. 80,100-120,150)")
        if bounds[0] == "" and len(bounds) == 1:
            raise ValueError("can't specify empty port")
        if not all(b.isascii() and b.isdigit() for b in bounds):
            raise ValueError(f"invalid port specification {part.strip()!r}")
        start, end = int(bounds[0]), int(bounds[-1])
        if end < start:
            raise ValueError(f"invalid range: starting value ({end}) less than ending "
                             f"({start}) value")
        if end > MAX_VALID_PORT:
            raise ValueError(f"port must be < {MAX_VALID_PORT} but found {end}")
        ports.update(range(start, end + 1))
    if 0 in ports:
        raise ValueError("port must be > 0")
    return sorted(ports)


def alloc_networks(alloc: Allocation) -> list[NetworkResource]:
    """What an allocation holds: its combined ``Resources.Networks`` when set, else the
    shared networks plus each task's first network (the older layout)."""
    if alloc.Resources is not None and alloc.Resources.Networks:
        return list(alloc.Resources.Networks)
    nets: list[NetworkResource] = \
        list(alloc.SharedResources.Networks or []) if alloc.SharedResources else []
    for _, res in sorted((alloc.TaskResources or {}).items()):
        if res is not None and res.Networks:
            nets.append(res.Networks[0])
    return nets


class NetworkIndex:
    """Used ports per IP and bandwidth per device on one node."""

    def __init__(self) -> None:
        self.networks: list[tuple[NetworkResource, list[str]]] = []  # network, its IPs
        self.used_ports: dict[str, set[int]] = {}
        self.avail_bandwidth: dict[str, int] = {}
        self.used_bandwidth: dict[str, int] = {}
        self.min_dynamic_port = 20000
        self.max_dynamic_port = 32000

    def set_node(self, node: Node) -> str | None:
        """Index the node's networks and reserved ports; an error means the node's own
        configuration is broken (Nomad: ``network: invalid node``). The node's part is
        derived once per node row (``_node_base``) and copied here."""
        base = _node_base(node)
        if isinstance(base, str):
            return base
        self.networks = list(base.networks)
        self.used_ports = {ip: set(ports) for ip, ports in base.used_ports.items()}
        self.avail_bandwidth = dict(base.avail_bandwidth)
        self.used_bandwidth = dict(base.used_bandwidth)
        self.min_dynamic_port = base.min_dynamic_port
        self.max_dynamic_port = base.max_dynamic_port
        return None

    def copy(self) -> NetworkIndex:
        """An index that can take more ports without changing this one (the node's
        networks and bandwidth are never changed after indexing, so they are shared)."""
        out = NetworkIndex.__new__(NetworkIndex)
        out.networks = self.networks
        out.used_ports = {ip: set(ports) for ip, ports in self.used_ports.items()}
        out.avail_bandwidth = self.avail_bandwidth
        out.used_bandwidth = dict(self.used_bandwidth)
        out.min_dynamic_port = self.min_dynamic_port
        out.max_dynamic_port = self.max_dynamic_port
        return out

    def _index_node(self, node: Node) -> str | None:
        res = node.NodeResources
        nets = (res.Networks if res is not None and res.Networks else
                node.Resources.Networks if node.Resources is not None else None) or []
        host_ports = node.ReservedResources.Networks.ReservedHostPorts \
            if node.ReservedResources is not None else ""
        try:
            reserved = parse_port_ranges(host_ports)
        except ValueError as exc:
            return f"error parsing reserved_ports: {exc}"
        reserved_nets: list[NetworkResource] = \
            (node.Reserved.Networks or []) if node.Reserved is not None else []
        for n in reserved_nets:
            # The pre-0.9 view: reserved networks with explicit ports and bandwidth.
            for port in (n.ReservedPorts or []) + (n.DynamicPorts or []):
                if not 0 <= port.Value < MAX_VALID_PORT:
                    return f"invalid port {port.Value} for reserved_ports"
                reserved.append(port.Value)
            if n.Device:
                self._add_bandwidth(n)
        for n in nets:
            if not n.Device:
                continue  # e.g. a bridge entry: nothing to offer from
            ips = list(_network_ips(n))
            self.networks.append((n, ips))
            self.avail_bandwidth[n.Device] = n.MBits or 0
            own = [p.Value for p in n.ReservedPorts or []]
            for ip in ips:
                self.used_ports.setdefault(ip, set()).update(reserved, own)
        if res is not None:
            self.min_dynamic_port = res.MinDynamicPort or self.min_dynamic_port
            self.max_dynamic_port = res.MaxDynamicPort or self.max_dynamic_port
        return None

    def add_allocs(self, allocs: Iterable[Allocation]) -> tuple[bool, str]:
        """Count live allocations; a port two of them hold is a collision (a bug
        somewhere upstream), reported rather than raised."""
        collide, reason = False, ""
        for alloc in allocs:
            if alloc.terminal():
                continue
            for net in alloc_networks(alloc):
                hit, reasons = self.add_reserved(net)
                if hit:
                    collide = True
                    reason = f"collision when reserving port for alloc {alloc.ID}: {reasons}"
        return collide, reason

    def add_reserved(self, net: NetworkResource) -> tuple[bool, list[str]]:
        """Mark a network's ports used and add its bandwidth; report ports already used."""
        used = self.used_ports.setdefault(net.IP, set())
        reasons = []
        for port in (net.ReservedPorts or []) + (net.DynamicPorts or []):
            if not 0 <= port.Value < MAX_VALID_PORT:
                return True, [f"invalid port {port.Value}"]
            if port.Value in used:
                reasons.append(f"port {port.Value} already in use")
            used.add(port.Value)
        self._add_bandwidth(net)
        return bool(reasons), reasons

    def _add_bandwidth(self, net: NetworkResource) -> None:
        self.used_bandwidth[net.Device] = self.used_bandwidth.get(net.Device, 0) + (net.MBits or 0)

    def overcommitted(self) -> bool:
        """More bandwidth in use than a device has (0.6; 1.x stopped checking)."""
        return any(self.used_bandwidth.get(dev, 0) > avail
                   for dev, avail in self.avail_bandwidth.items())

    def assign(self, ask: NetworkResource, rng: random.Random) -> NetworkResource | str:
        """An offer for ``ask`` on the first IP that fits, or the last error seen:
        the ask's static ports must be free, then dynamic ports are drawn at random
        (20 tries) and, failing that, from an exact list of the free ones."""
        err = ERR_NO_NETWORKS
        for net, ips in self.networks:
            for ip in ips:
                avail = self.avail_bandwidth.get(net.Device, 0)
                if self.used_bandwidth.get(net.Device, 0) + (ask.MBits or 0) > avail:
                    err = ERR_BANDWIDTH
                    continue
                used = self.used_ports.get(ip, set())
                static = ask.ReservedPorts or []
                clash = _static_clash(static, used)
                if clash is not None:
                    err = clash
                    continue
                wanted = len(ask.DynamicPorts or [])
                taken = {p.Value for p in static}
                picked = self._stochastic(used, taken, wanted, rng)
                if picked is None:
                    picked = self._precise(used, taken, wanted, rng)
                if picked is None:
                    err = ERR_DYNAMIC
                    continue
                dynamic = [msgspec.structs.replace(p, Value=v, To=v if p.To == -1 else p.To)
                           for p, v in zip(ask.DynamicPorts or [], picked)]
                return NetworkResource(
                    Mode=ask.Mode, Device=net.Device, IP=ip, MBits=ask.MBits, DNS=ask.DNS,
                    ReservedPorts=[_copy(p) for p in static] if ask.ReservedPorts else None,
                    DynamicPorts=dynamic if ask.DynamicPorts else None)
        return err

    def _stochastic(self, used: set[int], taken: set[int], count: int,
                    rng: random.Random) -> list[int] | None:
        lo, hi = self.min_dynamic_port, self.max_dynamic_port
        picked: list[int] = []
        for _ in range(count):
            for _attempt in range(MAX_RAND_PORT_ATTEMPTS):
                port = lo + rng.randrange(hi - lo) if hi - lo > 0 else lo
                if port not in used and port not in taken and port not in picked:
                    picked.append(port)
                    break
            else:
                return None
        return picked

    def _precise(self, used: set[int], taken: set[int], count: int,
                 rng: random.Random) -> list[int] | None:
        free = [p for p in range(self.min_dynamic_port, self.max_dynamic_port + 1)
                if p not in used and p not in taken]
        if len(free) < count:
            return None
        for i in range(count):  # Nomad's partial shuffle, quirk and all
            j = rng.randrange(len(free))
            free[i], free[j] = free[j], free[i]
        return free[:count]


class NodeNetworks:
    """(node, its live allocations) -> a fresh network index holding the node's ports
    and theirs, or why there is none: ``"invalid node"`` (the node's own network
    configuration is broken) or ``"port collision"`` (two of the allocations hold the
    same port). Rows are immutable, and the scheduler hands out the same list object
    for a node while nothing on it changed (``fit.LiveAllocs``), so while the node
    row and the list are the very objects seen last time, the index built then is
    copied instead of counting every allocation's ports again; when the new list holds
    every allocation of the old one (a placement was added), only the added ones are
    counted on a copy of the old index. Holding both keeps their identities from being
    reused; the cache forgets everything past ``limit`` nodes."""

    def __init__(self, limit: int = 100_000):
        self.limit = limit
        self._by_node: dict[str, tuple[Node, list[Allocation], NetworkIndex | str]] = {}

    def __call__(self, node: Node, allocs: list[Allocation]) -> NetworkIndex | str:
        hit = self._by_node.get(node.ID)
        if hit is not None and hit[0] is node and hit[1] is allocs:
            base = hit[2]
        else:
            added = _added(hit[1], allocs) if hit is not None and hit[0] is node else None
            if hit is not None and added is not None:
                base = hit[2]
                if not isinstance(base, str):
                    base = base.copy()
                    if base.add_allocs(added)[0]:
                        base = "port collision"
            else:
                base = NetworkIndex()
                if base.set_node(node) is not None:
                    base = "invalid node"
                elif base.add_allocs(allocs)[0]:
                    base = "port collision"
            if len(self._by_node) >= self.limit:
                self._by_node.clear()
            self._by_node[node.ID] = (node, allocs, base)
        return base if isinstance(base, str) else base.copy()


node_networks = NodeNetworks()


def _added(old: list[Allocation], new: list[Allocation]) -> list[Allocation] | None:
    """The allocations of ``new`` that are not in ``old`` (by identity), or None when
    ``old`` holds one that ``new`` does not (a port may have been freed). The caller
    holds ``old``, so no identity in it can be reused by an object in ``new``."""
    if len(new) < len(old):
        return None
    kept = {id(a) for a in old}
    added = [a for a in new if id(a) not in kept]
    return added if len(new) - len(added) == len(old) else None


def _static_clash(static: list[Port], used: set[int]) -> str | None:
    for port in static:
        if not 0 <= port.Value < MAX_VALID_PORT:
            return f"invalid port {port.Value} (out of range)"
        if port.Value in used:
            return f"reserved port collision {port.Label}={port.Value}"
    return None


def _base_index(node: Node) -> NetworkIndex | str:
    idx = NetworkIndex()
    err = idx._index_node(node)
    return err if err is not None else idx


_node_base = IdentityMemo(_base_index)


def _copy(port: Port) -> Port:
    return msgspec.structs.replace(port)


def _network_ips(net: NetworkResource) -> tuple[str, ...]:
    """Every address of the network's CIDR (capped), or its IP when it has no CIDR;
    Nomad skips networks whose CIDR does not parse, and so does this."""
    return _cidr_ips(net.CIDR or "", net.IP or "")


@functools.lru_cache(maxsize=1024)
def _cidr_ips(cidr: str, ip: str) -> tuple[str, ...]:
    if not cidr:
        return (ip,) if ip else ()
    try:
        network = ipaddress.ip_network(cidr, strict=False)
    except ValueError:
        return ()
    out = []
    for i, addr in enumerate(network):
        if i >= MAX_IPS_PER_NETWORK:
            break
        out.append(str(addr))
    return tuple(out)
