"""The ``allocation-spread`` rank stage: Nomad 1.x ``SpreadIterator`` (``spread.go``)
with its property sets (``propertyset.go``).

A group's spreads are its own and the job's. Each spread counts the group's live
allocations per value of its attribute, those already placed and those in the current
plan. With targets, a value's desired count is ``Percent``% of the group's count, and
values without a target share what the targets leave (the implicit target ``*``); a
node scores ``(desired - (used + 1)) / desired`` times the spread's share of the summed
weights: positive while its value is below its desired count, negative past it. A
value whose desired count is 0 takes the lowest boost seen so far; a node lacking the
attribute, or a value with no target and no implicit target, -1. Without targets the
values are spread evenly (``evenSpreadScoreBoost``). The spread scores of all spreads
are summed; a zero sum is not averaged in.
"""
from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping

from caravan.fsm.structs import Allocation, Job, Node, Spread, TaskGroup
from caravan.scheduler.feasible import resolve_target
from caravan.scheduler.rank import RankedNode, ScoreBoard

ALLOCATION_SPREAD = "allocation-spread"
IMPLICIT_TARGET = "*"


def group_spreads(job: Job, tg: TaskGroup) -> list[Spread]:
    """The group's spreads, then the job's (Nomad's ``combinedSpreads``)."""
    return list(tg.Spreads or []) + list(job.Spreads or [])


def node_value(node: Node | None, attribute: str) -> tuple[str, bool]:
    """``getProperty``: the node's value of the spread attribute."""
    if node is None or not attribute:
        return "", False
    value, found = resolve_target(attribute, node)
    return (value or ""), found


class SpreadSet:
    """One spread's attribute with its desired counts and the use of its values."""

    def __init__(self, spread: Spread, count: int):
        self.attribute = spread.Attribute
        self.weight = spread.Weight or 0
        self.targets = {t.Value for t in spread.SpreadTarget or []}
        self.desired: dict[str, float] = {}
        total = 0.0
        for target in spread.SpreadTarget or []:
            want = target.Percent / 100 * count
            self.desired[target.Value] = want
            total += want
        if 0 < total < count:
            self.desired[IMPLICIT_TARGET] = count - total

    def targeted(self, value: str) -> str:
        """Values without a target of their own count together as ``*``."""
        if not self.targets or value in self.targets:
            return value
        return IMPLICIT_TARGET


def even_boost(use: Mapping[str, int], value: str, found: bool) -> float:
    """``evenSpreadScoreBoost``: favour the least used values, penalize the others."""
    if not use:
        return 0.0
    if not found:
        return -1.0
    current = use.get(value, 0)
    lowest = min(use.values())
    highest = max(use.values())
    if current != lowest:
        return -1.0 if lowest == 0 else (lowest - current) / lowest
    if lowest == highest:
        return -1.0
    if lowest == 0:
        return 1.0
    return (highest - lowest) / lowest


class SpreadScorer:
    """The spreads of one group for one scheduling pass. ``existing`` counts the
    group's live allocations per node before this plan (stops of the plan already
    left out); the plan's own placements are added at each ``score``."""

    def __init__(self, job: Job, tg: TaskGroup, existing: Mapping[str, int],
                 node_of: Callable[[str], Node | None]):
        self.job_id, self.group = job.ID, tg.Name
        spreads = group_spreads(job, tg)
        count = tg.Count or 0
        # one set per spread, job spreads last; the details are per attribute, so a
        # job spread overrides a group spread on the same attribute (as Nomad's map)
        self.details = {s.Attribute: SpreadSet(s, count) for s in spreads}
        self.sets = [SpreadSet(s, count) for s in (job.Spreads or [])] + \
            [SpreadSet(s, count) for s in (tg.Spreads or [])]
        self.sum_weights = sum(s.Weight or 0 for s in spreads)
        self.lowest_boost = -1.0
        self._node_of = node_of
        self._values: dict[tuple[str, str], tuple[str, bool]] = {}   # (attribute, node ID)
        self._existing = [self._use_by_value(s, existing) for s in self.sets]
        self._proposed_seen: dict[str, tuple[int, int]] = {}   # node ID -> (plan allocs, count)

    def active(self) -> bool:
        return bool(self.sets)

    def _use_by_value(self, ps: SpreadSet, per_node: Mapping[str, int]) -> dict[str, int]:
        use: dict[str, int] = {}
        for node_id in sorted(per_node):
            value, found = self._value(node_id, None, ps.attribute)
            if found and per_node[node_id]:
                key = ps.targeted(value)
                use[key] = use.get(key, 0) + per_node[node_id]
        return use

    def _plan_counts(self, proposed: Mapping[str, list[Allocation]]) -> dict[str, int]:
        """node ID -> placements (+1) and stops (-1) of the group in the plan."""
        out: dict[str, int] = {}
        for node_id, allocs in proposed.items():
            seen = self._proposed_seen.get(node_id)
            if seen is not None and seen[0] == len(allocs):
                n = seen[1]
            else:
                n = sum((-1 if a.terminal() else 1) for a in allocs
                        if a.JobID == self.job_id and a.TaskGroup == self.group)
                self._proposed_seen[node_id] = (len(allocs), n)
            if n:
                out[node_id] = n
        return out

    def use_maps(self, proposed: Mapping[str, list[Allocation]]) -> list[dict[str, int]]:
        """Per spread: value -> allocations using it, existing and proposed
        (``GetCombinedUseMap``)."""
        plan = self._plan_counts(proposed)
        maps = []
        for ps, existing in zip(self.sets, self._existing):
            use = dict(existing)
            for key, n in self._use_by_value(ps, {k: v for k, v in plan.items() if v > 0}).items():
                use[key] = use.get(key, 0) + n
            for key, n in self._use_by_value(ps, {k: -v for k, v in plan.items() if v < 0}).items():
                if key in use:
                    use[key] = max(0, use[key] - n)
            maps.append(use)
        return maps

    def _value(self, node_id: str, node: Node | None, attribute: str) -> tuple[str, bool]:
        """The node's value of the attribute, looked up once per pass."""
        key = (attribute, node_id)
        hit = self._values.get(key)
        if hit is None:
            hit = self._values[key] = node_value(
                node if node is not None else self._node_of(node_id), attribute)
        return hit

    def score(self, node: Node, use_maps: list[dict[str, int]]) -> float:
        total = 0.0
        for ps, use in zip(self.sets, use_maps):
            value, found = self._value(node.ID, node, ps.attribute)
            if not found:
                total -= 1.0
                continue
            details = self.details.get(ps.attribute)
            if details is None:
                continue
            if not details.desired:
                total += even_boost(use, value, found)
                continue
            key = ps.targeted(value)
            used = use.get(key, 0) + 1        # counting this placement
            desired = details.desired.get(key, details.desired.get(IMPLICIT_TARGET))
            if desired is None:
                total -= 1.0
                continue
            if desired == 0:
                total += self.lowest_boost
                continue
            share = details.weight / self.sum_weights if self.sum_weights else 0.0
            boost = (desired - used) / desired * share
            total += boost
            self.lowest_boost = min(self.lowest_boost, boost)
        return total


def allocation_spread(source: Iterable[RankedNode], scorer: SpreadScorer | None,
                      proposed: Mapping[str, list[Allocation]],
                      board: ScoreBoard) -> Iterable[RankedNode]:
    """Append each option's spread score (none when the group has no spread)."""
    if scorer is None or not scorer.active():
        return source
    return _spread(source, scorer, scorer.use_maps(proposed), board)


def _spread(source: Iterable[RankedNode], scorer: SpreadScorer, use_maps: list[dict[str, int]],
            board: ScoreBoard) -> Iterator[RankedNode]:
    for option in source:
        score = scorer.score(option.node, use_maps)
        if score != 0.0:
            option.scores.append(score)
            board.record(option.node, ALLOCATION_SPREAD, score)
        yield option
