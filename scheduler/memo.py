"""Results of pure functions of state rows, kept by the row's identity.

Rows in the state store are never mutated (a change is a new row), so a value derived
from a row stays right for as long as that very row object exists. Nodes in
particular stay the same objects across evaluations until they re-register, so their
derived values (capacity, base network index) are computed once, not at every visit.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any


class IdentityMemo:
    def __init__(self, fn: Callable[[Any], Any], maxsize: int = 8192):
        self._fn = fn
        self._maxsize = maxsize
        self._cache: dict[int, tuple[Any, Any]] = {}

    def __call__(self, row: Any) -> Any:
        hit = self._cache.get(id(row))
        if hit is not None and hit[0] is row:
            return hit[1]
        value = self._fn(row)
        if len(self._cache) >= self._maxsize:
            self._cache.clear()
        # the entry holds the row, so its id cannot be reused while cached
        self._cache[id(row)] = (row, value)
        return value
