"""Go's ``time.ParseDuration``: "300ms", "1.5h", "2h45m", "-1µs" -> nanoseconds."""
from __future__ import annotations

import re

_UNITS = {"ns": 1, "us": 1_000, "µs": 1_000, "μs": 1_000, "ms": 1_000_000,
          "s": 1_000_000_000, "m": 60_000_000_000, "h": 3_600_000_000_000}
_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|s|m|h)")


def parse_go_duration(text: str) -> int:
    """Nanoseconds of a Go duration string; raises ValueError with Go's message."""
    if not isinstance(text, str):
        raise ValueError(f"time: invalid duration {text!r}")
    s = text.strip()
    sign = -1 if s.startswith("-") else 1
    body = s.lstrip("+-")
    if body == "0":
        return 0
    if not body:
        raise ValueError(f'time: invalid duration "{text}"')
    total, pos = 0, 0
    while pos < len(body):
        m = _PART.match(body, pos)
        if m is None:
            if re.match(r"(\d+(?:\.\d*)?|\.\d+)$", body[pos:]):
                raise ValueError(f'time: missing unit in duration "{text}"')
            raise ValueError(f'time: invalid duration "{text}"')
        number, unit = m.groups()
        whole, _, frac = number.partition(".")
        scale = _UNITS[unit]
        total += int(whole or 0) * scale
        if frac:
            total += int(frac) * scale // (10 ** len(frac))
        pos = m.end()
    return sign * total


def duration_value(value) -> int:
    """A duration given as nanoseconds (int) or as a Go duration string."""
    if isinstance(value, bool):
        raise ValueError(f"invalid duration {value!r}")
    if isinstance(value, (int, float)):
        return int(value)
    return parse_go_duration(value)
