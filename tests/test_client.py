"""Client agents end to end: a real `caravan agent -dev` (server and client in one
process) and a cluster with two client-agent processes, driven through the HTTP API
only. Tasks are real child processes (raw_exec) or the mock driver."""
from __future__ import annotations

import hashlib
import os
import signal
import uuid

import httpx
import pytest

from tests.procs import dev_with_client, make_cluster, wait_until

SEC = 1_000_000_000
FAST_RESTARTS = {"Attempts": 2, "Interval": 60 * SEC, "Delay": 100_000_000, "Mode": "fail"}


def processes_with(marker: str) -> list[int]:
    """Pids of live processes whose command line starts with ``marker``."""
    pids = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace")
            with open(f"/proc/{entry}/stat") as f:
                zombie = f.read().rsplit(")", 1)[1].split()[0] == "Z"
        except OSError:
            continue
        if cmdline.startswith(marker) and not zombie:
            pids.append(int(entry))
    return pids


def job(job_id: str, tasks: list[dict], *, type_: str = "batch", count: int = 1,
        restart: dict | None = None, **extra) -> dict:
    return {"Job": {"ID": job_id, "Type": type_, "Datacenters": ["dc1"], **extra,
                    "TaskGroups": [{"Name": "g", "Count": count,
                                    "RestartPolicy": restart or FAST_RESTARTS,
                                    "Tasks": tasks}]}}


def shell(name: str, script: str, **extra) -> dict:
    return {"Name": name, "Driver": "raw_exec",
            "Config": {"command": "/bin/sh", "args": ["-c", script]},
            "Resources": {"CPU": 100, "MemoryMB": 64}, **extra}


def allocs_of(http: httpx.Client, job_id: str) -> list[dict]:
    r = http.get(f"/v1/job/{job_id}/allocations")
    r.raise_for_status()
    return r.json()


def wait_allocs(http, job_id: str, check, timeout: float = 30, what: str = ""):
    def ready():
        allocs = allocs_of(http, job_id)
        return allocs if allocs and check(allocs) else None
    return wait_until(ready, timeout, what or f"allocations of {job_id}")


def full_alloc(http, alloc_id: str) -> dict:
    r = http.get(f"/v1/allocation/{alloc_id}")
    r.raise_for_status()
    return r.json()


def event_types(alloc: dict, task: str) -> list[str]:
    return [e["Type"] for e in alloc["TaskStates"][task]["Events"]]


def logs(http, alloc_id: str, task: str, kind: str = "stdout", **params) -> str:
    r = http.get(f"/v1/client/fs/logs/{alloc_id}",
                 params={"task": task, "type": kind, "plain": "true", **params})
    assert r.status_code == 200, r.text
    return r.text


# --- one dev agent: server and client in one process ---------------------------------------


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("client-dev")
    with dev_with_client(tmp) as (http, agent):
        yield http, tmp


def test_dev_node_is_fingerprinted(dev):
    http, _ = dev
    node_id = http.get("/v1/nodes").json()[0]["ID"]
    node = http.get(f"/v1/node/{node_id}").json()
    attrs = node["Attributes"]
    assert attrs["kernel.name"] == "linux"
    assert "SIGTERM" in attrs["os.signals"].split(",")
    assert attrs["unique.hostname"]
    assert int(attrs["cpu.numcores"]) == os.cpu_count()
    assert attrs["driver.raw_exec"] == "1" and attrs["driver.mock"] == "1"
    res = node["NodeResources"]
    assert res["Cpu"]["CpuShares"] >= 1000 * 0 + int(attrs["cpu.numcores"])
    assert res["Memory"]["MemoryMB"] > 0 and res["Disk"]["DiskMB"] > 0
    assert res["Networks"][0]["IP"] == "127.0.0.1"
    assert sorted(node["Drivers"]) == sorted(d for d in ("mock", "raw_exec", "docker")
                                             if f"driver.{d}" in attrs)


def test_raw_exec_batch_job_writes_a_file_and_completes(dev):
    http, tmp = dev
    jid = f"batch-{uuid.uuid4().hex[:6]}"
    script = ('echo "hello from $NOMAD_TASK_NAME in $NOMAD_JOB_NAME"; echo oops >&2; '
              'echo "$NOMAD_ALLOC_INDEX" > "$NOMAD_ALLOC_DIR/data/out.txt"')
    r = http.post("/v1/jobs", json=job(jid, [shell("writer", script)]))
    assert r.status_code == 200, r.text
    allocs = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "complete",
                         what="the batch alloc to complete")
    alloc = full_alloc(http, allocs[0]["ID"])
    state = alloc["TaskStates"]["writer"]
    assert state["State"] == "dead" and state["Failed"] is False
    assert event_types(alloc, "writer") == ["Received", "Task Setup", "Started", "Terminated"]
    assert state["Events"][-1]["ExitCode"] == 0
    out = tmp / "dev" / "client" / "alloc" / alloc["ID"] / "alloc" / "data" / "out.txt"
    assert out.read_text() == "0\n"
    summary = http.get(f"/v1/job/{jid}/summary").json()["Summary"]["g"]
    assert summary["Complete"] == 1 and summary["Running"] == 0
    wait_until(lambda: http.get(f"/v1/job/{jid}").json()["Status"] == "dead", 10,
               "the job to be dead")
    assert logs(http, alloc["ID"], "writer") == f"hello from writer in {jid}\n"
    assert logs(http, alloc["ID"], "writer", "stderr") == "oops\n"
    # the framed (non-plain) form, as Nomad's StreamFrame
    frames = http.get(f"/v1/client/fs/logs/{alloc['ID']}",
                      params={"task": "writer", "type": "stderr"}).json()
    assert frames["File"] == "alloc/logs/writer.stderr.0" and frames["Offset"] == 5


def test_logs_endpoint_errors(dev):
    http, _ = dev
    r = http.get(f"/v1/client/fs/logs/{uuid.uuid4()}", params={"task": "x", "type": "stdout"})
    assert r.status_code == 404 and "Unknown allocation" in r.text
    r = http.get(f"/v1/client/fs/logs/{uuid.uuid4()}", params={"type": "stdout"})
    assert r.status_code == 400 and "task" in r.text
    r = http.get(f"/v1/client/fs/logs/{uuid.uuid4()}", params={"task": "x", "type": "both"})
    assert r.status_code == 400 and "stdout/stderr" in r.text


def test_failing_task_restarts_per_policy_then_fails(dev):
    http, _ = dev
    jid = f"fail-{uuid.uuid4().hex[:6]}"
    http.post("/v1/jobs", json=job(jid, [shell("bad", "echo try; exit 1")])).raise_for_status()
    allocs = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "failed",
                         what="the alloc to fail")
    alloc = full_alloc(http, allocs[0]["ID"])
    state = alloc["TaskStates"]["bad"]
    assert state["State"] == "dead" and state["Failed"] is True and state["Restarts"] == 2
    types = event_types(alloc, "bad")
    assert types == ["Received", "Task Setup"] + ["Started", "Terminated", "Restarting"] * 2 + \
        ["Started", "Terminated", "Not Restarting"]
    last = state["Events"][-1]
    assert last["FailsTask"] is True
    assert last["RestartReason"] == ('Exceeded allowed attempts 2 in interval 1m0s and mode '
                                     'is "fail"')
    assert logs(http, alloc["ID"], "bad") == "try\n" * 3
    summary = http.get(f"/v1/job/{jid}/summary").json()["Summary"]["g"]
    assert summary["Failed"] == 1


def test_bad_command_is_a_driver_failure(dev):
    http, _ = dev
    jid = f"nocmd-{uuid.uuid4().hex[:6]}"
    task = {"Name": "t", "Driver": "raw_exec", "Config": {"command": "no-such-command-xyz"}}
    http.post("/v1/jobs", json=job(jid, [task], restart={**FAST_RESTARTS, "Attempts": 1})
              ).raise_for_status()
    allocs = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "failed")
    alloc = full_alloc(http, allocs[0]["ID"])
    events = alloc["TaskStates"]["t"]["Events"]
    failures = [e for e in events if e["Type"] == "Driver Failure"]
    assert len(failures) == 2   # the first start and one restart, then the policy says no
    assert 'exec: "no-such-command-xyz": executable file not found in $PATH' in \
        failures[0]["DriverError"]
    assert failures[0]["DisplayMessage"] == failures[0]["DriverError"]
    assert events[-1]["Type"] == "Not Restarting"


def test_mock_driver(dev):
    http, _ = dev
    jid = f"mock-{uuid.uuid4().hex[:6]}"
    tasks = [{"Name": "ok", "Driver": "mock", "Config": {"run_for": "50ms",
                                                          "stdout_string": "mocked\n"}}]
    http.post("/v1/jobs", json=job(jid, tasks)).raise_for_status()
    allocs = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "complete")
    assert logs(http, allocs[0]["ID"], "ok") == "mocked\n"
    jid2 = f"mockerr-{uuid.uuid4().hex[:6]}"
    tasks = [{"Name": "boom", "Driver": "mock", "Config": {"start_error": "no can do"}}]
    http.post("/v1/jobs", json=job(jid2, tasks)).raise_for_status()
    allocs = wait_allocs(http, jid2, lambda a: a[0]["ClientStatus"] == "failed")
    alloc = full_alloc(http, allocs[0]["ID"])
    events = alloc["TaskStates"]["boom"]["Events"]
    assert [e["Type"] for e in events] == ["Received", "Task Setup", "Driver Failure",
                                           "Not Restarting"]
    assert events[-1]["RestartReason"] == "Error was unrecoverable"


def test_directories_of_allocations_the_servers_no_longer_hold_are_removed(dev):
    http, tmp = dev
    # what an agent that was down while the servers collected its allocation keeps
    stray = tmp / "dev" / "client" / "alloc" / str(uuid.uuid4())
    (stray / "alloc" / "logs").mkdir(parents=True)
    (stray / "alloc" / "logs" / "t.stdout.0").write_text("old output\n")
    jid = f"sweep-{uuid.uuid4().hex[:6]}"
    tasks = [{"Name": "ok", "Driver": "mock", "Config": {"run_for": "10ms"}}]
    http.post("/v1/jobs", json=job(jid, tasks)).raise_for_status()
    allocs = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "complete")
    wait_until(lambda: not stray.exists(), 30, "the stray allocation directory removed")
    # the finished allocation the servers still hold keeps its directory (and its logs)
    assert (tmp / "dev" / "client" / "alloc" / allocs[0]["ID"]).is_dir()


def test_sibling_failure_kills_the_others(dev):
    http, _ = dev
    jid = f"sib-{uuid.uuid4().hex[:6]}"
    marker = f"sleep 3001.{uuid.uuid4().int % 1000}"
    tasks = [shell("dies", "sleep 0.3; exit 2"), shell("waits", f"exec {marker}")]
    http.post("/v1/jobs", json=job(jid, tasks, restart={**FAST_RESTARTS, "Attempts": 0})
              ).raise_for_status()
    allocs = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "failed")
    alloc = full_alloc(http, allocs[0]["ID"])
    waits = event_types(alloc, "waits")
    assert waits[-3:] == ["Sibling Task Failed", "Killing", "Killed"]
    assert alloc["TaskStates"]["waits"]["Failed"] is False
    assert processes_with(marker) == []


def test_stopping_a_job_kills_its_processes(dev):
    http, _ = dev
    jid = f"svc-{uuid.uuid4().hex[:6]}"
    marker = f"sleep 3002.{uuid.uuid4().int % 1000}"
    # a process that starts a grandchild in the background: both must go
    script = f"{marker} & {marker} ; wait"
    http.post("/v1/jobs", json=job(jid, [shell("svc", script, KillTimeout=SEC)],
                                   type_="service", count=2)).raise_for_status()
    wait_allocs(http, jid, lambda a: len(a) == 2 and all(x["ClientStatus"] == "running"
                                                         for x in a))
    wait_until(lambda: len(processes_with(marker)) == 4, 10, "4 sleeping processes")
    r = http.delete(f"/v1/job/{jid}")
    assert r.status_code == 200
    allocs = wait_allocs(http, jid, lambda a: all(x["ClientStatus"] == "complete" for x in a),
                         what="the allocs to be complete")
    for a in allocs:
        alloc = full_alloc(http, a["ID"])
        assert event_types(alloc, "svc")[-2:] == ["Killing", "Killed"]
    wait_until(lambda: processes_with(marker) == [], 10, "no process left")


def test_dispatch_payload_templates_and_artifacts(dev, tmp_path):
    http, _ = dev
    artifact = tmp_path / "tool.txt"
    artifact.write_text("artifact contents\n")
    digest = hashlib.sha256(artifact.read_bytes()).hexdigest()
    parent = f"param-{uuid.uuid4().hex[:6]}"
    task = shell("reader", 'cat local/input.txt; echo; echo "meta=$NOMAD_META_color"; '
                           'cat local/tool.txt; cat local/conf.txt',
                 DispatchPayload={"File": "input.txt"},
                 Artifacts=[{"GetterSource": f"file://{artifact}",
                             "GetterOptions": {"checksum": f"sha256:{digest}"}}],
                 Templates=[{"EmbeddedTmpl": 'job={{ env "NOMAD_JOB_ID" }}\n',
                             "DestPath": "local/conf.txt"}])
    body = job(parent, [task], ParameterizedJob={"Payload": "required",
                                                 "MetaRequired": ["color"]})
    http.post("/v1/jobs", json=body).raise_for_status()
    import base64
    children = {}
    for color in ("red", "green", "blue"):
        r = http.post(f"/v1/job/{parent}/dispatch", json={
            "Payload": base64.b64encode(f"payload-{color}".encode()).decode(),
            "Meta": {"color": color}})
        assert r.status_code == 200, r.text
        children[color] = r.json()["DispatchedJobID"]
    for color, child in children.items():
        allocs = wait_allocs(http, child, lambda a: a[0]["ClientStatus"] == "complete",
                             what=f"child {color}")
        assert logs(http, allocs[0]["ID"], "reader") == (
            f"payload-{color}\nmeta={color}\nartifact contents\njob={child}\n")
    summary = http.get(f"/v1/job/{parent}/summary").json()
    wait_until(lambda: http.get(f"/v1/job/{parent}/summary").json()["Children"]["Dead"] == 3,
               10, "three dead children")
    assert summary["Children"]["Pending"] + summary["Children"]["Running"] + \
        summary["Children"]["Dead"] == 3


def test_artifact_that_escapes_the_alloc_dir_is_refused(dev, tmp_path):
    http, _ = dev
    jid = f"escape-{uuid.uuid4().hex[:6]}"
    task = shell("t", "true", Artifacts=[{"GetterSource": "file:///etc/hostname",
                                          "RelativeDest": "../../.."}])
    r = http.post("/v1/jobs", json=job(jid, [task]))
    assert r.status_code == 400 and "destination escapes allocation directory" in r.text
    assert http.get(f"/v1/job/{jid}").status_code == 404


def test_logs_follow_streams_until_the_task_ends(dev):
    http, _ = dev
    jid = f"follow-{uuid.uuid4().hex[:6]}"
    http.post("/v1/jobs", json=job(jid, [shell("t", "for i in 1 2 3; do echo line$i; "
                                                    "sleep 0.2; done")])).raise_for_status()
    allocs = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] in ("running", "complete"))
    with http.stream("GET", f"/v1/client/fs/logs/{allocs[0]['ID']}",
                     params={"task": "t", "type": "stdout", "plain": "true",
                             "follow": "true"}, timeout=20) as r:
        text = b"".join(r.iter_raw()).decode()
    assert text == "line1\nline2\nline3\n"


def test_a_job_that_needs_docker_fails_feasibility_without_it(dev):
    http, _ = dev
    node = http.get("/v1/nodes").json()[0]
    if "docker" in node["Drivers"]:
        pytest.skip("a docker engine answers on this host")
    jid = f"docker-{uuid.uuid4().hex[:6]}"
    task = {"Name": "redis", "Driver": "docker", "Config": {"image": "redis:7"}}
    http.post("/v1/jobs", json=job(jid, [task], type_="service")).raise_for_status()

    def failed_eval():
        for ev in http.get(f"/v1/job/{jid}/evaluations").json():
            if ev["Status"] == "complete" and ev.get("FailedTGAllocs"):
                return ev
    ev = wait_until(failed_eval, 10, "a failed placement")
    metric = ev["FailedTGAllocs"]["g"]
    assert metric["ConstraintFiltered"] == {"missing drivers": 1}


# --- a cluster with two client-agent processes ---------------------------------------------


@pytest.fixture
def two_clients(tmp_path, monkeypatch):
    monkeypatch.setenv("CARAVAN_HEARTBEAT_TTL", "1")
    monkeypatch.setenv("CARAVAN_HEARTBEAT_GRACE", "1")
    cluster = make_cluster(tmp_path, n=1, clients=2, client_toml=(
        'raw_exec = true\nreserved = { cpu = 150, memory = 128, reserved_ports = "22" }\n'
        'node_class = "worker"\nmeta = { rack = "r1" }'))
    cluster.start()
    http = httpx.Client(base_url=cluster.servers[0].url, timeout=10)
    try:
        wait_until(lambda: len([n for n in http.get("/v1/nodes").json()
                                if n["Status"] == "ready"]) == 2, 30, "two ready nodes")
        yield cluster, http
    finally:
        http.close()
        cluster.stop()


def test_service_job_spreads_over_two_clients_and_survives_losing_one(two_clients):
    cluster, http = two_clients
    marker = f"sleep 3003.{uuid.uuid4().int % 1000}"
    http.post("/v1/jobs", json=job("web", [shell("web", f"exec {marker}")], type_="service",
                                   count=3)).raise_for_status()
    allocs = wait_allocs(http, "web", lambda a: len(a) == 3 and all(
        x["ClientStatus"] == "running" for x in a), what="3 running allocs")
    nodes = {a["NodeID"] for a in allocs}
    assert len(nodes) == 2, "job anti-affinity spreads the allocations"
    node = http.get(f"/v1/node/{allocs[0]['NodeID']}").json()
    assert node["NodeClass"] == "worker" and node["Meta"] == {
        "rack": "r1", "connect.log_level": "info", "connect.proxy_concurrency": "1",
        "connect.sidecar_image": "envoyproxy/envoy:v${NOMAD_envoy_version}",
        "connect.gateway_image": "envoyproxy/envoy:v${NOMAD_envoy_version}"}
    assert node["ReservedResources"]["Cpu"]["CpuShares"] == 150
    assert node["ReservedResources"]["Memory"]["MemoryMB"] == 128
    assert node["ReservedResources"]["Networks"]["ReservedHostPorts"] == "22"
    assert len(processes_with(marker)) == 3
    # the logs of an allocation on another process are forwarded by the server
    assert logs(http, allocs[0]["ID"], "web") == ""

    victim = cluster.clients[0]
    victim_node = next(n["ID"] for n in http.get("/v1/nodes").json() if n["Name"] == "c1")
    on_victim = {a["ID"] for a in allocs if a["NodeID"] == victim_node}
    assert on_victim
    victim.kill(signal.SIGKILL)
    wait_until(lambda: http.get(f"/v1/node/{victim_node}").json()["Status"] == "down", 20,
               "the killed client's node to be down")

    def replaced(a):
        live = [x for x in a if x["ClientStatus"] == "running"]
        lost = [x for x in a if x["ID"] in on_victim and x["ClientStatus"] == "lost"]
        return len(live) == 3 and len(lost) == len(on_victim) and \
            all(x["NodeID"] != victim_node for x in live)
    wait_allocs(http, "web", replaced, timeout=30, what="lost allocations replaced")
    # the killed agent's tasks died with it (parent-death signal)
    wait_until(lambda: len(processes_with(marker)) == 3, 10, "only the 3 live copies")

    # it comes back as the same node, and does not run the lost allocations again
    victim.start()
    wait_until(lambda: http.get(f"/v1/node/{victim_node}").json()["Status"] == "ready", 30,
               "the client to come back")
    # a job pinned to it runs: its watch has delivered the node's allocations (the lost
    # ones included) since it came back, and it started none of those
    probe = f"sleep 3005.{uuid.uuid4().int % 1000}"
    pinned = job("probe", [shell("p", f"exec {probe}")], type_="service",
                 Constraints=[{"LTarget": "${node.unique.id}", "Operand": "=",
                               "RTarget": victim_node}])
    http.post("/v1/jobs", json=pinned).raise_for_status()
    wait_allocs(http, "probe", lambda a: a[0]["ClientStatus"] == "running",
                what="a job pinned to the returned client to run")
    allocs = allocs_of(http, "web")
    assert all(a["ClientStatus"] == "lost" for a in allocs if a["ID"] in on_victim)
    assert len(processes_with(marker)) == 3
    http.delete("/v1/job/web").raise_for_status()
    http.delete("/v1/job/probe").raise_for_status()
    wait_until(lambda: processes_with(marker) == [] and processes_with(probe) == [], 15,
               "no process left")


def test_a_server_failover_does_not_restart_running_tasks(tmp_path, monkeypatch):
    monkeypatch.setenv("CARAVAN_HEARTBEAT_TTL", "2")
    monkeypatch.setenv("CARAVAN_HEARTBEAT_GRACE", "2")
    cluster = make_cluster(tmp_path, n=3, clients=1, client_toml="raw_exec = true")
    cluster.start()
    marker = f"sleep 3004.{uuid.uuid4().int % 1000}"
    try:
        leader = cluster.leader()
        http = httpx.Client(base_url=leader.url, timeout=10)
        wait_until(lambda: [n for n in http.get("/v1/nodes").json() if n["Status"] == "ready"],
                   30, "the client's node")
        http.post("/v1/jobs", json=job("steady", [shell("s", f"exec {marker}")],
                                       type_="service")).raise_for_status()
        allocs = wait_allocs(http, "steady", lambda a: a[0]["ClientStatus"] == "running")
        before = full_alloc(http, allocs[0]["ID"])["TaskStates"]["s"]
        pids = processes_with(marker)
        assert len(pids) == 1
        http.close()

        leader.kill(signal.SIGKILL)
        new_leader = cluster.leader()
        assert new_leader is not leader
        http = httpx.Client(base_url=new_leader.url, timeout=10)
        # the client follows the new leader: its next job runs, its node stays ready
        http.post("/v1/jobs", json=job("after", [shell("a", "echo after")])).raise_for_status()
        wait_allocs(http, "after", lambda a: a[0]["ClientStatus"] == "complete", timeout=30,
                    what="a job placed after the failover to complete")
        node = http.get("/v1/nodes").json()[0]
        assert node["Status"] == "ready"
        after = full_alloc(http, allocs[0]["ID"])["TaskStates"]["s"]
        assert after["State"] == "running" and after["Restarts"] == 0, [
            (e["Type"], e["DisplayMessage"]) for e in after["Events"]]
        assert after["StartedAt"] == before["StartedAt"]
        assert processes_with(marker) == pids, "the running task was not restarted"
        http.delete("/v1/job/steady").raise_for_status()
        wait_until(lambda: processes_with(marker) == [], 15, "the task to be stopped")
        http.close()
    finally:
        cluster.stop()
        for pid in processes_with(marker):
            os.kill(pid, signal.SIGKILL)
