"""Feasibility: which nodes may run a task group at all, before any resource is counted.

Reproduces Nomad 1.x ``scheduler/feasible/feasible.go`` (checked against v1.11 and the
0.6-era file): constraint targets and operands (versions compared by ``scheduler/versions.py``), the
driver, network and constraint checkers, the computed node class, and the
``distinct_hosts`` / ``distinct_property`` stages. A checker is a plain function of the
node that returns why it is filtered (the exact ``ConstraintFiltered`` key Nomad uses)
or ``None``; whether its answer may be reused for a whole computed class is the stack's
business (``scheduler/stack.py``), so the rules here stay free of per-eval state.
"""
from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Callable, Iterable, Iterator
from functools import lru_cache

from caravan.fsm.structs import Allocation, AllocMetric, Constraint, Job, Node, TaskGroup
from caravan.scheduler.versions import INTEGER, ORDERINGS, parse_version, parse_version_constraint

FILTER_DRIVERS = "missing drivers"
FILTER_NETWORK = "missing network"
FILTER_HOST_VOLUMES = "missing compatible host volumes"
DEFAULT_HOST_NETWORK = "default"   # the alias of a node's own address
FILTER_CLASS_INELIGIBLE = "computed class ineligible"
DISTINCT_HOSTS = "distinct_hosts"
DISTINCT_PROPERTY = "distinct_property"
Checker = Callable[[Node], "str | None"]  # None = feasible, else the filter reason
_NODE_TARGETS = {"${node.unique.id}": "ID", "${node.datacenter}": "Datacenter",
                 "${node.unique.name}": "Name", "${node.class}": "NodeClass",
                 "${node.pool}": "NodePool"}


def resolve_target(target: str, node: Node) -> tuple[str | None, bool]:
    """Nomad's ``resolveTarget``: a literal unless it starts with ``${``; unknown
    interpolations and missing attributes/meta resolve to ``(None, False)``."""
    if not target.startswith("${"):
        return target, True
    if target in _NODE_TARGETS:
        return getattr(node, _NODE_TARGETS[target]), True
    for prefix, table in (("${attr.", node.Attributes), ("${meta.", node.Meta)):
        if target.startswith(prefix):
            key = target[len(prefix):].removesuffix("}")
            value = (table or {}).get(key)
            return value, value is not None
    return None, False


def constraint_string(c: Constraint) -> str:
    """``Constraint.String()``: the ConstraintFiltered key, e.g. ``${attr.kernel.name} = linux``."""
    return f"{c.LTarget} {c.Operand} {c.RTarget}"


def check_constraint(op: str, lval: str | None, rval: str | None,
                     lfound: bool, rfound: bool) -> bool:
    """Nomad 1.x ``checkConstraint``. 0.6 failed every operand when a side was missing;
    1.x lets ``!=`` compare the empty string Go returns for a missing target, so
    ``${attr.missing} != "x"`` holds and ``${attr.missing} != ""`` does not."""
    if op in (DISTINCT_HOSTS, DISTINCT_PROPERTY):
        return True  # enforced by their own stages, which need the allocations
    both = lfound and rfound
    lstr, rstr = lval or "", rval or ""
    if op in ("=", "==", "is"):
        return both and lstr == rstr
    if op in ("!=", "not"):
        return lstr != rstr
    if op in ("<", "<=", ">", ">="):
        return both and _check_order(op, lstr, rstr)
    if op == "is_set":
        return lfound
    if op == "is_not_set":
        return not lfound
    if op in ("version", "semver"):
        if not both:
            return False
        version = parse_version(lstr)
        checks = parse_version_constraint(rstr, op == "semver")
        return version is not None and checks is not None and \
            all(check(version) for check in checks)
    if op == "regexp":
        pattern = _compile_regexp(rstr)
        return both and pattern is not None and pattern.search(lstr) is not None
    if op in ("set_contains", "set_contains_all"):
        return both and _split_set(rstr) <= _split_set(lstr)
    if op == "set_contains_any":
        return both and bool(_split_set(rstr) & _split_set(lstr))
    return False


def _check_order(op: str, left: str, right: str) -> bool:
    """1.x ``checkOrder``: as int64 when both parse, else as floats, else lexically
    (Go compares bytes; code-point order is the same for UTF-8)."""
    if INTEGER.fullmatch(left) and INTEGER.fullmatch(right):
        lint, rint = int(left), int(right)
        if all(-2**63 <= v < 2**63 for v in (lint, rint)):
            return ORDERINGS[op](lint, rint)
    lfloat, rfloat = _go_float(left), _go_float(right)
    if lfloat is not None and rfloat is not None:
        return ORDERINGS[op](lfloat, rfloat)
    return ORDERINGS[op](left, right)


def _go_float(text: str) -> float | None:
    """Python's ``float`` agrees with Go's ``ParseFloat`` on decimal input (digit
    separating underscores, inf, nan) once surrounding space and non-ASCII are refused;
    Go's hexadecimal floats are not supported."""
    if not text.isascii() or text != text.strip():
        return None
    try:
        value = float(text)
    except ValueError:
        return None
    return None if math.isinf(value) and "inf" not in text.lower() else value  # ErrRange


def _split_set(value: str) -> set[str]:
    return {part.strip() for part in value.split(",")}


@lru_cache(maxsize=256)
def _compile_regexp(pattern: str) -> re.Pattern[str] | None:
    """Go RE2 patterns compiled with Python ``re`` (same syntax for everyday patterns);
    a pattern that does not compile fails the constraint, as in Nomad."""
    try:
        return re.compile(pattern)
    except re.error:
        return None


_BOOLS = {**dict.fromkeys(("1", "t", "T", "TRUE", "true", "True"), True),
          **dict.fromkeys(("0", "f", "F", "FALSE", "false", "False"), False)}


def parse_bool(text: str) -> bool | None:
    """Go ``strconv.ParseBool``; None when it would error."""
    return _BOOLS.get(text)


def driver_checker(drivers: Iterable[str]) -> Checker:
    """1.x DriverChecker: a fingerprinted DriverInfo decides (detected and healthy);
    without one, the ``driver.<name>`` attribute must parse as true."""
    wanted = sorted(set(drivers))

    def check(node: Node) -> str | None:
        for name in wanted:
            info = (node.Drivers or {}).get(name)
            if info is not None:
                ok = info.Detected and info.Healthy
            else:
                ok = parse_bool((node.Attributes or {}).get(f"driver.{name}", "")) is True
            if not ok:
                return FILTER_DRIVERS
        return None
    return check


def constraint_checker(constraints: Iterable[Constraint]) -> Checker:
    """Filters on the first unmet constraint, keyed by its string form."""
    cons = list(constraints)

    def check(node: Node) -> str | None:
        for c in cons:
            lval, lfound = resolve_target(c.LTarget, node)
            rval, rfound = resolve_target(c.RTarget, node)
            if not check_constraint(c.Operand, lval, rval, lfound, rfound):
                return constraint_string(c)
        return None
    return check


def network_checker(tg: TaskGroup) -> Checker:
    """1.x NetworkChecker: a group network of mode M needs a node network of mode M
    (empty means ``host``); mode ``none`` needs nothing. Then each of the group
    network's ports needs the host network it names (``hasHostNetworks``): Caravan
    nodes have only their ``default`` one (no ``host_network`` aliases)."""
    mode = (tg.Networks[0].Mode or "host") if tg.Networks else "none"
    ports = [*(tg.Networks[0].DynamicPorts or ()), *(tg.Networks[0].ReservedPorts or ())] \
        if tg.Networks else []

    def check(node: Node) -> str | None:
        if mode == "none":
            return None
        nets = node.NodeResources.Networks if node.NodeResources else None
        if not any((n.Mode or "host") == mode for n in nets or []):
            return FILTER_NETWORK
        for port in ports:
            if not port.HostNetwork:
                continue
            value, found = resolve_target(port.HostNetwork, node)
            if not found:
                return (f'invalid host network "{port.HostNetwork}" template for port '
                        f'"{port.Label}"')
            if value != DEFAULT_HOST_NETWORK:
                return f'missing host network "{value}" for port "{port.Label}"'
        return None
    return check


def alloc_suffix(alloc_name: str) -> str:
    """``structs.AllocSuffix``: the ``[index]`` that ends an allocation's name."""
    at = alloc_name.rfind("[")
    return alloc_name[at:] if at >= 0 else ""


def host_volume_checker(tg: TaskGroup, alloc_name: str = "") -> Checker:
    """1.x HostVolumeChecker: every host volume the group requests must be offered by
    the node under its ``Source`` name (a ``per_alloc`` request names ``source[index]``),
    and a read-only host volume only serves read-only requests."""
    wanted: dict[str, list[bool]] = {}     # source -> read_only of each request
    for req in (tg.Volumes or {}).values():
        if req is None or req.Type != "host":
            continue
        source = req.Source + alloc_suffix(alloc_name) if req.PerAlloc else req.Source
        wanted.setdefault(source, []).append(req.ReadOnly)

    def check(node: Node) -> str | None:
        if not wanted:
            return None
        offered = node.HostVolumes or {}
        for source, read_only in wanted.items():
            volume = offered.get(source)
            if volume is None or (volume.ReadOnly and not all(read_only)):
                return FILTER_HOST_VOLUMES
        return None
    return check


def per_alloc_volumes(tg: TaskGroup) -> bool:
    """A ``per_alloc`` volume's answer differs between the group's allocations, so it
    cannot be memoized per node class."""
    return any(req is not None and req.PerAlloc for req in (tg.Volumes or {}).values())


def group_constraints(tg: TaskGroup) -> tuple[list[Constraint], set[str]]:
    """``TaskGroupConstraints``: the group's then each task's constraints, and drivers."""
    constraints = list(tg.Constraints or [])
    drivers = set()
    for task in tg.Tasks or []:
        drivers.add(task.Driver)
        constraints.extend(task.Constraints or [])
    return constraints, drivers


def in_datacenters(node: Node, datacenters: Iterable[str]) -> bool:
    """1.x ``Node.IsInAnyDC``: go-glob patterns, where only ``*`` is special."""
    return any(_glob(dc).fullmatch(node.Datacenter) for dc in datacenters)


@lru_cache(maxsize=256)
def _glob(pattern: str) -> re.Pattern[str]:
    return re.compile(".*".join(re.escape(part) for part in pattern.split("*")), re.DOTALL)


def in_pool(node: Node, pool: str | None) -> bool:
    return pool in (None, "", "all") or node.NodePool == pool


def computed_class(node: Node) -> str:
    """``v1:<uint64>`` over what makes nodes interchangeable for feasibility: datacenter,
    attributes and meta without ``unique.*`` keys, node class and pool, as Nomad; plus,
    unlike Nomad (whose memo can then go stale), each driver's detected/healthy flags,
    the node's network modes and its host volumes (name and read-only), which the
    memoized checks also read."""
    def shared(table: dict[str, str] | None) -> dict[str, str]:
        return {k: v for k, v in (table or {}).items() if not k.startswith("unique.")}
    nets = node.NodeResources.Networks if node.NodeResources is not None else None
    body = {"Datacenter": node.Datacenter, "Attributes": shared(node.Attributes),
            "Meta": shared(node.Meta), "NodeClass": node.NodeClass, "NodePool": node.NodePool,
            "Drivers": {k: [d.Detected, d.Healthy] for k, d in (node.Drivers or {}).items()},
            "NetworkModes": sorted({n.Mode or "host" for n in nets or []}),
            "HostVolumes": {k: bool(v.ReadOnly) for k, v in (node.HostVolumes or {}).items()}}
    digest = hashlib.blake2b(json.dumps(body, sort_keys=True).encode(), digest_size=8).digest()
    return f"v1:{int.from_bytes(digest, 'big')}"


def escapes(constraints: Iterable[Constraint]) -> bool:
    """Constraints on unique targets cannot be answered per class (``EscapedConstraints``)."""
    prefixes = ("${unique.", "${node.unique.", "${attr.unique.", "${meta.unique.")
    return any(c.LTarget.startswith(prefixes) or c.RTarget.startswith(prefixes)
               for c in constraints)


def filter_node(metric: AllocMetric, node: Node, reason: str) -> None:
    """``AllocMetric.FilterNode``: ClassFiltered counts the node's *NodeClass*."""
    metric.NodesFiltered += 1
    if node.NodeClass:
        metric.ClassFiltered = metric.ClassFiltered or {}
        metric.ClassFiltered[node.NodeClass] = metric.ClassFiltered.get(node.NodeClass, 0) + 1
    if reason:
        metric.ConstraintFiltered = metric.ConstraintFiltered or {}
        metric.ConstraintFiltered[reason] = metric.ConstraintFiltered.get(reason, 0) + 1


def distinct_hosts(source: Iterable[Node], job: Job, tg: TaskGroup,
                   proposed_of: Callable[[str], list[Allocation]],
                   metric: AllocMetric) -> Iterable[Node]:
    """Job level: no two allocs of the job on a node; group level: of the job's group.
    RTarget "false" switches it off (1.x); anything unparsable keeps it on. Without
    the constraint the source is returned as it is (no stage to pass through)."""
    job_level, tg_level = _distinct_hosts_on(job.Constraints), _distinct_hosts_on(tg.Constraints)
    if not (job_level or tg_level):
        return source
    return _distinct_hosts(source, job, tg, proposed_of, metric, job_level)


def _distinct_hosts(source: Iterable[Node], job: Job, tg: TaskGroup,
                    proposed_of: Callable[[str], list[Allocation]], metric: AllocMetric,
                    job_level: bool) -> Iterator[Node]:
    namespace = job.Namespace or "default"
    for node in source:
        if any(a.JobID == job.ID and a.Namespace == namespace
               and (job_level or a.TaskGroup == tg.Name) for a in proposed_of(node.ID)):
            filter_node(metric, node, DISTINCT_HOSTS)
        else:
            yield node


def _distinct_hosts_on(constraints: list[Constraint] | None) -> bool:
    for c in constraints or []:
        if c.Operand == DISTINCT_HOSTS:
            return c.RTarget == "" or parse_bool(c.RTarget) is not False
    return False


# live allocations per property value; a node field (``${node.class}``) may be unset
PropertyCounts = dict[str | None, int]


class PropertySet:
    """One ``distinct_property`` constraint: at most RTarget (default 1) live allocs of
    the job (or of one group) per value of LTarget on their nodes."""

    def __init__(self, c: Constraint, tg_name: str | None):
        self.target, self.tg_name, self.error = c.LTarget, tg_name, None
        self.allowed = 1
        if c.RTarget:
            if re.fullmatch(r"[0-9]+", c.RTarget) and int(c.RTarget) < 2**64:
                self.allowed = int(c.RTarget)
            else:
                self.error = (f"failed to convert RTarget {json.dumps(c.RTarget)} to uint64: "
                              f"strconv.ParseUint: parsing {json.dumps(c.RTarget)}: invalid syntax")

    def usage(self, placed: Iterable[tuple[str, Allocation]],
              nodes: dict[str, Node]) -> PropertyCounts:
        """Live allocations per property value, from (node ID, allocation) pairs."""
        counts: PropertyCounts = {}
        for node_id, alloc in placed:
            node = nodes.get(node_id)
            if node is None or (self.tg_name is not None and alloc.TaskGroup != self.tg_name):
                continue
            value, found = self._value(node)
            if found:
                counts[value] = counts.get(value, 0) + 1
        return counts

    def _value(self, node: Node) -> tuple[str | None, bool]:
        return resolve_target(self.target, node) if self.target else (None, False)

    def check(self, node: Node, counts: PropertyCounts) -> str | None:
        if self.error:
            return self.error
        value, found = self._value(node)
        if not found:
            return f"missing property {json.dumps(self.target)}"
        used = counts.get(value, 0)
        if used < self.allowed:
            return None
        return f"distinct_property: {self.target}={value} used by {used} allocs"


def distinct_property(source: Iterable[Node], sets: list[tuple[PropertySet, PropertyCounts]],
                      metric: AllocMetric) -> Iterable[Node]:
    """Filter by every ``distinct_property`` set; without any, the source as it is."""
    return _distinct_property(source, sets, metric) if sets else source


def _distinct_property(source: Iterable[Node], sets: list[tuple[PropertySet, PropertyCounts]],
                       metric: AllocMetric) -> Iterator[Node]:
    for node in source:
        reason = next((r for ps, counts in sets if (r := ps.check(node, counts))), None)
        if reason is None:
            yield node
        else:
            filter_node(metric, node, reason)
