"""``PUT/POST /v1/jobs/parse`` against a real dev agent, and the example job files
parsed by it compared with what the API returns once they are registered."""
from __future__ import annotations

import uuid
from pathlib import Path

import nomad
import pytest

from tests.procs import ROOT

EXAMPLES = sorted((ROOT / "examples").glob("*.nomad.hcl"))

# What registering adds to a job that parsing cannot know.
WRITE_FIELDS = {"Status", "StatusDescription", "Stable", "Version", "SubmitTime",
                "CreateIndex", "ModifyIndex", "JobModifyIndex"}


def parse(client, hcl: str, **body):
    return client.post("/v1/jobs/parse", json={"JobHCL": hcl, **body})


def test_without_canonicalize_unset_fields_stay_null(client):
    r = client.put("/v1/jobs/parse", json={"JobHCL": 'job "example" {}'})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["ID"] == job["Name"] == "example"
    assert job["Namespace"] is None and job["Type"] is None and job["Priority"] is None
    assert job["Datacenters"] is None and job["TaskGroups"] is None


def test_with_canonicalize_the_register_defaults_are_filled(client):
    r = parse(client, 'job "example" {\n group "g" {\n  task "t" { driver = "docker" }\n }\n}',
              Canonicalize=True)
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["Namespace"] == "default" and job["Type"] == "service"
    assert job["Priority"] == 50 and job["Datacenters"] == ["*"]
    task = job["TaskGroups"][0]["Tasks"][0]
    assert task["Resources"]["CPU"] == 100 and task["Resources"]["MemoryMB"] == 300


def test_variables_are_var_file_text(client):
    hcl = 'variable "n" { type = number }\njob "j" {\n group "g" { count = var.n }\n}\n'
    r = parse(client, hcl, Variables='n = "4"')
    assert r.status_code == 200, r.text
    assert r.json()["TaskGroups"][0]["Count"] == 4
    r = parse(client, hcl)
    assert r.status_code == 400 and 'variable "n" has no default' in r.text


@pytest.mark.parametrize("body, status, message", [
    ({"JobHCL": 'job "j" {\n  group "g" {\n    count = -2\n  }\n}'}, 400,
     'Failed to parse job file: input.hcl:3,5: Invalid value; count in job "j" > group "g": '
     'must not be negative'),
    ({"JobHCL": 'job "j" {\n  type = \n}'}, 400, "input.hcl:3,1: Invalid syntax; unexpected '}'"),
    ({"JobHCL": ""}, 400, "JobHCL: a job file is required"),
    ({"JobHCL": 'job "j" {}', "Canonicalize": "yes"}, 400, "Canonicalize: expected a bool"),
    ({"JobHCL": 'job "j" {}', "Variables": 3}, 400, "Variables: expected var-file text"),
])
def test_bad_input_is_a_400_naming_the_problem(client, body, status, message):
    r = client.post("/v1/jobs/parse", json=body)
    assert r.status_code == status
    assert r.headers["content-type"].startswith("text/plain")
    assert message in r.text


def test_only_put_and_post(client):
    assert client.get("/v1/jobs/parse").status_code == 405
    assert client.post("/v1/jobs/parse", content=b"").status_code == 400


def test_python_nomad_jobs_parse(dev_agent):
    host, port = dev_agent.http.rsplit(":", 1)
    n = nomad.Nomad(host=host, port=int(port), timeout=10)
    job = n.jobs.parse('job "example" { type = "batch" }')
    assert job["Name"] == "example" and job["Type"] == "batch" and job["Namespace"] is None
    assert n.jobs.parse('job "example" {}', canonicalize=True)["Namespace"] == "default"


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.name)
def test_each_example_parses_to_what_the_api_then_serves(client, path: Path):
    source = path.read_text()
    canonical = parse(client, source, Canonicalize=True)
    assert canonical.status_code == 200, canonical.text
    raw = parse(client, source).json()
    job_id = f"{raw['ID']}-{uuid.uuid4().hex[:8]}"
    raw["ID"] = job_id
    registered = client.put("/v1/jobs", json={"Job": raw})
    assert registered.status_code == 200, registered.text
    served = client.get(f"/v1/job/{job_id}").json()
    expected = {**canonical.json(), "ID": job_id}
    for field in WRITE_FIELDS:
        served.pop(field), expected.pop(field)
    assert served == expected
