"""Node drain, eligibility, evaluate and purge end to end: a real ``caravan agent -dev``,
simulated nodes from ``caravan nodesim``, and the HTTP API only."""
from __future__ import annotations

import signal
import subprocess
import sys
import time

import httpx

from tests.procs import ROOT, wait_until
from tests.test_scheduling import NodeSim, get

SECOND = 1_000_000_000


def job(job_id: str, count: int, *, jtype: str = "service", migrate: dict | None = None) -> dict:
    group = {"Name": "g", "Count": count,
             "Tasks": [{"Name": "t", "Driver": "mock", "Config": {"run_for": "1h"},
                        "Resources": {"CPU": 100, "MemoryMB": 64}}]}
    if migrate is not None:
        group["Migrate"] = migrate
    body = {"ID": job_id, "Name": job_id, "Type": jtype, "Datacenters": ["dc1"],
            "TaskGroups": [group]}
    if jtype == "service":
        body["Update"] = {"MaxParallel": count, "MinHealthyTime": SECOND // 2,
                          "HealthyDeadline": 30 * SECOND, "ProgressDeadline": 60 * SECOND}
    return {"Job": body}


def put(agent, path: str, body: dict | None = None, status: int = 200):
    r = httpx.put(agent.url + path, json=body, timeout=10)
    assert r.status_code == status, (path, r.status_code, r.text)
    return r.json() if status == 200 else r.text


def nodes_named(agent, prefix: str) -> list[str]:
    return sorted(n["ID"] for n in get(agent, "/v1/nodes")
                  if n["Name"].startswith(prefix) and n["Status"] == "ready")


def live(agent, job_id: str) -> list[dict]:
    return [a for a in get(agent, f"/v1/job/{job_id}/allocations")
            if a["DesiredStatus"] == "run" and a["ClientStatus"] in ("pending", "running")]


def start_nodes(agent, sims, tmp_path, prefix: str, count: int) -> list[str]:
    sims.append(NodeSim(tmp_path, prefix, agent.rpc, "-count", str(count), "-cpu", "4000",
                        "-memory", "4096", "-drivers", "mock"))
    return wait_until(lambda: len(nodes_named(agent, prefix)) == count and
                      nodes_named(agent, prefix), 20, f"{count} {prefix} nodes")


def messages(node: dict) -> list[str]:
    return [ev["Message"] for ev in node["Events"] or ()]


def test_drain_moves_a_service_one_at_a_time_then_completes(sim_agent, tmp_path):
    agent, sims = sim_agent
    [a] = start_nodes(agent, sims, tmp_path, "a", 1)
    put(agent, "/v1/jobs", job("web", 3, migrate={"MaxParallel": 1, "HealthCheck": "task_states",
                                                 "MinHealthyTime": SECOND,
                                                 "HealthyDeadline": 30 * SECOND}))
    wait_until(lambda: len([x for x in live(agent, "web") if x["ClientStatus"] == "running"])
               == 3, 20, "3 running allocations on node a")
    original = {x["ID"] for x in live(agent, "web")}
    others = start_nodes(agent, sims, tmp_path, "b", 2)

    r = put(agent, f"/v1/node/{a}/drain", {"DrainSpec": {"Deadline": 0}, "Meta": {"why": "test"}})
    assert r["NodeModifyIndex"] > 0 and r["Index"] == r["NodeModifyIndex"]
    node = get(agent, f"/v1/node/{a}")
    assert node["Drain"] is True and node["SchedulingEligibility"] == "ineligible"
    assert node["DrainStrategy"]["Deadline"] == 0
    assert node["DrainStrategy"]["ForceDeadline"] == "0001-01-01T00:00:00Z"
    assert node["DrainStrategy"]["StartedAt"] > "2000"
    assert node["LastDrain"]["Status"] == "draining" and node["LastDrain"]["Meta"] == {"why": "test"}
    assert messages(node)[-1] == "Node drain strategy set"
    assert [n["Drain"] for n in get(agent, "/v1/nodes") if n["ID"] == a] == [True]

    def done():
        n = get(agent, f"/v1/node/{a}")
        return n if n["LastDrain"]["Status"] == "complete" else None
    node = wait_until(done, 60, "the drain to complete")
    assert node["DrainStrategy"] is None and node["Drain"] is False
    assert node["SchedulingEligibility"] == "ineligible"
    assert messages(node)[-2:] == ["Node drain strategy set", "Node drain complete"]
    assert node["Events"][-1]["Subsystem"] == "Drain"

    now = live(agent, "web")
    assert len(now) == 3 and {x["NodeID"] for x in now} <= set(others)
    moved = [get(agent, f"/v1/allocation/{x['ID']}") for x in now]
    old = [get(agent, f"/v1/allocation/{i}") for i in sorted(original)]
    assert all(x["DesiredTransition"]["Migrate"] is True and x["DesiredStatus"] == "stop"
               and x["DesiredDescription"] == "alloc is being migrated" for x in old)
    assert sorted(x["PreviousAllocation"] for x in moved) == sorted(original)
    # MaxParallel 1: each replacement was placed only after the one before it was healthy
    moved.sort(key=lambda x: x["CreateIndex"])
    for before, after in zip(moved, moved[1:]):
        assert before["DeploymentStatus"]["Healthy"] is True
        assert after["CreateIndex"] > before["DeploymentStatus"]["ModifyIndex"]
    evals = get(agent, "/v1/job/web/evaluations")
    assert len([e for e in evals if e["TriggeredBy"] == "node-drain"]) == 3


def test_a_batch_alloc_stays_until_the_deadline_forces_it_off(sim_agent, tmp_path):
    agent, sims = sim_agent
    [a] = start_nodes(agent, sims, tmp_path, "a", 1)
    put(agent, "/v1/jobs", job("crunch", 1, jtype="batch"))
    put(agent, "/v1/jobs", job("sys", 1, jtype="system"))
    wait_until(lambda: len(live(agent, "crunch")) == 1 and len(live(agent, "sys")) == 1,
               20, "a batch and a system allocation on node a")
    [b] = start_nodes(agent, sims, tmp_path, "b", 1)
    wait_until(lambda: len(live(agent, "sys")) == 2, 20, "the system job on node b too")
    [batch_alloc] = live(agent, "crunch")

    started = time.monotonic()
    put(agent, f"/v1/node/{a}/drain", {"DrainSpec": {"Deadline": 3 * SECOND,
                                                    "IgnoreSystemJobs": True}})
    force = get(agent, f"/v1/node/{a}")["DrainStrategy"]["ForceDeadline"]
    assert force > "2000"
    time.sleep(1.0)   # well before the deadline: the batch allocation is left to run
    assert [x["ID"] for x in live(agent, "crunch")] == [batch_alloc["ID"]]
    assert get(agent, f"/v1/node/{a}")["LastDrain"]["Status"] == "draining"

    def done():
        n = get(agent, f"/v1/node/{a}")
        return n if n["LastDrain"]["Status"] == "complete" else None
    node = wait_until(done, 30, "the drain to be forced complete")
    assert time.monotonic() - started >= 2.5
    assert node["Events"][-1]["Message"] == "Node drain complete"
    assert node["Events"][-1]["Details"] == {"deadline_reached": "true"}
    wait_until(lambda: [x["NodeID"] for x in live(agent, "crunch")] == [b], 20,
               "the batch allocation replaced on node b")
    assert get(agent, f"/v1/allocation/{batch_alloc['ID']}")["DesiredTransition"]["Migrate"]
    # IgnoreSystemJobs: the system allocation stays on the drained node
    assert sorted(x["NodeID"] for x in live(agent, "sys")) == sorted([a, b])


def test_eligibility_toggles_placement_and_evaluate_makes_evals(sim_agent, tmp_path):
    agent, sims = sim_agent
    a, b = start_nodes(agent, sims, tmp_path, "n", 2)
    put(agent, "/v1/jobs", job("first", 2))
    wait_until(lambda: len(live(agent, "first")) == 2, 20, "2 allocations")
    before = {x["ID"]: x["NodeID"] for x in live(agent, "first")}

    assert "invalid scheduling eligibility" in put(
        agent, f"/v1/node/{a}/eligibility", {"Eligibility": "maybe"}, status=400)
    assert put(agent, f"/v1/node/{'0' * 36}/eligibility", {"Eligibility": "ineligible"},
               status=404) == "node not found"
    r = put(agent, f"/v1/node/{a}/eligibility", {"Eligibility": "ineligible"})
    assert r["NodeModifyIndex"] > 0 and r["EvalIDs"] is None
    node = get(agent, f"/v1/node/{a}")
    assert node["SchedulingEligibility"] == "ineligible" and node["Drain"] is False
    assert messages(node)[0] == "Node registered"
    assert messages(node)[-1] == "Node marked as ineligible for scheduling"

    put(agent, "/v1/jobs", job("second", 3))
    wait_until(lambda: len(live(agent, "second")) == 3, 20, "3 allocations of the second job")
    assert {x["NodeID"] for x in live(agent, "second")} == {b}
    # the running allocations stay where they are
    assert {x["ID"]: x["NodeID"] for x in live(agent, "first")} == before

    r = put(agent, f"/v1/node/{b}/evaluate")
    assert len(r["EvalIDs"]) == 2 and r["EvalCreateIndex"] > 0
    assert {get(agent, f"/v1/evaluation/{i}")["JobID"] for i in r["EvalIDs"]} == {"first", "second"}
    assert all(get(agent, f"/v1/evaluation/{i}")["TriggeredBy"] == "node-update"
               for i in r["EvalIDs"])

    # eligible again: it takes placements again (and gets evals for its jobs)
    r = put(agent, f"/v1/node/{a}/eligibility", {"Eligibility": "eligible"})
    assert r["EvalIDs"]
    node = get(agent, f"/v1/node/{a}")
    assert node["SchedulingEligibility"] == "eligible"
    assert messages(node)[-1] == "Node marked as eligible for scheduling"
    put(agent, "/v1/jobs", job("third", 6))
    wait_until(lambda: len(live(agent, "third")) == 6, 20, "6 allocations of the third job")
    assert a in {x["NodeID"] for x in live(agent, "third")}

    # a draining node cannot be made eligible; cancelling with MarkEligible can
    put(agent, f"/v1/node/{a}/drain", {"DrainSpec": {"Deadline": 60 * SECOND}})
    assert put(agent, f"/v1/node/{a}/eligibility", {"Eligibility": "eligible"}, status=400) == \
        "can not set node's scheduling eligibility to eligible while it is draining"
    r = put(agent, f"/v1/node/{a}/drain", {"DrainSpec": None, "MarkEligible": True})
    node = get(agent, f"/v1/node/{a}")
    assert node["DrainStrategy"] is None and node["SchedulingEligibility"] == "eligible"
    assert node["LastDrain"]["Status"] == "canceled"
    assert messages(node)[-1] == "Node drain disabled"
    assert put(agent, f"/v1/node/{a}/drain", {"DrainSpec": {"Deadline": "soon"}},
               status=400).startswith("Invalid drain request")


def test_purge_deregisters_the_node_and_its_allocs_are_replaced(sim_agent, tmp_path):
    agent, sims = sim_agent
    [a] = start_nodes(agent, sims, tmp_path, "a", 1)
    [b] = start_nodes(agent, sims, tmp_path, "b", 1)
    put(agent, "/v1/jobs", job("web", 4))
    wait_until(lambda: len(live(agent, "web")) == 4, 20, "4 allocations")
    on_a = [x["ID"] for x in live(agent, "web") if x["NodeID"] == a]
    assert on_a

    # the node's agent is gone (a live one would register again, as Nomad's does)
    sims[0].stop(signal.SIGKILL)
    r = put(agent, f"/v1/node/{a}/purge")
    assert r["EvalIDs"] and r["EvalCreateIndex"] > 0 and r["NodeModifyIndex"] > 0
    r404 = httpx.get(agent.url + f"/v1/node/{a}", timeout=10)
    assert r404.status_code == 404
    wait_until(lambda: all(get(agent, f"/v1/allocation/{i}")["ClientStatus"] == "lost"
                           for i in on_a), 20, "the purged node's allocations lost")
    wait_until(lambda: len(live(agent, "web")) == 4 and
               {x["NodeID"] for x in live(agent, "web")} == {b}, 20,
               "replacements on the other node")


def test_the_cli_drains_a_node_and_follows_the_drain_to_its_end(sim_agent, tmp_path):
    agent, sims = sim_agent
    [a] = start_nodes(agent, sims, tmp_path, "a", 1)
    put(agent, "/v1/jobs", job("web", 2, migrate={"MaxParallel": 2, "MinHealthyTime": SECOND // 2,
                                                 "HealthCheck": "task_states"}))
    wait_until(lambda: len(live(agent, "web")) == 2, 20, "2 allocations")
    [b] = start_nodes(agent, sims, tmp_path, "b", 1)

    def caravan(*args: str) -> subprocess.CompletedProcess:
        return subprocess.run([sys.executable, "-m", "caravan", "node", *args,
                               "-address", agent.url], cwd=ROOT, capture_output=True,
                              text=True, timeout=60)

    assert "Either the '-enable' or '-disable' flag must be set" in caravan("drain", a[:8]).stderr
    done = caravan("drain", "-enable", "-yes", "-no-deadline", "-m", "maintenance", a[:8])
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == [f'Node "{a}" drain strategy set',
                                        f'Drain complete for node "{a}"']
    node = get(agent, f"/v1/node/{a}")
    assert node["LastDrain"]["Meta"] == {"message": "maintenance"}
    assert {x["NodeID"] for x in live(agent, "web")} == {b}
    out = caravan("eligibility", "-enable", a)
    assert out.returncode == 0 and out.stdout.strip() == \
        f'Node "{a}" scheduling eligibility set: eligible for scheduling'
    assert get(agent, f"/v1/node/{a}")["SchedulingEligibility"] == "eligible"
