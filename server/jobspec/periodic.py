"""Next launch time of a periodic job, from its cron spec in its time zone (croniter)."""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from croniter import croniter

from fsm.structs import Job

ZERO_TIME = "0001-01-01T00:00:00Z"


def next_launch(job: Job, after_ns: int) -> datetime | None:
    p = job.Periodic
    if p is None or not p.Enabled or not p.Spec or (p.SpecType or "cron") != "cron":
        return None
    tz = ZoneInfo(p.TimeZone or "UTC")
    start = datetime.fromtimestamp(after_ns / 1e9, tz)
    fields = p.Spec.split()
    second_at_beginning = len(fields) == 6
    return croniter(p.Spec, start, second_at_beginning=second_at_beginning).get_next(datetime)


def next_launch_rfc3339(job: Job, after_ns: int) -> str:
    try:
        when = next_launch(job, after_ns)
    except (ValueError, KeyError):
        return ZERO_TIME
    if when is None:
        return ZERO_TIME
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
