"""Preemption: which lower-priority allocations to evict so a group fits on a node.

Nomad 1.x ``scheduler/preemption.go`` (``PreemptForTaskGroup``) over CPU, memory and
disk: only allocations of jobs at least ``PRIORITY_DELTA`` below the placing job's
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
from collections.abc import Iterable, Iterator, Mapping

from fsm.structs import Allocation, Node
from scheduler.rank import RankedNode, ScoreBoard, Usage, alloc_usage, node_capacity

PRIORITY_DELTA = 10
MAX_PARALLEL_PENALTY = 50.0
PREEMPTION = "preemption"
PREEMPTION_DEFAULTS = {"system": True, "sysbatch": True, "batch": False, "service": False}


def preemption_enabled(job_type: str | None) -> bool:
    return PREEMPTION_DEFAULTS.get(job_type or "", False)


def preemptible(job_priority: int, alloc: Allocation) -> bool:
    """A candidate at all: its job is known and at least PRIORITY_DELTA lower."""
    return alloc.Job is not None and job_priority - (alloc.Job.Priority or 0) >= PRIORITY_DELTA


def distance(ask: Usage, used: Usage) -> float:
    """``basicResourceDistance``: how far an allocation's resources are from the ask,
    each dimension relative to the ask (dimensions not asked for do not count)."""
    coords = [(want - have) / want if want > 0 else 0.0
              for want, have in zip(ask, used)]
    return math.sqrt(sum(c * c for c in coords))


def _max_parallel(alloc: Allocation) -> int:
    tg = next((g for g in alloc.Job.TaskGroups or [] if g.Name == alloc.TaskGroup), None)
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
            by_priority.setdefault(a.Job.Priority or 0, []).append(a)

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
