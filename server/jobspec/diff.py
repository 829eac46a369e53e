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

Public API: :func:`job_diff` and :func:`versions_diffs`.
"""
from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import msgspec

from caravan.fsm.structs import (
    Job,
    NetworkResource,
    Port,
    Resources,
    Service,
    ServiceCheck,
    Task,
    TaskArtifact,
    TaskGroup,
    Template,
    Vault,
)

NONE, ADDED, DELETED, EDITED = "None", "Added", "Deleted", "Edited"

# Job fields Nomad never diffs: bookkeeping that changes on every write, secrets,
# and the job-level Update block (it is only a default merged into the groups).
_JOB_FILTER = frozenset({
    "ID", "Status", "StatusDescription", "Version", "Stable", "CreateIndex",
    "ModifyIndex", "JobModifyIndex", "Update", "SubmitTime", "NomadTokenID", "VaultToken",
})

# ObjectDiff.Less orders equal names by type: Edited < Added < Deleted < None.
_TYPE_RANK = {EDITED: 0, ADDED: 1, DELETED: 2, NONE: 3}


# --- value rendering -----------------------------------------------------------------


def _go_float(f: float) -> str:
    """Render like Go's ``fmt.Sprintf("%v", float64)`` (shortest digits, ``%e`` when
    the exponent is < -4 or >= 6). Free-form values (driver config) arrive in Nomad as
    JSON numbers, i.e. float64, so ``10000000`` shows as ``1e+07`` there too."""
    if math.isnan(f):
        return "NaN"
    if math.isinf(f):
        return "+Inf" if f > 0 else "-Inf"
    if f == 0:
        return "-0" if math.copysign(1.0, f) < 0 else "0"
    sign, digit_tuple, exp = Decimal(repr(f)).as_tuple()
    digits = list(digit_tuple)
    while len(digits) > 1 and digits[-1] == 0:
        digits.pop()
        exp += 1
    nd = len(digits)
    dp = nd + exp  # position of the decimal point after the first digit run
    ds = "".join(str(d) for d in digits)
    neg = "-" if sign else ""
    x = dp - 1
    if x < -4 or x >= 6:
        mant = ds[0] + ("." + ds[1:] if nd > 1 else "")
        return f"{neg}{mant}e{'-' if x < 0 else '+'}{abs(x):02d}"
    if dp <= 0:
        return f"{neg}0.{'0' * -dp}{ds}"
    if dp >= nd:
        return f"{neg}{ds}{'0' * (dp - nd)}"
    return f"{neg}{ds[:dp]}.{ds[dp:]}"


def _scalar(v: Any) -> str:
    """Render a typed scalar the way flatmap does for a Go struct field."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, int):
        return str(v)
    if isinstance(v, float):
        return _go_float(v)
    return str(v)


def _union_args(tp: Any) -> tuple:
    if typing.get_origin(tp) in (typing.Union, types.UnionType):
        return typing.get_args(tp)
    return (tp,)


def _zero_for(tp: Any) -> str | None:
    """Go zero value of an unset ``X | None`` scalar field, or None when the field is
    not a scalar (a pointer/slice/map in Go, which primitive flattening skips)."""
    args = _union_args(tp)
    if bool in args:
        return "false"
    if int in args or float in args:
        return "0"
    if str in args:
        return ""
    return None


def _is_str_map(tp: Any) -> bool:
    return any(typing.get_origin(a) is dict and typing.get_args(a) == (str, str)
               for a in _union_args(tp))


# --- flattening ------------------------------------------------------------------------


def _flatten_primitive(obj: Any, skip: Iterable[str] = ()) -> dict[str, str]:
    """Primitive fields of one object (Struct, or a plain dict for blocks we keep
    untyped), like ``flatmap.Flatten(obj, filter, true)``."""
    out: dict[str, str] = {}
    if obj is None:
        return out
    skip = set(skip)
    if isinstance(obj, msgspec.Struct):
        for f in msgspec.structs.fields(type(obj)):
            if f.name in skip:
                continue
            v = getattr(obj, f.name)
            if v is None:
                zero = _zero_for(f.type)
                if zero is not None:
                    out[f.name] = zero
            elif isinstance(v, (bool, int, float, str)):
                out[f.name] = _scalar(v)
            elif isinstance(v, dict) and _is_str_map(f.type):
                for k, mv in v.items():
                    out[f"{f.name}[{k}]"] = mv
        return out
    if isinstance(obj, dict):
        for k, v in obj.items():
            if k in skip or v is None:
                continue
            if isinstance(v, (bool, int, float, str)):
                out[k] = _scalar(v)
            elif isinstance(v, dict):
                for mk, mv in v.items():
                    if isinstance(mv, (bool, int, float, str)):
                        out[f"{k}[{mk}]"] = _scalar(mv)
    return out


def _flatten_full(value: Any, prefix: str = "", out: dict[str, str] | None = None) -> dict[str, str]:
    """Free-form flattening (driver Config, check headers), like
    ``flatmap.Flatten(v, nil, false)``: map keys nest as ``a[b]``, list items as
    ``a[0]``, null as ``nil``."""
    if out is None:
        out = {}
    if isinstance(value, dict):
        for k, v in value.items():
            _flatten_full(v, f"{prefix}[{k}]" if prefix else str(k), out)
    elif isinstance(value, (list, tuple)):
        for i, v in enumerate(value):
            _flatten_full(v, f"{prefix}[{i}]", out)
    elif value is None:
        out[prefix] = "nil"
    elif isinstance(value, bool):
        out[prefix] = "true" if value else "false"
    elif isinstance(value, (int, float)):
        out[prefix] = _go_float(float(value))
    else:
        out[prefix] = str(value)
    return out


# --- generic diff builders ------------------------------------------------------------


def _field(type_: str, name: str, old: str, new: str) -> dict:
    return {"Type": type_, "Name": name, "Old": old, "New": new, "Annotations": None}


def _object(type_: str, name: str, fields: list | None = None, objects: list | None = None) -> dict:
    return {"Type": type_, "Name": name, "Fields": fields or None, "Objects": objects or None}


def _field_diff(old: str, new: str, name: str, contextual: bool) -> dict | None:
    if old == new:
        return _field(NONE, name, old, new) if contextual else None
    if old == "":
        return _field(ADDED, name, "", new)
    if new == "":
        return _field(DELETED, name, old, "")
    return _field(EDITED, name, old, new)


def _field_key(f: dict) -> tuple:
    return (f["Name"], f["Old"], f["New"])


def _field_diffs(old: dict[str, str] | None, new: dict[str, str] | None,
                 contextual: bool) -> list[dict] | None:
    """Diff two flat maps; a key missing on one side compares against ""."""
    old, new = old or {}, new or {}
    out = []
    for k in old.keys() | new.keys():
        d = _field_diff(old.get(k, ""), new.get(k, ""), k, contextual)
        if d is not None:
            out.append(d)
    out.sort(key=_field_key)
    return out or None


def _object_key(o: dict) -> tuple:
    fields = o["Fields"] or ()
    objects = o["Objects"] or ()
    return (o["Name"], _TYPE_RANK[o["Type"]], len(fields), len(objects),
            tuple(_field_key(f) for f in fields), tuple(_object_key(x) for x in objects))


def _sort_objects(objs: list[dict]) -> list[dict] | None:
    objs = [o for o in objs if o is not None]
    objs.sort(key=_object_key)
    return objs or None


def _type_from_fields(fields: list[dict] | None) -> str:
    """Added/Deleted/Edited from the changed fields; NONE when nothing changed."""
    kinds = {f["Type"] for f in fields or ()}
    if EDITED in kinds or (ADDED in kinds and DELETED in kinds):
        return EDITED
    if ADDED in kinds:
        return ADDED
    if DELETED in kinds:
        return DELETED
    return NONE


def _presence_type(old: Any, new: Any) -> str:
    """Type of an object diff decided by which side exists (Nomad's nil checks)."""
    if old is None:
        return ADDED
    if new is None:
        return DELETED
    return EDITED


def _primitive_object_diff(old: Any, new: Any, name: str, contextual: bool,
                           skip: Iterable[str] = ()) -> dict | None:
    """A block of scalars (RestartPolicy, Periodic, a Constraint, ...); None when no
    field changed, even in contextual mode."""
    fields = _field_diffs(_flatten_primitive(old, skip), _flatten_primitive(new, skip), contextual)
    type_ = _type_from_fields(fields)
    if type_ == NONE:
        return None
    return _object(type_, name, fields)


def _string_set_diff(old: list[str] | None, new: list[str] | None, name: str,
                     contextual: bool) -> dict | None:
    """Order-insensitive string list (Datacenters, Tags, Policies, ...): one field per
    element, all named after the set."""
    old_set, new_set = set(old or ()), set(new or ())
    if old_set == new_set and not contextual:
        return None
    fields = []
    for k in old_set - new_set:
        fields.append(_field(DELETED, name, k, ""))
    for k in new_set - old_set:
        fields.append(_field(ADDED, name, "", k))
    if contextual:
        fields.extend(_field(NONE, name, k, k) for k in old_set & new_set)
    added, removed = bool(new_set - old_set), bool(old_set - new_set)
    if not fields:
        return None
    type_ = EDITED if added and removed else ADDED if added else DELETED if removed else NONE
    fields.sort(key=_field_key)
    return _object(type_, name, fields)


def _content_key(obj: Any) -> bytes:
    """Stand-in for Nomad's hashstructure: equal content, equal key."""
    return msgspec.json.encode(obj, order="deterministic")


def _primitive_object_set_diff(old: list | None, new: list | None, name: str, contextual: bool,
                               key: Callable[[Any], Any] = _content_key,
                               skip: Iterable[str] = ()) -> list[dict] | None:
    """Unordered list of scalar blocks (Constraint, Affinity, Artifact): elements are
    matched by ``key`` (content by default, so a change is a Deleted + Added pair);
    unchanged elements produce nothing, even in contextual mode."""
    old_map = {key(o): o for o in old or ()}
    new_map = {key(n): n for n in new or ()}
    diffs = [_primitive_object_diff(o, new_map.get(k), name, contextual, skip)
             for k, o in old_map.items()]
    diffs += [_primitive_object_diff(None, n, name, contextual, skip)
              for k, n in new_map.items() if k not in old_map]
    return _sort_objects(diffs)


def _full_map_diff(old: dict | None, new: dict | None, name: str, contextual: bool) -> dict | None:
    """A free-form map diffed key by key (task Config, check Header)."""
    old, new = old or {}, new or {}
    if old == new:
        return None
    type_ = ADDED if not old else DELETED if not new else EDITED
    fields = _field_diffs(_flatten_full(old), _flatten_full(new), contextual)
    return _object(type_, name, fields)


def _keyed_diffs(old: list | None, new: list | None, key: Callable[[Any], Any],
                 diff: Callable[[Any, Any], dict | None]) -> list[dict] | None:
    """Match two lists by key (last one wins on duplicates, like Nomad's maps) and diff
    each pair, then the unmatched new ones."""
    old_map = {key(o): o for o in old or ()}
    new_map = {key(n): n for n in new or ()}
    diffs = [diff(o, new_map.get(k)) for k, o in old_map.items()]
    diffs += [diff(None, n) for k, n in new_map.items() if k not in old_map]
    return _sort_objects(diffs)


# --- resources and networks ------------------------------------------------------------


def _port_diffs(old: list[Port] | None, new: list[Port] | None, dynamic: bool,
                contextual: bool) -> list[dict]:
    """Ports matched by label; a dynamic port's Value is assigned at placement so it
    is not part of the spec diff."""
    name = "Dynamic Port" if dynamic else "Static Port"
    skip = ("Value",) if dynamic else ()
    return _keyed_diffs(
        old, new, lambda p: p.Label,
        lambda o, n: _primitive_object_diff(o, n, name, contextual, skip)) or []


def _dns_diff(old: Any, new: Any, contextual: bool) -> dict | None:
    """DNS block: each list is shown as one comma-joined field."""
    if old == new:
        return None

    def flat(conf: Any) -> dict[str, str]:
        conf = conf if isinstance(conf, dict) else {}
        return {k: ",".join(conf[k]) for k in ("Servers", "Searches", "Options") if conf.get(k)}

    return _object(_presence_type(old, new), "DNS",
                   _field_diffs(flat(old), flat(new), contextual))


def _network_diff(old: NetworkResource | None, new: NetworkResource | None,
                  contextual: bool) -> dict | None:
    if old == new:
        return None
    skip = ("Device", "CIDR", "IP")
    fields = _field_diffs(_flatten_primitive(old, skip), _flatten_primitive(new, skip), contextual)
    objects = _port_diffs(old and old.ReservedPorts, new and new.ReservedPorts, False, contextual)
    objects += _port_diffs(old and old.DynamicPorts, new and new.DynamicPorts, True, contextual)
    dns = _dns_diff(old and old.DNS, new and new.DNS, contextual)
    if dns is not None:
        objects.append(dns)
    return _object(_presence_type(old, new), "Network", fields, objects)


def _network_diffs(old: list[NetworkResource] | None, new: list[NetworkResource] | None,
                   contextual: bool) -> list[dict] | None:
    """Networks have no identity: they are matched by content, so any change shows as
    a Deleted network plus an Added one."""
    old_map = {_content_key(n): n for n in old or ()}
    new_map = {_content_key(n): n for n in new or ()}
    diffs = [_network_diff(o, None, contextual) for k, o in old_map.items() if k not in new_map]
    diffs += [_network_diff(None, n, contextual) for k, n in new_map.items() if k not in old_map]
    return _sort_objects(diffs)


def _device_diff(old: Any, new: Any, contextual: bool) -> dict | None:
    if old == new:
        return None
    return _object(_presence_type(old, new), "Device",
                   _field_diffs(_flatten_primitive(old), _flatten_primitive(new), contextual))


def _resources_diff(old: Resources | None, new: Resources | None, contextual: bool) -> dict | None:
    if old == new:
        return None
    fields = _field_diffs(_flatten_primitive(old), _flatten_primitive(new), contextual)
    objects = list(_network_diffs(old and old.Networks, new and new.Networks, contextual) or ())

    def devices(r: Resources | None) -> list:
        return [d for d in (r.Devices or ()) if isinstance(d, dict)] if r else []

    objects += _keyed_diffs(devices(old), devices(new), lambda d: d.get("Name", ""),
                            lambda o, n: _device_diff(o, n, contextual)) or []
    return _object(_presence_type(old, new), "Resources", fields, objects)


# --- services, vault, templates, artifacts ------------------------------------------------


def _check_diff(old: ServiceCheck | None, new: ServiceCheck | None, contextual: bool) -> dict | None:
    if old == new:
        return None
    fields = _field_diffs(_flatten_primitive(old), _flatten_primitive(new), contextual)
    objects = []
    header = _full_map_diff(old and old.Header, new and new.Header, "Header", contextual)
    if header is not None:
        objects.append(header)
    return _object(_presence_type(old, new), "Check", fields, objects)


def _service_diff(old: Service | None, new: Service | None, contextual: bool) -> dict | None:
    if old == new:
        return None
    fields = _field_diffs(_flatten_primitive(old), _flatten_primitive(new), contextual)
    objects = []
    for set_name in ("CanaryTags", "Tags"):
        d = _string_set_diff(getattr(old, set_name, None), getattr(new, set_name, None),
                             set_name, contextual)
        if d is not None:
            objects.append(d)
    objects += _keyed_diffs(old and old.Checks, new and new.Checks, lambda c: c.Name,
                            lambda o, n: _check_diff(o, n, contextual)) or []
    return _object(_presence_type(old, new), "Service", fields, objects)


def _find_service_match(svc: Service, index: int, candidates: list[Service],
                        taken: list[int]) -> int:
    """Services have no stable ID; Nomad pairs them by a score (same name 3, same port
    label 2, same position 1) and needs more than 2 points for a match."""
    best, best_score = -1, 0
    for i, cand in enumerate(candidates):
        if taken[i] >= 0:
            continue
        score = (1 if i == index else 0) + (2 if svc.PortLabel == cand.PortLabel else 0) \
            + (3 if svc.Name == cand.Name else 0)
        if score > 2 and score > best_score:
            best, best_score = i, score
    return best


def _service_diffs(old: list[Service] | None, new: list[Service] | None,
                   contextual: bool) -> list[dict] | None:
    old, new = old or [], new or []
    if len(old) == 1 and len(new) == 1:
        d = _service_diff(old[0], new[0], contextual)
        return [d] if d else None
    taken = [-1] * len(new)
    diffs = []
    for i, svc in enumerate(old):
        j = _find_service_match(svc, i, new, taken)
        if j < 0:
            diffs.append(_service_diff(svc, None, contextual))
            continue
        taken[j] = i
        diffs.append(_service_diff(svc, new[j], contextual))
    diffs += [_service_diff(None, new[j], contextual) for j, m in enumerate(taken) if m < 0]
    return _sort_objects(diffs)


def _vault_diff(old: Vault | None, new: Vault | None, contextual: bool) -> dict | None:
    if old == new:
        return None
    fields = _field_diffs(_flatten_primitive(old), _flatten_primitive(new), contextual)
    policies = _string_set_diff(old and old.Policies, new and new.Policies, "Policies", contextual)
    return _object(_presence_type(old, new), "Vault", fields, [policies] if policies else None)


def _template_diff(old: Template | None, new: Template | None, contextual: bool) -> dict | None:
    if old == new:
        return None
    fields = _field_diffs(_flatten_primitive(old), _flatten_primitive(new), contextual)
    return _object(_presence_type(old, new), "Template", fields)


def _template_diffs(old: list[Template] | None, new: list[Template] | None,
                    contextual: bool) -> list[dict] | None:
    """Templates are matched by destination path (unique within a task); a lone
    template on each side is always compared with the other."""
    old, new = old or [], new or []
    if len(old) == 1 and len(new) == 1:
        d = _template_diff(old[0], new[0], contextual)
        return [d] if d else None
    taken = [False] * len(new)
    diffs = []
    for tmpl in old:
        j = next((i for i, n in enumerate(new) if not taken[i] and n.DestPath == tmpl.DestPath), -1)
        if j < 0:
            diffs.append(_template_diff(tmpl, None, contextual))
            continue
        taken[j] = True
        diffs.append(_template_diff(tmpl, new[j], contextual))
    diffs += [_template_diff(None, n, contextual) for i, n in enumerate(new) if not taken[i]]
    return _sort_objects(diffs)


def _artifact_key_fn(*lists: list[TaskArtifact] | None) -> Callable[[TaskArtifact], Any]:
    """Artifacts are matched by destination so an edited source reads as an edit; an
    empty or repeated destination (``local/`` is the default) falls back to content,
    otherwise one artifact would hide another."""
    seen: dict[str, int] = {}
    for lst in lists:
        per_list: dict[str, int] = {}
        for a in lst or ():
            per_list[a.RelativeDest or ""] = per_list.get(a.RelativeDest or "", 0) + 1
        for k, n in per_list.items():
            seen[k] = max(seen.get(k, 0), n)

    def key(a: TaskArtifact) -> Any:
        dest = a.RelativeDest or ""
        if dest and seen.get(dest) == 1:
            return ("dest", dest)
        return ("content", _content_key(a))

    return key


# --- tasks, groups, job --------------------------------------------------------------------


def _task_diff(old: Task | None, new: Task | None, contextual: bool) -> dict:
    """TaskDiff. Type is Edited whenever the tasks differ at all, even in a block the
    diff does not show (Nomad compares with reflect.DeepEqual)."""
    if old is None and new is None:
        return {"Type": NONE, "Name": "", "Fields": None, "Objects": None, "Annotations": None}
    skip = ("Name", "Config")
    if old is None:
        type_, name = ADDED, new.Name
        fields = _field_diffs(None, _flatten_primitive(new, skip), False)
    elif new is None:
        type_, name = DELETED, old.Name
        fields = _field_diffs(_flatten_primitive(old, skip), None, False)
    else:
        if old.Name != new.Name:
            raise ValueError(f"can not diff tasks with different names: {old.Name!r} and {new.Name!r}")
        type_, name = (NONE if old == new else EDITED), new.Name
        fields = _field_diffs(_flatten_primitive(old, skip), _flatten_primitive(new, skip), False)
    o, n = old or Task(), new or Task()

    objects: list[dict] = []
    objects += _primitive_object_set_diff(o.Constraints, n.Constraints, "Constraint", contextual) or []
    objects += _primitive_object_set_diff(_dict_list(o.Affinities), _dict_list(n.Affinities),
                                          "Affinity", contextual) or []
    for d in (
        _full_map_diff(o.Config, n.Config, "Config", contextual),
        _resources_diff(o.Resources, n.Resources, contextual),
        _primitive_object_diff(o.LogConfig, n.LogConfig, "LogConfig", contextual),
        _primitive_object_diff(o.DispatchPayload, n.DispatchPayload, "DispatchPayload", contextual),
    ):
        if d is not None:
            objects.append(d)
    objects += _primitive_object_set_diff(o.Artifacts, n.Artifacts, "Artifact", contextual,
                                          key=_artifact_key_fn(o.Artifacts, n.Artifacts)) or []
    objects += _service_diffs(o.Services, n.Services, contextual) or []
    vault = _vault_diff(o.Vault, n.Vault, contextual)
    if vault is not None:
        objects.append(vault)
    objects += _template_diffs(o.Templates, n.Templates, contextual) or []
    lifecycle = _primitive_object_diff(o.Lifecycle, n.Lifecycle, "TaskLifecycle", contextual)
    if lifecycle is not None:
        objects.append(lifecycle)
    objects += _primitive_object_set_diff(o.VolumeMounts, n.VolumeMounts, "VolumeMount",
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
        fields = _field_diffs(None, _flatten_primitive(new, skip), False)
    elif new is None:
        type_, name = DELETED, old.Name
        fields = _field_diffs(_flatten_primitive(old, skip), None, False)
    else:
        if old.Name != new.Name:
            raise ValueError(f"can not diff task groups with different names: "
                             f"{old.Name!r} and {new.Name!r}")
        type_, name = (NONE if old == new else EDITED), new.Name
        old_flat, new_flat = _flatten_primitive(old, skip), _flatten_primitive(new, skip)
        # ShutdownDelay is a pointer in Nomad's group: it only shows between two
        # existing groups, with "" for unset.
        for flat, g in ((old_flat, old), (new_flat, new)):
            flat["ShutdownDelay"] = "" if g.ShutdownDelay is None else str(g.ShutdownDelay)
        fields = _field_diffs(old_flat, new_flat, False)
    o, n = old or TaskGroup(), new or TaskGroup()

    objects: list[dict] = []
    objects += _primitive_object_set_diff(o.Constraints, n.Constraints, "Constraint", contextual) or []
    objects += _primitive_object_set_diff(_dict_list(o.Affinities), _dict_list(n.Affinities),
                                          "Affinity", contextual) or []
    resched_old = o.ReschedulePolicy if isinstance(o.ReschedulePolicy, dict) else None
    resched_new = n.ReschedulePolicy if isinstance(n.ReschedulePolicy, dict) else None
    for d in (
        _primitive_object_diff(o.RestartPolicy, n.RestartPolicy, "RestartPolicy", contextual),
        _primitive_object_diff(resched_old, resched_new, "ReschedulePolicy", contextual),
        _primitive_object_diff(o.EphemeralDisk, n.EphemeralDisk, "EphemeralDisk", contextual),
        _primitive_object_diff(o.Update, n.Update, "Update", contextual, skip=("Stagger",)),
    ):
        if d is not None:
            objects.append(d)
    objects += _network_diffs(o.Networks, n.Networks, contextual) or []
    objects += _service_diffs(o.Services, n.Services, contextual) or []
    objects += _keyed_diffs(   # volumes by their name in the group's map
        sorted((o.Volumes or {}).items()), sorted((n.Volumes or {}).items()),
        lambda kv: kv[0], lambda a, b: _primitive_object_diff(
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
    fields = _field_diffs(_flatten_primitive(old, skip), _flatten_primitive(new, skip),
                          contextual)
    objects = [d for d in (
        _full_map_diff(old.Policy if old else None, new.Policy if new else None, "Policy",
                       contextual),
        _full_map_diff(old.Target if old else None, new.Target if new else None, "Target",
                       contextual)) if d is not None]
    if not fields and not objects:
        return None
    return _object(_presence_type(old, new), "Scaling", fields, objects)


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
        fields = _field_diffs(None, _flatten_primitive(new, _JOB_FILTER), False)
    elif new is None:
        result["Type"], result["ID"] = DELETED, old.ID or ""
        fields = _field_diffs(_flatten_primitive(old, _JOB_FILTER), None, False)
    else:
        if (old.ID or "") != (new.ID or ""):
            raise ValueError("can not diff jobs with different IDs")
        result["ID"] = new.ID or ""
        fields = _field_diffs(_flatten_primitive(old, _JOB_FILTER),
                              _flatten_primitive(new, _JOB_FILTER), False)
    o, n = old or Job(), new or Job()

    objects: list[dict] = []
    datacenters = _string_set_diff(o.Datacenters, n.Datacenters, "Datacenters", contextual)
    if datacenters is not None and datacenters["Type"] != NONE:
        objects.append(datacenters)
    objects += _primitive_object_set_diff(o.Constraints, n.Constraints, "Constraint", contextual) or []
    objects += _primitive_object_set_diff(_dict_list(o.Affinities), _dict_list(n.Affinities),
                                          "Affinity", contextual) or []
    groups = _by_name_diffs(o.TaskGroups, n.TaskGroups,
                            lambda a, b: _task_group_diff(a, b, contextual))
    periodic = _primitive_object_diff(o.Periodic, n.Periodic, "Periodic", contextual)
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
    fields = _field_diffs(_flatten_primitive(old), _flatten_primitive(new), contextual)
    objects = []
    for set_name in ("MetaOptional", "MetaRequired"):
        d = _string_set_diff(getattr(old, set_name, None), getattr(new, set_name, None),
                             set_name, contextual)
        if d is not None:
            objects.append(d)
    return _object(_presence_type(old, new), "ParameterizedJob", fields, objects)


def versions_diffs(versions: list[Job], contextual: bool = True) -> list[dict]:
    """``Diffs`` of ``GET /v1/job/:id/versions?diffs=true``: given versions newest first,
    ``Diffs[i]`` is the change from ``versions[i+1]`` to ``versions[i]``. Nomad builds
    these with contextual diffs, hence the default."""
    return [job_diff(versions[i + 1], versions[i], contextual) for i in range(len(versions) - 1)]
