"""Ranking: does the group fit on a feasible node, and how well does it pack there.

Reproduces the 1.x rank stages (``scheduler/feasible/rank.go``, ``select.go``): bin-pack, job
anti-affinity, score normalization (the average of the scores each stage appended),
the limit with its low-score skips, and max score.

Whether a group fits on a node and how tightly it packs there (Nomad's ``AllocsFit``,
``ScoreFitBinPack``, resource usage) is ``scheduler/fit.py``; this module ranks the
nodes it fits on.
"""
from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Protocol

import msgspec

from caravan.fsm.structs import Allocation, AllocMetric, Job, NetworkResource, Node, NodeScoreMeta, Resources, TaskGroup
from caravan.scheduler.fit import (
    BINPACK_MAX_FIT_SCORE,
    DIM_CPU,
    DIM_DISK,
    DIM_MEMORY,
    NO_NETWORK,
    NoNetwork,
    Offer,
    Usage,
    score_fit,
    sum_usage,
    usage_fits,
)
from caravan.scheduler.ports import NetworkIndex, node_networks

SKIP_SCORE_THRESHOLD = 0.0   # 1.x: the limit skips options scoring at or below this...
MAX_SKIP = 3                 # ...up to this many, while better ones may follow
MAX_RETAINED_NODE_SCORES = 5


def exhaust_node(metric: AllocMetric, node: Node, dimension: str) -> None:
    """``AllocMetric.ExhaustedNode``: ClassExhausted counts the node's *NodeClass*."""
    metric.NodesExhausted += 1
    if node.NodeClass:
        metric.ClassExhausted = metric.ClassExhausted or {}
        metric.ClassExhausted[node.NodeClass] = metric.ClassExhausted.get(node.NodeClass, 0) + 1
    if dimension:
        metric.DimensionExhausted = metric.DimensionExhausted or {}
        metric.DimensionExhausted[dimension] = metric.DimensionExhausted.get(dimension, 0) + 1


class ScoreBoard:
    """Collects each node's named scores; ``finish`` keeps the top 5 by normalized score
    in ``ScoreMetaData``. The ``Scores`` map (every node's every score) is deprecated
    since Nomad 0.9 and 1.x no longer fills it; neither does Caravan, which keeps each
    allocation's metrics (replicated with every plan) a third of the size. Scores are
    kept as plain dicts; only the retained five become ``NodeScoreMeta``."""

    def __init__(self) -> None:
        self._scores: dict[str, dict[str, float]] = {}
        self._normalized: dict[str, float] = {}

    def record(self, node: Node, name: str, score: float) -> None:
        if name == "normalized-score":
            self._normalized[node.ID] = score
            self._scores.setdefault(node.ID, {})
        else:
            scores = self._scores.get(node.ID)
            if scores is None:
                self._scores[node.ID] = {name: score}
            else:
                scores[name] = score

    def scores_of(self, node_id: str) -> dict[str, float]:
        """The named scores recorded for a node (before normalization is known)."""
        return dict(self._scores.get(node_id) or {})

    def finish(self, metric: AllocMetric) -> None:
        ranked = sorted(self._normalized.items(), key=lambda kv: -kv[1])
        metric.ScoreMetaData = [
            NodeScoreMeta(NodeID=node_id, Scores=self._scores[node_id], NormScore=norm)
            for node_id, norm in ranked[:MAX_RETAINED_NODE_SCORES]] or None


@dataclass
class RankedNode:
    node: Node
    proposed: list[Allocation] | None   # None: not looked up (see ``binpack``)
    resources: Resources
    task_resources: dict[str, Resources]
    scores: list[float] = field(default_factory=list)
    final_score: float = 0.0
    preempted: list[Allocation] | None = None   # to evict so the placement fits
    shared: Resources | None = None     # the group's disk and its network offer


class Preempt(Protocol):
    """What the bin-packer asks when a group does not fit on a node
    (``scheduler.preemption.Preemptor``): which of the node's live allocations to evict."""

    def for_resources(self, node: Node, live: list[Allocation],
                      ask: Usage) -> list[Allocation] | None:
        """To free CPU, memory and disk for ``ask``; None when it cannot be done."""

    def for_network(self, node: Node, live: list[Allocation],
                    try_offer: Callable[[list[Allocation]], Offer | str],
                    ) -> tuple[list[Allocation], Offer] | None:
        """To free the reserved ports and bandwidth the group asks for; with the offer
        ``try_offer`` made once they are gone. None when it cannot be done."""


def binpack(source: Iterable[Node], tg: TaskGroup,
            proposed_of: Callable[[str], list[Allocation]], rng: random.Random,
            metric: AllocMetric, board: ScoreBoard,
            usage_of: Callable[[str], Usage] | None = None,
            preempt: Preempt | None = None) -> Iterator[RankedNode]:
    """``BinPackIterator``: assign ports, sum the asks (tasks plus the group's ephemeral
    disk), skip nodes they do not fit on, and score the rest ``fit / 18``.
    ``usage_of(node_id)``, when given, is what the node's live proposed allocations
    use (the stack keeps it per node instead of summing them at every visit); then a
    group that asks for no network never looks up the allocations themselves
    (``RankedNode.proposed`` is None), and its ask, the same on every node, is summed
    once. With ``preempt``, a node the group does not fit on is still an option when
    evicting some of its allocations makes room (``RankedNode.preempted``): first for
    the reserved ports and bandwidth it asks for, then for CPU, memory and disk."""
    disk = (tg.EphemeralDisk.SizeMB or 0) if tg.EphemeralDisk is not None else 0
    fixed: tuple[dict[str, Resources], Resources, Usage, Resources] | None = None
    if not _asks_network(tg):
        task_resources = {task.Name: task.Resources if task.Resources is not None
                          else Resources() for task in tg.Tasks or []}
        combined = _combined(task_resources, disk, [])
        fixed = (task_resources, combined, Usage(combined.CPU or 0, combined.MemoryMB or 0, disk),
                 Resources(DiskMB=disk))
    for node in source:
        victims: list[Allocation] = []
        proposed: list[Allocation] | None
        net_idx: NetworkIndex | NoNetwork
        if fixed is None:
            proposed = proposed_of(node.ID)
            offer = _offer(node, tg, proposed, rng)
            if isinstance(offer, str) and preempt is not None:
                def offer_without(rest: list[Allocation], node: Node = node) -> Offer | str:
                    return _offer(node, tg, rest, rng)
                found = preempt.for_network(
                    node, [a for a in proposed if not a.terminal()], offer_without)
                if found is not None:
                    victims, offer = found
            if isinstance(offer, str):
                exhaust_node(metric, node, offer)
                continue
            net_idx, networks, task_resources, group_net = offer
            combined = _combined(task_resources, disk, networks)
            ask = Usage(combined.CPU or 0, combined.MemoryMB or 0, disk)
            shared = Resources(DiskMB=disk, Networks=[group_net] if group_net else None)
        else:
            proposed = None if usage_of is not None else proposed_of(node.ID)
            net_idx = NO_NETWORK
            task_resources, combined, ask, shared = fixed
        if usage_of is not None:
            used = usage_of(node.ID)
        else:
            assert proposed is not None   # looked up above whenever there is no usage_of
            used = sum_usage(a for a in proposed if not a.terminal())
        if victims:
            used = used - sum_usage(victims)
        util = used + ask
        fit, dim = usage_fits(node, util, net_idx)
        if not fit and preempt is not None and dim in (DIM_CPU, DIM_MEMORY, DIM_DISK):
            gone = {a.ID for a in victims}
            live = [a for a in proposed_of(node.ID) if not a.terminal() and a.ID not in gone]
            more = preempt.for_resources(node, live, ask)
            if more:
                victims = victims + more
                fit = True
        if not fit:
            exhaust_node(metric, node, dim)
            continue
        fitness = score_fit(node, util) / BINPACK_MAX_FIT_SCORE
        board.record(node, "binpack", fitness)
        yield RankedNode(node, proposed, combined, task_resources, [fitness],
                         preempted=victims or None, shared=shared)


def _combined(task_resources: dict[str, Resources], disk: int,
              networks: list[NetworkResource]) -> Resources:
    """The allocation's combined ``Resources``: its tasks' CPU and memory, the group's
    disk, the networks it was offered."""
    return Resources(CPU=sum(r.CPU or 0 for r in task_resources.values()),
                     MemoryMB=sum(r.MemoryMB or 0 for r in task_resources.values()),
                     DiskMB=disk, Networks=networks or None)


def _asks_network(tg: TaskGroup) -> bool:
    return bool(tg.Networks) or any(t.Resources is not None and t.Resources.Networks
                                    for t in tg.Tasks or ())


def _offer(node: Node, tg: TaskGroup, proposed: list[Allocation], rng: random.Random) -> Offer | str:
    """The node's network index with this placement's ports taken, all its networks
    (the group's first), per-task resources and the group's own network offer (None
    without one); or the exhausted dimension when the network cannot serve it.
    A group that asks for no network needs no index (its placement cannot collide)."""
    if not _asks_network(tg):
        return NO_NETWORK, [], {task.Name: task.Resources if task.Resources is not None
                                 else Resources() for task in tg.Tasks or []}, None
    net_idx = node_networks(node, proposed)
    if isinstance(net_idx, str):
        return f"network: {net_idx}"
    networks: list[NetworkResource] = []
    group_net: NetworkResource | None = None
    if tg.Networks:  # only the first group network counts, as in Nomad
        assigned = net_idx.assign(tg.Networks[0], rng)
        if isinstance(assigned, str):
            return f"network: {assigned}"
        group_net = assigned
        if tg.Networks[0].Hostname:   # the group's offer is a copy of its ask
            group_net = msgspec.structs.replace(group_net, Hostname=tg.Networks[0].Hostname)
        net_idx.add_reserved(group_net)
        networks.append(group_net)
    task_resources: dict[str, Resources] = {}
    for task in tg.Tasks or []:
        res = task.Resources if task.Resources is not None else Resources()
        task_nets = None
        if res.Networks:
            offer = net_idx.assign(res.Networks[0], rng)
            if isinstance(offer, str):
                return f"network: {offer}"
            net_idx.add_reserved(offer)  # so the next task cannot take the same port
            networks.append(offer)
            task_nets = [offer]
        task_resources[task.Name] = msgspec.structs.replace(res, Networks=task_nets)
    return net_idx, networks, task_resources, group_net


def job_anti_affinity(source: Iterable[RankedNode], job: Job, tg: TaskGroup,
                      board: ScoreBoard,
                      collisions_of: Callable[[str], int] | None = None) -> Iterator[RankedNode]:
    """1.x: ``-(collisions + 1) / count`` for a node already holding allocs of this job
    and group (0.6 subtracted a flat 20/10 per collision). With no collision the
    score is recorded as 0 but not averaged in, exactly as Nomad does.
    ``collisions_of(node_id)``, when given, counts them (the stack keeps counts per
    node); else they are counted in the option's proposed allocations."""
    desired = max(tg.Count or 0, 1)
    for option in source:
        if collisions_of is not None:
            collisions = collisions_of(option.node.ID)
        else:
            assert option.proposed is not None   # binpack looks them up without usage_of
            collisions = sum(1 for a in option.proposed
                             if a.JobID == job.ID and a.TaskGroup == tg.Name)
        penalty = -(collisions + 1) / desired if collisions else 0.0
        if collisions:
            option.scores.append(penalty)
        board.record(option.node, "job-anti-affinity", penalty)
        yield option


def node_reschedule_penalty(source: Iterable[RankedNode], penalty_nodes: frozenset[str],
                            board: ScoreBoard) -> Iterator[RankedNode]:
    """``NodeReschedulingPenaltyIterator``: -1 (averaged in) on a node a rescheduled
    allocation failed on; 0 elsewhere, recorded but not averaged in, as Nomad does."""
    for option in source:
        if option.node.ID in penalty_nodes:
            option.scores.append(-1.0)
            board.record(option.node, "node-reschedule-penalty", -1.0)
        else:
            board.record(option.node, "node-reschedule-penalty", 0.0)
        yield option


def normalize_scores(source: Iterable[RankedNode], board: ScoreBoard) -> Iterator[RankedNode]:
    """``ScoreNormalizationIterator``: the final score is the mean of the stage scores."""
    for option in source:
        if option.scores:
            option.final_score = sum(option.scores) / len(option.scores)
            board.record(option.node, "normalized-score", option.final_score)
        yield option


def limit(source: Iterable[RankedNode], count: int, threshold: float = SKIP_SCORE_THRESHOLD,
          max_skip: int = MAX_SKIP) -> Iterator[RankedNode]:
    """``LimitIterator``: stop after ``count`` options; set aside up to ``max_skip``
    options scoring <= ``threshold`` while others remain, and use them last."""
    it = iter(source)
    skipped: list[RankedNode] = []
    used_skipped = 0

    def next_option() -> RankedNode | None:
        nonlocal used_skipped
        option = next(it, None)
        if option is None and used_skipped < len(skipped):
            option = skipped[used_skipped]
            used_skipped += 1
        return option

    for _ in range(count):
        option = next_option()
        while option is not None and option.final_score <= threshold and len(skipped) < max_skip:
            skipped.append(option)
            option = next(it, None)
        if option is None:
            option = next_option()
        if option is None:
            return
        yield option


def max_score(source: Iterable[RankedNode]) -> RankedNode | None:
    """``MaxScoreIterator``: drain the source, keep the best; the first wins a tie."""
    best = None
    for option in source:
        if best is None or option.final_score > best.final_score:
            best = option
    return best
