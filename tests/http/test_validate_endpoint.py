"""PUT/POST /v1/validate/job: problems are reported in a 200 body, not as HTTP errors."""
from __future__ import annotations

import pytest

from caravan.server.jobspec.validate import format_errors
from tests.http.helpers import assert_error, assert_write_headers, enc, observe, service_job, uid

METHODS = ("PUT", "POST")


@pytest.mark.parametrize("method", METHODS)
def test_valid_job(client, method):
    job_id = uid("valid")
    before = observe(client, job_id)
    r = client.request(method, "/v1/validate/job", json={"Job": service_job(job_id)})
    assert_write_headers(r)
    body = r.json()
    assert body["ValidationErrors"] == []
    assert body["Error"] == ""
    assert body["Warnings"] == ""
    assert body["DriverConfigValidated"] is True
    # validation registers nothing
    assert client.get(f"/v1/job/{enc(job_id)}").status_code == 404
    assert observe(client, job_id) == before


@pytest.mark.parametrize("method", METHODS)
def test_invalid_job_is_reported_in_the_body(client, method):
    job = {"Name": "no-id", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t",
                                                                   "Driver": ""}]}]}
    r = client.request(method, "/v1/validate/job", json={"Job": job})
    assert_write_headers(r)
    body = r.json()
    errors = body["ValidationErrors"]
    assert "Missing job ID" in errors
    assert "Task group g validation failed: Task t validation failed: Missing task driver" \
        in errors
    assert body["Error"] == format_errors(errors)
    assert body["Error"].startswith(f"{len(errors)} errors occurred:\n\t* Missing job ID")


def test_single_error_and_priority(client):
    r = client.put("/v1/validate/job", json={"Job": service_job(uid("v"), Priority=101)})
    assert_write_headers(r)
    assert r.json()["ValidationErrors"] == ["job priority must be between [1, 100]"]
    assert r.json()["Error"] == "1 error occurred:\n\t* job priority must be between [1, 100]\n\n"


def test_warnings_do_not_fail(client):
    job = service_job(uid("warn"))
    job["TaskGroups"][0].update(Count=2, Update={"MaxParallel": 5})
    r = client.put("/v1/validate/job", json={"Job": job})
    assert_write_headers(r)
    body = r.json()
    assert body["ValidationErrors"] == [] and body["Error"] == ""
    assert "max parallel" in body["Warnings"].lower()


@pytest.mark.parametrize("method", METHODS)
@pytest.mark.parametrize("body", [{}, {"Job": None}, {"job": {"ID": "lowercase-key"}}], ids=repr)
def test_no_job_is_a_400(client, method, body):
    assert_error(client.request(method, "/v1/validate/job", json=body), 400,
                 "Job must be specified")


def test_bad_bodies(client):
    assert_error(client.put("/v1/validate/job", content=b""), 400, "Request body is empty")
    assert_error(client.post("/v1/validate/job", content=b"{"), 400,
                 startswith="Failed to decode request body as JSON: ")
    assert_error(client.put("/v1/validate/job", json=[]), 400, "Job must be specified")
    r = client.put("/v1/validate/job", json={"Job": {"ID": "x", "Priority": "high"}})
    assert_error(r, 400, startswith="Job: ")
    assert "`Priority`" in r.text


@pytest.mark.parametrize("method", ["GET", "DELETE", "PATCH"])
def test_wrong_method(client, method):
    assert_error(client.request(method, "/v1/validate/job"), 405, "Invalid method")
