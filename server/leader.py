"""Services that run only on the leader: eval broker, workers, plan applier, the
feed of pending evals and the release of blocked ones (``scheduler/eval_feed.py``),
and the services added to them (heartbeats, deployment watcher, drainer, ...).

They hold no state the log lacks: each is rebuilt from the state when this server
becomes leader and dropped when it stops being leader.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from caravan.fsm import entries as e
from caravan.fsm.submit import EntryRejected, Submit
from caravan.scheduler.broker import EvalBroker
from caravan.scheduler.eval_feed import delivery_failed, feed_pending, release_blocked
from caravan.scheduler.plan_apply import PlanApplier
from caravan.scheduler.worker import Worker
from caravan.server import ids
from caravan.server.context import ServiceContext

log = logging.getLogger("caravan.leader")

WORKERS_UNDER_WRITES = 4  # workers that keep taking evals while clients are writing
WRITES_QUIET = 0.05       # seconds without a client write before the others take evals


class ClientWrites:
    """Client writes (HTTP) under way on this server, and when the last one ended.

    While clients are writing, the leader's scheduling workers beyond
    ``WORKERS_UNDER_WRITES`` take no new eval: a write is what a client is waiting for,
    an eval is processed asynchronously, and both run on this process's one core. The
    others resume once no write has been under way for ``WRITES_QUIET``. (Nomad's
    leader likewise pauses most of its own workers to keep its CPU for raft and the
    plan applier.) Many workers pay off when plans are large: each waits ~100-200 ms
    for its raft round, and plans that wait together share one."""

    def __init__(self, clock: Callable[[], float] = time.monotonic):
        self.in_flight = 0
        self.last_end = float("-inf")
        self._clock = clock

    @contextlib.contextmanager
    def writing(self):
        self.in_flight += 1
        try:
            yield
        finally:
            self.in_flight -= 1
            self.last_end = self._clock()

    def quiet(self) -> bool:
        return self.in_flight == 0 and self._clock() - self.last_end >= WRITES_QUIET


class LeaderServices:
    """``now_ns`` is the wall clock stamped on evals (injected by the simulation; the
    timers themselves run on the event loop's clock)."""

    def __init__(self, agent: ServiceContext, workers: int = 2, *,
                 now_ns: Callable[[], int] = time.time_ns,
                 client_writes: ClientWrites | None = None):
        self.agent = agent
        self.n_workers = workers
        self.client_writes = client_writes
        self.now_ns = now_ns
        self.broker: EvalBroker | None = None
        self.applier: PlanApplier | None = None
        self.workers: list[Worker] = []
        self._tasks: list[asyncio.Task] = []
        self._extra = []   # other leader-only services with async start()/stop()

    def add(self, service) -> None:
        self._extra.append(service)

    @property
    def running(self) -> bool:
        return bool(self._tasks)

    async def start(self, epoch: int = 0) -> None:
        """Start the services; ``epoch`` is the index of this leadership's LEADER_EPOCH
        entry, which fences its plans against a later leader's."""
        if self._tasks:
            return
        from caravan.scheduler.generic import compute_plan  # the scheduler proper
        ag = self.agent
        self.broker = EvalBroker(on_failed=self._eval_failed, token_prefix=f"e{epoch}-",
                                 now_ns=self.now_ns)
        self.applier = PlanApplier(lambda: ag.fsm.state, ag.submit, epoch=epoch)
        quiet = self.client_writes.quiet if self.client_writes is not None else None
        self.workers = [Worker(f"w{i}", self.broker, self.applier, lambda: ag.fsm.state,
                               compute_plan, ag.submit, self.now_ns,
                               may_take=quiet if i >= WORKERS_UNDER_WRITES else None)
                        for i in range(self.n_workers)]
        state, notifier = (lambda: ag.fsm.state), (lambda: ag.notifier)
        self._tasks = [asyncio.ensure_future(self.applier.run()),
                       asyncio.ensure_future(feed_pending(self.broker, state, notifier,
                                                          ag.fsm.write_listeners, self.now_ns)),
                       asyncio.ensure_future(release_blocked(self.broker, state, notifier))]
        self._tasks += [asyncio.ensure_future(w.run()) for w in self.workers]
        for service in self._extra:
            await service.start()
        log.info("leader services started (%d workers)", self.n_workers)

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        self._tasks = []
        if self.broker is not None:
            self.broker.disable()
        for service in self._extra:
            await service.stop()
        log.info("leader services stopped")

    def _eval_failed(self, ev) -> None:
        """Delivery limit reached: mark it failed and create a delayed follow-up."""
        body = delivery_failed(ev, self.now_ns(), self.agent.new_id, ids.request_id)
        # cancelled with the other services: a deposed leader's write must not be
        # resubmitted into the next leader's term, which is handling the eval itself
        self._tasks.append(asyncio.ensure_future(self._submit_quietly(body)))

    async def _submit_quietly(self, body: e.Request) -> None:
        try:
            await self.agent.submit(body)
        except EntryRejected as rej:
            log.warning("%s refused: %s", type(body).__name__, rej.message)


async def begin_leadership(raft, submit: Submit, services: LeaderServices) -> bool:
    """What a server does on becoming leader: commit its first entry, LEADER_EPOCH (a
    barrier: everything committed before its term is then applied here, and its index
    fences the plans of earlier leaders), then start the leader-only services with that
    epoch. False when the entry could not be committed or leadership was lost meanwhile
    (the services are not started)."""
    try:
        result = await submit(e.LeaderEpochStart())
    except Exception as exc:
        log.warning("became leader but could not commit its first entry (%s); not starting "
                    "leader services", type(exc).__name__)
        return False
    if not raft.is_leader or "Epoch" not in result:
        return False
    await services.start(epoch=result["Epoch"])
    return True
