"""Validation of constraints, affinities and spreads (Nomad's ``Constraint.Validate``,
``Affinity.Validate``, ``Spread.Validate``), with Nomad's message texts."""
from __future__ import annotations

import re
from typing import Any

from caravan.fsm.structs import Affinity, Constraint, Spread
from caravan.server.jobspec.gofmt import go_quote, parse_uint_error
from caravan.server.jobspec.validate_fields import int_of, numbered, present


def placement_errors(job_type: str | None, affinities: Any, spreads: Any) -> list[str]:
    """Affinities and spreads of a job, group or task: none for system jobs, else each
    valid ("Affinity 2 validation failed: ...")."""
    if job_type == "system":
        errs = []
        if affinities is not None:
            errs.append("System jobs may not have an affinity block")
        if spreads is not None:
            errs.append("System jobs may not have a spread block")
        return errs
    return numbered("Affinity", affinities, _affinity_errors) + \
        numbered("Spread", spreads, _spread_errors)


def _affinity_errors(a: Affinity) -> list[str]:
    """``Affinity.Validate``: a known operand with the RTarget it needs, an LTarget,
    and a weight in [-100, 100] other than 0."""
    errs: list[str] = []
    if not a.Operand:
        errs.append("Missing affinity operand")
    if a.Operand in _SET_OPERANDS:
        if not a.RTarget:
            errs.append("Set contains operators require an RTarget")
    elif a.Operand == "regexp":
        try:
            re.compile(a.RTarget)
        except re.error as exc:
            errs.append(f"Regular expression failed to compile: error parsing regexp: {exc}")
    elif a.Operand in ("version", "semver"):
        problem = version_constraint_error(a.RTarget, semver=a.Operand == "semver")
        if problem:
            kind = "Version" if a.Operand == "version" else "Semver"
            errs.append(f"{kind} affinity is invalid: {problem}")
    elif a.Operand in _COMPARE_OPERANDS:
        if not a.RTarget:
            errs.append(f"Operator {go_quote(a.Operand)} requires an RTarget")
    elif a.Operand:
        errs.append(f"Unknown affinity operator {go_quote(a.Operand)}")
    if not a.LTarget:
        errs.append("No LTarget provided but is required")
    weight = int_of(a.Weight)
    if weight == 0:
        errs.append("Affinity weight cannot be zero")
    if not -100 <= weight <= 100:
        errs.append("Affinity weight must be within the range [-100,100]")
    return errs


def _spread_errors(s: Spread) -> list[str]:
    """``Spread.Validate``: an attribute, a weight in (0, 100], distinct target values
    with percentages in [0, 100] that sum to at most 100."""
    errs: list[str] = []
    if not s.Attribute:
        errs.append("Missing spread attribute")
    if not 0 < int_of(s.Weight) <= 100:
        errs.append("Spread block must have a positive weight from 0 to 100")
    seen: set[str] = set()
    total = 0
    for target in present(s.SpreadTarget):
        if target.Value in seen:
            errs.append(f"Spread target value {go_quote(target.Value)} already defined")
        seen.add(target.Value)
        if not 0 <= target.Percent <= 100:
            errs.append(f"Spread target percentage for value {go_quote(target.Value)} "
                        "must be between 0 and 100")
        total += target.Percent
    if total > 100:
        errs.append(f"Sum of spread target percentages must not be greater than 100%; "
                    f"got {total}%")
    return errs


_SET_OPERANDS = ("set_contains", "set_contains_all", "set_contains_any")
_COMPARE_OPERANDS = ("=", "==", "is", "!=", "not", "<", "<=", ">", ">=")


def constraint_errors(c: Constraint) -> list[str]:
    """Constraint.Validate: a known operand, and the RTarget it needs."""
    errs: list[str] = []
    if not c.Operand:
        errs.append("Missing constraint operand")
    needs_ltarget = True
    if c.Operand == "distinct_hosts":
        needs_ltarget = False
    elif c.Operand in _SET_OPERANDS:
        if not c.RTarget:
            errs.append("Set contains constraint requires an RTarget")
    elif c.Operand == "regexp":
        try:
            re.compile(c.RTarget)
        except re.error as exc:
            errs.append(f"Regular expression failed to compile: error parsing regexp: {exc}")
    elif c.Operand == "version":
        problem = version_constraint_error(c.RTarget)
        if problem:
            errs.append(f"Version constraint is invalid: {problem}")
    elif c.Operand == "semver":
        problem = version_constraint_error(c.RTarget, semver=True)
        if problem:
            errs.append(f"Semver constraint is invalid: {problem}")
    elif c.Operand == "distinct_property":
        if c.RTarget:
            problem = parse_uint_error(c.RTarget, base=10, bits=64)
            if problem:
                errs.append(f"Failed to convert RTarget {go_quote(c.RTarget)} to uint64: {problem}")
            elif int(c.RTarget) < 1:
                errs.append(f"Distinct Property must have an allowed count of 1 or greater: {int(c.RTarget)} < 1")
    elif c.Operand in ("is_set", "is_not_set"):
        if c.RTarget:
            errs.append(f"Operator {go_quote(c.Operand)} does not support an RTarget")
    elif c.Operand in _COMPARE_OPERANDS:
        if not c.RTarget:
            errs.append(f"Operator {go_quote(c.Operand)} requires an RTarget")
    else:
        errs.append(f"Unknown constraint type {go_quote(c.Operand)}")
    if needs_ltarget and not c.LTarget:
        errs.append("No LTarget provided but is required by constraint")
    return errs


# hashicorp/go-version's VersionRegexpRaw and SemverRegexpRaw.
_VERSION = (r"v?([0-9]+(\.[0-9]+)*?)"
            r"(-([0-9]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)|(-?([A-Za-z\-~]+[0-9A-Za-z\-~]*(\.[0-9A-Za-z\-~]+)*)))?"
            r"(\+([0-9A-Za-z\-~]+(\.[0-9A-Za-z\-~]+)*))??")
_SEMVER = (r"v?([0-9]+(\.[0-9]+){0,2})"
           r"(-([0-9A-Za-z\-~]+(\.[0-9A-Za-z\-~]+)*))?"
           r"(\+([0-9A-Za-z\-~]+(\.[0-9A-Za-z\-~]+)*))??")
_VERSION_CONSTRAINT = re.compile(rf"^\s*(>=|<=|!=|~>|=|>|<|)\s*({_VERSION})\s*$")
_SEMVER_CONSTRAINT = re.compile(rf"^\s*(>=|<=|!=|=|>|<|)\s*({_SEMVER})\s*$")


def version_constraint_error(text: str, semver: bool = False) -> str | None:
    """Why a Go-style version constraint such as ">= 1.2, < 2.0" does not parse
    (go-version's NewConstraint / Nomad's semver constraints), or None."""
    pattern = _SEMVER_CONSTRAINT if semver else _VERSION_CONSTRAINT
    for single in text.split(","):
        if not pattern.match(single):
            return f"Malformed constraint: {single}"
    return None
