"""Affinities, spreads, explained scores and system-job preemption end to end: a real
``caravan agent -dev``, groups of simulated nodes from ``caravan nodesim`` in several
datacenters or with node metadata, and the HTTP API only."""
from __future__ import annotations

import httpx
import pytest

from tests.procs import wait_until
from tests.test_scheduling import NodeSim


@pytest.fixture
def cluster(sim_agent):
    return sim_agent


def get(agent, path):
    r = httpx.get(agent.url + path, timeout=10)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def register(agent, job: dict) -> httpx.Response:
    return httpx.post(agent.url + "/v1/jobs", json={"Job": job}, timeout=10)


def job(job_id: str, count: int, cpu: int = 100, job_type: str = "service", **extra) -> dict:
    return {"ID": job_id, "Type": job_type, "Datacenters": ["*"], **extra,
            "TaskGroups": [{"Name": "g", "Count": count, "Tasks": [{
                "Name": "t", "Driver": "mock", "Config": {"run_for": "1h"},
                "Resources": {"CPU": cpu, "MemoryMB": 64}}]}]}


def running(agent, job_id: str) -> list[dict]:
    return [a for a in get(agent, f"/v1/job/{job_id}/allocations")
            if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"]


def nodes_by_id(agent) -> dict[str, dict]:
    return {n["ID"]: get(agent, f"/v1/node/{n['ID']}") for n in get(agent, "/v1/nodes")
            if n["Status"] == "ready"}


def start_nodes(agent, sims, tmp_path, name: str, count: int, *args: str) -> None:
    before = len([n for n in get(agent, "/v1/nodes") if n["Status"] == "ready"])
    sims.append(NodeSim(tmp_path, name, agent.rpc, "-count", str(count), "-drivers", "mock",
                        *args))
    wait_until(lambda: len([n for n in get(agent, "/v1/nodes")
                            if n["Status"] == "ready"]) == before + count,
               30, f"{count} more ready nodes ({name})")


def test_spread_over_two_datacenters_by_percentage(cluster, tmp_path):
    agent, sims = cluster
    start_nodes(agent, sims, tmp_path, "east", 3, "-datacenter", "dc1")
    start_nodes(agent, sims, tmp_path, "west", 3, "-datacenter", "dc2")
    spread = {"Attribute": "${node.datacenter}", "Weight": 100,
              "SpreadTarget": [{"Value": "dc1", "Percent": 70}, {"Value": "dc2", "Percent": 30}]}
    r = register(agent, job("spread", 10, Spreads=[spread]))
    assert r.status_code == 200, r.text
    allocs = wait_until(lambda: (lambda a: a if len(a) == 10 else None)(running(agent, "spread")),
                        30, "10 running allocations")
    nodes = nodes_by_id(agent)
    dcs = [nodes[a["NodeID"]]["Datacenter"] for a in allocs]
    assert (dcs.count("dc1"), dcs.count("dc2")) == (7, 3)

    # the scores are explained: each scorer by name for the top nodes, and the
    # normalized score that decided
    full = get(agent, f"/v1/allocation/{allocs[0]['ID']}")
    metas = full["Metrics"]["ScoreMetaData"]
    assert 1 <= len(metas) <= 5
    names = set().union(*(m["Scores"] for m in metas))
    assert {"binpack", "node-affinity", "allocation-spread"} <= names
    assert all(isinstance(m["NormScore"], float) and m["NodeID"] in nodes for m in metas)
    assert metas == sorted(metas, key=lambda m: -m["NormScore"])


def test_affinity_steers_placements_toward_and_away(cluster, tmp_path):
    agent, sims = cluster
    start_nodes(agent, sims, tmp_path, "rack1", 3, "-meta", "rack=r1")
    start_nodes(agent, sims, tmp_path, "rack2", 3, "-meta", "rack=r2")
    nodes = nodes_by_id(agent)
    rack = {node_id: n["Meta"]["rack"] for node_id, n in nodes.items()}
    toward = {"LTarget": "${meta.rack}", "RTarget": "r1", "Operand": "=", "Weight": 100}
    away = {**toward, "Weight": -100}
    assert register(agent, job("toward", 5, Affinities=[toward])).status_code == 200
    assert register(agent, job("away", 5, Affinities=[away])).status_code == 200
    placed = {}
    for job_id in ("toward", "away"):
        def five_running(j=job_id):
            allocs = running(agent, j)
            return allocs if len(allocs) == 5 else None
        allocs = wait_until(five_running, 30, f"5 running allocations of {job_id}")
        placed[job_id] = {rack[a["NodeID"]] for a in allocs}
    assert placed == {"toward": {"r1"}, "away": {"r2"}}
    one = get(agent, f"/v1/allocation/{running(agent, 'toward')[0]['ID']}")
    best = one["Metrics"]["ScoreMetaData"][0]
    assert best["Scores"]["node-affinity"] == 1.0 and rack[best["NodeID"]] == "r1"


@pytest.mark.parametrize("where,block,message", [
    ("Affinities", {"LTarget": "${meta.rack}", "RTarget": "r1", "Operand": "=", "Weight": 150},
     "Affinity 1 validation failed: Affinity weight must be within the range [-100,100]"),
    ("Affinities", {"LTarget": "${meta.rack}", "RTarget": "r1", "Operand": "=", "Weight": 0},
     "Affinity 1 validation failed: Affinity weight cannot be zero"),
    ("Spreads", {"Attribute": "${node.datacenter}", "Weight": 50, "SpreadTarget": [
        {"Value": "dc1", "Percent": 80}, {"Value": "dc2", "Percent": 30}]},
     "Spread 1 validation failed: Sum of spread target percentages must not be greater than "
     "100%; got 110%"),
    ("Spreads", {"Attribute": "${node.datacenter}", "Weight": 101},
     "Spread 1 validation failed: Spread block must have a positive weight from 0 to 100"),
    ("Spreads", {"Attribute": "", "Weight": 10},
     "Spread 1 validation failed: Missing spread attribute"),
])
def test_invalid_affinity_or_spread_is_a_400_naming_it(cluster, where, block, message):
    agent, _ = cluster
    r = register(agent, job("bad", 1, **{where: [block]}))
    assert r.status_code == 400 and message in r.text, r.text
    assert httpx.get(agent.url + "/v1/job/bad", timeout=10).status_code == 404


def test_hcl_affinity_and_spread_blocks(cluster):
    agent, _ = cluster
    hcl = '''
job "web" {
  affinity {
    attribute = "${meta.rack}"
    value     = "r1"
    weight    = -30
  }
  group "g" {
    count = 4
    spread {
      attribute = "${node.datacenter}"
      target "dc1" { percent = 60 }
      target "dc2" { percent = 40 }
    }
    task "t" {
      driver = "mock"
      affinity {
        attribute = "${attr.cpu.arch}"
        operator  = "regexp"
        value     = "amd"
      }
    }
  }
}'''
    r = httpx.post(agent.url + "/v1/jobs/parse", json={"JobHCL": hcl, "Canonicalize": True},
                   timeout=10)
    assert r.status_code == 200, r.text
    parsed = r.json()
    assert parsed["Affinities"] == [{"LTarget": "${meta.rack}", "RTarget": "r1",
                                     "Operand": "=", "Weight": -30}]
    tg = parsed["TaskGroups"][0]
    assert tg["Spreads"] == [{"Attribute": "${node.datacenter}", "Weight": 50, "SpreadTarget": [
        {"Value": "dc1", "Percent": 60}, {"Value": "dc2", "Percent": 40}]}]
    assert tg["Tasks"][0]["Affinities"][0]["Operand"] == "regexp"
    assert tg["Tasks"][0]["Affinities"][0]["Weight"] == 50


def test_system_job_preempts_a_lower_priority_allocation(cluster, tmp_path):
    agent, sims = cluster
    start_nodes(agent, sims, tmp_path, "edge", 1, "-cpu", "1000", "-meta", "role=edge")
    low = job("low", 1, cpu=800, Priority=20)
    assert register(agent, low).status_code == 200
    (victim,) = wait_until(lambda: running(agent, "low") or None, 30, "the low job running")
    # room elsewhere for the evicted allocation, but not for the system job
    start_nodes(agent, sims, tmp_path, "spare", 1, "-cpu", "1000", "-meta", "role=spare")
    system = job("sys", 1, cpu=500, job_type="system", Priority=90,
                 Constraints=[{"LTarget": "${meta.role}", "RTarget": "edge", "Operand": "="}])
    # the dry run says what would be evicted
    r = httpx.post(agent.url + "/v1/job/sys/plan", json={"Job": system}, timeout=10)
    assert r.status_code == 200, r.text
    annotations = r.json()["Annotations"]
    assert [a["ID"] for a in annotations["PreemptedAllocs"]] == [victim["ID"]]
    assert annotations["DesiredTGUpdates"]["g"]["Preemptions"] == 1
    assert register(agent, system).status_code == 200

    (sys_alloc,) = wait_until(lambda: running(agent, "sys") or None, 30, "the system job running")
    assert sys_alloc["NodeID"] == victim["NodeID"]
    full = get(agent, f"/v1/allocation/{sys_alloc['ID']}")
    assert full["PreemptedAllocations"] == [victim["ID"]]
    assert "preemption" in full["Metrics"]["ScoreMetaData"][0]["Scores"]
    evicted = get(agent, f"/v1/allocation/{victim['ID']}")
    assert evicted["DesiredStatus"] == "evict"
    assert evicted["PreemptedByAllocation"] == sys_alloc["ID"]
    assert evicted["DesiredDescription"] == f"Preempted by alloc ID {sys_alloc['ID']}"

    # the low job was evaluated again and placed where there is room
    (moved,) = wait_until(lambda: running(agent, "low") or None, 30, "the low job rescheduled")
    assert moved["ID"] != victim["ID"] and moved["NodeID"] != victim["NodeID"]
    triggers = [ev["TriggeredBy"] for ev in get(agent, "/v1/job/low/evaluations")]
    assert "preemption" in triggers
    # nothing is overcommitted on the edge node
    on_edge = [a for a in get(agent, f"/v1/node/{victim['NodeID']}/allocations")
               if a["DesiredStatus"] == "run"]
    assert [a["ID"] for a in on_edge] == [sys_alloc["ID"]]


def test_service_jobs_do_not_preempt(cluster, tmp_path):
    agent, sims = cluster
    start_nodes(agent, sims, tmp_path, "solo", 1, "-cpu", "1000")
    assert register(agent, job("low", 1, cpu=800, Priority=20)).status_code == 200
    wait_until(lambda: running(agent, "low") or None, 30, "the low job running")
    assert register(agent, job("high", 1, cpu=500, Priority=90)).status_code == 200
    blocked = wait_until(lambda: [ev for ev in get(agent, "/v1/job/high/evaluations")
                                  if ev["Status"] == "blocked"] or None, 30, "a blocked eval")
    assert blocked and len(running(agent, "low")) == 1
