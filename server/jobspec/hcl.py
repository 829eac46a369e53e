"""HCL2 job files to the Jobs API's JSON job, as Nomad 1.x's ``jobspec2`` maps them.

``parse_job(text, variables)`` returns the job as a dict with Nomad's JSON field names
(unset fields absent, so decoding it into ``fsm.structs.Job`` leaves them null).

The file may hold ``variable "x" {}`` blocks (values from ``variables``, then their
``default``), ``locals {}`` and exactly one ``job "id" {}`` block. Every block of the job
is described by a ``Spec``: which arguments it takes (with their converter: durations to
nanoseconds, whole non-negative numbers for sizes and counts, string lists, string maps)
and which nested blocks. An argument or block that is not in the spec is an error, with
its line and the block it appears in, as Nomad reports it.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable

from lark import Token, Tree
from lark.exceptions import LarkError, UnexpectedCharacters, UnexpectedEOF, UnexpectedToken

from server.jobspec.hcl_eval import Evaluator, HclError, _nodes, error_at, position
from server.jobspec.hcl_types import convert_variable, type_constraint

NS_PER = {"ns": 1, "us": 1_000, "µs": 1_000, "ms": 1_000_000, "s": 1_000_000_000,
          "m": 60_000_000_000, "h": 3_600_000_000_000}


class JobFileError(Exception):
    """A job file that cannot be turned into a job; the message names the position."""


@dataclass
class Item:
    """One argument (``kind == "attr"``) or block of a body."""
    kind: str
    name: str
    node: Tree            # the value expression (attr) or the block's body
    at: Tree              # where to point in an error
    labels: list[str] = field(default_factory=list)


def parse_job(text: str, variables: dict[str, Any] | str | None = None,
              filename: str = "input.hcl") -> dict:
    try:
        return _parse(text, variables)
    except HclError as exc:
        raise JobFileError(exc.render(filename)) from None
    except RecursionError:
        raise JobFileError(f"{filename}: the file is nested too deeply") from None


def _parse(text: str, variables) -> dict:
    tree = _syntax_tree(text)
    top = _read_body(text, tree.children[0])
    declared, local_exprs, jobs = {}, {}, []
    for item in top:
        if item.kind == "block" and item.name == "variable":
            _labels(item, 1, "variable")
            declared[item.labels[0]] = item
        elif item.kind == "block" and item.name == "locals":
            for attr in _read_body(text, item.node):
                if attr.kind != "attr":
                    raise error_at(attr.at, "Unexpected block", "locals holds arguments only")
                local_exprs[attr.name] = attr.node
        elif item.kind == "block" and item.name == "job":
            jobs.append(item)
        else:
            raise error_at(item.at, f"Unsupported {'block type' if item.kind == 'block' else 'argument'}",
                           f'"{item.name}" is not expected at the top level; a job file holds '
                           f'one job block, variable blocks and locals')
    if len(jobs) != 1:
        at = jobs[1].at if jobs else tree
        raise error_at(at, "Invalid job file",
                       "expected exactly one job block" + ("" if jobs else ", found none"))
    values = _variable_values(text, declared, _given_variables(variables))
    ctx = _Context(text, Evaluator(text, values, local_exprs))
    job_item = jobs[0]
    _labels(job_item, 1, "job")
    job = ctx.decode(job_item, JOB, f'job "{job_item.labels[0]}"')
    job.setdefault("Name", job["ID"])
    return job


# --- syntax ------------------------------------------------------------------------------

_TOKEN_WORDS = {
    "NAME": "a name", "DBLQUOTE": 'a quote (")', "LBRACE": "{", "RBRACE": "}", "EQ": "=",
    "LSQB": "[", "RSQB": "]", "LPAR": "(", "RPAR": ")", "COMMA": ",", "INT_LITERAL": "a number",
    "FLOAT_LITERAL": "a number", "NL_OR_COMMENT": "a new line", "INTERP_START": "${",
    "STRING_CHARS": "string characters", "HEREDOC_TEMPLATE": "a heredoc",
    "TRUE": "true", "FALSE": "false", "NULL": "null", "COLON": ":", "$END": "end of file",
}

# the tokens that may start an expression: when all are expected, say "a value"
_VALUE_START = {"DBLQUOTE", "INT_LITERAL", "NAME", "LSQB", "LBRACE"}
_VALUE_TOKENS = _VALUE_START | {"FLOAT_LITERAL", "LPAR", "MINUS", "NOT", "TRUE", "FALSE", "NULL",
                                "HEREDOC_TEMPLATE", "HEREDOC_TEMPLATE_TRIM", "TEMPLATE_STRING",
                                "NL_OR_COMMENT"}


def _syntax_tree(text: str) -> Tree:
    from hcl2.api import parses_to_tree
    try:
        return parses_to_tree(text)
    except (UnexpectedToken, UnexpectedCharacters, UnexpectedEOF) as exc:
        line, column = getattr(exc, "line", 1), getattr(exc, "column", 1)
        if line is None or line < 1:  # at the end of the input
            line, column = text.count("\n") + 1, 1
        wanted = set(getattr(exc, "expected", ()) or ())
        value = _VALUE_START <= wanted
        expected = sorted({_TOKEN_WORDS[t] for t in wanted - (_VALUE_TOKENS if value else set())
                           if t in _TOKEN_WORDS})
        if value:
            expected.insert(0, "a value (a string, number, name, list or object)")
        found = ""
        if isinstance(exc, UnexpectedToken):
            tok = exc.token
            lead = str(tok)[:len(str(tok)) - len(str(tok).lstrip())]
            if lead and str(tok).strip():  # point at the token's text, not its leading space
                line += lead.count("\n")
                column = len(lead) - lead.rfind("\n") if "\n" in lead else column + len(lead)
            found = "end of file" if tok.type == "$END" else \
                repr((str(tok).strip() or tok.type).splitlines()[0])
        elif isinstance(exc, UnexpectedCharacters):
            found = repr(text[exc.pos_in_stream]) if exc.pos_in_stream < len(text) else ""
        detail = (f"unexpected {found}" if found else "invalid syntax") + \
            (f", expected {' or '.join(expected)}" if expected else "")
        raise HclError(line, column, "Invalid syntax", detail) from None
    except LarkError as exc:
        raise HclError(1, 1, "Invalid syntax", str(exc).splitlines()[0]) from None


def _read_body(text: str, body: Tree) -> list[Item]:
    items = []
    for node in _nodes(body):
        name_node = node.children[0]
        name = str(name_node.children[0]) if isinstance(name_node, Tree) else str(name_node)
        if node.data == "attribute":
            items.append(Item("attr", name, _nodes(node)[1], node))
            continue
        parts = _nodes(node)
        labels = []
        for label in parts[1:-1]:
            if label.data == "string":
                labels.append(Evaluator(text, {}).value(label))
            else:
                labels.append(str(label.children[0]))
        items.append(Item("block", name, parts[-1], node, labels))
    return items


def _labels(item: Item, n: int, what: str) -> None:
    if len(item.labels) == n:
        return
    if len(item.labels) < n:
        raise error_at(item.at, f"Missing name for {what}",
                       f'a {what} block needs a name, as in {what} "name" {{ ... }}')
    raise error_at(item.at, f"Extraneous label for {what}",
                   f"a {what} block takes {'one label' if n == 1 else 'no labels'}")


# --- variables --------------------------------------------------------------------------


def _given_variables(variables) -> dict[str, tuple[Any, Any]]:
    """``Variables`` as Nomad takes it, var-file text (``name = value`` lines), or a map:
    name -> (value, where it was given)."""
    if variables is None or variables == "":
        return {}
    if isinstance(variables, dict):
        return {k: (v, None) for k, v in variables.items()}
    if not isinstance(variables, str):
        raise HclError(1, 1, "Invalid variables", "Variables must be var-file text or a map")
    try:
        tree = _syntax_tree(variables)
    except HclError as exc:
        raise HclError(exc.line, exc.column, f"Invalid variables: {exc.summary}",
                       exc.detail) from None
    out = {}
    for item in _read_body(variables, tree.children[0]):
        if item.kind != "attr":
            raise error_at(item.at, "Invalid variables", "the variables hold name = value only")
        out[item.name] = (Evaluator(variables, {}).value(item.node), item.at)
    return out


def _variable_values(text: str, declared: dict[str, Item],
                     given: dict[str, tuple[Any, Any]]) -> dict[str, Any]:
    for name, (_, at) in given.items():
        if name not in declared:
            raise HclError(*(position(at) if at is not None else (1, 1)),
                           "Undefined variable",
                           f'a value was given for "{name}", but the job file declares no '
                           f'variable "{name}"')
    values = {}
    for name, item in declared.items():
        spec = {i.name: i for i in _read_body(text, item.node)}
        for key, attr in spec.items():
            if key not in ("type", "default", "description", "sensitive") or attr.kind != "attr":
                raise error_at(attr.at, "Unsupported argument",
                               f'"{key}" is not expected in variable "{name}"')
        typ = type_constraint(spec["type"].node) if "type" in spec else ("any",)
        if name in given:
            value, at = given[name]
            where = at if at is not None else item.at
        elif "default" in spec:
            value, where = Evaluator(text, {}).value(spec["default"].node), spec["default"].at
        else:
            raise error_at(item.at, "Missing required variable",
                           f'variable "{name}" has no default; give it a value in Variables')
        try:
            values[name] = convert_variable(value, typ)
        except ValueError as exc:
            raise error_at(where, "Invalid value for variable",
                           f'variable "{name}": {exc}') from None
    return values


# --- decoding blocks --------------------------------------------------------------------


Conv = Callable[["_Context", Item, Any, str], Any]


@dataclass
class Spec:
    attrs: dict[str, tuple[str, Conv]]
    blocks: dict[str, tuple[str, Any, bool]] = field(default_factory=dict)  # name -> field, spec|fn, repeated
    label: str | None = None   # the field a single block label fills
    finish: Callable[[dict, Item], None] | None = None


class _Context:
    def __init__(self, text: str, evaluator: Evaluator):
        self.text = text
        self.ev = evaluator

    def decode(self, item: Item, spec: Spec, where: str) -> dict:
        _labels(item, 1 if spec.label else 0, item.name)
        out: dict[str, Any] = {}
        if spec.label:
            out[spec.label] = item.labels[0]
        seen: set[str] = set()
        for child in _read_body(self.text, item.node):
            if child.kind == "attr":
                target = spec.attrs.get(child.name)
                if target is None:
                    raise error_at(child.at, "Unsupported argument",
                                   f'an argument named "{child.name}" is not expected in {where}')
                if child.name in seen:
                    raise error_at(child.at, "Duplicate argument",
                                   f'"{child.name}" is set twice in {where}')
                seen.add(child.name)
                fld, conv = target
                value = self.ev.value(child.node)
                if value is not None:
                    out[fld] = conv(self, child, value, f"{child.name} in {where}")
                continue
            target = spec.blocks.get(child.name)
            if target is None:
                raise error_at(child.at, "Unsupported block type",
                               f'blocks of type "{child.name}" are not expected in {where}')
            fld, sub, repeated = target
            label = f' "{child.labels[0]}"' if child.labels else ""
            inner = f"{where} > {child.name}{label}"
            value = sub(self, child, inner) if callable(sub) else self.decode(child, sub, inner)
            if repeated:
                out.setdefault(fld, []).append(value)
            elif fld in out or child.name in seen:
                raise error_at(child.at, "Duplicate block",
                               f'only one "{child.name}" block is allowed in {where}')
            else:
                seen.add(child.name)
                out[fld] = value
        if spec.finish is not None:
            spec.finish(out, item)
        return out


def _fail(item: Item, what: str, expected: str, value) -> HclError:
    return error_at(item.at, "Incorrect attribute value type",
                    f"{what}: expected {expected}, got {_show(value)}")


def _show(value) -> str:
    if isinstance(value, str):
        return f'"{value}"'
    if isinstance(value, bool):
        return "true" if value else "false"
    return repr(value)


def STR(ctx, item, value, what):
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if not isinstance(value, str):
        raise _fail(item, what, "a string", value)
    return value


def INT(ctx, item, value, what):
    if isinstance(value, str):
        try:
            value = int(value.strip())
        except ValueError:
            raise _fail(item, what, "a whole number", value) from None
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if isinstance(value, bool) or not isinstance(value, int):
        raise _fail(item, what, "a whole number", value)
    return value


def SIZE(ctx, item, value, what):
    """Sizes and counts: whole numbers that are not negative."""
    value = INT(ctx, item, value, what)
    if value < 0:
        raise error_at(item.at, "Invalid value", f"{what}: must not be negative, got {value}")
    return value


def BOOL(ctx, item, value, what):
    if value in ("true", "false"):
        return value == "true"
    if not isinstance(value, bool):
        raise _fail(item, what, "true or false", value)
    return value


def DURATION(ctx, item, value, what):
    """``"30s"``, ``"1m30s"`` (Go's time.ParseDuration) to nanoseconds; a bare number is
    nanoseconds already."""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return int(value)
    if not isinstance(value, str):
        raise _fail(item, what, 'a duration such as "30s" or "5m"', value)
    ns = go_duration_ns(value)
    if ns is None:
        raise error_at(item.at, "Invalid duration",
                       f'{what}: "{value}" is not a duration; expected a number with a unit '
                       f'(ns, us, ms, s, m, h), such as "30s" or "1m30s"')
    return ns


def go_duration_ns(text: str) -> int | None:
    import re
    body = text.strip()
    sign = -1 if body.startswith("-") else 1
    body = body.lstrip("+-")
    if body == "0":
        return 0
    parts = re.findall(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|ms|s|m|h)", body)
    if not body or "".join(n + u for n, u in parts) != body:
        return None
    return sign * round(sum(float(n) * NS_PER[u] for n, u in parts))


def STRLIST(ctx, item, value, what):
    if not isinstance(value, list):
        raise _fail(item, what, "a list of strings", value)
    return [STR(ctx, item, v, what) for v in value]


def STRMAP(ctx, item, value, what):
    if not isinstance(value, dict):
        raise _fail(item, what, "a map of strings", value)
    return {k: STR(ctx, item, v, f"{what}, key {k}") for k, v in value.items()}


def ANY(ctx, item, value, what):
    return value


def _map_block(ctx: _Context, item: Item, where: str) -> dict:
    """``meta { k = "v" }``, ``env {}``, ``options {}``: a map of strings."""
    _labels(item, 0, item.name)
    out = {}
    for child in _read_body(ctx.text, item.node):
        if child.kind != "attr":
            raise error_at(child.at, "Unexpected block",
                           f"{where} holds key = value pairs only, not blocks")
        out[child.name] = STR(ctx, child, ctx.ev.value(child.node), f"{child.name} in {where}")
    return out


def _header_block(ctx: _Context, item: Item, where: str) -> dict:
    out = {}
    for child in _read_body(ctx.text, item.node):
        if child.kind != "attr":
            raise error_at(child.at, "Unexpected block", f"{where} holds name = [values] only")
        out[child.name] = STRLIST(ctx, child, ctx.ev.value(child.node), f"{child.name} in {where}")
    return out


def _free_block(ctx: _Context, item: Item, where: str) -> dict:
    """A driver's ``config {}``: any arguments; a nested block becomes a list of maps,
    one per occurrence (``port_map { db = 6379 }`` -> ``"port_map": [{"db": 6379}]``)."""
    out: dict[str, Any] = {}
    for child in _read_body(ctx.text, item.node):
        if child.kind == "attr":
            out[child.name] = ctx.ev.value(child.node)
        else:
            out.setdefault(child.name, []).append(_free_block(ctx, child, where))
    return out


def _port(ctx: _Context, item: Item, where: str) -> dict:
    return ctx.decode(item, PORT, where)


def _split_ports(out: dict, item: Item) -> None:
    for port in out.pop("_ports", []):
        key = "ReservedPorts" if port.get("Value") else "DynamicPorts"
        out.setdefault(key, []).append(port)


def _constraint_forms(out: dict, item: Item) -> None:
    """Nomad's shorthand constraints (``distinct_hosts = true``, ``regexp = "..."``)."""
    shorthands = [k for k in ("_version", "_semver", "_regexp", "_set_contains",
                              "_set_contains_any", "_set_contains_all", "_distinct_hosts",
                              "_distinct_property") if k in out]
    if len(shorthands) > 1 or (shorthands and "Operand" in out):
        raise error_at(item.at, "Conflicting constraint",
                       "give one of operator, version, semver, regexp, set_contains, "
                       "distinct_hosts, distinct_property")
    for key in shorthands:
        value = out.pop(key)
        operand = key[1:]
        if key == "_distinct_hosts":
            if value:
                out["Operand"] = operand
            continue
        out["Operand"] = operand
        if key == "_distinct_property":
            out["LTarget"] = value
        else:
            out["RTarget"] = value
    out.setdefault("Operand", "=")


def _spread_targets(out: dict, item: Item) -> None:
    if "SpreadTarget" not in out:
        out["SpreadTarget"] = None


def _periodic(out: dict, item: Item) -> None:
    if "Spec" in out:
        out["SpecType"] = "cron"


CONSTRAINT = Spec({
    "attribute": ("LTarget", STR), "value": ("RTarget", STR), "operator": ("Operand", STR),
    "version": ("_version", STR), "semver": ("_semver", STR), "regexp": ("_regexp", STR),
    "set_contains": ("_set_contains", STR), "set_contains_any": ("_set_contains_any", STR),
    "set_contains_all": ("_set_contains_all", STR),
    "distinct_hosts": ("_distinct_hosts", BOOL), "distinct_property": ("_distinct_property", STR),
}, finish=_constraint_forms)

AFFINITY = Spec({
    "attribute": ("LTarget", STR), "value": ("RTarget", STR), "operator": ("Operand", STR),
    "weight": ("Weight", INT),
}, finish=lambda out, item: out.setdefault("Operand", "="))

SPREAD = Spec({"attribute": ("Attribute", STR), "weight": ("Weight", SIZE)},
              {"target": ("SpreadTarget", Spec({"percent": ("Percent", SIZE)}, label="Value"),
                          True)},
              finish=_spread_targets)

RESTART = Spec({"attempts": ("Attempts", SIZE), "interval": ("Interval", DURATION),
                "delay": ("Delay", DURATION), "mode": ("Mode", STR)})

RESCHEDULE = Spec({"attempts": ("Attempts", SIZE), "interval": ("Interval", DURATION),
                   "delay": ("Delay", DURATION), "delay_function": ("DelayFunction", STR),
                   "max_delay": ("MaxDelay", DURATION), "unlimited": ("Unlimited", BOOL)})

EPHEMERAL_DISK = Spec({"sticky": ("Sticky", BOOL), "size": ("SizeMB", SIZE),
                       "migrate": ("Migrate", BOOL)})

UPDATE = Spec({
    "stagger": ("Stagger", DURATION), "max_parallel": ("MaxParallel", SIZE),
    "health_check": ("HealthCheck", STR), "min_healthy_time": ("MinHealthyTime", DURATION),
    "healthy_deadline": ("HealthyDeadline", DURATION),
    "progress_deadline": ("ProgressDeadline", DURATION), "auto_revert": ("AutoRevert", BOOL),
    "auto_promote": ("AutoPromote", BOOL), "canary": ("Canary", SIZE),
})

MIGRATE = Spec({"max_parallel": ("MaxParallel", SIZE), "health_check": ("HealthCheck", STR),
                "min_healthy_time": ("MinHealthyTime", DURATION),
                "healthy_deadline": ("HealthyDeadline", DURATION)})

PERIODIC = Spec({"cron": ("Spec", STR), "prohibit_overlap": ("ProhibitOverlap", BOOL),
                 "time_zone": ("TimeZone", STR), "enabled": ("Enabled", BOOL)},
                finish=_periodic)

PARAMETERIZED = Spec({"payload": ("Payload", STR), "meta_required": ("MetaRequired", STRLIST),
                      "meta_optional": ("MetaOptional", STRLIST)})

PORT = Spec({"static": ("Value", SIZE), "to": ("To", INT), "host_network": ("HostNetwork", STR)},
            label="Label")

DNS = Spec({"servers": ("Servers", STRLIST), "searches": ("Searches", STRLIST),
            "options": ("Options", STRLIST)})

NETWORK = Spec({"mode": ("Mode", STR), "mbits": ("MBits", SIZE)},
               {"port": ("_ports", _port, True), "dns": ("DNS", DNS, False)},
               finish=_split_ports)

CHECK = Spec({
    "name": ("Name", STR), "type": ("Type", STR), "command": ("Command", STR),
    "args": ("Args", STRLIST), "path": ("Path", STR), "protocol": ("Protocol", STR),
    "port": ("PortLabel", STR), "interval": ("Interval", DURATION),
    "timeout": ("Timeout", DURATION), "initial_status": ("InitialStatus", STR),
    "tls_skip_verify": ("TLSSkipVerify", BOOL), "method": ("Method", STR),
    "header": ("Header", ANY),
}, {"header": ("Header", _header_block, False)})

SERVICE = Spec({
    "name": ("Name", STR), "port": ("PortLabel", STR), "tags": ("Tags", STRLIST),
    "canary_tags": ("CanaryTags", STRLIST), "address_mode": ("AddressMode", STR),
    "provider": ("Provider", STR), "meta": ("Meta", STRMAP),
}, {"check": ("Checks", CHECK, True), "meta": ("Meta", _map_block, False)})

RESOURCES = Spec({
    "cpu": ("CPU", SIZE), "cores": ("Cores", SIZE), "memory": ("MemoryMB", SIZE),
    "memory_max": ("MemoryMaxMB", SIZE), "disk": ("DiskMB", SIZE), "iops": ("IOPS", SIZE),
}, {"network": ("Networks", NETWORK, True)})

LOGS = Spec({"max_files": ("MaxFiles", SIZE), "max_file_size": ("MaxFileSizeMB", SIZE)})

ARTIFACT = Spec({
    "source": ("GetterSource", STR), "destination": ("RelativeDest", STR),
    "mode": ("GetterMode", STR), "options": ("GetterOptions", STRMAP),
    "headers": ("GetterHeaders", STRMAP),
}, {"options": ("GetterOptions", _map_block, False),
    "headers": ("GetterHeaders", _map_block, False)})

VAULT = Spec({"policies": ("Policies", STRLIST), "env": ("Env", BOOL),
              "change_mode": ("ChangeMode", STR), "change_signal": ("ChangeSignal", STR),
              "namespace": ("Namespace", STR)})

TEMPLATE = Spec({
    "source": ("SourcePath", STR), "destination": ("DestPath", STR),
    "data": ("EmbeddedTmpl", STR), "change_mode": ("ChangeMode", STR),
    "change_signal": ("ChangeSignal", STR), "splay": ("Splay", DURATION),
    "perms": ("Perms", STR), "left_delimiter": ("LeftDelim", STR),
    "right_delimiter": ("RightDelim", STR), "env": ("Envvars", BOOL),
})

LIFECYCLE = Spec({"hook": ("Hook", STR), "sidecar": ("Sidecar", BOOL)})

TASK = Spec({
    "driver": ("Driver", STR), "user": ("User", STR), "config": ("Config", ANY),
    "env": ("Env", STRMAP), "meta": ("Meta", STRMAP), "kill_timeout": ("KillTimeout", DURATION),
    "kill_signal": ("KillSignal", STR), "shutdown_delay": ("ShutdownDelay", DURATION),
    "leader": ("Leader", BOOL),
}, {
    "config": ("Config", _free_block, False), "constraint": ("Constraints", CONSTRAINT, True),
    "affinity": ("Affinities", AFFINITY, True), "env": ("Env", _map_block, False),
    "meta": ("Meta", _map_block, False), "service": ("Services", SERVICE, True),
    "resources": ("Resources", RESOURCES, False), "logs": ("LogConfig", LOGS, False),
    "artifact": ("Artifacts", ARTIFACT, True), "vault": ("Vault", VAULT, False),
    "template": ("Templates", TEMPLATE, True),
    "dispatch_payload": ("DispatchPayload", Spec({"file": ("File", STR)}), False),
    "lifecycle": ("Lifecycle", LIFECYCLE, False),
}, label="Name")

GROUP = Spec({
    "count": ("Count", SIZE), "meta": ("Meta", STRMAP),
    "shutdown_delay": ("ShutdownDelay", DURATION),
}, {
    "constraint": ("Constraints", CONSTRAINT, True), "affinity": ("Affinities", AFFINITY, True),
    "spread": ("Spreads", SPREAD, True), "task": ("Tasks", TASK, True),
    "restart": ("RestartPolicy", RESTART, False),
    "reschedule": ("ReschedulePolicy", RESCHEDULE, False),
    "ephemeral_disk": ("EphemeralDisk", EPHEMERAL_DISK, False),
    "update": ("Update", UPDATE, False), "migrate": ("Migrate", MIGRATE, False),
    "network": ("Networks", NETWORK, True), "service": ("Services", SERVICE, True),
    "meta": ("Meta", _map_block, False),
}, label="Name")

JOB = Spec({
    "region": ("Region", STR), "namespace": ("Namespace", STR), "name": ("Name", STR),
    "type": ("Type", STR), "priority": ("Priority", INT), "all_at_once": ("AllAtOnce", BOOL),
    "datacenters": ("Datacenters", STRLIST), "node_pool": ("NodePool", STR),
    "vault_token": ("VaultToken", STR), "consul_token": ("ConsulToken", STR),
    "meta": ("Meta", STRMAP),
}, {
    "constraint": ("Constraints", CONSTRAINT, True), "affinity": ("Affinities", AFFINITY, True),
    "spread": ("Spreads", SPREAD, True), "group": ("TaskGroups", GROUP, True),
    "update": ("Update", UPDATE, False), "periodic": ("Periodic", PERIODIC, False),
    "parameterized": ("ParameterizedJob", PARAMETERIZED, False),
    "meta": ("Meta", _map_block, False),
}, label="ID")
