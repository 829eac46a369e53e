"""Small readers shared by the validators: optional fields read as Go's zero values,
numbered and prefixed messages, a network's ports, alloc-dir escapes."""
from __future__ import annotations

import posixpath
from collections.abc import Iterable
from typing import Any

from caravan.fsm.structs import NetworkResource

SECOND = 1_000_000_000


def present(seq: list[Any] | None) -> list[Any] | tuple:
    """The elements of an optional list; nulls (possible only in hand-built jobs)
    are skipped. The common case returns the list itself without copying."""
    if not seq:
        return ()
    if None in seq:
        return [x for x in seq if x is not None]
    return seq


def text_of(value: Any) -> str:
    """A string field, null read as Go's zero value."""
    return value if isinstance(value, str) else ""


def int_of(value: Any) -> int:
    """An optional integer field, null read as Go's zero value."""
    return value if isinstance(value, int) else 0


def prefixed(prefix: str, messages: Iterable[str]) -> list[str]:
    return [prefix + m for m in messages]


def numbered(kind: str, seq: list[Any] | None, check) -> list[str]:
    """"<Kind> N validation failed: ..." for each item of a list, counting from 1."""
    out: list[str] = []
    for idx, item in enumerate(present(seq)):
        out += prefixed(f"{kind} {idx + 1} validation failed: ", check(item))
    return out


def ports(net: NetworkResource) -> list[tuple[str, int, int, str]]:
    """(Label, Value, To, HostNetwork) of every reserved then dynamic port."""
    return [(text_of(p.Label), int_of(p.Value), int_of(p.To), text_of(p.HostNetwork))
            for p in [*present(net.ReservedPorts), *present(net.DynamicPorts)]]


def escapes_alloc_dir(prefix: str, path: str) -> bool:
    """escapingfs.PathEscapesAllocViaRelative: does ``prefix/path`` leave the alloc dir?"""
    alloc = "/alloc-dir/alloc-id"
    full = posixpath.normpath("/".join(p for p in (alloc, prefix, path or "") if p))
    return posixpath.relpath(full, alloc).startswith("..")
