"""What a worker proposes and what the plan applier answers.

A plan is optimistic: it was computed against a snapshot that may be stale by the
time it is applied. The applier re-checks every node the plan touches against the
newest state and commits only what still fits; the worker refreshes and plans the
rest again.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from caravan.fsm.entries import AllocPreempt, AllocStop, DeploymentStatusUpdate
from caravan.fsm.structs import Allocation, Deployment, Evaluation


@dataclass
class Plan:
    eval_id: str
    job_id: str
    job_version: int
    priority: int = 50
    all_at_once: bool = False
    # placements and in-place updates, by node
    node_allocs: dict[str, list[Allocation]] = field(default_factory=dict)
    stops: list[AllocStop] = field(default_factory=list)
    # the eval's new state and any eval it creates (a blocked eval); committed with
    # the plan only when every node of the plan was accepted
    evals: list[Evaluation] = field(default_factory=list)
    # what a dry run (``/v1/job/:id/plan``) reports: DesiredTGUpdates per group
    desired_tg_updates: dict[str, dict[str, int]] = field(default_factory=dict)
    # a deployment the plan creates, and status changes of existing deployments
    deployment: Deployment | None = None
    deployment_updates: list[DeploymentStatusUpdate] = field(default_factory=list)
    # evictions of lower-priority allocations, by node (Nomad's NodePreemptions), and
    # an eval per job they belong to; both commit only with their node's placements
    node_preemptions: dict[str, list[AllocPreempt]] = field(default_factory=dict)
    preemption_evals: dict[str, Evaluation] = field(default_factory=dict)
    # the evicted allocations as the scheduler saw them (what a dry run reports)
    preempted_allocs: list[Allocation] = field(default_factory=list)
    # follow-up evals for failed allocs to reschedule later, and alloc ID -> its
    # follow-up eval: committed with whatever part of the plan commits
    followup_evals: list[Evaluation] = field(default_factory=list)
    alloc_followups: dict[str, str] = field(default_factory=dict)
    # stopped alloc ID -> its replacement: the stop commits only with the replacement
    # (a failed alloc stays reschedulable until its replacement is placed)
    stop_with: dict[str, str] = field(default_factory=dict)

    def add(self, alloc: Allocation) -> None:
        self.node_allocs.setdefault(alloc.NodeID, []).append(alloc)

    def preempt(self, victim: Allocation, by_alloc_id: str) -> None:
        self.node_preemptions.setdefault(victim.NodeID, []).append(
            AllocPreempt(AllocID=victim.ID, PreemptedByAllocation=by_alloc_id))
        self.preempted_allocs.append(victim)

    def is_noop(self) -> bool:
        return not self.node_allocs and not self.stops and not self.evals and \
            self.deployment is None and not self.deployment_updates and \
            not self.followup_evals

    def placements(self) -> int:
        return sum(len(v) for v in self.node_allocs.values())


@dataclass
class PlanResult:
    index: int                      # log index of the committed entry (0 if nothing)
    rejected_nodes: list[str]       # nodes whose part of the plan no longer fit
    committed_allocs: int = 0

    @property
    def fully_applied(self) -> bool:
        return not self.rejected_nodes
