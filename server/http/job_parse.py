"""``PUT/POST /v1/jobs/parse``: an HCL job file to the job as JSON, nothing written.

Body: ``{"JobHCL": "...", "Canonicalize": bool, "Variables": "name = value ..."}``.
Without ``Canonicalize`` unset fields stay null (Nomad's ``api.Job`` as parsed); with it
the job gets the defaults the register path gives (``server/jobspec/canonicalize.py``).
A file that does not parse is a 400 naming the line and what was expected.
"""
from __future__ import annotations

from starlette.requests import Request

from caravan.fsm.structs import Job
from caravan.server.http.common import ApiError, agent, body_value, check_method, convert, json_response, read_json
from caravan.server.jobspec.canonicalize import canonicalize, inherit_job_migrate
from caravan.server.jobspec.hcl import JobFileError, parse_job


async def parse(request: Request):
    check_method(request, ("PUT", "POST"))
    body = await read_json(request)
    if not isinstance(body, dict):
        raise ApiError(400, "Request body must be a JSON object")
    hcl = body.get("JobHCL")
    if not isinstance(hcl, str) or not hcl.strip():
        raise ApiError(400, "JobHCL: a job file is required")
    canonical = body_value(body, "Canonicalize", False)
    if not isinstance(canonical, bool):
        raise ApiError(400, f"Canonicalize: expected a bool, got {canonical!r}")
    variables = body.get("Variables")
    if variables is not None and not isinstance(variables, (str, dict)):
        raise ApiError(400, "Variables: expected var-file text (name = value lines)")
    try:
        raw = parse_job(hcl, variables)
    except JobFileError as exc:
        raise ApiError(400, f"Failed to parse job file: {exc}") from None
    job = convert(inherit_job_migrate(raw), Job, "Job")
    if canonical:
        canonicalize(job, region=agent(request).config.cluster.region)
    return json_response(job, index=0, request=request, read=False)
