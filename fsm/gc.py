"""Garbage collection inside a write transaction: which objects may be deleted, and
deleting them (Nomad's core scheduler, ``nomad/core_sched.go``, and ``DeleteJob`` /
``DeleteEval`` of its state store).

The leader's collector (``scheduler/core_gc.py``) chooses by age and the same rules,
and one ``CoreGC`` entry carries its choice, each object with the ModifyIndex it had.
Here every object is checked again at apply time: it must be unchanged and still
eligible, so a choice made on an older snapshot never deletes anything live. The
eligibility functions take either a ``State`` or a ``Txn`` (``get``/``by_index``).

- An **allocation** may go once it is terminal on the servers and on its client
  (complete, failed or lost), unless a running or paused deployment still counts it.
- An **evaluation** may go, with all its allocations, once it is terminal and they all
  may go; not while a batch job of it lives on (its finished allocations keep their
  names, or the scheduler would run them again: only once the job is gone, or stopped
  and dead), and not the eval that carries its live job's Queued figures.
- A **job** may go, with its versions, summary, evals, allocations and deployments,
  when Nomad's ``jobIsGCable`` holds (a periodic or parameterized parent once stopped;
  any other job once dead and stopped, or dead and batch) and all its evals are
  terminal and all its allocations may go. A child leaves its parent's counters as a
  purged one does (Nomad's ``DeleteJob``: a dead child stays counted as dead).
- A **deployment** may go once terminal, with no live allocation in it.
- A **node** may go once down with no allocation left on it (stricter than Nomad,
  which leaves terminal allocations pointing at a deleted node).

Summaries are recounted from allocations (``fsm.summaries``), so the buckets of deleted
allocations of a live job are kept in ``collected_allocs`` and still counted: a summary
never changes because of a collection.

Deployments carry no time, so their age comes from a replicated time table (Nomad's
TimeTable): each ``CoreGC`` entry carries the collector's clock and the index it had
applied when it read it, recorded in ``gc_witness``.
"""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import jobs, summaries
from caravan.fsm import reschedule as rs
from caravan.fsm import schema as t
from caravan.fsm.entries import CoreGC
from caravan.fsm.store import Txn, View
from caravan.fsm.structs import (
    Allocation,
    CollectedAllocs,
    Deployment,
    Evaluation,
    GCWitness,
    Job,
    Node,
    TaskGroupSummary,
)

CLIENT_TERMINAL = ("complete", "failed", "lost")
WITNESS_SAMPLES = 256


# --- eligibility (leader and FSM) ---------------------------------------------------------


def alloc_collectable(view: View, alloc: Allocation) -> bool:
    if not alloc.terminal() or alloc.ClientStatus not in CLIENT_TERMINAL:
        return False
    if awaits_reschedule(view, alloc):
        return False
    if alloc.DeploymentID:
        # an active deployment recounts its allocations, terminal ones included
        d = view.get(t.DEPLOYMENTS, alloc.DeploymentID)
        if d is not None and d.active():
            return False
    return True


def awaits_reschedule(view: View, alloc: Allocation) -> bool:
    """A failed allocation that its live job may still reschedule (not replaced yet,
    its policy not exhausted) stays: its replacement carries its tracker on (Nomad's
    ``allocGCEligible``)."""
    if alloc.ClientStatus != "failed" or alloc.DesiredStatus != "run" or alloc.NextAllocation:
        return False
    job = view.get(t.JOBS, alloc.JobID)
    if job is None or job.Stop or job.Status == "dead":
        return False
    tg = next((g for g in job.TaskGroups or () if g.Name == alloc.TaskGroup), None)
    policy = tg.ReschedulePolicy if tg is not None else None
    return rs.eligible(alloc, policy, rs.last_event_time(alloc))


def batch_held(job: Job | None, eval_type: str = "") -> bool:
    """A batch job whose finished allocations must stay (Nomad's ``gcEval``): until it
    is gone, or stopped and dead."""
    return job is not None and "batch" in (job.Type, eval_type) and \
        not (job.Status == "dead" and job.Stop)


def eval_collectable(view: View, ev: Evaluation, carriers: dict[str, str | None] | None = None) -> bool:
    """``carriers`` (job ID -> its Queued eval's ID) memoizes across calls."""
    if ev.Status not in jobs.EVAL_TERMINAL:
        return False
    job = view.get(t.JOBS, ev.JobID)
    if batch_held(job, ev.Type):
        return False
    if job is not None and queued_carrier(view, job.ID, carriers) == ev.ID:
        return False
    return all(alloc_collectable(view, a) for a in view.by_index(t.ALLOCS, t.BY_EVAL, ev.ID))


def queued_carrier(view: View, job_id: str, memo: dict[str, str | None] | None = None) -> str | None:
    """The ID of the eval that carries the job's Queued figures (it stays)."""
    if memo is not None and job_id in memo:
        return memo[job_id]
    ev = summaries.queued_eval_of(view, job_id)
    if memo is not None:
        memo[job_id] = ev.ID if ev is not None else None
    return ev.ID if ev is not None else None


def alloc_alone_collectable(view: View, alloc: Allocation) -> bool:
    """An allocation collected without its eval (whose other allocations stay)."""
    return alloc_collectable(view, alloc) and not batch_held(view.get(t.JOBS, alloc.JobID))


def job_gcable(job: Job) -> bool:
    """Nomad's ``jobIsGCable``."""
    if (job.Periodic is not None and job.Periodic.Enabled) or job.is_parameterized():
        return job.Stop
    if job.Status != "dead":
        return False
    return job.Stop or job.Type == "batch"


def job_collectable(view: View, job: Job) -> bool:
    if not job_gcable(job):
        return False
    if any(ev.Status not in jobs.EVAL_TERMINAL for ev in view.by_index(t.EVALS, t.BY_JOB, job.ID)):
        return False
    return all(a.terminal() and a.ClientStatus in CLIENT_TERMINAL
               for a in view.by_index(t.ALLOCS, t.BY_JOB, job.ID))


def deployment_collectable(view: View, d: Deployment) -> bool:
    return not d.active() and all(a.terminal() for a in
                                  view.by_index(t.ALLOCS, t.BY_DEPLOYMENT, d.ID))


def node_collectable(view: View, node: Node) -> bool:
    return node.Status == "down" and not view.by_index(t.ALLOCS, t.BY_NODE, node.ID)


# --- the time table ---------------------------------------------------------------------------


def applied_by(view: View, t_ns: int) -> int:
    """The highest log index known to have been applied by unix time ``t_ns`` (0 if
    none): an object last changed at or below it is at least that old."""
    w = view.get(t.GC_WITNESS, "gc")
    if w is None:
        return 0
    best = 0
    for applied, when in zip(w.Applied, w.Times):
        if when > t_ns:
            break
        best = applied
    return best


def witness_covers(view: View, index: int) -> bool:
    """Whether a sample already says when ``index`` was applied."""
    w = view.get(t.GC_WITNESS, "gc")
    return w is not None and bool(w.Applied) and w.Applied[-1] >= index


def _record_witness(txn: Txn, applied: int, now_ns: int) -> None:
    w = txn.get(t.GC_WITNESS, "gc") or GCWitness(CreateIndex=txn.index)
    if w.Applied and (applied <= w.Applied[-1] or now_ns <= w.Times[-1]):
        return   # adds nothing to what is known (or a clock that went back)
    pairs = list(zip(w.Applied, w.Times)) + [(applied, now_ns)]
    if len(pairs) > WITNESS_SAMPLES:
        # keep the newer half whole and every other sample of the older half: the
        # table covers all of history, more coarsely the older it gets (still sound:
        # a coarser sample only makes an object look younger)
        half = len(pairs) // 2
        pairs = pairs[:half:2] + pairs[half:]
    txn.put(t.GC_WITNESS, replace(w, Applied=[a for a, _ in pairs], Times=[x for _, x in pairs],
                                  ModifyIndex=txn.index))


# --- deleting ------------------------------------------------------------------------------


def collect(txn: Txn, body: CoreGC) -> dict[str, int]:
    """Apply a ``CoreGC`` entry; answers how many of each kind were deleted."""
    done = {"Jobs": 0, "Evals": 0, "Allocs": 0, "Deployments": 0, "Nodes": 0}
    if body.Now and body.Applied:
        _record_witness(txn, body.Applied, body.Now)
    live_jobs: set[str] = set()
    carriers: dict[str, str | None] = {}   # never deleted here, so stable in this entry
    for job_id, index in sorted((body.Jobs or {}).items()):
        job = txn.get(t.JOBS, job_id)
        if job is not None and job.ModifyIndex == index and job_collectable(txn, job):
            _delete_job(txn, job, done)
    for eval_id, index in sorted((body.Evals or {}).items()):
        ev = txn.get(t.EVALS, eval_id)
        if ev is None or ev.ModifyIndex != index or not eval_collectable(txn, ev, carriers):
            continue
        for alloc in txn.by_index(t.ALLOCS, t.BY_EVAL, ev.ID):
            _delete_alloc(txn, alloc, live_jobs)
            done["Allocs"] += 1
        txn.delete(t.EVALS, ev.ID)
        live_jobs.add(ev.JobID)
        done["Evals"] += 1
    for alloc_id, index in sorted((body.Allocs or {}).items()):
        alloc = txn.get(t.ALLOCS, alloc_id)
        if alloc is not None and alloc.ModifyIndex == index and \
                alloc_alone_collectable(txn, alloc):
            _delete_alloc(txn, alloc, live_jobs)
            done["Allocs"] += 1
    for deployment_id, index in sorted((body.Deployments or {}).items()):
        d = txn.get(t.DEPLOYMENTS, deployment_id)
        if d is not None and d.ModifyIndex == index and deployment_collectable(txn, d):
            txn.delete(t.DEPLOYMENTS, d.ID)
            done["Deployments"] += 1
    for node_id, index in sorted((body.Nodes or {}).items()):
        node = txn.get(t.NODES, node_id)
        if node is not None and node.ModifyIndex == index and node_collectable(txn, node):
            txn.delete(t.NODES, node.ID)
            done["Nodes"] += 1
    for job_id in sorted(live_jobs):
        # unchanged by construction (the baseline and the Queued eval stay); recounting
        # keeps "a summary equals its recomputation" true by the same code
        summaries.refresh_summary(txn, job_id)
    return done


def _delete_job(txn: Txn, job: Job, done: dict[str, int]) -> None:
    for ev in txn.by_index(t.EVALS, t.BY_JOB, job.ID):
        txn.delete(t.EVALS, ev.ID)
        done["Evals"] += 1
    for alloc in txn.by_index(t.ALLOCS, t.BY_JOB, job.ID):
        txn.delete(t.ALLOCS, alloc.ID)
        done["Allocs"] += 1
    for d in txn.by_index(t.DEPLOYMENTS, t.BY_JOB, job.ID):
        txn.delete(t.DEPLOYMENTS, d.ID)
        done["Deployments"] += 1
    jobs.purge_job(txn, job)   # versions, summary, launches, baseline; the parent's counters
    done["Jobs"] += 1


def _delete_alloc(txn: Txn, alloc: Allocation, live_jobs: set[str]) -> None:
    """Delete ``alloc``; what it added to its job's summary moves to the baseline."""
    summary = txn.get(t.JOB_SUMMARIES, alloc.JobID)
    bucket = summaries.summary_bucket(alloc, summary) if summary is not None else None
    if bucket is not None:
        old = txn.get(t.COLLECTED_ALLOCS, alloc.JobID)
        if old is None or old.JobCreateIndex != summary.CreateIndex:
            old = CollectedAllocs(JobID=alloc.JobID, JobCreateIndex=summary.CreateIndex,
                                  CreateIndex=txn.index)
        groups = dict(old.Summary)
        group = groups.get(alloc.TaskGroup, TaskGroupSummary())
        groups[alloc.TaskGroup] = replace(group, **{bucket: getattr(group, bucket) + 1})
        txn.put(t.COLLECTED_ALLOCS, replace(old, Summary=groups, ModifyIndex=txn.index))
        live_jobs.add(alloc.JobID)
    txn.delete(t.ALLOCS, alloc.ID)
