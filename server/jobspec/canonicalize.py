"""Fill Nomad 1.x defaults into a freshly decoded job, in place.

Nomad applies defaults in three passes on register: the HTTP agent's
``api.Job.Canonicalize`` (pointer fields, done before converting to server structs),
the server's ``structs.Job.Canonicalize`` (empty collections become nil, service name
interpolation) and the admission mutators (node pool, implied constraints). This module
is the union of the three, in that order, so that a job read back from Caravan looks
like one read back from Nomad (checked against hashicorp/nomad ``api/jobs.go``,
``api/tasks.go``, ``api/resources.go``, ``api/services.go``, ``nomad/structs/structs.go``,
``nomad/job_endpoint_hooks.go`` and ``command/agent/job_endpoint.go`` of 1.6 and later).

Running it twice gives the same job as running it once, so a job that was already
canonicalized (a revert, a resubmitted spec) can pass through it safely.
"""
from __future__ import annotations

import functools
import posixpath
import re
from typing import Any

import msgspec
import msgspec.inspect

from caravan.fsm.structs import (
    Constraint,
    EphemeralDisk,
    Job,
    LogConfig,
    NetworkResource,
    ReschedulePolicy,
    Resources,
    RestartPolicy,
    ScalingPolicy,
    Service,
    Task,
    TaskGroup,
    UpdateStrategy,
)

SECOND = 1_000_000_000
MINUTE = 60 * SECOND
HOUR = 60 * MINUTE

SIGNALS_LTARGET = "${attr.os.signals}"


def default_update_strategy() -> UpdateStrategy:
    """``api.DefaultUpdateStrategy``: what every service group gets without an update block."""
    return UpdateStrategy(
        Stagger=30 * SECOND, MaxParallel=1, HealthCheck="checks",
        MinHealthyTime=10 * SECOND, HealthyDeadline=5 * MINUTE,
        ProgressDeadline=10 * MINUTE, AutoRevert=False, AutoPromote=False, Canary=0)


def default_migrate_strategy() -> dict:
    """``api.DefaultMigrateStrategy``: what a service group's migrate block starts from."""
    return {"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * SECOND,
            "HealthyDeadline": 5 * MINUTE}


def default_restart_policy(job_type: str | None) -> RestartPolicy:
    """Restart defaults by job type; anything not service/system gets the batch ones."""
    if job_type in ("service", "system"):
        return RestartPolicy(Attempts=2, Interval=30 * MINUTE, Delay=15 * SECOND, Mode="fail")
    return RestartPolicy(Attempts=3, Interval=24 * HOUR, Delay=15 * SECOND, Mode="fail")


def default_reschedule_policy(job_type: str | None) -> ReschedulePolicy:
    """``api.NewDefaultReschedulePolicy``: service jobs retry forever with exponential
    delays from 30s up to 1h; batch jobs once a day after 5s; others never."""
    if job_type == "service":
        return ReschedulePolicy(Attempts=0, Interval=0, Delay=30 * SECOND,
                                DelayFunction="exponential", MaxDelay=HOUR, Unlimited=True)
    if job_type == "batch":
        return ReschedulePolicy(Attempts=1, Interval=24 * HOUR, Delay=5 * SECOND,
                                DelayFunction="constant", MaxDelay=0, Unlimited=False)
    return ReschedulePolicy(Attempts=0, Interval=0, Delay=0, DelayFunction="", MaxDelay=0,
                            Unlimited=False)


def canonicalize(job: Job, region: str = "global") -> None:
    """Fill defaults in place on a job decoded from a request (never on stored rows)."""
    _drop_empty(job)
    _canonicalize_job_fields(job, region)
    # The job-level update block is canonicalized first and then inherited by groups,
    # as in api.Job.Canonicalize; only service jobs get a default one.
    api_update = _copy(job.Update)
    if api_update is not None:
        _fill_none(api_update, default_update_strategy())
    elif job.Type == "service":
        api_update = default_update_strategy()
    _canonicalize_placement(job)
    for tg in _items(job.TaskGroups):
        _canonicalize_group(job, tg, api_update)
    job.Update = _job_level_update(api_update)
    job.Reschedule = None       # now in every group, as in Nomad's stored job
    if job.Periodic is not None:
        p = job.Periodic
        p.Enabled = True if p.Enabled is None else p.Enabled
        p.Spec = "" if p.Spec is None else p.Spec
        p.SpecType = "cron" if p.SpecType is None else p.SpecType
        p.ProhibitOverlap = False if p.ProhibitOverlap is None else p.ProhibitOverlap
        p.TimeZone = p.TimeZone or "UTC"
    if job.ParameterizedJob is not None and not job.ParameterizedJob.Payload:
        job.ParameterizedJob.Payload = "optional"
    _add_signal_constraints(job)


# --- job and groups ------------------------------------------------------------------


def inherit_job_migrate(job_raw: Any) -> Any:
    """The first step of ``api.TaskGroup.Canonicalize`` for migrate blocks, on the job
    object as decoded from a request: the job's own ``Migrate`` block (``structs.Job``
    has none, so it would otherwise be lost) laid under each group's, whose non-null
    fields win. Returns the job object without the job-level block; anything that is
    not an object is returned as it is (type errors are the caller's)."""
    if not isinstance(job_raw, dict) or not isinstance(job_raw.get("Migrate"), dict):
        return job_raw
    migrate = job_raw["Migrate"]
    out = {k: v for k, v in job_raw.items() if k != "Migrate"}
    groups = job_raw.get("TaskGroups")
    if isinstance(groups, list):
        out["TaskGroups"] = [_with_job_migrate(g, migrate) for g in groups]
    return out


def _with_job_migrate(group: Any, migrate: dict) -> Any:
    if not isinstance(group, dict):
        return group
    own = group.get("Migrate")
    if own is None:
        return {**group, "Migrate": dict(migrate)}
    if not isinstance(own, dict):
        return group
    return {**group, "Migrate": {**migrate, **{k: v for k, v in own.items() if v is not None}}}



def _canonicalize_job_fields(job: Job, region: str) -> None:
    job.Region = job.Region or region or "global"
    job.Namespace = job.Namespace or "default"
    if job.ID is None:
        job.ID = ""
    if job.Name is None:
        job.Name = job.ID
    if job.Type is None:
        job.Type = "service"
    if job.Priority is None:
        job.Priority = 50
    if not job.Datacenters:
        job.Datacenters = ["*"]  # 1.5+: any datacenter
    job.NodePool = job.NodePool or "default"  # 1.6+: the admission mutator's default pool


def _job_level_update(api_update: UpdateStrategy | None) -> UpdateStrategy:
    """What ``structs.Job.Update`` holds: only Stagger and MaxParallel survive (and only
    when MaxParallel > 0); the rest now lives in the groups. It is a value, never null."""
    out = UpdateStrategy(Stagger=0, MaxParallel=0, HealthCheck="", MinHealthyTime=0,
                         HealthyDeadline=0, ProgressDeadline=0, AutoRevert=False,
                         AutoPromote=False, Canary=0)
    if api_update is not None and (api_update.MaxParallel or 0) > 0:
        out.Stagger = api_update.Stagger or 0
        out.MaxParallel = api_update.MaxParallel
    return out


def _canonicalize_group(job: Job, tg: TaskGroup, api_update: UpdateStrategy | None) -> None:
    if tg.Name is None:
        tg.Name = ""
    if tg.Count is None:
        tg.Count = tg.Scaling.Min if tg.Scaling is not None and tg.Scaling.Min is not None else 1
    if job.Type == "system" and tg.Count == 0:
        tg.Count = 1
    if tg.Scaling is not None:
        _canonicalize_scaling(tg.Scaling, tg.Count)

    if tg.EphemeralDisk is None:
        tg.EphemeralDisk = EphemeralDisk()
    _fill_none(tg.EphemeralDisk, EphemeralDisk(Sticky=False, SizeMB=300, Migrate=False))

    # Group update: the job's block merged under the group's; a job block is inherited
    # only when it is non-empty (api.UpdateStrategy.Empty).
    if api_update is not None and tg.Update is not None:
        tg.Update = _merge(api_update, tg.Update)
    elif api_update is not None and not _update_empty(api_update):
        tg.Update = _copy(api_update)
    if tg.Update is not None:
        _fill_none(tg.Update, default_update_strategy())

    tg.RestartPolicy = _merge(default_restart_policy(job.Type), tg.RestartPolicy)
    # service groups: the default migrate strategy under the group's own (which already
    # holds the job's, inherit_job_migrate); other types keep theirs for validation
    if job.Type == "service" and (tg.Migrate is None or isinstance(tg.Migrate, dict)):
        own = {k: v for k, v in (tg.Migrate or {}).items() if v is not None}
        tg.Migrate = {**default_migrate_strategy(), **own}

    # Reschedule: the job's block under the group's, then the job type's defaults for
    # what neither sets; system jobs get none unless they ask (validation refuses it).
    if job.Reschedule is not None and tg.ReschedulePolicy is not None:
        tg.ReschedulePolicy = _merge(job.Reschedule, tg.ReschedulePolicy)
    elif job.Reschedule is not None:
        tg.ReschedulePolicy = _copy(job.Reschedule)
    if tg.ReschedulePolicy is None and job.Type != "system":
        tg.ReschedulePolicy = default_reschedule_policy(job.Type)
    if tg.ReschedulePolicy is not None:
        _fill_none(tg.ReschedulePolicy, default_reschedule_policy(job.Type))

    for net in _items(tg.Networks):
        _canonicalize_network(net)
    for svc in _items(tg.Services):
        _canonicalize_service(svc, job.Name or "", tg.Name, None)
    _canonicalize_placement(tg)
    for task in _items(tg.Tasks):
        _canonicalize_task(job, tg, task)


def _canonicalize_scaling(policy: ScalingPolicy, count: int) -> None:
    """``api.ScalingPolicy.Canonicalize``: enabled, the group's count as minimum,
    horizontal. A missing maximum stays unset, and validation refuses it (it must be
    given). The ID and target are the state's to set."""
    if policy.Enabled is None:
        policy.Enabled = True
    if policy.Min is None:
        policy.Min = count
    if not policy.Type:
        policy.Type = "horizontal"


def _canonicalize_placement(owner: Job | TaskGroup | Task) -> None:
    """``api.Affinity`` / ``api.Spread`` ``Canonicalize``: an unset weight is 50."""
    for block in _items(owner.Affinities) + _items(getattr(owner, "Spreads", None)):
        if block.Weight is None:
            block.Weight = 50


def _update_empty(u: UpdateStrategy) -> bool:
    return not (u.Stagger or u.MaxParallel or u.HealthCheck or u.MinHealthyTime
                or u.HealthyDeadline or u.ProgressDeadline or u.AutoRevert
                or u.AutoPromote or u.Canary)


# --- tasks ---------------------------------------------------------------------------


def _canonicalize_task(job: Job, tg: TaskGroup, task: Task) -> None:
    _canonicalize_placement(task)
    task.Resources = _canonicalize_resources(task.Resources)
    if task.Lifecycle is not None and not task.Lifecycle.Hook and not task.Lifecycle.Sidecar:
        task.Lifecycle = None   # api.TaskLifecycle.Empty(): no block at all
    for mount in _items(task.VolumeMounts):
        mount.PropagationMode = mount.PropagationMode or "private"
    if not task.KillTimeout:  # nil in the API, and 0 on the server, both mean 5s
        task.KillTimeout = 5 * SECOND
    if task.LogConfig is None:
        task.LogConfig = LogConfig()
    _fill_none(task.LogConfig, LogConfig(MaxFiles=10, MaxFileSizeMB=10))

    for art in _items(task.Artifacts):
        if art.GetterMode is None:
            art.GetterMode = "any"
        if art.RelativeDest is None:
            if art.GetterMode == "file":
                art.RelativeDest = _go_join("local", _go_base(art.GetterSource))
            else:
                art.RelativeDest = "local/"

    if task.Vault is not None:
        v = task.Vault
        v.Env = True if v.Env is None else v.Env
        v.ChangeMode = v.ChangeMode or "restart"
        v.ChangeSignal = (v.ChangeSignal or "SIGHUP").upper()

    for tmpl in _items(task.Templates):
        tmpl.ChangeMode = tmpl.ChangeMode or "restart"
        if tmpl.ChangeSignal:
            tmpl.ChangeSignal = tmpl.ChangeSignal.upper()
        elif tmpl.ChangeMode == "signal":
            tmpl.ChangeSignal = "SIGHUP"
        if tmpl.Splay is None:
            tmpl.Splay = 5 * SECOND
        tmpl.Perms = tmpl.Perms or "0644"
        tmpl.LeftDelim = tmpl.LeftDelim or "{{"
        tmpl.RightDelim = tmpl.RightDelim or "}}"

    for svc in _items(task.Services):
        _canonicalize_service(svc, job.Name or "", tg.Name or "", task.Name)


def _canonicalize_resources(res: Resources | None) -> Resources:
    res = res if res is not None else Resources()
    # Setting cores alone means no CPU shares (api.Resources.Canonicalize).
    if res.Cores is None:
        res.Cores = 0
        if res.CPU is None:
            res.CPU = 100
    if res.CPU is None:
        res.CPU = 0
    _fill_none(res, Resources(MemoryMB=300, MemoryMaxMB=0, DiskMB=0, IOPS=0))
    for net in _items(res.Networks):
        _canonicalize_network(net)
    return res


def _canonicalize_network(net: NetworkResource) -> None:
    """``NetworkResource.Canonicalize``: a port without a host network is on the
    node's ``default`` one."""
    if net.MBits is None:  # deprecated; 1.x no longer defaults it to 10
        net.MBits = 0
    for port in (*_items(net.ReservedPorts), *_items(net.DynamicPorts)):
        if not port.HostNetwork:
            port.HostNetwork = "default"


def _canonicalize_service(svc: Service, job_name: str, group: str, task: str | None) -> None:
    if not svc.Name:
        svc.Name = f"{job_name}-{group}-{task}" if task is not None else f"{job_name}-{group}"
    where = task if task is not None else "group"
    svc.Name = _replace_env(svc.Name, {
        "JOB": job_name, "TASKGROUP": group, "TASK": where,
        "BASE": f"{job_name}-{group}-{where}",
    })
    svc.AddressMode = svc.AddressMode or "auto"
    svc.Provider = svc.Provider or "consul"
    for check in _items(svc.Checks):
        if not check.Name:
            check.Name = f'service: "{svc.Name}" check'


_ENV_REF = re.compile(r"\$\{([^}]+)\}")


def _replace_env(text: str, env: dict[str, str]) -> str:
    """``helper/args.ReplaceEnv``: ``${KEY}`` for known keys; unknown ones stay as written."""
    return _ENV_REF.sub(lambda m: env.get(m.group(1), m.group(0)), text)


# --- implied constraints ---------------------------------------------------------------


def _add_signal_constraints(job: Job) -> None:
    """A group whose tasks need signals (kill_signal, or a template/vault change_mode of
    "signal") may only run where the OS supports them: Nomad's jobImpliedConstraints."""
    for tg in _items(job.TaskGroups):
        signals: set[str] = set()
        for task in _items(tg.Tasks):
            if task.Vault is not None and task.Vault.ChangeMode == "signal":
                signals.add(task.Vault.ChangeSignal or "")
            if task.KillSignal:
                signals.add(task.KillSignal)
            for tmpl in _items(task.Templates):
                if tmpl.ChangeMode == "signal":
                    signals.add(tmpl.ChangeSignal)
        if not signals:
            continue
        wanted = Constraint(LTarget=SIGNALS_LTARGET, RTarget=",".join(sorted(signals)),
                            Operand="set_contains")
        if wanted not in (tg.Constraints or []):
            tg.Constraints = [*(tg.Constraints or []), wanted]


# --- helpers ---------------------------------------------------------------------------


def _items(seq: list[Any] | None) -> list[Any]:
    """The non-null elements of an optional list (odd input must not crash us)."""
    return [x for x in seq or () if x is not None]


def _drop_empty(obj: msgspec.Struct) -> None:
    """Empty lists and maps become null throughout the spec, as Nomad does so that
    comparing two versions of a spec is stable. Opaque maps (task Config) are not
    descended into: only their emptiness matters. Only fields that can hold a list,
    a map or a struct are visited (see ``_container_fields``)."""
    for name in _container_fields(type(obj)):
        value = getattr(obj, name)
        if value is None:
            continue
        if isinstance(value, (list, dict)):
            if not value:
                setattr(obj, name, None)
            elif isinstance(value, list):
                for item in value:
                    if isinstance(item, msgspec.Struct):
                        _drop_empty(item)
        elif isinstance(value, msgspec.Struct):
            _drop_empty(value)


@functools.cache
def _container_fields(cls: type) -> tuple[str, ...]:
    """The fields of a struct type whose declared type is not a plain scalar."""
    scalars = (msgspec.inspect.IntType, msgspec.inspect.StrType, msgspec.inspect.BoolType,
               msgspec.inspect.FloatType, msgspec.inspect.BytesType, msgspec.inspect.NoneType)
    out = []
    for field in msgspec.inspect.type_info(cls).fields:
        kinds = field.type.types if isinstance(field.type, msgspec.inspect.UnionType) \
            else (field.type,)
        if not all(isinstance(k, scalars) for k in kinds):
            out.append(field.name)
    return tuple(out)


def _fill_none(target: msgspec.Struct, defaults: msgspec.Struct) -> None:
    """Set every null field of ``target`` that ``defaults`` has a value for."""
    for name in target.__struct_fields__:
        if getattr(target, name) is None:
            default = getattr(defaults, name)
            if default is not None:
                setattr(target, name, default)


def _merge(base: msgspec.Struct, over: msgspec.Struct | None) -> Any:
    """A copy of ``base`` with every non-null field of ``over`` laid on top (the Go
    ``Merge`` methods of pointer structs)."""
    out = _copy(base)
    if over is not None:
        for name in over.__struct_fields__:
            value = getattr(over, name)
            if value is not None:
                setattr(out, name, value)
    return out


def _copy(obj: Any) -> Any:
    return None if obj is None else msgspec.structs.replace(obj)


def _go_base(path: str) -> str:
    """Go's ``path.Base``: last element, trailing slashes ignored, "." for empty."""
    if not path:
        return "."
    stripped = path.rstrip("/")
    if not stripped:
        return "/"
    return stripped.rsplit("/", 1)[-1]


def _go_join(*parts: str) -> str:
    """Go's ``filepath.Join``: join non-empty parts with "/" and clean the result."""
    joined = "/".join(p for p in parts if p)
    return posixpath.normpath(joined) if joined else ""
