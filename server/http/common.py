"""What every endpoint shares: errors, query options, blocking reads, JSON replies.

Exception tree (all turn into a plain-text body with the message alone):

    ApiError(code, message)    a request we refuse: 400, 404, 405, 409, 413, 500, 503
    NoLeaderError              -> 500 "No cluster leader"          (translated in app.py)
    ApplyTimeout               -> 503 with "outcome is unknown"    (translated in app.py)
    anything else              -> 500 "internal server error", logged with its traceback
"""
from __future__ import annotations

import asyncio
import functools
import random
from collections.abc import Callable
from typing import Any

import msgspec
from starlette.datastructures import QueryParams
from starlette.requests import Request
from starlette.responses import Response

from caravan.fsm.durations import parse_go_duration
from caravan.fsm.structs import Record
from caravan.server.errors import ApiError
from caravan.server.http.nulls import without_nulls

MAX_BODY_BYTES = 8 * 1024 * 1024
DEFAULT_WAIT = 300.0
MAX_WAIT = 300.0
WRITE_METHODS = ("PUT", "POST")

_json = msgspec.json.Encoder()
_msgpack = msgspec.msgpack.Encoder()


def agent(request: Request):
    return request.app.state.agent


def check_method(request: Request, allowed: tuple[str, ...]) -> None:
    if request.method not in allowed:
        raise ApiError(405, "Invalid method")


# --- query options ---------------------------------------------------------------------

def parse_bool(value: str, name: str) -> bool:
    """Go's ``strconv.ParseBool``, the way Nomad parses ``?purge=`` and friends."""
    if value in ("1", "t", "T", "true", "TRUE", "True"):
        return True
    if value in ("0", "f", "F", "false", "FALSE", "False"):
        return False
    raise ApiError(400, f'Failed to parse value of "{name}" ({value}) as a bool: '
                        f'strconv.ParseBool: parsing "{value}": invalid syntax')


def query_bool(request: Request, name: str) -> bool:
    """Nomad reads ``?purge=``, ``?diffs=`` and ``?all=`` as false when absent or empty
    (``?purge`` alone does not purge); anything else must parse."""
    value = request.query_params.get(name)
    if not value:
        return False
    return parse_bool(value, name)


class QueryOptions(msgspec.Struct, frozen=True):
    min_index: int = 0
    wait: float = DEFAULT_WAIT
    stale: bool = False
    prefix: str = ""
    pretty: bool = False


def query_options(request: Request) -> QueryOptions:
    return _parse_query_options(request.scope["query_string"])


@functools.lru_cache(maxsize=4096)
def _parse_query_options(raw: bytes) -> QueryOptions:
    """Parsed once per distinct query string: reads repeat the same few (``stale``,
    ``index=N&wait=...``), and parsing was a third of a small read's cost."""
    if not raw:
        return _NO_OPTIONS
    q = QueryParams(raw)
    min_index, wait = 0, DEFAULT_WAIT
    if "index" in q:
        value = q["index"]
        # Go's ParseUint: digits only, at most 2**64-1
        if not value.isascii() or not value.isdigit() or int(value) > 2 ** 64 - 1:
            raise ApiError(400, "Invalid index")
        min_index = int(value)
    if "wait" in q:
        try:
            wait = parse_go_duration(q["wait"]) / 1e9
        except ValueError:
            raise ApiError(400, "Invalid wait time") from None
        wait = DEFAULT_WAIT if wait <= 0 else min(wait, MAX_WAIT)
    return QueryOptions(min_index=min_index, wait=wait, stale="stale" in q,
                        prefix=q.get("prefix", ""), pretty="pretty" in q)


_NO_OPTIONS = QueryOptions()


async def consistent_state(request: Request):
    """The local state once it reflects every write acknowledged before this call:
    what a write handler must consult when its answer depends on the state (an
    unknown job, a dispatch's parent), so a lagging follower does not answer wrongly."""
    ag = agent(request)
    await ag.raft.read_barrier()
    return ag.fsm.state


# --- bodies ------------------------------------------------------------------------------


async def read_body(request: Request, limit: int = MAX_BODY_BYTES) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > limit:
        raise ApiError(413, f"Request body too large: {declared} bytes, the limit is {limit}")
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise ApiError(413, f"Request body too large: the limit is {limit} bytes")
        chunks.append(chunk)
    return b"".join(chunks)


async def read_json(request: Request, *, required: bool = True) -> Any:
    """The decoded JSON body; ``None`` for an empty body when not ``required``."""
    body = await read_body(request)
    if not body.strip():
        if required:
            raise ApiError(400, "Request body is empty")
        return None
    try:
        value = msgspec.json.decode(body)
    except msgspec.DecodeError as exc:
        raise ApiError(400, f"Failed to decode request body as JSON: {exc}") from None
    except RecursionError:
        raise ApiError(400, "Failed to decode request body as JSON: nested too deeply") from None
    try:
        _msgpack.encode(value)  # in C: finds an out-of-range integer without a Python walk
    except OverflowError:
        raise ApiError(400, f"Failed to decode request body as JSON: integer out of range "
                            f"at `{_out_of_range_int(value)}`") from None
    return value


def body_value(body: dict, name: str, default: Any) -> Any:
    """A member of a request body whose fields are read by hand: absent and ``null``
    both mean "not set" (Nomad's Go client sends every unset field as ``null``)."""
    value = body.get(name)
    return default if value is None else value


# Python ints are unbounded, but every integer we keep must fit Go's int64/uint64 (and
# msgpack, which the log entries use): a larger one would fail later, as a 500.
_INT_MIN, _INT_MAX = -(2 ** 63), 2 ** 64 - 1


def _out_of_range_int(value: Any) -> str | None:
    """The JSON path of an integer outside [-2**63, 2**64-1], if any (iterative: the
    decoder allows nesting deeper than Python's recursion limit)."""
    stack = [(value, "$")]
    while stack:
        v, path = stack.pop()
        if isinstance(v, int) and not isinstance(v, bool):
            if not _INT_MIN <= v <= _INT_MAX:
                return path.removeprefix("$.")
        elif isinstance(v, dict):
            stack.extend((x, f"{path}.{k}") for k, x in reversed(list(v.items())))
        elif isinstance(v, list):
            stack.extend((x, f"{path}[{i}]") for i, x in reversed(list(enumerate(v))))
    return None


def go_fields(body: dict, names: tuple[str, ...]) -> dict:
    """``body`` with each key that names a field of ``names`` case-insensitively renamed
    to that field, as Go's encoding/json matches object keys to struct fields (an exact
    match first, else any case; of two keys for one field the later wins). Nomad's Go
    clients and python-nomad rely on it: python-nomad sends ``UnHealthyAllocationIDs``.
    Other keys are left as they are (Go ignores them)."""
    folded = {name.lower(): name for name in names}
    out: dict = {}
    for key, value in body.items():
        field = key if key in names else folded.get(key.lower())
        if field is None:
            out.setdefault(key, value)
        else:
            out.pop(field, None)
            out[field] = value
    return out


def convert(obj: Any, typ: type, what: str) -> Any:
    """Typed view of decoded JSON; a wrong type is a 400 that names the field. A
    ``null`` means "not set" at every depth (``server/http/nulls.py``).

    Most bodies hold no null that the plain conversion refuses, so it is tried first;
    only a refused body is walked. Both give the same record, because every field that
    accepts null defaults to null (``tests/unit/test_nulls.py`` checks the records)."""
    try:
        return msgspec.convert(obj, typ)
    except msgspec.ValidationError:
        pass
    try:
        return msgspec.convert(without_nulls(obj, typ), typ)
    except msgspec.ValidationError as exc:
        raise ApiError(400, f"{what}: {_json_path(exc)}") from None


def _json_path(exc: msgspec.ValidationError) -> str:
    return str(exc).replace("`$.", "`")


# --- responses ------------------------------------------------------------------------------


class _JSONResponse(Response):
    """A JSON response whose headers are built directly as bytes."""

    media_type = "application/json"

    def __init__(self, body: bytes, status: int, headers: list[tuple[bytes, bytes]]):
        self.status_code = status
        self.body = body
        self.background = None
        self.raw_headers = [(b"content-length", str(len(body)).encode()),
                            (b"content-type", b"application/json"), *headers]


def json_response(payload: Any, *, index: int, request: Request, read: bool = True,
                  status: int = 200) -> Response:
    body = encode_json(payload)
    if query_options(request).pretty:
        body = msgspec.json.format(body, indent=4)
    headers = [(b"x-nomad-index", str(index).encode())]
    if read:
        node = agent(request).raft
        headers.append((b"x-nomad-knownleader", b"true" if node.leader() else b"false"))
        headers.append((b"x-nomad-lastcontact", str(node.last_contact_ms()).encode()))
    return _JSONResponse(body, status, headers)


# Stored rows never change, so a row's JSON can be kept and served again as long as
# the row is the current one. Keyed by identity; the entry holds the row, so an id is
# not reused while cached.
_ENCODED: dict[int, tuple[Any, bytes]] = {}
_ENCODED_MAX = 2048


def encode_json(payload: Any) -> bytes:
    if not isinstance(payload, Record):
        return _json.encode(payload)
    hit = _ENCODED.get(id(payload))
    if hit is not None and hit[0] is payload:
        return hit[1]
    body = _json.encode(payload)
    if len(_ENCODED) >= _ENCODED_MAX:
        _ENCODED.clear()
    _ENCODED[id(payload)] = (payload, body)
    return body


async def blocking_read(request: Request, tables: tuple[str, ...],
                        query: Callable[[Any], tuple[int, Any]], *, missing: str | None = None,
                        meta_in_body: bool = False) -> Response:
    """Run ``query(state) -> (index, payload)`` once, or, with ``?index=N``, until its
    index passes N or the wait (plus up to wait/16 of jitter) runs out. Parks on the
    notifier of ``tables``: a parked query costs no CPU.

    A ``None`` payload is answered as 404 ``missing`` when given, else as ``null``.
    ``meta_in_body`` adds Index/LastContact/KnownLeader to a dict payload, as Nomad's
    versions endpoint does."""
    opts = query_options(request)
    ag = agent(request)
    if not opts.stale:
        await ag.raft.read_barrier()
    if opts.min_index <= 0:
        index, payload = query(ag.fsm.state)
    else:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + opts.wait + random.uniform(0, opts.wait / 16)
        while True:
            watch = ag.notifier.watch(tables)  # before reading: no write slips between
            try:
                index, payload = query(ag.fsm.state)
                remaining = deadline - loop.time()
                if index > opts.min_index or remaining <= 0:
                    break
                await ag.notifier.wait(watch, remaining)
            finally:
                ag.notifier.unwatch(watch)
    if payload is None and missing is not None:
        raise ApiError(404, missing)
    if meta_in_body and isinstance(payload, dict):
        payload.update(Index=index, LastContact=ag.raft.last_contact_ms(),
                       KnownLeader=ag.raft.leader() is not None)
    return json_response(payload, index=index, request=request)


async def read_row(request: Request, table: str, key, missing: str,
                   render: Callable[[Any], Any] | None = None) -> Response:
    """A blocking read of one row: its ModifyIndex while it exists (else the table's
    index), 404 ``missing`` when it does not, ``render`` shaping the reply."""
    def query(state):
        row = state.get(table, key)
        if row is None:
            return state.table_index(table), None
        return row.ModifyIndex, render(row) if render is not None else row

    return await blocking_read(request, (table,), query, missing=missing)
