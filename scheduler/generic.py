"""Turn one evaluation into a plan: reconcile, then place what must be placed.

``compute_plan(state, eval, rng, now_ns)`` is pure: the same state, eval, random
source and time give the same plan. The worker submits the plan; ``/v1/job/:id/plan``
runs the same function over a private copy of the state and reports it.

Failures to place are not exceptions: the eval records ``FailedTGAllocs`` (one
AllocMetric per group, further failures of the group coalesced) and, once per job, a
blocked eval waits for capacity. A blocked eval that still cannot place everything
stays blocked.
"""
from __future__ import annotations

import random
from collections.abc import Iterator, Mapping

from msgspec.structs import replace

from caravan.fsm import reschedule as rs
from caravan.fsm import schema as t
from caravan.fsm.entries import AllocStop
from caravan.fsm.ids import uuid4_from
from caravan.fsm.structs import Allocation, AllocDeploymentStatus, AllocMetric, Deployment, Evaluation, Job, Node
from caravan.fsm.times import format_rfc3339
from caravan.scheduler.fit import Usage, alloc_usage, node_allocs, node_usage
from caravan.scheduler.plan import Plan
from caravan.scheduler.preemption import preemption_enabled
from caravan.scheduler.reconcile import reconcile
from caravan.scheduler.reconcile_results import ALLOC_RESCHEDULED, ALLOC_UPDATING, PlaceRequest, ReconcileResult
from caravan.scheduler.reconcile_system import reconcile_system
from caravan.scheduler.stack import Stack, count_job_allocs
from caravan.scheduler.state import SchedulerState as State

BLOCKED_DESCRIPTION = "created to place remaining allocations"
FOLLOWUP_DESCRIPTION = "created for delayed rescheduling"


def compute_plan(state: State, ev: Evaluation, rng: random.Random, now_ns: int) -> Plan:
    job: Job | None = state.get(t.JOBS, ev.JobID)
    if job is not None and (job.is_periodic() or job.is_parameterized()):
        job = None  # a periodic or parameterized parent runs nothing itself
    existing = state.by_index(t.ALLOCS, t.BY_JOB, ev.JobID)
    deployment_id = ""
    if job is not None:
        # allocations of an earlier job with the same ID are not this job's
        existing = [a for a in existing if a.Job is None or a.Job.CreateIndex == job.CreateIndex]
    tainted = _tainted_nodes(state, existing)
    nodes = [n for n in state.rows(t.NODES)]
    if job is not None and job.Type == "system" and not job.Stop:
        eligible = [n for n in nodes if n.ready()]
        not_ready = frozenset(n.ID for n in nodes if not n.ready() and n.Status != "down")
        result = reconcile_system(job, ev.JobID, existing, eligible, tainted, now_ns, not_ready)
    else:
        latest = latest_deployment(state, ev.JobID)
        result = reconcile(job, ev.JobID, existing, tainted, now_ns, latest,
                           _derived_id(ev.ID, "deployment"), eval_id=ev.ID)
        if job is None or job.Type == "service":
            # Nomad's setStatus: the eval names the deployment it created or continued
            # (the job's latest), which is how ``job run`` finds the rollout to follow
            deployment_id = result.deployment.ID if result.deployment is not None else \
                (latest.ID if latest is not None else "")

    plan = Plan(eval_id=ev.ID, job_id=ev.JobID, job_version=job.Version if job else 0,
                priority=ev.Priority, all_at_once=bool(job and job.AllAtOnce),
                desired_tg_updates={g: d.as_dict() for g, d in result.desired_tg_updates.items()},
                deployment=result.deployment,
                deployment_updates=result.deployment_updates)
    _stops(plan, result)
    if job is not None:
        _followups(plan, result, job, ev, state, now_ns)
    # In-place updates join a deployment this plan creates, with their health reset.
    new_id = result.deployment.ID if result.deployment is not None else ""
    for update in result.inplace_update:
        alloc = replace(update.alloc, EvalID=ev.ID, ModifyTime=now_ns)
        if alloc.DeploymentID != new_id:
            alloc = replace(alloc, DeploymentID=new_id, DeploymentStatus=None)
        plan.add(alloc)
    failed: dict[str, AllocMetric] = {}
    if job is not None and not job.Stop:
        _place(plan, state, job, ev, nodes, _placements(result, job), rng, now_ns, failed,
               result.deployment_id)
    plan.evals = _eval_updates(ev, job, failed, plan, state, now_ns, deployment_id)
    return plan


def _stops(plan: Plan, result: ReconcileResult) -> None:
    for stop in [*result.stop, *result.mark_lost]:
        plan.stops.append(AllocStop(AllocID=stop.alloc.ID, DesiredDescription=stop.description,
                                    ClientStatus=stop.client_status or ""))
    for update in result.destructive_update:
        plan.stops.append(AllocStop(AllocID=update.alloc.ID, DesiredDescription=ALLOC_UPDATING))


def _followups(plan: Plan, result: ReconcileResult, job: Job, ev: Evaluation, state: State,
               now_ns: int) -> None:
    """The follow-up evals of failed allocs to reschedule later (pending, held by the
    broker until ``WaitUntil``), and the allocs' ``FollowupEvalID``. Their ids derive
    from the eval and the state's index: a re-run of the eval derives new ones."""
    for i, f in enumerate(result.followups):
        follow = Evaluation(
            ID=_derived_id(ev.ID, f"followup/{state.last_index}/{i}"),
            Namespace=job.Namespace or "default", Priority=ev.Priority, Type=job.Type or "",
            TriggeredBy="alloc-failure", JobID=ev.JobID, JobModifyIndex=job.ModifyIndex,
            Status="pending", StatusDescription=FOLLOWUP_DESCRIPTION,
            WaitUntil=format_rfc3339(f.wait_until_ns), PreviousEval=ev.ID,
            CreateTime=now_ns, ModifyTime=now_ns)
        plan.followup_evals.append(follow)
        for alloc_id in f.alloc_ids:
            plan.alloc_followups[alloc_id] = follow.ID


def _placements(result: ReconcileResult, job: Job | None = None) -> list[PlaceRequest]:
    """New placements, plus the replacement of every destructively updated alloc (a
    system job's on the same node: it runs on every node, once)."""
    system = job is not None and job.Type == "system"
    out = list(result.place)
    for update in result.destructive_update:
        a = update.alloc
        out.append(PlaceRequest(name=a.Name, task_group=a.TaskGroup, previous_alloc_id=a.ID,
                                node_id=a.NodeID if system else None))
    return out


def _place(plan: Plan, state: State, job: Job, ev: Evaluation, nodes: list[Node],
           requests: list[PlaceRequest], rng: random.Random, now_ns: int,
           failed: dict[str, AllocMetric], deployment_id: str = "") -> None:
    if not requests:
        return
    groups = {tg.Name: tg for tg in job.TaskGroups or ()}
    # Allocations this plan stops no longer hold their resources.
    allocs_by_node = _NodeAllocs(state, [n.ID for n in nodes],
                                 {s.AllocID for s in plan.stops})
    job_counts = count_job_allocs(a for a in state.by_index(t.ALLOCS, t.BY_JOB, job.ID)
                                  if a.ID not in allocs_by_node.stopping)
    stacks: dict[str | None, Stack] = {}
    proposed: dict[str, list[Allocation]] = {}
    placed: list[Allocation] = []
    preempt = preemption_enabled(job.Type)
    preempted: dict[str, Allocation] = {}          # evicted by this plan, by ID
    evictions: list[tuple[Allocation, str]] = []   # (victim, by alloc ID)
    for req in requests:
        tg = groups.get(req.task_group)
        if tg is None:
            continue
        prev = state.get(t.ALLOCS, req.previous_alloc_id) if req.reschedule else None
        if req.task_group in failed and req.node_id is None:
            failed[req.task_group].CoalescedFailures += 1
            _unstop(plan, prev)
            continue
        # System placements name their node; the stack then considers only it.
        key = req.node_id
        if key not in stacks:
            pool = nodes if key is None else [n for n in nodes if n.ID == key]
            stacks[key] = Stack(job, pool, allocs_by_node, rng, allocs_by_node.usage, job_counts,
                                preempt=preempt, preempted=preempted)
        penalty = rs.penalty_nodes(prev) if prev is not None else frozenset()
        choice = stacks[key].select(tg, proposed, req.name, penalty_nodes=penalty)
        if choice.node is None:
            if req.node_id is not None and choice.metric.NodesFiltered:
                # a system group this node's constraints rule out: not a failure (as
                # Nomad's system scheduler), and no reason to skip the other nodes
                continue
            if req.task_group in failed:
                failed[req.task_group].CoalescedFailures += 1
            else:
                failed[req.task_group] = choice.metric
            _unstop(plan, prev)
            continue
        alloc = Allocation(
            ID=uuid4_from(rng), Namespace=job.Namespace or "default", EvalID=ev.ID,
            Name=req.name, NodeID=choice.node.ID, NodeName=choice.node.Name, JobID=ev.JobID,
            TaskGroup=req.task_group, Resources=choice.resources,
            TaskResources=choice.task_resources, SharedResources=choice.shared,
            DesiredStatus="run", ClientStatus="pending",
            PreviousAllocation=req.previous_alloc_id or "", Metrics=choice.metric,
            DeploymentID=deployment_id,
            DeploymentStatus=AllocDeploymentStatus(Canary=True)
            if req.canary and deployment_id else None,
            RescheduleTracker=rs.tracker_for(prev, now_ns) if prev is not None else None,
            CreateTime=now_ns, ModifyTime=now_ns,
            PreemptedAllocations=[v.ID for v in choice.preempted] if choice.preempted else None)
        for victim in choice.preempted or ():
            # evicted from here on: the next placements see its resources free
            preempted[victim.ID] = victim
            evictions.append((victim, alloc.ID))
            proposed.setdefault(victim.NodeID, []).append(
                replace(victim, DesiredStatus="evict"))
        if prev is not None:
            plan.stop_with[prev.ID] = alloc.ID
        proposed.setdefault(alloc.NodeID, []).append(alloc)
        placed.append(alloc)
    if job.AllAtOnce and failed:
        for alloc_id in list(plan.stop_with):
            _unstop(plan, state.get(t.ALLOCS, alloc_id))
        return  # all or nothing
    for alloc in placed:
        plan.add(alloc)
    for victim, by_id in evictions:
        plan.preempt(victim, by_id)
        updates = plan.desired_tg_updates.get(_group_of(placed, by_id))
        if updates is not None:
            updates["Preemptions"] = updates.get("Preemptions", 0) + 1
    _preemption_evals(plan, state, evictions, rng, now_ns)


def _group_of(placed: list[Allocation], alloc_id: str) -> str:
    return next((a.TaskGroup for a in placed if a.ID == alloc_id), "")


def _preemption_evals(plan: Plan, state: State, evictions: list[tuple[Allocation, str]],
                      rng: random.Random, now_ns: int) -> None:
    """An eval per job losing allocations, so they are placed again where there is
    room (Nomad's plan applier creates them; here they are decided with the plan)."""
    for job_id in sorted({victim.JobID for victim, _ in evictions}):
        job = state.get(t.JOBS, job_id)
        if job is None:
            continue
        plan.preemption_evals[job_id] = Evaluation(
            ID=uuid4_from(rng), Namespace=job.Namespace or "default",
            Priority=job.Priority or 50, Type=job.Type or "service", TriggeredBy="preemption",
            JobID=job_id, JobModifyIndex=job.JobModifyIndex, Status="pending",
            CreateTime=now_ns, ModifyTime=now_ns)


def _unstop(plan: Plan, prev: Allocation | None) -> None:
    """A failed alloc whose replacement found no node is not stopped: it stays
    reschedulable (the blocked eval places it when capacity appears)."""
    if prev is None:
        return
    plan.stops = [s for s in plan.stops
                  if not (s.AllocID == prev.ID and s.DesiredDescription == ALLOC_RESCHEDULED)]
    plan.stop_with.pop(prev.ID, None)


def _eval_updates(ev: Evaluation, job: Job | None, failed: dict[str, AllocMetric], plan: Plan,
                  state: State, now_ns: int, deployment_id: str = "") -> list[Evaluation]:
    """The eval's new state (with the deployment it acted for), and a blocked eval
    when placements failed."""
    queued = {}
    if job is not None:
        for tg in job.TaskGroups or ():
            queued[tg.Name] = 0
        for name, metric in failed.items():
            queued[name] = metric.CoalescedFailures + 1
    failed_tg = {name: m for name, m in failed.items()} or None
    if ev.Status == "blocked":
        # a re-run blocked eval: done if everything fits now, else stays blocked
        status = "blocked" if failed else "complete"
        return [replace(ev, Status=status, FailedTGAllocs=failed_tg, QueuedAllocations=queued,
                        SnapshotIndex=state.last_index, ModifyTime=now_ns,
                        DeploymentID=deployment_id or ev.DeploymentID)]
    out = []
    blocked_id = ""
    if failed:
        blocked = Evaluation(
            ID=_derived_id(ev.ID, "blocked"), Namespace=ev.Namespace, Priority=ev.Priority,
            Type=ev.Type, TriggeredBy="queued-allocs", JobID=ev.JobID,
            JobModifyIndex=ev.JobModifyIndex, Status="blocked",
            StatusDescription=BLOCKED_DESCRIPTION, PreviousEval=ev.ID,
            FailedTGAllocs=failed_tg, SnapshotIndex=state.last_index, CreateTime=now_ns,
            ModifyTime=now_ns)
        blocked_id = blocked.ID
        out.append(blocked)   # the FSM cancels the job's older blocked eval with it
    done = replace(ev, Status="complete", FailedTGAllocs=failed_tg, QueuedAllocations=queued,
                   BlockedEval=blocked_id, SnapshotIndex=state.last_index, ModifyTime=now_ns,
                   DeploymentID=deployment_id or ev.DeploymentID)
    return [done, *out]


class _NodeAllocs(Mapping[str, list[Allocation]]):
    """node ID -> its allocations (less those the plan stops), looked up only for the
    nodes the stack actually visits: a few per placement, not every node per eval.
    ``usage(node_id)`` is what the live ones use, from the store's running total less
    what the plan stops there."""

    def __init__(self, state: State, node_ids: list[str], stopping: set[str]):
        self._state, self._ids, self.stopping = state, node_ids, stopping
        self._cache: dict[str, list[Allocation]] = {}
        self._freed: dict[str, Usage] = {}
        for alloc_id in sorted(stopping):
            a = state.get(t.ALLOCS, alloc_id)
            if a is not None and not a.terminal():
                self._freed[a.NodeID] = self._freed.get(a.NodeID, Usage()) + alloc_usage(a)

    def __getitem__(self, node_id: str) -> list[Allocation]:
        rows = self._cache.get(node_id)
        if rows is None:
            rows = node_allocs(self._state, node_id)   # shared: never changed here
            if self.stopping and any(a.ID in self.stopping for a in rows):
                rows = [a for a in rows if a.ID not in self.stopping]
            self._cache[node_id] = rows
        return rows

    def __iter__(self) -> Iterator[str]:
        return iter(self._ids)

    def __len__(self) -> int:
        return len(self._ids)

    def usage(self, node_id: str) -> Usage:
        used = node_usage(self._state, node_id)
        freed = self._freed.get(node_id)
        return used if freed is None else used - freed


def _derived_id(eval_id: str, salt: str) -> str:
    """A new eval's id derived from its parent's, so a replayed plan derives the same."""
    return uuid4_from(random.Random(f"{eval_id}/{salt}"))


def latest_deployment(state: State, job_id: str) -> Deployment | None:
    """The job's newest deployment (Nomad's ``LatestDeploymentByJobID``)."""
    return max(state.by_index(t.DEPLOYMENTS, t.BY_JOB, job_id),
               key=lambda d: (d.CreateIndex, d.ID), default=None)


def _tainted_nodes(state: State, allocs: list[Allocation]) -> dict[str, Node | None]:
    tainted = {}
    for node_id in {a.NodeID for a in allocs if a.NodeID}:
        node = state.get(t.NODES, node_id)
        if node is None or node.Status == "down" or node.DrainStrategy is not None:
            tainted[node_id] = node
    return tainted
