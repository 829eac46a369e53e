"""Shared helpers for the HTTP tests against a real ``caravan agent -dev``."""
from __future__ import annotations

import re
import uuid
from urllib.parse import quote

import httpx

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
SECOND = 1_000_000_000


def uid(prefix: str = "job") -> str:
    """A job ID unique across the session (the agent is shared)."""
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


def enc(job_id: str) -> str:
    """The fully percent-encoded path segment (what the Go api and nomadpy send)."""
    return quote(job_id, safe="")


def raw(job_id: str) -> str:
    """The path with '/' left as is (what python-nomad sends)."""
    return quote(job_id, safe="/")


def task(name: str = "web", **over) -> dict:
    t = {"Name": name, "Driver": "docker", "Config": {"image": "redis:7"}}
    t.update(over)
    return t


def service_job(job_id: str, **over) -> dict:
    job = {"ID": job_id, "Name": job_id, "Type": "service",
           "TaskGroups": [{"Name": "cache", "Count": 1, "Tasks": [task("redis")]}]}
    job.update(over)
    return job


def batch_job(job_id: str, **over) -> dict:
    job = service_job(job_id, Type="batch")
    job.update(over)
    return job


def periodic_job(job_id: str, **over) -> dict:
    # yearly: no launch of its own can happen during a test run
    periodic = {"Spec": "0 0 1 1 *", "SpecType": "cron", "ProhibitOverlap": False}
    periodic.update(over.pop("Periodic", {}))
    return batch_job(job_id, Periodic=periodic, **over)


def parameterized_job(job_id: str, payload: str = "optional", required=("color",),
                      optional=("size",), **over) -> dict:
    return batch_job(job_id, ParameterizedJob={
        "Payload": payload, "MetaRequired": list(required) or None,
        "MetaOptional": list(optional) or None}, **over)


def register(client: httpx.Client, job: dict, method: str = "PUT", **opts) -> dict:
    r = client.request(method, "/v1/jobs", json={"Job": job, **opts})
    assert r.status_code == 200, r.text
    return r.json()


def index_of(r: httpx.Response) -> int:
    value = r.headers["X-Nomad-Index"]
    assert value.isdigit(), value
    return int(value)


def assert_write_headers(r: httpx.Response) -> int:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    index = index_of(r)
    assert index > 0
    return index


def assert_read_headers(r: httpx.Response) -> int:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/json")
    assert r.headers["X-Nomad-KnownLeader"] == "true"
    assert r.headers["X-Nomad-LastContact"].isdigit()
    index = index_of(r)
    assert index > 0
    return index


def assert_error(r: httpx.Response, status: int, message: str | None = None, *,
                 startswith: str | None = None, contains: str | None = None) -> None:
    """A plain-text error body holding the message alone."""
    assert r.status_code == status, (r.status_code, r.text)
    assert r.headers["content-type"].startswith("text/plain"), r.headers
    assert "Traceback" not in r.text
    if message is not None:
        assert r.text == message
    if startswith is not None:
        assert r.text.startswith(startswith), r.text
    if contains is not None:
        assert contains in r.text, r.text


def observe(client: httpx.Client, *job_ids: str) -> dict:
    """Everything a client can see about some jobs, to compare before and after a
    rejected write. The X-Nomad-Index of the list and of the evaluations/allocations/
    deployments reads is table-wide, so a change to any job, eval, alloc or deployment,
    not just the watched ones, shows up too."""
    seen = {}
    r = client.get("/v1/jobs", params={"prefix": uid("no-such-job")})
    seen["list"] = (r.status_code, r.headers.get("X-Nomad-Index"), r.text)
    for job_id in job_ids:
        for suffix in ("", "/versions", "/summary", "/evaluations", "/allocations",
                       "/deployments", "/deployment"):
            r = client.get(f"/v1/job/{enc(job_id)}{suffix}")
            seen[job_id + suffix] = (r.status_code, r.headers.get("X-Nomad-Index"), r.text)
        # the job's stub and its children (dispatched and periodic)
        r = client.get("/v1/jobs", params={"prefix": job_id})
        seen[job_id + " stubs"] = (r.status_code, r.headers.get("X-Nomad-Index"), r.text)
    return seen
