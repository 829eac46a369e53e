"""The placement chain for service and batch jobs: Nomad's ``GenericStack``.

One ``Stack`` serves one scheduling pass of one job (Nomad: one eval): it shuffles the
candidate nodes once with the injected ``random.Random`` (so a pass can be replayed
from its seed), remembers per computed node class what it learnt about feasibility, and
keeps walking the shuffled nodes from where the previous ``select`` stopped, so
consecutive placements look at different nodes first. Every stage is a lazy generator;
``select`` wires them in one place. A placement that finds no node is not an error: it
comes back with ``node=None`` and an ``AllocMetric`` that says why.

The caller measures ``AllocationTime``; nothing here reads a clock.
"""
from __future__ import annotations

import math
import operator
import random
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass, field

from caravan.fsm.structs import Allocation, AllocMetric, Job, Node, Resources, TaskGroup
from caravan.scheduler.affinity import group_affinities, node_affinity
from caravan.scheduler.feasible import (
    DISTINCT_PROPERTY,
    FILTER_CLASS_INELIGIBLE,
    Checker,
    PropertyCounts,
    PropertySet,
    computed_class,
    constraint_checker,
    distinct_hosts,
    distinct_property,
    driver_checker,
    escapes,
    filter_node,
    group_constraints,
    host_volume_checker,
    in_datacenters,
    in_pool,
    network_checker,
    per_alloc_volumes,
)
from caravan.scheduler.fit import Usage, live_allocs, sum_usage
from caravan.scheduler.preemption import Preemptor, preemption_scores
from caravan.scheduler.rank import (
    RankedNode,
    ScoreBoard,
    binpack,
    job_anti_affinity,
    limit,
    max_score,
    node_reschedule_penalty,
    normalize_scores,
)
from caravan.scheduler.spread import SpreadScorer, allocation_spread


@dataclass
class Placement:
    """Where one allocation of a group goes (``node`` None: nowhere, see ``metric``)."""
    node: Node | None
    resources: Resources = field(default_factory=Resources)
    task_resources: dict[str, Resources] = field(default_factory=dict)
    metric: AllocMetric = field(default_factory=AllocMetric)
    preempted: list[Allocation] | None = None   # to evict from ``node`` first
    shared: Resources | None = None   # the group's disk and network (SharedResources)


class Eligibility:
    """Per-eval memo (Nomad's ``EvalEligibility``): computed class -> feasible?, for the
    job checks and per task group. A job or group with a constraint on a unique target
    (``escapes``) gets no memo: its answer differs between nodes of one class."""

    def __init__(self, job: Job):
        self.job: dict[str, bool] | None = None if escapes(job.Constraints or []) else {}
        self._groups: dict[str, dict[str, bool]] = {}

    def group(self, tg: TaskGroup) -> dict[str, bool] | None:
        if escapes(group_constraints(tg)[0]) or per_alloc_volumes(tg):
            return None
        return self._groups.setdefault(tg.Name or "", {})


def wrapped_checks(source: Iterable[Node], job_memo: dict[str, bool] | None,
                   group_memo: dict[str, bool] | None, class_of: Callable[[Node], str],
                   job_checks: list[Checker], tg_checks: list[Checker],
                   metric: AllocMetric) -> Iterator[Node]:
    """``FeasibilityWrapper.Next``: job checks then group checks, each skipped when the
    node's computed class already has an answer (a known-bad class is filtered as
    ``computed class ineligible``, not with the original reason)."""
    for node in source:
        cls = class_of(node)
        if _passes(node, cls, job_memo, job_checks, metric) and \
                _passes(node, cls, group_memo, tg_checks, metric):
            yield node


def _passes(node: Node, cls: str, memo: dict[str, bool] | None, checks: list[Checker],
            metric: AllocMetric) -> bool:
    known = memo.get(cls) if memo is not None else None
    if known is False:
        filter_node(metric, node, FILTER_CLASS_INELIGIBLE)
        return False
    if known is True:
        return True
    for check in checks:
        reason = check(node)
        if reason is not None:
            filter_node(metric, node, reason)
            if memo is not None:
                memo[cls] = False
            return False
    if memo is not None:
        memo[cls] = True
    return True


def count_job_allocs(job_allocs: Iterable[Allocation]) -> dict[tuple[str, str], int]:
    """(node ID, group) -> how many of one job's allocations are live there."""
    counts: dict[tuple[str, str], int] = {}
    for a in job_allocs:
        if not a.terminal():
            key = (a.NodeID, a.TaskGroup)
            counts[key] = counts.get(key, 0) + 1
    return counts


# (pool, datacenters, node count) -> (the node rows, their candidates, count per datacenter)
_CANDIDATES: dict[tuple[str | None, tuple[str, ...], int],
                  tuple[list[Node], tuple[Node, ...], dict[str, int]]] = {}


def _candidates(nodes: list[Node], pool: str | None,
                datacenters: list[str]) -> tuple[tuple[Node, ...], dict[str, int]]:
    """The ready nodes of the pool and datacenters, sorted by ID, and how many per
    datacenter. The answer is kept for the very same node rows (the same objects in
    the same order), so evaluations between two node changes reuse it."""
    key = (pool, tuple(datacenters), len(nodes))
    hit = _CANDIDATES.get(key)
    if hit is not None and len(hit[0]) == len(nodes) and all(map(operator.is_, hit[0], nodes)):
        return hit[1], hit[2]
    candidates = tuple(sorted((n for n in nodes if n.ready() and in_pool(n, pool)
                               and in_datacenters(n, datacenters)), key=lambda n: n.ID))
    by_dc: dict[str, int] = {}
    for n in candidates:
        by_dc[n.Datacenter] = by_dc.get(n.Datacenter, 0) + 1
    if len(_CANDIDATES) >= 64:
        _CANDIDATES.clear()
    _CANDIDATES[key] = (list(nodes), candidates, by_dc)
    return candidates, by_dc


def select_limit(candidates: int, batch: bool) -> int:
    """How many fitting nodes to compare: 2 for batch ("power of two choices"), else
    enough to matter on big clusters: ``max(2, ceil(log2 n))``."""
    if batch or candidates <= 0:
        return 2
    return max(2, math.ceil(math.log2(candidates)))


SPREAD_LIMIT = 100


def scored_limit(base: int, tg: TaskGroup, scored: bool) -> int:
    """With affinities or spreads the scores differ between nodes that fit equally,
    so more are compared: the group's count, at least 100 (Nomad's empirical value)."""
    return max(tg.Count or 0, SPREAD_LIMIT) if scored else base


class Stack:
    """One job's placement chain for one scheduling pass::

        stack = Stack(job, nodes, allocs_by_node, random.Random(seed))
        placement = stack.select(tg, proposed)   # once per allocation to place

    ``nodes`` is every known node (readiness, pool and datacenters are checked here);
    ``allocs_by_node`` the allocations in the state, terminal or not. The scheduler
    also passes what it knows without visiting those rows: ``usage_of(node_id)``, what
    a node's live allocations use (the store keeps it), and ``job_counts``, how many
    of the job's own allocations are live per (node, group) (``count_job_allocs``, for
    anti-affinity; computed once per plan, not per stack: a system job has a stack per
    node); without them both are computed from ``allocs_by_node``.

    ``preempt``: a node the group does not fit on may still be chosen by evicting
    allocations of lower-priority jobs (``scheduler.preemption``); ``preempted`` is
    the plan's evictions so far, by ID, shared by the stacks of one plan (their
    resources are already free, and they weigh on further choices)."""

    def __init__(self, job: Job, nodes: list[Node],
                 allocs_by_node: Mapping[str, list[Allocation]], rng: random.Random,
                 usage_of: Callable[[str], Usage] | None = None,
                 job_counts: dict[tuple[str, str], int] | None = None,
                 preempt: bool = False, preempted: dict[str, Allocation] | None = None):
        self.job = job
        self.rng = rng
        self._nodes = {n.ID: n for n in nodes}
        # Candidates are ready nodes of the job's pool and datacenters (Nomad's
        # readyNodesInDCsAndPool); the others are never evaluated nor counted as
        # filtered. Sorted first, so the shuffle depends on the seed alone.
        ready, self._by_dc = _candidates(nodes, job.NodePool, job.Datacenters or ["*"])
        candidates = list(ready)
        rng.shuffle(candidates)
        self._candidates = candidates
        self._offset = 0
        self._classes: dict[str, str] = {}      # filled as nodes are reached
        self._existing = allocs_by_node
        self._usage_of = usage_of or (
            lambda node_id: sum_usage(live_allocs(node_id, allocs_by_node.get(node_id, []))))
        # (node ID, group) -> the job's live allocations there, before this plan's
        self._collisions = job_counts if job_counts is not None else count_job_allocs(
            a for rows in allocs_by_node.values() for a in rows if a.JobID == job.ID)
        # node ID -> (key of the plan's list for it, (live allocations, their usage))
        self._views: dict[str, tuple[tuple[int, int] | None, tuple[list[Allocation], Usage]]] = {}
        self._eligibility = Eligibility(job)
        self._job_checks = [constraint_checker(job.Constraints or [])]
        self._limit = select_limit(len(candidates), job.Type == "batch")
        self._spreads: dict[str, SpreadScorer] = {}
        self._affinity_scores: dict[str, dict[str, float]] = {}   # group -> node ID -> score
        self._preempt = preempt
        self._preempted = preempted if preempted is not None else {}

    def select(self, tg: TaskGroup, proposed: dict[str, list[Allocation]],
               alloc_name: str = "",
               penalty_nodes: frozenset[str] = frozenset()) -> Placement:
        """Pick a node for one more allocation of ``tg``, given what this plan already
        placed (``proposed``, by node). To count an allocation this plan stops as
        gone, pass it in ``proposed`` with ``DesiredStatus="stop"``. ``alloc_name``
        picks the source of ``per_alloc`` host volumes. A rescheduled allocation
        passes the nodes it failed on as ``penalty_nodes``."""
        metric = AllocMetric(NodesInPool=len(self._candidates), NodesAvailable=dict(self._by_dc))
        board = ScoreBoard()
        allocs_on, usage_of, collisions_of = self._proposed_view(proposed, tg)
        constraints, drivers = group_constraints(tg)
        # Cheap, per-class checks first: drivers, constraints, host volumes, then
        # networks (Nomad's order); memoized per computed class, so they are not
        # repeated on similar nodes.
        tg_checks = [driver_checker(drivers), constraint_checker(constraints),
                     host_volume_checker(tg, alloc_name), network_checker(tg)]

        # The chain. Each stage pulls from the one above only as far as it must, so
        # the limit decides how many nodes are evaluated at all.
        # 1. Source: the shuffled candidates, resuming where the last select stopped;
        #    the random order spreads load and keeps concurrent schedulers apart.
        nodes: Iterable[Node] = self._source(metric)
        # 2. Per-class feasibility (job constraints, then group drivers/constraints/
        #    network): answers that depend only on the node, so they are memoized.
        nodes = wrapped_checks(nodes, self._eligibility.job, self._eligibility.group(tg),
                               self._class_of, self._job_checks, tg_checks, metric)
        # 3. distinct_hosts, then distinct_property: these depend on allocations, so
        #    they cannot be memoized per class and run only on class-feasible nodes.
        nodes = distinct_hosts(nodes, self.job, tg, allocs_on, metric)
        nodes = distinct_property(nodes, self._property_sets(tg, allocs_on, proposed), metric)
        # 4. Bin-pack: the costly stage (ports, capacity), run on feasible nodes only.
        #    A node that fits only by evicting lower priorities is an option when
        #    the stack may preempt; bin-pack is where the fit is known.
        ranked: Iterable[RankedNode] = binpack(nodes, tg, allocs_on, self.rng, metric, board, usage_of,
                         self._preempter(tg) if self._preempt else None)
        # 5. Job anti-affinity, after bin-pack so it only adjusts nodes that fit.
        ranked = job_anti_affinity(ranked, self.job, tg, board, collisions_of)
        # 6. Node reschedule penalty: a replacement of a failed alloc avoids the
        #    nodes it failed on (Nomad's order: before affinity and spread).
        ranked = node_reschedule_penalty(ranked, penalty_nodes, board)
        # 7. Node affinity and spread: preferences between nodes that fit,
        #    scored only on those (the spread counts the plan's placements too).
        affinities = group_affinities(self.job, tg)
        ranked = node_affinity(ranked, affinities, board,
                               self._affinity_scores.setdefault(tg.Name or "", {}))
        spread = self._spread_scorer(tg)
        ranked = allocation_spread(ranked, spread, proposed, board)
        # 8. Preemption: a node that needs evictions scores by what it evicts.
        ranked = preemption_scores(ranked, board)
        # 9. Normalize (average the stage scores) before the limit, which compares
        #    final scores to skip poor options.
        ranked = normalize_scores(ranked, board)
        # 10. Limit: compare only a few fitting nodes (log2 n, or 2 for batch; with
        #    affinities or spreads, enough for the preferences to show).
        ranked = limit(ranked, scored_limit(self._limit, tg,
                                            bool(affinities) or spread.active()))
        # 11. Max score: the best of those.
        best = max_score(ranked)

        board.finish(metric)
        if best is None:
            return Placement(node=None, metric=metric)
        return Placement(node=best.node, resources=best.resources,
                         task_resources=best.task_resources, metric=metric,
                         preempted=best.preempted, shared=best.shared)

    def _spread_scorer(self, tg: TaskGroup) -> SpreadScorer:
        """The group's spreads, with its allocations before this plan counted once."""
        name = tg.Name or ""
        scorer = self._spreads.get(name)
        if scorer is None:
            existing = {node_id: n for (node_id, group), n in self._collisions.items()
                        if group == name} if (tg.Spreads or self.job.Spreads) else {}
            scorer = self._spreads[name] = SpreadScorer(self.job, tg, existing,
                                                        self._nodes.get)
        return scorer

    def _preempter(self, tg: TaskGroup) -> Preemptor:
        """Preemption for this job's priority, knowing what the plan already evicts."""
        counts: dict[tuple[str, str, str], int] = {}
        for a in self._preempted.values():
            key = (a.Namespace, a.JobID, a.TaskGroup)
            counts[key] = counts.get(key, 0) + 1
        return Preemptor(self.job.Priority or 0, tg, counts)

    def _source(self, metric: AllocMetric) -> Iterator[Node]:
        """Nomad's StaticIterator over the shuffled nodes: each node once per select,
        starting at the offset the previous select left."""
        n = len(self._candidates)
        for _ in range(n):
            if self._offset >= n:
                self._offset = 0
            node = self._candidates[self._offset]
            self._offset += 1
            metric.NodesEvaluated += 1
            yield node

    def _class_of(self, node: Node) -> str:
        """The class the node registered with, else computed here (once per stack)."""
        if node.ID not in self._classes:
            self._classes[node.ID] = node.ComputedClass or computed_class(node)
        return self._classes[node.ID]

    def _proposed_view(self, proposed: dict[str, list[Allocation]], tg: TaskGroup) -> tuple[
            Callable[[str], list[Allocation]], Callable[[str], Usage], Callable[[str], int]]:
        """(allocs_on, usage_of, collisions_of): node ID -> live allocations there
        (existing ones overridden by this plan's of the same ID, terminal ones dropped:
        ``ProposedAllocs``), what they use, and how many of them are this job's of
        ``tg``. A node this plan placed nothing on is answered from what the stack
        was given, without its rows; the others are kept across this stack's selects
        and recomputed only when the plan's list for the node has grown."""
        views = self._views
        existing = self._existing

        def view(node_id: str) -> tuple[list[Allocation], Usage]:
            mine = proposed.get(node_id)
            key = (id(mine), len(mine)) if mine else None
            hit = views.get(node_id)
            if hit is not None and hit[0] == key:
                return hit[1]
            base_live = live_allocs(node_id, existing.get(node_id, []))
            mine_ids = {a.ID for a in mine if a.ID} if mine else set()
            if not mine:
                result = (base_live, self._usage_of(node_id))
            elif not any(a.ID in mine_ids for a in base_live):
                mine_live = [a for a in mine if not a.terminal()]
                result = (base_live + mine_live, self._usage_of(node_id) + sum_usage(mine_live))
            else:   # the plan replaces allocations already there (updates, stops)
                merged = {a.ID or id(a): a for a in existing.get(node_id, [])}
                merged.update({a.ID or id(a): a for a in mine})
                live = [a for a in merged.values() if not a.terminal()]
                result = (live, sum_usage(live))
            views[node_id] = (key, result)
            return result

        def usage_of(node_id: str) -> Usage:
            return view(node_id)[1] if node_id in proposed else self._usage_of(node_id)

        job_id, group = self.job.ID, tg.Name or ""
        counts = self._collisions

        def collisions_of(node_id: str) -> int:
            if node_id not in proposed:
                return counts.get((node_id, group), 0)
            return sum(1 for a in view(node_id)[0] if a.JobID == job_id and a.TaskGroup == group)

        return (lambda node_id: view(node_id)[0]), usage_of, collisions_of

    def _property_sets(self, tg: TaskGroup, allocs_on: Callable[[str], list[Allocation]],
                       proposed: Mapping[str, list[Allocation]]) -> list[tuple[PropertySet, PropertyCounts]]:
        sets = [PropertySet(c, None) for c in self.job.Constraints or []
                if c.Operand == DISTINCT_PROPERTY]
        sets += [PropertySet(c, tg.Name) for c in tg.Constraints or []
                 if c.Operand == DISTINCT_PROPERTY]
        if not sets:
            return []
        namespace = self.job.Namespace or "default"
        job_allocs = [(node_id, a) for node_id in {*self._existing, *proposed}
                      for a in allocs_on(node_id)
                      if a.JobID == self.job.ID and a.Namespace == namespace]
        return [(ps, ps.usage(job_allocs, self._nodes)) for ps in sets]
