"""A scheduling worker: dequeue an eval, plan against a snapshot, submit, ack.

Planning is a pure function of (state snapshot, eval, random source, time); the
worker only moves its results around. When the applier rejects part of a plan the
worker plans again against a fresh snapshot, up to ``max_attempts`` times, then
marks the eval failed.
"""
from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable

from msgspec.structs import replace

from caravan.fsm import entries as e
from caravan.fsm.structs import Evaluation
from caravan.fsm.submit import EntryRejected, Submit
from caravan.scheduler.broker import EvalBroker
from caravan.scheduler.plan import Plan
from caravan.scheduler.plan_apply import PlanApplier
from caravan.scheduler.state import SchedulerState as State

log = logging.getLogger("caravan.worker")

Schedule = Callable[[State, Evaluation, random.Random, int], Plan]
PAUSED_POLL = 0.05   # seconds between looks of a paused worker (see ``may_take``)


def eval_rng(ev: Evaluation, state: State) -> random.Random:
    """The random source of one run of ``ev``: seeded from the eval and the index of
    the state it first plans against, so the same eval over the same state places the
    same way (replayable scheduling), while a later run of the same eval (a blocked
    eval re-run, a redelivery after a partial commit) draws fresh allocation ids
    instead of the ids its earlier run already committed (the deterministic simulation
    caught a re-run "placing" an existing id, which moved that allocation to another
    node under its client)."""
    return random.Random(f"{ev.ID}/{state.last_index}")


class Worker:
    def __init__(self, name: str, broker: EvalBroker, applier: PlanApplier,
                 state: Callable[[], State], schedule: Schedule,
                 submit: Submit,
                 now_ns: Callable[[], int], max_attempts: int = 5,
                 may_take: Callable[[], bool] | None = None):
        self.name = name
        self._broker = broker
        self._applier = applier
        self._state = state
        self._schedule = schedule
        self._submit = submit
        self._now_ns = now_ns
        self.max_attempts = max_attempts
        # when given, a new eval is taken only while it answers True (the leader pauses
        # some of its workers while clients are writing: server.leader.ClientWrites)
        self._may_take = may_take
        self.processed = 0

    async def run(self) -> None:
        while True:
            if self._may_take is not None and not self._may_take():
                await asyncio.sleep(PAUSED_POLL)
                continue
            got = await self._broker.dequeue(timeout=1.0)
            if got is None:
                continue
            ev, token = got
            try:
                await self.process(ev)
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("worker %s: eval %s failed; it will be delivered again",
                              self.name, ev.ID)
                self._broker.nack(ev.ID, token)
                await asyncio.sleep(0.05)
                continue
            self._broker.ack(ev.ID, token)
            self.processed += 1

    async def _caught_up(self, index: int, timeout: float = 5.0) -> None:
        """Plan only against a state that holds the eval itself: the local FSM must
        have applied its index (on a fresh leader it may briefly lag)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._state().last_index < index:
            if loop.time() >= deadline:
                raise TimeoutError(f"state did not reach index {index} in {timeout}s")
            await asyncio.sleep(0.005)

    async def process(self, ev: Evaluation) -> None:
        await self._caught_up(max(ev.ModifyIndex, self._broker.min_index(ev.ID)))
        rng = eval_rng(ev, self._state())
        for _attempt in range(self.max_attempts):
            state = self._state()
            plan = self._schedule(state, ev, rng, self._now_ns())
            if plan.is_noop():
                return
            result = await self._applier.apply(plan)
            if result.fully_applied:
                return
            # plan the rest against a state that holds what was just committed (on a
            # follower, the local state may not have applied it yet)
            await self._caught_up(result.index)
        failed = replace(ev, Status="failed", ModifyTime=self._now_ns(),
                         StatusDescription=f"maximum attempts reached ({self.max_attempts})")
        try:
            await self._submit(e.EvalUpdate(Evals=[failed]))
        except EntryRejected as rej:
            log.warning("marking eval %s failed was refused: %s", ev.ID, rej.message)
