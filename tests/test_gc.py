"""Garbage collection end to end: a real server and a real client agent running mock
tasks, the HTTP API only. ``PUT /v1/system/gc`` collects everything dead at once; with
short thresholds in the cluster file the leader's periodic pass does it on its own."""
from __future__ import annotations

import signal
import subprocess
import sys
from urllib.parse import quote

import httpx
import nomad
import pytest

from tests.procs import ROOT, make_cluster, wait_until


def mock_job(job_id: str, *, type_: str = "service", run_for: str = "1h", cpu: int = 100,
             **extra) -> dict:
    return {"Job": {"ID": job_id, "Type": type_, "Datacenters": ["dc1"], **extra,
                    "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{
                        "Name": "t", "Driver": "mock", "Config": {"run_for": run_for},
                        "Resources": {"CPU": cpu, "MemoryMB": 32}}]}]}}


def parent_job(job_id: str = "p") -> dict:
    return mock_job(job_id, type_="batch", run_for="50ms",
                    ParameterizedJob={"Payload": "optional"})


def start(tmp_path, cluster_toml: str = ""):
    cluster = make_cluster(tmp_path, n=1, clients=1, cluster_toml=cluster_toml)
    cluster.start()
    http = httpx.Client(base_url=cluster.servers[0].url, timeout=10)
    wait_until(lambda: [n for n in http.get("/v1/nodes").json() if n["Status"] == "ready"],
               30, "the client's node to be ready")
    return cluster, http


def status(http, job_id: str) -> int:
    return http.get(f"/v1/job/{quote(job_id, safe='')}").status_code


def job_status(http, job_id: str) -> str:
    r = http.get(f"/v1/job/{quote(job_id, safe='')}")
    return r.json()["Status"] if r.status_code == 200 else ""


def running(http, job_id: str) -> list[dict]:
    return [a for a in http.get(f"/v1/job/{job_id}/allocations").json()
            if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"]


def dispatch(http, parent: str) -> str:
    r = http.post(f"/v1/job/{parent}/dispatch", json={})
    r.raise_for_status()
    return r.json()["DispatchedJobID"]


def settled(http, job_id: str) -> bool:
    """No eval of the job is pending or blocked."""
    evals = http.get(f"/v1/job/{quote(job_id, safe='')}/evaluations").json()
    return all(ev["Status"] in ("complete", "failed", "canceled") for ev in evals)


@pytest.fixture
def dev_cluster(tmp_path):
    cluster, http = start(tmp_path)
    try:
        yield cluster, http
    finally:
        http.close()
        cluster.stop()


def test_system_gc_collects_the_dead_and_keeps_the_living(dev_cluster):
    cluster, http = dev_cluster
    # web: updated once, so one allocation ran and completed and one runs
    http.post("/v1/jobs", json=mock_job("web")).raise_for_status()
    first = wait_until(lambda: running(http, "web"), 30, "web to run")[0]
    http.post("/v1/jobs", json=mock_job("web", cpu=150)).raise_for_status()

    def replaced():
        allocs = http.get("/v1/job/web/allocations").json()
        old = next(a for a in allocs if a["ID"] == first["ID"])
        return old["ClientStatus"] == "complete" and running(http, "web") and \
            settled(http, "web")
    wait_until(replaced, 30, "web's first allocation to be replaced")
    web_evals = {ev["ID"] for ev in http.get("/v1/job/web/evaluations").json()}
    # gone: stopped, its allocation finished
    http.post("/v1/jobs", json=mock_job("gone")).raise_for_status()
    wait_until(lambda: running(http, "gone"), 30, "gone to run")
    gone_allocs = [a["ID"] for a in http.get("/v1/job/gone/allocations").json()]
    http.delete("/v1/job/gone").raise_for_status()
    wait_until(lambda: job_status(http, "gone") == "dead", 30, "gone to be dead")
    # a parameterized parent with two children that ran and finished, and a batch job
    # that finished but was not stopped
    http.post("/v1/jobs", json=parent_job()).raise_for_status()
    children = [dispatch(http, "p") for _ in range(2)]
    http.post("/v1/jobs", json=mock_job("done", type_="batch", run_for="50ms")
              ).raise_for_status()
    for job_id in children + ["done"]:
        wait_until(lambda j=job_id: job_status(http, j) == "dead", 30, f"{job_id} to finish")
    assert http.get("/v1/job/p/summary").json()["Children"] == \
        {"Pending": 0, "Running": 0, "Dead": 2}
    web_summary = http.get("/v1/job/web/summary").json()["Summary"]
    assert (web_summary["g"]["Running"], web_summary["g"]["Complete"]) == (1, 1)

    r = http.put("/v1/system/gc")
    assert (r.status_code, r.text) == (200, "")

    # the dead jobs are gone, with their allocations and evaluations
    assert status(http, "gone") == 404
    for alloc_id in gone_allocs:
        assert http.get(f"/v1/allocation/{alloc_id}").status_code == 404
    assert all(status(http, c) == 404 for c in children)
    assert http.get("/v1/jobs", params={"prefix": "p/"}).json() == []
    # a batch job that finished is dead without a stop, and goes whole too
    assert status(http, "done") == 404
    # the parent stays (not stopped); its collected children stay counted as dead
    p = http.get("/v1/job/p/summary").json()
    assert p["Children"] == {"Pending": 0, "Running": 0, "Dead": 2}
    # web lives: its running allocation and summary are untouched, its first
    # allocation (complete) went with the evaluation that placed it
    assert [a["ID"] for a in running(http, "web")]
    assert http.get(f"/v1/allocation/{first['ID']}").status_code == 404
    assert http.get("/v1/job/web/summary").json()["Summary"] == web_summary
    left = {ev["ID"] for ev in http.get("/v1/job/web/evaluations").json()}
    assert left and left < web_evals
    all_evals = {ev["JobID"] for ev in http.get("/v1/evaluations").json()}
    assert all_evals == {"web"}
    # POST works too, and the python-nomad client's call; other methods do not
    assert http.post("/v1/system/gc").status_code == 200
    host, _, port = cluster.servers[0].http.rpartition(":")
    assert nomad.Nomad(host=host, port=int(port), timeout=10) \
        .system.initiate_garbage_collection() is True
    assert http.get("/v1/system/gc").status_code == 405
    # and the live job still works
    http.post("/v1/jobs", json=mock_job("web", cpu=120)).raise_for_status()
    wait_until(lambda: settled(http, "web") and running(http, "web") and
               running(http, "web")[0]["ID"] != first["ID"], 30, "web to update again")
    s = http.get("/v1/job/web/summary").json()["Summary"]["g"]
    assert (s["Running"], s["Complete"]) == (1, 2)


def test_the_leader_collects_on_its_own_with_short_thresholds(tmp_path, monkeypatch):
    monkeypatch.setenv("CARAVAN_HEARTBEAT_TTL", "1")
    monkeypatch.setenv("CARAVAN_HEARTBEAT_GRACE", "1")
    cluster, http = start(tmp_path, 'gc_interval = "500ms"\neval_gc_threshold = "1s"\n'
                                     'job_gc_threshold = "2s"\ndeployment_gc_threshold = "1s"\n'
                                     'node_gc_threshold = "2s"')
    sim = None
    try:
        http.post("/v1/jobs", json=parent_job()).raise_for_status()
        child = dispatch(http, "p")
        http.post("/v1/jobs", json=mock_job("gone")).raise_for_status()
        wait_until(lambda: running(http, "gone"), 30, "gone to run")
        http.delete("/v1/job/gone").raise_for_status()
        # a node that goes away for good
        sim = subprocess.Popen([sys.executable, "-m", "caravan", "nodesim", "-server",
                                cluster.servers[0].rpc, "-name-prefix", "ghost"], cwd=ROOT,
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                               start_new_session=True)
        ghost = wait_until(lambda: [n["ID"] for n in http.get("/v1/nodes").json()
                                    if n["Name"].startswith("ghost")], 30, "the ghost node")[0]
        sim.send_signal(signal.SIGKILL)
        sim.wait(10)
        wait_until(lambda: status(http, child) == 404 and status(http, "gone") == 404, 60,
                   "the finished child and the stopped job to be collected")
        wait_until(lambda: all(n["ID"] != ghost for n in http.get("/v1/nodes").json()), 60,
                   "the down node to be collected")
        assert http.get("/v1/job/p/summary").json()["Children"]["Dead"] == 1
        assert [n for n in http.get("/v1/nodes").json() if n["Status"] == "ready"]
        assert http.get("/v1/evaluations").json() == []
        counters = {c["Name"]: c["Sum"] for c in http.get("/v1/metrics").json()["Counters"]}
        assert counters["caravan.gc.jobs"] >= 2 and counters["caravan.gc.nodes"] == 1
    finally:
        if sim is not None and sim.poll() is None:
            sim.kill()
            sim.wait(10)
        http.close()
        cluster.stop()
