"""An asyncio event loop on virtual time.

Time advances only when the loop has nothing ready to run: instead of sleeping until
the next timer, the selector jumps the clock to it. Callbacks therefore run in the
same order on every run, a simulated hour takes as long as its callbacks do, and a
loop left with nothing scheduled at all is a deadlock, reported as one.
"""
from __future__ import annotations

import asyncio
import selectors


class Deadlock(Exception):
    """Nothing is ready and no timer is armed: the simulation would wait forever; or
    the loop ran more iterations than its budget (a livelock)."""


class _JumpingSelector(selectors.DefaultSelector):
    """Polls real file descriptors without blocking (only the loop's self-pipe is ever
    registered) and advances the loop's clock by the timeout it was asked to wait."""

    def __init__(self, budget: int) -> None:
        super().__init__()
        self.loop: VirtualTimeLoop | None = None
        self.budget = budget

    def select(self, timeout=None):
        self.budget -= 1
        if self.budget < 0:
            raise Deadlock("the loop ran out of its iteration budget (livelock?)")
        events = super().select(0)
        if events or timeout == 0:
            return events
        if timeout is None:
            raise Deadlock("no callback is ready and no timer is armed")
        self.loop.advance(timeout)
        return events


class VirtualTimeLoop(asyncio.SelectorEventLoop):
    def __init__(self, start: float = 0.0, budget: int = 10_000_000) -> None:
        selector = _JumpingSelector(budget)
        super().__init__(selector)
        selector.loop = self
        self._virtual_now = start

    def refill(self, budget: int) -> None:
        """Allow ``budget`` more loop iterations from now."""
        self._selector.budget = budget

    def time(self) -> float:
        return self._virtual_now

    def advance(self, seconds: float) -> None:
        self._virtual_now += seconds
