"""The functions a job file may call: the part of HCL's standard library that job
files use (strings, collections, numbers, type conversions, JSON). An unknown name is
an error where the call is made (``hcl_eval.Evaluator``)."""
from __future__ import annotations

import json
import math
import re
from collections.abc import Callable
from typing import Any


def to_string(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return repr(value)
    return str(value)


def _format(fmt: str, *args) -> str:
    values = iter(args)

    def one(m: re.Match) -> str:
        verb = m.group(2)
        if verb == "%":
            return "%"
        value = next(values)
        if verb == "d":
            return (m.group(1) + "d") % int(value)
        if verb == "q":
            return json.dumps(to_string(value))
        if verb == "f":
            return (m.group(1) + "f") % float(value)
        return to_string(value) if verb in "sv" else m.group(0)
    return re.sub(r"(%[-+ 0#]*\d*(?:\.\d+)?)([sdvqf%])", one, fmt)


def _coalesce(*args):
    for a in args:
        if a is not None and a != "":
            return a
    raise ValueError("no non-null, non-empty-string arguments")


def _tonumber(v):
    if isinstance(v, (int, float)) and not isinstance(v, bool):
        return v
    text = str(v)
    return int(text) if re.fullmatch(r"-?\d+", text) else float(text)


def _tobool(v):
    if isinstance(v, bool):
        return v
    if v in ("true", "false"):
        return v == "true"
    raise ValueError(f"cannot convert {v!r} to bool")


FUNCTIONS: dict[str, Callable[..., Any]] = {
    "upper": lambda s: s.upper(),
    "lower": lambda s: s.lower(),
    "title": lambda s: s.title(),
    "trimspace": lambda s: s.strip(),
    "trimprefix": lambda s, p: s.removeprefix(p),
    "trimsuffix": lambda s, p: s.removesuffix(p),
    "replace": lambda s, old, new: s.replace(old, new),
    "split": lambda sep, s: s.split(sep),
    "join": lambda sep, items: sep.join(to_string(i) for i in items),
    "substr": lambda s, off, n: s[off:] if n < 0 else s[off:off + n],
    "format": _format,
    "length": lambda v: len(v),
    "concat": lambda *lists: [x for lst in lists for x in lst],
    "contains": lambda lst, v: v in lst,
    "element": lambda lst, i: lst[i % len(lst)],
    "keys": lambda m: sorted(m),
    "values": lambda m: [m[k] for k in sorted(m)],
    "lookup": lambda m, k, *default: m[k] if k in m or not default else default[0],
    "merge": lambda *maps: {k: v for m in maps for k, v in m.items()},
    "coalesce": _coalesce,
    "range": lambda *a: list(range(*a)),
    "min": lambda *a: min(a),
    "max": lambda *a: max(a),
    "abs": abs,
    "ceil": lambda v: math.ceil(v),
    "floor": lambda v: math.floor(v),
    "tostring": to_string,
    "tonumber": _tonumber,
    "tobool": _tobool,
    "tolist": list,
    "toset": lambda v: sorted(set(v), key=str),
    "tomap": dict,
    "jsonencode": lambda v: json.dumps(v, separators=(",", ":")),
    "jsondecode": json.loads,
}
