"""The log entries of the Jobs API's writes, and the checks they are made after.

Each builder takes no request and accepts the time, so the gateway
(``server.http.job_writes``) and the deterministic simulation (``tests/sim``) build
the same entries; every value that is not a function of the state (ids, times, the
eval to create) is decided here, before the entry enters the log.
"""
from __future__ import annotations

import time

from caravan.fsm import entries as e
from caravan.fsm.structs import Evaluation, Job
from caravan.server import ids
from caravan.server.errors import ApiError
from caravan.server.jobspec.canonicalize import canonicalize
from caravan.server.jobspec.validate import format_errors, validate_job, validate_update


def wall_clock_ns() -> int:
    return time.time_ns()


def new_eval(job: Job, triggered_by: str, priority: int | None = None,
             job_id: str | None = None, now_ns: int | None = None) -> Evaluation:
    now = wall_clock_ns() if now_ns is None else now_ns
    return Evaluation(ID=ids.uuid4_str(), Namespace=job.Namespace or "default",
                      Priority=priority or job.Priority or 50, Type=job.Type or "service",
                      TriggeredBy=triggered_by, JobID=job_id or job.ID, Status="pending",
                      CreateTime=now, ModifyTime=now)


def check_job(job: Job, region: str, existing: Job | None) -> list[str]:
    """Canonicalize ``job`` in place and validate it (against the stored job, if any);
    returns the warnings, raises ``ApiError`` 400 naming every problem."""
    canonicalize(job, region=region)
    errors, warnings = validate_job(job)
    # also for a new job: it must not claim to be a dispatched child
    errors += validate_update(existing, job)
    if errors:
        raise ApiError(400, format_errors(errors))
    return warnings


def register_entry(job: Job, *, enforce: bool = False, modify_index: int = 0,
                   preserve_counts: bool = False, eval_priority: int | None = None,
                   now_ns: int | None = None) -> e.JobRegister:
    """The entry a checked registration becomes: the job and, unless it is periodic or
    parameterized, its ``job-register`` eval."""
    now = wall_clock_ns() if now_ns is None else now_ns
    ev = None
    if not job.is_periodic() and not job.is_parameterized():
        ev = new_eval(job, "job-register", eval_priority, now_ns=now)
    return e.JobRegister(Job=job, Eval=ev, EnforceIndex=enforce, JobModifyIndex=modify_index,
                         PreserveCounts=preserve_counts, SubmitTime=now)


def deregister_entry(job: Job, purge: bool, eval_priority: int | None = None,
                     now_ns: int | None = None) -> e.JobDeregister:
    now = wall_clock_ns() if now_ns is None else now_ns
    return e.JobDeregister(JobID=job.ID, Purge=purge,
                           Eval=new_eval(job, "job-deregister", eval_priority, now_ns=now),
                           SubmitTime=now)


def dispatch_entry(parent: Job, meta: dict[str, str] | None, payload: bytes | None,
                   token: str = "", prefix: str = "",
                   now_ns: int | None = None) -> e.JobDispatch:
    """A dispatch of a checked parameterized ``parent``: the child's id and eval."""
    now = wall_clock_ns() if now_ns is None else now_ns
    child_id = _dispatch_id(parent.ID, prefix, now)
    return e.JobDispatch(ParentID=parent.ID, DispatchedJobID=child_id, Meta=meta,
                         Payload=payload, IdempotencyToken=token,
                         Eval=new_eval(parent, "job-register", job_id=child_id, now_ns=now),
                         SubmitTime=now)


def _dispatch_id(parent_id: str, prefix: str, now_ns: int) -> str:
    middle = f"{prefix}-" if prefix else ""
    return f"{parent_id}/dispatch-{middle}{now_ns // 1_000_000_000}-{ids.short_hex(4)}"
