"""The client agent's pure parts: restart policy, client status, environment and
interpolation, templates, artifacts, payloads, log rotation and reading."""
from __future__ import annotations

import asyncio
import hashlib
import io
import os
import random
import tarfile

import pytest

from client.alloc_runner import client_status
from client.drivers.base import TaskDirs
from client.logs import LogFiles, RotatingLog
from client.prestart import (PrestartError, fetch_artifact, inside, render, render_template,
                             write_payload)
from client.restarts import NOT_RESTARTING, RESTART, TERMINATED, RestartTracker
from client.taskenv import alloc_index, interpolate, task_env
from fsm.structs import (Allocation, Job, NetworkResource, Node, Port, Resources,
                         RestartPolicy, TaskArtifact, TaskGroup, Task, TaskState, Template)

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
    assert env["NOMAD_PORT_admin"] == "80" and env["NOMAD_HOST_PORT_admin"] == "8080"
    assert env["NOMAD_META_tier"] == "task" and env["NOMAD_META_TEAM"] == "infra"
    assert env["NOMAD_META_owner"] == "me"
    assert env["GREETING"] == "hi 2" and env["WHERE"] == "dc9/linux"
    assert env["KEEP"] == "${unknown.thing}"
    assert interpolate("${meta.rack}-${node.class}", env, node) == "r1-big"
    assert alloc_index("x.y[10]") == 10 and alloc_index("weird") == 0


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
