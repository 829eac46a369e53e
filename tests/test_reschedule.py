"""Rescheduling of failed allocations end to end: a real `caravan agent -dev` with its
client runs a raw_exec task that exits 1 and is never restarted, so every allocation
fails; the reschedule policy decides when (and whether) a replacement is placed. For
"prefers another node", `caravan nodesim` nodes run a mock task that fails to start.
Everything is read over the HTTP API."""
from __future__ import annotations

import subprocess
import sys
import uuid

import httpx
import pytest

from caravan.fsm.times import parse_rfc3339
from tests.procs import ROOT, dev_server, dev_with_client, wait_until
from tests.test_scheduling import NodeSim

SEC = 1_000_000_000
NO_RESTARTS = {"Attempts": 0, "Interval": 60 * SEC, "Delay": 100_000_000, "Mode": "fail"}


def crashing_job(job_id: str, reschedule: dict | None, type_: str = "service",
                 count: int = 1) -> dict:
    group = {"Name": "g", "Count": count, "RestartPolicy": NO_RESTARTS,
             "Tasks": [{"Name": "crash", "Driver": "raw_exec",
                        "Config": {"command": "/bin/sh", "args": ["-c", "exit 1"]},
                        "Resources": {"CPU": 50, "MemoryMB": 32}}]}
    if reschedule is not None:
        group["ReschedulePolicy"] = reschedule
    return {"Job": {"ID": job_id, "Type": type_, "Datacenters": ["dc1"], "TaskGroups": [group]}}


def register(http: httpx.Client, body: dict) -> dict:
    r = http.post("/v1/jobs", json=body)
    assert r.status_code == 200, r.text
    return r.json()


def chain(http: httpx.Client, job_id: str) -> list[dict]:
    """The job's allocations, full, oldest first."""
    stubs = http.get(f"/v1/job/{job_id}/allocations").json()
    allocs = [http.get(f"/v1/allocation/{a['ID']}").json() for a in stubs]
    return sorted(allocs, key=lambda a: a["CreateIndex"])


def wait_failed(http, job_id: str, n: int, timeout: float = 60) -> list[dict]:
    """Until at least ``n`` allocations exist and the first ``n`` have failed."""
    def ready():
        allocs = chain(http, job_id)
        return allocs if len(allocs) >= n and all(
            a["ClientStatus"] == "failed" for a in allocs[:n]) else None
    return wait_until(ready, timeout, f"{n} failed allocations of {job_id}")


def followups(http, job_id: str) -> list[dict]:
    evals = http.get(f"/v1/job/{job_id}/evaluations").json()
    return sorted((e for e in evals if e["TriggeredBy"] == "alloc-failure"
                   and parse_rfc3339(e["WaitUntil"])), key=lambda e: e["CreateIndex"])


def fail_time(alloc: dict) -> int:
    return max(parse_rfc3339(s["FinishedAt"]) for s in alloc["TaskStates"].values())


def settled(http, job_id: str) -> bool:
    """No eval of the job is pending or blocked, and none is waiting in a follow-up."""
    evals = http.get(f"/v1/job/{job_id}/evaluations").json()
    return all(e["Status"] in ("complete", "failed", "canceled") for e in evals)


def assert_linked(allocs: list[dict]) -> None:
    for prev, nxt in zip(allocs, allocs[1:]):
        assert nxt["PreviousAllocation"] == prev["ID"]
        assert prev["NextAllocation"] == nxt["ID"]
        assert prev["DesiredStatus"] == "stop"
        assert prev["DesiredDescription"] == "alloc was rescheduled because it failed"
        assert nxt["Name"] == prev["Name"]
        event = nxt["RescheduleTracker"]["Events"][-1]
        assert event["PrevAllocID"] == prev["ID"] and event["PrevNodeID"] == prev["NodeID"]


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("reschedule")
    with dev_with_client(tmp, check_exit=False) as (http, agent):
        yield http, agent


def test_exponential_delays_grow_with_followup_evals_and_trackers(dev):
    http, _ = dev
    jid = f"expo-{uuid.uuid4().hex[:6]}"
    register(http, crashing_job(jid, {"Delay": 2 * SEC, "DelayFunction": "exponential",
                                      "MaxDelay": 3600 * SEC, "Unlimited": True}))
    # 2s, 4s, 8s: the third follow-up eval exists once the third alloc failed
    wait_until(lambda: len(followups(http, jid)) >= 3, 60, "three follow-up evals")
    allocs = wait_failed(http, jid, 3)
    assert_linked(allocs[:3])
    assert allocs[0]["RescheduleTracker"] is None
    assert [e["Delay"] for e in allocs[1]["RescheduleTracker"]["Events"]] == [2 * SEC]
    assert [e["Delay"] for e in allocs[2]["RescheduleTracker"]["Events"]] == [2 * SEC, 4 * SEC]
    evs = followups(http, jid)[:3]
    for ev, alloc, delay in zip(evs, allocs, (2, 4, 8)):
        assert ev["Status"] in ("pending", "complete")
        assert ev["StatusDescription"] == "created for delayed rescheduling"
        assert alloc["FollowupEvalID"] == ev["ID"]
        assert parse_rfc3339(ev["WaitUntil"]) - fail_time(alloc) == delay * SEC
    waits = [parse_rfc3339(ev["WaitUntil"]) for ev in evs]
    gaps = [b - a for a, b in zip(waits, waits[1:])]
    assert gaps[0] < gaps[1], gaps
    # the broker held each follow-up until its WaitUntil: the replacement came after it
    for ev, nxt in zip(evs[:2], allocs[1:3]):
        assert nxt["CreateTime"] >= parse_rfc3339(ev["WaitUntil"])
        assert nxt["EvalID"] == ev["ID"]
    http.delete(f"/v1/job/{jid}")


def test_constant_delay_stays_the_same(dev):
    http, _ = dev
    jid = f"const-{uuid.uuid4().hex[:6]}"
    register(http, crashing_job(jid, {"Delay": 2 * SEC, "DelayFunction": "constant",
                                      "Unlimited": True}))
    wait_until(lambda: len(followups(http, jid)) >= 3, 60, "three follow-up evals")
    allocs = wait_failed(http, jid, 3)
    assert_linked(allocs[:3])
    assert [e["Delay"] for e in allocs[2]["RescheduleTracker"]["Events"]] == [2 * SEC, 2 * SEC]
    for ev, alloc in zip(followups(http, jid)[:3], allocs):
        assert parse_rfc3339(ev["WaitUntil"]) - fail_time(alloc) == 2 * SEC
    # the job's first deployment (default update block, 10 min progress deadline) lets
    # its failed allocs be replaced within it instead of failing
    deployment = allocs[0]["DeploymentID"]
    assert deployment and all(a["DeploymentID"] == deployment for a in allocs[:3])
    assert all(a["DesiredTransition"]["Reschedule"] is True for a in allocs[:2])
    d = http.get(f"/v1/deployment/{deployment}").json()
    assert d["Status"] == "running", d
    assert d["TaskGroups"]["g"]["PlacedAllocs"] >= 3
    http.delete(f"/v1/job/{jid}")


def test_limited_attempts_stop_rescheduling(dev):
    http, _ = dev
    jid = f"limited-{uuid.uuid4().hex[:6]}"
    register(http, crashing_job(jid, {"Attempts": 2, "Interval": 3600 * SEC, "Delay": SEC,
                                      "DelayFunction": "constant", "Unlimited": False}))
    allocs = wait_failed(http, jid, 3)
    wait_until(lambda: settled(http, jid), 30, "no eval left")
    allocs = chain(http, jid)
    assert len(allocs) == 3, [a["ID"] for a in allocs]
    assert_linked(allocs)
    last = allocs[-1]
    assert last["DesiredStatus"] == "run" and last["NextAllocation"] == ""
    assert last["FollowupEvalID"] == ""
    assert len(last["RescheduleTracker"]["Events"]) == 2
    summary = http.get(f"/v1/job/{jid}/summary").json()["Summary"]["g"]
    assert summary["Failed"] == 3 and summary["Running"] == 0
    # attempts exhausted: the deployment cannot progress any more and fails at once
    d = wait_until(lambda: (lambda d: d if d["Status"] != "running" else None)(
        http.get(f"/v1/deployment/{last['DeploymentID']}").json()), 20, "the deployment to end")
    assert d["Status"] == "failed"
    assert d["StatusDescription"] == "Failed due to unhealthy allocations"
    http.delete(f"/v1/job/{jid}")


def test_batch_job_is_rescheduled_once_then_forced_by_job_eval(dev):
    http, agent = dev
    jid = f"batch-{uuid.uuid4().hex[:6]}"
    register(http, crashing_job(jid, {"Attempts": 1, "Interval": 3600 * SEC, "Delay": SEC,
                                      "DelayFunction": "constant"}, type_="batch"))
    job = http.get(f"/v1/job/{jid}").json()
    policy = job["TaskGroups"][0]["ReschedulePolicy"]
    assert policy == {"Attempts": 1, "Interval": 3600 * SEC, "Delay": SEC,
                      "DelayFunction": "constant", "MaxDelay": 0, "Unlimited": False}
    wait_failed(http, jid, 2)
    wait_until(lambda: settled(http, jid), 30, "no eval left")
    allocs = chain(http, jid)
    assert len(allocs) == 2
    assert_linked(allocs)
    assert allocs[1]["NextAllocation"] == "" and allocs[1]["DesiredStatus"] == "run"

    # the operator forces one more attempt, past the policy
    out = subprocess.run([sys.executable, "-m", "caravan", "job", "eval", "-detach",
                          "-force-reschedule", "-address", agent.url, jid],
                         cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stdout + out.stderr
    allocs = wait_failed(http, jid, 3)
    forced = allocs[1]
    assert forced["DesiredTransition"]["ForceReschedule"] is True
    assert_linked(allocs[:3])
    assert len(allocs[2]["RescheduleTracker"]["Events"]) == 2
    http.delete(f"/v1/job/{jid}")


def test_evaluate_api_force_reschedule_option(dev):
    http, _ = dev
    jid = f"force-{uuid.uuid4().hex[:6]}"
    # delays far away: only the forced evaluation replaces the alloc soon
    register(http, crashing_job(jid, {"Delay": 3600 * SEC, "DelayFunction": "constant",
                                      "Unlimited": True}))
    first = wait_failed(http, jid, 1)[0]
    wait_until(lambda: chain(http, jid)[0]["FollowupEvalID"], 30, "a follow-up eval")
    r = http.post(f"/v1/job/{jid}/evaluate", json={"JobID": jid, "EvalOptions": {
        "ForceReschedule": "yes"}})
    assert r.status_code == 400 and "EvalOptions.ForceReschedule" in r.text
    r = http.post(f"/v1/job/{jid}/evaluate", json={"JobID": jid, "EvalOptions": {
        "ForceReschedule": True}})
    assert r.status_code == 200, r.text
    allocs = wait_failed(http, jid, 2)
    assert allocs[1]["PreviousAllocation"] == first["ID"]
    assert allocs[1]["EvalID"] == r.json()["EvalID"]
    http.delete(f"/v1/job/{jid}")


def test_reschedule_policy_is_validated(dev):
    http, _ = dev
    body = crashing_job("bad-resched", {"Attempts": 3, "Interval": 10 * SEC, "Delay": SEC,
                                        "DelayFunction": "linear", "Unlimited": True})
    r = http.post("/v1/jobs", json=body)
    assert r.status_code == 400
    assert "Reschedule policy: Invalid delay function \"linear\"" in r.text
    assert "If Attempts >0, Unlimited cannot also be set to true" in r.text
    # a service job's defaults include Unlimited: limiting attempts must turn it off
    body = crashing_job("bad-resched", {"Attempts": 5, "Interval": 20 * SEC, "Delay": 10 * SEC,
                                        "DelayFunction": "constant", "Unlimited": False})
    r = http.post("/v1/jobs", json=body)
    assert r.status_code == 400 and "Nomad can only make 2 attempts in 20s" in r.text
    assert http.get("/v1/job/bad-resched").status_code == 404
    # system jobs are never rescheduled: they may not carry a policy
    body = crashing_job("bad-resched", {"Delay": SEC}, type_="system")
    r = http.post("/v1/jobs", json=body)
    assert r.status_code == 400 and "System jobs should not have a reschedule policy" in r.text


# --- simulated nodes ----------------------------------------------------------------------


def test_replacement_prefers_another_node(tmp_path):
    agent = dev_server(tmp_path).start()
    sim = None
    http = httpx.Client(base_url=agent.url, timeout=10)
    try:
        agent.wait_healthy()
        sim = NodeSim(tmp_path, "resched", agent.rpc, "-count", "3", "-datacenter", "dc-r",
                      "-drivers", "mock")
        wait_until(lambda: len([n for n in http.get("/v1/nodes").json()
                                if n["Status"] == "ready"]) == 3, 20, "3 ready nodes")
        body = {"Job": {"ID": "hop", "Type": "service", "Datacenters": ["dc-r"],
                        "TaskGroups": [{"Name": "g", "Count": 1,
                                        "ReschedulePolicy": {"Delay": SEC,
                                                             "DelayFunction": "constant",
                                                             "Unlimited": True},
                                        "Tasks": [{"Name": "t", "Driver": "mock",
                                                   "Config": {"start_error": "boom"},
                                                   "Resources": {"CPU": 100,
                                                                 "MemoryMB": 64}}]}]}}
        register(http, body)
        # three nodes: the second and third replacements each avoid all earlier nodes
        allocs = wait_failed(http, "hop", 3, timeout=60)[:3]
        assert_linked(allocs)
        for prev, nxt in zip(allocs, allocs[1:]):
            assert nxt["NodeID"] != prev["NodeID"], (prev["NodeID"], nxt["NodeID"])
            scores = {m["NodeID"]: m["Scores"] for m in nxt["Metrics"]["ScoreMetaData"]}
            for node_id, s in scores.items():
                penalized = node_id in {e["PrevNodeID"]
                                        for e in nxt["RescheduleTracker"]["Events"]}
                assert s["node-reschedule-penalty"] == (-1.0 if penalized else 0.0)
    finally:
        http.close()
        if sim is not None:
            sim.stop()
        agent.stop()
