"""Allocation names, and the index allocator that hands them out (Nomad's allocNameIndex).

Every allocation of a task group is named ``<job>.<group>[<index>]``. The index is what
keeps a group of ``Count`` allocations recognisable across updates: a replacement
(destructive update, lost or migrated alloc) takes the name of the alloc it replaces, a
new placement takes the lowest index nobody holds, and scaling down stops the highest
indexes first, so that ``[0]..[Count-1]`` stay in use.

Names can collide (a placement raced a replacement, or an operator-era bug); the index
therefore counts holders per index instead of keeping a bitmap, so a duplicate is
visible and is the first thing stopped when there are too many allocations.
"""
from __future__ import annotations

from collections import Counter
from collections.abc import Iterable

from caravan.fsm.structs import Allocation


def alloc_name(job_id: str, group: str, index: int) -> str:
    """``<job>.<group>[<index>]``, the name Nomad gives the index-th alloc of a group."""
    return f"{job_id}.{group}[{index}]"


def alloc_index(name: str) -> int | None:
    """The number between the last ``[`` and the final ``]``, or None if malformed.

    Parsed from the end because job and group names may themselves contain brackets
    or dots (a dispatched child is ``parent/dispatch-...``)."""
    if not name.endswith("]"):
        return None
    start = name.rfind("[")
    digits = name[start + 1:-1]
    if start < 0 or not digits.isdigit() or not digits.isascii():
        return None
    return int(digits)


class NameIndex:
    """Which indexes of one task group are held, and which to hand out or take back.

    Seeded with the names of the allocations that keep their slot (running, migrating,
    lost-but-being-replaced, finished batch allocs). Mutating methods update the
    counts, so several calls within one reconcile pass never hand out a name twice.
    """

    def __init__(self, job_id: str, group: str, count: int, names: Iterable[str] = ()):
        self.job_id = job_id
        self.group = group
        self.count = count
        self._held: Counter[int] = Counter()
        for name in names:
            index = alloc_index(name)
            if index is not None:
                self._held[index] += 1

    def name(self, index: int) -> str:
        return alloc_name(self.job_id, self.group, index)

    def is_held(self, index: int) -> bool:
        return self._held[index] > 0

    def is_duplicate(self, index: int) -> bool:
        """True when more than one allocation holds this index."""
        return self._held[index] > 1

    def next(self, n: int) -> list[str]:
        """Take the ``n`` lowest free indexes and return their names.

        Nomad falls back to reusing ``[0]`` onwards once ``[0, Count)`` is exhausted,
        creating duplicates; taking the lowest free index above ``Count`` instead
        keeps names unique, and it is the same choice whenever names are in range."""
        out: list[str] = []
        index = 0
        while len(out) < n:
            if not self.is_held(index):
                self._held[index] += 1
                out.append(self.name(index))
            index += 1
        return out

    def highest(self, n: int) -> list[str]:
        """Release and return the ``n`` highest held indexes (fewer if fewer are held)."""
        taken = sorted((i for i, holders in self._held.items() if holders > 0), reverse=True)
        out = []
        for index in taken[:n]:
            self.unset(index)
            out.append(self.name(index))
        return out

    def unset(self, index: int) -> None:
        """One holder of ``index`` went away (stopped); a duplicate keeps it held."""
        if self._held[index] > 0:
            self._held[index] -= 1


def by_index(alloc: Allocation) -> tuple[int, int, str]:
    """Sort key: name index, then age, then ID, so that every order here is total
    and a reconcile pass is reproducible whatever order the state store returned."""
    index = alloc_index(alloc.Name)
    return (-1 if index is None else index, alloc.CreateIndex, alloc.ID)


def removal_order(allocs: Iterable[Allocation]) -> list[Allocation]:
    """The order in which to stop allocations when a group has too many.

    Surplus holders of a shared name go first (malformed names count as surplus; the
    oldest holder of a name keeps it), so that scaling ``[0], [0], [1]`` down to two
    leaves ``[0], [1]``; after them, the remaining holders from the highest index down."""
    holders: dict[int, Allocation] = {}
    surplus: list[Allocation] = []
    for alloc in sorted(allocs, key=by_index):
        index = alloc_index(alloc.Name)
        if index is None or index in holders:
            surplus.append(alloc)
        else:
            holders[index] = alloc
    surplus.sort(key=by_index, reverse=True)
    return surplus + [holders[i] for i in sorted(holders, reverse=True)]
