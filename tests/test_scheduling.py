"""Scheduling end to end: a real `caravan agent -dev`, simulated nodes from
`caravan nodesim`, and the HTTP API only."""
from __future__ import annotations

import os
import signal
import subprocess
import sys

import httpx
import pytest

from tests.procs import ROOT, wait_until


def seed_job(count: int = 1) -> dict:
    """The sample service job of Nomad's Jobs API documentation (List Job Versions), as a
    register body."""
    return {"Job": {
        "ID": "example", "Name": "example", "Type": "service", "Datacenters": ["dc1"],
        "TaskGroups": [{
            "Name": "cache", "Count": count,
            "RestartPolicy": {"Attempts": 10, "Interval": 300000000000, "Delay": 25000000000,
                              "Mode": "delay"},
            "EphemeralDisk": {"SizeMB": 300},
            "Tasks": [{
                "Name": "redis", "Driver": "docker",
                "Config": {"image": "redis:3.2", "port_map": [{"db": 6379}]},
                "Resources": {"CPU": 500, "MemoryMB": 256,
                              "Networks": [{"MBits": 10, "DynamicPorts": [{"Label": "db"}]}]},
                "Services": [{"Name": "global-redis-check", "PortLabel": "db",
                              "Tags": ["global", "cache"],
                              "Checks": [{"Name": "alive", "Type": "tcp", "Interval": 10000000000,
                                          "Timeout": 2000000000}]}],
            }],
        }],
        "Update": {"Stagger": 10000000000, "MaxParallel": 1},
    }}


class NodeSim:
    def __init__(self, tmp, name: str, server_rpc: str, *args: str):
        self.log = tmp / f"{name}.log"
        with open(self.log, "w") as out:
            self.proc = subprocess.Popen(
                [sys.executable, "-m", "caravan", "nodesim", "-server", server_rpc,
                 "-name-prefix", name, *args], cwd=ROOT, stdout=out, stderr=subprocess.STDOUT,
                start_new_session=True)

    def stop(self, sig=signal.SIGTERM):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, sig)
            self.proc.wait(10)


@pytest.fixture
def cluster(sim_agent):
    """A dev agent (1 s heartbeat TTL and grace) and its nodesim processes."""
    return sim_agent


def get(agent, path, **params):
    r = httpx.get(agent.url + path, params=params, timeout=10)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def live_allocs(agent, job="example"):
    return [a for a in get(agent, f"/v1/job/{job}/allocations")
            if a["DesiredStatus"] == "run" and a["ClientStatus"] in ("pending", "running")]


def ready_nodes(agent):
    return [n for n in get(agent, "/v1/nodes") if n["Status"] == "ready"]


def test_schedule_exhaust_unblock_stop_and_lose_a_node(cluster, tmp_path):
    agent, sims = cluster
    # two nodes that can each hold 2 copies (CPU 1000 MHz, 500 per copy)
    sims.append(NodeSim(tmp_path, "a", agent.rpc, "-count", "2", "-cpu", "1000",
                        "-drivers", "mock,docker"))
    wait_until(lambda: len(ready_nodes(agent)) == 2, 20, "2 ready nodes")

    r = httpx.post(agent.url + "/v1/jobs", json=seed_job(count=3), timeout=10)
    assert r.status_code == 200
    wait_until(lambda: len([a for a in live_allocs(agent) if a["ClientStatus"] == "running"]) == 3,
               20, "3 running allocations")
    alloc = get(agent, f"/v1/allocation/{live_allocs(agent)[0]['ID']}")
    assert alloc["Metrics"]["NodesEvaluated"] >= 1 and alloc["Metrics"]["NodesAvailable"] == {"dc1": 2}
    assert alloc["Resources"]["CPU"] == 500
    assert alloc["Resources"]["Networks"][0]["DynamicPorts"][0]["Value"] >= 20000
    assert get(agent, "/v1/job/example")["Status"] == "running"
    summary = get(agent, "/v1/job/example/summary")["Summary"]["cache"]
    assert summary["Running"] == 3 and summary["Queued"] == 0

    # ask for more than fits: a blocked eval records why
    r = httpx.post(agent.url + "/v1/job/example", json=seed_job(count=6), timeout=10)
    assert r.status_code == 200

    def blocked_eval():
        evals = get(agent, "/v1/job/example/evaluations")
        return next((e for e in evals if e["Status"] == "blocked"), None)

    blocked = wait_until(blocked_eval, 20, "a blocked eval")
    failed = [e for e in get(agent, "/v1/job/example/evaluations")
              if e["BlockedEval"] == blocked["ID"]][0]["FailedTGAllocs"]["cache"]
    assert failed["DimensionExhausted"] == {"cpu exhausted": 2}
    assert failed["NodesExhausted"] == 2 and failed["CoalescedFailures"] == 1
    assert len(live_allocs(agent)) == 4

    # a new node brings capacity: the blocked eval places the rest
    sims.append(NodeSim(tmp_path, "b", agent.rpc, "-count", "1", "-cpu", "1000",
                        "-drivers", "mock,docker"))
    wait_until(lambda: len(live_allocs(agent)) == 6, 20, "6 allocations after a node joined")
    wait_until(lambda: get(agent, f"/v1/evaluation/{blocked['ID']}")["Status"] == "complete",
               10, "the blocked eval to complete")

    # kill the new node's heartbeats: its allocations are lost and replaced... but there
    # is no room left for them, so they wait in a blocked eval
    b_node = [n for n in ready_nodes(agent) if n["Name"].startswith("b")][0]["ID"]
    on_b = [a["ID"] for a in live_allocs(agent) if a["NodeID"] == b_node]
    assert on_b
    sims[1].stop(signal.SIGKILL)
    wait_until(lambda: get(agent, f"/v1/node/{b_node}")["Status"] == "down", 20, "node down")
    wait_until(lambda: all(get(agent, f"/v1/allocation/{i}")["ClientStatus"] == "lost"
                           for i in on_b), 20, "allocations lost")
    assert get(agent, "/v1/job/example/summary")["Summary"]["cache"]["Lost"] == len(on_b)
    wait_until(blocked_eval, 20, "a blocked eval for the lost allocations")

    # stop the job: every allocation is told to stop, and the nodes report them complete
    r = httpx.delete(agent.url + "/v1/job/example", timeout=10)
    assert r.status_code == 200
    wait_until(lambda: all(a["DesiredStatus"] == "stop"
                           for a in get(agent, "/v1/job/example/allocations")),
               20, "all allocations stopped")
    wait_until(lambda: get(agent, "/v1/job/example")["Status"] == "dead", 20, "job dead")


def test_plan_reports_the_scheduler_dry_run(cluster, tmp_path):
    agent, sims = cluster
    sims.append(NodeSim(tmp_path, "p", agent.rpc, "-count", "1", "-cpu", "1000",
                        "-drivers", "docker"))
    wait_until(lambda: len(ready_nodes(agent)) == 1, 20, "1 ready node")
    r = httpx.post(agent.url + "/v1/job/example/plan", json={**seed_job(count=3), "Diff": True},
                   timeout=10)
    assert r.status_code == 200
    plan = r.json()
    assert plan["Annotations"]["DesiredTGUpdates"]["cache"]["Place"] == 3
    assert plan["FailedTGAllocs"]["cache"]["DimensionExhausted"] == {"cpu exhausted": 1}
    assert plan["CreatedEvals"][0]["Status"] == "blocked"
    assert plan["Diff"]["Type"] == "Added"
    # nothing was written
    assert httpx.get(agent.url + "/v1/job/example", timeout=5).status_code == 404
    assert get(agent, "/v1/allocations") == []


def test_scheduling_continues_on_a_new_leader(tmp_path, monkeypatch):
    from tests.procs import make_cluster
    monkeypatch.setenv("CARAVAN_HEARTBEAT_TTL", "2")
    monkeypatch.setenv("CARAVAN_HEARTBEAT_GRACE", "2")
    cluster = make_cluster(tmp_path).start()
    sim = None
    try:
        leader = cluster.leader()
        sim = NodeSim(tmp_path, "c", leader.rpc, "-count", "3", "-drivers", "mock,docker")
        wait_until(lambda: len(ready_nodes(leader)) == 3, 20, "3 ready nodes")
        assert httpx.post(leader.url + "/v1/jobs", json=seed_job(count=2), timeout=10).status_code == 200
        wait_until(lambda: len(live_allocs(leader)) == 2, 20, "2 allocations")

        leader.kill()
        survivor = [s for s in cluster.servers if s is not leader][0]
        body = seed_job(count=1)
        body["Job"]["ID"] = body["Job"]["Name"] = "after-failover"
        wait_until(lambda: httpx.post(survivor.url + "/v1/jobs", json=body,
                                      timeout=10).status_code == 200, 30, "a write after failover")
        wait_until(lambda: len(live_allocs(survivor, "after-failover")) == 1, 30,
                   "the new leader to schedule")
        # the simulated nodes followed the new leader and stayed ready
        wait_until(lambda: len([a for a in live_allocs(survivor, "after-failover")
                                if a["ClientStatus"] == "running"]) == 1, 30, "running")
        assert len(ready_nodes(survivor)) == 3
        assert len(live_allocs(survivor)) == 2
    finally:
        if sim is not None:
            sim.stop(signal.SIGKILL)
        cluster.stop()
        for s in cluster.servers:
            s.kill()


def test_followers_schedule_for_the_leader_and_follow_a_new_one(tmp_path, monkeypatch):
    """With ``follower_scheduler_workers``, followers run scheduling workers against the
    leader's broker and applier, as in Nomad (here the leader runs none of its own):
    every eval is planned on a follower,
    each allocation is placed once, and after the leader is killed the workers of the
    remaining follower serve the new leader."""
    from tests.procs import make_cluster
    monkeypatch.setenv("CARAVAN_LEADER_WORKERS", "0")
    monkeypatch.setenv("CARAVAN_HEARTBEAT_TTL", "2")
    monkeypatch.setenv("CARAVAN_HEARTBEAT_GRACE", "2")
    cluster = make_cluster(tmp_path, cluster_toml="follower_scheduler_workers = 2").start()
    sim = None

    def follower_acks(servers) -> int:
        total = 0
        for s in servers:
            counters = get(s, "/v1/metrics")["Counters"]
            total += sum(c["Count"] for c in counters
                         if c["Name"] == "caravan.scheduler.follower_evals_acked")
        return total

    def placed_once(server, job_ids):
        names = [(a["JobID"], a["Name"]) for a in get(server, "/v1/allocations")
                 if a["JobID"] in job_ids and a["DesiredStatus"] == "run"]
        assert len(names) == len(set(names)), "an allocation was placed twice"
        return len(names)

    try:
        leader = cluster.leader()
        sim = NodeSim(tmp_path, "f", leader.rpc, "-count", "4", "-drivers", "mock,docker")
        wait_until(lambda: len(ready_nodes(leader)) == 4, 20, "4 ready nodes")
        first = [f"f{i}" for i in range(5)]
        for job_id in first:
            body = seed_job(count=3)
            body["Job"]["ID"] = body["Job"]["Name"] = job_id
            assert httpx.post(leader.url + "/v1/jobs", json=body, timeout=10).status_code == 200
        wait_until(lambda: placed_once(leader, first) == 15, 30, "15 allocations")
        others = [s for s in cluster.servers if s is not leader]
        wait_until(lambda: follower_acks(others) >= 5, 10, "the followers' acks")
        assert follower_acks([leader]) == 0

        leader.kill()
        new_leader = cluster.leader()
        body = seed_job(count=2)
        body["Job"]["ID"] = body["Job"]["Name"] = "after"
        wait_until(lambda: httpx.post(new_leader.url + "/v1/jobs", json=body,
                                      timeout=10).status_code == 200, 30, "a write after failover")
        wait_until(lambda: placed_once(new_leader, ["after"]) == 2, 30,
                   "the remaining follower's workers to schedule for the new leader")
        assert placed_once(new_leader, first) == 15
        follower = [s for s in others if s is not new_leader][0]
        assert follower_acks([follower]) >= 1
    finally:
        if sim is not None:
            sim.stop(signal.SIGKILL)
        cluster.stop()
        for s in cluster.servers:
            s.kill()


def test_a_joining_node_gets_the_system_jobs_allocation(cluster, tmp_path):
    agent, sims = cluster
    body = {"Job": {"ID": "sys", "Type": "system", "TaskGroups": [
        {"Name": "agent", "Tasks": [{"Name": "t", "Driver": "mock",
                                      "Resources": {"CPU": 100, "MemoryMB": 64}}]}]}}
    assert httpx.post(agent.url + "/v1/jobs", json=body, timeout=10).status_code == 200
    sims.append(NodeSim(tmp_path, "s", agent.rpc, "-count", "2", "-drivers", "mock"))
    wait_until(lambda: len(ready_nodes(agent)) == 2, 20, "2 ready nodes")
    # no manual evaluate: the registrations themselves created node-update evals
    wait_until(lambda: len(live_allocs(agent, "sys")) == 2, 20, "one allocation per node")
    assert {a["NodeID"] for a in live_allocs(agent, "sys")} == {n["ID"] for n in ready_nodes(agent)}
    triggers = {e["TriggeredBy"] for e in get(agent, "/v1/job/sys/evaluations")}
    assert "node-update" in triggers
