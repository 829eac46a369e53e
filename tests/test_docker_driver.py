"""The docker driver against a fake Docker Engine API (tests/fake_docker.py) on a unix
socket: fingerprinting, pulling, the container's spec (image, command, environment,
mounts, published ports, limits), its output in the task's logs, its exit code, and
the kill when the job stops. No docker engine is needed."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import uuid

import httpx
import pytest

from tests.procs import ROOT, dev_server, wait_until
from tests.test_client import allocs_of, full_alloc, logs, wait_allocs


@pytest.fixture
def docker_dev(tmp_path, monkeypatch):
    sock = tmp_path / "docker.sock"
    engine = subprocess.Popen([sys.executable, "-m", "tests.fake_docker", str(sock)], cwd=ROOT,
                              start_new_session=True)
    agent = None
    try:
        wait_until(sock.exists, 20, "the fake docker engine")
        monkeypatch.setenv("DOCKER_HOST", f"unix://{sock}")
        (tmp_path / "vol").mkdir()
        agent = dev_server(tmp_path, client=True,
                           extra_args=("-host-volume", f"shared={tmp_path / 'vol'}")).start()
        http = httpx.Client(base_url=agent.url, timeout=10)
        engine_http = httpx.Client(transport=httpx.HTTPTransport(uds=str(sock)),
                                   base_url="http://docker", timeout=10)
        wait_until(lambda: [n for n in http.get("/v1/nodes").json() if n["Status"] == "ready"],
                   30, "the dev client's node")
        yield http, engine_http
        http.close()
        engine_http.close()
    finally:
        if agent is not None:
            agent.stop()
        os.killpg(engine.pid, signal.SIGTERM)
        engine.wait(10)


def docker_job(job_id: str, cmd: list[str], type_="batch") -> dict:
    return {"Job": {"ID": job_id, "Type": type_, "Datacenters": ["dc1"], "TaskGroups": [{
        "Name": "g", "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
        "Tasks": [{"Name": "box", "Driver": "docker", "KillTimeout": 2_000_000_000,
                   "Env": {"GREETING": "hi"},
                   "Config": {"image": "alpine:3.19", "command": cmd[0], "args": cmd[1:],
                              "port_map": [{"db": 6379}]},
                   "Resources": {"CPU": 200, "MemoryMB": 64,
                                 "Networks": [{"MBits": 10,
                                               "DynamicPorts": [{"Label": "db"}]}]}}]}]}}


def test_docker_task_runs_in_a_container(docker_dev):
    http, engine = docker_dev
    node = http.get(f"/v1/node/{http.get('/v1/nodes').json()[0]['ID']}").json()
    assert node["Attributes"]["driver.docker"] == "1"
    assert node["Attributes"]["driver.docker.version"] == "24.0.0-fake"

    jid = f"box-{uuid.uuid4().hex[:6]}"
    http.post("/v1/jobs", json=docker_job(jid, ["echo", "hello", "box"])).raise_for_status()
    allocs = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "complete")
    alloc = full_alloc(http, allocs[0]["ID"])
    types = [e["Type"] for e in alloc["TaskStates"]["box"]["Events"]]
    assert types == ["Received", "Task Setup", "Driver", "Started", "Terminated"]
    assert logs(http, alloc["ID"], "box") == "hello box\n"

    state = engine.get("/fake/state").json()
    assert state["pulls"] == ["alpine:3.19"]
    spec = next(iter(state["containers"].values()))
    assert spec["Image"] == "alpine:3.19" and spec["Cmd"] == ["echo", "hello", "box"]
    env = dict(e.split("=", 1) for e in spec["Env"])
    assert env["NOMAD_ALLOC_ID"] == alloc["ID"] and env["GREETING"] == "hi"
    assert env["NOMAD_TASK_DIR"] == "/local" and "PATH" not in env
    assert any(b.endswith(":/alloc") for b in spec["HostConfig"]["Binds"])
    port = alloc["TaskResources"]["box"]["Networks"][0]["DynamicPorts"][0]["Value"]
    assert spec["HostConfig"]["PortBindings"]["6379/tcp"] == [{"HostIp": "127.0.0.1",
                                                               "HostPort": str(port)}]
    assert spec["HostConfig"]["Memory"] == 64 * 1024 * 1024
    assert spec["HostConfig"]["CpuShares"] == 200


def test_docker_exit_code_and_kill(docker_dev):
    http, engine = docker_dev
    failing = f"boxfail-{uuid.uuid4().hex[:6]}"
    http.post("/v1/jobs", json=docker_job(failing, ["fail", "3"])).raise_for_status()
    allocs = wait_allocs(http, failing, lambda a: a[0]["ClientStatus"] == "failed")
    events = full_alloc(http, allocs[0]["ID"])["TaskStates"]["box"]["Events"]
    assert [e["ExitCode"] for e in events if e["Type"] == "Terminated"] == [3]
    assert logs(http, allocs[0]["ID"], "box", "stderr") == "failing\n"

    sleeper = f"boxsleep-{uuid.uuid4().hex[:6]}"
    http.post("/v1/jobs", json=docker_job(sleeper, ["sleep", "1000"], type_="service")
              ).raise_for_status()
    wait_allocs(http, sleeper, lambda a: a[0]["ClientStatus"] == "running")
    http.delete(f"/v1/job/{sleeper}").raise_for_status()
    allocs = wait_allocs(http, sleeper, lambda a: a[0]["ClientStatus"] == "complete")
    assert [k[1] for k in engine.get("/fake/state").json()["kills"]] == ["SIGINT"]
    assert allocs_of(http, sleeper)[0]["DesiredStatus"] == "stop"


def test_docker_host_volumes_are_bind_mounts(docker_dev, tmp_path):
    http, engine = docker_dev
    jid = f"boxvol-{uuid.uuid4().hex[:6]}"
    body = docker_job(jid, ["echo", "mounted"])
    group = body["Job"]["TaskGroups"][0]
    group["Volumes"] = {"s": {"Type": "host", "Source": "shared"},
                        "r": {"Type": "host", "Source": "shared", "ReadOnly": True}}
    group["Tasks"][0]["VolumeMounts"] = [{"Volume": "s", "Destination": "/data"},
                                         {"Volume": "r", "Destination": "/conf"},
                                         {"Volume": "s", "Destination": "/ro", "ReadOnly": True}]
    http.post("/v1/jobs", json=body).raise_for_status()
    wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "complete")
    spec = next(c for c in engine.get("/fake/state").json()["containers"].values()
                if c["Cmd"] == ["echo", "mounted"])
    vol = os.path.realpath(tmp_path / "vol")
    binds = spec["HostConfig"]["Binds"]
    assert f"{vol}:/data" in binds and f"{vol}:/conf:ro" in binds and f"{vol}:/ro:ro" in binds
