"""Read endpoints of the Jobs API. Each is a blocking query over the tables it reads.

Index rules (Nomad's, with one improvement): a single-object read reports that
object's ModifyIndex, a list reports the highest index of the tables it reads, and no
index is ever below 1.
"""
from __future__ import annotations

from starlette.requests import Request

from caravan.fsm import schema as t
from caravan.fsm.store import State
from caravan.server.http.common import ApiError, blocking_read, query_bool, read_row
from caravan.server.jobspec.diff import versions_diffs


def job_stub(job, summary) -> dict:
    return {
        "ID": job.ID, "ParentID": job.ParentID, "Name": job.Name, "Namespace": job.Namespace,
        "Datacenters": job.Datacenters, "Type": job.Type, "Priority": job.Priority,
        "Periodic": job.Periodic is not None,
        "ParameterizedJob": job.is_parameterized(), "Stop": job.Stop,
        "Status": job.Status, "StatusDescription": job.StatusDescription,
        "JobSummary": summary, "CreateIndex": job.CreateIndex, "ModifyIndex": job.ModifyIndex,
        "JobModifyIndex": job.JobModifyIndex, "SubmitTime": job.SubmitTime,
    }


def alloc_stub(a) -> dict:
    return {
        "ID": a.ID, "EvalID": a.EvalID, "Name": a.Name, "Namespace": a.Namespace,
        "NodeID": a.NodeID, "NodeName": a.NodeName, "JobID": a.JobID,
        "JobType": a.Job.Type if a.Job else "", "JobVersion": a.Job.Version if a.Job else 0,
        "TaskGroup": a.TaskGroup, "DesiredStatus": a.DesiredStatus,
        "DesiredDescription": a.DesiredDescription, "ClientStatus": a.ClientStatus,
        "ClientDescription": a.ClientDescription, "TaskStates": a.TaskStates,
        "DeploymentStatus": a.DeploymentStatus, "FollowupEvalID": a.FollowupEvalID,
        "RescheduleTracker": a.RescheduleTracker,
        "CreateIndex": a.CreateIndex, "ModifyIndex": a.ModifyIndex,
        "CreateTime": a.CreateTime, "ModifyTime": a.ModifyTime,
    }


async def list_jobs(request: Request):
    prefix = request.query_params.get("prefix", "")

    def query(state: State):
        stubs = [job_stub(j, state.get(t.JOB_SUMMARIES, j.ID)) for j in state.prefix(t.JOBS, prefix)]
        return state.table_index(t.JOBS, t.JOB_SUMMARIES), stubs

    return await blocking_read(request, (t.JOBS, t.JOB_SUMMARIES), query)


async def read_job(request: Request, job_id: str):
    return await read_row(request, t.JOBS, job_id, "job not found")


async def job_versions(request: Request, job_id: str):
    diffs = query_bool(request, "diffs")

    def query(state: State):
        versions = sorted(state.by_index(t.JOB_VERSIONS, t.BY_JOB, job_id),
                          key=lambda j: j.Version, reverse=True)
        if not versions:
            return state.table_index(t.JOB_VERSIONS), None
        index = max(v.ModifyIndex for v in versions)
        return index, {"Versions": versions, "Diffs": versions_diffs(versions) if diffs else None}

    return await blocking_read(request, (t.JOB_VERSIONS,), query,
                               missing="job versions not found", meta_in_body=True)


async def job_allocations(request: Request, job_id: str):
    show_all = query_bool(request, "all")

    def query(state: State):
        allocs = state.by_index(t.ALLOCS, t.BY_JOB, job_id)
        if not show_all:
            # hide allocations of an earlier job that had the same ID
            job = state.get(t.JOBS, job_id)
            if job is not None:
                allocs = [a for a in allocs if a.Job is None or a.Job.CreateIndex == job.CreateIndex]
        return state.table_index(t.ALLOCS), [alloc_stub(a) for a in allocs]

    return await blocking_read(request, (t.ALLOCS, t.JOBS), query)


async def job_evaluations(request: Request, job_id: str):
    def query(state: State):
        evals = sorted(state.by_index(t.EVALS, t.BY_JOB, job_id),
                       key=lambda e: e.CreateIndex, reverse=True)
        return state.table_index(t.EVALS), evals

    return await blocking_read(request, (t.EVALS,), query)


def _deployments(state: State, job_id: str) -> list:
    return sorted(state.by_index(t.DEPLOYMENTS, t.BY_JOB, job_id),
                  key=lambda d: d.CreateIndex, reverse=True)


async def job_deployments(request: Request, job_id: str):
    def query(state: State):
        return state.table_index(t.DEPLOYMENTS), _deployments(state, job_id)

    return await blocking_read(request, (t.DEPLOYMENTS,), query)


async def job_latest_deployment(request: Request, job_id: str):
    def query(state: State):
        deployments = _deployments(state, job_id)
        return state.table_index(t.DEPLOYMENTS), deployments[0] if deployments else None

    return await blocking_read(request, (t.DEPLOYMENTS,), query)


async def job_summary(request: Request, job_id: str):
    return await read_row(request, t.JOB_SUMMARIES, job_id, "job not found")


def require_job(state: State, job_id: str):
    job = state.get(t.JOBS, job_id)
    if job is None:
        raise ApiError(404, "job not found")
    return job
