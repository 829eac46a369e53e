"""Times as Nomad writes them in task states and health: RFC 3339 with nanoseconds, of
now unless told (the formatting is ``fsm.times``', shared with the state machine)."""
from __future__ import annotations

import time

from caravan.fsm.times import ZERO_TIME, format_rfc3339

__all__ = ["ZERO_TIME", "rfc3339"]


def rfc3339(ns: int | None = None) -> str:
    return format_rfc3339(time.time_ns() if ns is None else ns)
