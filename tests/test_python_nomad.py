"""The python-nomad client (the real PyPI package) against a real `caravan agent -dev`."""
from __future__ import annotations

import base64
import uuid

import nomad
import pytest
from nomad.api import exceptions


@pytest.fixture(scope="module")
def client(dev_agent):
    host, port = dev_agent.http.rsplit(":", 1)
    return nomad.Nomad(host=host, port=int(port), timeout=10)


def uid(name: str) -> str:
    return f"{name}-{uuid.uuid4().hex[:8]}"


def service_job(job_id: str, count: int = 1, **extra) -> dict:
    job = {
        "ID": job_id, "Name": job_id, "Type": "service", "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "cache", "Count": count,
            "Tasks": [{"Name": "redis", "Driver": "docker", "Config": {"image": "redis:7"},
                       "Resources": {"CPU": 200, "MemoryMB": 128}}],
        }],
    }
    job.update(extra)
    return {"Job": job}


def test_register_read_list_with_prefix(client):
    job_id = uid("pn-web")
    reply = client.jobs.register_job(service_job(job_id))
    assert len(reply["EvalID"]) == 36 and reply["EvalCreateIndex"] > 0
    job = client.job.get_job(job_id)
    assert job["ID"] == job_id and job["Namespace"] == "default"
    assert job["TaskGroups"][0]["Tasks"][0]["Resources"]["CPU"] == 200
    assert job["TaskGroups"][0]["RestartPolicy"]["Attempts"] == 2  # 1.x service default
    listed = client.jobs.get_jobs(prefix=job_id)
    assert [j["ID"] for j in listed] == [job_id]
    assert client.jobs.get_jobs(prefix="no-such-prefix-") == []
    assert job_id in client.jobs


def test_unknown_job_is_a_404(client):
    with pytest.raises(exceptions.URLNotFoundNomadException):
        client.job.get_job(uid("missing"))
    with pytest.raises(exceptions.URLNotFoundNomadException):
        client.job.get_summary(uid("missing"))


def test_versions_revert_and_stable(client):
    job_id = uid("pn-ver")
    client.job.register_job(job_id, service_job(job_id))
    client.job.register_job(job_id, service_job(job_id, count=3))
    versions = client.job.get_versions(job_id)["Versions"]
    assert [v["Version"] for v in versions] == [1, 0]

    reverted = client.job.revert_job(job_id, 0, enforce_prior_version=1)
    assert reverted["EvalID"] and reverted["JobModifyIndex"] > 0
    job = client.job.get_job(job_id)
    assert job["Version"] == 2 and job["TaskGroups"][0]["Count"] == 1

    with pytest.raises(exceptions.BaseNomadException) as err:
        client.job.revert_job(job_id, 0, enforce_prior_version=7)
    assert "enforcing version" in err.value.nomad_resp.text

    stable = client.job.stable_job(job_id, 2, True)
    assert stable["Index"] > 0
    assert client.job.get_job(job_id)["Stable"] is True


def test_dispatch_with_payload_and_meta(client):
    parent = uid("pn-batch")
    client.jobs.register_job(service_job(
        parent, Type="batch",
        ParameterizedJob={"Payload": "required", "MetaRequired": ["color"],
                          "MetaOptional": ["size"]}))
    payload = base64.b64encode(b"hello caravan").decode()
    reply = client.job.dispatch_job(parent, payload=payload, meta={"color": "blue"})
    child_id = reply["DispatchedJobID"]
    assert child_id.startswith(f"{parent}/dispatch-") and reply["EvalID"]
    child = client.job.get_job(child_id)
    assert child["ParentID"] == parent and child["Meta"]["color"] == "blue"
    assert base64.b64decode(child["Payload"]) == b"hello caravan"
    assert client.job.get_summary(parent)["Children"]["Pending"] == 1

    with pytest.raises(exceptions.BaseNomadException) as err:
        client.job.dispatch_job(parent, payload=payload, meta={"shape": "round"})
    assert "unpermitted metadata keys" in err.value.nomad_resp.text


def test_periodic_force(client):
    parent = uid("pn-cron")
    client.jobs.register_job(service_job(
        parent, Type="batch", Periodic={"Spec": "*/5 * * * *", "ProhibitOverlap": True}))
    reply = client.job.periodic_job(parent)
    assert reply["EvalID"] and reply["EvalCreateIndex"] > 0
    children = client.jobs.get_jobs(prefix=f"{parent}/periodic-")
    assert len(children) == 1 and children[0]["ParentID"] == parent
    evals = client.job.get_evaluations(children[0]["ID"])
    assert [e["ID"] for e in evals] == [reply["EvalID"]]


def test_evaluate_and_evaluations(client):
    job_id = uid("pn-eval")
    registered = client.jobs.register_job(service_job(job_id))
    reply = client.job.evaluate_job(job_id)
    evals = client.job.get_evaluations(job_id)
    assert {e["ID"] for e in evals} == {registered["EvalID"], reply["EvalID"]}
    assert evals[-1]["ID"] == registered["EvalID"]  # newest first


def test_summary_and_plan(client):
    job_id = uid("pn-sum")
    client.jobs.register_job(service_job(job_id))
    summary = client.job.get_summary(job_id)
    assert summary["JobID"] == job_id and set(summary["Summary"]) == {"cache"}
    plan = client.job.plan_job(job_id, service_job(job_id, count=4), diff=True)
    assert plan["Diff"]["Type"] == "Edited" and plan["JobModifyIndex"] > 0


def test_deregister_soft_then_purge(client):
    job_id = uid("pn-stop")
    client.jobs.register_job(service_job(job_id))
    reply = client.job.deregister_job(job_id)
    assert reply["EvalID"]
    job = client.job.get_job(job_id)
    assert job["Stop"] is True and job["Version"] == 1
    client.job.deregister_job(job_id, purge=True)
    with pytest.raises(exceptions.URLNotFoundNomadException):
        client.job.get_job(job_id)
    assert client.jobs.get_jobs(prefix=job_id) == []
    # deregistering an unknown job is not an error
    assert client.job.deregister_job(uid("never"))["EvalID"] == ""


def test_status_endpoints(client, dev_agent):
    assert client.status.leader.get_leader() == dev_agent.rpc
    assert client.status.peers.get_peers() == [dev_agent.rpc]
