"""The python-nomad client (the real PyPI package) against a real `caravan agent -dev`."""
from __future__ import annotations

import base64
import time
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


def settle(client, job_id: str, timeout: float = 10) -> list[dict]:
    """Poll the job's evaluations until the scheduler, which works in the background
    after every write that creates an eval, is done with them (none ``pending``);
    return them as then listed, newest first. On the node-less dev agent an eval that
    needs placements completes with ``FailedTGAllocs`` and, once per job, leaves a
    ``blocked`` eval behind, which is not pending."""
    deadline = time.monotonic() + timeout
    while True:
        evals = client.job.get_evaluations(job_id)
        pending = [e["ID"] for e in evals if e["Status"] == "pending"]
        if not pending:
            return evals
        assert time.monotonic() < deadline, f"evals of {job_id} still pending: {pending}"
        time.sleep(0.02)


def check_blocked(evals: list[dict], previous_eval: str) -> dict:
    """The job's one blocked eval, made by the scheduler of ``previous_eval`` (the
    latest eval that failed to place), and the blocked evals it superseded."""
    blocked = [e for e in evals if e["Status"] == "blocked"]
    assert len(blocked) == 1
    b = blocked[0]
    assert b["PreviousEval"] == previous_eval
    assert b["StatusDescription"] == "created to place remaining allocations"
    assert b["TriggeredBy"] == "queued-allocs"
    prev = next(e for e in evals if e["ID"] == previous_eval)
    assert prev["Status"] == "complete" and set(prev["FailedTGAllocs"]) == {"cache"}
    assert prev["BlockedEval"] == b["ID"]
    assert b["FailedTGAllocs"] == prev["FailedTGAllocs"]  # the failed metrics, copied
    # every older blocked eval was canceled, each superseded by the next one
    chain = sorted((e for e in evals if e["TriggeredBy"] == "queued-allocs"),
                   key=lambda e: e["CreateIndex"])
    assert chain[-1] == b
    for older, newer in zip(chain, chain[1:]):
        assert older["Status"] == "canceled"
        assert older["StatusDescription"] == f'superseded by blocked evaluation "{newer["ID"]}"'
    return b


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
    evals = settle(client, children[0]["ID"])
    # the forced eval, and the blocked eval the scheduler made of it (no nodes)
    forced = [e for e in evals if e["ID"] == reply["EvalID"]]
    assert len(evals) == 2 and len(forced) == 1 and forced[0]["TriggeredBy"] == "periodic-job"
    check_blocked(evals, reply["EvalID"])


def test_evaluate_and_evaluations(client):
    job_id = uid("pn-eval")
    registered = client.jobs.register_job(service_job(job_id))
    first_blocked = check_blocked(settle(client, job_id), registered["EvalID"])
    reply = client.job.evaluate_job(job_id)
    evals = settle(client, job_id)
    # the two evals asked for, each failing to place and making a blocked eval: the
    # evaluate's supersedes the registration's
    mine = [e["ID"] for e in evals if e["ID"] in (registered["EvalID"], reply["EvalID"])]
    assert mine == [reply["EvalID"], registered["EvalID"]]  # newest first
    blocked = check_blocked(evals, reply["EvalID"])
    assert [e["ID"] for e in evals] == [blocked["ID"], reply["EvalID"], first_blocked["ID"],
                                        registered["EvalID"]]
    forced = evals[1]
    assert forced["Status"] == "complete" and forced["BlockedEval"] == blocked["ID"]
    assert forced["TriggeredBy"] == "job-eval"
    assert evals[2]["Status"] == "canceled"
    assert evals[2]["StatusDescription"] == f'superseded by blocked evaluation "{blocked["ID"]}"'
    assert evals[3]["BlockedEval"] == first_blocked["ID"]


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
