"""The lifecycle the leader-only loops share: one background task, started with
leadership and cancelled (and awaited) when it is lost."""
from __future__ import annotations

import abc
import asyncio


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel ``task`` and wait until it has ended, whatever it ended with."""
    if task is None:
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


class LeaderLoop(abc.ABC):
    """A leader-only service whose work is one background task, ``_run``: ``start()``
    (with leadership; ``_reset`` first forgets what an earlier leadership learnt) and
    ``stop()`` (cancels the task and waits for it to end). For ``LeaderServices.add``."""

    _task: asyncio.Task | None = None

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

    def _reset(self) -> None:
        """Called before each start."""

    @abc.abstractmethod
    async def _run(self) -> None:
        """The service's work, until it is cancelled."""
