"""The log entry of a scale request (``JobScale``, Nomad's ``Job.Scale``) and the
checks of the request it is built from, shared by the gateway
(``server.http.scale``) and the simulation."""
from __future__ import annotations

from typing import Any

import msgspec

from caravan.fsm import entries as e
from caravan.fsm.structs import ScalingEvent
from caravan.server.entries.jobs import new_eval, wall_clock_ns
from caravan.server.errors import ApiError

_COUNT_MAX = 2 ** 63 - 1     # TaskGroup.Count is a Go int


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
    now = wall_clock_ns() if now_ns is None else now_ns
    event = ScalingEvent(Time=now, Message=req.Message or "", Error=bool(req.Error),
                         Meta=req.Meta)
    ev = None
    if req.Count is not None:
        ev = new_eval(job, "job-scaling", now_ns=now)
    return e.JobScale(JobID=job.ID, Group=(req.Target or {})["Group"], Event=event,
                      Count=req.Count, Eval=ev, JobModifyIndex=req.JobModifyIndex or 0,
                      SubmitTime=now)
