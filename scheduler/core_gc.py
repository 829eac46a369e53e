"""The core garbage collector: the leader's periodic pass that deletes what is dead and
old, so the state (and every snapshot of it) stays bounded.

``choose`` is pure: from one state snapshot, the leader's clock and the thresholds it
picks evaluations (with their allocations), lone allocations, jobs, deployments and
nodes by Nomad's rules (``fsm.gc``) and age, and packs them into ``CoreGC`` entries of
at most ``MAX_IDS`` objects. The FSM checks every object again when the entry applies.

Ages come from the rows' own times, stamped before the log by whoever wrote them:
an eval's ModifyTime, an allocation's ModifyTime (or CreateTime), a job's SubmitTime
(a stop stamps it too), a node's StatusUpdatedAt. A deployment carries no time: the
first entry of each pass carries the collector's clock and the index it had applied,
which the FSM records (``fsm.gc.applied_by``), and a deployment is old once a sample
at least ``deployment_gc_threshold`` old covers its ModifyIndex. A pass with nothing
to collect still submits an empty entry (a sample) when a terminal deployment is
newer than every sample, so that it can age.

``PUT /v1/system/gc`` runs ``collect`` with every threshold at zero (Nomad's force-gc).
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass

from caravan.fsm import entries as e
from caravan.fsm import gc
from caravan.fsm import schema as t
from caravan.fsm.jobs import EVAL_TERMINAL
from caravan.fsm.store import State
from caravan.fsm.structs import Allocation, Evaluation
from caravan.fsm.submit import EntryRejected, Submit
from caravan.scheduler.background import LeaderLoop

log = logging.getLogger("caravan.gc")

MAX_IDS = 1000          # objects per entry, so one entry stays small
_RETRY_AFTER = 5.0      # seconds, after a pass that could not submit


@dataclass(frozen=True)
class Thresholds:
    """Nanoseconds an object must have been dead (unchanged) before it is collected;
    zero: any age (``FORCE``)."""
    eval_ns: int = 3600 * 10**9
    job_ns: int = 4 * 3600 * 10**9
    deployment_ns: int = 3600 * 10**9
    node_ns: int = 24 * 3600 * 10**9


FORCE = Thresholds(0, 0, 0, 0)


def choose(state: State, now_ns: int, th: Thresholds, deployment_index: int
           ) -> list[e.CoreGC]:
    """The entries that collect what is eligible and old in ``state``. Deployments are
    old if their ModifyIndex is at most ``deployment_index``."""
    carriers: dict[str, str | None] = {}
    def old(t_ns: int, threshold: int) -> bool:
        # a zero threshold (force) takes any age: rows stamped by a server whose clock
        # runs ahead of this one's are not "in the future" then
        return threshold == 0 or t_ns <= now_ns - threshold

    def alloc_old(a: Allocation, threshold: int) -> bool:
        return old(max(a.ModifyTime, a.CreateTime), threshold)

    def eval_old(ev: Evaluation, threshold: int) -> bool:
        return old(ev.ModifyTime or ev.CreateTime, threshold)

    picked: dict[str, dict[str, int]] = {"Jobs": {}, "Evals": {}, "Allocs": {}, "Deployments": {},
                                        "Nodes": {}}
    gone_allocs: set[str] = set()
    for job in state.rows(t.JOBS):
        if not old(job.SubmitTime, th.job_ns) or not gc.job_collectable(state, job):
            continue
        evals = state.by_index(t.EVALS, t.BY_JOB, job.ID)
        allocs = state.by_index(t.ALLOCS, t.BY_JOB, job.ID)
        if all(eval_old(ev, th.job_ns) for ev in evals) and \
                all(alloc_old(a, th.job_ns) for a in allocs):
            picked["Jobs"][job.ID] = job.ModifyIndex
            gone_allocs.update(a.ID for a in allocs)
    for ev in state.rows(t.EVALS):
        if ev.JobID in picked["Jobs"] or ev.Status not in EVAL_TERMINAL or \
                not eval_old(ev, th.eval_ns):
            continue
        allocs = state.by_index(t.ALLOCS, t.BY_EVAL, ev.ID)
        if all(alloc_old(a, th.eval_ns) for a in allocs) and \
                gc.eval_collectable(state, ev, carriers):
            picked["Evals"][ev.ID] = ev.ModifyIndex
            gone_allocs.update(a.ID for a in allocs)
    terminal = state.index_members(t.ALLOCS, t.TERMINAL, True)
    for alloc_id in sorted(terminal):
        a = state.get(t.ALLOCS, alloc_id)
        if a.ID in gone_allocs or not alloc_old(a, th.eval_ns):
            continue
        if gc.alloc_alone_collectable(state, a):
            picked["Allocs"][a.ID] = a.ModifyIndex
            gone_allocs.add(a.ID)
    for d in state.rows(t.DEPLOYMENTS):
        if d.JobID not in picked["Jobs"] and d.ModifyIndex <= deployment_index and \
                gc.deployment_collectable(state, d):
            picked["Deployments"][d.ID] = d.ModifyIndex
    for node in state.rows(t.NODES):
        # after the others, as Nomad's force-gc: allocations collected in this pass
        # no longer hold the node
        if node.Status == "down" and old(node.StatusUpdatedAt * 10**9, th.node_ns) \
                and all(a.ID in gone_allocs
                        for a in state.by_index(t.ALLOCS, t.BY_NODE, node.ID)):
            picked["Nodes"][node.ID] = node.ModifyIndex
    return _pack(picked)


def _pack(picked: dict[str, dict[str, int]]) -> list[e.CoreGC]:
    """Entries of at most MAX_IDS objects, in the order the FSM applies kinds."""
    entries: list[e.CoreGC] = []
    current: dict[str, dict[str, int]] = {}
    room = MAX_IDS
    for kind in ("Jobs", "Evals", "Allocs", "Deployments", "Nodes"):
        for key in sorted(picked[kind]):
            if room == 0:
                entries.append(_entry(current))
                current, room = {}, MAX_IDS
            current.setdefault(kind, {})[key] = picked[kind][key]
            room -= 1
    if current:
        entries.append(_entry(current))
    return entries


def _entry(ids: dict[str, dict[str, int]]) -> e.CoreGC:
    return e.CoreGC(Jobs=ids.get("Jobs"), Evals=ids.get("Evals"), Allocs=ids.get("Allocs"),
                    Deployments=ids.get("Deployments"), Nodes=ids.get("Nodes"))


async def collect(state: State, submit: Submit, now_ns: int, th: Thresholds
                  ) -> dict[str, int]:
    """Choose and submit; returns how many of each kind the FSM deleted."""
    total = {"Jobs": 0, "Evals": 0, "Allocs": 0, "Deployments": 0, "Nodes": 0}
    deployment_index = state.last_index if th.deployment_ns == 0 else \
        gc.applied_by(state, now_ns - th.deployment_ns)
    bodies = choose(state, now_ns, th, deployment_index)
    if not bodies and _unsampled_deployment(state):
        bodies = [e.CoreGC()]
    if bodies:
        bodies[0].Now, bodies[0].Applied = now_ns, state.last_index
    for body in bodies:
        try:
            result = await submit(body)
        except EntryRejected as rej:
            log.info("garbage collection entry refused: %s", rej.message)
            continue
        for kind in total:
            total[kind] += result.get(kind, 0)
    return total


def _unsampled_deployment(state: State) -> bool:
    """A terminal deployment that no time sample covers yet (it could never age)."""
    return any(not d.active() and not gc.witness_covers(state, d.ModifyIndex)
               for d in state.rows(t.DEPLOYMENTS))


class CoreGarbageCollector(LeaderLoop):
    """The leader-only service: ``async start()/stop()`` for ``LeaderServices.add``.

    ``state()`` returns the current snapshot, ``submit(body)`` replicates an entry
    (``caravan.fsm.submit.Submit``),
    ``now()`` is the wall clock in ns; ``interval`` is in seconds; ``count(kind, n)``,
    if given, hears how many objects of each kind a pass deleted (metrics)."""

    def __init__(self, state: Callable[[], State], submit: Submit,
                 now: Callable[[], int], interval: float,
                 thresholds: Thresholds, count: Callable[[str, int], None] | None = None):
        self._state = state
        self._submit = submit
        self._now = now
        self.interval = interval
        self.thresholds = thresholds
        self._count = count
        self.collected = {"Jobs": 0, "Evals": 0, "Allocs": 0, "Deployments": 0, "Nodes": 0}

    async def _run(self) -> None:
        while True:
            try:
                await self.run_once()
                sleep = self.interval
            except Exception as exc:   # no leader for a moment, or a bug: try again
                log.warning("garbage collection pass failed: %s: %s", type(exc).__name__, exc)
                sleep = min(self.interval, _RETRY_AFTER)
            await asyncio.sleep(sleep)

    async def run_once(self) -> dict[str, int]:
        state, now = self._state(), self._now()   # the state first: see Applied
        done = await collect(state, self._submit, now, self.thresholds)
        for kind, n in done.items():
            self.collected[kind] += n
            if n and self._count is not None:
                self._count(kind, n)
        if any(done.values()):
            log.info("garbage collected %s", ", ".join(f"{n} {k.lower()}"
                                                       for k, n in done.items() if n))
        return done
