"""Job summaries inside a write transaction.

Job summaries are derived, not counted: whenever a job's allocations or evals change,
its per-group counts are recomputed, inside the same transaction, from the store's
running counts of its allocations (``job_counts`` in ``fsm.schema``: each row's share
is moved from its old to its new bucket on every write, so they always equal a
recount, which the simulation checks after every entry), and Queued from its newest
eval that reports queued allocations. Nomad's incremental counters drift and even go
negative (reference §10.3), because each code path adjusts them by hand.
"""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import schema as t
from caravan.fsm.store import Txn, View
from caravan.fsm.structs import Allocation, Evaluation, JobSummary, TaskGroupSummary

_BUCKETS = t.SUMMARY_BUCKETS


def summarize(txn: Txn, job_id: str, summary: JobSummary) -> dict[str, TaskGroupSummary]:
    """Per-group counts recomputed from the job's allocations of this incarnation,
    Queued from the newest eval that reported queued allocations."""
    counts: dict[str, dict[str, int]] = {g: {} for g in summary.Summary}
    # the store's running counts per (incarnation, group): allocations of an earlier
    # job that had the same ID count nowhere (``summary_bucket``)
    for (create_index, name), sums in (txn.total(t.ALLOCS, "job_counts", job_id) or {}).items():
        if create_index is not None and create_index != summary.CreateIndex:
            continue
        for bucket, n in zip(_BUCKETS.values(), sums[2:]):
            if n:
                group = counts.setdefault(name, {})
                group[bucket] = group.get(bucket, 0) + n
    collected = txn.get(t.COLLECTED_ALLOCS, job_id)
    if collected is not None and collected.JobCreateIndex == summary.CreateIndex:
        # allocations the garbage collector deleted still count (fsm.gc)
        for g, base in collected.Summary.items():
            group = counts.setdefault(g, {})
            for bucket in _BUCKETS.values():
                if getattr(base, bucket):
                    group[bucket] = group.get(bucket, 0) + getattr(base, bucket)
    queued_eval = queued_eval_of(txn, job_id)
    queued = (queued_eval.QueuedAllocations or {}) if queued_eval is not None else {}
    return {g: TaskGroupSummary(Queued=max(0, queued.get(g, 0)), **c)
            for g, c in sorted(counts.items())}


def queued_eval_of(txn: View, job_id: str) -> Evaluation | None:
    """The job's newest eval that reported queued allocations: its Queued figures."""
    return max((e for e in txn.by_index(t.EVALS, t.BY_JOB, job_id)
                if e.QueuedAllocations is not None),
               key=lambda e: (e.ModifyIndex, e.ID), default=None)


def summary_bucket(alloc: Allocation, summary: JobSummary) -> str | None:
    """The summary counter ``alloc`` adds to (``Running``...), or None when it counts
    nowhere: a status without a bucket, or an earlier job that had the same ID."""
    if alloc.Job is not None and alloc.Job.CreateIndex != summary.CreateIndex:
        return None
    return _BUCKETS.get(alloc.ClientStatus)


def refresh_summary(txn: Txn, job_id: str) -> None:
    summary = txn.get(t.JOB_SUMMARIES, job_id)
    if summary is None:
        return
    groups = summarize(txn, job_id, summary)
    if groups != summary.Summary:
        txn.put(t.JOB_SUMMARIES, replace(summary, Summary=groups, ModifyIndex=txn.index))
