"""The node drainer: moves allocations off draining nodes (Nomad's ``nomad/drainer``).

Pure decisions first (``decide``), then the leader-only service that submits them.
From the state alone, for every node with a ``DrainStrategy``:

- past its ``ForceDeadline`` (or with a negative ``Deadline``): every allocation left
  on it is marked for migration at once (system ones too, unless
  ``IgnoreSystemJobs``), and the drain is complete (event detail
  ``deadline_reached``);
- otherwise, per service group with allocations on draining nodes, at most
  ``Migrate.MaxParallel`` (default 1) of the group may be on their way at a time: as
  many are marked as the group's healthy allocations exceed ``Count - MaxParallel``.
  A replacement counts once its client reports its health (the ``Migrate`` block's
  ``HealthCheck``, ``MinHealthyTime``, ``HealthyDeadline`` when it is in no
  deployment), so the next batch follows the healthy replacements. Batch allocations
  are never marked before the deadline: they are left to finish;
- once nothing but system allocations is left running on the node, those are marked
  (unless ``IgnoreSystemJobs``) and the drain is complete. The node stays ineligible.

Marking is one ``AllocDesiredTransition`` entry (``DesiredTransition.Migrate``) with
one ``node-drain`` eval per job; the scheduler stops the marked allocations and
places their replacements elsewhere. The service keeps nothing the state lacks, so a
new leader carries on where the last one stopped.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field

from caravan.fsm import entries as e
from caravan.fsm import node_events
from caravan.fsm import schema as t
from caravan.fsm.structs import Allocation, DesiredTransition, Evaluation, Job, Node, TaskGroup
from caravan.fsm.submit import EntryRejected, Submit
from caravan.fsm.times import parse_rfc3339
from caravan.scheduler.background import AnyCommits, LeaderLoop, run_passes
from caravan.scheduler.state import SchedulerState as State

log = logging.getLogger("caravan.drainer")

TRIGGER = "node-drain"
DEFAULT_MIGRATE_MAX_PARALLEL = 1     # Nomad's DefaultMigrateStrategy
MIN_PASS_INTERVAL = 0.05             # seconds: coalesce bursts of changes into one pass
MAX_PASS_INTERVAL = 1.0              # look again at least this often (deadlines)


@dataclass
class DrainPlan:
    migrate: list[Allocation] = field(default_factory=list)
    complete: list[tuple[Node, bool]] = field(default_factory=list)   # (node, deadline hit)

    def __bool__(self) -> bool:
        return bool(self.migrate or self.complete)


# --- decisions (pure) ------------------------------------------------------------------------


def migrate_max_parallel(tg: TaskGroup) -> int:
    m = tg.Migrate
    value = m.get("MaxParallel") if isinstance(m, dict) else getattr(m, "MaxParallel", None)
    if isinstance(value, int) and not isinstance(value, bool) and value >= 0:
        return value
    return DEFAULT_MIGRATE_MAX_PARALLEL


def deadline_reached(node: Node, now_ns: int) -> bool:
    s = node.DrainStrategy
    if s is None:
        return False
    if s.Deadline < 0:
        return True
    force = parse_rfc3339(s.ForceDeadline)
    return force > 0 and now_ns >= force


def _job_type(state: State, alloc: Allocation) -> str:
    job = state.get(t.JOBS, alloc.JobID) or alloc.Job
    return (job.Type if job is not None else None) or "service"


def _has_health(alloc: Allocation) -> bool:
    return alloc.DeploymentStatus is not None and alloc.DeploymentStatus.Healthy is not None


def _group_drain(allocs: list[Allocation], tg: TaskGroup, draining: set[str]) -> list[Allocation]:
    """Nomad's ``handleTaskGroup`` for a service group: which allocations to mark now.
    Healthy: live, with health reported, and not already on its way out (Nomad counts
    marked ones too, and so could mark a second batch before the first was stopped)."""
    healthy = sum(1 for a in allocs if not a.terminal() and _has_health(a)
                  and not a.should_migrate())
    drainable = sorted((a for a in allocs if a.NodeID in draining and not a.client_terminal()
                        and not a.terminal() and not a.should_migrate()),
                       key=lambda a: (a.Name, a.ID))
    n = min(len(drainable), healthy - ((tg.Count or 0) - migrate_max_parallel(tg)))
    return drainable[:n] if n > 0 else []


def decide(state: State, now_ns: int) -> DrainPlan:
    plan = DrainPlan()
    draining = sorted(state.by_index(t.NODES, t.DRAINING, True), key=lambda n: n.ID)
    if not draining:
        return plan
    marked: set[str] = set()

    def mark(alloc: Allocation) -> None:
        if alloc.ID not in marked and not alloc.should_migrate():
            marked.add(alloc.ID)
            plan.migrate.append(alloc)

    active: list[Node] = []
    for node in draining:
        if deadline_reached(node, now_ns):
            skip_system = node.DrainStrategy.IgnoreSystemJobs
            for a in state.by_index(t.ALLOCS, t.BY_NODE, node.ID):
                if not a.terminal() and not (skip_system and _job_type(state, a) == "system"):
                    mark(a)
            plan.complete.append((node, True))
        else:
            active.append(node)
    active_ids = {n.ID for n in active}

    job_ids = sorted({a.JobID for n in active for a in state.by_index(t.ALLOCS, t.BY_NODE, n.ID)
                      if not a.client_terminal() and not a.terminal()})
    for job_id in job_ids:
        job: Job | None = state.get(t.JOBS, job_id)
        if job is None or job.Stop or job.Type != "service":
            continue   # batch waits for the deadline; system goes last; stopped ones stop
        allocs = [a for a in state.by_index(t.ALLOCS, t.BY_JOB, job_id)
                  if a.Job is None or a.Job.CreateIndex == job.CreateIndex]
        for tg in job.TaskGroups or ():
            for a in _group_drain([a for a in allocs if a.TaskGroup == tg.Name], tg, active_ids):
                mark(a)

    for node in active:
        allocs = state.by_index(t.ALLOCS, t.BY_NODE, node.ID)
        if any(not a.client_terminal() and _job_type(state, a) != "system" for a in allocs):
            continue
        assert node.DrainStrategy is not None   # active nodes are draining ones
        if not node.DrainStrategy.IgnoreSystemJobs:
            for a in sorted(allocs, key=lambda a: a.ID):
                if not a.terminal():
                    mark(a)
        plan.complete.append((node, False))
    return plan


def migrate_entry(state: State, allocs: list[Allocation], new_id: Callable[[], str],
                  now_ns: int) -> e.AllocDesiredTransition:
    """Mark ``allocs`` and ask for one eval per job (Nomad's ``drainAllocs``)."""
    jobs: dict[str, Allocation] = {}
    for a in allocs:
        jobs.setdefault(a.JobID, a)
    evals = []
    for job_id in sorted(jobs):
        a = jobs[job_id]
        job = state.get(t.JOBS, job_id) or a.Job
        evals.append(Evaluation(
            ID=new_id(), Namespace=a.Namespace, Priority=(job.Priority if job else 0) or 50,
            Type=(job.Type if job else "") or "service", TriggeredBy=TRIGGER, JobID=job_id,
            Status="pending", CreateTime=now_ns, ModifyTime=now_ns))
    return e.AllocDesiredTransition(
        Allocs={a.ID: DesiredTransition(Migrate=True) for a in allocs},
        Evals=evals)


def complete_entry(node: Node, deadlined: bool, now_ns: int) -> e.NodeDrain:
    details = {node_events.DRAIN_DEADLINED: "true"} if deadlined else None
    assert node.DrainStrategy is not None, "only a draining node completes its drain"
    return e.NodeDrain(NodeID=node.ID, Completed=True,
                       StartedAt=node.DrainStrategy.StartedAt, EventDetails=details, Now=now_ns)


# --- the leader-only service -----------------------------------------------------------------


class NodeDrainer(LeaderLoop):
    """Started and stopped with leadership (``LeaderServices.add``)."""

    def __init__(self, state: Callable[[], State], submit: Submit,
                 notifier: Callable[[], AnyCommits], now_ns: Callable[[], int],
                 new_id: Callable[[], str]):
        self._state = state
        self._submit = submit
        self._notifier = notifier
        self._now_ns = now_ns
        self._new_id = new_id
        self.marked = 0
        self.completed = 0

    async def _run(self) -> None:
        await run_passes(self._notifier, (t.NODES, t.ALLOCS), self.run_once, log=log,
                         what="node drainer", max_interval=MAX_PASS_INTERVAL,
                         pause=lambda: MIN_PASS_INTERVAL)

    async def run_once(self) -> None:
        state = self._state()
        now = self._now_ns()
        plan = decide(state, now)
        if plan.migrate:
            try:
                await self._submit(migrate_entry(state, plan.migrate, self._new_id, now))
            except EntryRejected as rej:
                log.warning("marking %d allocations for migration refused: %s",
                            len(plan.migrate), rej.message)
                return
            self.marked += len(plan.migrate)
            log.info("drain: %d allocations marked for migration", len(plan.migrate))
        for node, deadlined in plan.complete:
            try:
                await self._submit(complete_entry(node, deadlined, now))
            except EntryRejected as rej:
                log.info("drain of node %s not completed: %s", node.ID, rej.message)
                continue
            self.completed += 1
            log.info("node %s drain complete%s", node.ID, " (deadline)" if deadlined else "")
