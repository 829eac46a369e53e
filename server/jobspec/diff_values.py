"""The generic parts of Nomad's job diff (``nomad/structs/diff.go``, ``helper/flatmap``):
scalars rendered as Go prints them, flattening of primitive fields, and the builders
of field and object diffs and their ordering (see ``diff.py`` for the rules)."""
from __future__ import annotations

import math
import types
import typing
from collections.abc import Callable, Iterable
from decimal import Decimal
from typing import Any

import msgspec

NONE, ADDED, DELETED, EDITED = "None", "Added", "Deleted", "Edited"
# ObjectDiff.Less orders equal names by type: Edited < Added < Deleted < None.
_TYPE_RANK = {EDITED: 0, ADDED: 1, DELETED: 2, NONE: 3}


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


def flatten_primitive(obj: Any, skip: Iterable[str] = ()) -> dict[str, str]:
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


def _field(type_: str, name: str, old: str, new: str) -> dict:
    return {"Type": type_, "Name": name, "Old": old, "New": new, "Annotations": None}


def object_diff(type_: str, name: str, fields: list | None = None, objects: list | None = None) -> dict:
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


def field_diffs(old: dict[str, str] | None, new: dict[str, str] | None,
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


def sort_objects(objs: list[dict]) -> list[dict] | None:
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


def presence_type(old: Any, new: Any) -> str:
    """Type of an object diff decided by which side exists (Nomad's nil checks)."""
    if old is None:
        return ADDED
    if new is None:
        return DELETED
    return EDITED


def primitive_object_diff(old: Any, new: Any, name: str, contextual: bool,
                           skip: Iterable[str] = ()) -> dict | None:
    """A block of scalars (RestartPolicy, Periodic, a Constraint, ...); None when no
    field changed, even in contextual mode."""
    fields = field_diffs(flatten_primitive(old, skip), flatten_primitive(new, skip), contextual)
    type_ = _type_from_fields(fields)
    if type_ == NONE:
        return None
    return object_diff(type_, name, fields)


def string_set_diff(old: list[str] | None, new: list[str] | None, name: str,
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
    return object_diff(type_, name, fields)


def content_key(obj: Any) -> bytes:
    """Stand-in for Nomad's hashstructure: equal content, equal key."""
    return msgspec.json.encode(obj, order="deterministic")


def primitive_object_set_diff(old: list | None, new: list | None, name: str, contextual: bool,
                               key: Callable[[Any], Any] = content_key,
                               skip: Iterable[str] = ()) -> list[dict] | None:
    """Unordered list of scalar blocks (Constraint, Affinity, Artifact): elements are
    matched by ``key`` (content by default, so a change is a Deleted + Added pair);
    unchanged elements produce nothing, even in contextual mode."""
    old_map = {key(o): o for o in old or ()}
    new_map = {key(n): n for n in new or ()}
    diffs = [primitive_object_diff(o, new_map.get(k), name, contextual, skip)
             for k, o in old_map.items()]
    diffs += [primitive_object_diff(None, n, name, contextual, skip)
              for k, n in new_map.items() if k not in old_map]
    return sort_objects(diffs)


def full_map_diff(old: dict | None, new: dict | None, name: str, contextual: bool) -> dict | None:
    """A free-form map diffed key by key (task Config, check Header)."""
    old, new = old or {}, new or {}
    if old == new:
        return None
    type_ = ADDED if not old else DELETED if not new else EDITED
    fields = field_diffs(_flatten_full(old), _flatten_full(new), contextual)
    return object_diff(type_, name, fields)


def keyed_diffs(old: list | None, new: list | None, key: Callable[[Any], Any],
                 diff: Callable[[Any, Any], dict | None]) -> list[dict] | None:
    """Match two lists by key (last one wins on duplicates, like Nomad's maps) and diff
    each pair, then the unmatched new ones."""
    old_map = {key(o): o for o in old or ()}
    new_map = {key(n): n for n in new or ()}
    diffs = [diff(o, new_map.get(k)) for k, o in old_map.items()]
    diffs += [diff(None, n) for k, n in new_map.items() if k not in old_map]
    return sort_objects(diffs)
