"""Whether a job change updates an allocation in place or destructively (Nomad's
``genericAllocUpdateFn`` and ``tasksUpdated``)."""
from __future__ import annotations

from typing import Any

from caravan.fsm.structs import Affinity, Allocation, Job, NetworkResource, Resources, Task, TaskGroup

IGNORE, INPLACE, DESTRUCTIVE = "ignore", "inplace", "destructive"


def classify_update(alloc: Allocation, job: Job, group: str) -> str:
    """IGNORE, INPLACE or DESTRUCTIVE for ``alloc`` against ``job`` (genericAllocUpdateFn)."""
    old = alloc.Job
    if old is None:                 # cannot prove what it runs: replace it
        return DESTRUCTIVE
    if old.JobModifyIndex == job.JobModifyIndex:
        return IGNORE
    if tasks_updated(old, job, group) is not None:
        return DESTRUCTIVE
    # A finished batch alloc needs nothing from an in-place change: it no longer runs.
    return IGNORE if alloc.terminal() else INPLACE


def tasks_updated(old: Job, new: Job, group: str) -> str | None:
    """The first change that needs a new allocation, as a label; None if there is none.

    Follows Nomad 1.x ``tasksUpdated``, over the fields Caravan models: task set,
    ephemeral disk, group and task networks (static ports, not dynamic values),
    affinities, spreads, volumes; per task driver, user, config, env, artifacts, vault,
    templates, volume mounts, meta merged job < group < task, CPU, cores, memory,
    memory max, devices.
    Everything else (count, constraints, update, restart, services, kill timeout, log
    config...) is in place; constraints are re-checked by the worker's in-place fit."""
    a, b = group_of(old, group), group_of(new, group)
    if a is None or b is None:
        return "task group"
    if len(a.Tasks or []) != len(b.Tasks or []):
        return "number of tasks"
    checks = (("ephemeral disk", a.EphemeralDisk, b.EphemeralDisk),
              ("network", _networks(a.Networks), _networks(b.Networks)),
              ("affinities", _affinities(old, a), _affinities(new, b)),
              ("spreads", _list(old.Spreads) + _list(a.Spreads),
               _list(new.Spreads) + _list(b.Spreads)),
              ("volumes", _norm(a.Volumes), _norm(b.Volumes)))
    for label, before, after in checks:
        if before != after:
            return label
    for at in a.Tasks or []:
        bt = next((t for t in b.Tasks or [] if t.Name == at.Name), None)
        if bt is None:
            return "task deleted"
        task_label = _task_updated(old, a, at, new, b, bt)
        if task_label is not None:
            return f"task {at.Name}: {task_label}"
    return None


def _task_updated(old: Job, ga: TaskGroup, a: Task, new: Job, gb: TaskGroup, b: Task) -> str | None:
    ra, rb = a.Resources or Resources(), b.Resources or Resources()
    checks = (("driver", a.Driver, b.Driver), ("user", a.User, b.User),
              ("config", _norm(a.Config), _norm(b.Config)), ("env", _norm(a.Env), _norm(b.Env)),
              ("artifacts", _norm(a.Artifacts), _norm(b.Artifacts)), ("vault", a.Vault, b.Vault),
              ("templates", _norm(a.Templates), _norm(b.Templates)),
              ("volume mounts", _norm(a.VolumeMounts), _norm(b.VolumeMounts)),
              ("meta", _meta(old, ga, a), _meta(new, gb, b)),
              ("network", _networks(ra.Networks), _networks(rb.Networks)),
              ("cpu", ra.CPU, rb.CPU), ("cores", ra.Cores, rb.Cores),
              ("memory", ra.MemoryMB, rb.MemoryMB), ("memory max", ra.MemoryMaxMB, rb.MemoryMaxMB),
              ("devices", _norm(ra.Devices), _norm(rb.Devices)))
    for label, before, after in checks:
        if before != after:
            return label
    return None


def _norm(value: Any) -> Any:
    """Nil and empty collections compare equal, as Go's ``maps.Equal`` on nil maps."""
    return None if value in (None, {}, []) else value


def _list(value: Any) -> list[Any]:
    return list(value) if value else []


def group_of(job: Job, name: str) -> TaskGroup | None:
    return next((tg for tg in job.TaskGroups or [] if tg.Name == name), None)


def _meta(job: Job, tg: TaskGroup, task: Task) -> dict[str, str]:
    """``Job.CombinedTaskMeta``: task meta over group meta over job meta."""
    return {**(job.Meta or {}), **(tg.Meta or {}), **(task.Meta or {})}


def _affinities(job: Job, tg: TaskGroup) -> list[Affinity]:
    return _list(job.Affinities) + _list(tg.Affinities) + \
        [x for t in tg.Tasks or [] for x in _list(t.Affinities)]


def _networks(nets: list[NetworkResource] | None) -> list[tuple[object, ...]]:
    """What may not change in place: mode, bandwidth, DNS and the port map, where a
    dynamic port's value is whatever the node offered, so only its label counts."""
    def key(n: NetworkResource) -> tuple[object, ...]:
        static = sorted((p.Label, p.Value, p.To, p.HostNetwork) for p in n.ReservedPorts or [])
        dynamic = sorted((p.Label, -1, p.To, p.HostNetwork) for p in n.DynamicPorts or [])
        return (n.Mode, n.MBits or 0, _norm(n.DNS), static + dynamic)
    return [key(n) for n in nets or []]
