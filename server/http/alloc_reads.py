"""Read endpoints of the Allocations API, and the allocation shapes the node, eval and
deployment reads share.

Rows keep the pre-0.9 resources (``Resources``, ``TaskResources``, ``SharedResources``);
Nomad 1.x clients read ``AllocatedResources`` instead, so it is computed here, at the
edge, from those fields rather than stored twice. A row that carries its own
``AllocatedResources`` (a later scheduler may fill it) is served as is.

Lists follow Nomad 1.x ordering: by CreateIndex without ``?prefix=``, by ID with it.
"""
from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request

from caravan.fsm import schema as t
from caravan.fsm.store import State
from caravan.server.http.common import (
    ApiError,
    blocking_read,
    check_method,
    parse_bool,
    query_bool,
    query_options,
    read_row,
)
from caravan.server.http.job_reads import alloc_stub

GET = ("GET",)
UUID_LENGTH = 36


def require_uuid(value: str) -> str:
    """Exact lookups of nodes, allocs, evals and deployments take a full UUID, as in
    Nomad (whose memdb UUID index refuses anything else with a 500); we answer 400 with
    the same text. Only the length is checked: a 36-character non-UUID is a 404."""
    if len(value) != UUID_LENGTH:
        raise ApiError(400, "UUID must be 36 characters")
    return value


def by_creation(rows) -> list:
    """Nomad 1.x lists evals, allocs and deployments oldest first (its ``create`` index)."""
    return sorted(rows, key=lambda r: (r.CreateIndex, r.ID))


def listed(state: State, table: str, prefix: str) -> list:
    """Rows of a list endpoint. A prefix is matched as a plain string, any length: Nomad
    refuses an odd number of hex digits (its UUID index decodes bytes) and its CLI trims
    the last digit, which would answer more than was asked for."""
    return state.prefix(table, prefix) if prefix else by_creation(state.rows(table))


# --- shapes ------------------------------------------------------------------------------


def allocated_resources(a) -> Any:
    """Nomad 1.x ``AllocatedResources`` from the seed-era per-task and shared resources:
    the group's network is ``Shared.Networks`` and its ports ``Shared.Ports``."""
    if a.AllocatedResources is not None:
        return a.AllocatedResources
    if a.TaskResources is None and a.SharedResources is None:
        return None
    tasks = {}
    for name, r in sorted((a.TaskResources or {}).items()):
        tasks[name] = {
            "Cpu": {"CpuShares": r.CPU or 0},
            "Memory": {"MemoryMB": r.MemoryMB or 0, "MemoryMaxMB": r.MemoryMaxMB or 0},
            "Networks": _builtins(r.Networks),
            "Devices": None,
        }
    shared = a.SharedResources
    if shared is not None:
        disk = shared.DiskMB or 0
    else:   # rows placed before the scheduler kept SharedResources: the group's disk
        disk = (a.Resources.DiskMB or 0) if a.Resources is not None else 0
    ports = a.shared_ports()
    return {"Tasks": tasks,
            "Shared": {"DiskMB": disk,
                       "Networks": _builtins(shared.Networks) if shared else None,
                       "Ports": [msgspec.to_builtins(p) for p in ports] if ports else None}}


def _builtins(value):
    return msgspec.to_builtins(value) if value is not None else None


def full_alloc(a) -> dict:
    """An Allocation as Nomad 1.x serves it: every stored field, ``AllocatedResources``,
    and ``DesiredTransition`` as an object even when never set."""
    out = msgspec.to_builtins(a)
    out["AllocatedResources"] = allocated_resources(a)
    if out.get("DesiredTransition") is None:   # a struct value in Nomad, never null
        out["DesiredTransition"] = {"Migrate": None, "Reschedule": None,
                                    "ForceReschedule": None, "NoShutdownDelay": None}
    return out


class StubFields(msgspec.Struct, frozen=True):
    """Nomad 1.x ``?resources=`` (add AllocatedResources) and ``?task_states=`` (drop
    TaskStates when false) on the allocation list."""
    resources: bool = False
    task_states: bool = True


def stub_fields(request: Request) -> StubFields:
    task_states = request.query_params.get("task_states")
    return StubFields(resources=query_bool(request, "resources"),
                      task_states=parse_bool(task_states, "task_states") if task_states else True)


def stub(a, fields: StubFields | None = None) -> dict:
    """``alloc_stub`` (shared with the job endpoints) with the optional field choices."""
    s = alloc_stub(a)
    if fields is not None:
        if fields.resources:
            s["AllocatedResources"] = allocated_resources(a)
        if not fields.task_states:
            s["TaskStates"] = None
    return s


# --- endpoints ---------------------------------------------------------------------------


async def list_allocs(request: Request):
    check_method(request, GET)
    prefix = query_options(request).prefix
    fields = stub_fields(request)

    def query(state: State):
        allocs = listed(state, t.ALLOCS, prefix)
        return state.table_index(t.ALLOCS), [stub(a, fields) for a in allocs]

    return await blocking_read(request, (t.ALLOCS,), query)


async def read_alloc(request: Request):
    check_method(request, GET)
    alloc_id = require_uuid(request.path_params["alloc_id"])
    return await read_row(request, t.ALLOCS, alloc_id, "alloc not found", render=full_alloc)
