"""Periodic specs the way Nomad reads them (gorhill/cronexpr), evaluated with croniter.

cronexpr takes 5 fields, 6 fields as the 5 plus a trailing year, 7 fields as seconds,
the 5, and a year, and macros such as ``@daily``. croniter's 7-field form with
``second_at_beginning`` is the same as cronexpr's, so every spec is mapped onto it.
"""
from __future__ import annotations

from datetime import datetime, timezone
from zoneinfo import ZoneInfo

from croniter import croniter

from fsm.structs import Job

ZERO_TIME = "0001-01-01T00:00:00Z"


def cron(spec: str, start: datetime) -> croniter:
    """A croniter for a Nomad cron spec; raises (ValueError, KeyError, ...) if invalid."""
    spec = spec.strip()
    if spec.startswith("@"):
        return croniter(spec, start)
    fields = spec.split()
    if len(fields) == 5:
        return croniter(spec, start)
    if len(fields) == 6:
        return croniter("0 " + spec, start, second_at_beginning=True)
    if len(fields) == 7:
        return croniter(spec, start, second_at_beginning=True)
    raise ValueError("missing field(s)" if len(fields) < 5 else "too many fields")


def next_launch(job: Job, after_ns: int) -> datetime | None:
    p = job.Periodic
    if p is None or not p.Enabled or not p.Spec or (p.SpecType or "cron") != "cron":
        return None
    start = datetime.fromtimestamp(after_ns / 1e9, ZoneInfo(p.TimeZone or "UTC"))
    return cron(p.Spec, start).get_next(datetime)


def next_launch_rfc3339(job: Job, after_ns: int) -> str:
    try:
        when = next_launch(job, after_ns)
    except Exception:  # an invalid spec was refused at validation; show no launch
        return ZERO_TIME
    if when is None:
        return ZERO_TIME
    return when.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
