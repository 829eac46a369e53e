"""Wakes parked blocking queries when an applied entry touches their tables.

The FSM calls ``notify_threadsafe`` from the raft thread after it published the new
state. A query registers its watch *before* it reads the state, so the raft thread
may skip the wake-up when nobody watches: a watch registered after that check reads
a state that already holds the write.

Waiters are woken in a fixed order (tables by name, then watches in the order they
were registered), so that a seeded simulation replays the same interleaving.
"""
from __future__ import annotations

import asyncio


class Watch:
    __slots__ = ("tables", "future")

    def __init__(self, tables: tuple[str, ...], future: asyncio.Future):
        self.tables = tables
        self.future = future


class Notifier:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._waiters: dict[str, dict[asyncio.Future, None]] = {}   # insertion-ordered sets

    def notify_threadsafe(self, tables: frozenset[str], index: int) -> None:
        if tables and self._waiters:
            self._loop.call_soon_threadsafe(self._wake, tables)

    def _wake(self, tables: frozenset[str]) -> None:
        for table in sorted(tables):
            for fut in self._waiters.pop(table, ()):
                if not fut.done():
                    fut.set_result(None)

    def watch(self, tables: tuple[str, ...]) -> Watch:
        """Register interest in ``tables``; call before reading the state."""
        fut = self._loop.create_future()
        for table in tables:
            self._waiters.setdefault(table, {})[fut] = None
        return Watch(tables, fut)

    async def wait(self, watch: Watch, timeout: float) -> None:
        """Wait until a write touches the watched tables or ``timeout`` passes."""
        try:
            await asyncio.wait_for(asyncio.shield(watch.future), timeout)
        except TimeoutError:
            pass

    def unwatch(self, watch: Watch) -> None:
        for table in watch.tables:
            waiters = self._waiters.get(table)
            if waiters is not None:
                waiters.pop(watch.future, None)
                if not waiters:
                    del self._waiters[table]
        if not watch.future.done():
            watch.future.cancel()
