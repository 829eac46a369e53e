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
rendered the way Go prints them, so texts match Nomad's.
"""
from __future__ import annotations

import json
import posixpath
import re
import zoneinfo
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import Any

from caravan.fsm.durations import go_duration
from caravan.fsm.structs import (
    Affinity,
    Constraint,
    Job,
    LogConfig,
    NetworkResource,
    ReschedulePolicy,
    Resources,
    RestartPolicy,
    ScalingPolicy,
    Service,
    ServiceCheck,
    Spread,
    Task,
    TaskArtifact,
    TaskGroup,
    Template,
    UpdateStrategy,
    VolumeRequest,
)
from caravan.server.jobspec.periodic import cron

SECOND = 1_000_000_000
JOB_TYPES = ("_core", "service", "batch", "system", "sysbatch")
MIN_PRIORITY, MAX_PRIORITY = 1, 100
MIN_CPU, MIN_MEMORY_MB, MIN_DISK_MB = 1, 10, 10
RESTART_MIN_INTERVAL = 5 * SECOND
# Nomad's ReschedulePolicyMinDelay is 5s; Caravan allows delays down to 1s so that a
# crash loop can be watched being rescheduled within seconds (tests, demos).
RESCHEDULE_MIN_DELAY = 1 * SECOND
RESCHEDULE_MIN_INTERVAL = 15 * SECOND
DELAY_FUNCTIONS = ("constant", "exponential", "fibonacci")
MIN_CHECK_INTERVAL = MIN_CHECK_TIMEOUT = 1 * SECOND
MAX_PORT = 65535
LIFECYCLE_HOOKS = ("prestart", "poststart", "poststop")


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
        return [f"cannot update job from type {_q(old.Type)} to {_q(new.Type)}"]
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


# --- job -------------------------------------------------------------------------------


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
        errs.append(f"Invalid job type: {_q(job.Type)}")
    if not job.Datacenters and job.Multiregion is None:
        errs.append("Missing job datacenters")
    elif any(not dc for dc in job.Datacenters or ()):
        errs.append("Job datacenter must be non-empty string")
    groups = _items(job.TaskGroups)
    if not groups:
        errs.append("Missing job task groups")
    errs += _numbered("Constraint", job.Constraints, _constraint_errors)
    errs += _placement_errors(job.Type, job.Affinities, job.Spreads)

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
        if job.Type == "system" and _n(tg.Count) > 1:
            errs.append(f"Job task group {name} has count {_n(tg.Count)}. "
                        "Count cannot exceed 1 with system scheduler")
    for tg in groups:
        errs += _prefixed(f"Task group {tg.Name or ''} validation failed: ", _group_errors(job, tg))

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
    if not MIN_PRIORITY <= _n(job.Priority) <= MAX_PRIORITY:
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
            errs.append(f"Invalid time zone {_q(tz)}: {problem}")
    if p.SpecType == "cron":
        if spec:
            problem = _cron_error(spec)
            if problem:
                errs.append(f"Invalid cron spec {_q(spec)}: {problem}")
    elif p.SpecType != "_internal_test":
        errs.append(f"Unknown periodic specification type {_q(p.SpecType or '')}")
    return errs


def _parameterized_errors(job: Job) -> list[str]:
    cfg = job.ParameterizedJob
    errs: list[str] = []
    if cfg.Payload not in ("optional", "required", "forbidden"):
        errs.append(f"Unknown payload requirement: {_q(cfg.Payload)}")
    optional = set(cfg.MetaOptional or ())
    both = [k for k in cfg.MetaRequired or () if k in optional]
    if both:
        errs.append("Required and optional meta keys should be disjoint. "
                    f"Following keys exist in both: {_go_list(both)}")
    return errs


def _placement_errors(job_type: str | None, affinities: Any, spreads: Any) -> list[str]:
    """Affinities and spreads of a job, group or task: none for system jobs, else each
    valid ("Affinity 2 validation failed: ...")."""
    if job_type == "system":
        errs = []
        if affinities is not None:
            errs.append("System jobs may not have an affinity block")
        if spreads is not None:
            errs.append("System jobs may not have a spread block")
        return errs
    return _numbered("Affinity", affinities, _affinity_errors) + \
        _numbered("Spread", spreads, _spread_errors)


def _affinity_errors(a: Affinity) -> list[str]:
    """``Affinity.Validate``: a known operand with the RTarget it needs, an LTarget,
    and a weight in [-100, 100] other than 0."""
    errs: list[str] = []
    if not a.Operand:
        errs.append("Missing affinity operand")
    if a.Operand in _SET_OPERANDS:
        if not a.RTarget:
            errs.append("Set contains operators require an RTarget")
    elif a.Operand == "regexp":
        try:
            re.compile(a.RTarget)
        except re.error as exc:
            errs.append(f"Regular expression failed to compile: error parsing regexp: {exc}")
    elif a.Operand in ("version", "semver"):
        problem = version_constraint_error(a.RTarget, semver=a.Operand == "semver")
        if problem:
            kind = "Version" if a.Operand == "version" else "Semver"
            errs.append(f"{kind} affinity is invalid: {problem}")
    elif a.Operand in _COMPARE_OPERANDS:
        if not a.RTarget:
            errs.append(f"Operator {_q(a.Operand)} requires an RTarget")
    elif a.Operand:
        errs.append(f"Unknown affinity operator {_q(a.Operand)}")
    if not a.LTarget:
        errs.append("No LTarget provided but is required")
    weight = _n(a.Weight)
    if weight == 0:
        errs.append("Affinity weight cannot be zero")
    if not -100 <= weight <= 100:
        errs.append("Affinity weight must be within the range [-100,100]")
    return errs


def _spread_errors(s: Spread) -> list[str]:
    """``Spread.Validate``: an attribute, a weight in (0, 100], distinct target values
    with percentages in [0, 100] that sum to at most 100."""
    errs: list[str] = []
    if not s.Attribute:
        errs.append("Missing spread attribute")
    if not 0 < _n(s.Weight) <= 100:
        errs.append("Spread block must have a positive weight from 0 to 100")
    seen: set[str] = set()
    total = 0
    for target in _items(s.SpreadTarget):
        if target.Value in seen:
            errs.append(f"Spread target value {_q(target.Value)} already defined")
        seen.add(target.Value)
        if not 0 <= target.Percent <= 100:
            errs.append(f"Spread target percentage for value {_q(target.Value)} "
                        "must be between 0 and 100")
        total += target.Percent
    if total > 100:
        errs.append(f"Sum of spread target percentages must not be greater than 100%; "
                    f"got {total}%")
    return errs


# --- groups ----------------------------------------------------------------------------


def _group_errors(job: Job, tg: TaskGroup) -> list[str]:
    errs: list[str] = []
    name = tg.Name or ""
    if not name:
        errs.append("Missing task group name")
    elif "\x00" in name:
        errs.append("Task group name contains null character")
    if _n(tg.Count) < 0:
        errs.append("Task group count can't be negative")
    tasks = _items(tg.Tasks)
    if not tasks:
        errs.append("Missing tasks for task group")
    errs += _numbered("Constraint", tg.Constraints, _constraint_errors)
    errs += _placement_errors(job.Type, tg.Affinities, tg.Spreads)

    if tg.RestartPolicy is None:
        errs.append(f"Task Group {name} should have a restart policy")
    else:
        errs += _restart_errors(tg.RestartPolicy)
    if job.Type == "system" and tg.ReschedulePolicy is not None:
        errs.append("System jobs should not have a reschedule policy")
    elif job.Type != "system" and tg.ReschedulePolicy is None:
        errs.append(f"Task Group {name} should have a reschedule policy")
    elif tg.ReschedulePolicy is not None:
        errs += _prefixed("Reschedule policy: ", _reschedule_errors(tg.ReschedulePolicy))
    if tg.EphemeralDisk is None:
        errs.append(f"Task Group {name} should have an ephemeral disk object")
    elif _n(tg.EphemeralDisk.SizeMB) < MIN_DISK_MB:
        errs.append(f"minimum DiskMB value is {MIN_DISK_MB}; got {_n(tg.EphemeralDisk.SizeMB)}")
    if tg.Update is not None:
        if job.Type not in ("service", "system"):
            errs.append(f"Job type {_q(job.Type or '')} does not allow update block")
        errs += _update_errors(tg.Update)
    if job.Type != "service" and tg.Migrate is not None:
        errs.append(f"Job type {_q(job.Type or '')} does not allow migrate block")

    seen: dict[str, int] = {}
    for idx, task in enumerate(tasks):
        if not task.Name:
            errs.append(f"Task {idx + 1} missing name")
        elif task.Name in seen:
            errs.append(f"Task {idx + 1} redefines '{task.Name}' from task {seen[task.Name] + 1}")
        else:
            seen[task.Name] = idx
    if sum(1 for t in tasks if t.Leader) > 1:
        errs.append("Only one task may be marked as leader")
    canaries = _n(tg.Update.Canary) if tg.Update is not None else 0
    for vname, req in sorted((tg.Volumes or {}).items()):
        errs += _prefixed(f"Task group volume validation for {vname} failed: ",
                          _volume_errors(req, canaries))
    for task in tasks:
        for idx, mount in enumerate(_items(task.VolumeMounts)):
            if not mount.Volume:
                errs.append(f"Task {_s(task.Name)} has a volume mount ({idx}) referencing an "
                            "empty volume")
            elif mount.Volume not in (tg.Volumes or {}):
                errs.append(f"Task {_s(task.Name)} has a volume mount ({idx}) referencing "
                            f"undefined volume {mount.Volume}")

    if tg.Scaling is not None:
        errs += _prefixed("Task group scaling policy validation failed: ",
                          _scaling_errors(tg.Scaling, _n(tg.Count)))
    errs += _prefixed("Task group network validation failed: ", _network_errors(tg))
    errs += _prefixed("Task group service validation failed: ", _group_service_errors(tg))
    errs += _prefixed("Task group service check validation failed: ", [
        f"Service [{name}]->{svc.Name} or Check {chk.Name} must specify task parameter"
        for svc in _items(tg.Services) for chk in _items(svc.Checks) if chk.Type == "script"])
    for task in tasks:
        errs += _prefixed(f"Task {_s(task.Name)} validation failed: ", _task_errors(job, tg, task))
    return errs


def _scaling_errors(p: ScalingPolicy, count: int) -> list[str]:
    """``TaskGroup.validateScalingPolicy`` with ``ScalingPolicy.Validate``."""
    errs: list[str] = []
    low, high = _n(p.Min), p.Max if p.Max is not None else -1
    if not p.Type:
        errs.append("missing scaling policy type")
    elif p.Type != "horizontal":
        errs.append(f"scaling policy type {_q(p.Type)} is not valid for a task group")
    if high < 0:
        errs.append("maximum count must be specified and non-negative")
    elif high < low:
        errs.append("maximum count must not be less than minimum count")
    if low < 0:
        errs.append("minimum count must not be negative")
    errs = [f"Scaling policy invalid: {e}" for e in errs]
    if high < count:
        errs.append("Scaling policy invalid: task group count must not be greater than maximum "
                    "count in scaling policy")
    if count < low:
        errs.append("Scaling policy invalid: task group count must not be less than minimum "
                    "count in scaling policy")
    return errs


def _volume_errors(req: VolumeRequest | None, canaries: int) -> list[str]:
    """``VolumeRequest.Validate`` for host volumes (CSI volumes are not supported)."""
    if req is None:
        return ["volume is null"]
    if req.Type != "host":
        if req.Type == "csi":
            return ["volume type csi is not supported by this cluster (host volumes only)"]
        return [f"volume has unrecognized type {req.Type}"]
    errs: list[str] = []
    if req.AttachmentMode:
        errs.append("host volumes cannot have an attachment mode")
    if req.AccessMode:
        errs.append("host volumes cannot have an access mode")
    if req.PerAlloc and canaries > 0:
        errs.append("volume cannot be per_alloc when canaries are in use")
    if not req.Source:
        errs.append("volume has an empty source")
    return errs


def _restart_errors(rp: RestartPolicy) -> list[str]:
    errs: list[str] = []
    mode, attempts = rp.Mode or "", _n(rp.Attempts)
    interval, delay = _n(rp.Interval), _n(rp.Delay)
    if mode not in ("delay", "fail"):
        errs.append(f"Unsupported restart mode: {_q(mode)}")
    if attempts == 0 and mode != "fail":
        errs.append(f"Restart policy {_q(mode)} with {attempts} attempts is ambiguous")
    if interval < RESTART_MIN_INTERVAL:
        errs.append(f"Interval can not be less than {go_duration(RESTART_MIN_INTERVAL)} "
                    f"(got {go_duration(interval)})")
    if attempts * delay > interval:
        errs.append(f"Nomad can't restart the TaskGroup {attempts} times in an interval of "
                    f"{go_duration(interval)} with a delay of {go_duration(delay)}")
    return errs


def _reschedule_errors(rp: ReschedulePolicy) -> list[str]:
    """``ReschedulePolicy.Validate`` (a disabled policy is never wrong)."""
    attempts, interval, unlimited = _n(rp.Attempts), _n(rp.Interval), bool(rp.Unlimited)
    delay, max_delay, function = _n(rp.Delay), _n(rp.MaxDelay), rp.DelayFunction or ""
    if attempts < 0:
        return [f"Attempts cannot be negative (got {attempts})"]
    if not (attempts > 0 or unlimited):
        return []
    errs: list[str] = []
    if attempts > 0:
        if interval <= 0:
            errs.append("Interval must be a non zero value if Attempts > 0")
        if unlimited:
            errs.append(f"Reschedule Policy with Attempts = {attempts}, Interval = "
                        f"{go_duration(interval)}, and Unlimited = true is ambiguous")
            errs.append("If Attempts >0, Unlimited cannot also be set to true")
    checked = True
    if delay < RESCHEDULE_MIN_DELAY:
        errs.append(f"Delay cannot be less than {go_duration(RESCHEDULE_MIN_DELAY)} "
                    f"(got {go_duration(delay)})")
        checked = False
    if function not in DELAY_FUNCTIONS:
        errs.append(f"Invalid delay function {_q(function)}, must be one of "
                    f"[{' '.join(_q(f) for f in DELAY_FUNCTIONS)}]")
        checked = False
    if function != "constant":
        if max_delay < RESCHEDULE_MIN_DELAY:
            errs.append(f"Max Delay cannot be less than {go_duration(RESCHEDULE_MIN_DELAY)} "
                        f"(got {go_duration(max_delay)})")
            checked = False
        if max_delay < delay:
            errs.append(f"Max Delay cannot be less than Delay {go_duration(delay)} "
                        f"(got {go_duration(max_delay)})")
            checked = False
    if not unlimited:
        if interval < RESCHEDULE_MIN_INTERVAL:
            errs.append(f"Interval cannot be less than {go_duration(RESCHEDULE_MIN_INTERVAL)} "
                        f"(got {go_duration(interval)})")
        if checked:
            errs += _viable_attempts_errors(attempts, interval, delay, max_delay, function)
    return errs


def _viable_attempts_errors(attempts: int, interval: int, delay: int, max_delay: int,
                            function: str) -> list[str]:
    """``validateDelayParams``: can ``attempts`` reschedulings fit in ``interval``?"""
    possible, recommended, valid = 0, 0, True
    if function == "constant":
        recommended = attempts * delay
        if interval < recommended:
            possible, valid = interval // delay, False
    elif function == "exponential":
        for i in range(attempts):
            nxt = (2 ** i) * delay
            if nxt > max_delay:
                recommended += max_delay
            else:
                recommended = nxt
            if recommended < interval:
                possible += 1
        valid = possible >= attempts
    else:   # fibonacci
        slots = [delay, delay]
        ceiling = False
        for i in range(2, attempts):
            if ceiling:
                nxt = slots[i - 1] + max_delay
            else:
                nxt = slots[i - 1] + slots[i - 2]
                if nxt > max_delay:
                    nxt, ceiling = max_delay, True
            slots.append(nxt)
        recommended = slots[-1]
        if interval < recommended:
            valid = False
            possible = next((i for i, s in enumerate(slots) if s > interval), 0)
    if valid:
        return []
    if function == "constant":
        first = (f"Nomad can only make {max(possible, 0)} attempts in {go_duration(interval)} "
                 f"with initial delay {go_duration(delay)} and delay function {_q(function)}")
    else:
        first = (f"Nomad can only make {max(possible, 0)} attempts in {go_duration(interval)} "
                 f"with initial delay {go_duration(delay)}, delay function {_q(function)}, "
                 f"and delay ceiling {go_duration(max_delay)}")
    rounded = (recommended + SECOND // 2) // SECOND * SECOND
    return [first, f"Set the interval to at least {go_duration(rounded)} to accommodate "
                   f"{attempts} attempts"]


def _update_errors(u: UpdateStrategy) -> list[str]:
    errs: list[str] = []
    min_healthy, healthy = _n(u.MinHealthyTime), _n(u.HealthyDeadline)
    progress, canary = _n(u.ProgressDeadline), _n(u.Canary)
    if u.HealthCheck not in ("checks", "task_states", "manual"):
        errs.append(f"Invalid health check given: {_q(u.HealthCheck or '')}")
    if _n(u.MaxParallel) < 0:
        errs.append(f"Max parallel can not be less than zero: {_n(u.MaxParallel)} < 0")
    if canary < 0:
        errs.append(f"Canary count can not be less than zero: {canary} < 0")
    if canary == 0 and u.AutoPromote:
        errs.append("Auto Promote requires a Canary count greater than zero")
    if min_healthy < 0:
        errs.append(f"Minimum healthy time may not be less than zero: {go_duration(min_healthy)}")
    if healthy <= 0:
        errs.append(f"Healthy deadline must be greater than zero: {go_duration(healthy)}")
    if progress < 0:
        errs.append(f"Progress deadline must be zero or greater: {go_duration(progress)}")
    if min_healthy >= healthy:
        errs.append("Minimum healthy time must be less than healthy deadline: "
                    f"{go_duration(min_healthy)} > {go_duration(healthy)}")
    if progress != 0 and healthy >= progress:
        errs.append("Healthy deadline must be less than progress deadline: "
                    f"{go_duration(healthy)} > {go_duration(progress)}")
    if _n(u.Stagger) <= 0:
        errs.append(f"Stagger must be greater than zero: {go_duration(_n(u.Stagger))}")
    return errs


def _network_errors(tg: TaskGroup) -> list[str]:
    """Port labels are unique across the group; a static port is reserved once per host
    network (TaskGroup.validateNetworks)."""
    errs: list[str] = []
    labels: dict[str, str] = {}
    static: dict[tuple[str, int], str] = {}

    def check_static(label: str, value: int, host_network: str, owner: str) -> None:
        key = (host_network or "default", value)
        if key in static:
            errs.append(f"Static port {value} already reserved by {static[key]}")
        elif value > MAX_PORT:
            errs.append(f"Port {label} ({value}) cannot be greater than {MAX_PORT}")
        else:
            static[key] = f"{owner}:{label}"

    for net in _items(tg.Networks):
        for label, value, to, host_network in _ports(net):
            if label in labels:
                errs.append(f"Port label {label} already in use by {labels[label]}")
            else:
                labels[label] = "taskgroup network"
            if value != 0:
                check_static(label, value, host_network, "taskgroup network")
            if to < -1:
                errs.append(f"Port {_q(label)} cannot be mapped to negative value {to}")
            elif to > MAX_PORT:
                errs.append(f"Port {_q(label)} cannot be mapped to a port ({to}) greater than {MAX_PORT}")
    for task in _items(tg.Tasks):
        for net in _items(task.Resources.Networks if task.Resources else None):
            for label, value, _to, host_network in _ports(net):
                if label in labels:
                    errs.append(f"Port label {label} already in use by {labels[label]}")
                if value != 0:
                    check_static(label, value, host_network, _s(task.Name))
    return errs


def _group_service_errors(tg: TaskGroup) -> list[str]:
    errs: list[str] = []
    providers = {s.Provider for t in _items(tg.Tasks) for s in _items(t.Services)}
    for i, svc in enumerate(_items(tg.Services)):
        providers.add(svc.Provider)
        problems = _service_errors(svc)
        errs += _prefixed(f"Service[{i}] {_s(svc.Name)} validation failed: ", problems)
        if not problems and svc.AddressMode == "driver":
            errs.append(f'service {_q(svc.Name)} cannot use address_mode="driver", '
                        'only services defined in a "task" block can use this mode')
    if len(providers) > 1:
        errs.append("Multiple service providers used: task group services must use the same provider")
    return errs


# --- tasks -----------------------------------------------------------------------------


def _task_errors(job: Job, tg: TaskGroup, task: Task) -> list[str]:
    errs: list[str] = []
    name = _s(task.Name)
    if not name:
        errs.append("Missing task name")
    if "/" in name or "\\" in name:
        errs.append("Task name cannot include slashes")
    elif "\x00" in name:
        errs.append("Task name cannot include null characters")
    if not task.Driver:
        errs.append("Missing task driver")
    kill_timeout = _n(task.KillTimeout)
    if kill_timeout < 0:
        errs.append("KillTimeout must be a positive value")
    elif (job.Type == "service" and tg.Update is not None
          and _n(tg.Update.ProgressDeadline) > 0 and kill_timeout > _n(tg.Update.ProgressDeadline)):
        errs.append(f"KillTimout ({go_duration(kill_timeout)}) longer than the group's "
                    f"ProgressDeadline ({go_duration(_n(tg.Update.ProgressDeadline))})")
    if _n(task.ShutdownDelay) < 0:
        errs.append("ShutdownDelay must be a positive value")

    if task.Resources is None:
        errs.append("Missing task resources")
    else:
        errs += _resource_errors(task.Resources)
    if task.LogConfig is None:
        errs.append("Missing Log Config")
    else:
        errs += _log_errors(task.LogConfig, tg)

    for idx, c in enumerate(_items(task.Constraints)):
        errs += _prefixed(f"Constraint {idx + 1} validation failed: ", _constraint_errors(c))
        if c.Operand in ("distinct_hosts", "distinct_property"):
            errs.append(f"Constraint {idx + 1} has disallowed Operand at task level: {c.Operand}")
    errs += _placement_errors(job.Type, task.Affinities, None)

    errs += _task_service_errors(tg, task)
    errs += _numbered("Artifact", task.Artifacts, _artifact_errors)
    if task.Vault is not None:
        errs += _prefixed("Vault validation failed: ", _vault_errors(task))
    destinations: dict[str, int] = {}
    for idx, tmpl in enumerate(_items(task.Templates)):
        errs += _prefixed(f"Template {idx + 1} validation failed: ", _template_errors(tmpl))
        if tmpl.DestPath in destinations:
            errs.append(f"Template {idx + 1} has same destination as {destinations[tmpl.DestPath]}")
        else:
            destinations[tmpl.DestPath] = idx + 1
    if task.DispatchPayload is not None and _escapes("task/local/", task.DispatchPayload.File):
        errs.append("Dispatch Payload validation failed: destination escapes allocation directory")
    if task.Lifecycle is not None:
        hook = _s(task.Lifecycle.Hook)
        if not hook:
            errs.append("Lifecycle validation failed: no lifecycle hook provided")
        elif hook not in LIFECYCLE_HOOKS:
            errs.append(f"Lifecycle validation failed: invalid hook: {hook}")
    return errs


def _resource_errors(r: Resources) -> list[str]:
    errs: list[str] = []
    cpu, cores, memory = _n(r.CPU), _n(r.Cores), _n(r.MemoryMB)
    if cores > 0 and cpu > 0:
        errs.append("Task can only ask for 'cpu' or 'cores' resource, not both.")
    if cpu < MIN_CPU and cores == 0:
        errs.append(f"minimum CPU value is {MIN_CPU}; got {cpu}")
    if memory < MIN_MEMORY_MB:
        errs.append(f"minimum MemoryMB value is {MIN_MEMORY_MB}; got {memory}")
    if _n(r.DiskMB) > 0:
        errs.append("Task can't ask for disk resources, they have to be specified at the task group level.")
    memory_max = _n(r.MemoryMaxMB)
    if memory_max not in (0, -1) and memory_max < memory:
        errs.append(f"MemoryMaxMB value ({memory_max}) should be larger than MemoryMB value ({memory})")
    return errs


def _log_errors(log: LogConfig, tg: TaskGroup) -> list[str]:
    errs: list[str] = []
    files, size = _n(log.MaxFiles), _n(log.MaxFileSizeMB)
    if files < 1:
        errs.append(f"minimum number of files is 1; got {files}")
    if size < 1:
        errs.append(f"minimum file size is 1MB; got {size}")
    if tg.EphemeralDisk is not None and _n(tg.EphemeralDisk.SizeMB) <= files * size:
        errs.append(f"log storage ({files * size} MB) must be less than requested disk "
                    f"capacity ({_n(tg.EphemeralDisk.SizeMB)} MB)")
    return errs


def _task_service_errors(tg: TaskGroup, task: Task) -> list[str]:
    """Task services: valid, unique, and every port label they use exists (validateServices)."""
    errs: list[str] = []
    wanted: dict[str, set[str]] = {}
    known: set[str] = set()
    for i, svc in enumerate(_items(task.Services)):
        name, port_label = _s(svc.Name), _s(svc.PortLabel)
        problems = _service_errors(svc)
        if problems:
            errs += _prefixed(f"service[{i}] {_q(name, ascii_only=True)} validation failed: ",
                              problems)
        if svc.AddressMode == "alloc":
            errs.append(f'service {_q(name)} cannot use address_mode="alloc", '
                        'only services defined in a "group" block can use this mode')
        if name + port_label in known:
            errs.append(f"service {_q(name)} is duplicate")
        known.add(name + port_label)
        if port_label and not (svc.AddressMode == "driver" and port_label.isdigit()):
            wanted.setdefault(port_label, set()).add(name)
        checks: set[str] = set()
        for chk in _items(svc.Checks):
            if chk.Name in checks:
                errs.append(f"check {_q(chk.Name)} is duplicate")
            checks.add(chk.Name)
            if not _requires_port(chk):
                continue
            port = _s(chk.PortLabel) or port_label
            if not port:
                errs.append(f"check {_q(chk.Name)} is missing a port")
            elif _is_go_int(port):
                errs.append(f'check {_q(chk.Name)} cannot use a numeric port {int(port)} '
                            'without setting address_mode="driver"')
            else:
                wanted.setdefault(port, set()).add(name)

    labels: set[str] = set()
    group_nets = _items(tg.Networks)
    if group_nets:
        labels |= {p[0] for p in _ports(group_nets[0])}
    for net in _items(task.Resources.Networks if task.Resources else None):
        labels |= {p[0] for p in _ports(net)}
    for label in sorted(wanted):
        if label not in labels:
            names = ", ".join(sorted(wanted[label]))
            errs.append(f"port label {_q(label)} referenced by services {names} does not exist")
    return errs


_SERVICE_NAME = re.compile(r"(?i:[a-z0-9]|[a-z0-9][a-z0-9\-]{0,61}[a-z0-9])")
_ENV_REF = re.compile(r"\$\{[^}]+\}")


def _service_errors(svc: Service) -> list[str]:
    errs: list[str] = []
    if not _SERVICE_NAME.fullmatch(_ENV_REF.sub("ENV-VAR", _s(svc.Name))):
        errs.append("Service name must be valid per RFC 1123 and can contain only alphanumeric "
                    f"characters or dashes and must be no longer than 63 characters: {_q(svc.Name)}")
    if svc.AddressMode not in ("", "auto", "host", "driver", "alloc"):
        errs.append(f'Service address_mode must be "auto", "host", or "driver"; not {_q(svc.AddressMode)}')
    if svc.Provider not in ("consul", "nomad"):
        errs.append(f'Service provider must be "consul", or "nomad"; not {_q(svc.Provider)}')
        return errs
    allowed = ("grpc", "tcp", "http", "script") if svc.Provider == "consul" else ("tcp", "http")
    for chk in _items(svc.Checks):
        if not svc.PortLabel and not chk.PortLabel and _requires_port(chk):
            errs.append(f"Check {chk.Name} invalid: check requires a port but neither check "
                        f"nor service {_q(svc.Name, ascii_only=True)} have a port")
            continue
        problem = _check_error(chk, allowed)
        if problem:
            # Nomad prefixes consul check errors only.
            errs.append(f"Check {chk.Name} invalid: {problem}" if svc.Provider == "consul" else problem)
    return errs


def _check_error(chk: ServiceCheck, allowed: tuple[str, ...]) -> str | None:
    kind, interval, timeout = _s(chk.Type).lower(), _n(chk.Interval), _n(chk.Timeout)
    if kind not in allowed:
        return f"invalid check type ({_q(kind)}), must be one of {', '.join(allowed)}"
    if kind == "http":
        if not chk.Path:
            return "http type must have http path"
        if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", _s(chk.Path)):
            return "http type must have relative http path"
    if kind == "script" and not chk.Command:
        return "script type must have a valid script path"
    if interval == 0:
        return ("missing required value interval. Interval cannot be less than "
                f"{go_duration(MIN_CHECK_INTERVAL)}")
    if interval < MIN_CHECK_INTERVAL:
        return (f"interval ({go_duration(interval)}) cannot be lower than "
                f"{go_duration(MIN_CHECK_INTERVAL)}")
    if timeout == 0:
        return ("missing required value timeout. Timeout cannot be less than "
                f"{go_duration(MIN_CHECK_INTERVAL)}")
    if timeout < MIN_CHECK_TIMEOUT:
        return (f"timeout ({go_duration(timeout)}) is lower than required minimum timeout "
                f"{go_duration(MIN_CHECK_INTERVAL)}")
    if _s(chk.InitialStatus) not in ("", "passing", "warning", "critical"):
        return (f"invalid initial check state ({chk.InitialStatus}), must be one of "
                '"passing", "warning", "critical" or empty')
    return None


def _requires_port(chk: ServiceCheck) -> bool:
    return chk.Type in ("grpc", "http", "tcp")


def _artifact_errors(art: TaskArtifact) -> list[str]:
    errs: list[str] = []
    if not art.GetterSource:
        errs.append("source must be specified")
    if art.GetterMode not in (None, "", "any", "file", "dir"):
        errs.append(f"invalid artifact mode {_q(art.GetterMode)}; must be one of: any, file, dir")
    if _escapes("task", art.RelativeDest or ""):
        errs.append("destination escapes allocation directory")
    problem = _checksum_error((art.GetterOptions or {}).get("checksum"))
    if problem:
        errs.append(problem)
    return errs


_CHECKSUM_BYTES = {"md5": 16, "sha1": 20, "sha256": 32, "sha512": 64}


def _checksum_error(check: str | None) -> str | None:
    if check is None or "${" in check:  # interpolated later, checked on the client
        return None
    check = check.strip()
    if not check:
        return "checksum value cannot be empty"
    parts = check.split(":")
    if len(parts) != 2:
        return f'checksum must be given as "type:value"; got {_q(check)}'
    kind, value = parts
    bad = next((ch for ch in value if ch not in "0123456789abcdefABCDEF"), None)
    if bad is not None:
        return f"invalid checksum: encoding/hex: invalid byte: U+{ord(bad):04X} {_go_rune(bad)}"
    if len(value) % 2:
        return "invalid checksum: encoding/hex: odd length hex string"
    if kind not in _CHECKSUM_BYTES:
        return f"unsupported checksum type: {kind}"
    if len(value) // 2 != _CHECKSUM_BYTES[kind]:
        return f"invalid {kind} checksum: {value}"
    return None


def _vault_errors(task: Task) -> list[str]:
    v = task.Vault
    errs = ['Can not specify "root" policy' for p in v.Policies or () if p == "root"]
    mode = v.ChangeMode or ""
    if mode == "signal":
        if not v.ChangeSignal:
            errs.append('Signal must be specified when using change mode "signal"')
    elif mode not in ("noop", "restart"):
        errs.append(f"Unknown change mode {_q(mode)}")
    return errs


def _template_errors(t: Template) -> list[str]:
    errs: list[str] = []
    if not t.SourcePath and not t.EmbeddedTmpl:
        errs.append("Must specify a source path or have an embedded template")
    if not t.DestPath:
        errs.append("Must specify a destination for the template")
    if _escapes("task", t.DestPath):
        errs.append("destination escapes allocation directory")
    if t.ChangeMode == "signal":
        if not t.ChangeSignal:
            errs.append("Must specify signal value when change mode is signal")
        if t.Envvars:
            errs.append("cannot use signals with env var templates")
    elif t.ChangeMode == "script":
        errs.append("must specify change script configuration value when change mode is script")
    elif t.ChangeMode not in ("noop", "restart"):
        errs.append("Invalid change mode. Must be one of the following: noop, signal, script, restart")
    if _n(t.Splay) < 0:
        errs.append("Must specify positive splay value")
    if t.Perms:
        problem = _parse_uint_error(t.Perms, base=8, bits=12)
        if problem:
            errs.append(f"Failed to parse {_q(t.Perms)} as octal: {problem}")
    return errs


# --- constraints -----------------------------------------------------------------------

_SET_OPERANDS = ("set_contains", "set_contains_all", "set_contains_any")
_COMPARE_OPERANDS = ("=", "==", "is", "!=", "not", "<", "<=", ">", ">=")


def _constraint_errors(c: Constraint) -> list[str]:
    """Constraint.Validate: a known operand, and the RTarget it needs."""
    errs: list[str] = []
    if not c.Operand:
        errs.append("Missing constraint operand")
    needs_ltarget = True
    if c.Operand == "distinct_hosts":
        needs_ltarget = False
    elif c.Operand in _SET_OPERANDS:
        if not c.RTarget:
            errs.append("Set contains constraint requires an RTarget")
    elif c.Operand == "regexp":
        try:
            re.compile(c.RTarget)
        except re.error as exc:
            errs.append(f"Regular expression failed to compile: error parsing regexp: {exc}")
    elif c.Operand == "version":
        problem = version_constraint_error(c.RTarget)
        if problem:
            errs.append(f"Version constraint is invalid: {problem}")
    elif c.Operand == "semver":
        problem = version_constraint_error(c.RTarget, semver=True)
        if problem:
            errs.append(f"Semver constraint is invalid: {problem}")
    elif c.Operand == "distinct_property":
        if c.RTarget:
            problem = _parse_uint_error(c.RTarget, base=10, bits=64)
            if problem:
                errs.append(f"Failed to convert RTarget {_q(c.RTarget)} to uint64: {problem}")
            elif int(c.RTarget) < 1:
                errs.append(f"Distinct Property must have an allowed count of 1 or greater: {int(c.RTarget)} < 1")
    elif c.Operand in ("is_set", "is_not_set"):
        if c.RTarget:
            errs.append(f"Operator {_q(c.Operand)} does not support an RTarget")
    elif c.Operand in _COMPARE_OPERANDS:
        if not c.RTarget:
            errs.append(f"Operator {_q(c.Operand)} requires an RTarget")
    else:
        errs.append(f"Unknown constraint type {_q(c.Operand)}")
    if needs_ltarget and not c.LTarget:
        errs.append("No LTarget provided but is required by constraint")
    return errs


# hashicorp/go-version's VersionRegexpRaw and SemverRegexpRaw.
_VERSION = (r"v?([0-9]+(\.[0-9]+)*?)"
            r"(-([0-9]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)|(-?([A-Za-z\-~]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)))?"
            r"(\+([0-9A-Za-z\-~]+(\.[0-9A-Za-z\-~]+)*))??")
_SEMVER = (r"v?([0-9]+(\.[0-9]+){0,2})"
           r"(-([0-9A-Za-z\-~]+(\.[0-9A-Za-z\-~]+)*))?"
           r"(\+([0-9A-Za-z\-~]+(\.[0-9A-Za-z\-~]+)*))??")
_VERSION_CONSTRAINT = re.compile(rf"^\s*(>=|<=|!=|~>|=|>|<|)\s*({_VERSION})\s*$")
_SEMVER_CONSTRAINT = re.compile(rf"^\s*(>=|<=|!=|=|>|<|)\s*({_SEMVER})\s*$")


def version_constraint_error(text: str, semver: bool = False) -> str | None:
    """Why a Go-style version constraint such as ">= 1.2, < 2.0" does not parse
    (go-version's NewConstraint / Nomad's semver constraints), or None."""
    pattern = _SEMVER_CONSTRAINT if semver else _VERSION_CONSTRAINT
    for single in text.split(","):
        if not pattern.match(single):
            return f"Malformed constraint: {single}"
    return None


# --- periodic helpers ------------------------------------------------------------------

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
                return f"syntax error in year field: {_q(item)}"
    return None


def _time_zone_error(tz: str) -> str | None:
    if tz in ("UTC", "Local"):
        return None
    try:
        zoneinfo.ZoneInfo(tz)
    except Exception:  # ZoneInfoNotFoundError, ValueError for malformed keys
        return f"unknown time zone {tz}"
    return None


# --- warnings --------------------------------------------------------------------------


def _job_warnings(job: Job) -> list[str]:
    out: list[str] = []
    has_auto, all_auto = False, True
    for tg in _items(job.TaskGroups):
        out += _prefixed(f'Group "{tg.Name or ""}" has warnings: ', _group_warnings(tg))
        if tg.Update is not None:
            has_auto = has_auto or bool(tg.Update.AutoPromote)
            all_auto = all_auto and (_n(tg.Update.Canary) == 0 or bool(tg.Update.AutoPromote))
    if has_auto and not all_auto:
        out.append("auto_promote must be true for all groups to enable automatic promotion")
    return out


def _group_warnings(tg: TaskGroup) -> list[str]:
    out: list[str] = []
    count = _n(tg.Count)
    if tg.Update is not None and count > 1 and _n(tg.Update.MaxParallel) > count:
        out.append(f"Update max parallel count is greater than task group count "
                   f"({_n(tg.Update.MaxParallel)} > {count}). A destructive change would result "
                   "in the simultaneous replacement of all allocations.")
    nets = _items(tg.Networks)
    if nets and _n(nets[0].MBits) > 0:
        out.append("mbits has been deprecated as of Nomad 0.12.0. Please remove mbits from the network block")
    for task in _items(tg.Tasks):
        task_out = []
        if task.Resources is not None and _n(task.Resources.IOPS) != 0:
            task_out.append("IOPS has been deprecated as of Nomad 0.9.0. Please remove IOPS from resource block.")
        if task.Resources is not None and task.Resources.Networks:
            task_out.append("task network resources have been deprecated as of Nomad 0.12.0. "
                            "Please configure networking via group network block.")
        out += _prefixed(f'Task "{_s(task.Name)}" has warnings: ', task_out)
    return out


# --- small helpers ---------------------------------------------------------------------


def _items(seq: list[Any] | None) -> list[Any] | tuple:
    """The elements of an optional list; nulls (possible only in hand-built jobs)
    are skipped. The common case returns the list itself without copying."""
    if not seq:
        return ()
    if None in seq:
        return [x for x in seq if x is not None]
    return seq


def _s(value: Any) -> str:
    """A string field, null read as Go's zero value."""
    return value if isinstance(value, str) else ""


def _n(value: Any) -> int:
    """An optional integer field, null read as Go's zero value."""
    return value if isinstance(value, int) else 0


def _prefixed(prefix: str, messages: Iterable[str]) -> list[str]:
    return [prefix + m for m in messages]


def _numbered(kind: str, seq: list[Any] | None, check) -> list[str]:
    """"<Kind> N validation failed: ..." for each item of a list, counting from 1."""
    out: list[str] = []
    for idx, item in enumerate(_items(seq)):
        out += _prefixed(f"{kind} {idx + 1} validation failed: ", check(item))
    return out


def _ports(net: NetworkResource) -> list[tuple[str, int, int, str]]:
    """(Label, Value, To, HostNetwork) of every reserved then dynamic port."""
    return [(_s(p.Label), _n(p.Value), _n(p.To), _s(p.HostNetwork))
            for p in [*_items(net.ReservedPorts), *_items(net.DynamicPorts)]]


def _escapes(prefix: str, path: str) -> bool:
    """escapingfs.PathEscapesAllocViaRelative: does ``prefix/path`` leave the alloc dir?"""
    alloc = "/alloc-dir/alloc-id"
    full = posixpath.normpath("/".join(p for p in (alloc, prefix, path or "") if p))
    return posixpath.relpath(full, alloc).startswith("..")


def _parse_uint_error(text: str, base: int, bits: int) -> str | None:
    """The error Go's strconv.ParseUint would give, or None."""
    digits = "01234567" if base == 8 else "0123456789"
    if not text or any(ch not in digits for ch in text):
        return f"strconv.ParseUint: parsing {_q(text)}: invalid syntax"
    if int(text, base) >= 1 << bits:
        return f"strconv.ParseUint: parsing {_q(text)}: value out of range"
    return None


def _is_go_int(text: str) -> bool:
    return re.fullmatch(r"[+-]?\d+", text) is not None


def _q(text: str | None, ascii_only: bool = False) -> str:
    """Go's %q (or %+q with ``ascii_only``) for a string."""
    return json.dumps(text or "", ensure_ascii=ascii_only)


def _go_rune(ch: str) -> str:
    return "'" + json.dumps(ch)[1:-1].replace("'", "\\'") + "'"


def _go_list(items: list[Any]) -> str:
    """Go's %v for a []string: [a b c]."""
    return "[" + " ".join(_s(i) for i in items) + "]"
