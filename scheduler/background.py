"""The lifecycle the leader-only loops share: one background task, started with
leadership and cancelled (and awaited) when it is lost."""
from __future__ import annotations

import asyncio


async def cancel_and_wait(task: asyncio.Task | None) -> None:
    """Cancel ``task`` and wait until it has ended, whatever it ended with."""
    if task is None:
        return
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
