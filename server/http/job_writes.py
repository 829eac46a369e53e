"""Write endpoints of the Jobs API: each request becomes exactly one log entry.

The handler parses, canonicalizes and validates, decides every value that is not a
function of the state (ids, times, the eval to create), builds the entry and waits for
it to be applied here. Checks that need the state at apply time (check-and-set, the
parent of a dispatch) are made again by the FSM, which answers with a rejection.

The checks and the entry builders live in ``server.entries.jobs`` (no request, the
time accepted), so the deterministic simulation (``tests/sim``) builds its writes
exactly as the gateway does.
"""
from __future__ import annotations

import base64
import binascii
import re

from starlette.requests import Request
from starlette.responses import Response

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.jobs import dispatch_rejection
from caravan.fsm.scaling import with_policy_ids
from caravan.fsm.structs import Job
from caravan.fsm.submit import Applied
from caravan.scheduler.api import dry_run
from caravan.server import ids
from caravan.server.entries.jobs import (
    check_job,
    deregister_entry,
    dispatch_entry,
    new_eval,
    register_entry,
    wall_clock_ns,
)
from caravan.server.http.common import (
    ApiError,
    agent,
    body_value,
    consistent_state,
    convert,
    json_response,
    parse_bool,
    query_bool,
    read_json,
)
from caravan.server.http.job_reads import alloc_stub, require_job
from caravan.server.jobspec.canonicalize import canonicalize, inherit_job_migrate
from caravan.server.jobspec.diff import job_diff
from caravan.server.jobspec.periodic import next_launch_rfc3339
from caravan.server.jobspec.validate import format_errors, validate_job

DISPATCH_PAYLOAD_LIMIT = 16 * 1024


async def submit(request: Request, body: e.Request) -> Applied:
    """Apply one entry and return its answer; a refusal raises ``EntryRejected``,
    which the app answers with its status (``server.http.app``)."""
    ag = agent(request)
    with ag.client_writes.writing():   # the leader's extra workers wait meanwhile
        return await ag.submit(body, hold=True)


def write_reply(request: Request, payload: dict, index: int) -> Response:
    return json_response(payload, index=index, request=request, read=False)


# --- register -------------------------------------------------------------------------------


def _job_from_body(raw, path_id: str | None) -> tuple[Job, dict]:
    """Accept ``{"Job": {...}, ...}`` or, as the ``curl --data @my-job.json`` example of
    Nomad's Jobs API documentation does, the bare job object."""
    if not isinstance(raw, dict):
        raise ApiError(400, "Request body must be a JSON object")
    if "Job" in raw:
        job_raw, opts = raw["Job"], raw
    elif any(k in raw for k in ("ID", "Name", "TaskGroups", "Type")):
        job_raw, opts = raw, {}
    else:
        job_raw, opts = None, raw
    if job_raw is None:
        raise ApiError(400, "Job must be specified")
    job = convert(job_from_request(job_raw), Job, "Job")
    if not job.ID:
        raise ApiError(400, "Job ID hasn't been provided")
    if path_id is not None and job.ID != path_id:
        raise ApiError(400, "Job ID does not match name")
    return job, opts


def job_from_request(job_raw):
    """The job object of a request, its job-level ``Migrate`` block (an ``api.Job``
    field) handed down to the groups as Nomad's agent does before storing the job."""
    if isinstance(job_raw, dict) and not isinstance(job_raw.get("Migrate"), (dict, type(None))):
        raise ApiError(400, f"Job: Expected `object | null`, got "
                            f"`{type(job_raw['Migrate']).__name__}` - at `Migrate`")
    return inherit_job_migrate(job_raw)


def _check_job(request: Request, job: Job) -> tuple[Job | None, list[str]]:
    """Canonicalize and validate; returns the stored job (if any) and the warnings."""
    existing = agent(request).fsm.state.get(t.JOBS, job.ID)
    return existing, check_job(job, agent(request).config.cluster.region, existing)


def _enforce_index(opts: dict) -> tuple[bool, int]:
    enforce = body_value(opts, "EnforceIndex", False)
    if not isinstance(enforce, (bool, int)):
        raise ApiError(400, f"EnforceIndex: expected a bool, got {enforce!r}")
    index = body_value(opts, "JobModifyIndex", 0)
    if isinstance(index, bool) or not isinstance(index, int) or index < 0:
        raise ApiError(400, f"JobModifyIndex: expected a non-negative integer, got {index!r}")
    return bool(enforce), index


def _bool_option(opts: dict, name: str) -> bool:
    value = body_value(opts, name, False)
    if not isinstance(value, bool):
        raise ApiError(400, f"{name}: expected a bool, got {value!r}")
    return value


def _eval_priority(value, where: str) -> int | None:
    if value in (None, 0, ""):
        return None
    try:
        p = int(value)
    except (TypeError, ValueError):
        raise ApiError(400, f"{where}: expected an integer, got {value!r}") from None
    if isinstance(value, bool) or not 1 <= p <= 100:
        raise ApiError(400, f"{where}: eval priority must be between [1, 100], got {value!r}")
    return p


async def register(request: Request, path_id: str | None = None):
    job, opts = _job_from_body(await read_json(request), path_id)
    _, warnings = _check_job(request, job)
    enforce, modify_index = _enforce_index(opts)
    result = await submit(request, register_entry(
        job, enforce=enforce, modify_index=modify_index,
        preserve_counts=_bool_option(opts, "PreserveCounts"),
        eval_priority=_eval_priority(opts.get("EvalPriority"), "EvalPriority")))
    return write_reply(request, {
        "EvalID": result["EvalID"], "EvalCreateIndex": result["EvalCreateIndex"],
        "JobModifyIndex": result["JobModifyIndex"], "Warnings": "\n".join(warnings),
        "Index": result["Index"], "LastContact": 0, "KnownLeader": True}, result["Index"])


# --- deregister, evaluate, stable, revert -------------------------------------------------------


def _query_eval_priority(request: Request) -> int | None:
    """``?eval_priority=``: Nomad's Go client always sends it, ``0`` when unset, and
    Nomad ignores any value <= 0; a larger one must be within [1, 100]."""
    value = request.query_params.get("eval_priority", "")
    if not value:
        return None
    if not re.fullmatch(r"[+-]?[0-9]+", value):   # Go's strconv.Atoi
        raise ApiError(400, f"eval_priority: expected an integer, got {value!r}")
    p = int(value)
    return _eval_priority(p, "eval_priority") if p > 0 else None


async def deregister(request: Request, job_id: str):
    purge = query_bool(request, "purge")
    # one region here: a global deregister is the local one, but the flag must parse
    query_bool(request, "global")
    priority = _query_eval_priority(request)
    state = await consistent_state(request)
    job = state.get(t.JOBS, job_id)
    if job is None:
        # Nomad 1.x: deregistering an unknown job succeeds and changes nothing.
        return write_reply(request, {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0,
                                     "Index": state.last_index, "LastContact": 0,
                                     "KnownLeader": True}, state.last_index)
    result = await submit(request, deregister_entry(job, purge, priority))
    return write_reply(request, {
        "EvalID": result["EvalID"], "EvalCreateIndex": result["EvalCreateIndex"],
        "JobModifyIndex": result["JobModifyIndex"], "Index": result["Index"],
        "LastContact": 0, "KnownLeader": True}, result["Index"])


def _check_body_job_id(body: dict | None, job_id: str, required: bool,
                       missing_msg: str) -> None:
    body_id = (body or {}).get("JobID")
    if not body_id:
        if required:
            raise ApiError(400, missing_msg)
        return
    if body_id != job_id:
        raise ApiError(400, "Job ID does not match")


async def evaluate(request: Request, job_id: str):
    body = await read_json(request, required=False)
    if body is not None and not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    _check_body_job_id(body, job_id, False, "")
    force = _force_reschedule(body)
    job = require_job(await consistent_state(request), job_id)
    result = await submit(request, e.JobEvaluate(JobID=job_id, Eval=new_eval(job, "job-eval"),
                                                 ForceReschedule=force))
    return write_reply(request, {
        "EvalID": result["EvalID"], "EvalCreateIndex": result["EvalCreateIndex"],
        "JobModifyIndex": result["JobModifyIndex"], "Index": result["Index"]}, result["Index"])


def _force_reschedule(body: dict | None) -> bool:
    """``EvalOptions.ForceReschedule`` of a ``JobEvaluateRequest`` body."""
    opts = (body or {}).get("EvalOptions")
    if opts is None:
        return False
    if not isinstance(opts, dict):
        raise ApiError(400, f"EvalOptions: expected an object, got {opts!r}")
    force = opts.get("ForceReschedule", False)
    if force is None:
        return False
    if not isinstance(force, bool):
        raise ApiError(400, f"EvalOptions.ForceReschedule: expected a bool, got {force!r}")
    return force


def _version_field(body: dict, name: str, required: bool = True) -> int | None:
    value = body.get(name)
    if value is None and not required:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        if value is None:
            return 0
        raise ApiError(400, f"{name}: expected a non-negative integer, got {value!r}")
    return value


async def stable(request: Request, job_id: str):
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    _check_body_job_id(body, job_id, True, "JobID must be specified")
    flag = body_value(body, "Stable", False)
    if not isinstance(flag, bool):
        raise ApiError(400, f"Stable: expected a bool, got {flag!r}")
    result = await submit(request, e.JobStability(
        JobID=job_id, JobVersion=_version_field(body, "JobVersion"), Stable=flag))
    return write_reply(request, {"Index": result["Index"],
                                 "JobModifyIndex": result["JobModifyIndex"]}, result["Index"])


async def revert(request: Request, job_id: str):
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    _check_body_job_id(body, job_id, True, "JobID must be specified")
    version = _version_field(body, "JobVersion")
    prior = _version_field(body, "EnforcePriorVersion", required=False)
    state = await consistent_state(request)
    current = state.get(t.JOBS, job_id)
    if current is None:
        raise ApiError(404, f'job "{job_id}" not found')
    target = state.get(t.JOB_VERSIONS, (job_id, version))
    ev = None
    if target is not None and not target.is_periodic() and not target.is_parameterized():
        ev = new_eval(target, "job-register")
    result = await submit(request, e.JobRevert(JobID=job_id, JobVersion=version,
                                               EnforcePriorVersion=prior, Eval=ev,
                                               SubmitTime=wall_clock_ns()))
    return write_reply(request, {
        "EvalID": result["EvalID"], "EvalCreateIndex": result["EvalCreateIndex"],
        "JobModifyIndex": result["JobModifyIndex"], "Warnings": "", "Index": result["Index"],
        "LastContact": 0, "KnownLeader": True}, result["Index"])


# --- dispatch and periodic force -----------------------------------------------------------------


async def dispatch(request: Request, job_id: str):
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    _check_body_job_id(body, job_id, False, "")
    meta = body.get("Meta")
    if isinstance(meta, dict):   # a null value is Go's zero value, as in a job's Meta
        meta = {k: "" if v is None else v for k, v in meta.items()}
    if meta is not None and (not isinstance(meta, dict) or
                             not all(isinstance(v, str) for v in meta.values())):
        raise ApiError(400, "Meta: expected an object of string values")
    payload = None
    raw_payload = body.get("Payload")
    if raw_payload not in (None, ""):
        if not isinstance(raw_payload, str):
            raise ApiError(400, "Payload: expected a base64-encoded string")
        try:
            # Go's base64 decoder (encoding/json []byte) skips line breaks, as
            # MIME-style encoders (Python's base64.encodebytes) emit them
            payload = base64.b64decode(raw_payload.replace("\r", "").replace("\n", ""),
                                       validate=True)
        except (binascii.Error, ValueError):
            raise ApiError(400, "Payload: not valid base64") from None
        if len(payload) > DISPATCH_PAYLOAD_LIMIT:
            raise ApiError(400, f"Payload exceeds maximum size; {len(payload)} > "
                                f"{DISPATCH_PAYLOAD_LIMIT}")
    prefix = body.get("IdPrefixTemplate") or ""
    if not isinstance(prefix, str) or "/" in prefix:
        raise ApiError(400, "IdPrefixTemplate: expected a string without '/'")
    token = request.query_params.get("idempotency_token", "")
    parent = (await consistent_state(request)).get(t.JOBS, job_id)
    rejection = dispatch_rejection(parent, job_id, meta, payload)
    if rejection is not None:
        raise ApiError(rejection.code, rejection.message)
    result = await submit(request, dispatch_entry(parent, meta, payload, token, prefix))
    return write_reply(request, {
        "Index": result["Index"], "JobCreateIndex": result["JobCreateIndex"],
        "EvalCreateIndex": result["EvalCreateIndex"], "EvalID": result["EvalID"],
        "DispatchedJobID": result["DispatchedJobID"]}, result["Index"])


async def periodic_force(request: Request, job_id: str):
    parent = require_job(await consistent_state(request), job_id)
    launch = wall_clock_ns()
    result = await submit(request, e.PeriodicForce(
        ParentID=job_id, LaunchTime=launch, Eval=new_eval(parent, "periodic-job")))
    return write_reply(request, {"EvalID": result["EvalID"],
                                 "EvalCreateIndex": result["EvalCreateIndex"],
                                 "Index": result["Index"]}, result["Index"])


# --- plan and validate -------------------------------------------------------------------------------


async def plan(request: Request, job_id: str):
    raw = await read_json(request)
    if not isinstance(raw, dict) or raw.get("Job") is None:
        raise ApiError(400, "Job must be specified")
    job = convert(job_from_request(raw["Job"]), Job, "Job")
    if not job.ID:
        raise ApiError(400, "Job must have a valid ID")
    if job.ID != job_id:
        raise ApiError(400, "Job ID does not match")
    want_diff = body_value(raw, "Diff", False)
    if not isinstance(want_diff, bool):
        want_diff = parse_bool(str(want_diff), "Diff")
    existing, warnings = _check_job(request, job)
    diff = None
    if want_diff:
        # scaling blocks compared as the state would keep them (ID and target filled)
        diff = job_diff(existing, with_policy_ids(job, existing, 0), contextual=True)
    modify_index = existing.JobModifyIndex if existing else 0
    ag = agent(request)
    result, ev = dry_run(await consistent_state(request), job,
                         tracked_versions=ag.config.cluster.job_tracked_versions,
                         now_ns=wall_clock_ns(), eval_id=ids.uuid4_str())
    done = next((x for x in result.evals if x.ID == ev.ID), None)
    created = [x for x in result.evals if x.ID != ev.ID]   # e.g. the blocked eval
    return write_reply(request, {
        "Index": modify_index, "JobModifyIndex": modify_index, "Diff": diff,
        "Annotations": {"DesiredTGUpdates": result.desired_tg_updates or None,
                        "PreemptedAllocs": [alloc_stub(a) for a in result.preempted_allocs]
                        or None},
        "FailedTGAllocs": done.FailedTGAllocs if done is not None else None,
        "CreatedEvals": created or None,
        "NextPeriodicLaunch": next_launch_rfc3339(job, wall_clock_ns()),
        "Warnings": "\n".join(warnings)}, modify_index)


async def validate(request: Request):
    raw = await read_json(request)
    if not isinstance(raw, dict) or raw.get("Job") is None:
        raise ApiError(400, "Job must be specified")
    job = convert(job_from_request(raw["Job"]), Job, "Job")
    canonicalize(job, region=agent(request).config.cluster.region)
    errors, warnings = validate_job(job)
    return write_reply(request, {
        "DriverConfigValidated": True, "ValidationErrors": errors,
        "Error": format_errors(errors) if errors else "", "Warnings": "\n".join(warnings)},
        agent(request).fsm.state.last_index)
