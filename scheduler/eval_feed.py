"""How evaluations reach the leader's broker: pending evals as commits write them
(``feed_pending``), blocked evals released when capacity may have appeared
(``release_blocked``), the follow-up of an eval the broker gave up on
(``delivery_failed``), and the ``node-update`` evals a node's change calls for
(``node_update_evals``, written by the gateway and the heartbeat tracker).

The two loops run on the leader only (``server/leader.py`` starts them with its other
services and cancels them with leadership); they hold nothing the log lacks. Their
inputs are injected: the current state, the commit notifier, the FSM's write
listeners, the broker and the wall clock (the simulation's virtual one there).
"""
from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable

from msgspec.structs import replace

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.structs import Evaluation
from caravan.scheduler.background import AnyCommits, WriteListener, WrittenKeys
from caravan.scheduler.broker import EvalBroker
from caravan.scheduler.state import SchedulerState as State

FEED_INTERVAL = 0.005     # seconds between scans of the pending evals, at least
FEED_RESCAN = 5.0         # seconds between full re-scans
FEED_BACKOFF = 20         # and wait at least this many times what the last scan took
FOLLOW_UP_WAIT_NS = 60 * 1_000_000_000


async def feed_pending(broker: EvalBroker, state: Callable[[], State],
                       notifier: Callable[[], AnyCommits], write_listeners: list[WriteListener],
                       now_ns: Callable[[], int]) -> None:
    """Hand every pending eval in the state to the broker: after each change to the
    evals table, the evals the FSM reports written since the last pass
    (``FSM.write_listeners``) that are still pending; every FEED_RESCAN, and whenever the
    whole state was replaced, all of them (delayed follow-ups that came due, or
    anything the broker dropped). A pass runs at most every FEED_INTERVAL, so a
    burst of commits costs one pass, and a backlog of thousands of pending evals
    costs nothing until the next full scan."""
    handed: set[str] = set()
    loop = asyncio.get_running_loop()
    rescan_at = 0.0
    scan_s = 0.0
    with WrittenKeys[str](write_listeners, t.EVALS) as written:
        while True:
            commits = notifier()
            watch = commits.watch((t.EVALS,))
            try:
                started = loop.time()   # the simulation's virtual clock: no backoff there
                changed = written.take()
                current = state()
                pending = current.index_members(t.EVALS, t.BY_STATUS, "pending")
                if loop.time() >= rescan_at or None in changed:
                    handed.clear()
                    rescan_at = loop.time() + FEED_RESCAN
                    candidates: Iterable[str | None] = pending
                else:
                    candidates = [pk for pk in changed if pk in pending]
                fresh = [current.get(t.EVALS, pk) for pk in candidates if pk not in handed]
                now = now_ns()
                # a job's evals reach the broker in the order they were created
                for ev in sorted(fresh, key=lambda x: (x.CreateIndex, x.ID)):
                    if ev.Wait and ev.CreateTime + ev.Wait > now:
                        continue
                    broker.enqueue(ev)
                    handed.add(ev.ID)
                if len(handed) > 2 * len(pending) + 1024:   # forget the finished ones
                    handed.intersection_update(pending)
                scan_s = loop.time() - started
                await commits.wait(watch, 1.0)
            finally:
                commits.unwatch(watch)
            # A full scan walks every pending eval: with thousands pending (a burst
            # of registrations the workers have not caught up with) passes are
            # rationed, as the deployment watcher's are, instead of taking a share
            # of the leader that grows with the backlog.
            await asyncio.sleep(max(FEED_INTERVAL, FEED_BACKOFF * scan_s))


async def release_blocked(broker: EvalBroker, state: Callable[[], State],
                          notifier: Callable[[], AnyCommits]) -> None:
    """Blocked evals go back to the broker when capacity may have appeared: a node
    joined or changed, or allocations stopped or finished."""
    seen = None
    while True:
        commits = notifier()
        watch = commits.watch((t.NODES, t.ALLOCS))
        try:
            current = state()
            epoch = (current.table_index(t.NODES), _terminal_count(current))
            if seen is not None and epoch != seen:
                for ev in current.by_index(t.EVALS, t.BY_STATUS, "blocked"):
                    broker.enqueue(ev)
            seen = epoch
            await commits.wait(watch, 5.0)
        finally:
            commits.unwatch(watch)


def delivery_failed(ev: Evaluation, now_ns: int, new_id: Callable[[], str],
                    request_id: Callable[[], str]) -> e.EvalUpdate:
    """The broker's delivery limit reached: the entry that marks the eval failed and
    creates its delayed follow-up (``failed-follow-up``, due after FOLLOW_UP_WAIT_NS)."""
    failed = replace(ev, Status="failed", ModifyTime=now_ns,
                     StatusDescription="evaluation reached delivery limit (3)")
    follow = replace(ev, ID=new_id(), Status="pending", TriggeredBy="failed-follow-up",
                     PreviousEval=ev.ID, Wait=FOLLOW_UP_WAIT_NS, CreateTime=now_ns,
                     ModifyTime=now_ns, StatusDescription="", CreateIndex=0, ModifyIndex=0)
    return e.EvalUpdate(RequestID=request_id(), Evals=[failed, follow])


def _terminal_count(state: State) -> int:
    """How many allocations are terminal: grows when capacity frees up."""
    return state.index_size(t.ALLOCS, t.TERMINAL, True)


def node_update_evals(state: State, node_id: str, now_ns: int, new_id: Callable[[], str], *,
                      system_jobs: bool = False) -> list[Evaluation]:
    """One pending ``node-update`` eval per job that has non-terminal allocations on the
    node and, with ``system_jobs`` (a node that joins or comes back), per running system
    job, which must place an allocation there; ordered by (namespace, job id). Priority
    and type come from the job (or the alloc's copy of it when the job is gone); ids
    from ``new_id``, decided before the entry that carries them is submitted."""
    jobs: dict[tuple[str, str], tuple[int, str]] = {}
    if system_jobs:
        for job in state.rows(t.JOBS):
            if job.Type == "system" and not job.Stop:
                jobs[(job.Namespace or "default", job.ID)] = (job.Priority or 50, "system")
    for alloc in state.by_index(t.ALLOCS, t.BY_NODE, node_id):
        if alloc.terminal():
            continue
        key = (alloc.Namespace or "default", alloc.JobID)
        if key in jobs:
            continue
        job = state.get(t.JOBS, alloc.JobID) or alloc.Job
        priority = (job.Priority if job is not None else None) or 50
        jtype = (job.Type if job is not None else None) or "service"
        jobs[key] = (priority, jtype)
    return [Evaluation(ID=new_id(), Namespace=ns, Priority=prio, Type=jtype,
                       TriggeredBy="node-update", JobID=job_id, NodeID=node_id,
                       Status="pending", CreateTime=now_ns, ModifyTime=now_ns)
            for (ns, job_id), (prio, jtype) in sorted(jobs.items())]
