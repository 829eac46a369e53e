"""Job rules inside a write transaction: versions, status, summaries, children.

Everything here is a pure function of the transaction's state and the values passed
in (which came from the log entry), so every replica computes the same rows. The
rules follow Nomad's state store (``nomad/state/state_store.go``: ``upsertJobImpl``,
``setJobStatus``, the job summary bookkeeping) with two
deliberate improvements: versions sort numerically, and a job and its eval are
written by one entry.
"""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import scaling
from caravan.fsm import schema as t
from caravan.fsm.store import Txn
from caravan.fsm.structs import Evaluation, Job, JobChildrenSummary, JobSummary, PeriodicLaunch, TaskGroupSummary

EVAL_TERMINAL = ("complete", "failed", "canceled", "cancelled")

# Fields that are not part of a job's specification: a resubmission that differs only
# in these is the same spec and creates no version.
_NON_SPEC = dict(Status="", StatusDescription="", Stable=False, Version=0, CreateIndex=0,
                 ModifyIndex=0, JobModifyIndex=0, SubmitTime=0)


class Rejected(Exception):
    """A request that the state at apply time refuses. ``code`` is the HTTP status the
    submitting server answers with; nothing was changed."""

    def __init__(self, code: int, message: str):
        super().__init__(message)
        self.code = code
        self.message = message


def spec_changed(old: Job, new: Job) -> bool:
    return replace(old, **_NON_SPEC) != replace(new, **_NON_SPEC)


# --- status --------------------------------------------------------------------------


def job_status(txn: Txn, job: Job) -> str:
    """Nomad's ``getJobStatus``: the first rule that matches wins."""
    # (allocations, live ones, ...) per incarnation and group, kept by the store
    counts = (txn.total(t.ALLOCS, "job_counts", job.ID) or {}).values()
    if any(c[1] for c in counts):
        return "running"
    evals = txn.by_index(t.EVALS, t.BY_JOB, job.ID)
    if any(e.Status not in EVAL_TERMINAL for e in evals):
        return "pending"
    if job.Type == "system":
        return "dead" if job.Stop else "running"
    if evals or any(c[0] for c in counts):
        return "dead"
    if job.is_periodic() or job.ParameterizedJob is not None and not job.Dispatched:
        return "dead" if job.Stop else "running"
    return "pending"


def refresh_status(txn: Txn, job_id: str) -> None:
    """Recompute a job's status after its evals or allocs changed; write the row (and
    move the parent's child counters) only if it changed."""
    job = txn.get(t.JOBS, job_id)
    if job is None:
        return
    status = job_status(txn, job)
    if status == job.Status:
        return
    _write_job_row(txn, replace(job, Status=status, ModifyIndex=txn.index))
    if job.ParentID:
        _move_child(txn, job.ParentID, job.Status, status)


# --- upsert ---------------------------------------------------------------------------


def upsert_job(txn: Txn, job: Job, *, tracked_versions: int) -> Job:
    """Insert a new job or a new version of an existing one (the caller decided that
    the spec changed). Returns the stored row."""
    index = txn.index
    job_id = job.ID
    assert job_id is not None, "a job is validated (it has an ID) before it is written"
    existing = txn.get(t.JOBS, job_id)
    if existing is None:
        job = replace(job, CreateIndex=index, ModifyIndex=index, JobModifyIndex=index,
                      Version=0, Stable=False)
    else:
        job = replace(job, CreateIndex=existing.CreateIndex, ModifyIndex=index,
                      JobModifyIndex=index, Version=existing.Version + 1, Stable=False)
    job = replace(job, Status=job_status(txn, job))
    _write_job_row(txn, job)
    txn.put(t.JOB_VERSIONS, job)
    _prune_versions(txn, job_id, tracked_versions)
    _ensure_summary(txn, job)
    scaling.sync_policies(txn, job)
    if job.ParentID:
        _move_child(txn, job.ParentID, existing.Status if existing else None, job.Status)
    return job


def set_stability(txn: Txn, job_id: str, version: int, stable: bool) -> Job | None:
    row = txn.get(t.JOB_VERSIONS, (job_id, version))
    if row is None:
        raise Rejected(404, f'job "{job_id}" in namespace "default" at version {version} not found')
    txn.put(t.JOB_VERSIONS, replace(row, Stable=stable))
    current: Job | None = txn.get(t.JOBS, job_id)
    # Only the current version's flag lives on the job row too; flipping an older
    # version must not make the old spec current (a Nomad bug, see the reference §2.1).
    if current is not None and current.Version == version:
        current = replace(current, Stable=stable, ModifyIndex=txn.index)
        _write_job_row(txn, current)
    return current


def purge_job(txn: Txn, job: Job) -> None:
    assert job.ID is not None, "a stored job has its ID"
    # A blocked eval must not outlive its job: a new job with the same ID would
    # inherit it and never get its own.
    for ev in txn.by_index(t.EVALS, t.BY_JOB, job.ID):
        if ev.Status == "blocked":
            txn.put(t.EVALS, replace(ev, Status="canceled", ModifyIndex=txn.index,
                                     StatusDescription="job purged"))
    txn.delete(t.JOBS, job.ID)
    for v in txn.by_index(t.JOB_VERSIONS, t.BY_JOB, job.ID):
        txn.delete(t.JOB_VERSIONS, (v.ID, v.Version))
    txn.delete(t.JOB_SUMMARIES, job.ID)
    txn.delete(t.COLLECTED_ALLOCS, job.ID)
    txn.delete(t.PERIODIC_LAUNCHES, job.ID)
    scaling.purge(txn, job.ID)
    if job.ParentID:
        # a purged child counts as dead from now on (no-op if it already was)
        _move_child(txn, job.ParentID, job.Status, "dead")


def insert_eval(txn: Txn, ev: Evaluation) -> Evaluation:
    ev = replace(ev, CreateIndex=txn.index, ModifyIndex=txn.index)
    txn.put(t.EVALS, ev)
    return ev


def record_launch(txn: Txn, parent_id: str, launch_ns: int) -> None:
    """Remember the parent's latest launch; it never moves backwards (a forced launch
    stamped by a server whose clock lags must not reopen slots already launched)."""
    old = txn.get(t.PERIODIC_LAUNCHES, parent_id)
    if old is not None and old.Launch >= launch_ns:
        return
    txn.put(t.PERIODIC_LAUNCHES, PeriodicLaunch(
        ID=parent_id, Launch=launch_ns, ModifyIndex=txn.index,
        CreateIndex=old.CreateIndex if old else txn.index))


def unfinished_children(txn: Txn, parent_id: str) -> list[Job]:
    """The parent's children that still have work pending or running, by ID."""
    return sorted((c for c in txn.by_index(t.JOBS, t.BY_PARENT, parent_id)
                   if c.Status in ("pending", "running")), key=lambda c: c.ID)


def _write_job_row(txn: Txn, job: Job) -> None:
    txn.put(t.JOBS, job)
    # keep the version row of the current version in step (status, stability)
    if txn.get(t.JOB_VERSIONS, (job.ID, job.Version)) is not None:
        txn.put(t.JOB_VERSIONS, job)


def _prune_versions(txn: Txn, job_id: str, keep: int) -> None:
    """Keep the newest ``keep`` versions, never dropping the newest stable one."""
    versions = sorted(txn.by_index(t.JOB_VERSIONS, t.BY_JOB, job_id),
                      key=lambda j: j.Version, reverse=True)
    if len(versions) <= keep:
        return
    kept, rest = versions[:keep], versions[keep:]
    if not any(v.Stable for v in kept):
        stable = next((v for v in rest if v.Stable), None)
        if stable is not None:
            rest = [kept[-1]] + [v for v in rest if v is not stable]
    for v in rest:
        txn.delete(t.JOB_VERSIONS, (v.ID, v.Version))


def _ensure_summary(txn: Txn, job: Job) -> None:
    """A job upsert adds missing task groups to the summary; it never removes one."""
    assert job.ID is not None, "a stored job has its ID"
    summary = txn.get(t.JOB_SUMMARIES, job.ID)
    groups = [tg.Name or "" for tg in job.TaskGroups or ()]
    if summary is None:
        txn.put(t.JOB_SUMMARIES, JobSummary(
            JobID=job.ID, Summary={g: TaskGroupSummary() for g in groups},
            Children=JobChildrenSummary(), CreateIndex=txn.index, ModifyIndex=txn.index))
        return
    missing = [g for g in groups if g not in summary.Summary]
    if missing:
        merged = dict(summary.Summary)
        for g in missing:
            merged[g] = TaskGroupSummary()
        txn.put(t.JOB_SUMMARIES, replace(summary, Summary=merged, ModifyIndex=txn.index))


_BUCKET = {"pending": "Pending", "running": "Running", "dead": "Dead"}


def _move_child(txn: Txn, parent_id: str, old: str | None, new: str | None) -> None:
    """Move one child between the parent's Pending/Running/Dead counters."""
    if old == new:
        return
    summary = txn.get(t.JOB_SUMMARIES, parent_id)
    if summary is None:
        return
    counts = {k: getattr(summary.Children, k) for k in ("Pending", "Running", "Dead")}
    if old in _BUCKET:
        counts[_BUCKET[old]] = max(0, counts[_BUCKET[old]] - 1)
    if new in _BUCKET:
        counts[_BUCKET[new]] += 1
    txn.put(t.JOB_SUMMARIES, replace(summary, Children=JobChildrenSummary(**counts),
                                     ModifyIndex=txn.index))


# --- parameterized and periodic children ------------------------------------------------


def dispatch_rejection(parent: Job | None, parent_id: str, meta: dict[str, str] | None,
                       payload: bytes | None) -> Rejected | None:
    """Why a dispatch of ``parent`` must be refused, in Nomad's words; ``None`` if it
    may go ahead. Used by the gateway (to answer early) and by apply (authoritative)."""
    if parent is None:
        return Rejected(404, "parameterized job not found")
    if not parent.is_parameterized():
        return Rejected(400, f'Specified job "{parent_id}" is not a parameterized job')
    if parent.Stop:
        return Rejected(400, f'Specified job "{parent_id}" is stopped')
    cfg = parent.ParameterizedJob
    assert cfg is not None   # is_parameterized()
    if cfg.Payload == "required" and not payload:
        return Rejected(400, "Payload is not provided but required by parameterized job")
    if cfg.Payload == "forbidden" and payload:
        return Rejected(400, "Payload provided but forbidden by parameterized job")
    meta = meta or {}
    allowed = set(cfg.MetaRequired or ()) | set(cfg.MetaOptional or ())
    extra = sorted(k for k in meta if k not in allowed)
    if extra:
        return Rejected(400, f"Dispatch request included unpermitted metadata keys: {_golist(extra)}")
    missing = sorted(k for k in cfg.MetaRequired or () if k not in meta)
    if missing:
        return Rejected(400, f"Dispatch did not provide required meta keys: {_golist(missing)}")
    return None


def _golist(items: list[str]) -> str:
    return "[" + " ".join(items) + "]"


def dispatch_child(parent: Job, child_id: str, meta: dict[str, str] | None,
                   payload: bytes | None, token: str, submit_time: int) -> Job:
    merged = dict(parent.Meta or {})
    merged.update(meta or {})
    return replace(parent, ID=child_id, Name=child_id, ParentID=parent.ID, Dispatched=True,
                   DispatchIdempotencyToken=token, Payload=payload or None,
                   Meta=merged or None, SubmitTime=submit_time, Status="",
                   StatusDescription="", Stable=False, Version=0, CreateIndex=0,
                   ModifyIndex=0, JobModifyIndex=0)


def periodic_child(parent: Job, launch_ns: int) -> Job:
    child_id = f"{parent.ID}/periodic-{launch_ns // 1_000_000_000}"
    return replace(parent, ID=child_id, Name=child_id, ParentID=parent.ID, Periodic=None,
                   SubmitTime=launch_ns, Status="", StatusDescription="", Stable=False,
                   Version=0, CreateIndex=0, ModifyIndex=0, JobModifyIndex=0)
