"""Group commit: writes that reach the leader while earlier ones are still being
replicated travel together, as one ``Batch`` log entry.

A write that arrives when fewer than ``max_inflight`` rounds are under way (default one:
measured at 64 writers, one round in flight while the next gathers beat two by about
10%) is sent at once, alone, so a lone client pays no extra latency. Under load, what queues up while
rounds are in flight leaves in the next round, up to ``max_entries`` entries or
``max_bytes``; pysyncobj then pickles, compresses, encrypts and sends one message per
follower for the whole group instead of one per write. The state machine applies a
batch's entries one after the other at its raft index and answers each as if it were
alone (``fsm.apply.FSM._apply_batch``); a failure of the round (no leader, unknown
outcome) is every member's failure, and a member's retry is deduplicated by its own
request id as before.
"""
from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable

from caravan.fsm import entries as e


class GroupCommit:
    def __init__(self, submit_one: Callable[[bytes], Awaitable[dict]], *,
                 max_inflight: int = 1, max_entries: int = 256,
                 max_bytes: int = 2 * 1024 * 1024):
        self._submit_one = submit_one
        self.max_inflight = max_inflight
        self.max_entries = max_entries
        self.max_bytes = max_bytes
        self._queue: deque[tuple[bytes, asyncio.Future]] = deque()
        self._inflight = 0
        self.rounds = 0           # raft entries sent
        self.entries = 0          # writes they carried

    @property
    def waiting(self) -> int:
        """Writes queued for the next round (read from any thread)."""
        return len(self._queue)

    async def submit(self, blob: bytes) -> dict:
        fut = asyncio.get_running_loop().create_future()
        self._queue.append((blob, fut))
        self._kick()
        return await fut

    def _kick(self) -> None:
        while self._inflight < self.max_inflight and self._queue:
            group, size = [], 0
            while self._queue and len(group) < self.max_entries:
                blob = self._queue[0][0]
                if group and size + len(blob) > self.max_bytes:
                    break
                group.append(self._queue.popleft())
                size += len(blob)
            self._inflight += 1
            asyncio.ensure_future(self._send(group))

    async def _send(self, group: list[tuple[bytes, asyncio.Future]]) -> None:
        self.rounds += 1
        self.entries += len(group)
        try:
            if len(group) == 1:
                results = [await self._submit_one(group[0][0])]
            else:
                body = e.encode(e.Batch(Entries=[blob for blob, _ in group]))
                answer = await self._submit_one(body)
                results = answer.get("Results")
                if results is None or len(results) != len(group):
                    raise RuntimeError(f"batch answered {answer!r}")
        except BaseException as exc:
            for _, fut in group:
                if not fut.done():
                    fut.set_exception(exc)
                    fut.exception()   # retrieved here; each waiter re-raises it
            if isinstance(exc, asyncio.CancelledError):
                raise
        else:
            for (_, fut), result in zip(group, results):
                if not fut.done():
                    fut.set_result(result)
        finally:
            self._inflight -= 1
            self._kick()
