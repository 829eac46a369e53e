"""The blocks of a job file: for each, the arguments it takes (with the converter
that checks and shapes a value: durations to nanoseconds, whole non-negative numbers
for sizes and counts, string lists and maps) and the blocks it may hold, mapped onto
the JSON field names of Nomad's API job. ``Context.decode`` walks one block with its
``Spec``; anything not in the spec is an error that names the line and the block."""
from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from lark import Tree

from caravan.fsm.durations import parse_go_duration
from caravan.server.jobspec.hcl_eval import Evaluator
from caravan.server.jobspec.hcl_tree import HclError, children, error_at


@dataclass
class Item:
    """One argument (``kind == "attr"``) or block of a body."""
    kind: str
    name: str
    node: Tree            # the value expression (attr) or the block's body
    at: Tree              # where to point in an error
    labels: list[str] = field(default_factory=list)


def read_body(text: str, body: Tree) -> list[Item]:
    items = []
    for node in children(body):
        name_node = node.children[0]
        name = str(name_node.children[0]) if isinstance(name_node, Tree) else str(name_node)
        if node.data == "attribute":
            items.append(Item("attr", name, children(node)[1], node))
            continue
        parts = children(node)
        labels = []
        for label in parts[1:-1]:
            if label.data == "string":
                labels.append(Evaluator(text, {}).value(label))
            else:
                labels.append(str(label.children[0]))
        items.append(Item("block", name, parts[-1], node, labels))
    return items


def check_labels(item: Item, n: int, what: str) -> None:
    if len(item.labels) == n:
        return
    if len(item.labels) < n:
        raise error_at(item.at, f"Missing name for {what}",
                       f'a {what} block needs a name, as in {what} "name" {{ ... }}')
    raise error_at(item.at, f"Extraneous label for {what}",
                   f"a {what} block takes {'one label' if n == 1 else 'no labels'}")


# --- decoding blocks --------------------------------------------------------------------


Conv = Callable[["Context", Item, Any, str], Any]


@dataclass
class Spec:
    attrs: dict[str, tuple[str, Conv]]
    # block name -> (field, Spec or handler function, repeated?)
    blocks: dict[str, tuple[str, Any, bool]] = field(default_factory=dict)
    label: str | None = None   # the field a single block label fills
    finish: Callable[[dict, Item], None] | None = None


class Context:
    def __init__(self, text: str, evaluator: Evaluator):
        self.text = text
        self.ev = evaluator

    def decode(self, item: Item, spec: Spec, where: str) -> dict:
        check_labels(item, 1 if spec.label else 0, item.name)
        out: dict[str, Any] = {}
        if spec.label:
            out[spec.label] = item.labels[0]
        seen: set[str] = set()
        for child in read_body(self.text, item.node):
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
    try:
        return parse_go_duration(text)
    except ValueError:
        return None


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


def _map_block(ctx: Context, item: Item, where: str) -> dict:
    """``meta { k = "v" }``, ``env {}``, ``options {}``: a map of strings."""
    check_labels(item, 0, item.name)
    out = {}
    for child in read_body(ctx.text, item.node):
        if child.kind != "attr":
            raise error_at(child.at, "Unexpected block",
                           f"{where} holds key = value pairs only, not blocks")
        out[child.name] = STR(ctx, child, ctx.ev.value(child.node), f"{child.name} in {where}")
    return out


def _header_block(ctx: Context, item: Item, where: str) -> dict:
    out = {}
    for child in read_body(ctx.text, item.node):
        if child.kind != "attr":
            raise error_at(child.at, "Unexpected block", f"{where} holds name = [values] only")
        out[child.name] = STRLIST(ctx, child, ctx.ev.value(child.node), f"{child.name} in {where}")
    return out


def _free_block(ctx: Context, item: Item, where: str) -> dict:
    """A driver's ``config {}``: any arguments; a nested block becomes a list of maps,
    one per occurrence (``port_map { db = 6379 }`` -> ``"port_map": [{"db": 6379}]``)."""
    out: dict[str, Any] = {}
    for child in read_body(ctx.text, item.node):
        if child.kind == "attr":
            out[child.name] = ctx.ev.value(child.node)
        else:
            out.setdefault(child.name, []).append(_free_block(ctx, child, where))
    return out


def _policy_block(ctx: Context, item: Item, where: str) -> dict:
    """A scaling block's ``policy {}``: free-form, as the autoscaler reads it. A nested
    block becomes a list of maps, one per occurrence, and each of its labels one more
    level of ``{label: [...]}`` (``check "cpu" { ... }`` -> ``"check": [{"cpu": [{...}]}]``),
    the shape Nomad gives it."""
    out: dict[str, Any] = {}
    for child in read_body(ctx.text, item.node):
        if child.kind == "attr":
            out[child.name] = ctx.ev.value(child.node)
            continue
        value: Any = _policy_block(ctx, child, where)
        for label in reversed(child.labels):
            value = {label: [value]}
        out.setdefault(child.name, []).append(value)
    return out


def _port(ctx: Context, item: Item, where: str) -> dict:
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

SCALING = Spec({"enabled": ("Enabled", BOOL), "min": ("Min", INT), "max": ("Max", INT),
                "type": ("Type", STR), "policy": ("Policy", ANY)},
               {"policy": ("Policy", _policy_block, False)})

PERIODIC = Spec({"cron": ("Spec", STR), "prohibit_overlap": ("ProhibitOverlap", BOOL),
                 "time_zone": ("TimeZone", STR), "enabled": ("Enabled", BOOL)},
                finish=_periodic)

PARAMETERIZED = Spec({"payload": ("Payload", STR), "meta_required": ("MetaRequired", STRLIST),
                      "meta_optional": ("MetaOptional", STRLIST)})

PORT = Spec({"static": ("Value", SIZE), "to": ("To", INT), "host_network": ("HostNetwork", STR)},
            label="Label")

DNS = Spec({"servers": ("Servers", STRLIST), "searches": ("Searches", STRLIST),
            "options": ("Options", STRLIST)})

NETWORK = Spec({"mode": ("Mode", STR), "mbits": ("MBits", SIZE), "hostname": ("Hostname", STR)},
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

VOLUME_MOUNT = Spec({"volume": ("Volume", STR), "destination": ("Destination", STR),
                     "read_only": ("ReadOnly", BOOL), "propagation_mode": ("PropagationMode", STR)})


def _volume(ctx: Context, item: Item, where: str) -> tuple[str, dict]:
    """``volume "name" { ... }``: one entry of the group's Volumes map, keyed by its label."""
    out = ctx.decode(item, VOLUME, where)
    return out["Name"], out


VOLUME = Spec({"type": ("Type", STR), "source": ("Source", STR), "read_only": ("ReadOnly", BOOL),
               "access_mode": ("AccessMode", STR), "attachment_mode": ("AttachmentMode", STR),
               "per_alloc": ("PerAlloc", BOOL)},
              {"mount_options": ("MountOptions", Spec({"fs_type": ("FSType", STR),
                                                       "mount_flags": ("MountFlags", STRLIST)}),
                                 False)},
              label="Name")


def _group_volumes(out: dict, item: Item) -> None:
    volumes = out.pop("_volumes", None)
    if volumes is None:
        return
    table: dict[str, dict] = {}
    for name, volume in volumes:
        if name in table:
            raise error_at(item.at, "Duplicate volume",
                           f'the volume "{name}" is declared twice in group "{out.get("Name")}"')
        table[name] = volume
    out["Volumes"] = table

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
    "volume_mount": ("VolumeMounts", VOLUME_MOUNT, True),
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
    "scaling": ("Scaling", SCALING, False),
    "meta": ("Meta", _map_block, False), "volume": ("_volumes", _volume, True),
}, label="Name", finish=_group_volumes)

JOB = Spec({
    "region": ("Region", STR), "namespace": ("Namespace", STR), "name": ("Name", STR),
    "type": ("Type", STR), "priority": ("Priority", INT), "all_at_once": ("AllAtOnce", BOOL),
    "datacenters": ("Datacenters", STRLIST), "node_pool": ("NodePool", STR),
    "vault_token": ("VaultToken", STR), "consul_token": ("ConsulToken", STR),
    "meta": ("Meta", STRMAP),
}, {
    "constraint": ("Constraints", CONSTRAINT, True), "affinity": ("Affinities", AFFINITY, True),
    "spread": ("Spreads", SPREAD, True), "group": ("TaskGroups", GROUP, True),
    "update": ("Update", UPDATE, False), "migrate": ("Migrate", MIGRATE, False),
    "periodic": ("Periodic", PERIODIC, False),
    "reschedule": ("Reschedule", RESCHEDULE, False),
    "parameterized": ("ParameterizedJob", PARAMETERIZED, False),
    "meta": ("Meta", _map_block, False),
}, label="ID")
