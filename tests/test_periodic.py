"""Periodic jobs end to end: real agents, simulated nodes, seconds-level cron specs.

Launch times are checked through the children's IDs (``<parent>/periodic-<slot>``),
which name the cron slot each child was launched for, and their ``SubmitTime``."""
from __future__ import annotations

import time

import httpx
import pytest

from tests.http.helpers import enc, periodic_job
from tests.procs import Cluster, wait_until
from tests.test_scheduling import NodeSim

S = 1_000_000_000


def every(seconds: int, job_id: str, overlap: bool = False) -> dict:
    """A periodic batch job firing every ``seconds`` (cronexpr's 7-field form)."""
    return {"Job": periodic_job(job_id, Periodic={
        "Spec": f"*/{seconds} * * * * * *", "ProhibitOverlap": overlap})}


def get(server, path, **params):
    r = httpx.get(server.url + path, params=params, timeout=10)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def post(server, path, body=None):
    r = httpx.post(server.url + path, json=body, timeout=15)
    assert r.status_code == 200, (path, r.status_code, r.text)
    return r.json()


def children(server, parent: str, **params) -> list[dict]:
    return sorted((j for j in get(server, "/v1/jobs", prefix=f"{parent}/periodic-", **params)
                   if j["ParentID"] == parent), key=lambda j: j["ID"])


def slot_of(child: dict) -> int:
    return int(child["ID"].rsplit("-", 1)[1])


@pytest.fixture
def agent(sim_agent):
    return sim_agent


def test_seconds_schedule_launches_on_time_and_stopping_the_parent_stops_it(agent):
    server, _ = agent
    post(server, "/v1/jobs", every(2, "tick"))
    registered = get(server, "/v1/job/tick")["SubmitTime"]
    plan = post(server, "/v1/job/tick/plan", every(2, "tick"))
    assert plan["NextPeriodicLaunch"] != "0001-01-01T00:00:00Z"

    kids = wait_until(lambda: (lambda k: k if len(k) >= 3 else None)(children(server, "tick")),
                      20, "three periodic children")
    slots = [slot_of(k) for k in kids]
    assert all(s % 2 == 0 for s in slots), slots
    assert slots == list(range(slots[0], slots[0] + 2 * len(slots), 2)), "a slot was missed"
    assert slots[0] * S > registered and slots[0] * S - registered <= 2 * S, \
        "the first launch is the first slot after registration"
    for kid in kids:
        # launched at its slot, before the next one was due
        assert slot_of(kid) * S <= kid["SubmitTime"] < (slot_of(kid) + 2) * S, kid
        evals = get(server, f"/v1/job/{enc(kid['ID'])}/evaluations")
        assert [e["TriggeredBy"] for e in evals].count("periodic-job") == 1
        assert get(server, f"/v1/job/{enc(kid['ID'])}")["Periodic"] is None
    summary = get(server, "/v1/job/tick/summary")["Children"]
    assert summary["Pending"] + summary["Running"] + summary["Dead"] >= 3

    # stop the parent: a second periodic job proves two more slots passed without launches
    r = httpx.delete(server.url + "/v1/job/tick", timeout=10)
    assert r.status_code == 200
    stopped_with = {k["ID"] for k in children(server, "tick")}
    post(server, "/v1/jobs", every(1, "marker"))
    wait_until(lambda: len(children(server, "marker")) >= 3, 20, "three marker launches")
    assert {k["ID"] for k in children(server, "tick")} == stopped_with


def test_prohibit_overlap_never_runs_two_and_force_still_launches(agent, tmp_path):
    server, sims = agent
    sims.append(NodeSim(tmp_path, "n", server.rpc, "-count", "1", "-drivers", "docker"))
    wait_until(lambda: [n for n in get(server, "/v1/nodes") if n["Status"] == "ready"],
               20, "a ready node")
    post(server, "/v1/jobs", every(1, "solo", overlap=True))
    first = wait_until(lambda: next((k for k in children(server, "solo")
                                     if k["Status"] == "running"), None),
                       20, "the first child running on the simulated node")

    # while it runs, later slots are skipped: the marker sees three slots go by
    post(server, "/v1/jobs", every(1, "marker"))
    wait_until(lambda: len(children(server, "marker")) >= 3, 20, "three marker launches")
    assert [k["ID"] for k in children(server, "solo")] == [first["ID"]]

    # force launches now even with ProhibitOverlap
    forced = post(server, "/v1/job/solo/periodic/force")
    assert forced["EvalID"]
    assert len(children(server, "solo")) == 2

    # stop both children: the next slot launches a new one, and only one
    stopped = {k["ID"] for k in children(server, "solo")}
    for kid in stopped:
        r = httpx.delete(server.url + f"/v1/job/{enc(kid)}", timeout=10)
        assert r.status_code == 200
    fresh = wait_until(lambda: [k for k in children(server, "solo") if k["ID"] not in stopped],
                       20, "a new scheduled child after the old ones stopped")
    assert all(k["Status"] == "dead" for k in children(server, "solo") if k["ID"] in stopped)
    wait_until(lambda: get(server, f"/v1/job/{enc(fresh[0]['ID'])}")["Status"] == "running",
               20, "the new child running")
    marker_now = len(children(server, "marker"))
    wait_until(lambda: len(children(server, "marker")) >= marker_now + 2, 20,
               "two more marker launches")
    unfinished = [k for k in children(server, "solo") if k["Status"] != "dead"]
    assert [k["ID"] for k in unfinished] == [fresh[0]["ID"]], unfinished


@pytest.mark.slow
def test_schedule_survives_leader_kill_without_missed_or_doubled_launch(cluster: Cluster):
    # longer than a failover here (about 1-3 s: election, then the new leader's barrier),
    # so no two slots fall due while nobody leads (those would be caught up as one)
    period = 6
    leader = cluster.leader()
    post(leader, "/v1/jobs", every(period, "beat"))
    wait_until(lambda: len(children(leader, "beat")) >= 2, 30, "two launches before the kill")
    # kill the leader just before a slot falls due, the worst moment
    next_slot = (time.time_ns() // (period * S) + 1) * period * S
    wait_until(lambda: time.time_ns() >= next_slot - S // 2, 2 * period, "the eve of a slot")
    killed_at = time.time_ns()
    leader.kill()
    survivor = next(s for s in cluster.servers if s.alive())
    wait_until(lambda: len([k for k in children(survivor, "beat")
                            if slot_of(k) * S > killed_at]) >= 2, 60,
               "two launches after the kill")
    kids = children(survivor, "beat")
    slots = [slot_of(k) for k in kids]
    expected = list(range(slots[0], slots[-1] + period, period))
    assert slots == expected, f"missed or extra launches: {slots} (killed at {killed_at / S})"
    for kid in kids:
        evals = get(survivor, f"/v1/job/{enc(kid['ID'])}/evaluations")
        launches = [e for e in evals if e["TriggeredBy"] == "periodic-job"]
        assert len(launches) == 1, f"{kid['ID']} launched twice: {evals}"
    # the restarted server agrees
    leader.start()
    leader.wait_healthy()
    assert [slot_of(k) for k in children(leader, "beat") if slot_of(k) <= slots[-1]] == slots
