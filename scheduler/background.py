"""What the leader-only loops share: one background task, started with leadership and
cancelled (and awaited) when it is lost; and the keys each applied entry wrote."""
from __future__ import annotations

import abc
import asyncio
import logging
from collections import deque
from collections.abc import Callable, Hashable
from typing import Any, Generic, Protocol, TypeVar

# The primary keys each applied entry wrote, by table (``FSM.write_listeners``); a key's
# type is its table's (an ID, or a tuple of fields). None: the whole state was replaced.
Written = dict[str, list[Any]] | None
WriteListener = Callable[[Written], None]

_W = TypeVar("_W")
_K = TypeVar("_K", bound=Hashable)


class Commits(Protocol[_W]):
    """Wakes a leader loop when an applied entry touches the tables it watches
    (``server.notify.Notifier``): ``watch`` before reading the state, then ``wait``,
    then ``unwatch``."""

    def watch(self, tables: tuple[str, ...]) -> _W: ...

    async def wait(self, watch: _W, timeout: float) -> None: ...

    def unwatch(self, watch: _W) -> None: ...


# The watch handle is the notifier's own business.
AnyCommits = Commits[Any]


async def cancel_and_wait(task: asyncio.Task[Any] | None) -> None:
    """Cancel ``task`` and wait until it has ended, whatever it ended with."""
    if task is None:
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def run_passes(notifier: Callable[[], AnyCommits], tables: tuple[str, ...],
                     run_once: Callable[[], Any], *, log: logging.Logger, what: str,
                     max_interval: float, pause: Callable[[], float]) -> None:
    """A leader loop's body: ``run_once`` now, again after every applied entry that
    touches ``tables`` (and at least every ``max_interval`` seconds), with ``pause()``
    seconds of sleep after each pass so that a burst of entries is one pass. A pass
    that fails is logged as ``what`` and the loop goes on; cancelling ends it."""
    while True:
        commits = notifier()
        watch = commits.watch(tables)   # before the pass: no entry slips in between
        try:
            try:
                await run_once()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("%s pass failed", what)
            await commits.wait(watch, max_interval)
        finally:
            commits.unwatch(watch)
        await asyncio.sleep(pause())


class LeaderLoop(abc.ABC):
    """A leader-only service whose work is one background task, ``_run``: ``start()``
    (with leadership; ``_reset`` first forgets what an earlier leadership learnt) and
    ``stop()`` (cancels the task and waits for it to end). For ``LeaderServices.add``."""

    _task: asyncio.Task[None] | None = None

    async def start(self) -> None:
        if self._task is None:
            self._reset()
            self._task = asyncio.ensure_future(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait(task)

    @property
    def running(self) -> bool:
        return self._task is not None

    def _reset(self) -> None:  # noqa: B027  (optional: a loop with state overrides it)
        """Called before each start."""

    @abc.abstractmethod
    async def _run(self) -> None:
        """The service's work, until it is cancelled."""


class WrittenKeys(Generic[_K]):
    """The keys of one table that applied entries wrote, as ``FSM.write_listeners``
    report them on the raft thread, for a leader loop to take on the event loop. A
    None among them means the whole state was replaced (a snapshot install). Use it as
    a context manager: it listens from ``with`` until the block ends. ``_K`` is the
    type of the table's primary key."""

    def __init__(self, listeners: list[WriteListener], table: str):
        self._listeners = listeners
        self._table = table
        # a deque: append/extend and popleft are atomic, so a key reported while
        # ``take`` drains is either taken now or left for the next take, never lost
        self._keys: deque[_K | None] = deque()

    def _heard(self, keys: Written) -> None:
        if keys is None:
            self._keys.append(None)
        else:
            self._keys.extend(keys.get(self._table, ()))

    def __enter__(self) -> WrittenKeys[_K]:
        self._listeners.append(self._heard)
        return self

    def __exit__(self, *exc: object) -> None:
        self._listeners.remove(self._heard)

    def take(self) -> list[_K | None]:
        """Every key reported since the last take, in order (take them before reading
        the state: the state read after has every row they name)."""
        out: list[_K | None] = []
        try:
            while True:
                out.append(self._keys.popleft())
        except IndexError:
            return out
