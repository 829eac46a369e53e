"""Times as Nomad writes them in task states and health: RFC 3339 with nanoseconds."""
from __future__ import annotations

import datetime
import time

ZERO_TIME = "0001-01-01T00:00:00Z"


def rfc3339(ns: int | None = None) -> str:
    ns = time.time_ns() if ns is None else ns
    dt = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.timezone.utc)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}Z"
