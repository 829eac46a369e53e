"""Does a set of allocations fit on a node, and how tightly: Nomad's ``AllocsFit`` and
``ScoreFitBinPack`` (``nomad/structs/funcs.go``), resource usage (``Usage``) of nodes
and allocations, and the per-node caches of live allocations the ranking reuses.

Exhausted-dimension wording is 0.6's (``"cpu exhausted"``, as the plan output of Nomad's
Jobs API documentation shows); 1.x says just ``"cpu"``. Network failures read
``"network: <error>"`` in both. IOPS and reserved cores are not counted."""
from __future__ import annotations

import math
import operator
from collections.abc import Iterable
from typing import NamedTuple

from caravan.fsm.schema import ALLOCS, BY_NODE
from caravan.fsm.structs import Allocation, NetworkResource, Node, Resources
from caravan.scheduler.memo import IdentityMemo
from caravan.scheduler.ports import ERR_BANDWIDTH, NetworkIndex, alloc_networks, node_networks
from caravan.scheduler.state import SchedulerState as State

DIM_CPU = "cpu exhausted"
DIM_MEMORY = "memory exhausted"
DIM_DISK = "disk exhausted"
DIM_PORT_COLLISION = "reserved port collision"
BINPACK_MAX_FIT_SCORE = 18.0


class Usage(NamedTuple):
    """CPU (MHz), memory (MB) and disk (MB); ``+`` and ``-`` work field by field."""
    cpu: int = 0
    memory_mb: int = 0
    disk_mb: int = 0

    def __add__(self, other: Usage) -> Usage:  # type: ignore[override]
        return Usage(self.cpu + other.cpu, self.memory_mb + other.memory_mb,
                     self.disk_mb + other.disk_mb)

    def __sub__(self, other: Usage) -> Usage:
        return Usage(self.cpu - other.cpu, self.memory_mb - other.memory_mb,
                     self.disk_mb - other.disk_mb)


def _node_capacity(node: Node) -> Usage:
    """What allocations may use: the node's resources less what it reserves for itself
    (``NodeResources``/``ReservedResources``; the pre-0.9 ``Resources``/``Reserved``
    only when ``NodeResources`` is absent)."""
    if node.NodeResources is not None:
        res, rsv = node.NodeResources, node.ReservedResources
        total = Usage(res.Cpu.CpuShares, res.Memory.MemoryMB, res.Disk.DiskMB)
        reserved = Usage(rsv.Cpu.CpuShares, rsv.Memory.MemoryMB, rsv.Disk.DiskMB) \
            if rsv is not None else Usage()
    else:
        total, reserved = _usage(node.Resources), _usage(node.Reserved)
    return Usage(*(t - r for t, r in zip(total, reserved)))


node_capacity = IdentityMemo(_node_capacity)


def _usage(res: Resources | None) -> Usage:
    if res is None:
        return Usage()
    return Usage(res.CPU or 0, res.MemoryMB or 0, res.DiskMB or 0)


def alloc_usage(alloc: Allocation) -> Usage:
    """An allocation's combined ``Resources``, else its tasks plus the shared disk."""
    return Usage(*alloc.usage())


def node_usage(state: State, node_id: str) -> Usage:
    """What the live allocations on a node use, from the store's running total (no
    visit of the rows)."""
    total = state.total(ALLOCS, "node_usage", node_id)
    return Usage(*total) if total is not None else Usage()


class NoNetwork:
    """The network index of a placement that asks for no network (nothing to check)."""


NO_NETWORK = NoNetwork()
# What a node offers one placement: its network index with the placement's ports taken,
# all the networks offered (the group's first), per-task resources, the group's network.
Offer = tuple[NetworkIndex | NoNetwork, list[NetworkResource], dict[str, Resources],
              NetworkResource | None]


def allocs_fit(node: Node, allocs: Iterable[Allocation],
               net_idx: NetworkIndex | None = None) -> tuple[bool, str, Usage]:
    """``AllocsFit``: (fits, first exhausted dimension, used). Terminal allocations
    never count. Given an index, its port collisions are assumed already checked."""
    allocs = [a for a in allocs if not a.terminal()]
    used = sum_usage(allocs)
    if net_idx is None:
        net_idx = NetworkIndex()
        if net_idx.set_node(node) is not None or net_idx.add_allocs(allocs)[0]:
            fit, dim = usage_fits(node, used, NO_NETWORK)
            return (False, dim, used) if not fit else (False, DIM_PORT_COLLISION, used)
    fit, dim = usage_fits(node, used, net_idx)
    return fit, dim, used


def sum_usage(allocs: Iterable[Allocation]) -> Usage:
    return sum((alloc_usage(a) for a in allocs), Usage())


class NodeAllocs:
    """``(state, node ID)`` -> the node's allocation rows in ID order, as a list that
    nobody may change. The allocations' ``node`` index holds the rows, and the store
    replaces a node's entry whenever one of its rows changes (``fsm.schema.Index.rows``),
    so while the entry is the same object the cached list is returned as is: the same
    list object, which ``LiveUsage`` recognizes at once. Holding the entry keeps its
    identity from being reused; the cache forgets everything past ``limit`` nodes."""

    def __init__(self, limit: int = 100_000):
        self.limit = limit
        self._by_node: dict[str, tuple[object, list[Allocation]]] = {}

    def __call__(self, state: State, node_id: str) -> list[Allocation]:
        entry = state.index_members(ALLOCS, BY_NODE, node_id)
        if not entry:
            return []
        hit = self._by_node.get(node_id)
        if hit is not None and hit[0] is entry:
            return hit[1]
        rows = [entry[pk] for pk in sorted(entry.keys())]
        if len(self._by_node) >= self.limit:
            self._by_node.clear()
        self._by_node[node_id] = (entry, rows)
        return rows


node_allocs = NodeAllocs()


class LiveAllocs:
    """node ID -> the live ones among the allocation rows last seen there.

    Rows in the state are immutable values (a change is a new row object), so when a
    node's rows are the very same objects as last time, so are its live allocations: a
    node visited by many placements and plans is filtered once per change instead of at
    every visit. The very same list (``NodeAllocs`` hands one out per change of the
    node) is recognized without comparing its rows; callers never change a list they
    passed. Holding the rows keeps their identities from being reused; the cache
    forgets everything past ``limit`` nodes."""

    def __init__(self, limit: int = 100_000):
        self.limit = limit
        self._by_node: dict[str, tuple[list[Allocation], list[Allocation],
                                       list[Allocation]]] = {}

    def __call__(self, node_id: str, rows: list[Allocation]) -> list[Allocation]:
        hit = self._by_node.get(node_id)
        if hit is not None and (hit[2] is rows or (
                len(hit[0]) == len(rows) and all(map(operator.is_, hit[0], rows)))):
            return hit[1]
        live = [a for a in rows if not a.terminal()]
        if len(self._by_node) >= self.limit:
            self._by_node.clear()
        self._by_node[node_id] = (list(rows), live, rows)
        return live


live_allocs = LiveAllocs()


def usage_fits(node: Node, used: Usage, net_idx: NetworkIndex | NoNetwork) -> tuple[bool, str]:
    """Whether ``used`` fits the node's capacity (the first exhausted dimension if not)
    and, given a network index, its bandwidth."""
    cap = node_capacity(node)
    for dim, have, want in zip((DIM_CPU, DIM_MEMORY, DIM_DISK), cap, used):
        if have < want:
            return False, dim
    if not isinstance(net_idx, NoNetwork) and net_idx.overcommitted():
        return False, ERR_BANDWIDTH
    return True, ""


def plan_fits(state: State, node: Node, allocs: list[Allocation], stopping: Iterable[str],
              inflight: list[Allocation], stopped: frozenset[str] | set[str]) -> tuple[bool, str]:
    """``AllocsFit`` as the plan applier asks it: does ``node`` hold its live
    allocations in ``state``, with the versions in ``inflight`` (placements of plans
    still committing, later ones winning) and this plan's ``allocs`` in place of the
    same IDs, and without the plan's ``stopped`` IDs (``stopping``: those whose row in
    ``state`` is on this node)?

    The usage is the store's running total, adjusted for the allocations that differ.
    Ports and bandwidth need no check when no network is involved (they stay as the
    state left them); when only new allocations join, their ports go on a copy of the
    node's cached index (``ports.node_networks``); otherwise every allocation on the
    node is counted again."""
    updating = {a.ID for a in allocs}
    latest = {a.ID: a for a in inflight}
    replaced = []
    for alloc_id in sorted({*latest, *updating, *stopping}):
        old = state.get(ALLOCS, alloc_id)
        if old is not None and old.NodeID == node.ID and not old.terminal():
            replaced.append(old)
    counted = [a for a in latest.values() if a.ID not in stopped and a.ID not in updating]
    joining = [a for a in counted + allocs if not a.terminal()]
    networked = any(map(alloc_networks, joining))
    if networked and replaced:
        current = {a.ID: a for a in state.by_index(ALLOCS, BY_NODE, node.ID)}
        current.update(latest)       # the in-flight version wins
        others = [a for a in current.values()
                  if not a.terminal() and a.ID not in stopped and a.ID not in updating]
        fit, dim, _ = allocs_fit(node, others + allocs)
        return fit, dim
    used = node_usage(state, node.ID)
    used = used - sum_usage(replaced) + sum_usage(joining) if replaced or joining else used
    fit, dim = usage_fits(node, used, NO_NETWORK)
    if not fit or not networked:
        return fit, dim
    net_idx = node_networks(node, live_allocs(node.ID, node_allocs(state, node.ID)))
    if isinstance(net_idx, str) or net_idx.add_allocs(joining)[0]:
        return False, DIM_PORT_COLLISION
    return usage_fits(node, used, net_idx)


def score_fit(node: Node, util: Usage) -> float:
    """BestFit v3: ``20 - (10^freeCpu + 10^freeMem)`` clamped to [0, 18]; an empty node
    scores ~0, a full one 18, so higher means tighter packing. ``util`` includes the
    placement. A node without capacity in a dimension counts as full there."""
    cap = node_capacity(node)
    free_cpu = 1 - util.cpu / cap.cpu if cap.cpu > 0 else 0.0
    free_mem = 1 - util.memory_mb / cap.memory_mb if cap.memory_mb > 0 else 0.0
    score = 20.0 - (math.pow(10, free_cpu) + math.pow(10, free_mem))
    return min(max(score, 0.0), BINPACK_MAX_FIT_SCORE)
