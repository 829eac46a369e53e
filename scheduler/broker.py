"""The eval broker: pending evaluations waiting for a worker, on the leader only.

Evals are served by priority, then age (their CreateIndex); at most one eval per job
is out at a time (the others wait behind it, so two workers never plan the same job
at once). A dequeued eval must be acked or nacked within the visibility timeout;
an unanswered or nacked eval is delivered again, up to ``delivery_limit`` times,
after which it is handed to ``on_failed`` (the leader marks it failed and schedules
a follow-up). The broker holds no state of its own that the log lacks: a new leader
rebuilds it from the pending evals in the state.

An eval with a ``WaitUntil`` in the future (a follow-up eval for a failed allocation
to reschedule later) is held until then (Nomad's delay heap), then served like any
other; the wall clock that time is compared with is ``now_ns`` (injected, as the
leader's), and the wait runs on the event loop's timers. Apart from that its only
clock is the running event loop's (``loop.time``/``call_later``) and it draws no
random numbers, so the simulation's virtual-time loop (``tests/sim``) drives it
deterministically.
"""
from __future__ import annotations

import asyncio
import collections
import heapq
import itertools
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from caravan.fsm.structs import Evaluation
from caravan.fsm.times import parse_rfc3339


@dataclass(order=True)
class _Ready:
    sort_key: tuple[int, int, str]   # (-priority, create index, ID)
    eval: Evaluation = field(compare=False)


@dataclass
class _Unacked:
    eval: Evaluation
    token: str
    deliveries: int
    timer: asyncio.TimerHandle | None


class EvalBroker:
    def __init__(self, *, visibility_timeout: float = 60.0, delivery_limit: int = 3,
                 on_failed: Callable[[Evaluation], None] | None = None,
                 token_prefix: str = "t", now_ns: Callable[[], int] = time.time_ns):
        self.visibility_timeout = visibility_timeout
        # tokens travel to other servers' workers: a prefix per leadership (its epoch)
        # keeps one leader's tokens from ever matching another's
        self.token_prefix = token_prefix
        self.delivery_limit = delivery_limit
        self.on_failed = on_failed
        self._ready: list[_Ready] = []
        self._by_job_waiting: dict[str, list[Evaluation]] = {}
        self._job_busy: set[str] = set()
        self._unacked: dict[str, _Unacked] = {}
        self._deliveries: dict[str, int] = {}
        self._known: set[str] = set()
        self._tokens = itertools.count(1)
        # idle workers, each waiting on a future of its own; an eval made ready wakes
        # one of them, not all (with 16 workers every eval woke 16 to find one taker)
        self._waiters: collections.deque[asyncio.Future[None]] = collections.deque()
        self._enabled = True
        self._now_ns = now_ns
        # evals held until their WaitUntil: eval ID -> the timer that releases it
        self._delayed: dict[str, asyncio.TimerHandle] = {}

    # --- feeding ------------------------------------------------------------------------

    def enqueue(self, ev: Evaluation) -> bool:
        """Add a pending eval; returns False if the broker already holds it."""
        if not self._enabled or ev.ID in self._known:
            return False
        self._known.add(ev.ID)
        if not self._hold(ev):
            self._ready_or_wait(ev)
        return True

    def _hold(self, ev: Evaluation) -> bool:
        """Hold ``ev`` until its WaitUntil, by the wall clock; False if it is due."""
        wait_ns = parse_rfc3339(ev.WaitUntil) - self._now_ns()
        if wait_ns <= 0:
            return False
        self._delayed[ev.ID] = asyncio.get_running_loop().call_later(
            wait_ns / 1e9, self._due, ev)
        return True

    def _due(self, ev: Evaluation) -> None:
        """A held eval's WaitUntil has come (the loop's timers may fire a little early
        by the wall clock: then it waits the rest)."""
        if self._delayed.pop(ev.ID, None) is not None and self._enabled and \
                not self._hold(ev):
            self._ready_or_wait(ev)

    def _ready_or_wait(self, ev: Evaluation) -> None:
        if ev.JobID in self._job_busy:
            self._by_job_waiting.setdefault(ev.JobID, []).append(ev)
        else:
            self._push(ev)

    def _push(self, ev: Evaluation) -> None:
        self._job_busy.add(ev.JobID)
        heapq.heappush(self._ready, _Ready((-ev.Priority, ev.CreateIndex, ev.ID), ev))
        self._wake(1)

    def _wake(self, n: int | None) -> None:
        """Wake ``n`` idle workers (every one when None)."""
        while self._waiters and (n is None or n > 0):
            fut = self._waiters.popleft()
            if not fut.done():      # a waiter that timed out is skipped
                fut.set_result(None)
                if n is not None:
                    n -= 1

    # --- workers ---------------------------------------------------------------------------

    async def dequeue(self, timeout: float) -> tuple[Evaluation, str] | None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while not self._ready:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return None
            if not self._enabled:
                # leadership lost: nothing will come. Waiting out the timeout keeps a
                # worker's loop from spinning on None until it is cancelled
                await asyncio.sleep(remaining)
                return None
            fut = loop.create_future()
            self._waiters.append(fut)
            try:
                await asyncio.wait_for(fut, remaining)
            except TimeoutError:
                # woken and timed out at once: an eval may be ready; take it rather
                # than leave it to a worker that is not waiting
                if not self._ready:
                    return None
            finally:
                if not fut.done() or fut.cancelled():
                    try:      # not woken: leave no stale waiter behind (idle workers
                        self._waiters.remove(fut)   # time out every second)
                    except ValueError:
                        pass
        item = heapq.heappop(self._ready)
        ev = item.eval
        token = f"{self.token_prefix}{next(self._tokens)}"
        deliveries = self._deliveries.get(ev.ID, 0) + 1
        self._deliveries[ev.ID] = deliveries
        self._unacked[ev.ID] = _Unacked(ev, token, deliveries, self._timer(ev.ID, token))
        return ev, token

    def _timer(self, eval_id: str, token: str) -> asyncio.TimerHandle:
        """The delivery's visibility timeout: unanswered by then, it is delivered again."""
        return asyncio.get_running_loop().call_later(self.visibility_timeout, self._expire,
                                                     eval_id, token)

    def ack(self, eval_id: str, token: str) -> bool:
        entry = self._take(eval_id, token)
        if entry is None:
            return False
        self._deliveries.pop(eval_id, None)
        self._known.discard(eval_id)
        self._release_job(entry.eval.JobID)
        return True

    def nack(self, eval_id: str, token: str) -> bool:
        entry = self._take(eval_id, token)
        if entry is None:
            return False
        self._redeliver(entry)
        return True

    def min_index(self, eval_id: str) -> int:
        """The index a worker's state must reach before planning ``eval_id``, beyond
        the eval's own: none here, where the workers read the leader's own state (a
        follower's broker proxy answers the leader's index at delivery)."""
        return 0

    def outstanding(self, eval_id: str, token: str) -> bool:
        """Whether ``eval_id`` is out with ``token`` (a worker may act on it)."""
        entry = self._unacked.get(eval_id)
        return entry is not None and entry.token == token

    def touch(self, eval_id: str, token: str) -> bool:
        """Restart the eval's visibility timeout (Nomad's ``OutstandingReset``): its
        worker is still at it, e.g. its plan waits for the applier."""
        entry = self._unacked.get(eval_id)
        if entry is None or entry.token != token:
            return False
        if entry.timer is not None:
            entry.timer.cancel()
        entry.timer = self._timer(eval_id, token)
        return True

    def _expire(self, eval_id: str, token: str) -> None:
        entry = self._take(eval_id, token)
        if entry is not None:
            self._redeliver(entry)

    def _take(self, eval_id: str, token: str) -> _Unacked | None:
        entry = self._unacked.get(eval_id)
        if entry is None or entry.token != token:
            return None
        del self._unacked[eval_id]
        if entry.timer is not None:
            entry.timer.cancel()
        return entry

    def _redeliver(self, entry: _Unacked) -> None:
        ev = entry.eval
        if entry.deliveries >= self.delivery_limit:
            self._deliveries.pop(ev.ID, None)
            self._known.discard(ev.ID)
            self._release_job(ev.JobID)
            if self.on_failed is not None:
                self.on_failed(ev)
            return
        self._job_busy.discard(ev.JobID)
        self._push(ev)

    def _release_job(self, job_id: str) -> None:
        self._job_busy.discard(job_id)
        waiting = self._by_job_waiting.get(job_id)
        if waiting:
            # the highest priority, then oldest, waiting eval of the job goes next
            waiting.sort(key=lambda e: (-e.Priority, e.CreateIndex, e.ID))
            nxt = waiting.pop(0)
            if not waiting:
                del self._by_job_waiting[job_id]
            self._push(nxt)

    # --- lifecycle and introspection ---------------------------------------------------------

    def disable(self) -> None:
        """Leadership lost: drop everything (the next leader rebuilds from state)."""
        self._enabled = False
        for entry in self._unacked.values():
            if entry.timer is not None:
                entry.timer.cancel()
        for timer in self._delayed.values():
            timer.cancel()
        self._delayed.clear()
        self._ready.clear()
        self._by_job_waiting.clear()
        self._job_busy.clear()
        self._unacked.clear()
        self._deliveries.clear()
        self._known.clear()
        self._wake(None)

    def stats(self) -> dict[str, int]:
        return {"ready": len(self._ready), "unacked": len(self._unacked),
                "waiting": sum(len(v) for v in self._by_job_waiting.values()),
                "delayed": len(self._delayed)}
