"""Evaluations inside a write transaction: inserting or updating them, and the blocked
evals a new one supersedes. Each change recomputes the summaries and statuses of the
jobs it touched."""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import jobs
from caravan.fsm import schema as t
from caravan.fsm.store import Txn
from caravan.fsm.structs import Evaluation
from caravan.fsm.summaries import refresh_summary


def upsert_evals(txn: Txn, evals: list[Evaluation]) -> None:
    touched_jobs = set()
    for ev in evals:
        old = txn.get(t.EVALS, ev.ID)
        ev = replace(ev, CreateIndex=old.CreateIndex if old else txn.index, ModifyIndex=txn.index)
        txn.put(t.EVALS, ev)
        touched_jobs.add(ev.JobID)
        if ev.Status == "complete" and not ev.FailedTGAllocs:
            _cancel_blocked(txn, ev, f'evaluation "{ev.ID}" successful')
        elif ev.Status == "blocked" and old is None:
            # one blocked eval per job waits for capacity: a new one supersedes the old
            _cancel_blocked(txn, ev, f'superseded by blocked evaluation "{ev.ID}"')
    for job_id in sorted(touched_jobs):
        refresh_summary(txn, job_id)
        jobs.refresh_status(txn, job_id)


def _cancel_blocked(txn: Txn, by: Evaluation, description: str) -> None:
    """Cancel the job's other blocked evals (Nomad spells it "canceled")."""
    for ev in txn.by_index(t.EVALS, t.BY_JOB, by.JobID):
        if ev.Status == "blocked" and ev.ID != by.ID:
            txn.put(t.EVALS, replace(ev, Status="canceled", ModifyIndex=txn.index,
                                     StatusDescription=description))
