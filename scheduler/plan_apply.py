"""The plan applier: one serialized loop on the leader.

Workers plan concurrently against snapshots; only here are plans checked against the
newest state, one at a time, so two workers racing for a node's last capacity can
never both get it. Each node of a plan is accepted whole or rejected whole; what is
accepted is committed as ONE log entry (allocations, stops and, when the whole plan
fit, the eval's new state). The worker refreshes and plans the rejected rest again.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Sequence

from msgspec.structs import replace

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.structs import Allocation
from caravan.fsm.submit import EntryRejected, Submit
from caravan.scheduler.fit import plan_fits
from caravan.scheduler.plan import Plan, PlanResult
from caravan.scheduler.preemption import preemptible
from caravan.scheduler.state import SchedulerState as State

log = logging.getLogger("caravan.plan")


class PlanApplier:
    def __init__(self, state: Callable[[], State], submit: Submit, epoch: int = 0):
        self._state = state
        self.epoch = epoch      # this leadership's LEADER_EPOCH index (fences its plans)
        self._submit = submit
        self._queue: asyncio.Queue[tuple[Plan, asyncio.Future[PlanResult], float]] = asyncio.Queue()
        self.latencies: list[float] = []   # seconds from enqueue to commit, for benchmarks

    async def apply(self, plan: Plan) -> PlanResult:
        fut: asyncio.Future[PlanResult] = asyncio.get_running_loop().create_future()
        await self._queue.put((plan, fut, asyncio.get_running_loop().time()))
        return await fut

    async def run(self) -> None:
        """Check plans one at a time, but commit them pipelined: plan N+1 is checked
        against the newest state plus the placements of plans still committing, so it
        need not wait for their commits (Nomad's applier does the same). In-flight
        placements count as taken; in-flight stops are not counted as freed, so a plan
        whose commit fails can only have made the next check stricter, never looser."""
        inflight: list[tuple[asyncio.Task[None], dict[str, list[Allocation]]]] = []
        try:
            while True:
                plan, fut, queued_at = await self._queue.get()
                inflight = [(task, placed) for task, placed in inflight if not task.done()]
                try:
                    accepted, rejected = self.check(plan, self._state(),
                                                    pending=[placed for _, placed in inflight])
                except Exception as exc:  # the worker nacks its eval and tries again later
                    if not fut.done():
                        fut.set_exception(exc)
                    continue
                earlier = [task for task, _ in inflight] if rejected else []
                task = asyncio.ensure_future(self._commit(plan, accepted, rejected, fut,
                                                          queued_at, earlier))
                inflight.append((task, accepted))
        finally:
            # Cancelled: leadership is lost. A commit still in flight must not be
            # resubmitted (the log's submit retries across leader changes) into the next
            # leader's term: that leader plans the same evals against its own state, and
            # both placements would be committed (the simulation in tests/sim overcommitted
            # nodes that way). What the old term already appended is applied before the
            # next leader's services start, so the next leader's plans see it.
            for task, _ in inflight:
                task.cancel()

    async def _commit(self, plan: Plan, accepted: dict[str, list[Allocation]], rejected: list[str],
                      fut: asyncio.Future[PlanResult], queued_at: float,
                      earlier: Sequence[asyncio.Task[None]] = ()) -> None:
        """Commit what was accepted and answer the worker. A plan with rejected nodes is
        answered only once the plans that were committing when it was checked are done
        (``earlier``), with an index that covers them (Nomad's RefreshIndex): their
        placements may be why it was rejected, and a worker that planned again on a
        state without them would pick the same nodes and be rejected again, up to its
        last attempt, while they were still committing."""
        loop = asyncio.get_running_loop()
        try:
            result = await self._submit_checked(plan, accepted, rejected)
            if earlier:
                await asyncio.wait(earlier)    # wait() never cancels them
                result = PlanResult(max(result.index, self._state().last_index),
                                    result.rejected_nodes, result.committed_allocs)
        except Exception as exc:
            if not fut.done():
                fut.set_exception(exc)
            return
        self.latencies.append(loop.time() - queued_at)
        if len(self.latencies) > 100_000:
            del self.latencies[:50_000]
        if not fut.done():
            fut.set_result(result)

    def check(self, plan: Plan, state: State,
              pending: Sequence[dict[str, list[Allocation]]] = (),
              ) -> tuple[dict[str, list[Allocation]], list[str]]:
        """Split the plan's nodes into those that still fit and those that do not.
        ``pending`` are the accepted placements of plans still committing, by node.
        A node's preemptions are checked again: each evicted allocation must still be
        on that node and of a job far enough below the plan's priority; those that
        have finished meanwhile free their resources anyway and are left out."""
        stopped = {s.AllocID for s in plan.stops}
        stopping_on: dict[str, list[str]] = {}
        for alloc_id in sorted(stopped):
            row = state.get(t.ALLOCS, alloc_id)
            if row is not None:
                stopping_on.setdefault(row.NodeID, []).append(alloc_id)
        accepted: dict[str, list[Allocation]] = {}
        rejected: list[str] = []
        for node_id in sorted(plan.node_allocs):
            allocs = plan.node_allocs[node_id]
            node = state.get(t.NODES, node_id)
            placing_new = any(state.get(t.ALLOCS, a.ID) is None for a in allocs)
            if node is None or (placing_new and not node.ready()):
                rejected.append(node_id)
                continue
            evicting = self._preemptions(plan, state, node_id)
            if evicting is None:
                log.debug("plan for eval %s rejected on node %s: a preemption no longer "
                          "holds", plan.eval_id, node_id)
                rejected.append(node_id)
                continue
            inflight = [a for placed in pending for a in placed.get(node_id, ())]
            ok, why = plan_fits(state, node, allocs, stopping_on.get(node_id, []) + evicting,
                                inflight, stopped | set(evicting))
            if ok:
                accepted[node_id] = allocs
            else:
                log.debug("plan for eval %s rejected on node %s: %s", plan.eval_id, node_id, why)
                rejected.append(node_id)
        if plan.all_at_once and rejected:
            accepted = {}
            rejected = sorted(plan.node_allocs)
        return accepted, rejected

    @staticmethod
    def _preemptions(plan: Plan, state: State, node_id: str) -> list[str] | None:
        """The IDs of the node's allocations the plan still evicts, or None when one
        of them may not be evicted (moved, or its job's priority raised)."""
        out: list[str] = []
        for p in plan.node_preemptions.get(node_id, ()):
            row = state.get(t.ALLOCS, p.AllocID)
            if row is None or row.terminal():
                continue
            if row.NodeID != node_id or \
                    not preemptible(plan.priority, _with_current_job(state, row)):
                return None
            out.append(p.AllocID)
        return out

    async def _submit_checked(self, plan: Plan, accepted: dict[str, list[Allocation]],
                              rejected: list[str]) -> PlanResult:
        body = results_entry(plan, accepted, rejected, epoch=self.epoch)
        if body is None:
            return PlanResult(0, rejected)
        try:
            result = await self._submit(body)
        except EntryRejected as rej:
            raise RuntimeError(f"plan for eval {plan.eval_id} was refused: {rej.message}") from None
        return PlanResult(result.index, rejected, len(body.Allocs or ()))


def results_entry(plan: Plan, accepted: dict[str, list[Allocation]], rejected: list[str],
                  epoch: int = 0) -> e.PlanResults | None:
    """The log entry committing what was accepted of a plan (None: nothing to commit).
    The eval's new state goes only with a plan accepted whole; evictions go with their
    node's placements, and the evals of the jobs they hit with them."""
    allocs = [a for node_id in sorted(accepted) for a in accepted[node_id]]
    evals = plan.evals if not rejected else []
    stops = plan.stops
    if rejected and plan.stop_with:
        # a failed alloc is stopped only with its replacement (else it stays failed
        # and reschedulable)
        placed = {a.ID for a in allocs}
        stops = [s for s in stops
                 if s.AllocID not in plan.stop_with or plan.stop_with[s.AllocID] in placed]
    # The deployment goes with whatever placements commit; a plan rejected whole
    # leaves it to the next attempt, which plans it again.
    deployment, updates = plan.deployment, plan.deployment_updates
    if rejected and not allocs:
        deployment, updates = None, []
    preemptions = [p for node_id in sorted(accepted)
                   for p in plan.node_preemptions.get(node_id, ())]
    if preemptions:
        job_of = {a.ID: a.JobID for a in plan.preempted_allocs}
        hit = sorted({job_of[p.AllocID] for p in preemptions if p.AllocID in job_of})
        evals = list(evals) + [plan.preemption_evals[j] for j in hit
                               if j in plan.preemption_evals]
    if not allocs and not stops and not evals and deployment is None and not updates \
            and not plan.followup_evals:
        return None
    # follow-up evals of failed allocs (and their FollowupEvalID) go whatever commits
    return e.PlanResults(JobID=plan.job_id,
                         JobVersion=plan.job_version, Allocs=allocs or None,
                         Stops=stops or None, Evals=evals or None,
                         Deployment=deployment, DeploymentUpdates=updates or None,
                         Preemptions=preemptions or None,
                         FollowupEvals=plan.followup_evals or None,
                         AllocFollowups=plan.alloc_followups or None, Epoch=epoch)


def _with_current_job(state: State, alloc: Allocation) -> Allocation:
    """The allocation with its job's current row (a priority may have changed)."""
    job = state.get(t.JOBS, alloc.JobID)
    return alloc if job is None else replace(alloc, Job=job)
