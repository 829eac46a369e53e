"""Nomad 1.x job validation, with Nomad's message texts.

``validate_job`` mirrors ``structs.Job.Validate`` / ``TaskGroup.Validate`` /
``Task.Validate`` plus the register-time ``jobValidate`` admission hook, and
``Job.Warnings``; ``validate_update`` mirrors ``validateJobUpdate``; ``format_errors``
is go-multierror's ``ListFormatFunc`` (checked against hashicorp/nomad 1.6+ and
hashicorp/go-multierror).

Nomad nests a group's errors inside one "Task group x validation failed: ..." entry whose
text is itself a multierror list. Here every leaf message is its own entry, carrying the
chain of prefixes that says where it came from, e.g.
``Task group cache validation failed: Task redis validation failed: Missing task driver``.

Validation only reads the job and never raises on odd input (null fields, empty lists):
it reports what it finds. Go-formatted values (durations, quoted strings, lists) are
rendered the way Go prints them (``server/jobspec/gofmt.py``), so texts match Nomad's.

This module holds the entry points and the job's own rules; groups, tasks and
constraints are checked in ``validate_groups``, ``validate_tasks`` and
``validate_constraints``, with the shared field readers in ``validate_fields``.
"""
from __future__ import annotations

import re
import zoneinfo
from datetime import UTC, datetime

from caravan.fsm.structs import Job
from caravan.server.jobspec.gofmt import go_list, go_quote
from caravan.server.jobspec.periodic import cron
from caravan.server.jobspec.validate_constraints import constraint_errors, placement_errors
from caravan.server.jobspec.validate_fields import int_of, numbered, prefixed, present
from caravan.server.jobspec.validate_groups import group_errors, group_warnings

JOB_TYPES = ("_core", "service", "batch", "system", "sysbatch")
MIN_PRIORITY, MAX_PRIORITY = 1, 100


def validate_job(job: Job) -> tuple[list[str], list[str]]:
    """(errors, warnings) for a canonicalized job; errors empty means it may be registered."""
    try:
        errors = _job_errors(job)
    except Exception as exc:  # last resort: validation must answer, not crash the request
        errors = [f"internal error while validating job: {exc}"]
    try:
        warnings = _job_warnings(job)
    except Exception:
        warnings = []
    return errors, warnings


def validate_update(old: Job | None, new: Job) -> list[str]:
    """Nomad's rules for replacing ``old`` by ``new`` (validateJobUpdate). Like Nomad,
    it stops at the first broken rule, so the list holds at most one message."""
    if old is None:
        return ["job can't be submitted with 'Dispatched' set"] if new.Dispatched else []
    if old.Type != new.Type:
        return [f"cannot update job from type {go_quote(old.Type)} to {go_quote(new.Type)}"]
    if old.is_periodic() and not new.is_periodic():
        return ["cannot update periodic job to being non-periodic"]
    if new.is_periodic() and not old.is_periodic():
        return ["cannot update non-periodic job to being periodic"]
    if old.is_parameterized() and not new.is_parameterized():
        return ["cannot update parameterized job to being non-parameterized"]
    if new.is_parameterized() and not old.is_parameterized():
        return ["cannot update non-parameterized job to being parameterized"]
    if old.Dispatched != new.Dispatched:
        return ["field 'Dispatched' is read-only"]
    return []


def format_errors(errors: list[str]) -> str:
    """go-multierror's ListFormatFunc text, the body Nomad sends for a failed register."""
    if not errors:
        return ""
    if len(errors) == 1:
        return f"1 error occurred:\n\t* {errors[0]}\n\n"
    points = "\n\t".join(f"* {e}" for e in errors)
    return f"{len(errors)} errors occurred:\n\t{points}\n\n"


def _job_errors(job: Job) -> list[str]:
    errs: list[str] = []
    if not job.Region and job.Multiregion is None:
        errs.append("Missing job region")
    if not job.ID:
        errs.append("Missing job ID")
    elif " " in job.ID:
        errs.append("Job ID contains a space")
    elif "\x00" in job.ID:
        errs.append("Job ID contains a null character")
    if not job.Name:
        errs.append("Missing job name")
    elif "\x00" in job.Name:
        errs.append("Job Name contains a null character")
    if not job.Namespace:
        errs.append("Job must be in a namespace")
    if not job.Type:
        errs.append("Missing job type")
    elif job.Type not in JOB_TYPES:
        errs.append(f"Invalid job type: {go_quote(job.Type)}")
    if not job.Datacenters and job.Multiregion is None:
        errs.append("Missing job datacenters")
    elif any(not dc for dc in job.Datacenters or ()):
        errs.append("Job datacenter must be non-empty string")
    groups = present(job.TaskGroups)
    if not groups:
        errs.append("Missing job task groups")
    errs += numbered("Constraint", job.Constraints, constraint_errors)
    errs += placement_errors(job.Type, job.Affinities, job.Spreads)

    seen: dict[str, int] = {}
    for idx, tg in enumerate(groups):
        name = tg.Name or ""
        if not name:
            errs.append(f"Job task group {idx + 1} missing name")
        elif name in seen:
            errs.append(f"Job task group {idx + 1} redefines '{name}' from group {seen[name] + 1}")
        else:
            seen[name] = idx
        if tg.ShutdownDelay is not None and tg.ShutdownDelay < 0:
            errs.append("ShutdownDelay must be a positive value")
        if job.Type == "system" and int_of(tg.Count) > 1:
            errs.append(f"Job task group {name} has count {int_of(tg.Count)}. "
                        "Count cannot exceed 1 with system scheduler")
    for tg in groups:
        errs += prefixed(f"Task group {tg.Name or ''} validation failed: ", group_errors(job, tg))

    if job.Periodic is not None and job.Periodic.Enabled:
        if job.Type not in ("batch", "sysbatch"):
            errs.append('Periodic can only be used with "batch" or "sysbatch" scheduler')
        errs += _periodic_errors(job)
    if job.is_parameterized():
        if job.Type not in ("batch", "sysbatch"):
            errs.append('Parameterized job can only be used with "batch" or "sysbatch" scheduler')
        errs += _parameterized_errors(job)

    # The register-time admission hook (jobValidate) adds these after Job.Validate.
    if job.Type == "_core":
        errs.append("job type cannot be core")
    if job.Payload:
        errs.append("job can't be submitted with a payload, only dispatched")
    if not MIN_PRIORITY <= int_of(job.Priority) <= MAX_PRIORITY:
        errs.append(f"job priority must be between [{MIN_PRIORITY}, {MAX_PRIORITY}]")
    return errs


def _periodic_errors(job: Job) -> list[str]:
    p = job.Periodic
    errs: list[str] = []
    spec = p.Spec or ""
    if not spec:
        errs.append("Must specify a spec")
    tz = p.TimeZone or ""
    if tz:
        problem = _time_zone_error(tz)
        if problem:
            errs.append(f"Invalid time zone {go_quote(tz)}: {problem}")
    if p.SpecType == "cron":
        if spec:
            problem = _cron_error(spec)
            if problem:
                errs.append(f"Invalid cron spec {go_quote(spec)}: {problem}")
    elif p.SpecType != "_internal_test":
        errs.append(f"Unknown periodic specification type {go_quote(p.SpecType or '')}")
    return errs


def _parameterized_errors(job: Job) -> list[str]:
    cfg = job.ParameterizedJob
    errs: list[str] = []
    if cfg.Payload not in ("optional", "required", "forbidden"):
        errs.append(f"Unknown payload requirement: {go_quote(cfg.Payload)}")
    optional = set(cfg.MetaOptional or ())
    both = [k for k in cfg.MetaRequired or () if k in optional]
    if both:
        errs.append("Required and optional meta keys should be disjoint. "
                    f"Following keys exist in both: {go_list(both)}")
    return errs


_CRON_MACROS = ("@yearly", "@annually", "@monthly", "@weekly", "@daily", "@hourly")
_YEAR_ITEM = re.compile(r"^(\*|(\d{4})(-(\d{4}))?)(/(\d+))?$")


def _cron_error(spec: str) -> str | None:
    """Why cronexpr (the parser Nomad uses) would refuse ``spec``: 5 fields, 6 with a
    trailing year, 7 with a leading seconds field, or a macro such as "@daily"."""
    spec = spec.strip()
    if spec.startswith("@"):
        return None if spec in _CRON_MACROS else f"syntax error in {spec}: unknown macro"
    fields = spec.split()
    if len(fields) < 5:
        return "missing field(s)"
    if len(fields) > 7:
        return "too many fields"
    year = fields[-1] if len(fields) >= 6 else None
    try:
        cron(spec, datetime.now(UTC))
    except Exception as exc:  # croniter raises several error types for bad specs
        return str(exc)
    if year is not None:
        for item in year.split(","):
            m = _YEAR_ITEM.match(item)
            bad = m is None or any(
                g is not None and not 1970 <= int(g) <= 2099 for g in (m.group(2), m.group(4)))
            if bad or (m.group(6) is not None and int(m.group(6)) == 0):
                return f"syntax error in year field: {go_quote(item)}"
    return None


def _time_zone_error(tz: str) -> str | None:
    if tz in ("UTC", "Local"):
        return None
    try:
        zoneinfo.ZoneInfo(tz)
    except Exception:  # ZoneInfoNotFoundError, ValueError for malformed keys
        return f"unknown time zone {tz}"
    return None


def _job_warnings(job: Job) -> list[str]:
    out: list[str] = []
    has_auto, all_auto = False, True
    for tg in present(job.TaskGroups):
        out += prefixed(f'Group "{tg.Name or ""}" has warnings: ', group_warnings(tg))
        if tg.Update is not None:
            has_auto = has_auto or bool(tg.Update.AutoPromote)
            all_auto = all_auto and (int_of(tg.Update.Canary) == 0 or bool(tg.Update.AutoPromote))
    if has_auto and not all_auto:
        out.append("auto_promote must be true for all groups to enable automatic promotion")
    return out
