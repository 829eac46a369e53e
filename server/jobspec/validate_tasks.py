"""Validation of a task (Nomad's ``Task.Validate`` and what it calls: resources, logs,
services and checks, artifacts, vault, templates), with Nomad's message texts."""
from __future__ import annotations

import re

from caravan.fsm.durations import go_duration
from caravan.fsm.structs import (
    Job,
    LogConfig,
    Resources,
    Service,
    ServiceCheck,
    Task,
    TaskArtifact,
    TaskGroup,
    Template,
)
from caravan.server.jobspec.gofmt import go_quote, go_rune, is_go_int, parse_uint_error
from caravan.server.jobspec.validate_constraints import constraint_errors, placement_errors
from caravan.server.jobspec.validate_fields import (
    SECOND,
    escapes_alloc_dir,
    int_of,
    numbered,
    ports,
    prefixed,
    present,
    text_of,
)

MIN_CPU, MIN_MEMORY_MB, MIN_DISK_MB = 1, 10, 10
MIN_CHECK_INTERVAL = MIN_CHECK_TIMEOUT = 1 * SECOND
LIFECYCLE_HOOKS = ("prestart", "poststart", "poststop")


def task_errors(job: Job, tg: TaskGroup, task: Task) -> list[str]:
    errs: list[str] = []
    name = text_of(task.Name)
    if not name:
        errs.append("Missing task name")
    if "/" in name or "\\" in name:
        errs.append("Task name cannot include slashes")
    elif "\x00" in name:
        errs.append("Task name cannot include null characters")
    if not task.Driver:
        errs.append("Missing task driver")
    kill_timeout = int_of(task.KillTimeout)
    if kill_timeout < 0:
        errs.append("KillTimeout must be a positive value")
    elif (job.Type == "service" and tg.Update is not None
          and int_of(tg.Update.ProgressDeadline) > 0 and kill_timeout > int_of(tg.Update.ProgressDeadline)):
        errs.append(f"KillTimout ({go_duration(kill_timeout)}) longer than the group's "
                    f"ProgressDeadline ({go_duration(int_of(tg.Update.ProgressDeadline))})")
    if int_of(task.ShutdownDelay) < 0:
        errs.append("ShutdownDelay must be a positive value")

    if task.Resources is None:
        errs.append("Missing task resources")
    else:
        errs += _resource_errors(task.Resources)
    if task.LogConfig is None:
        errs.append("Missing Log Config")
    else:
        errs += _log_errors(task.LogConfig, tg)

    for idx, c in enumerate(present(task.Constraints)):
        errs += prefixed(f"Constraint {idx + 1} validation failed: ", constraint_errors(c))
        if c.Operand in ("distinct_hosts", "distinct_property"):
            errs.append(f"Constraint {idx + 1} has disallowed Operand at task level: {c.Operand}")
    errs += placement_errors(job.Type, task.Affinities, None)

    errs += _task_service_errors(tg, task)
    errs += numbered("Artifact", task.Artifacts, _artifact_errors)
    if task.Vault is not None:
        errs += prefixed("Vault validation failed: ", _vault_errors(task))
    destinations: dict[str, int] = {}
    for idx, tmpl in enumerate(present(task.Templates)):
        errs += prefixed(f"Template {idx + 1} validation failed: ", _template_errors(tmpl))
        if tmpl.DestPath in destinations:
            errs.append(f"Template {idx + 1} has same destination as {destinations[tmpl.DestPath]}")
        else:
            destinations[tmpl.DestPath] = idx + 1
    if task.DispatchPayload is not None and escapes_alloc_dir("task/local/", task.DispatchPayload.File):
        errs.append("Dispatch Payload validation failed: destination escapes allocation directory")
    if task.Lifecycle is not None:
        hook = text_of(task.Lifecycle.Hook)
        if not hook:
            errs.append("Lifecycle validation failed: no lifecycle hook provided")
        elif hook not in LIFECYCLE_HOOKS:
            errs.append(f"Lifecycle validation failed: invalid hook: {hook}")
    return errs


def _resource_errors(r: Resources) -> list[str]:
    errs: list[str] = []
    cpu, cores, memory = int_of(r.CPU), int_of(r.Cores), int_of(r.MemoryMB)
    if cores > 0 and cpu > 0:
        errs.append("Task can only ask for 'cpu' or 'cores' resource, not both.")
    if cpu < MIN_CPU and cores == 0:
        errs.append(f"minimum CPU value is {MIN_CPU}; got {cpu}")
    if memory < MIN_MEMORY_MB:
        errs.append(f"minimum MemoryMB value is {MIN_MEMORY_MB}; got {memory}")
    if int_of(r.DiskMB) > 0:
        errs.append("Task can't ask for disk resources, they have to be specified at the task group level.")
    memory_max = int_of(r.MemoryMaxMB)
    if memory_max not in (0, -1) and memory_max < memory:
        errs.append(f"MemoryMaxMB value ({memory_max}) should be larger than MemoryMB value ({memory})")
    return errs


def _log_errors(log: LogConfig, tg: TaskGroup) -> list[str]:
    errs: list[str] = []
    files, size = int_of(log.MaxFiles), int_of(log.MaxFileSizeMB)
    if files < 1:
        errs.append(f"minimum number of files is 1; got {files}")
    if size < 1:
        errs.append(f"minimum file size is 1MB; got {size}")
    if tg.EphemeralDisk is not None and int_of(tg.EphemeralDisk.SizeMB) <= files * size:
        errs.append(f"log storage ({files * size} MB) must be less than requested disk "
                    f"capacity ({int_of(tg.EphemeralDisk.SizeMB)} MB)")
    return errs


def _task_service_errors(tg: TaskGroup, task: Task) -> list[str]:
    """Task services: valid, unique, and every port label they use exists (validateServices)."""
    errs: list[str] = []
    wanted: dict[str, set[str]] = {}
    known: set[str] = set()
    for i, svc in enumerate(present(task.Services)):
        name, port_label = text_of(svc.Name), text_of(svc.PortLabel)
        problems = service_errors(svc)
        if problems:
            errs += prefixed(f"service[{i}] {go_quote(name, ascii_only=True)} validation failed: ",
                              problems)
        if svc.AddressMode == "alloc":
            errs.append(f'service {go_quote(name)} cannot use address_mode="alloc", '
                        'only services defined in a "group" block can use this mode')
        if name + port_label in known:
            errs.append(f"service {go_quote(name)} is duplicate")
        known.add(name + port_label)
        if port_label and not (svc.AddressMode == "driver" and port_label.isdigit()):
            wanted.setdefault(port_label, set()).add(name)
        checks: set[str] = set()
        for chk in present(svc.Checks):
            if chk.Name in checks:
                errs.append(f"check {go_quote(chk.Name)} is duplicate")
            checks.add(chk.Name)
            if not _requires_port(chk):
                continue
            port = text_of(chk.PortLabel) or port_label
            if not port:
                errs.append(f"check {go_quote(chk.Name)} is missing a port")
            elif is_go_int(port):
                errs.append(f'check {go_quote(chk.Name)} cannot use a numeric port {int(port)} '
                            'without setting address_mode="driver"')
            else:
                wanted.setdefault(port, set()).add(name)

    labels: set[str] = set()
    group_nets = present(tg.Networks)
    if group_nets:
        labels |= {p[0] for p in ports(group_nets[0])}
    for net in present(task.Resources.Networks if task.Resources else None):
        labels |= {p[0] for p in ports(net)}
    for label in sorted(wanted):
        if label not in labels:
            names = ", ".join(sorted(wanted[label]))
            errs.append(f"port label {go_quote(label)} referenced by services {names} does not exist")
    return errs


_SERVICE_NAME = re.compile(r"(?i:[a-z0-9]|[a-z0-9][a-z0-9\-]{0,61}[a-z0-9])")
_ENV_REF = re.compile(r"\$\{[^}]+\}")


def service_errors(svc: Service) -> list[str]:
    errs: list[str] = []
    if not _SERVICE_NAME.fullmatch(_ENV_REF.sub("ENV-VAR", text_of(svc.Name))):
        errs.append("Service name must be valid per RFC 1123 and can contain only alphanumeric "
                    f"characters or dashes and must be no longer than 63 characters: {go_quote(svc.Name)}")
    if svc.AddressMode not in ("", "auto", "host", "driver", "alloc"):
        errs.append(f'Service address_mode must be "auto", "host", or "driver"; not {go_quote(svc.AddressMode)}')
    if svc.Provider not in ("consul", "nomad"):
        errs.append(f'Service provider must be "consul", or "nomad"; not {go_quote(svc.Provider)}')
        return errs
    allowed = ("grpc", "tcp", "http", "script") if svc.Provider == "consul" else ("tcp", "http")
    for chk in present(svc.Checks):
        if not svc.PortLabel and not chk.PortLabel and _requires_port(chk):
            errs.append(f"Check {chk.Name} invalid: check requires a port but neither check "
                        f"nor service {go_quote(svc.Name, ascii_only=True)} have a port")
            continue
        problem = _check_error(chk, allowed)
        if problem:
            # Nomad prefixes consul check errors only.
            errs.append(f"Check {chk.Name} invalid: {problem}" if svc.Provider == "consul" else problem)
    return errs


def _check_error(chk: ServiceCheck, allowed: tuple[str, ...]) -> str | None:
    kind, interval, timeout = text_of(chk.Type).lower(), int_of(chk.Interval), int_of(chk.Timeout)
    if kind not in allowed:
        return f"invalid check type ({go_quote(kind)}), must be one of {', '.join(allowed)}"
    if kind == "http":
        if not chk.Path:
            return "http type must have http path"
        if re.match(r"^[A-Za-z][A-Za-z0-9+.\-]*:", text_of(chk.Path)):
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
    if text_of(chk.InitialStatus) not in ("", "passing", "warning", "critical"):
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
        errs.append(f"invalid artifact mode {go_quote(art.GetterMode)}; must be one of: any, file, dir")
    if escapes_alloc_dir("task", art.RelativeDest or ""):
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
        return f'checksum must be given as "type:value"; got {go_quote(check)}'
    kind, value = parts
    bad = next((ch for ch in value if ch not in "0123456789abcdefABCDEF"), None)
    if bad is not None:
        return f"invalid checksum: encoding/hex: invalid byte: U+{ord(bad):04X} {go_rune(bad)}"
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
        errs.append(f"Unknown change mode {go_quote(mode)}")
    return errs


def _template_errors(t: Template) -> list[str]:
    errs: list[str] = []
    if not t.SourcePath and not t.EmbeddedTmpl:
        errs.append("Must specify a source path or have an embedded template")
    if not t.DestPath:
        errs.append("Must specify a destination for the template")
    if escapes_alloc_dir("task", t.DestPath):
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
    if int_of(t.Splay) < 0:
        errs.append("Must specify positive splay value")
    if t.Perms:
        problem = parse_uint_error(t.Perms, base=8, bits=12)
        if problem:
            errs.append(f"Failed to parse {go_quote(t.Perms)} as octal: {problem}")
    return errs
