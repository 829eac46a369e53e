"""Versions and version constraints as Nomad compares them: hashicorp/go-version's
``NewVersion`` / ``NewConstraint`` (``version`` operand) and Nomad's semver (``semver``
operand), with the pessimistic ``~>`` operator and prerelease rules."""
from __future__ import annotations

import re
from collections.abc import Callable
from functools import lru_cache
from itertools import zip_longest
from typing import Any, NamedTuple

INTEGER = re.compile(r"[+-]?[0-9]+")
# the operands are ints, floats, strings or version comparisons' ints, as the caller chose
Compare = Callable[[Any, Any], bool]
ORDERINGS: dict[str, Compare] = {"<": lambda a, b: a < b, "<=": lambda a, b: a <= b,
                                 ">": lambda a, b: a > b, ">=": lambda a, b: a >= b}
EQUALITIES: dict[str, Compare] = {"": lambda a, b: a == b, "=": lambda a, b: a == b, "!=": lambda a, b: a != b}

_PART = r"[0-9A-Za-z\-~]"
_VERSION = (rf"v?([0-9]+(\.[0-9]+)*?)(-([0-9]+{_PART}*(\.{_PART}+)*)|(-?([A-Za-z\-~]+{_PART}*"
            rf"(\.{_PART}+)*)))?(\+({_PART}+(\.{_PART}+)*))?")
_SEMVER = _VERSION.replace("|(-?(", "|(-(")  # semver wants a '-' before a prerelease
_WS = r"[ \t\n\f\r]*"
_OPS = r"(~>|>=|<=|!=|=|>|<|)"


class Version(NamedTuple):
    """Segments (padded to 3; ``si`` = how many were written) and a prerelease."""
    segments: list[int]
    si: int
    pre: str

    def compare(self, other: Version) -> int:
        if self.segments == other.segments:
            if self.pre == other.pre:
                return 0
            if not self.pre or not other.pre:
                return 1 if not self.pre else -1
            return _compare_prereleases(self.pre, other.pre)
        a, b = self.segments, other.segments
        width = max(len(a), len(b))
        a, b = a + [0] * (width - len(a)), b + [0] * (width - len(b))
        return (a > b) - (a < b)


def _compare_prereleases(a: str, b: str) -> int:
    parts = zip_longest(a.split("."), b.split("."), fillvalue="")
    return next((r for r in (_compare_part(x, y) for x, y in parts) if r), 0)


def _compare_part(a: str, b: str) -> int:
    """go-version ``comparePart``, quirks included (numeric < alphanumeric)."""
    if a == b:
        return 0
    a_num, b_num = bool(INTEGER.fullmatch(a)), bool(INTEGER.fullmatch(b))
    if a == "":
        return -1 if b_num else 1
    if b == "":
        return 1 if a_num else -1
    if a_num != b_num:
        return -1 if a_num else 1
    if not a_num:
        return 1 if a > b else -1
    return 1 if int(a) > int(b) else -1


@lru_cache(maxsize=1024)
def parse_version(text: str, semver: bool = False) -> Version | None:
    match = re.fullmatch(_SEMVER if semver else _VERSION, text)
    if match is None:
        return None
    written = [int(s) for s in match.group(1).split(".")]
    if any(s >= 2**63 for s in written):
        return None
    return Version(written + [0] * (3 - len(written)), len(written),
                   match.group(7) or match.group(4) or "")  # build metadata is ignored


def _pre_ok(v: Version, c: Version) -> bool:
    """go-version ``prereleaseCheck``: a prerelease only satisfies an ordering against
    a prerelease bound with the same segments."""
    if c.pre and v.pre:
        return v.segments == c.segments
    return not (v.pre and not c.pre)


def _pessimistic(v: Version, c: Version) -> bool:
    if not _pre_ok(v, c) or (c.pre and not v.pre) or v.compare(c) < 0:
        return False
    n = len(c.segments)
    if n > len(v.segments) or v.segments[:c.si - 1] != c.segments[:c.si - 1]:
        return False
    return c.segments[n - 1] <= v.segments[n - 1]


def _version_check(op: str, bound: Version, semver: bool) -> Callable[[Version], bool]:
    if op == "~>":
        return lambda v: _pessimistic(v, bound)
    compare = {**ORDERINGS, **EQUALITIES}[op]
    guarded = op in ORDERINGS and not semver
    return lambda v: (not guarded or _pre_ok(v, bound)) and compare(v.compare(bound), 0)


@lru_cache(maxsize=256)
def parse_version_constraint(text: str, semver: bool = False) -> tuple[Callable[[Version], bool], ...] | None:
    """``">= 1.2, < 2.0"`` -> checks, all of which must hold; None if malformed.
    ``semver`` is Nomad's helper/constraints/semver: strict versions, no ``~>``, and
    plain Semver 2.0 ordering (no go-version prerelease restriction)."""
    checks = []
    for single in text.split(","):
        match = re.fullmatch(_WS + _OPS + _WS + f"({_SEMVER if semver else _VERSION})" + _WS,
                             single)
        if match is None or (semver and match.group(1) == "~>"):
            return None
        bound = parse_version(match.group(2), semver)
        if bound is None:
            return None
        checks.append(_version_check(match.group(1), bound, semver))
    return tuple(checks)
