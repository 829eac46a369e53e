"""Preemption: which lower-priority allocations to evict so a group fits on a node.

Nomad 1.x ``scheduler/preemption.go``: ``PreemptForTaskGroup`` over CPU, memory and
disk, and ``PreemptForNetwork`` for reserved ports and bandwidth (``preempt_for_network``).
For CPU, memory and disk: only allocations of jobs at least ``PRIORITY_DELTA`` below the placing job's
priority are candidates; they are taken lowest priority first, within a priority the
one whose resources are closest to what is still needed (a penalty when its group
already has ``Migrate.MaxParallel`` allocations preempted in this plan), until the
node has room; a last pass keeps only as many of the chosen, largest first, as are
needed. ``preemption_score`` is the ``preemption`` rank score of a node that needs
evictions (``PreemptionScoringIterator``): lower for more, or more important, victims.

Which job types may preempt is the scheduler configuration's business; Nomad's
open-source default lets system and sysbatch jobs preempt, not service or batch jobs
(``PREEMPTION_DEFAULTS``).
"""
from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import Any

from caravan.fsm.structs import Allocation, NetworkResource, Node, TaskGroup
from caravan.scheduler.fit import Usage, alloc_usage, node_capacity
from caravan.scheduler.ports import ERR_BANDWIDTH, alloc_networks
from caravan.scheduler.rank import RankedNode, ScoreBoard

PRIORITY_DELTA = 10
MAX_PARALLEL_PENALTY = 50.0
PREEMPTION = "preemption"
PREEMPTION_DEFAULTS = {"system": True, "sysbatch": True, "batch": False, "service": False}


def preemption_enabled(job_type: str | None) -> bool:
    return PREEMPTION_DEFAULTS.get(job_type or "", False)


def preemptible(job_priority: int, alloc: Allocation) -> bool:
    """A candidate at all: its job is known and at least PRIORITY_DELTA lower."""
    return alloc.Job is not None and job_priority - (alloc.Job.Priority or 0) >= PRIORITY_DELTA


def _priority(alloc: Allocation) -> int:
    """The priority of a candidate's job (``preemptible`` checked that it is known)."""
    return (alloc.Job.Priority or 0) if alloc.Job is not None else 0


def distance(ask: Usage, used: Usage) -> float:
    """``basicResourceDistance``: how far an allocation's resources are from the ask,
    each dimension relative to the ask (dimensions not asked for do not count)."""
    coords = [(want - have) / want if want > 0 else 0.0
              for want, have in zip(ask, used)]
    return math.sqrt(sum(c * c for c in coords))


def _max_parallel(alloc: Allocation) -> int:
    groups = (alloc.Job.TaskGroups or []) if alloc.Job is not None else []
    tg = next((g for g in groups if g.Name == alloc.TaskGroup), None)
    migrate = tg.Migrate if tg is not None else None
    value = migrate.get("MaxParallel") if isinstance(migrate, dict) else \
        getattr(migrate, "MaxParallel", None)
    return value if isinstance(value, int) else 0


def _fits(available: Usage, ask: Usage) -> bool:
    return all(have >= want for have, want in zip(available, ask))


def preempt_for_group(node: Node, current: list[Allocation], ask: Usage, job_priority: int,
                      preempted_counts: Mapping[tuple[str, str, str], int] | None = None,
                      ) -> list[Allocation] | None:
    """The allocations of ``current`` (the node's live allocations, this plan's
    included) to evict so ``ask`` fits, or None when evicting every candidate would
    not make room. ``preempted_counts``: (namespace, job, group) -> allocations of it
    this plan already preempts."""
    counts = preempted_counts or {}
    remaining = node_capacity(node)
    usage = {a.ID: alloc_usage(a) for a in current}
    for a in current:
        remaining = remaining - usage[a.ID]
    by_priority: dict[int, list[Allocation]] = {}
    for a in current:
        if preemptible(job_priority, a):
            by_priority.setdefault(_priority(a), []).append(a)

    chosen: list[Allocation] = []
    available, needed = remaining, ask
    met = False
    for priority in sorted(by_priority):
        group = list(by_priority[priority])
        while group and not met:
            best, best_distance = 0, math.inf
            for i, a in enumerate(group):
                d = distance(needed, usage[a.ID])
                max_parallel = _max_parallel(a)
                taken = counts.get((a.Namespace, a.JobID, a.TaskGroup), 0)
                if max_parallel > 0 and taken >= max_parallel:
                    d += (taken + 1 - max_parallel) * MAX_PARALLEL_PENALTY
                if d < best_distance:
                    best, best_distance = i, d
            victim = group[best]
            available = available + usage[victim.ID]
            met = _fits(available, ask)
            chosen.append(victim)
            group[best] = group[-1]
            group.pop()
            needed = needed - usage[victim.ID]
        if met:
            break
    if not met:
        return None
    return _drop_unneeded(chosen, remaining, ask, usage)


def _drop_unneeded(chosen: list[Allocation], remaining: Usage, ask: Usage,
                   usage: Mapping[str, Usage]) -> list[Allocation]:
    """``filterSuperset``: largest first (farthest from the ask), stop once it fits."""
    ordered = sorted(chosen, key=lambda a: -distance(ask, usage[a.ID]))
    available = remaining
    out = []
    for a in ordered:
        out.append(a)
        available = available + usage[a.ID]
        if _fits(available, ask):
            break
    return out


def preempt_for_network(live: list[Allocation], asks: list[NetworkResource], job_priority: int,
                        try_offer: Callable[[list[Allocation]], Any],
                        ) -> tuple[list[Allocation], Any] | None:
    """``PreemptForNetwork``, reduced to what Caravan's index tracks: the allocations
    holding a reserved port the group asks for must all be preemptible, and go; then,
    while bandwidth is short, preemptible allocations with a network go, lowest
    priority first and within a priority the closest in MBits to the ask, and those
    the later ones made needless come back. Returns the victims and the offer made
    without them, or None."""
    wanted = {p.Value for n in asks for p in n.ReservedPorts or []}
    victims = []
    for a in live:
        held = {p.Value for n in alloc_networks(a) for p in n.ReservedPorts or []}
        if held & wanted:
            if not preemptible(job_priority, a):
                return None
            victims.append(a)
    gone = {a.ID for a in victims}
    offer = try_offer([a for a in live if a.ID not in gone])
    if isinstance(offer, str) and ERR_BANDWIDTH in offer:
        mbits = sum(n.MBits or 0 for n in asks)
        candidates = sorted(
            (a for a in live if a.ID not in gone and preemptible(job_priority, a)
             and _mbits(a) > 0),
            key=lambda a: (_priority(a),
                           abs(mbits - _mbits(a)) / mbits if mbits else 0.0))
        fixed = len(victims)
        for a in candidates:
            victims.append(a)
            gone.add(a.ID)
            offer = try_offer([x for x in live if x.ID not in gone])
            if not isinstance(offer, str):
                break
        if not isinstance(offer, str):
            # the last pass (``filterSuperset``): keep no victim the others make needless
            for a in list(victims[fixed:-1]):
                without = gone - {a.ID}
                trial = try_offer([x for x in live if x.ID not in without])
                if not isinstance(trial, str):
                    victims.remove(a)
                    gone, offer = without, trial
    if isinstance(offer, str) or not victims:
        return None
    return victims, offer


def _mbits(alloc: Allocation) -> int:
    return sum(n.MBits or 0 for n in alloc_networks(alloc))


def group_network_asks(tg: TaskGroup) -> list[NetworkResource]:
    """The group's first network and each task's first network (what is assigned)."""
    asks = list(tg.Networks[:1]) if tg.Networks else []
    for task in tg.Tasks or []:
        if task.Resources is not None and task.Resources.Networks:
            asks.append(task.Resources.Networks[0])
    return asks


class Preemptor:
    """What one job's placements of one group may evict (``rank.Preempt``): allocations
    of jobs at least ``PRIORITY_DELTA`` below ``job_priority``; ``preempted_counts``
    are the plan's evictions so far per (namespace, job, group)."""

    def __init__(self, job_priority: int, tg: TaskGroup,
                 preempted_counts: Mapping[tuple[str, str, str], int] | None = None):
        self.job_priority = job_priority
        self.asks = group_network_asks(tg)
        self.counts = preempted_counts or {}

    def for_resources(self, node: Node, live: list[Allocation],
                      ask: Usage) -> list[Allocation] | None:
        return preempt_for_group(node, live, ask, self.job_priority, self.counts)

    def for_network(self, node: Node, live: list[Allocation],
                    try_offer: Callable[[list[Allocation]], Any],
                    ) -> tuple[list[Allocation], Any] | None:
        return preempt_for_network(live, self.asks, self.job_priority, try_offer)


def net_priority(victims: Iterable[Allocation]) -> float:
    """The highest priority evicted, plus the sum of their priorities over it."""
    priorities = [a.Job.Priority or 0 for a in victims if a.Job is not None]
    highest = max(priorities, default=0)
    return highest + (sum(priorities) / highest if highest else 0.0)


def preemption_score(victims: Iterable[Allocation]) -> float:
    """A logistic function of the net priority: 0.5 at 2048, near 1 for a few
    low-priority victims."""
    return 1.0 / (1 + math.exp(0.0048 * (net_priority(victims) - 2048.0)))


def preemption_scores(source: Iterable[RankedNode], board: ScoreBoard) -> Iterator[RankedNode]:
    """``PreemptionScoringIterator``: score the options that need evictions."""
    for option in source:
        if option.preempted:
            score = preemption_score(option.preempted)
            option.scores.append(score)
            board.record(option.node, PREEMPTION, score)
        yield option
