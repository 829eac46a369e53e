"""Compact twins of struct types, for log entries on the wire and in the journal.

A row type encodes every field (Nomad's JSON shows them all), but most of a job's
fields are null or zero, and each entry is pickled, compressed and encrypted once per
follower. ``compact(cls)`` builds, once per type, a twin with the same fields that
omits fields equal to their defaults; an entry is converted to its twin to be encoded
and decoded straight into the ordinary types, where an omitted field takes its default
again, so what is applied is equal to what was submitted.
"""
from __future__ import annotations

import functools
import types
import typing

import msgspec


@functools.cache
def compact(cls: type) -> type:
    hints = typing.get_type_hints(cls)
    fields: list[tuple[str, typing.Any] | tuple[str, typing.Any, typing.Any]] = []   # (name, type[, default])
    for f in msgspec.structs.fields(cls):
        default = f.default if f.default is not msgspec.NODEFAULT else (
            msgspec.field(default_factory=f.default_factory)
            if f.default_factory is not msgspec.NODEFAULT else msgspec.NODEFAULT)
        if default is msgspec.NODEFAULT:
            fields.append((f.name, _remap(hints[f.name])))
        else:
            fields.append((f.name, _remap(hints[f.name]), default))
    return msgspec.defstruct(f"{cls.__name__}Wire", fields, kw_only=True, omit_defaults=True,
                             gc=False)


def _remap(tp: typing.Any) -> typing.Any:
    """``tp`` (a type expression) with every struct in it replaced by its compact twin."""
    if isinstance(tp, type) and issubclass(tp, msgspec.Struct):
        return compact(tp)
    args = typing.get_args(tp)
    if not args:
        return tp
    remapped = tuple(_remap(a) for a in args)
    origin: typing.Any = typing.get_origin(tp)   # list, dict, a Union, ...: indexable
    if origin in (typing.Union, types.UnionType):
        return typing.Union[remapped]  # noqa: UP007  (built from a tuple of types)
    return origin[remapped]


def to_compact(obj: msgspec.Struct) -> msgspec.Struct:
    return msgspec.convert(obj, compact(type(obj)), from_attributes=True)
