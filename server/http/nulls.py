"""``null`` in a request body means "not set", as it does for Nomad's Go decoder.

Nomad's official Go client (``github.com/hashicorp/nomad/api``) encodes every field its
caller left unset as ``null``: pointers, slices and maps alike. Go's ``encoding/json``
reads a ``null`` into a pointer, slice or map as nil and leaves any other field at its
zero value, and Nomad's ``Canonicalize`` then fills the defaults. Caravan's records
(``fsm/structs/``) give a field its default when it is absent, so ``without_nulls``
walks a decoded body along the type it is about to be converted to and drops every
``null`` member of an object that stands for a record: the field is then absent, and
its default (and later canonicalization) applies, at every depth.

Inside lists and maps a ``null`` is not a field, so it keeps Go's meaning for the
element type:

- a list or map element of a scalar type is that type's zero value (``""``, ``0``,
  ``false``): ``"Datacenters": [null]`` is ``[""]``, which validation then refuses
  with its own message ("Job datacenter must be non-empty string"), as Nomad does;
  ``"Meta": {"k": null}`` is ``{"k": ""}``;
- a list or map element of list or map type is an empty one (Go's nil slice or map);
- a list or map element that is a record (a task group, a task, a constraint, a
  port, ...) is refused: Go would hand Nomad a nil pointer (which it does not
  survive) or an all-zero record. The ``null`` is left in place and the conversion
  answers ``Expected `object`, got `null` - at `TaskGroups[0]```, naming the element;
- opaque values (``Any``: a task's ``Config``, ``Affinities``, ...) are kept exactly as
  sent, nulls included, as Go keeps them in an ``interface{}``.

A value of the wrong type that is not ``null`` is left alone for the conversion to
refuse with its path.
"""
from __future__ import annotations

import functools
from typing import Any

import msgspec.inspect as mi

_KEEP = object()   # "leave the null where it is"


def without_nulls(value: Any, typ: type) -> Any:
    """``value`` (decoded JSON) with every ``null`` read the way Go reads it for ``typ``;
    only the objects and lists that change are copied."""
    return _walk(value, _type_info(typ))


@functools.cache
def _type_info(typ: type) -> mi.Type:
    return mi.type_info(typ)


def _walk(value: Any, t: mi.Type) -> Any:
    if isinstance(t, mi.UnionType):
        t = _member_for(value, t)
        if t is None:
            return value
    if isinstance(t, mi.StructType):
        if isinstance(value, dict):
            return _walk_struct(value, t)
    elif isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        if isinstance(value, list):
            return _walk_items(value, t.item_type)
    elif isinstance(t, mi.DictType):
        if isinstance(value, dict):
            return _walk_map(value, t.value_type)
    return value


def _walk_struct(value: dict, t: mi.StructType) -> dict:
    fields = _fields(t.cls)
    out = {}
    for key, item in value.items():
        if item is None and key in fields:
            continue                      # null member: the field is not set
        field_type = fields.get(key)
        out[key] = item if field_type is None else _walk(item, field_type)
    return out


def _walk_items(value: list, item_type: mi.Type) -> list:
    return [_element(item, item_type) for item in value]


def _walk_map(value: dict, value_type: mi.Type) -> dict:
    return {key: _element(item, value_type) for key, item in value.items()}


def _element(item: Any, t: mi.Type) -> Any:
    if item is not None:
        return _walk(item, t)
    zero = _zero(t)
    return None if zero is _KEEP else zero


def _zero(t: mi.Type) -> Any:
    """Go's zero value for a ``null`` list or map element of type ``t``, or ``_KEEP``
    to leave the null (a nullable type accepts it; a record refuses it with its path)."""
    if isinstance(t, mi.StrType):
        return ""
    if isinstance(t, mi.BoolType):
        return False
    if isinstance(t, mi.IntType):
        return 0
    if isinstance(t, mi.FloatType):
        return 0.0
    if isinstance(t, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
        return []
    if isinstance(t, mi.DictType):
        return {}
    return _KEEP


def _member_for(value: Any, t: mi.UnionType) -> mi.Type | None:
    """The member of a union (``X | None``) that a non-null ``value`` would decode as."""
    for member in t.types:
        if isinstance(value, dict) and isinstance(member, (mi.StructType, mi.DictType)):
            return member
        if isinstance(value, list) and isinstance(
                member, (mi.ListType, mi.SetType, mi.FrozenSetType, mi.VarTupleType)):
            return member
    return None


@functools.cache
def _fields(cls: type) -> dict[str, mi.Type]:
    """A record type's fields by their JSON name."""
    return {f.encode_name: f.type for f in mi.type_info(cls).fields}
