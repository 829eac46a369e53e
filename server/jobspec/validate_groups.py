"""Validation of a task group (Nomad's ``TaskGroup.Validate`` and what it calls: scaling,
volumes, restart, reschedule and update policies, networks, group services) and its
warnings, with Nomad's message texts."""
from __future__ import annotations

from caravan.fsm.durations import go_duration
from caravan.fsm.structs import (
    Job,
    ReschedulePolicy,
    RestartPolicy,
    ScalingPolicy,
    TaskGroup,
    UpdateStrategy,
    VolumeRequest,
)
from caravan.server.jobspec.gofmt import go_quote
from caravan.server.jobspec.validate_constraints import constraint_errors, placement_errors
from caravan.server.jobspec.validate_fields import SECOND, int_of, numbered, ports, prefixed, present, text_of
from caravan.server.jobspec.validate_tasks import MIN_DISK_MB, service_errors, task_errors

RESTART_MIN_INTERVAL = 5 * SECOND
# Nomad's ReschedulePolicyMinDelay is 5s; Caravan allows delays down to 1s so that a
# crash loop can be watched being rescheduled within seconds (tests, demos).
RESCHEDULE_MIN_DELAY = 1 * SECOND
RESCHEDULE_MIN_INTERVAL = 15 * SECOND
DELAY_FUNCTIONS = ("constant", "exponential", "fibonacci")
MAX_PORT = 65535


def group_errors(job: Job, tg: TaskGroup) -> list[str]:
    errs: list[str] = []
    name = tg.Name or ""
    if not name:
        errs.append("Missing task group name")
    elif "\x00" in name:
        errs.append("Task group name contains null character")
    if int_of(tg.Count) < 0:
        errs.append("Task group count can't be negative")
    tasks = present(tg.Tasks)
    if not tasks:
        errs.append("Missing tasks for task group")
    errs += numbered("Constraint", tg.Constraints, constraint_errors)
    errs += placement_errors(job.Type, tg.Affinities, tg.Spreads)

    if tg.RestartPolicy is None:
        errs.append(f"Task Group {name} should have a restart policy")
    else:
        errs += _restart_errors(tg.RestartPolicy)
    if job.Type == "system" and tg.ReschedulePolicy is not None:
        errs.append("System jobs should not have a reschedule policy")
    elif job.Type != "system" and tg.ReschedulePolicy is None:
        errs.append(f"Task Group {name} should have a reschedule policy")
    elif tg.ReschedulePolicy is not None:
        errs += prefixed("Reschedule policy: ", _reschedule_errors(tg.ReschedulePolicy))
    if tg.EphemeralDisk is None:
        errs.append(f"Task Group {name} should have an ephemeral disk object")
    elif int_of(tg.EphemeralDisk.SizeMB) < MIN_DISK_MB:
        errs.append(f"minimum DiskMB value is {MIN_DISK_MB}; got {int_of(tg.EphemeralDisk.SizeMB)}")
    if tg.Update is not None:
        if job.Type not in ("service", "system"):
            errs.append(f"Job type {go_quote(job.Type or '')} does not allow update block")
        errs += _update_errors(tg.Update)
    if job.Type != "service" and tg.Migrate is not None:
        errs.append(f"Job type {go_quote(job.Type or '')} does not allow migrate block")

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
    canaries = int_of(tg.Update.Canary) if tg.Update is not None else 0
    for vname, req in sorted((tg.Volumes or {}).items()):
        errs += prefixed(f"Task group volume validation for {vname} failed: ",
                          _volume_errors(req, canaries))
    for task in tasks:
        for idx, mount in enumerate(present(task.VolumeMounts)):
            if not mount.Volume:
                errs.append(f"Task {text_of(task.Name)} has a volume mount ({idx}) referencing an "
                            "empty volume")
            elif mount.Volume not in (tg.Volumes or {}):
                errs.append(f"Task {text_of(task.Name)} has a volume mount ({idx}) referencing "
                            f"undefined volume {mount.Volume}")

    if tg.Scaling is not None:
        errs += prefixed("Task group scaling policy validation failed: ",
                          _scaling_errors(tg.Scaling, int_of(tg.Count)))
    errs += prefixed("Task group network validation failed: ", _network_errors(tg))
    errs += prefixed("Task group service validation failed: ", _group_service_errors(tg))
    errs += prefixed("Task group service check validation failed: ", [
        f"Service [{name}]->{svc.Name} or Check {chk.Name} must specify task parameter"
        for svc in present(tg.Services) for chk in present(svc.Checks) if chk.Type == "script"])
    for task in tasks:
        errs += prefixed(f"Task {text_of(task.Name)} validation failed: ", task_errors(job, tg, task))
    return errs


def _scaling_errors(p: ScalingPolicy, count: int) -> list[str]:
    """``TaskGroup.validateScalingPolicy`` with ``ScalingPolicy.Validate``."""
    errs: list[str] = []
    low, high = int_of(p.Min), p.Max if p.Max is not None else -1
    if not p.Type:
        errs.append("missing scaling policy type")
    elif p.Type != "horizontal":
        errs.append(f"scaling policy type {go_quote(p.Type)} is not valid for a task group")
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
    mode, attempts = rp.Mode or "", int_of(rp.Attempts)
    interval, delay = int_of(rp.Interval), int_of(rp.Delay)
    if mode not in ("delay", "fail"):
        errs.append(f"Unsupported restart mode: {go_quote(mode)}")
    if attempts == 0 and mode != "fail":
        errs.append(f"Restart policy {go_quote(mode)} with {attempts} attempts is ambiguous")
    if interval < RESTART_MIN_INTERVAL:
        errs.append(f"Interval can not be less than {go_duration(RESTART_MIN_INTERVAL)} "
                    f"(got {go_duration(interval)})")
    if attempts * delay > interval:
        errs.append(f"Nomad can't restart the TaskGroup {attempts} times in an interval of "
                    f"{go_duration(interval)} with a delay of {go_duration(delay)}")
    return errs


def _reschedule_errors(rp: ReschedulePolicy) -> list[str]:
    """``ReschedulePolicy.Validate`` (a disabled policy is never wrong)."""
    attempts, interval, unlimited = int_of(rp.Attempts), int_of(rp.Interval), bool(rp.Unlimited)
    delay, max_delay, function = int_of(rp.Delay), int_of(rp.MaxDelay), rp.DelayFunction or ""
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
        errs.append(f"Invalid delay function {go_quote(function)}, must be one of "
                    f"[{' '.join(go_quote(f) for f in DELAY_FUNCTIONS)}]")
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
                 f"with initial delay {go_duration(delay)} and delay function {go_quote(function)}")
    else:
        first = (f"Nomad can only make {max(possible, 0)} attempts in {go_duration(interval)} "
                 f"with initial delay {go_duration(delay)}, delay function {go_quote(function)}, "
                 f"and delay ceiling {go_duration(max_delay)}")
    rounded = (recommended + SECOND // 2) // SECOND * SECOND
    return [first, f"Set the interval to at least {go_duration(rounded)} to accommodate "
                   f"{attempts} attempts"]


def _update_errors(u: UpdateStrategy) -> list[str]:
    errs: list[str] = []
    min_healthy, healthy = int_of(u.MinHealthyTime), int_of(u.HealthyDeadline)
    progress, canary = int_of(u.ProgressDeadline), int_of(u.Canary)
    if u.HealthCheck not in ("checks", "task_states", "manual"):
        errs.append(f"Invalid health check given: {go_quote(u.HealthCheck or '')}")
    if int_of(u.MaxParallel) < 0:
        errs.append(f"Max parallel can not be less than zero: {int_of(u.MaxParallel)} < 0")
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
    if int_of(u.Stagger) <= 0:
        errs.append(f"Stagger must be greater than zero: {go_duration(int_of(u.Stagger))}")
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

    for net in present(tg.Networks):
        for label, value, to, host_network in ports(net):
            if label in labels:
                errs.append(f"Port label {label} already in use by {labels[label]}")
            else:
                labels[label] = "taskgroup network"
            if value != 0:
                check_static(label, value, host_network, "taskgroup network")
            if to < -1:
                errs.append(f"Port {go_quote(label)} cannot be mapped to negative value {to}")
            elif to > MAX_PORT:
                errs.append(f"Port {go_quote(label)} cannot be mapped to a port ({to}) greater than {MAX_PORT}")
    for task in present(tg.Tasks):
        for net in present(task.Resources.Networks if task.Resources else None):
            for label, value, _to, host_network in ports(net):
                if label in labels:
                    errs.append(f"Port label {label} already in use by {labels[label]}")
                if value != 0:
                    check_static(label, value, host_network, text_of(task.Name))
    return errs


def _group_service_errors(tg: TaskGroup) -> list[str]:
    errs: list[str] = []
    providers = {s.Provider for t in present(tg.Tasks) for s in present(t.Services)}
    for i, svc in enumerate(present(tg.Services)):
        providers.add(svc.Provider)
        problems = service_errors(svc)
        errs += prefixed(f"Service[{i}] {text_of(svc.Name)} validation failed: ", problems)
        if not problems and svc.AddressMode == "driver":
            errs.append(f'service {go_quote(svc.Name)} cannot use address_mode="driver", '
                        'only services defined in a "task" block can use this mode')
    if len(providers) > 1:
        errs.append("Multiple service providers used: task group services must use the same provider")
    return errs


def group_warnings(tg: TaskGroup) -> list[str]:
    out: list[str] = []
    count = int_of(tg.Count)
    if tg.Update is not None and count > 1 and int_of(tg.Update.MaxParallel) > count:
        out.append(f"Update max parallel count is greater than task group count "
                   f"({int_of(tg.Update.MaxParallel)} > {count}). A destructive change would result "
                   "in the simultaneous replacement of all allocations.")
    nets = present(tg.Networks)
    if nets and int_of(nets[0].MBits) > 0:
        out.append("mbits has been deprecated as of Nomad 0.12.0. Please remove mbits from the network block")
    for task in present(tg.Tasks):
        task_out = []
        if task.Resources is not None and int_of(task.Resources.IOPS) != 0:
            task_out.append("IOPS has been deprecated as of Nomad 0.9.0. Please remove IOPS from resource block.")
        if task.Resources is not None and task.Resources.Networks:
            task_out.append("task network resources have been deprecated as of Nomad 0.12.0. "
                            "Please configure networking via group network block.")
        out += prefixed(f'Task "{text_of(task.Name)}" has warnings: ', task_out)
    return out
