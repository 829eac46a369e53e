"""Deployments decided by a real client agent: health from the client's own service
checks (HealthCheck = "checks"), a rolling update, an update whose new tasks fail their
check and auto-revert, and a count change (an in-place update into a new deployment)."""
from __future__ import annotations

import sys
import uuid

import httpx
import pytest

from tests.procs import dev_server, wait_until

SEC = 1_000_000_000


def web_job(job_id: str, *, count: int = 2, broken: bool = False, version: str = "1") -> dict:
    """A python http.server on a dynamic port with an http check; ``broken`` serves
    nothing (it sleeps), so its check never passes."""
    args = ["-c", "import time; time.sleep(600)"] if broken else \
        ["-m", "http.server", "${NOMAD_PORT_http}", "--bind", "127.0.0.1"]
    return {"Job": {
        "ID": job_id, "Type": "service", "Datacenters": ["dc1"],
        "Update": {"MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": SEC // 2,
                   "HealthyDeadline": 4 * SEC, "ProgressDeadline": 30 * SEC,
                   "AutoRevert": True},
        "TaskGroups": [{
            "Name": "web", "Count": count,
            "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
            # nothing replaces an unhealthy alloc: it fails the deployment at once
            # (with a reschedule policy it would wait for the progress deadline)
            "ReschedulePolicy": {"Attempts": 0, "Unlimited": False},
            "Tasks": [{
                "Name": "server", "Driver": "raw_exec", "KillTimeout": SEC,
                "Env": {"VERSION": version},
                "Config": {"command": sys.executable, "args": args},
                "Resources": {"CPU": 50, "MemoryMB": 64,
                              "Networks": [{"MBits": 1, "DynamicPorts": [{"Label": "http"}]}]},
                "Services": [{"Name": "web", "PortLabel": "http", "Checks": [{
                    "Name": "alive", "Type": "http", "Path": "/", "Interval": SEC,
                    "Timeout": SEC}]}],
            }],
        }],
    }}


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    agent = dev_server(tmp_path_factory.mktemp("client-deploy"), client=True).start()
    http = httpx.Client(base_url=agent.url, timeout=10)
    try:
        wait_until(lambda: [n for n in http.get("/v1/nodes").json() if n["Status"] == "ready"],
                   30, "the dev client's node")
        yield http
    finally:
        http.close()
        agent.stop()


def deployment_of(http, job_id: str, version: int) -> dict | None:
    r = http.get(f"/v1/job/{job_id}/deployments")
    return next((d for d in r.json() if d["JobVersion"] == version), None) \
        if r.status_code == 200 else None


def wait_deployment(http, job_id: str, version: int, status: str, timeout: float = 40) -> dict:
    def done():
        d = deployment_of(http, job_id, version)
        if d and d["Status"] in (status, "failed", "successful"):
            return d
    d = wait_until(done, timeout, f"deployment of version {version} to be {status}")
    assert d["Status"] == status, d
    return d


def test_checks_decide_deployments_and_a_broken_update_reverts(dev):
    http = dev
    jid = f"web-{uuid.uuid4().hex[:6]}"
    http.post("/v1/jobs", json=web_job(jid)).raise_for_status()
    d0 = wait_deployment(http, jid, 0, "successful")
    assert d0["TaskGroups"]["web"]["HealthyAllocs"] == 2
    assert http.get(f"/v1/job/{jid}").json()["Stable"] is True
    for a in http.get(f"/v1/job/{jid}/allocations").json():
        full = http.get(f"/v1/allocation/{a['ID']}").json()
        assert full["DeploymentStatus"]["Healthy"] is True

    # version 1 serves nothing: its check stays critical, the allocation is unhealthy
    # at HealthyDeadline, the deployment fails and the job goes back to version 0's spec
    http.post("/v1/jobs", json=web_job(jid, broken=True, version="2")).raise_for_status()
    d1 = wait_deployment(http, jid, 1, "failed")
    assert d1["TaskGroups"]["web"]["UnhealthyAllocs"] >= 1
    assert "rolling back to job version 0" in d1["StatusDescription"]
    d2 = wait_deployment(http, jid, 2, "successful")
    job = http.get(f"/v1/job/{jid}").json()
    assert job["Version"] == 2 and job["TaskGroups"][0]["Tasks"][0]["Env"]["VERSION"] == "1"
    assert d2["TaskGroups"]["web"]["HealthyAllocs"] >= 1

    # a count change updates the running allocations in place into a new deployment;
    # the client decides their health again, so the deployment completes
    http.post("/v1/jobs", json=web_job(jid, count=3)).raise_for_status()
    d3 = wait_deployment(http, jid, 3, "successful")
    assert d3["TaskGroups"]["web"]["DesiredTotal"] == 3
    http.delete(f"/v1/job/{jid}").raise_for_status()
    wait_until(lambda: all(a["ClientStatus"] != "running"
                           for a in http.get(f"/v1/job/{jid}/allocations").json()),
               20, "the job's tasks to stop")
