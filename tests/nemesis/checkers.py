"""Checkers over the history and the healed cluster's final state.

Each returns a list of plain-text problems (empty when the property holds), so a run
reports every violation it found, not only the first.
"""
from __future__ import annotations

import sys
from collections import defaultdict

import msgspec

from caravan.fsm.structs import Allocation, Node
from caravan.scheduler.fit import alloc_usage, node_capacity
from tests.nemesis.history import Op

# --- the model: one job ID as a register of (Version, Meta.w, Stop), or None --------------


def step(state, op: Op):
    """The model's answer to ``op`` in ``state``: (new state, ok?)."""
    if op.f == "register":
        version = 0 if state is None else state[0] + 1
        return (version, op.value, False), True
    if op.f == "stop":
        if state is None or state[2]:
            return state, True
        return (state[0] + 1, state[1], True), True
    if op.f == "read":
        return state, (tuple(op.out) if op.out is not None else None) == state
    raise ValueError(f"unknown operation {op.f!r}")


def linearizable(ops: list[Op]) -> bool:
    """Wing & Gong's search with Lowe's memo of (linearized set, state): is there an
    order of the ops, within their real-time bounds, that the model accepts? An ``ok``
    op must be placed; an ``unknown`` one (complete = inf) may be placed anywhere after
    its invocation, or never."""
    ops = sorted((o for o in ops if o.result in ("ok", "unknown") and
                  not (o.f == "read" and o.result != "ok")), key=lambda o: o.invoke)
    must = 0
    for i, o in enumerate(ops):
        if o.result == "ok":
            must |= 1 << i
    seen: set[tuple[int, object]] = set()
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 10 * len(ops) + 100))

    def search(done: int, state) -> bool:
        if done & must == must:
            return True
        if (done, state) in seen:
            return False
        seen.add((done, state))
        pending = [i for i in range(len(ops)) if not done >> i & 1]
        horizon = min(ops[i].complete for i in pending)
        for i in pending:
            if ops[i].invoke > horizon:
                break   # sorted by invocation: nothing later can go first either
            new, ok = step(state, ops[i])
            if ok and search(done | 1 << i, new):
                return True
        return False

    try:
        return search(0, None)
    finally:
        sys.setrecursionlimit(limit)


def check_linearizable(ops: list[Op], versions: dict[str, list[dict]] | None = None
                       ) -> list[str]:
    """One problem per job ID whose operations have no linearization; with the final
    ``versions``, it names the first stale read found as a hint."""
    by_key = defaultdict(list)
    for o in ops:
        if o.f in ("register", "stop", "read"):
            by_key[o.key].append(o)
    problems = []
    for key, kops in sorted(by_key.items()):
        if not linearizable(kops):
            hint = stale_read(kops, (versions or {}).get(key, []))
            problems.append(f"job {key!r}: no linearization of its {len(kops)} operations"
                            + (f"; {hint}" if hint else ""))
    return problems


def stale_read(ops: list[Op], versions: list[dict]) -> str:
    """The first read that returned an older version than one a register had already
    been acknowledged for, by the final versions of the job."""
    version_of = {(v.get("Meta") or {}).get("w"): v["Version"] for v in versions
                  if not v.get("Stop")}
    writes = [o for o in ops if o.f == "register" and o.result == "ok" and
              o.value in version_of]
    for r in sorted((o for o in ops if o.f == "read" and o.result == "ok"),
                    key=lambda o: o.invoke):
        seen = r.out[0] if r.out is not None else -1
        for w in writes:
            if w.complete < r.invoke and version_of[w.value] > seen:
                return (f"op {r.id} read via {r.server} at {r.invoke}s saw version {seen}, "
                        f"but op {w.id} (version {version_of[w.value]}, via {w.server}) was "
                        f"acknowledged at {w.complete}s")
    return ""


# --- acknowledged writes, versions ----------------------------------------------------------


def check_versions(ops: list[Op], versions: dict[str, list[dict]]) -> tuple[list[str], int]:
    """Every acknowledged register and stop is a version of its job; versions run 0..n
    without gaps; no write was applied twice. ``versions``: job ID -> its versions
    (as /v1/job/:id/versions returns them). Returns (problems, lost writes)."""
    problems, lost = [], 0
    for key, vs in sorted(versions.items()):
        numbers = sorted(v["Version"] for v in vs)
        if numbers != list(range(len(numbers))):
            problems.append(f"job {key!r}: versions {numbers} have gaps or duplicates")
        markers = [(v.get("Meta") or {}).get("w") for v in vs if not v.get("Stop")]
        twice = sorted({m for m in markers if markers.count(m) > 1})
        if twice:
            problems.append(f"job {key!r}: writes applied more than once: {twice}")
    for o in ops:
        if o.result != "ok" or o.f not in ("register", "stop"):
            continue
        vs = versions.get(o.key, [])
        if o.f == "register":
            hit = [v for v in vs if (v.get("Meta") or {}).get("w") == o.value and
                   not v.get("Stop")]
        elif o.out:   # a stop that stopped a running job
            hit = [v for v in vs if v.get("Stop") and v["JobModifyIndex"] == o.out]
        else:
            continue
        if not hit:
            lost += 1
            problems.append(f"lost write: op {o.id} {o.f} {o.key!r} ({o.value}) was "
                            f"acknowledged at {o.complete}s but is not in the final state")
        elif o.out and hit[0]["JobModifyIndex"] != o.out:
            problems.append(f"op {o.id} {o.f} {o.key!r}: acknowledged with JobModifyIndex "
                            f"{o.out}, stored with {hit[0]['JobModifyIndex']}")
    return problems, lost


def merge_versions(archived: dict[str, list[dict]], final: dict[str, list[dict]]
                   ) -> dict[str, list[dict]]:
    """Each job's versions as the checkers see them: the final state's while the job is
    still there (so a version lost after it was archived is still caught), else what
    the archiver recorded before the garbage collector could delete it (``archive.py``)."""
    return {key: final.get(key) or archived.get(key) or []
            for key in sorted(set(archived) | set(final))}


def check_dispatches(ops: list[Op], existing: set[str]) -> tuple[list[str], int]:
    missing = [o for o in ops if o.f == "dispatch" and o.result == "ok" and
               o.out not in existing]
    return [f"lost write: op {o.id} dispatch {o.out!r} acknowledged at {o.complete}s is "
            f"gone" for o in missing], len(missing)


# --- placement ----------------------------------------------------------------------------


def check_no_overcommit(nodes: list[dict], allocs: dict[str, list[dict]]) -> list[str]:
    """``nodes``: full node objects; ``allocs``: node ID -> its allocations (HTTP JSON)."""
    problems = []
    for raw in nodes:
        node = msgspec.convert(raw, Node, strict=False)
        live = [a for a in (msgspec.convert(x, Allocation, strict=False)
                            for x in allocs.get(node.ID, [])) if not a.terminal()]
        cap = node_capacity(node)
        cpu = sum(alloc_usage(a).cpu for a in live)
        mem = sum(alloc_usage(a).memory_mb for a in live)
        if cpu > cap.cpu or mem > cap.memory_mb:
            problems.append(f"node {node.Name} ({node.ID[:8]}) overcommitted: {len(live)} "
                            f"live allocations use {cpu} MHz / {mem} MB of {cap.cpu} MHz / "
                            f"{cap.memory_mb} MB")
    return problems
