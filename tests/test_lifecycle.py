"""Task lifecycle hooks end to end: a real `caravan agent -dev` runs raw_exec tasks with
``lifecycle`` blocks, and the tests read the order back from task events (their
timestamps), from files the tasks write, and from the processes left running."""
from __future__ import annotations

import uuid

import pytest

from tests.procs import dev_with_client, wait_until
from tests.test_client import FAST_RESTARTS, allocs_of, event_types, full_alloc, job, processes_with, shell, wait_allocs

SEC = 1_000_000_000


def hook(task: dict, name: str, sidecar: bool = False) -> dict:
    return {**task, "Lifecycle": {"Hook": name, "Sidecar": sidecar}}


def event_time(alloc: dict, task: str, kind: str, last: bool = False) -> int:
    times = [e["Time"] for e in alloc["TaskStates"][task]["Events"] if e["Type"] == kind]
    assert times, f"{task} has no {kind} event: {event_types(alloc, task)}"
    return times[-1] if last else times[0]


def alloc_dir_file(tmp, alloc_id: str, name: str) -> str:
    """A file the tasks wrote into the allocation's shared ``alloc/data`` directory."""
    matches = list((tmp / "dev").rglob(f"{alloc_id}/alloc/data/{name}"))
    assert matches, f"{name} not written"
    return matches[0].read_text()


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("lifecycle-dev")
    with dev_with_client(tmp) as (http, agent):
        yield http, tmp


def test_prestart_runs_to_completion_before_main_then_poststart_and_poststop(dev):
    http, tmp = dev
    jid = f"order-{uuid.uuid4().hex[:6]}"
    log = "$NOMAD_ALLOC_DIR/data/order"
    tasks = [
        hook(shell("init", f"echo init-start >> {log}; sleep 1.5; echo init-end >> {log}"),
             "prestart"),
        shell("main", f"test -f {log} && grep -q init-end {log} && echo main >> {log}; "
                      f"sleep 1; echo main-end >> {log}"),
        hook(shell("announce", f"echo poststart >> {log}"), "poststart"),
        hook(shell("cleanup", f"echo poststop >> {log}"), "poststop"),
    ]
    http.post("/v1/jobs", json=job(jid, tasks)).raise_for_status()

    # While the prestart task runs, the main task is pending with no Started event.
    def init_running():
        allocs = allocs_of(http, jid)
        if not allocs:
            return None
        alloc = full_alloc(http, allocs[0]["ID"])
        states = alloc.get("TaskStates") or {}
        return alloc if states.get("init", {}).get("State") == "running" else None
    alloc = wait_until(init_running, 30, "the prestart task to run")
    for name in ("main", "announce", "cleanup"):
        assert alloc["TaskStates"][name]["State"] == "pending"
        assert event_types(alloc, name) == ["Received"], name

    allocs = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "complete",
                         timeout=60, what="the alloc to complete")
    alloc = full_alloc(http, allocs[0]["ID"])
    for name in ("init", "main", "announce", "cleanup"):
        st = alloc["TaskStates"][name]
        assert (st["State"], st["Failed"]) == ("dead", False), (name, st)
    # prestart done before main set up; poststart after main started; poststop last
    assert event_time(alloc, "init", "Terminated") <= event_time(alloc, "main", "Task Setup")
    assert event_time(alloc, "main", "Started") <= event_time(alloc, "announce", "Task Setup")
    assert event_time(alloc, "main", "Terminated") <= event_time(alloc, "cleanup", "Task Setup")
    assert event_time(alloc, "announce", "Terminated") <= \
        event_time(alloc, "cleanup", "Task Setup")
    lines = alloc_dir_file(tmp, alloc["ID"], "order").split()
    # the prestart task finished before the main task began; the poststart task starts
    # once the main task has started, so the two may write in either order
    assert lines[:2] == ["init-start", "init-end"]
    assert sorted(lines[2:4]) == ["main", "poststart"]
    assert lines[-1] == "poststop" and lines.index("poststart") < lines.index("main-end")
    # ephemeral tasks of a batch job are not restarted after success
    assert all(alloc["TaskStates"][n]["Restarts"] == 0 for n in ("init", "announce"))


def test_prestart_sidecar_keeps_running_and_is_killed_when_main_tasks_end(dev):
    http, tmp = dev
    jid = f"sidecar-{uuid.uuid4().hex[:6]}"
    marker = f"sleep 3101.{uuid.uuid4().int % 1000}"
    tasks = [hook(shell("proxy", f"exec {marker}", KillTimeout=SEC), "prestart", sidecar=True),
             shell("main", "sleep 1.5")]
    http.post("/v1/jobs", json=job(jid, tasks)).raise_for_status()

    def both_running():
        allocs = allocs_of(http, jid)
        if not allocs:
            return None
        states = full_alloc(http, allocs[0]["ID"]).get("TaskStates") or {}
        return all(states.get(n, {}).get("State") == "running" for n in ("proxy", "main"))
    wait_until(both_running, 30, "the sidecar and the main task to run together")
    assert len(processes_with(marker)) == 1

    allocs = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "complete",
                         timeout=30, what="the alloc to complete")
    alloc = full_alloc(http, allocs[0]["ID"])
    assert event_time(alloc, "proxy", "Started") <= event_time(alloc, "main", "Task Setup")
    assert event_types(alloc, "proxy")[-3:] == ["Main Tasks Dead", "Killing", "Killed"]
    dead = next(e for e in alloc["TaskStates"]["proxy"]["Events"]
                if e["Type"] == "Main Tasks Dead")
    assert dead["DisplayMessage"] == "Main tasks in the group died"
    assert event_time(alloc, "main", "Terminated") <= event_time(alloc, "proxy", "Killing")
    assert alloc["TaskStates"]["proxy"]["Failed"] is False
    wait_until(lambda: processes_with(marker) == [], 10, "the sidecar's process to go")


def test_a_failed_prestart_task_fails_the_alloc_after_its_restarts(dev):
    http, tmp = dev
    jid = f"prefail-{uuid.uuid4().hex[:6]}"
    tasks = [hook(shell("init", "exit 3"), "prestart"),
             shell("main", "echo never > $NOMAD_ALLOC_DIR/data/main"),
             hook(shell("cleanup", "echo ran > $NOMAD_ALLOC_DIR/data/cleanup"), "poststop")]
    http.post("/v1/jobs", json=job(jid, tasks, restart={**FAST_RESTARTS, "Attempts": 1})
              ).raise_for_status()
    allocs = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "failed",
                         timeout=30, what="the alloc to fail")
    alloc = full_alloc(http, allocs[0]["ID"])
    init = alloc["TaskStates"]["init"]
    assert init["Failed"] is True and init["Restarts"] == 1
    assert event_types(alloc, "init")[-2:] == ["Terminated", "Not Restarting"]
    main = alloc["TaskStates"]["main"]
    assert main["State"] == "dead" and main["Failed"] is False
    assert event_types(alloc, "main") == ["Received", "Sibling Task Failed"]   # never started
    # the poststop task still runs once the others are dead, as in Nomad
    wait_until(lambda: full_alloc(http, alloc["ID"])["TaskStates"]["cleanup"]["State"] == "dead",
               30, "the poststop task to finish")
    assert alloc_dir_file(tmp, alloc["ID"], "cleanup").strip() == "ran"
    assert not list((tmp / "dev").rglob(f"{alloc['ID']}/alloc/data/main"))


def test_poststop_runs_when_the_job_is_stopped(dev):
    http, tmp = dev
    jid = f"poststop-{uuid.uuid4().hex[:6]}"
    tasks = [shell("web", "exec sleep 3102", KillTimeout=SEC),
             hook(shell("flush", "sleep 0.3; echo flushed > $NOMAD_ALLOC_DIR/data/flush"),
                  "poststop")]
    http.post("/v1/jobs", json=job(jid, tasks, type_="service")).raise_for_status()
    allocs = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "running",
                         timeout=30, what="the service to run")
    alloc = full_alloc(http, allocs[0]["ID"])
    assert alloc["TaskStates"]["flush"]["State"] == "pending"
    assert event_types(alloc, "flush") == ["Received"]

    assert http.delete(f"/v1/job/{jid}").status_code == 200
    allocs = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "complete",
                         timeout=30, what="the stopped alloc to complete")
    alloc = full_alloc(http, allocs[0]["ID"])
    assert event_types(alloc, "web")[-2:] == ["Killing", "Killed"]
    flush = alloc["TaskStates"]["flush"]
    assert (flush["State"], flush["Failed"]) == ("dead", False)
    assert event_time(alloc, "web", "Killed") <= event_time(alloc, "flush", "Started")
    assert alloc_dir_file(tmp, alloc["ID"], "flush").strip() == "flushed"


def test_a_dead_leader_kills_the_others_and_prestart_sidecars_last(dev):
    http, tmp = dev
    jid = f"leader-{uuid.uuid4().hex[:6]}"
    tasks = [hook(shell("proxy", "exec sleep 3103", KillTimeout=SEC), "prestart", sidecar=True),
             shell("lead", "sleep 1", Leader=True),
             shell("helper", "exec sleep 3104", KillTimeout=SEC)]
    http.post("/v1/jobs", json=job(jid, tasks)).raise_for_status()   # batch: lead ends
    allocs = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "complete",
                         timeout=30, what="the alloc to complete")
    alloc = full_alloc(http, allocs[0]["ID"])
    for name in ("proxy", "helper"):
        assert event_types(alloc, name)[-3:] == ["Leader Task Dead", "Killing", "Killed"], name
    assert event_time(alloc, "helper", "Killed") <= event_time(alloc, "proxy", "Killing")


@pytest.mark.parametrize("task, message", [
    ({"Lifecycle": {"Hook": "sometime"}}, "Lifecycle validation failed: invalid hook: sometime"),
    ({"VolumeMounts": [{"Volume": "data", "Destination": "/srv"}]},
     "has a volume mount (0) referencing undefined volume data"),
])
def test_bad_lifecycle_or_volume_mount_is_400(dev, task, message):
    http, _ = dev
    body = job(f"bad-{uuid.uuid4().hex[:6]}", [shell("t", "true", **task)])
    r = http.post("/v1/jobs", json=body)
    assert r.status_code == 400 and message in r.text, r.text
    r = http.post("/v1/jobs", json={"Job": {"ID": "x", "TaskGroups": [{"Name": "g", "Tasks": [
        {"Name": "t", "Driver": "raw_exec", "Lifecycle": {"Hook": 7}}]}]}})
    assert r.status_code == 400 and "Hook" in r.text, r.text


def test_deployment_health_ignores_finished_prestart_and_pending_poststop_tasks(dev):
    http, _ = dev
    jid = f"deploy-{uuid.uuid4().hex[:6]}"
    tasks = [hook(shell("init", "true"), "prestart"),
             shell("web", "exec sleep 3105", KillTimeout=SEC),
             hook(shell("cleanup", "true"), "poststop")]
    update = {"MaxParallel": 1, "HealthCheck": "task_states", "MinHealthyTime": SEC // 2,
              "HealthyDeadline": 30 * SEC, "ProgressDeadline": 60 * SEC}
    http.post("/v1/jobs", json=job(jid, tasks, type_="service", Update=update)
              ).raise_for_status()

    def healthy():
        allocs = allocs_of(http, jid)
        status = allocs[0].get("DeploymentStatus") if allocs else None
        return allocs if status and status.get("Healthy") is not None else None
    (alloc,) = wait_until(healthy, 30, "the alloc's deployment health")
    assert alloc["DeploymentStatus"]["Healthy"] is True
    deployment = http.get(f"/v1/job/{jid}/deployment").json()
    wait_until(lambda: http.get(f"/v1/deployment/{deployment['ID']}").json()["Status"] ==
               "successful", 30, "the deployment to succeed")
    assert http.delete(f"/v1/job/{jid}").status_code == 200
    wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "complete", timeout=30)
