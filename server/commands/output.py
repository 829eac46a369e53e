"""Terminal output shared by the commands: Nomad-style ``Key = Value`` blocks,
aligned tables (rich, without borders), JSON for scripts, ids and times."""
from __future__ import annotations

import json
import time
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from rich.console import Console
from rich.table import Table
from rich.text import Text

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)
if not out.is_terminal:
    out.width = 4096  # piped output: never truncate a table to fit 80 columns


def heading(title: str) -> None:
    out.print()
    out.print(Text(title, style="bold"))


def kv(rows: Iterable[tuple[str, Any]]) -> None:
    rows = list(rows)
    width = max((len(k) for k, _ in rows), default=0)
    for key, value in rows:
        out.print(Text(f"{key.ljust(width)} = {value}"))


def table(headers: list[str], rows: Iterable[list[Any]], empty: str | None = None) -> None:
    rows = list(rows)
    if not rows and empty is not None:
        out.print(empty)
        return
    t = Table(box=None, show_edge=False, pad_edge=False, padding=(0, 2, 0, 0),
              header_style="bold")
    for h in headers:
        t.add_column(h, no_wrap=True, overflow="fold")
    for row in rows:
        t.add_row(*(v if isinstance(v, Text) else Text(str(v)) for v in row))
    if out.is_terminal:
        out.print(t)
        return
    with out.capture() as captured:  # plain text: drop the padding after the last column
        out.print(t)
    out.print(Text("\n".join(line.rstrip() for line in captured.get().splitlines())))


def emit_json(value: Any) -> None:
    out.print(Text(json.dumps(value, indent=4, sort_keys=False)))


def short(ident: str | None, full: bool = False) -> str:
    return (ident or "") if full else (ident or "")[:8]


def fmt_time(value: Any) -> str:
    """Nanoseconds since the epoch (or an RFC 3339 string) as local wall-clock time."""
    if isinstance(value, str):
        if value.startswith("0001-"):
            return "<none>"
        try:
            dt = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value
    elif not value:
        return "<none>"
    else:
        dt = datetime.fromtimestamp(value / 1e9, tz=UTC)
    return dt.astimezone().strftime("%Y-%m-%dT%H:%M:%S%z")


def age(ns: int | None, now: float | None = None) -> str:
    """How long ago, as Nomad prints it (``3m21s ago``)."""
    if not ns:
        return "<none>"
    secs = max(0, int((now if now is not None else time.time()) - ns / 1e9))
    days, rest = divmod(secs, 86400)
    hours, rest = divmod(rest, 3600)
    mins, secs = divmod(rest, 60)
    if days:
        return f"{days}d{hours}h ago"
    if hours:
        return f"{hours}h{mins}m ago"
    if mins:
        return f"{mins}m{secs}s ago"
    return f"{secs}s ago"


def duration(ns: int | None) -> str:
    if not ns:
        return "0s"
    secs = ns / 1e9
    if secs < 1:
        return f"{ns / 1e6:g}ms"
    parts, secs = [], int(secs)
    for unit, size in (("h", 3600), ("m", 60), ("s", 1)):
        if secs >= size or (unit == "s" and not parts):
            parts.append(f"{secs // size}{unit}")
            secs %= size
    return "".join(parts)
