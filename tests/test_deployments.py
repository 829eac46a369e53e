"""Deployments end to end: a real `caravan agent -dev`, simulated nodes from
`caravan nodesim` (in their own datacenter, so other nodes never get these jobs), and
the HTTP API only. Health intervals are fractions of a second."""
from __future__ import annotations

import uuid
from dataclasses import dataclass

import httpx
import nomad
import pytest

from tests.procs import dev_server, make_cluster, wait_until
from tests.test_scheduling import NodeSim

DC = "dc-deploy"
MS = 1_000_000
SECOND = 1_000_000_000


def service_job(image: str, count: int = 4, **update) -> dict:
    """A mock service job; ``register`` gives it the test's job ID."""
    strategy = {"MaxParallel": 1, "MinHealthyTime": 300 * MS, "HealthyDeadline": 20 * SECOND,
                "ProgressDeadline": 60 * SECOND, **update}
    return {"Job": {
        "ID": "web", "Name": "web", "Type": "service", "Datacenters": [DC],
        "TaskGroups": [{
            "Name": "app", "Count": count, "Update": strategy,
            "Tasks": [{"Name": "server", "Driver": "mock", "Config": {"image": image},
                       "Resources": {"CPU": 100, "MemoryMB": 64}}]}]}}


def failing(job: dict) -> dict:
    """Its tasks fail to start; no reschedule policy replaces them, so the first
    unhealthy alloc fails the deployment (Nomad's ``shouldFailEarly``)."""
    job["Job"]["TaskGroups"][0]["Tasks"][0]["Config"]["start_error"] = "image not found"
    job["Job"]["TaskGroups"][0]["ReschedulePolicy"] = {"Attempts": 0, "Unlimited": False}
    return job


@dataclass
class Api:
    """Where a test talks to, and the job it owns (tests share one agent)."""
    url: str
    rpc: str
    job: str


def start_nodes(tmp, agent) -> NodeSim:
    sim = NodeSim(tmp, "dep", agent.rpc, "-count", "2", "-datacenter", DC, "-drivers", "mock")
    wait_until(lambda: len([n for n in get(agent, "/v1/nodes")
                            if n["Datacenter"] == DC and n["Status"] == "ready"]) == 2,
               20, "2 ready nodes")
    return sim


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("deployments")
    agent = dev_server(tmp).start()
    sim = None
    try:
        agent.wait_healthy()
        sim = start_nodes(tmp, agent)
        yield agent
    finally:
        if sim is not None:
            sim.stop()
        agent.stop()


@pytest.fixture
def cluster(server):
    return Api(server.url, server.rpc, f"web-{uuid.uuid4().hex[:8]}")


def get(agent, path, **params):
    r = httpx.get(agent.url + path, params=params, timeout=10)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def post(agent, path, body=None, status=200):
    r = httpx.post(agent.url + path, json=body, timeout=10)
    assert r.status_code == status, (path, r.status_code, r.text)
    return r.json() if status == 200 else r.text


def register(agent, job: dict) -> dict:
    job["Job"]["ID"] = job["Job"]["Name"] = agent.job
    return post(agent, "/v1/jobs", job)


def live(agent) -> list[dict]:
    return [a for a in get(agent, f"/v1/job/{agent.job}/allocations") if a["DesiredStatus"] == "run"
            and a["ClientStatus"] in ("pending", "running")]


def deployment_for(agent, version: int) -> dict | None:
    return next((d for d in get(agent, f"/v1/job/{agent.job}/deployments")
                 if d["JobVersion"] == version), None)


def wait_status(agent, version: int, status: str, timeout: float = 30) -> dict:
    def check():
        d = deployment_for(agent, version)
        return d if d is not None and d["Status"] == status else None
    return wait_until(check, timeout, f"deployment of v{version} {status}")


def versions_running(agent) -> dict[int, int]:
    out: dict[int, int] = {}
    for a in live(agent):
        v = a["JobVersion"]
        out[v] = out.get(v, 0) + 1
    return out


def settle_v0(agent, count: int = 4) -> dict:
    register(agent, service_job("v0", count=count))
    d = wait_status(agent, 0, "successful")
    assert d["StatusDescription"] == "Deployment completed successfully"
    assert get(agent, f"/v1/job/{agent.job}")["Stable"] is True
    return d


def test_rolling_update_replaces_one_at_a_time_and_marks_the_version_stable(cluster):
    agent = cluster
    settle_v0(agent)
    register(agent, service_job("v1"))
    d = wait_until(lambda: deployment_for(agent, 1), 10, "a deployment for v1")
    assert d["Status"] == "running" and d["StatusDescription"] == "Deployment is running"
    assert d["TaskGroups"]["app"]["DesiredTotal"] == 4

    # watch the allocation list: never more than one new allocation that is not healthy
    seen_mixes = set()

    def rolled():
        allocs = [a for a in get(agent, f"/v1/job/{agent.job}/allocations") if a["DesiredStatus"] == "run"]
        new = [a for a in allocs if a["JobVersion"] == 1]
        unhealthy_new = [a for a in new if not (a.get("DeploymentStatus") or {}).get("Healthy")]
        assert len(unhealthy_new) <= 1, allocs
        old_live = [a for a in allocs if a["JobVersion"] == 0]
        seen_mixes.add((len(old_live), len(new)))
        dep = deployment_for(agent, 1)
        return dep if dep["Status"] == "successful" else None

    d = wait_until(rolled, 40, "the rolling update to finish", interval=0.02)
    state = d["TaskGroups"]["app"]
    assert state["HealthyAllocs"] == 4 and state["PlacedAllocs"] == 4
    assert state["UnhealthyAllocs"] == 0
    # intermediate mixes of old and new were seen: one at a time
    assert any(0 < new < 4 for _, new in seen_mixes), seen_mixes
    assert versions_running(agent) == {1: 4}
    job = get(agent, f"/v1/job/{agent.job}")
    assert job["Version"] == 1 and job["Stable"] is True
    versions = get(agent, f"/v1/job/{agent.job}/versions")["Versions"]
    assert [(v["Version"], v["Stable"]) for v in versions] == [(1, True), (0, True)]
    # each replacement took the name of the allocation it replaced
    assert sorted(a["Name"] for a in live(agent)) == [f"{agent.job}.app[{i}]" for i in range(4)]


def test_canary_deployment_waits_for_promotion_then_completes(cluster):
    agent = cluster
    settle_v0(agent, count=3)
    register(agent, service_job("v1", count=3, Canary=1))
    d = wait_until(lambda: (lambda x: x if x and x["TaskGroups"]["app"]["PlacedCanaries"] and
                            x["TaskGroups"]["app"]["HealthyAllocs"] == 1 else None)(
        deployment_for(agent, 1)), 20, "a healthy canary")
    assert d["StatusDescription"] == "Deployment is running but requires manual promotion"
    state = d["TaskGroups"]["app"]
    assert state["DesiredCanaries"] == 1 and state["Promoted"] is False
    # the canary runs beside the three old allocations, and nothing more happens
    assert versions_running(agent) == {0: 3, 1: 1}
    canary = get(agent, f"/v1/allocation/{state['PlacedCanaries'][0]}")
    assert canary["DeploymentStatus"]["Canary"] is True

    # promoting an unknown or a wrong-id request fails
    assert post(agent, f"/v1/deployment/promote/{d['ID']}", {"All": True}, 400) == \
        "DeploymentID must be specified"
    reply = post(agent, f"/v1/deployment/promote/{d['ID']}", {"DeploymentID": d["ID"], "All": True})
    assert reply["EvalID"] and reply["DeploymentModifyIndex"] >= reply["EvalCreateIndex"] > 0
    assert reply["RevertedJobVersion"] is None
    d = wait_status(agent, 1, "successful")
    assert d["TaskGroups"]["app"]["Promoted"] is True
    assert d["TaskGroups"]["app"]["HealthyAllocs"] == 3
    assert versions_running(agent) == {1: 3}
    assert get(agent, f"/v1/job/{agent.job}")["Stable"] is True
    text = post(agent, f"/v1/deployment/promote/{d['ID']}", {"DeploymentID": d["ID"], "All": True}, 400)
    assert text == "can't promote terminal deployment"


def test_auto_promote_promotes_healthy_canaries(cluster):
    agent = cluster
    settle_v0(agent, count=2)
    register(agent, service_job("v1", count=2, Canary=1, AutoPromote=True))
    d = wait_until(lambda: deployment_for(agent, 1), 10, "a deployment for v1")
    assert d["StatusDescription"] in ("Deployment is running pending automatic promotion",
                                      "Deployment is running")
    d = wait_status(agent, 1, "successful")
    assert d["TaskGroups"]["app"]["Promoted"] is True
    assert versions_running(agent) == {1: 2}


def test_failing_update_fails_the_deployment_and_auto_reverts(cluster):
    agent = cluster
    settle_v0(agent, count=2)
    register(agent, failing(service_job("v1", count=2, AutoRevert=True)))
    d = wait_status(agent, 1, "failed")
    assert d["StatusDescription"] == \
        "Failed due to unhealthy allocations - rolling back to job version 0"
    assert d["TaskGroups"]["app"]["UnhealthyAllocs"] >= 1
    # version 0 is registered again as version 2, which rolls out and becomes stable
    d2 = wait_status(agent, 2, "successful")
    assert d2["ID"] != d["ID"]
    job = get(agent, f"/v1/job/{agent.job}")
    assert job["Version"] == 2 and job["Stable"] is True
    assert job["TaskGroups"][0]["Tasks"][0]["Config"] == {"image": "v0"}
    assert versions_running(agent) == {2: 2}
    statuses = {x["JobVersion"]: x["Status"] for x in get(agent, f"/v1/job/{agent.job}/deployments")}
    assert statuses == {0: "successful", 1: "failed", 2: "successful"}
    assert get(agent, f"/v1/job/{agent.job}/deployment")["JobVersion"] == 2


def test_pause_and_resume(cluster):
    agent = cluster
    settle_v0(agent, count=3)
    register(agent, service_job("v1", count=3, MinHealthyTime=1 * SECOND))
    d = wait_until(lambda: deployment_for(agent, 1), 10, "a deployment for v1")
    path = f"/v1/deployment/pause/{d['ID']}"
    assert post(agent, path, {"DeploymentID": "other", "Pause": True}, 400) == \
        "Deployment ID does not match"
    reply = post(agent, path, {"DeploymentID": d["ID"], "Pause": True})
    assert reply["EvalID"] == "" and reply["DeploymentModifyIndex"] > 0
    paused = get(agent, f"/v1/deployment/{d['ID']}")
    assert (paused["Status"], paused["StatusDescription"]) == ("paused", "Deployment is paused")
    # while paused, at most the one replacement placed before the pause exists
    wait_until(lambda: get(agent, f"/v1/deployment/{d['ID']}")["TaskGroups"]["app"]
               ["HealthyAllocs"] == get(agent, f"/v1/deployment/{d['ID']}")["TaskGroups"]["app"]
               ["PlacedAllocs"], 10, "the placed replacement to be healthy")
    placed = get(agent, f"/v1/deployment/{d['ID']}")["TaskGroups"]["app"]["PlacedAllocs"]
    post(agent, f"/v1/job/{agent.job}/evaluate", {})   # a new eval changes nothing while paused
    wait_until(lambda: all(e["Status"] != "pending"
                           for e in get(agent, f"/v1/job/{agent.job}/evaluations")), 10, "evals done")
    assert get(agent, f"/v1/deployment/{d['ID']}")["TaskGroups"]["app"]["PlacedAllocs"] == placed
    assert placed <= 1

    reply = post(agent, path, {"DeploymentID": d["ID"], "Pause": False})
    assert reply["EvalID"]
    assert get(agent, f"/v1/deployment/{d['ID']}")["Status"] in ("running", "successful")
    wait_status(agent, 1, "successful")
    assert post(agent, path, {"DeploymentID": d["ID"], "Pause": True}, 400) == \
        "can't pause terminal deployment"
    assert post(agent, path, {"DeploymentID": d["ID"], "Pause": False}, 400) == \
        "can't resume terminal deployment"


def test_fail_endpoint_and_manual_health(cluster):
    agent = cluster
    settle_v0(agent, count=2)
    assert post(agent, "/v1/deployment/fail/00000000-0000-0000-0000-000000000000", None, 404) == \
        "deployment not found"
    # health comes only from the operator
    register(agent, service_job("v1", count=2, HealthCheck="manual"))
    d = wait_until(lambda: (lambda x: x if x and x["TaskGroups"]["app"]["PlacedAllocs"] == 1
                            else None)(deployment_for(agent, 1)), 10, "one placed allocation")
    health = f"/v1/deployment/allocation-health/{d['ID']}"
    assert post(agent, health, {"DeploymentID": d["ID"]}, 400) == \
        "must specify at least one healthy/unhealthy allocation ID"
    assert post(agent, health, {"DeploymentID": d["ID"], "HealthyAllocationIDs": ["nope"]},
                404) == 'unknown alloc "nope"'
    old = next(a for a in live(agent) if a["JobVersion"] == 0)
    assert post(agent, health, {"DeploymentID": d["ID"], "HealthyAllocationIDs": [old["ID"]]},
                400) == f'alloc "{old["ID"]}" is not part of deployment "{d["ID"]}"'
    first = next(a for a in live(agent) if a["JobVersion"] == 1)
    reply = post(agent, health, {"DeploymentID": d["ID"], "HealthyAllocationIDs": [first["ID"]]})
    assert reply["EvalID"] and reply["RevertedJobVersion"] is None
    # the healthy one lets the next replacement go
    d = wait_until(lambda: (lambda x: x if x["TaskGroups"]["app"]["PlacedAllocs"] == 2
                            else None)(deployment_for(agent, 1)), 10, "the second replacement")
    assert d["TaskGroups"]["app"]["HealthyAllocs"] == 1
    alloc = get(agent, f"/v1/allocation/{first['ID']}")
    assert alloc["DeploymentStatus"]["Healthy"] is True

    reply = post(agent, f"/v1/deployment/fail/{d['ID']}")
    assert reply["EvalID"] and reply["RevertedJobVersion"] is None
    failed = get(agent, f"/v1/deployment/{d['ID']}")
    assert (failed["Status"], failed["StatusDescription"]) == \
        ("failed", "Deployment marked as failed")
    assert get(agent, f"/v1/job/{agent.job}")["Stable"] is False
    assert post(agent, f"/v1/deployment/fail/{d['ID']}", None, 400) == \
        "can't fail terminal deployment"
    assert post(agent, health, {"DeploymentID": d["ID"], "HealthyAllocationIDs": [first["ID"]]},
                400) == "can't set health of allocations for a terminal deployment"


def test_unhealthy_mark_fails_and_a_newer_version_cancels(cluster):
    agent = cluster
    settle_v0(agent, count=2)
    register(agent, service_job("v1", count=2, HealthCheck="manual"))
    d1 = wait_until(lambda: (lambda x: x if x and x["TaskGroups"]["app"]["PlacedAllocs"] == 1
                             else None)(deployment_for(agent, 1)), 10, "one placed allocation")
    # a newer version cancels the running deployment
    register(agent, service_job("v2", count=2, HealthCheck="manual", AutoRevert=True))
    cancelled = wait_status(agent, 1, "cancelled")
    assert cancelled["StatusDescription"] == "Cancelled due to newer version of job"
    d2 = wait_until(lambda: (lambda x: x if x and x["TaskGroups"]["app"]["PlacedAllocs"] == 1
                             else None)(deployment_for(agent, 2)), 10, "v2 placed")
    new = next(a for a in live(agent) if a["JobVersion"] == 2)
    # python-nomad sends "UnHealthyAllocationIDs": keys match fields in any case, as in Go
    host, _, port = agent.url.removeprefix("http://").rpartition(":")
    client = nomad.Nomad(host=host, port=int(port), timeout=10)
    reply = client.deployment.deployment_allocation_health(
        d2["ID"], unhealthy_allocations=[new["ID"]])
    assert reply["RevertedJobVersion"] == 0
    failed = get(agent, f"/v1/deployment/{d2['ID']}")
    assert failed["StatusDescription"] == \
        "Failed due to unhealthy allocations - rolling back to job version 0"
    assert get(agent, f"/v1/job/{agent.job}")["Version"] == 3
    assert d1["ID"] != d2["ID"]


def test_python_nomad_drives_a_canary_deployment(cluster):
    """The python-nomad client's deployment calls (promote groups, pause, fail)."""
    agent = cluster
    host, _, port = agent.url.removeprefix("http://").rpartition(":")
    client = nomad.Nomad(host=host, port=int(port), timeout=10)
    settle_v0(agent, count=2)
    register(agent, service_job("v1", count=2, Canary=1))
    d = wait_until(lambda: (lambda x: x if x and x["TaskGroups"]["app"]["HealthyAllocs"] == 1
                            else None)(deployment_for(agent, 1)), 20, "a healthy canary")
    assert client.deployment.pause_deployment(d["ID"], True)["EvalID"] == ""
    assert client.deployment.get_deployment(d["ID"])["Status"] == "paused"
    assert client.deployment.pause_deployment(d["ID"], False)["EvalID"]
    reply = client.deployment.promote_deployment_groups(d["ID"], groups=["app"])
    assert reply["EvalID"] and reply["DeploymentModifyIndex"] > 0
    wait_status(agent, 1, "successful")
    register(agent, service_job("v2", count=2, Canary=1, AutoRevert=True))
    d2 = wait_until(lambda: deployment_for(agent, 2), 10, "a deployment for v2")
    reply = client.deployment.fail_deployment(d2["ID"])
    assert reply["RevertedJobVersion"] == 1
    assert client.deployment.get_deployment(d2["ID"])["StatusDescription"] == \
        "Deployment marked as failed - rolling back to job version 1"
    wait_status(agent, 3, "successful")


def test_a_new_leader_takes_over_a_running_deployment(tmp_path):
    """The watcher keeps nothing the log lacks: kill the leader mid-rollout and the new
    leader's watcher carries the deployment to success."""
    cluster = make_cluster(tmp_path).start()
    sim = None
    try:
        server = cluster.leader()
        leader = Api(server.url, server.rpc, "web")
        sim = start_nodes(tmp_path, leader)
        settle_v0(leader, count=3)
        register(leader, service_job("v1", count=3, MinHealthyTime=500 * MS))
        wait_until(lambda: (deployment_for(leader, 1) or {}).get("TaskGroups", {})
                   .get("app", {}).get("HealthyAllocs", 0) >= 1, 20, "one healthy replacement")
        server.kill()
        elected = cluster.leader()
        assert elected is not server
        new_leader = Api(elected.url, elected.rpc, "web")
        d = wait_status(new_leader, 1, "successful", timeout=40)
        assert d["TaskGroups"]["app"]["HealthyAllocs"] == 3
        assert versions_running(new_leader) == {1: 3}
        assert get(new_leader, f"/v1/job/{new_leader.job}")["Stable"] is True
    finally:
        if sim is not None:
            sim.stop()
        cluster.stop()
