"""The restart policy, as Nomad's client applies it (``client/allocrunner/taskrunner/
restarts``): a pure tracker that, given how a task ended, says whether to restart it,
after what delay, and why not when not."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

from caravan.fsm.durations import go_duration
from caravan.fsm.structs import RestartPolicy

RESTART = "restart"
NOT_RESTARTING = "not-restarting"   # the task has failed
TERMINATED = "terminated"           # a task that ends on success succeeded: done, not failed

REASON_WITHIN_POLICY = "Restart within policy"
REASON_NO_RESTARTS = "Policy allows no restarts"
REASON_UNRECOVERABLE = "Error was unrecoverable"
REASON_DELAY = "Exceeded allowed attempts, applying a delay"
JITTER = 0.25


@dataclass
class Decision:
    kind: str
    delay_ns: int = 0
    reason: str = ""


class RestartTracker:
    def __init__(self, policy: RestartPolicy | None, terminates_on_success: bool,
                 now_ns: Callable[[], int],
                 rng: random.Random | None = None):
        policy = policy or RestartPolicy()
        self.attempts = policy.Attempts or 0
        self.interval = policy.Interval or 0
        self.delay = policy.Delay or 0
        self.mode = policy.Mode or "fail"
        # batch tasks and ephemeral lifecycle tasks (client.lifecycle.terminates_on_success)
        self.terminates_on_success = terminates_on_success
        self.now_ns = now_ns
        self.rng = rng or random.Random()
        self.count = 0
        self.started = now_ns()

    def _jittered(self) -> int:
        return self.delay + int(self.delay * JITTER * self.rng.random())

    def on_exit(self, successful: bool) -> Decision:
        if successful and self.terminates_on_success:
            return Decision(TERMINATED)
        return self._next()

    def on_start_error(self, recoverable: bool) -> Decision:
        if not recoverable:
            return Decision(NOT_RESTARTING, reason=REASON_UNRECOVERABLE)
        return self._next()

    def _next(self) -> Decision:
        if self.attempts == 0:
            return Decision(NOT_RESTARTING, reason=REASON_NO_RESTARTS)
        now = self.now_ns()
        end = self.started + self.interval
        if now > end:   # a new interval: the count starts over
            self.count = 0
            self.started = now
            return Decision(RESTART, self._jittered(), REASON_WITHIN_POLICY)
        self.count += 1
        if self.count <= self.attempts:
            return Decision(RESTART, self._jittered(), REASON_WITHIN_POLICY)
        if self.mode == "fail":
            return Decision(NOT_RESTARTING, reason=(
                f"Exceeded allowed attempts {self.attempts} in interval "
                f"{go_duration(self.interval)} and mode is \"fail\""))
        # mode "delay": wait for the next interval, then start counting again
        self.count = 0
        self.started = end
        return Decision(RESTART, max(0, end - now), REASON_DELAY)
