"""Nomad-compatible job diffs (``JobDiff`` as returned by ``/v1/job/:id/plan`` with
``Diff: true`` and by ``/v1/job/:id/versions?diffs=true``).

This reproduces the behaviour of Nomad 1.x ``nomad/structs/diff.go`` together with
``helper/flatmap``:

* Every level (job, group, task, nested object) first flattens its *primitive* fields
  into ``{name: string}``: scalars become strings (ints and nanosecond durations as
  decimal, bools as ``true``/``false``), string maps become ``Name[key]`` entries,
  and lists, nested objects and free-form (``interface{}``) values are skipped.
  Nested blocks are diffed separately as ``ObjectDiff``\\ s.
* Nomad diffs its *server* structs, whose scalar fields are not pointers. Our structs
  keep the API's ``X | None``; an unset scalar therefore renders as Go's zero value
  (``"0"``, ``"false"``, ``""``), which is what Nomad shows for the same job.
* ``FieldDiff.Old``/``New`` is ``""`` for the missing side, so a change from ``""``
  reads as "Added". Without ``contextual`` unchanged fields are dropped; with it the
  fields of *changed objects* are kept with type ``None`` (job/group/task primitive
  fields are never contextual, as in Nomad).
* Field lists are sorted by (Name, Old, New); lists of same-kind objects (constraints,
  networks, services, ...) are sorted by Nomad's ``ObjectDiff.Less``; the objects of
  one job/group/task keep Nomad's fixed append order.

Public API: :func:`job_diff` and :func:`versions_diffs`. This module diffs jobs, groups
and tasks; the generic rendering, flattening and builders are in ``diff_values``, the
blocks inside groups and tasks in ``diff_blocks``.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Any

import msgspec

from caravan.fsm.structs import Job, Task, TaskGroup
from caravan.server.jobspec.diff_blocks import (
    artifact_key_fn,
    network_diffs,
    resources_diff,
    service_diffs,
    template_diffs,
    vault_diff,
)
from caravan.server.jobspec.diff_values import (
    ADDED,
    DELETED,
    EDITED,
    NONE,
    field_diffs,
    flatten_primitive,
    full_map_diff,
    keyed_diffs,
    object_diff,
    presence_type,
    primitive_object_diff,
    primitive_object_set_diff,
    string_set_diff,
)

# Job fields Nomad never diffs: bookkeeping that changes on every write, secrets,
# and the job-level Update block (it is only a default merged into the groups).
_JOB_FILTER = frozenset({
    "ID", "Status", "StatusDescription", "Version", "Stable", "CreateIndex",
    "ModifyIndex", "JobModifyIndex", "Update", "SubmitTime", "NomadTokenID", "VaultToken",
})


def _task_diff(old: Task | None, new: Task | None, contextual: bool) -> dict:
    """TaskDiff. Type is Edited whenever the tasks differ at all, even in a block the
    diff does not show (Nomad compares with reflect.DeepEqual)."""
    if old is None and new is None:
        return {"Type": NONE, "Name": "", "Fields": None, "Objects": None, "Annotations": None}
    skip = ("Name", "Config")
    if old is None:
        type_, name = ADDED, new.Name
        fields = field_diffs(None, flatten_primitive(new, skip), False)
    elif new is None:
        type_, name = DELETED, old.Name
        fields = field_diffs(flatten_primitive(old, skip), None, False)
    else:
        if old.Name != new.Name:
            raise ValueError(f"can not diff tasks with different names: {old.Name!r} and {new.Name!r}")
        type_, name = (NONE if old == new else EDITED), new.Name
        fields = field_diffs(flatten_primitive(old, skip), flatten_primitive(new, skip), False)
    o, n = old or Task(), new or Task()

    objects: list[dict] = []
    objects += primitive_object_set_diff(o.Constraints, n.Constraints, "Constraint", contextual) or []
    objects += primitive_object_set_diff(_dict_list(o.Affinities), _dict_list(n.Affinities),
                                          "Affinity", contextual) or []
    for d in (
        full_map_diff(o.Config, n.Config, "Config", contextual),
        resources_diff(o.Resources, n.Resources, contextual),
        primitive_object_diff(o.LogConfig, n.LogConfig, "LogConfig", contextual),
        primitive_object_diff(o.DispatchPayload, n.DispatchPayload, "DispatchPayload", contextual),
    ):
        if d is not None:
            objects.append(d)
    objects += primitive_object_set_diff(o.Artifacts, n.Artifacts, "Artifact", contextual,
                                          key=artifact_key_fn(o.Artifacts, n.Artifacts)) or []
    objects += service_diffs(o.Services, n.Services, contextual) or []
    vault = vault_diff(o.Vault, n.Vault, contextual)
    if vault is not None:
        objects.append(vault)
    objects += template_diffs(o.Templates, n.Templates, contextual) or []
    lifecycle = primitive_object_diff(o.Lifecycle, n.Lifecycle, "TaskLifecycle", contextual)
    if lifecycle is not None:
        objects.append(lifecycle)
    objects += primitive_object_set_diff(o.VolumeMounts, n.VolumeMounts, "VolumeMount",
                                          contextual) or []
    return {"Type": type_, "Name": name or "", "Fields": fields, "Objects": objects or None,
            "Annotations": None}


def _dict_list(value: Any) -> list[dict] | None:
    """Blocks diffed as lists of JSON objects (Affinities), typed or not."""
    if not isinstance(value, list):
        return None
    return [msgspec.to_builtins(v) if isinstance(v, msgspec.Struct) else v
            for v in value if isinstance(v, (dict, msgspec.Struct))] or None


def _task_group_diff(old: TaskGroup | None, new: TaskGroup | None, contextual: bool) -> dict:
    """TaskGroupDiff; ``Updates`` is left for the scheduler's plan annotations."""
    if old is None and new is None:
        return {"Type": NONE, "Name": "", "Fields": None, "Objects": None, "Tasks": None,
                "Updates": None}
    skip = ("Name", "ShutdownDelay")
    if old is None:
        type_, name = ADDED, new.Name
        fields = field_diffs(None, flatten_primitive(new, skip), False)
    elif new is None:
        type_, name = DELETED, old.Name
        fields = field_diffs(flatten_primitive(old, skip), None, False)
    else:
        if old.Name != new.Name:
            raise ValueError(f"can not diff task groups with different names: "
                             f"{old.Name!r} and {new.Name!r}")
        type_, name = (NONE if old == new else EDITED), new.Name
        old_flat, new_flat = flatten_primitive(old, skip), flatten_primitive(new, skip)
        # ShutdownDelay is a pointer in Nomad's group: it only shows between two
        # existing groups, with "" for unset.
        for flat, g in ((old_flat, old), (new_flat, new)):
            flat["ShutdownDelay"] = "" if g.ShutdownDelay is None else str(g.ShutdownDelay)
        fields = field_diffs(old_flat, new_flat, False)
    o, n = old or TaskGroup(), new or TaskGroup()

    objects: list[dict] = []
    objects += primitive_object_set_diff(o.Constraints, n.Constraints, "Constraint", contextual) or []
    objects += primitive_object_set_diff(_dict_list(o.Affinities), _dict_list(n.Affinities),
                                          "Affinity", contextual) or []
    resched_old = o.ReschedulePolicy if isinstance(o.ReschedulePolicy, dict) else None
    resched_new = n.ReschedulePolicy if isinstance(n.ReschedulePolicy, dict) else None
    for d in (
        primitive_object_diff(o.RestartPolicy, n.RestartPolicy, "RestartPolicy", contextual),
        primitive_object_diff(resched_old, resched_new, "ReschedulePolicy", contextual),
        primitive_object_diff(o.EphemeralDisk, n.EphemeralDisk, "EphemeralDisk", contextual),
        primitive_object_diff(o.Update, n.Update, "Update", contextual, skip=("Stagger",)),
    ):
        if d is not None:
            objects.append(d)
    objects += network_diffs(o.Networks, n.Networks, contextual) or []
    objects += service_diffs(o.Services, n.Services, contextual) or []
    objects += keyed_diffs(   # volumes by their name in the group's map
        sorted((o.Volumes or {}).items()), sorted((n.Volumes or {}).items()),
        lambda kv: kv[0], lambda a, b: primitive_object_diff(
            a[1] if a else None, b[1] if b else None, "Volume", contextual)) or []
    scaling = _scaling_diff(o.Scaling, n.Scaling, contextual)
    if scaling is not None:
        objects.append(scaling)
    tasks = _by_name_diffs(o.Tasks, n.Tasks, lambda a, b: _task_diff(a, b, contextual))
    return {"Type": type_, "Name": name or "", "Fields": fields, "Objects": objects or None,
            "Tasks": tasks, "Updates": None}


def _scaling_diff(old, new, contextual: bool) -> dict | None:
    """Nomad's ``scalingPolicyDiff``: Min, Max and Enabled as fields (the ID, type and
    indexes are the server's), then the Policy and Target maps as objects."""
    if old == new:
        return None
    skip = ("CreateIndex", "ModifyIndex", "ID", "Type", "Namespace", "Target", "Policy")
    fields = field_diffs(flatten_primitive(old, skip), flatten_primitive(new, skip),
                          contextual)
    objects = [d for d in (
        full_map_diff(old.Policy if old else None, new.Policy if new else None, "Policy",
                       contextual),
        full_map_diff(old.Target if old else None, new.Target if new else None, "Target",
                       contextual)) if d is not None]
    if not fields and not objects:
        return None
    return object_diff(presence_type(old, new), "Scaling", fields, objects)


def _by_name_diffs(old: list | None, new: list | None, diff: Callable[[Any, Any], dict]) -> list[dict] | None:
    """Groups and tasks are matched by name and listed by name, unchanged ones
    included (with Type "None")."""
    old_map = {x.Name or "": x for x in old or ()}
    new_map = {x.Name or "": x for x in new or ()}
    out = [diff(x, new_map.get(k)) for k, x in old_map.items()]
    out += [diff(None, x) for k, x in new_map.items() if k not in old_map]
    out.sort(key=lambda d: d["Name"])
    return out or None


def job_diff(old: Job | None, new: Job | None, contextual: bool = False) -> dict:
    """Nomad's ``JobDiff`` of ``old`` -> ``new`` as a JSON-ready dict.

    ``old`` None means the job is being added (plan of a new job), ``new`` None that it
    is deleted. Nomad's plan and version-history endpoints call this with
    ``contextual=True``. Raises ``ValueError`` when both jobs exist with different IDs.
    """
    result = {"Type": NONE, "ID": "", "Fields": None, "Objects": None, "TaskGroups": None}
    if old is None and new is None:
        return result
    if old is None:
        result["Type"], result["ID"] = ADDED, new.ID or ""
        fields = field_diffs(None, flatten_primitive(new, _JOB_FILTER), False)
    elif new is None:
        result["Type"], result["ID"] = DELETED, old.ID or ""
        fields = field_diffs(flatten_primitive(old, _JOB_FILTER), None, False)
    else:
        if (old.ID or "") != (new.ID or ""):
            raise ValueError("can not diff jobs with different IDs")
        result["ID"] = new.ID or ""
        fields = field_diffs(flatten_primitive(old, _JOB_FILTER),
                              flatten_primitive(new, _JOB_FILTER), False)
    o, n = old or Job(), new or Job()

    objects: list[dict] = []
    datacenters = string_set_diff(o.Datacenters, n.Datacenters, "Datacenters", contextual)
    if datacenters is not None and datacenters["Type"] != NONE:
        objects.append(datacenters)
    objects += primitive_object_set_diff(o.Constraints, n.Constraints, "Constraint", contextual) or []
    objects += primitive_object_set_diff(_dict_list(o.Affinities), _dict_list(n.Affinities),
                                          "Affinity", contextual) or []
    groups = _by_name_diffs(o.TaskGroups, n.TaskGroups,
                            lambda a, b: _task_group_diff(a, b, contextual))
    periodic = primitive_object_diff(o.Periodic, n.Periodic, "Periodic", contextual)
    if periodic is not None:
        objects.append(periodic)
    param = _parameterized_diff(o.ParameterizedJob, n.ParameterizedJob, contextual)
    if param is not None:
        objects.append(param)

    result["Fields"], result["Objects"], result["TaskGroups"] = fields, objects or None, groups
    if result["Type"] == NONE and any(
            d["Type"] != NONE for d in (fields or []) + objects + (groups or [])):
        result["Type"] = EDITED
    return result


def _parameterized_diff(old: Any, new: Any, contextual: bool) -> dict | None:
    if old == new:
        return None
    fields = field_diffs(flatten_primitive(old), flatten_primitive(new), contextual)
    objects = []
    for set_name in ("MetaOptional", "MetaRequired"):
        d = string_set_diff(getattr(old, set_name, None), getattr(new, set_name, None),
                             set_name, contextual)
        if d is not None:
            objects.append(d)
    return object_diff(presence_type(old, new), "ParameterizedJob", fields, objects)


def versions_diffs(versions: list[Job], contextual: bool = True) -> list[dict]:
    """``Diffs`` of ``GET /v1/job/:id/versions?diffs=true``: given versions newest first,
    ``Diffs[i]`` is the change from ``versions[i+1]`` to ``versions[i]``. Nomad builds
    these with contextual diffs, hence the default."""
    return [job_diff(versions[i + 1], versions[i], contextual) for i in range(len(versions) - 1)]
