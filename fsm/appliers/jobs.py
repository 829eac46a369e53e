"""Appliers of job entries: register, deregister, stability, revert, dispatch,
periodic launches, evaluate and scale."""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import allocs, jobs, scaling
from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.appliers import Result
from caravan.fsm.jobs import Rejected
from caravan.fsm.store import Txn
from caravan.fsm.structs import Evaluation, Job


def job_register(txn: Txn, body: e.JobRegister, *, tracked_versions: int) -> Result:
    job = body.Job
    existing = txn.get(t.JOBS, job.ID)
    if body.EnforceIndex:
        _enforce_index(existing, body.JobModifyIndex)
    if existing is not None and body.PreserveCounts:
        counts = {tg.Name: tg.Count for tg in existing.TaskGroups or ()}
        job = replace(job, TaskGroups=[
            replace(tg, Count=counts[tg.Name]) if tg.Name in counts else tg
            for tg in job.TaskGroups or ()])
    return register(txn, job, existing, body.Eval, body.SubmitTime,
                    tracked_versions=tracked_versions)


def register(txn: Txn, job: Job, existing: Job | None, ev: Evaluation | None, submit_time: int, *,
             tracked_versions: int) -> Result:
    """Shared by register, revert, dispatch and periodic launches: write a new
    version if the spec changed, then the eval (if any) in the same transaction."""
    job = scaling.with_policy_ids(job, existing, txn.index)
    if existing is None or jobs.spec_changed(existing, job):
        stored = jobs.upsert_job(txn, replace(job, SubmitTime=submit_time or job.SubmitTime),
                                 tracked_versions=tracked_versions)
    else:
        stored = existing
    assert stored.ID is not None, "a stored job has its ID"
    result: Result = {"JobModifyIndex": stored.JobModifyIndex, "EvalID": "", "EvalCreateIndex": 0,
                      "JobCreateIndex": stored.CreateIndex}
    if ev is not None:
        ev = jobs.insert_eval(txn, replace(ev, JobModifyIndex=stored.JobModifyIndex))
        jobs.refresh_status(txn, stored.ID)
        result.update(EvalID=ev.ID, EvalCreateIndex=ev.CreateIndex)
    if stored.is_periodic_active() and (existing is None or not existing.is_periodic_active()
                                        or existing.Periodic != stored.Periodic):
        # A parent that starts, resumes or changes its schedule counts from its
        # submission (as Nomad's dispatcher re-adds it): earlier slots are never
        # caught up by a new leader.
        jobs.record_launch(txn, stored.ID, submit_time)
    return result


def job_deregister(txn: Txn, body: e.JobDeregister, *, tracked_versions: int) -> Result:
    job = txn.get(t.JOBS, body.JobID)
    if job is None:
        # Nomad 1.x: deregistering an unknown job succeeds and creates nothing.
        return {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0}
    if body.Purge:
        jobs.purge_job(txn, job)
        modify_index = txn.index
    elif not job.Stop:
        modify_index = jobs.upsert_job(
            txn, replace(job, Stop=True, SubmitTime=body.SubmitTime or job.SubmitTime),
            tracked_versions=tracked_versions).JobModifyIndex
    else:
        modify_index = job.JobModifyIndex
    result = {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": modify_index}
    # Periodic and parameterized parents are never evaluated themselves.
    if body.Eval is not None and not job.is_periodic() and not job.is_parameterized():
        ev = jobs.insert_eval(txn, replace(body.Eval, JobModifyIndex=modify_index))
        jobs.refresh_status(txn, job.ID)
        result.update(EvalID=ev.ID, EvalCreateIndex=ev.CreateIndex)
    return result


def job_stability(txn: Txn, body: e.JobStability) -> Result:
    if txn.get(t.JOBS, body.JobID) is None:
        raise Rejected(404, "job not found")
    job = jobs.set_stability(txn, body.JobID, body.JobVersion, body.Stable)
    return {"JobModifyIndex": job.JobModifyIndex if job else 0}


def job_revert(txn: Txn, body: e.JobRevert, *, tracked_versions: int) -> Result:
    current = txn.get(t.JOBS, body.JobID)
    if current is None:
        raise Rejected(404, f'job "{body.JobID}" not found')
    if body.EnforcePriorVersion is not None and body.EnforcePriorVersion != current.Version:
        raise Rejected(409, f"Current job has version {current.Version}; enforcing version "
                            f"{body.EnforcePriorVersion}")
    if body.JobVersion == current.Version:
        raise Rejected(400, "can't revert to current version")
    target = txn.get(t.JOB_VERSIONS, (body.JobID, body.JobVersion))
    if target is None:
        raise Rejected(404, f'job "{body.JobID}" at version {body.JobVersion} not found')
    ev = body.Eval if not target.is_periodic() and not target.is_parameterized() else None
    return register(txn, target, current, ev, body.SubmitTime, tracked_versions=tracked_versions)


def job_dispatch(txn: Txn, body: e.JobDispatch, *, tracked_versions: int) -> Result:
    parent = txn.get(t.JOBS, body.ParentID)
    rej = jobs.dispatch_rejection(parent, body.ParentID, body.Meta, body.Payload)
    if rej is not None:
        raise rej
    if body.IdempotencyToken:
        for child in txn.by_index(t.JOBS, t.BY_PARENT, parent.ID):
            if child.Dispatched and child.DispatchIdempotencyToken == body.IdempotencyToken:
                return {"DispatchedJobID": child.ID, "EvalID": "", "EvalCreateIndex": 0,
                        "JobCreateIndex": child.CreateIndex}
    child = jobs.dispatch_child(parent, body.DispatchedJobID, body.Meta, body.Payload,
                                body.IdempotencyToken, body.SubmitTime)
    ev = body.Eval if not child.is_periodic() else None
    result = register(txn, child, txn.get(t.JOBS, child.ID), ev, body.SubmitTime,
                      tracked_versions=tracked_versions)
    result["DispatchedJobID"] = child.ID
    return result


def periodic_force(txn: Txn, body: e.PeriodicForce, *, tracked_versions: int) -> Result:
    parent = txn.get(t.JOBS, body.ParentID)
    if parent is None:
        raise Rejected(404, "job not found")
    if not parent.is_periodic():
        raise Rejected(400, "can't force launch non-periodic job")
    if not parent.is_periodic_active():
        raise Rejected(400, f'force launch for job "{parent.ID}" failed: can\'t force run '
                            f"non-tracked job {parent.ID}")
    child = jobs.periodic_child(parent, body.LaunchTime)
    ev = replace(body.Eval, JobID=child.ID) if body.Eval is not None else None
    result = register(txn, child, txn.get(t.JOBS, child.ID), ev, body.LaunchTime,
                      tracked_versions=tracked_versions)
    jobs.record_launch(txn, parent.ID, body.LaunchTime)
    result["DispatchedJobID"] = child.ID
    return result


def periodic_launch(txn: Txn, body: e.PeriodicLaunch, *, tracked_versions: int) -> Result:
    parent = txn.get(t.JOBS, body.ParentID)
    if parent is None:
        raise Rejected(404, "job not found")
    if not parent.is_periodic_active():
        raise Rejected(400, f'job "{parent.ID}" is not tracked by the periodic dispatcher')
    last = txn.get(t.PERIODIC_LAUNCHES, parent.ID)
    if last is not None and body.LaunchTime <= last.Launch:
        # another leader (or a retry) already launched this slot or a later one
        raise Rejected(409, f"periodic launch at {body.LaunchTime} is not after the last "
                            f"launch at {last.Launch}")
    jobs.record_launch(txn, parent.ID, body.LaunchTime)
    result = {"DispatchedJobID": "", "EvalID": "", "EvalCreateIndex": 0, "Skipped": ""}
    if parent.Periodic.ProhibitOverlap:
        busy = jobs.unfinished_children(txn, parent.ID)
        if busy:
            result["Skipped"] = f'child "{busy[0].ID}" is still {busy[0].Status}'
            return result
    child = jobs.periodic_child(parent, body.LaunchTime)
    ev = replace(body.Eval, JobID=child.ID) if body.Eval is not None else None
    result.update(register(txn, child, txn.get(t.JOBS, child.ID), ev,
                           body.SubmitTime or body.LaunchTime, tracked_versions=tracked_versions))
    result["DispatchedJobID"] = child.ID
    return result


def job_evaluate(txn: Txn, body: e.JobEvaluate) -> Result:
    job = txn.get(t.JOBS, body.JobID)
    if job is None:
        raise Rejected(404, "job not found")
    if job.is_periodic():
        raise Rejected(400, "can't evaluate periodic job")
    if job.is_parameterized():
        raise Rejected(400, "can't evaluate parameterized job")
    # Nomad quirk kept for compatibility: the eval's JobModifyIndex is the job's
    # ModifyIndex.
    if body.ForceReschedule:
        allocs.force_reschedule(txn, job)
    ev = jobs.insert_eval(txn, replace(body.Eval, JobModifyIndex=job.ModifyIndex))
    jobs.refresh_status(txn, job.ID)
    return {"EvalID": ev.ID, "EvalCreateIndex": ev.CreateIndex,
            "JobModifyIndex": job.JobModifyIndex}


def job_scale(txn: Txn, body: e.JobScale, *, tracked_versions: int) -> Result:
    """Nomad's ``Job.Scale``, in one entry: the checks, a new job version with the
    group's new count and its eval, and the scaling event."""
    job = txn.get(t.JOBS, body.JobID)
    if job is None:
        raise Rejected(404, f'job "{body.JobID}" not found')
    if job.Type == "system" and body.Count is not None and body.Count > 1:
        raise Rejected(400, 'jobs of type "system" can only be scaled to 1 or 0')
    group = next((tg for tg in job.TaskGroups or () if tg.Name == body.Group), None)
    if group is None:
        raise Rejected(400, f'task group "{body.Group}" specified for scaling does not '
                            f'exist in job')
    event = replace(body.Event, PreviousCount=group.Count or 0, Count=body.Count,
                    EvalID=None)
    result = {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": job.ModifyIndex}
    if body.Count is not None:
        policy = group.Scaling
        if policy is not None:
            low, high = policy.Min or 0, policy.Max if policy.Max is not None else 0
            if body.Count < low:
                raise Rejected(400, f"group count was less than scaling policy minimum: "
                                    f"{body.Count} < {low}")
            if high < body.Count:
                raise Rejected(400, f"group count was greater than scaling policy maximum: "
                                    f"{body.Count} > {high}")
        latest = max(txn.by_index(t.DEPLOYMENTS, t.BY_JOB, job.ID),
                     key=lambda d: (d.CreateIndex, d.ID), default=None)
        if latest is not None and latest.active() and latest.JobCreateIndex == job.CreateIndex:
            raise Rejected(400, "job scaling blocked due to active deployment")
        if body.JobModifyIndex > 0 and body.JobModifyIndex != job.JobModifyIndex:
            raise Rejected(409, f"Enforcing job modify index {body.JobModifyIndex}: job "
                                f"exists with conflicting job modify index: "
                                f"{job.JobModifyIndex}")
        scaled = replace(job, SubmitTime=body.SubmitTime or job.SubmitTime, TaskGroups=[
            replace(tg, Count=body.Count) if tg.Name == body.Group else tg
            for tg in job.TaskGroups or ()])
        stored = jobs.upsert_job(txn, scaled, tracked_versions=tracked_versions)
        result["JobModifyIndex"] = stored.JobModifyIndex
        if body.Eval is not None and not job.is_periodic() and not job.is_parameterized():
            ev = jobs.insert_eval(txn, replace(body.Eval, JobModifyIndex=stored.JobModifyIndex))
            jobs.refresh_status(txn, job.ID)
            result.update(EvalID=ev.ID, EvalCreateIndex=ev.CreateIndex)
            event = replace(event, EvalID=ev.ID)
    scaling.add_event(txn, job, body.Group, event)
    return result


def _enforce_index(existing: Job | None, want: int) -> None:
    prefix = f"Enforcing job modify index {want}"
    if existing is None:
        if want != 0:
            raise Rejected(409, f"{prefix}: job does not exist")
    elif want == 0:
        raise Rejected(409, f"{prefix}: job already exists")
    elif existing.JobModifyIndex != want:
        raise Rejected(409, f"{prefix}: job exists with conflicting job modify index: "
                            f"{existing.JobModifyIndex}")
