"""``/v1/job/:id/scale`` (Nomad's ``Job.Scale`` and ``Job.ScaleStatus``) and the
scaling policy reads (``/v1/scaling/policies``, ``/v1/scaling/policy/:id``).

A scale request is one log entry (``JobScale``): the FSM checks the job, the group, the
scaling block's bounds and an active deployment against the state it applies to, then
writes the new version, its eval and the scaling event together. Nomad takes three
raft writes for the same, and can leave a new version without its eval.
"""
from __future__ import annotations

from typing import Any

from starlette.requests import Request

from caravan.fsm import schema as t
from caravan.fsm.store import State
from caravan.server.entries.scale import parse_scale_request, scale_entry
from caravan.server.http.common import (
    WRITE_METHODS,
    ApiError,
    agent,
    blocking_read,
    check_method,
    query_options,
    read_json,
    read_row,
)
from caravan.server.http.job_writes import submit, write_reply

GET = ("GET",)


async def job_scale(request: Request, job_id: str):
    if request.method == "GET":
        return await scale_status(request, job_id)
    check_method(request, WRITE_METHODS)
    return await scale_action(request, job_id)


# --- status -----------------------------------------------------------------------------


def scale_status_of(state: State, job_id: str) -> tuple[int, dict | None]:
    """Nomad's ``JobScaleStatus`` and its index: per group the desired count, the
    allocations placed (live, not canaries), running, healthy and unhealthy, and the
    group's scaling events, newest first."""
    job = state.get(t.JOBS, job_id)
    if job is None:
        return state.last_index, None
    events = state.get(t.SCALING_EVENTS, job_id)
    by_group = events.ScalingEvents if events is not None else {}
    groups: dict[str, dict[str, Any]] = {}
    for tg in job.TaskGroups or ():
        groups[tg.Name] = {"Desired": tg.Count or 0, "Placed": 0, "Running": 0, "Healthy": 0,
                           "Unhealthy": 0, "Events": by_group.get(tg.Name)}
    index = max(job.ModifyIndex, events.ModifyIndex if events is not None else 0)
    for a in state.by_index(t.ALLOCS, t.BY_JOB, job_id):
        if a.Job is not None and a.Job.CreateIndex != job.CreateIndex:
            continue          # an earlier job with the same ID
        ds = a.DeploymentStatus
        if (ds is not None and ds.Canary) or a.terminal():
            continue
        status = groups.get(a.TaskGroup)
        if status is None:
            continue
        status["Placed"] += 1
        if a.ClientStatus == "running":
            status["Running"] += 1
        if ds is not None and ds.Healthy is not None:
            status["Healthy" if ds.Healthy else "Unhealthy"] += 1
        index = max(index, a.ModifyIndex)
    return index, {"JobID": job.ID, "Namespace": job.Namespace, "JobCreateIndex": job.CreateIndex,
                   "JobModifyIndex": job.ModifyIndex, "JobStopped": job.Stop,
                   "TaskGroups": groups}


async def scale_status(request: Request, job_id: str):
    return await blocking_read(request, (t.JOBS, t.SCALING_EVENTS, t.ALLOCS),
                               lambda state: scale_status_of(state, job_id),
                               missing="job not found")


# --- scaling ----------------------------------------------------------------------------


async def scale_action(request: Request, job_id: str):
    req = parse_scale_request(await read_json(request), job_id)
    ag = agent(request)
    await ag.raft.read_barrier()
    job = ag.fsm.state.get(t.JOBS, job_id)
    if job is None:
        raise ApiError(404, f'job "{job_id}" not found')
    result = await submit(request, scale_entry(job, req))
    return write_reply(request, {
        "EvalID": result["EvalID"], "EvalCreateIndex": result["EvalCreateIndex"],
        "JobModifyIndex": result["JobModifyIndex"], "Warnings": "", "Index": result["Index"],
        "LastContact": 0, "KnownLeader": True}, result["Index"])


# --- scaling policies ---------------------------------------------------------------------


def policy_stub(p) -> dict:
    return {"ID": p.ID, "Enabled": p.Enabled, "Type": p.Type, "Target": p.Target,
            "CreateIndex": p.CreateIndex, "ModifyIndex": p.ModifyIndex}


def policies(state: State, job: str, kind: str, prefix: str = "") -> list:
    """Nomad's list: by ID, filtered by ID prefix, job (exact) and type (prefix)."""
    rows = state.by_index(t.SCALING_POLICIES, t.BY_JOB, job) if job else \
        state.rows(t.SCALING_POLICIES)
    return sorted((p for p in rows if (not kind or (p.Type or "").startswith(kind))
                   and p.ID.startswith(prefix)), key=lambda p: p.ID)


async def list_policies(request: Request):
    check_method(request, GET)
    job = request.query_params.get("job", "")
    kind = request.query_params.get("type", "")
    prefix = query_options(request).prefix

    def query(state: State):
        return state.table_index(t.SCALING_POLICIES), \
            [policy_stub(p) for p in policies(state, job, kind, prefix)]

    return await blocking_read(request, (t.SCALING_POLICIES,), query)


async def read_policy(request: Request):
    check_method(request, GET)
    return await read_row(request, t.SCALING_POLICIES, request.path_params["policy_id"],
                          "policy not found")
