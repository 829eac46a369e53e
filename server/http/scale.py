"""``/v1/job/:id/scale`` (Nomad's ``Job.Scale`` and ``Job.ScaleStatus``) and the
scaling policy reads (``/v1/scaling/policies``, ``/v1/scaling/policy/:id``).

A scale request is one log entry (``JobScale``): the FSM checks the job, the group, the
scaling block's bounds and an active deployment against the state it applies to, then
writes the new version, its eval and the scaling event together. Nomad takes three
raft writes for the same, and can leave a new version without its eval.
"""
from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.store import State
from caravan.fsm.structs import ScalingEvent
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
from caravan.server.http.job_writes import _now_ns, new_eval, submit, write_reply

GET = ("GET",)
_COUNT_MAX = 2 ** 63 - 1     # TaskGroup.Count is a Go int


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
    for a in state.by_index(t.ALLOCS, "job", job_id):
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


class ScalingRequest(msgspec.Struct, kw_only=True):
    """``api.ScalingRequest`` (plus the check-and-set fields of Nomad's
    ``JobScaleRequest``); null is read as unset, as Go does."""
    Count: int | None = None
    Target: dict[str, str] | None = None
    Message: str | None = None
    Error: bool | None = None
    Meta: dict[str, Any] | None = None
    PolicyOverride: bool | None = None
    EnforceIndex: bool | None = None
    JobModifyIndex: int | None = None
    Region: str | None = None
    Namespace: str | None = None
    SecretID: str | None = None


def parse_scale_request(raw: Any, job_id: str) -> ScalingRequest:
    """The checks of Nomad's HTTP handler and ``JobScaleRequest.Validate``, in order;
    a 400 naming the field otherwise."""
    if not isinstance(raw, dict):
        raise ApiError(400, "Request body must be a JSON object")
    try:
        req = msgspec.convert(raw, ScalingRequest)
    except msgspec.ValidationError as exc:
        raise ApiError(400, str(exc).replace("`$.", "`")) from None
    target = req.Target or {}
    target_job = target.get("Job", "")
    if target_job and target_job != job_id:
        raise ApiError(400, "job ID in payload did not match URL")
    namespace = target.get("Namespace", "")
    if namespace and namespace != "default":
        raise ApiError(400, "namespace in payload did not match header")
    if not target.get("Group"):
        raise ApiError(400, "missing task group name for scaling action")
    if req.Count is not None:
        if req.Count < 0:
            raise ApiError(400, "scaling action count can't be negative")
        if req.Error:
            raise ApiError(400, "scaling action should not contain count if error is true")
        if req.Count > _COUNT_MAX:
            raise ApiError(400, f"new scaling count is too large for TaskGroup.Count (int): "
                                f"{req.Count}")
    if req.JobModifyIndex is not None and req.JobModifyIndex < 0:
        raise ApiError(400, f"JobModifyIndex: expected a non-negative integer, got "
                            f"{req.JobModifyIndex}")
    return req


def scale_entry(job, req: ScalingRequest, now_ns: int | None = None) -> e.JobScale:
    """The entry a checked scale request becomes: the event's time and the eval (used
    only when the count changes) are decided here."""
    now = _now_ns() if now_ns is None else now_ns
    event = ScalingEvent(Time=now, Message=req.Message or "", Error=bool(req.Error),
                         Meta=req.Meta)
    ev = None
    if req.Count is not None:
        ev = new_eval(job, "job-scaling", now_ns=now)
    return e.JobScale(JobID=job.ID, Group=(req.Target or {})["Group"], Event=event,
                      Count=req.Count, Eval=ev, JobModifyIndex=req.JobModifyIndex or 0,
                      SubmitTime=now)


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
    rows = state.by_index(t.SCALING_POLICIES, "job", job) if job else \
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
