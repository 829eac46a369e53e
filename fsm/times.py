"""RFC 3339 timestamps with nanoseconds, as Nomad's JSON shows ``time.Time`` values
(``0001-01-01T00:00:00Z`` is Go's zero time). Pure conversions, no clock."""
from __future__ import annotations

import datetime

ZERO_TIME = "0001-01-01T00:00:00Z"
_EPOCH = datetime.datetime(1970, 1, 1, tzinfo=datetime.UTC)


def format_rfc3339(ns: int) -> str:
    if ns <= 0:
        return ZERO_TIME
    dt = datetime.datetime.fromtimestamp(ns // 1_000_000_000, datetime.UTC)
    return dt.strftime("%Y-%m-%dT%H:%M:%S") + f".{ns % 1_000_000_000:09d}Z"


def parse_rfc3339(text: str) -> int:
    """Unix nanoseconds of an RFC 3339 time; 0 for the zero time or anything unreadable
    (a client's odd timestamp must not stop a log entry from applying)."""
    if not text or text.startswith("0001-01-01"):
        return 0
    try:
        base, frac, rest = text, "", ""
        if "." in text:
            base, tail = text.split(".", 1)
            digits = len(tail) - len(tail.lstrip("0123456789"))
            frac, rest = tail[:digits], tail[digits:]
        else:
            base, rest = text[:19], text[19:]
        offset = "+00:00" if rest in ("Z", "z") else rest
        dt = datetime.datetime.fromisoformat(base + offset)
        seconds = int((dt - _EPOCH).total_seconds())
        return seconds * 1_000_000_000 + int((frac + "000000000")[:9])
    except ValueError:
        return 0
