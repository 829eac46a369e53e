"""The ``node-affinity`` rank stage: Nomad 1.x ``NodeAffinityIterator``.

A group's affinities are the job's, the group's and its tasks' (in that order). A node
scores the sum of the weights of the affinities it matches over the sum of their
absolute weights, in [-1, 1]: a negative weight that matches steers placements away.
Matching is a constraint check (``checkAffinity`` is ``checkConstraint``), with the
same targets and operands as ``feasible``.
"""
from __future__ import annotations

from collections.abc import Iterable, Iterator

from caravan.fsm.structs import Affinity, Job, Node, TaskGroup
from caravan.scheduler.feasible import check_constraint, resolve_target
from caravan.scheduler.rank import RankedNode, ScoreBoard

NODE_AFFINITY = "node-affinity"


def group_affinities(job: Job, tg: TaskGroup) -> list[Affinity]:
    """The job's, then the group's, then each task's affinities."""
    out = list(job.Affinities or [])
    out += tg.Affinities or []
    for task in tg.Tasks or []:
        out += task.Affinities or []
    return out


def matches(affinity: Affinity, node: Node) -> bool:
    lval, lfound = resolve_target(affinity.LTarget, node)
    rval, rfound = resolve_target(affinity.RTarget, node)
    return check_constraint(affinity.Operand, lval, rval, lfound, rfound)


def affinity_score(node: Node, affinities: list[Affinity]) -> float:
    """Matching weights over the sum of absolute weights (0 without affinities)."""
    total = sum(abs(a.Weight or 0) for a in affinities)
    if not total:
        return 0.0
    return sum((a.Weight or 0) for a in affinities if matches(a, node)) / total


def node_affinity(source: Iterable[RankedNode], affinities: list[Affinity],
                  board: ScoreBoard, known: dict[str, float] | None = None,
                  ) -> Iterator[RankedNode]:
    """Append the affinity score of each option. Without affinities every node is
    recorded with 0 and nothing is averaged in; with them, a node matching none (a
    zero score) is not scored either, as in Nomad. A node's score depends on the node
    alone: ``known`` (node ID -> score) keeps them across the selects of one pass."""
    known = {} if known is None else known
    for option in source:
        if not affinities:
            board.record(option.node, NODE_AFFINITY, 0.0)
        else:
            score = known.get(option.node.ID)
            if score is None:
                score = known[option.node.ID] = affinity_score(option.node, affinities)
            if score != 0.0:
                option.scores.append(score)
                board.record(option.node, NODE_AFFINITY, score)
        yield option
