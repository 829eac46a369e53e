"""Periodic specs the way Nomad reads them (gorhill/cronexpr), evaluated with croniter.

cronexpr takes 5 fields, 6 fields as the 5 plus a trailing year, 7 fields as seconds,
the 5, and a year, and macros such as ``@daily``. croniter's 7-field form with
``second_at_beginning`` is the same as cronexpr's, so every spec is mapped onto it.
"""
from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

from croniter import croniter

from caravan.fsm.structs import Job

ZERO_TIME = "0001-01-01T00:00:00Z"
NS = 1_000_000_000


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


def _job_cron(job: Job, start_ns: int) -> croniter | None:
    p = job.Periodic
    if p is None or not p.Enabled or not p.Spec or (p.SpecType or "cron") != "cron":
        return None
    start = datetime.fromtimestamp(start_ns / 1e9, ZoneInfo(p.TimeZone or "UTC"))
    return cron(p.Spec, start)


def next_launch(job: Job, after_ns: int) -> datetime | None:
    """The first launch strictly after ``after_ns``, in the job's time zone."""
    it = _job_cron(job, after_ns)
    return it.get_next(datetime) if it is not None else None


def _ns(when: datetime) -> int:
    return int(round(when.timestamp())) * NS   # cron slots fall on whole seconds


def launch_due(job: Job, last_ns: int, now_ns: int) -> tuple[int | None, int | None]:
    """What the dispatcher should do for ``job`` at ``now_ns``, given its last launch.

    Returns ``(slot, upcoming)``: ``slot`` is the launch time to launch now (the newest
    cron slot in ``(last_ns, now_ns]``, so slots missed while no leader ran are caught
    up once, never replayed one by one) or None; ``upcoming`` is the first slot after
    the one launched (or after ``last_ns``), None if the spec never fires again.
    Raises what ``cron`` raises for a bad spec."""
    first = next_launch(job, last_ns)
    if first is None:
        return None, None
    first_ns = _ns(first)
    if first_ns > now_ns:
        return None, first_ns
    # the newest slot <= now: croniter's get_prev is strictly before its start
    newest = _job_cron(job, (now_ns // NS + 1) * NS).get_prev(datetime)
    slot = max(first_ns, _ns(newest))
    upcoming = next_launch(job, slot)
    return slot, _ns(upcoming) if upcoming is not None else None


def next_launch_rfc3339(job: Job, after_ns: int) -> str:
    try:
        when = next_launch(job, after_ns)
    except Exception:  # an invalid spec was refused at validation; show no launch
        return ZERO_TIME
    if when is None:
        return ZERO_TIME
    return when.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
