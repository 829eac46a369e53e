"""What the scheduler reads of the state, and nothing more: the named queries of
``SchedulerState`` (as Nomad's scheduler reads through its ``State`` interface). The
store's snapshot (``caravan.fsm.store.State``) implements it; table, index and total
names are the constants of ``caravan.fsm.schema``. Nothing in the scheduler reaches
into a table's raw index maps.
"""
from __future__ import annotations

from collections.abc import Hashable, Iterator
from typing import Any, Protocol, runtime_checkable

from caravan.fsm.store import Rows, State, TableState


@runtime_checkable
class SchedulerState(Protocol):
    """A read-only snapshot: every answer is the state as of ``last_index``."""

    last_index: int

    def get(self, table: str, key: Hashable) -> Any:
        """The row of ``table`` under primary key ``key``, or None."""
        ...

    def rows(self, table: str) -> Iterator[Any]:
        """Every row of ``table``, in primary-key order."""
        ...

    def by_index(self, table: str, index: str, key: Hashable) -> list[Any]:
        """The rows whose ``index`` key is ``key``, in primary-key order."""
        ...

    def index_members(self, table: str, index: str, key: Hashable) -> Rows:
        """The primary keys (or primary key -> row) under ``key`` in ``index``; the same
        object while none of them changes."""
        ...

    def index_size(self, table: str, index: str, key: Hashable) -> int:
        """How many rows ``index`` holds under ``key``."""
        ...

    def total(self, table: str, total: str, key: Hashable) -> Any:
        """The running sum ``total`` under ``key`` (None when no row counts there)."""
        ...

    def table_index(self, *tables: str) -> int:
        """The highest log index that changed any of ``tables`` (0: never written)."""
        ...

    def table_version(self, table: str) -> TableState:
        """A token of ``table`` that stays the same object until the table changes."""
        ...


def _the_store_snapshot_implements_it(state: State) -> SchedulerState:
    return state   # checked by mypy: State must keep every query above
