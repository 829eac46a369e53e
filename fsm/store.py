"""The state store: persistent tables, their indexes, and snapshots that never change.

``State`` is an immutable value: every table is an ``immutables.Map`` from primary key
to row plus one map per secondary index, and the highest log index that changed it.
A write builds a new ``State`` through a ``Txn``; the FSM publishes it with a single
reference assignment, so a reader that took a ``State`` keeps a consistent snapshot
for as long as it wants, at no cost, while entries keep applying.
"""
from __future__ import annotations

import bisect
import hashlib
from collections.abc import Hashable, Iterable, Iterator
from types import GenericAlias
from typing import Any

import immutables
import msgspec

from caravan.fsm.schema import DEPLOYMENTS, EVALS, SCHEMA, Table, Total

# A table's rows by primary key, or an index's entries: what a key and a row are depends
# on the table (``fsm.schema``), so they are Any here and typed where a table is read.
Rows = immutables.Map[Any, Any]
_EMPTY: Rows = immutables.Map()
TRACKED = (EVALS, DEPLOYMENTS)   # tables whose written keys a Txn records


class TableState:
    """One table at one moment. Immutable; ``sorted_keys`` is computed once, lazily."""

    __slots__ = ("rows", "indexes", "index", "_sorted")

    def __init__(self, rows: Rows, indexes: dict[str, Rows], index: int):
        self.rows = rows
        self.indexes = indexes
        self.index = index
        self._sorted: list[Any] | None = None

    def sorted_keys(self) -> list[Any]:
        if self._sorted is None:
            self._sorted = sorted(self.rows.keys())
        return self._sorted


def _empty_table(table: Table) -> TableState:
    names = [x.name for x in table.indexes] + [x.name for x in table.totals]
    return TableState(_EMPTY, {name: _EMPTY for name in names}, 0)


class State:
    """A read-only snapshot of every table."""

    __slots__ = ("tables", "last_index")

    def __init__(self, tables: dict[str, TableState], last_index: int):
        self.tables = tables
        self.last_index = last_index

    @classmethod
    def empty(cls) -> State:
        return cls({name: _empty_table(t) for name, t in SCHEMA.items()}, 0)

    # --- reads ---------------------------------------------------------------------

    def get(self, table: str, key: Hashable) -> Any:
        return self.tables[table].rows.get(key)

    def rows(self, table: str) -> Iterator[Any]:
        """All rows in primary-key order."""
        ts = self.tables[table]
        for k in ts.sorted_keys():
            yield ts.rows[k]

    def prefix(self, table: str, prefix: str) -> list[Any]:
        """Rows whose (string) primary key starts with ``prefix``, in key order."""
        ts = self.tables[table]
        if not prefix:
            return [ts.rows[k] for k in ts.sorted_keys()]
        keys = ts.sorted_keys()
        lo = bisect.bisect_left(keys, prefix)
        out = []
        for k in keys[lo:]:
            if not k.startswith(prefix):
                break
            out.append(ts.rows[k])
        return out

    def by_index(self, table: str, index: str, key: Hashable) -> list[Any]:
        """Rows whose ``index`` key equals ``key``, in primary-key order."""
        return _lookup(self.tables[table], index, key)

    def index_members(self, table: str, index: str, key: Hashable) -> Rows:
        """The primary keys under ``key`` in ``index`` (for an index that holds its
        rows, ``fsm.schema`` ``Index.rows``: primary key -> row), empty if none. The
        store's own map: the same object for as long as none of its rows changes, so a
        caller may cache what it derived from it by identity."""
        members: Rows | None = self.tables[table].indexes[index].get(key)
        return members if members is not None else _EMPTY

    def index_size(self, table: str, index: str, key: Hashable) -> int:
        """How many rows ``index`` holds under ``key``."""
        return len(self.tables[table].indexes[index].get(key) or ())

    def count(self, table: str) -> int:
        return len(self.tables[table].rows)

    def total(self, table: str, total: str, key: Hashable) -> Any:
        """The running sum ``total`` (``fsm.schema.Total``) under ``key``; None when no
        row there counts. For a nested total: the map of inner key -> sum."""
        return self.tables[table].indexes[total].get(key)

    def totals(self, table: str, total: str) -> Rows:
        """Every key of the running sum ``total`` and its value (for a nested total,
        the map of inner key -> sum)."""
        return self.tables[table].indexes[total]

    def table_version(self, table: str) -> TableState:
        """An immutable token of ``table``: the same object until one of its rows
        changes (or the state is replaced), a new one after."""
        return self.tables[table]

    def table_index(self, *tables: str) -> int:
        """The highest log index that changed any of ``tables``: 0 for tables never
        written, as Nomad's ``state.Index`` answers (its Go client's tests expect an
        ``X-Nomad-Index`` of 0 on a fresh cluster; a query with ``index=0`` does not
        block, there as here)."""
        return max([0] + [self.tables[t].index for t in tables])


def _lookup(ts: TableState, index: str, key: Hashable) -> list[Any]:
    pks = ts.indexes[index].get(key)
    if not pks:
        return []
    return [ts.rows[pk] for pk in sorted(pks.keys())]


class Txn:
    """A write transaction for one log entry at ``index``. Reads see the writes made so
    far in this transaction; ``commit()`` returns the new ``State``."""

    def __init__(self, base: State, index: int):
        self.index = index
        self._tables = dict(base.tables)
        self._touched: set[str] = set()
        # the keys written (put or deleted) in the tables that leader services follow
        # key by key (``TRACKED``): the pending evals for the broker, the deployments
        # for the watcher, without scanning a whole table after each commit
        self.written: dict[str, list[Hashable]] = {}

    # reads (same API as State for the calls appliers need)
    def get(self, table: str, key: Hashable) -> Any:
        return self._tables[table].rows.get(key)

    def by_index(self, table: str, index: str, key: Hashable) -> list[Any]:
        return _lookup(self._tables[table], index, key)

    def total(self, table: str, total: str, key: Hashable) -> Any:
        return self._tables[table].indexes[total].get(key)

    def rows_unordered(self, table: str) -> Iterable[Any]:
        return self._tables[table].rows.values()

    # writes
    def put(self, table: str, row: Any) -> None:
        spec = SCHEMA[table]
        ts = self._tables[table]
        pk = spec.primary(row)
        old = ts.rows.get(pk)
        indexes = ts.indexes
        if spec.indexes:
            indexes = dict(indexes)
            for ix in spec.indexes:
                old_key = ix.key(old) if old is not None else None
                new_key = ix.key(row)
                if old is not None and old_key == new_key and (new_key is None or not ix.rows):
                    continue
                m = indexes[ix.name]
                if old_key is not None and old_key != new_key:
                    m = _index_remove(m, old_key, pk)
                if new_key is not None:
                    m = m.set(new_key, m.get(new_key, _EMPTY).set(pk, row if ix.rows else True))
                indexes[ix.name] = m
        if spec.totals:
            indexes = dict(indexes) if indexes is ts.indexes else indexes
            for tot in spec.totals:
                _retotal(indexes, tot, old, row)
        self._tables[table] = TableState(ts.rows.set(pk, row), indexes, self.index)
        self._touched.add(table)
        if table in TRACKED:
            self.written.setdefault(table, []).append(pk)

    def delete(self, table: str, pk: Hashable) -> bool:
        spec = SCHEMA[table]
        ts = self._tables[table]
        old = ts.rows.get(pk)
        if old is None:
            return False
        indexes = dict(ts.indexes)
        for ix in spec.indexes:
            k = ix.key(old)
            if k is not None:
                indexes[ix.name] = _index_remove(indexes[ix.name], k, pk)
        for tot in spec.totals:
            _retotal(indexes, tot, old, None)
        self._tables[table] = TableState(ts.rows.delete(pk), indexes, self.index)
        self._touched.add(table)
        if table in TRACKED:
            self.written.setdefault(table, []).append(pk)
        return True

    @property
    def touched(self) -> frozenset[str]:
        return frozenset(self._touched)

    def commit(self) -> State:
        return State(self._tables, self.index)


def _retotal(indexes: dict[str, Rows], tot: Total, old: Any, new: Any) -> None:
    """Move a row's share of ``tot`` from what ``old`` counted to what ``new`` counts
    (either may be None: a row put for the first time, or deleted)."""
    old_key = tot.key(old) if old is not None else None
    old_val = tot.value(old) if old_key is not None else None
    new_key = tot.key(new) if new is not None else None
    new_val = tot.value(new) if new_key is not None else None
    if old_key == new_key and old_val == new_val:
        return
    m = indexes[tot.name]
    if old_key is not None and old_val is not None:   # (a value is only taken with a key)
        m = _add(tot, m, old_key, old_val, -1)
    if new_key is not None and new_val is not None:
        m = _add(tot, m, new_key, new_val, 1)
    indexes[tot.name] = m


def _add(tot: Total, m: Rows, key: Hashable, value: tuple[int, ...], sign: int) -> Rows:
    if tot.nested:
        assert isinstance(key, tuple), f"{tot.name}: a nested total's key is (outer, inner)"
        return _add_nested(m, key, value, sign)
    return _add_to(m, key, value, sign)


def _add_nested(m: Rows, key: tuple[Hashable, Hashable], value: tuple[int, ...], sign: int) -> Rows:
    outer, inner = key
    have = m.get(outer)
    sums = _add_to(have if have is not None else _EMPTY, inner, value, sign)
    if len(sums):
        return m.set(outer, sums)
    return m.delete(outer) if have is not None else m


def _add_to(m: Rows, key: Hashable, value: tuple[int, ...], sign: int) -> Rows:
    have = m.get(key)
    summed = tuple(h + sign * v for h, v in zip(have, value)) if have is not None \
        else tuple(sign * v for v in value)
    if any(summed):
        return m.set(key, summed)
    return m.delete(key) if have is not None else m


def _index_remove(m: Rows, key: Hashable, pk: Hashable) -> Rows:
    pks = m.get(key)
    if pks is None or pk not in pks:
        return m
    pks = pks.delete(pk)
    return m.set(key, pks) if len(pks) else m.delete(key)


# --- whole-state encoding (snapshots, determinism checks) ------------------------------

_encoder = msgspec.msgpack.Encoder(order="deterministic")
SNAPSHOT_FORMAT = 1


class _Snapshot(msgspec.Struct):
    Format: int
    LastIndex: int
    TableIndexes: dict[str, int]
    Tables: dict[str, bytes]


def encode_state(state: State) -> bytes:
    """Encode every table, rows in primary-key order, with deterministic map order:
    two replicas that applied the same log encode to the same bytes."""
    tables: dict[str, bytes] = {}
    for name in sorted(SCHEMA):
        tables[name] = _encode_list(list(state.rows(name)))
    snap = _Snapshot(SNAPSHOT_FORMAT, state.last_index,
                     {n: state.tables[n].index for n in sorted(SCHEMA)}, tables)
    return _encoder.encode(snap)


_CHUNK_ROWS = 256


def _encode_list(rows: list[Any]) -> bytes:
    """The msgpack array of ``rows``, byte for byte what encoding the list at once gives,
    encoded a chunk of rows at a time: a snapshot written by a background thread then
    never holds the GIL for a whole table."""
    if len(rows) <= _CHUNK_ROWS:
        return _encoder.encode(rows)
    parts = [_array_header(len(rows))]
    for i in range(0, len(rows), _CHUNK_ROWS):
        chunk = rows[i:i + _CHUNK_ROWS]
        parts.append(_encoder.encode(chunk)[len(_array_header(len(chunk))):])
    return b"".join(parts)


def _array_header(n: int) -> bytes:
    """msgpack's shortest array header for ``n`` items, as msgspec writes it."""
    if n < 16:
        return bytes([0x90 | n])
    if n < 1 << 16:
        return b"\xdc" + n.to_bytes(2, "big")
    return b"\xdd" + n.to_bytes(4, "big")


def decode_state(blob: bytes) -> State:
    snap = msgspec.msgpack.decode(blob, type=_Snapshot)
    if snap.Format != SNAPSHOT_FORMAT:
        raise ValueError(f"unknown snapshot format {snap.Format}")
    tables: dict[str, TableState] = {}
    for name, spec in SCHEMA.items():
        row_list = GenericAlias(list, (spec.row_type,))   # list[<the table's row struct>]
        rows = msgspec.msgpack.decode(snap.Tables.get(name, b"\x90"), type=row_list)
        txn = Txn(State({name: _empty_table(spec)}, 0), snap.TableIndexes.get(name, 0))
        for row in rows:
            txn.put(name, row)
        ts = txn.commit().tables[name]
        tables[name] = TableState(ts.rows, ts.indexes, snap.TableIndexes.get(name, 0))
    return State(tables, snap.LastIndex)


def state_hash(state: State) -> str:
    return hashlib.sha256(encode_state(state)).hexdigest()


# What a reader takes: a published snapshot, or a transaction's view of its writes.
View = State | Txn
