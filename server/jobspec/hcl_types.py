"""Type constraints of HCL ``variable`` blocks and the conversions HCL applies to a
given value (``"3"`` to the number 3 for ``type = number``, and so on)."""
from __future__ import annotations

from typing import Any

from caravan.server.jobspec.hcl_tree import children, error_at
from caravan.server.jobspec.hcl_values import as_number

PRIMITIVES = ("string", "number", "bool", "any")
COLLECTIONS = ("list", "set", "map")


def type_constraint(node) -> tuple:
    """``string`` -> ("string",); ``list(number)`` -> ("list", ("number",));
    ``object({a = string})`` -> ("object", {"a": ("string",)})."""
    inner = children(node)
    if node.data == "expr_term" and inner:
        return type_constraint(inner[0])
    if node.data == "identifier":
        name = str(node.children[0])
        if name in PRIMITIVES:
            return (name,)
    if node.data == "function_call":
        name_node, *args = children(node)
        name = str(name_node.children[0])
        params = children(args[0]) if args else []
        if name in COLLECTIONS and len(params) == 1:
            return (name, type_constraint(params[0]))
        if name == "object" and len(params) == 1:
            obj = children(params[0])[0] if children(params[0]) else None
            if obj is not None and obj.data == "object":
                fields = {}
                for elem in children(obj):
                    key_node, value_node = children(elem)
                    fields[str(children(children(key_node)[0])[0].children[0])] = \
                        type_constraint(value_node)
                return ("object", fields)
        if name == "tuple" and len(params) == 1:
            tup = children(params[0])[0] if children(params[0]) else None
            if tup is not None and tup.data == "tuple":
                return ("tuple", [type_constraint(t) for t in children(tup)])
    raise error_at(node, "Invalid type specification",
                   "expected string, number, bool, any, list(T), set(T), map(T), "
                   "object({...}) or tuple([...])")


def _describe(typ: tuple) -> str:
    if len(typ) == 1:
        return typ[0]
    if typ[0] in COLLECTIONS:
        return f"{typ[0]}({_describe(typ[1])})"
    return typ[0]


def convert_variable(value: Any, typ: tuple) -> Any:
    """``value`` converted to ``typ`` as HCL does; ``ValueError`` says why it cannot be."""
    kind = typ[0]
    if value is None or kind == "any":
        return value
    if kind == "string":
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, (int, float)):
            return str(value)
        if isinstance(value, str):
            return value
    elif kind == "number":
        number = as_number(value)
        if number is not None:
            return number
    elif kind == "bool":
        if isinstance(value, bool):
            return value
        if value in ("true", "false"):
            return value == "true"
    elif kind in ("list", "set") and isinstance(value, list):
        items = [convert_variable(v, typ[1]) for v in value]
        return sorted(set(items), key=str) if kind == "set" else items
    elif kind == "map" and isinstance(value, dict):
        return {k: convert_variable(v, typ[1]) for k, v in value.items()}
    elif kind == "object" and isinstance(value, dict):
        missing = [k for k in typ[1] if k not in value]
        if missing:
            raise ValueError(f'attribute "{missing[0]}" is required')
        return {k: convert_variable(value[k], t) for k, t in typ[1].items()}
    elif kind == "tuple" and isinstance(value, list):
        if len(value) != len(typ[1]):
            raise ValueError(f"a tuple of {len(typ[1])} elements is required")
        return [convert_variable(v, t) for v, t in zip(value, typ[1])]
    raise ValueError(f"{_describe(typ)} required, got {value!r}")
