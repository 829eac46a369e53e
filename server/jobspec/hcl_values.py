"""HCL values as expressions produce them: conversions with HCL's messages (numbers,
bools, indexing), type names, and ``Deferred``, a reference the client resolves at run
time (kept as written)."""
from __future__ import annotations

from caravan.server.jobspec.hcl_functions import to_string
from caravan.server.jobspec.hcl_tree import error_at


class Deferred:
    """A reference resolved at run time by the client (``attr.``, ``node.``, ...)."""

    __slots__ = ("text",)

    def __init__(self, text: str):
        self.text = text

    def __str__(self) -> str:
        return "${" + self.text + "}"


def finish_value(value):
    if isinstance(value, Deferred):
        return str(value)
    if isinstance(value, list):
        return [finish_value(v) for v in value]
    if isinstance(value, dict):
        return {k: finish_value(v) for k, v in value.items()}
    return value


def type_name(value) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    return "null" if value is None else type(value).__name__


def as_number(value):
    """HCL's conversion to number: numbers as they are, numeric strings parsed; None
    for anything else (bools included)."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, (int, float)):
        return value
    if isinstance(value, str):
        for parse in (int, float):
            try:
                return parse(value)
            except ValueError:
                pass
    return None


def number_value(node, value):
    number = as_number(value)
    if number is None:
        raise error_at(node, "Invalid operand", f"a number is required, not {type_name(value)}")
    return number


def bool_value(node, value) -> bool:
    if isinstance(value, bool):
        return value
    if value in ("true", "false"):
        return value == "true"
    raise error_at(node, "Invalid operand", f"a bool is required, not {type_name(value)}")


def index_value(node, base, key):
    if isinstance(base, list):
        if isinstance(key, str) and key.isdigit():
            key = int(key)
        if not isinstance(key, int) or isinstance(key, bool) or not 0 <= key < len(base):
            raise error_at(node, "Invalid index",
                           f"index {key!r} is out of range for a list of {len(base)}")
        return base[key]
    if isinstance(base, dict):
        key = to_string(key)
        if key not in base:
            raise error_at(node, "Invalid index", f'the object has no element "{key}"')
        return base[key]
    raise error_at(node, "Invalid index", f"cannot index a {type_name(base)}")
