"""Services that run only on the leader: eval broker, workers, plan applier, the
feeder that hands pending evals to the broker, the unblocker of blocked evals, and
node heartbeats.

They hold no state the log lacks: each is rebuilt from the state when this server
becomes leader and dropped when it stops being leader.
"""
from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable

from msgspec.structs import replace

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.scheduler.background import WrittenKeys
from caravan.scheduler.broker import EvalBroker
from caravan.scheduler.plan_apply import PlanApplier
from caravan.scheduler.worker import Worker
from caravan.server import ids

log = logging.getLogger("caravan.leader")

FOLLOW_UP_WAIT_NS = 60 * 1_000_000_000
FEED_INTERVAL = 0.005     # seconds between scans of the pending evals, at least
FEED_RESCAN = 5.0         # seconds between full re-scans
FEED_BACKOFF = 20         # and wait at least this many times what the last scan took
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

    def __init__(self, agent, workers: int = 2, *,
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
        self.applier = PlanApplier(lambda: ag.fsm.state, ag.raft.submit, ids.request_id,
                                   epoch=epoch)
        quiet = self.client_writes.quiet if self.client_writes is not None else None
        self.workers = [Worker(f"w{i}", self.broker, self.applier, lambda: ag.fsm.state,
                               compute_plan, ag.raft.submit, ids.request_id, self.now_ns,
                               may_take=quiet if i >= WORKERS_UNDER_WRITES else None)
                        for i in range(self.n_workers)]
        self._tasks = [asyncio.ensure_future(self.applier.run()),
                       asyncio.ensure_future(self._feed()),
                       asyncio.ensure_future(self._unblock())]
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

    async def _feed(self) -> None:
        """Hand every pending eval in the state to the broker: after each change to the
        evals table, the evals the FSM reports written since the last pass
        (``FSM.write_listeners``) that are still pending; every FEED_RESCAN, and whenever the
        whole state was replaced, all of them (delayed follow-ups that came due, or
        anything the broker dropped). A pass runs at most every FEED_INTERVAL, so a
        burst of commits costs one pass, and a backlog of thousands of pending evals
        costs nothing until the next full scan."""
        ag = self.agent
        handed: set[str] = set()
        loop = asyncio.get_running_loop()
        rescan_at = 0.0
        scan_s = 0.0
        with WrittenKeys(ag.fsm.write_listeners, t.EVALS) as written:
            while True:
                watch = ag.notifier.watch((t.EVALS,))
                try:
                    started = loop.time()   # the simulation's virtual clock: no backoff there
                    changed = written.take()
                    state = ag.fsm.state
                    pending = state.tables[t.EVALS].indexes["status"].get("pending") or {}
                    if loop.time() >= rescan_at or None in changed:
                        handed.clear()
                        rescan_at = loop.time() + FEED_RESCAN
                        candidates = pending
                    else:
                        candidates = {pk: True for pk in changed if pk in pending}
                    fresh = [state.get(t.EVALS, pk) for pk in candidates if pk not in handed]
                    now = self.now_ns()
                    # a job's evals reach the broker in the order they were created
                    for ev in sorted(fresh, key=lambda x: (x.CreateIndex, x.ID)):
                        if ev.Wait and ev.CreateTime + ev.Wait > now:
                            continue
                        self.broker.enqueue(ev)
                        handed.add(ev.ID)
                    if len(handed) > 2 * len(pending) + 1024:   # forget the finished ones
                        handed.intersection_update(pending)
                    scan_s = loop.time() - started
                    await ag.notifier.wait(watch, 1.0)
                finally:
                    ag.notifier.unwatch(watch)
                # A full scan walks every pending eval: with thousands pending (a burst
                # of registrations the workers have not caught up with) passes are
                # rationed, as the deployment watcher's are, instead of taking a share
                # of the leader that grows with the backlog.
                await asyncio.sleep(max(FEED_INTERVAL, FEED_BACKOFF * scan_s))

    async def _unblock(self) -> None:
        """Blocked evals go back to the broker when capacity may have appeared: a node
        joined or changed, or allocations stopped or finished."""
        ag = self.agent
        seen = None
        while True:
            watch = ag.notifier.watch((t.NODES, t.ALLOCS))
            try:
                state = ag.fsm.state
                epoch = (state.tables[t.NODES].index, _terminal_count(state))
                if seen is not None and epoch != seen:
                    for ev in state.by_index(t.EVALS, "status", "blocked"):
                        self.broker.enqueue(ev)
                seen = epoch
                await ag.notifier.wait(watch, 5.0)
            finally:
                ag.notifier.unwatch(watch)

    def _eval_failed(self, ev) -> None:
        """Delivery limit reached: mark it failed and create a delayed follow-up."""
        now = self.now_ns()
        failed = replace(ev, Status="failed", ModifyTime=now,
                         StatusDescription="evaluation reached delivery limit (3)")
        follow = replace(ev, ID=ids.uuid4_str(), Status="pending", TriggeredBy="failed-follow-up",
                         PreviousEval=ev.ID, Wait=FOLLOW_UP_WAIT_NS, CreateTime=now,
                         ModifyTime=now, StatusDescription="", CreateIndex=0, ModifyIndex=0)
        body = e.EvalUpdate(RequestID=ids.request_id(), Evals=[failed, follow])
        # cancelled with the other services: a deposed leader's write must not be
        # resubmitted into the next leader's term, which is handling the eval itself
        self._tasks.append(asyncio.ensure_future(self.agent.raft.submit(e.encode(body))))


def _terminal_count(state) -> int:
    """How many allocations are terminal: grows when capacity frees up."""
    return len(state.tables[t.ALLOCS].indexes["terminal"].get(True, ()))


async def begin_leadership(raft, services: LeaderServices) -> bool:
    """What a server does on becoming leader: commit its first entry, LEADER_EPOCH (a
    barrier: everything committed before its term is then applied here, and its index
    fences the plans of earlier leaders), then start the leader-only services with that
    epoch. False when the entry could not be committed or leadership was lost meanwhile
    (the services are not started)."""
    try:
        result = await raft.submit(e.encode(e.LeaderEpochStart(RequestID=ids.request_id())))
    except Exception as exc:
        log.warning("became leader but could not commit its first entry (%s); not starting "
                    "leader services", type(exc).__name__)
        return False
    if not raft.is_leader or "Epoch" not in result:
        return False
    await services.start(epoch=result["Epoch"])
    return True
