"""``null`` means "not set" in every body the Jobs and Deployments APIs read, and the
query parameters Nomad's Go client always sends with zero values are accepted (the
Go client's own bodies are in tests/test_go_client_fixtures.py)."""
from __future__ import annotations

import pytest

from tests.http.helpers import assert_write_headers, enc, parameterized_job, register, service_job, settle, task, uid

# fields a job read back holds that differ between two registrations of one spec
VOLATILE = ("ID", "Name", "SubmitTime", "CreateIndex", "ModifyIndex", "JobModifyIndex")


def _nulls_everywhere(job: dict) -> dict:
    job = {**job, "Region": None, "Namespace": None, "Priority": None, "AllAtOnce": None,
           "Datacenters": None, "Constraints": None, "Update": None, "Periodic": None,
           "ParameterizedJob": None, "Meta": None, "Stop": None, "ConsulToken": None,
           "Version": None, "Status": None, "SubmitTime": None, "JobModifyIndex": None}
    job["TaskGroups"] = [{**tg, "Count": None, "RestartPolicy": None, "EphemeralDisk": None,
                          "Update": None, "Networks": None, "Services": None,
                          "ShutdownDelay": None, "Meta": None,
                          "Tasks": [{**t, "User": None, "Env": None, "Resources": None,
                                     "KillTimeout": None, "KillSignal": None,
                                     "LogConfig": None, "Templates": None, "Leader": None,
                                     "ShutdownDelay": None, "DispatchPayload": None}
                                    for t in tg["Tasks"]]}
                         for tg in job["TaskGroups"]]
    return job


def _spec(client, job_id: str) -> dict:
    job = client.get(f"/v1/job/{enc(job_id)}").json()
    return {k: v for k, v in job.items() if k not in VOLATILE}


def test_a_job_full_of_nulls_is_the_job_without_them(client):
    plain, nulled = uid("plain"), uid("nulled")
    register(client, service_job(plain))
    reply = register(client, _nulls_everywhere(service_job(nulled)), EnforceIndex=None,
                     JobModifyIndex=None, PreserveCounts=None, EvalPriority=None,
                     Region=None, Namespace=None, SecretID=None)
    assert reply["EvalID"]
    assert _spec(client, nulled) == _spec(client, plain)
    settle(client, nulled)


def test_plan_validate_and_parse_read_null_options_as_absent(client):
    job_id = uid("plan-null")
    job = _nulls_everywhere(service_job(job_id))
    r = client.put(f"/v1/job/{enc(job_id)}/plan", json={"Job": job, "Diff": None,
                                                        "PolicyOverride": None})
    assert r.status_code == 200, r.text
    assert r.json()["Diff"] is None   # no diff asked for
    r = client.put("/v1/validate/job", json={"Job": job})
    assert r.status_code == 200 and r.json()["ValidationErrors"] == []
    hcl = 'job "p" {\n  group "g" {\n    task "t" {\n      driver = "mock"\n    }\n  }\n}\n'
    r = client.put("/v1/jobs/parse", json={"JobHCL": hcl, "Canonicalize": None,
                                           "Variables": None})
    assert r.status_code == 200, r.text
    assert r.json()["ID"] == "p" and r.json()["Namespace"] is None   # not canonicalized


def test_stable_evaluate_revert_read_nulls_as_absent(client):
    job_id = uid("srev-null")
    register(client, service_job(job_id, Meta={"v": "0"}))
    register(client, service_job(job_id, Meta={"v": "1"}))
    url = f"/v1/job/{enc(job_id)}"
    r = client.put(url + "/stable", json={"JobID": job_id, "JobVersion": 1, "Stable": True})
    assert_write_headers(r)
    # Stable null is false: the version is marked unstable again
    r = client.put(url + "/stable", json={"JobID": job_id, "JobVersion": 1, "Stable": None,
                                          "Region": None, "Namespace": None})
    assert_write_headers(r)
    assert client.get(url).json()["Stable"] is False
    r = client.put(url + "/evaluate", json={"JobID": None, "EvalOptions": None})
    assert_write_headers(r)
    r = client.put(url + "/revert", json={"JobID": job_id, "JobVersion": 0,
                                          "EnforcePriorVersion": None, "ConsulToken": None})
    assert_write_headers(r)
    job = client.get(url).json()
    assert job["Version"] == 2 and job["Meta"] == {"v": "0"}
    settle(client, job_id)


def test_dispatch_reads_null_meta_values_as_empty(client):
    parent = uid("dnull")
    register(client, parameterized_job(parent, payload="optional", required=("color",),
                                       optional=()))
    r = client.put(f"/v1/job/{enc(parent)}/dispatch",
                   json={"JobID": parent, "Meta": {"color": None}, "Payload": None,
                         "IdPrefixTemplate": None})
    assert_write_headers(r)
    child = client.get(f"/v1/job/{enc(r.json()['DispatchedJobID'])}").json()
    assert child["Meta"] == {"color": ""} and child["Payload"] is None


@pytest.mark.parametrize("priority", ["0", "-1"])
def test_deregister_with_the_go_clients_zero_query_values(client, priority):
    job_id = uid("dereg-go")
    register(client, service_job(job_id, Priority=42))
    r = client.delete(f"/v1/job/{enc(job_id)}",
                      params={"purge": "false", "global": "false", "eval_priority": priority})
    assert_write_headers(r)
    ev = client.get(f"/v1/evaluation/{r.json()['EvalID']}").json()
    assert ev["Priority"] == 42   # eval_priority <= 0: not set, the job's priority
    assert client.get(f"/v1/job/{enc(job_id)}").json()["Stop"] is True
    settle(client, job_id)


def test_deployment_writes_read_nulls_as_absent(client):
    job_id = uid("dep-null")
    register(client, service_job(job_id, TaskGroups=[
        {"Name": "g", "Count": 1, "Tasks": [task("t")],
         "Update": {"MaxParallel": 1, "Canary": 0}}]))
    settle(client, job_id)
    deployment = client.get(f"/v1/job/{enc(job_id)}/deployment").json()
    assert deployment is not None and deployment["Status"] == "running"
    url = f"/v1/deployment/%s/{deployment['ID']}"
    # Pause null is false: resume, which a running deployment accepts
    r = client.put(url % "pause", json={"DeploymentID": deployment["ID"], "Pause": None})
    assert_write_headers(r)
    # a null ID in the list is Go's "", which names no allocation
    r = client.put(url % "allocation-health",
                   json={"DeploymentID": deployment["ID"], "HealthyAllocationIDs": [None],
                         "UnhealthyAllocationIDs": None})
    assert (r.status_code, r.text) == (404, 'unknown alloc ""')
    settle(client, job_id)
