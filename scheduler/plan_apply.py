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
from typing import Awaitable, Callable

from fsm import entries as e
from fsm import schema as t
from fsm.store import State
from scheduler.plan import Plan, PlanResult

log = logging.getLogger("caravan.plan")

FitCheck = Callable[[object, list], "tuple[bool, str]"]


class PlanApplier:
    def __init__(self, state: Callable[[], State], submit: Callable[[bytes], Awaitable[dict]],
                 fits: FitCheck, request_id: Callable[[], str]):
        self._state = state
        self._submit = submit
        self._fits = fits
        self._request_id = request_id
        self._queue: asyncio.Queue = asyncio.Queue()
        self.latencies: list[float] = []   # seconds from enqueue to commit, for benchmarks

    async def apply(self, plan: Plan) -> PlanResult:
        fut = asyncio.get_running_loop().create_future()
        await self._queue.put((plan, fut, asyncio.get_running_loop().time()))
        return await fut

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        while True:
            plan, fut, queued_at = await self._queue.get()
            try:
                result = await self._apply(plan)
            except Exception as exc:  # the worker nacks its eval and tries again later
                if not fut.done():
                    fut.set_exception(exc)
                continue
            self.latencies.append(loop.time() - queued_at)
            if len(self.latencies) > 100_000:
                del self.latencies[:50_000]
            if not fut.done():
                fut.set_result(result)

    def check(self, plan: Plan, state: State) -> tuple[dict[str, list], list[str]]:
        """Split the plan's nodes into those that still fit and those that do not."""
        stopping = {s.AllocID for s in plan.stops}
        accepted, rejected = {}, []
        for node_id in sorted(plan.node_allocs):
            allocs = plan.node_allocs[node_id]
            node = state.get(t.NODES, node_id)
            placing_new = any(state.get(t.ALLOCS, a.ID) is None for a in allocs)
            if node is None or (placing_new and not node.ready()):
                rejected.append(node_id)
                continue
            updating = {a.ID for a in allocs}
            others = [a for a in state.by_index(t.ALLOCS, "node", node_id)
                      if not a.terminal() and a.ID not in stopping and a.ID not in updating]
            ok, why = self._fits(node, others + allocs)
            if ok:
                accepted[node_id] = allocs
            else:
                log.debug("plan for eval %s rejected on node %s: %s", plan.eval_id, node_id, why)
                rejected.append(node_id)
        if plan.all_at_once and rejected:
            accepted = {}
            rejected = sorted(plan.node_allocs)
        return accepted, rejected

    async def _apply(self, plan: Plan) -> PlanResult:
        accepted, rejected = self.check(plan, self._state())
        allocs = [a for node_id in sorted(accepted) for a in accepted[node_id]]
        evals = plan.evals if not rejected else []
        if not allocs and not plan.stops and not evals:
            return PlanResult(0, rejected)
        body = e.PlanResults(RequestID=self._request_id(), JobID=plan.job_id,
                             JobVersion=plan.job_version, Allocs=allocs or None,
                             Stops=plan.stops or None, Evals=evals or None)
        result = await self._submit(e.encode(body))
        if "Error" in result:
            raise RuntimeError(f"plan for eval {plan.eval_id} was refused: {result['Error']}")
        return PlanResult(result["Index"], rejected, len(allocs))
