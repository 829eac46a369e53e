"""Wakes parked blocking queries when an applied entry touches their tables.

The FSM calls ``notify_threadsafe`` from the raft thread after each entry; waiters are
futures on the event loop, resolved there. A waiter registers before it yields, so a
write applied between a query and its wait still wakes it.
"""
from __future__ import annotations

import asyncio


class Notifier:
    def __init__(self, loop: asyncio.AbstractEventLoop):
        self._loop = loop
        self._waiters: dict[str, set[asyncio.Future]] = {}

    def notify_threadsafe(self, tables: frozenset[str], index: int) -> None:
        # Always schedule: checking for waiters from this thread could miss one that
        # registers right after reading the previous state.
        if tables:
            self._loop.call_soon_threadsafe(self._wake, tables)

    def _wake(self, tables: frozenset[str]) -> None:
        for table in tables:
            for fut in self._waiters.pop(table, ()):
                if not fut.done():
                    fut.set_result(None)

    async def wait(self, tables: tuple[str, ...], timeout: float) -> None:
        fut = self._loop.create_future()
        for table in tables:
            self._waiters.setdefault(table, set()).add(fut)
        try:
            await asyncio.wait_for(fut, timeout)
        except (asyncio.TimeoutError, TimeoutError):
            pass
        finally:
            for table in tables:
                waiters = self._waiters.get(table)
                if waiters is not None:
                    waiters.discard(fut)
                    if not waiters:
                        del self._waiters[table]
