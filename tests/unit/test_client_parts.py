"""The client agent's pure parts: restart policy, client status, environment and
interpolation, templates, artifacts, payloads, log rotation and reading, lifecycle
hooks and host volume mounts."""
from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import tarfile

import pytest
from msgspec.structs import replace

from caravan.client import lifecycle as lc
from caravan.client.alloc_runner import client_status
from caravan.client.checks import address, checks_for
from caravan.client.drivers.base import TaskDirs
from caravan.client.logs import LogFiles, RotatingLog
from caravan.client.prestart import PrestartError, fetch_artifact, inside, render, render_template, write_payload
from caravan.client.restarts import NOT_RESTARTING, RESTART, TERMINATED, RestartTracker
from caravan.client.taskenv import alloc_index, interpolate, interpolate_service, interpolate_value, port_env, task_env
from caravan.client.volumes import Mount, link_mounts, link_path, task_mounts
from caravan.fsm.structs import (
    Allocation,
    ClientHostVolumeConfig,
    Job,
    NetworkResource,
    Node,
    Port,
    Resources,
    RestartPolicy,
    Service,
    ServiceCheck,
    Task,
    TaskArtifact,
    TaskGroup,
    TaskLifecycleConfig,
    TaskState,
    Template,
    VolumeMount,
    VolumeRequest,
)

SEC = 1_000_000_000


class Clock:
    def __init__(self):
        self.now = 0

    def __call__(self):
        return self.now


# --- restart policy ------------------------------------------------------------------------


def tracker(attempts=2, interval=60 * SEC, delay=SEC, mode="fail", batch=False):
    clock = Clock()
    policy = RestartPolicy(Attempts=attempts, Interval=interval, Delay=delay, Mode=mode)
    return RestartTracker(policy, batch, clock, random.Random(7)), clock


def test_restarts_within_attempts_then_fail_mode_stops():
    t, clock = tracker()
    for _ in range(2):
        d = t.on_exit(successful=False)
        assert d.kind == RESTART and d.reason == "Restart within policy"
        assert SEC <= d.delay_ns <= SEC * 1.25
        clock.now += SEC
    d = t.on_exit(successful=False)
    assert d.kind == NOT_RESTARTING
    assert d.reason == 'Exceeded allowed attempts 2 in interval 1m0s and mode is "fail"'


def test_delay_mode_waits_for_the_next_interval():
    t, clock = tracker(attempts=1, mode="delay")
    assert t.on_exit(False).kind == RESTART
    clock.now = 10 * SEC
    d = t.on_exit(False)
    assert d.kind == RESTART and d.reason == "Exceeded allowed attempts, applying a delay"
    assert d.delay_ns == 50 * SEC   # until the interval that began at 0 ends
    clock.now = 61 * SEC
    assert t.on_exit(False).reason == "Restart within policy"


def test_a_new_interval_resets_the_count():
    t, clock = tracker(attempts=1)
    assert t.on_exit(False).kind == RESTART
    clock.now = 61 * SEC
    assert t.on_exit(False).kind == RESTART
    clock.now = 62 * SEC
    assert t.on_exit(False).kind == RESTART
    clock.now = 63 * SEC
    assert t.on_exit(False).kind == NOT_RESTARTING


def test_batch_success_terminates_and_service_success_restarts():
    assert tracker(batch=True)[0].on_exit(True).kind == TERMINATED
    assert tracker(batch=False)[0].on_exit(True).kind == RESTART


def test_no_attempts_and_unrecoverable_errors():
    assert tracker(attempts=0)[0].on_exit(False).reason == "Policy allows no restarts"
    d = tracker()[0].on_start_error(recoverable=False)
    assert d.kind == NOT_RESTARTING and d.reason == "Error was unrecoverable"
    assert tracker()[0].on_start_error(recoverable=True).kind == RESTART


# --- client status -------------------------------------------------------------------------


@pytest.mark.parametrize("states, want", [
    ([], "pending"),
    (["pending", "running"], "running"),
    (["pending"], "pending"),
    (["dead", "dead"], "complete"),
    (["dead", "failed"], "failed"),
    (["running", "failed"], "failed"),
])
def test_client_status_follows_nomad(states, want):
    rows = [TaskState(State="dead", Failed=True) if s == "failed" else TaskState(State=s)
            for s in states]
    assert client_status(rows)[0] == want


# --- environment ---------------------------------------------------------------------------


def _alloc():
    task = Task(Name="web", Driver="raw_exec", Env={"GREETING": "hi ${NOMAD_ALLOC_INDEX}",
                                                     "WHERE": "${node.datacenter}/${attr.os}",
                                                     "KEEP": "${unknown.thing}"},
                Meta={"tier": "task"})
    tg = TaskGroup(Name="g", Tasks=[task], Meta={"tier": "group", "team": "infra"})
    job = Job(ID="shop", Name="shop", Type="service", TaskGroups=[tg], Meta={"owner": "me"})
    net = NetworkResource(IP="10.0.0.5", DynamicPorts=[Port(Label="http", Value=23456)],
                          ReservedPorts=[Port(Label="admin", Value=8080, To=80)])
    alloc = Allocation(ID="0123456789abcdef-0000-0000-0000-000000000000", Name="shop.g[2]",
                       JobID="shop", Job=job, TaskGroup="g",
                       TaskResources={"web": Resources(CPU=250, MemoryMB=128, Networks=[net])})
    node = Node(ID="node-1", Name="n1", Datacenter="dc9", NodeClass="big",
                Attributes={"os": "linux"}, Meta={"rack": "r1"})
    return alloc, tg, task, node


def test_task_env_has_nomad_variables_ports_meta_and_interpolation(tmp_path):
    alloc, tg, task, node = _alloc()
    dirs = TaskDirs(str(tmp_path / alloc.ID), "web")
    env = task_env(alloc, tg, task, node, dirs, "europe",
                   host_env={"PATH": "/bin", "VAULT_TOKEN": "secret"})
    assert env["PATH"] == "/bin" and "VAULT_TOKEN" not in env
    assert env["NOMAD_ALLOC_INDEX"] == "2" and env["NOMAD_ALLOC_NAME"] == "shop.g[2]"
    assert env["NOMAD_JOB_NAME"] == "shop" and env["NOMAD_TASK_NAME"] == "web"
    assert env["NOMAD_DC"] == "dc9" and env["NOMAD_REGION"] == "europe"
    assert env["NOMAD_CPU_LIMIT"] == "250" and env["NOMAD_MEMORY_LIMIT"] == "128"
    assert env["NOMAD_ALLOC_DIR"] == dirs.shared and env["NOMAD_TASK_DIR"] == dirs.local
    assert env["NOMAD_PORT_http"] == "23456" and env["NOMAD_ADDR_http"] == "10.0.0.5:23456"
    # a task network's port is the host's: only a driver's port map changes NOMAD_PORT_
    assert env["NOMAD_PORT_admin"] == "8080" and env["NOMAD_HOST_PORT_admin"] == "8080"
    assert "NOMAD_ALLOC_PORT_admin" not in env and "NOMAD_HOST_ADDR_admin" not in env
    assert env["NOMAD_META_tier"] == "task" and env["NOMAD_META_TEAM"] == "infra"
    assert env["NOMAD_META_owner"] == "me"
    assert env["GREETING"] == "hi 2" and env["WHERE"] == "dc9/linux"
    assert env["KEEP"] == "${unknown.thing}"
    assert interpolate("${meta.rack}-${node.class}", env, node) == "r1-big"
    assert alloc_index("x.y[10]") == 10 and alloc_index("weird") == 0


def _group_alloc():
    """An allocation of a group with a group network (dynamic ``http``, static ``admin``
    mapped to 80) and a second task holding a (deprecated) task network."""
    web = Task(Name="web", Driver="raw_exec", Env={"LISTEN": "${NOMAD_ADDR_http}"})
    side = Task(Name="side", Driver="raw_exec")
    tg = TaskGroup(Name="g", Tasks=[web, side])
    job = Job(ID="shop", Name="shop", Type="service", TaskGroups=[tg])
    group_net = NetworkResource(Mode="host", Device="lo", IP="10.0.0.5",
                                ReservedPorts=[Port(Label="admin", Value=9100, To=80)],
                                DynamicPorts=[Port(Label="http", Value=23456),
                                              Port(Label="my-port", Value=23457)])
    side_net = NetworkResource(Device="lo", IP="10.0.0.5",
                               DynamicPorts=[Port(Label="rpc", Value=24000)])
    alloc = Allocation(ID="0123456789abcdef-0000-0000-0000-000000000000", Name="shop.g[0]",
                       JobID="shop", Job=job, TaskGroup="g",
                       TaskResources={"web": Resources(CPU=100, MemoryMB=64),
                                      "side": Resources(CPU=100, MemoryMB=64,
                                                        Networks=[side_net])},
                       SharedResources=Resources(DiskMB=300, Networks=[group_net]))
    return alloc, tg, web, side, Node(ID="node-1", Name="n1", Datacenter="dc1")


def test_group_network_ports_reach_every_task_as_nomad_names_them(tmp_path):
    alloc, tg, web, side, node = _group_alloc()
    env = task_env(alloc, tg, web, node, TaskDirs(str(tmp_path / alloc.ID), "web"), "global",
                   host_env={})
    assert env["NOMAD_PORT_http"] == "23456" and env["NOMAD_HOST_PORT_http"] == "23456"
    assert env["NOMAD_ALLOC_PORT_http"] == "23456"
    assert env["NOMAD_IP_http"] == env["NOMAD_HOST_IP_http"] == "10.0.0.5"
    assert env["NOMAD_ADDR_http"] == env["NOMAD_HOST_ADDR_http"] == "10.0.0.5:23456"
    # To is the port inside the allocation: NOMAD_PORT_ and NOMAD_ALLOC_PORT_ say it,
    # the host's port and address stay the static value
    assert env["NOMAD_PORT_admin"] == env["NOMAD_ALLOC_PORT_admin"] == "80"
    assert env["NOMAD_HOST_PORT_admin"] == "9100"
    assert env["NOMAD_ADDR_admin"] == env["NOMAD_HOST_ADDR_admin"] == "10.0.0.5:9100"
    # labels are cleaned into variable names under Nomad's cleaned prefixes only
    assert env["NOMAD_PORT_my_port"] == "23457" and env["NOMAD_ADDR_my_port"] == "10.0.0.5:23457"
    assert env["NOMAD_HOST_ADDR_my-port"] == "10.0.0.5:23457"
    assert "NOMAD_PORT_my-port" not in env
    # the other task's (task-level) ports, named by task
    assert env["NOMAD_PORT_side_rpc"] == "24000" and env["NOMAD_ADDR_side_rpc"] == "10.0.0.5:24000"
    assert "NOMAD_PORT_rpc" not in env
    assert env["LISTEN"] == "10.0.0.5:23456"
    side_env = task_env(alloc, tg, side, node, TaskDirs(str(tmp_path / alloc.ID), "side"),
                        "global", host_env={})
    assert side_env["NOMAD_PORT_http"] == "23456" and side_env["NOMAD_PORT_rpc"] == "24000"
    assert interpolate_value({"args": ["${NOMAD_PORT_http}", "${NOMAD_HOST_PORT_admin}"]},
                             env, node) == {"args": ["23456", "9100"]}


def test_ipv6_addresses_are_bracketed():
    alloc, _tg, web, _side, _node = _group_alloc()
    net = replace(alloc.SharedResources.Networks[0], IP="fd00::5")
    alloc = replace(alloc, SharedResources=Resources(Networks=[net]))
    assert port_env(alloc, web)["NOMAD_ADDR_http"] == "[fd00::5]:23456"
    assert port_env(alloc, web)["NOMAD_IP_http"] == "fd00::5"


def test_docker_port_map_sets_a_task_ports_nomad_port():
    net = NetworkResource(IP="10.0.0.5", DynamicPorts=[Port(Label="db", Value=25000)])
    task = Task(Name="redis", Driver="docker", Config={"port_map": [{"db": 6379}]})
    alloc = Allocation(ID="a", TaskResources={"redis": Resources(Networks=[net])})
    env = port_env(alloc, task)
    assert env["NOMAD_PORT_db"] == "6379" and env["NOMAD_HOST_PORT_db"] == "25000"
    assert env["NOMAD_ADDR_db"] == "10.0.0.5:25000"


def test_services_and_checks_are_interpolated():
    svc = Service(Name="web-${NOMAD_ALLOC_INDEX}", PortLabel="${PORT_LABEL}",
                  Tags=["port-${NOMAD_PORT_http}"], Meta={"addr": "${NOMAD_ADDR_http}"},
                  Checks=[ServiceCheck(Name="alive", Type="http", Path="/${NOMAD_PORT_http}",
                                       PortLabel="${NOMAD_PORT_http}",
                                       Header={"X-Port": ["${NOMAD_PORT_http}"]},
                                       Args=["${NOMAD_TASK_NAME}"])])
    env = {"NOMAD_ALLOC_INDEX": "1", "PORT_LABEL": "http", "NOMAD_PORT_http": "23456",
           "NOMAD_ADDR_http": "10.0.0.5:23456", "NOMAD_TASK_NAME": "web"}
    out = interpolate_service(svc, env, Node(ID="n"))
    assert (out.Name, out.PortLabel, out.Tags, out.Meta) == (
        "web-1", "http", ["port-23456"], {"addr": "10.0.0.5:23456"})
    (chk,) = out.Checks
    assert (chk.Path, chk.PortLabel, chk.Header, chk.Args) == (
        "/23456", "23456", {"X-Port": ["23456"]}, ["web"])
    assert svc.Name == "web-${NOMAD_ALLOC_INDEX}"    # the job's own service is unchanged


def test_check_address_finds_group_ports_and_interpolated_numbers():
    alloc, tg, web, _side, node = _group_alloc()
    assert address(alloc, web, "http") == ("10.0.0.5", 23456)
    assert address(alloc, web, "admin") == ("10.0.0.5", 9100)
    assert address(alloc, web, "23456") == ("10.0.0.5", 23456)
    assert address(alloc, web, "nope") is None
    tg = replace(tg, Services=[Service(Name="s", PortLabel="${LABEL}", Checks=[
        ServiceCheck(Name="c", Type="tcp")])])
    ((svc, chk),) = checks_for(tg, web, {"LABEL": "http"}, node)
    assert svc.PortLabel == "http" and chk.Name == "c"


# --- templates, artifacts, payloads ----------------------------------------------------------


def test_render_env_literals_comments_and_trimming():
    env = {"A": "1", "B": "two"}
    assert render('a={{ env "A" }} b={{env "B"}} c={{ env "C" }}', env) == "a=1 b=two c="
    assert render('x {{- "lit" -}} y{{/* note */}}', env) == "xlity"
    assert render('[[ env "A" ]] {{ env "A" }}', env, "[[", "]]") == '1 {{ env "A" }}'
    with pytest.raises(PrestartError, match=r'template: t:2: function .key. not defined'):
        render('ok\n{{ key "x" }}', env, name="t")


def test_render_template_writes_dest_with_perms_and_exports_env(tmp_path):
    task_dir = tmp_path / "alloc1" / "web"
    task_dir.mkdir(parents=True)
    exported = render_template(Template(EmbeddedTmpl='PORT={{ env "P" }}\n# c\nX="y"\n',
                                        DestPath="local/app.env", Perms="0600", Envvars=True),
                               str(task_dir), {"P": "80"})
    path = task_dir / "local" / "app.env"
    assert path.read_text() == 'PORT=80\n# c\nX="y"\n'
    assert oct(path.stat().st_mode & 0o777) == "0o600"
    assert exported == {"PORT": "80", "X": "y"}
    with pytest.raises(PrestartError, match="escapes the allocation directory"):
        render_template(Template(EmbeddedTmpl="x", DestPath="../../etc/x"), str(task_dir), {})
    # the shared alloc dir beside the task dir is allowed, as in Nomad
    render_template(Template(EmbeddedTmpl="x", DestPath="../alloc/x"), str(task_dir), {})
    assert (tmp_path / "alloc1" / "alloc" / "x").read_text() == "x"


def test_artifacts_copy_verify_and_unpack(tmp_path):
    task_dir = tmp_path / "a" / "t"
    (task_dir / "local").mkdir(parents=True)
    src = tmp_path / "tool.sh"
    src.write_bytes(b"#!/bin/sh\necho tool\n")
    src.chmod(0o755)
    good = hashlib.sha256(src.read_bytes()).hexdigest()
    out = fetch_artifact(TaskArtifact(GetterSource=f"file://{src}",
                                      GetterOptions={"checksum": f"sha256:{good}"}),
                         str(task_dir))
    assert open(out, "rb").read() == src.read_bytes() and os.access(out, os.X_OK)
    with pytest.raises(PrestartError, match="checksums did not match"):
        fetch_artifact(TaskArtifact(GetterSource=str(src),
                                    GetterOptions={"checksum": "md5:" + "0" * 32}),
                       str(task_dir))
    with pytest.raises(PrestartError, match="unsupported scheme"):
        fetch_artifact(TaskArtifact(GetterSource="https://example.com/x"), str(task_dir))
    with pytest.raises(PrestartError, match="no such file"):
        fetch_artifact(TaskArtifact(GetterSource=str(tmp_path / "missing")), str(task_dir))
    archive = tmp_path / "bundle.tar.gz"
    with tarfile.open(archive, "w:gz") as tar:
        data = b"inside\n"
        info = tarfile.TarInfo("bundle/file.txt")
        info.size = len(data)
        tar.addfile(info, io.BytesIO(data))
    fetch_artifact(TaskArtifact(GetterSource=str(archive), RelativeDest="local/x"),
                   str(task_dir))
    assert (task_dir / "local" / "x" / "bundle" / "file.txt").read_text() == "inside\n"
    evil = tmp_path / "evil.tar"
    with tarfile.open(evil, "w") as tar:
        info = tarfile.TarInfo("../../outside.txt")
        info.size = 1
        tar.addfile(info, io.BytesIO(b"x"))
    with pytest.raises(PrestartError, match="escapes"):
        fetch_artifact(TaskArtifact(GetterSource=str(evil)), str(task_dir))


def test_payload_is_written_into_local(tmp_path):
    task_dir = tmp_path / "a" / "t"
    task_dir.mkdir(parents=True)
    path = write_payload(str(task_dir), "in/data.bin", b"\x00\x01")
    assert open(path, "rb").read() == b"\x00\x01"
    assert path == str(task_dir / "local" / "in" / "data.bin")
    with pytest.raises(PrestartError):
        write_payload(str(task_dir), "../../../x", b"")
    assert inside(str(task_dir), "local/../local", "x") == str(task_dir / "local")


# --- logs ----------------------------------------------------------------------------------


def test_rotation_keeps_the_newest_files_and_reading_joins_them(tmp_path):
    log = RotatingLog(str(tmp_path), "web", "stdout", max_files=3, max_file_mb=1)
    log.max_bytes = 10      # tiny files for the test
    log.write(b"0123456789abcdefghij0123456789ABCDEFGHIJxyz")
    log.close()
    files = LogFiles(str(tmp_path), "web", "stdout")
    assert files.indexes() == [2, 3, 4]

    async def read(origin, offset, follow=False):
        return b"".join([c async for _, _, c in files.stream(origin, offset, follow)])
    assert asyncio.run(read("start", 0)) == b"0123456789ABCDEFGHIJxyz"
    assert asyncio.run(read("start", 12)) == b"CDEFGHIJxyz"
    assert asyncio.run(read("end", 5)) == b"GHIJxyz"[-5:]
    # a new writer continues the newest file
    again = RotatingLog(str(tmp_path), "web", "stdout", max_files=3)
    again.max_bytes = 10
    again.write(b"!")
    again.close()
    assert (tmp_path / "web.stdout.4").read_bytes() == b"xyz!"


# --- service checks ------------------------------------------------------------------------


def _check_env(port: int):
    from caravan.fsm.structs import Service, ServiceCheck
    net = NetworkResource(IP="127.0.0.1", DynamicPorts=[Port(Label="http", Value=port)])
    task = Task(Name="web")
    alloc = Allocation(ID="a", TaskResources={"web": Resources(Networks=[net])})
    return Service, ServiceCheck, task, alloc


def test_tcp_http_and_script_checks(tmp_path):
    from caravan.client.checks import CRITICAL, PASSING, WARNING, CheckRunner

    async def scenario():
        async def handle(reader, writer):
            request = await reader.read(1024)
            status = b"200 OK" if b"GET /ok " in request else b"429 Too Many Requests"
            writer.write(b"HTTP/1.1 " + status + b"\r\nContent-Length: 0\r\n\r\n")
            await writer.drain()
            writer.close()
        server = await asyncio.start_server(handle, "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        Service, ServiceCheck, task, alloc = _check_env(port)

        def runner(**check):
            return CheckRunner(check=ServiceCheck(**check), service=Service(PortLabel="http"),
                               alloc=alloc, task=task, env={"PATH": os.defpath},
                               task_dir=str(tmp_path), on_change=lambda: None)
        results = {
            "tcp": await runner(Type="tcp").once(),
            "http-ok": await runner(Type="http", Path="/ok").once(),
            "http-429": await runner(Type="http", Path="/busy").once(),
            "script-0": await runner(Type="script", Command="/bin/sh", Args=["-c", "exit 0"]).once(),
            "script-1": await runner(Type="script", Command="/bin/sh", Args=["-c", "exit 1"]).once(),
            "script-2": await runner(Type="script", Command="/bin/sh", Args=["-c", "exit 2"]).once(),
            "label": await runner(Type="tcp", PortLabel="nope").once(),
        }
        server.close()
        await server.wait_closed()
        results["closed"] = await runner(Type="tcp").once()
        initial = runner(Type="tcp", InitialStatus="warning").status
        return results, initial

    results, initial = asyncio.run(scenario())
    assert results["tcp"][0] == PASSING
    assert results["http-ok"][0] == PASSING and results["http-429"][0] == WARNING
    assert [results[f"script-{i}"][0] for i in range(3)] == [PASSING, WARNING, CRITICAL]
    assert results["label"] == (CRITICAL, "no port labelled 'nope' in the allocation")
    assert results["closed"][0] == CRITICAL
    assert initial == WARNING


def test_health_waits_for_min_healthy_time_and_checks():
    from caravan.client.alloc_runner import HealthWatch
    from caravan.fsm.structs import UpdateStrategy

    async def scenario():
        results = []
        watch = HealthWatch(UpdateStrategy(MinHealthyTime=50_000_000,
                                           HealthyDeadline=400_000_000), results.append)
        running = [TaskState(State="running", StartedAt="t1")]
        watch.observe(running, checks_passing=False)
        await asyncio.sleep(0.1)
        assert results == []              # tasks run, but a check is not passing yet
        watch.observe(running, checks_passing=True)
        await asyncio.sleep(0.1)
        assert results == [True]
        late = []
        never = HealthWatch(UpdateStrategy(MinHealthyTime=0, HealthyDeadline=50_000_000),
                            late.append)
        never.observe([TaskState(State="pending")])
        await asyncio.sleep(0.1)
        assert late == [False]            # the healthy deadline passed first
        failed = []
        dies = HealthWatch(UpdateStrategy(MinHealthyTime=10**9), failed.append)
        dies.observe([TaskState(State="dead", Failed=True)])
        dies.cancel()
        assert failed == [False]
    asyncio.run(scenario())


# --- lifecycle hooks -----------------------------------------------------------------------

def hooked(name: str, hook: str = "", sidecar: bool = False, **kw) -> Task:
    life = TaskLifecycleConfig(Hook=hook, Sidecar=sidecar) if hook or sidecar else None
    return Task(Name=name, Driver="mock", Lifecycle=life, **kw)


def st(state: str, failed: bool = False) -> TaskState:
    return TaskState(State=state, Failed=failed)


LIFECYCLE_TASKS = [hooked("init", "prestart"), hooked("proxy", "prestart", True),
                   hooked("app"), hooked("announce", "poststart"),
                   hooked("watch", "poststart", True), hooked("cleanup", "poststop")]


def test_stage_of_every_hook():
    assert [lc.stage_of(t) for t in LIFECYCLE_TASKS] == [
        lc.PRESTART_EPHEMERAL, lc.PRESTART_SIDECAR, lc.MAIN, lc.POSTSTART_EPHEMERAL,
        lc.POSTSTART_SIDECAR, lc.POSTSTOP]
    assert lc.stage_of(hooked("main-sidecar", sidecar=True)) == lc.MAIN


def test_coordinator_walks_prestart_main_poststart_poststop():
    c = lc.Coordinator(LIFECYCLE_TASKS)
    states = {t.Name: st("pending") for t in LIFECYCLE_TASKS}
    assert c.update(states) == {lc.PRESTART_EPHEMERAL, lc.PRESTART_SIDECAR}
    states["init"] = st("running")
    states["proxy"] = st("running")
    assert c.update(states) == {lc.PRESTART_EPHEMERAL, lc.PRESTART_SIDECAR}   # init not done
    states["init"] = st("dead", failed=True)
    assert c.state == lc.PRESTART and c.update(states) == c.allowed()          # failed: stuck
    states["init"] = st("dead")
    assert c.update(states) == {lc.PRESTART_SIDECAR, lc.MAIN}
    assert not c.may_run(LIFECYCLE_TASKS[3]) and c.may_run(LIFECYCLE_TASKS[2])
    states["app"] = st("running")
    assert c.update(states) == {lc.PRESTART_SIDECAR, lc.MAIN, lc.POSTSTART_EPHEMERAL,
                                lc.POSTSTART_SIDECAR}
    states["announce"] = st("dead")
    states["watch"] = st("running")
    assert c.update(states) == {lc.PRESTART_SIDECAR, lc.MAIN, lc.POSTSTART_SIDECAR}
    states.update(app=st("dead"), proxy=st("dead"))
    assert c.state == lc.WAIT_ALLOC and c.update(states) == c.allowed()   # watch still runs
    states["watch"] = st("dead")
    assert c.update(states) == {lc.POSTSTOP}
    c.stop()
    assert c.allowed() == frozenset()


def test_coordinator_without_hooks_lets_main_tasks_run_at_once():
    c = lc.Coordinator([hooked("a"), hooked("b")])
    assert c.update({"a": st("pending"), "b": st("pending")}) == {lc.PRESTART_SIDECAR, lc.MAIN}
    # a stopped alloc (every non-poststop task dead) opens poststop from any state
    c = lc.Coordinator(LIFECYCLE_TASKS)
    states = {t.Name: st("pending") for t in LIFECYCLE_TASKS}
    c.update(states)
    states.update({t.Name: st("dead") for t in LIFECYCLE_TASKS if t.Name != "cleanup"})
    assert c.update(states) == {lc.POSTSTOP}


@pytest.mark.parametrize("job_type, task, terminates", [
    ("service", hooked("app"), False), ("batch", hooked("app"), True),
    ("sysbatch", hooked("app"), True), ("system", hooked("app"), False),
    ("service", hooked("init", "prestart"), True), ("batch", hooked("p", "prestart", True), False),
    ("service", hooked("a", "poststart"), True), ("service", hooked("w", "poststart", True), False),
    ("service", hooked("c", "poststop"), True), ("batch", hooked("c", "poststop", True), True),
])
def test_restart_on_success_per_hook(job_type, task, terminates):
    assert lc.terminates_on_success(job_type, task) is terminates


def test_health_ignores_poststop_and_finished_ephemeral_tasks():
    states = {"init": st("dead"), "proxy": st("running"), "app": st("running"),
              "announce": st("dead"), "watch": st("running"), "cleanup": st("pending")}
    assert lc.health_states(LIFECYCLE_TASKS, states) == [st("running")] * 3
    states["init"] = st("dead", failed=True)
    assert st("dead", failed=True) in lc.health_states(LIFECYCLE_TASKS, states)


# --- host volume mounts --------------------------------------------------------------------


def volume_alloc(tmp_path, mounts, requests, offered):
    tg = TaskGroup(Name="g", Volumes=requests)
    task = Task(Name="t", Driver="raw_exec", VolumeMounts=mounts)
    node = Node(HostVolumes={n: ClientHostVolumeConfig(Name=n, Path=str(tmp_path / n),
                                                       ReadOnly=ro)
                             for n, ro in offered.items()})
    return Allocation(Name="j.g[0]"), tg, task, node


def test_task_mounts_resolve_sources_and_read_only(tmp_path):
    alloc, tg, task, node = volume_alloc(
        tmp_path,
        [VolumeMount(Volume="d", Destination="/srv/data"),
         VolumeMount(Volume="l", Destination="logs", ReadOnly=True),
         VolumeMount(Volume="r", Destination="ro")],
        {"d": VolumeRequest(Type="host", Source="data"),
         "l": VolumeRequest(Type="host", Source="logs"),
         "r": VolumeRequest(Type="host", Source="conf")},
        {"data": False, "logs": False, "conf": True})
    mounts = task_mounts(alloc, tg, task, node)
    assert [(m.volume, m.host_path, m.task_path, m.read_only) for m in mounts] == [
        ("d", str(tmp_path / "data"), "/srv/data", False),
        ("l", str(tmp_path / "logs"), "logs", True),
        ("r", str(tmp_path / "conf"), "ro", True)]


def test_task_mounts_refuse_a_host_volume_the_node_lacks(tmp_path):
    alloc, tg, task, node = volume_alloc(
        tmp_path, [], {"d": VolumeRequest(Type="host", Source="data")}, {"other": False})
    with pytest.raises(PrestartError, match="host volume validation error: missing data"):
        task_mounts(alloc, tg, task, node)
    alloc, tg, task, node = volume_alloc(
        tmp_path, [], {"d": VolumeRequest(Type="host", Source="data", PerAlloc=True)},
        {"data[0]": False})
    assert task_mounts(alloc, tg, task, node) == []


def test_link_mounts_symlinks_inside_the_task_dir(tmp_path):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "hello.txt").write_text("hi")
    task_dir = tmp_path / "task"
    task_dir.mkdir()
    alloc, tg, task, node = volume_alloc(
        tmp_path, [VolumeMount(Volume="d", Destination="/srv/data")],
        {"d": VolumeRequest(Type="host", Source="data")}, {"data": False})
    mounts = task_mounts(alloc, tg, task, node)
    link_mounts(mounts, str(task_dir))
    link_mounts(mounts, str(task_dir))          # a restart replaces its own link
    assert (task_dir / "srv" / "data" / "hello.txt").read_text() == "hi"
    assert os.readlink(task_dir / "srv" / "data") == str(tmp_path / "data")
    for bad in ("../../etc", "/", "", "a/../../x"):
        with pytest.raises(PrestartError):
            link_path(str(task_dir), bad)
    (task_dir / "local").mkdir()
    with pytest.raises(PrestartError, match="already exists"):
        link_mounts([Mount("d", str(tmp_path / "data"), "local", False)], str(task_dir))
