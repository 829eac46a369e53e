"""The ``caravan job|node|alloc|eval|deployment|server`` commands against a real dev
agent with two simulated nodes (``caravan nodesim``), as a user types them.

Most commands run in-process through ``server.commands.main`` (the same function the
``caravan`` entry point calls); a few run as real subprocesses, to cover the entry
point itself, stdin and the absence of tracebacks."""
from __future__ import annotations

import base64
import io
import json
import os
import signal
import subprocess
import sys

import httpx
import pytest

from caravan.server.commands import main
from tests.procs import ROOT, dev_server, free_ports, wait_until

REDIS = str(ROOT / "examples" / "redis.nomad.hcl")
INVOICE = str(ROOT / "examples" / "parameterized.nomad.hcl")
CLEANUP = str(ROOT / "examples" / "periodic.nomad.hcl")


@pytest.fixture(scope="module")
def agent(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("cli-agent")
    server = dev_server(tmp).start()
    sim = None
    try:
        server.wait_healthy()
        with open(tmp / "nodesim.log", "w") as log:
            sim = subprocess.Popen(
                [sys.executable, "-m", "caravan", "nodesim", "-server", server.rpc,
                 "-count", "2", "-drivers", "docker,mock,raw_exec"],
                cwd=ROOT, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        wait_until(lambda: len([n for n in httpx.get(server.url + "/v1/nodes").json()
                                if n["Status"] == "ready" and
                                n["Name"].startswith("nodesim")]) >= 2,
                   30, "two simulated nodes")
        yield server
    finally:
        if sim is not None and sim.poll() is None:
            os.killpg(sim.pid, signal.SIGTERM)
            sim.wait(10)
        server.stop()


@pytest.fixture
def caravan(agent, capsys, monkeypatch):
    """Run one command in-process; returns (exit code, stdout, stderr)."""
    monkeypatch.setenv("CARAVAN_ADDR", agent.url)

    def run(*argv: str, stdin: bytes | None = None):
        if stdin is not None:
            monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(stdin)))
        capsys.readouterr()
        code = main(list(argv))
        captured = capsys.readouterr()
        return code, captured.out, captured.err
    return run


def subprocess_caravan(agent, *argv: str, stdin: bytes | None = None):
    return subprocess.run([sys.executable, "-m", "caravan", *argv], cwd=ROOT,
                          input=stdin, capture_output=True, timeout=60,
                          env={**os.environ, "CARAVAN_ADDR": agent.url})


def api(agent, path: str, **params):
    r = httpx.get(agent.url + path, params=params, timeout=10)
    assert r.status_code == 200, r.text
    return r.json()


def field(out: str, key: str) -> str | None:
    """The value of a ``Key = Value`` line of a command's output."""
    for line in out.splitlines():
        name, sep, value = line.partition(" = ")
        if sep and name.strip() == key:
            return value.strip()
    return None


def running(agent, job_id: str) -> list[dict]:
    return [a for a in api(agent, f"/v1/job/{job_id}/allocations")
            if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"]


def test_run_follows_the_evaluation_and_status_shows_running_allocations(agent, caravan):
    p = subprocess_caravan(agent, "job", "run", REDIS)
    out = p.stdout.decode()
    assert p.returncode == 0, (out, p.stderr)
    assert '==> ' in out and 'Monitoring evaluation "' in out
    assert 'Allocation "' in out and 'group "cache"' in out
    assert 'finished with status "complete"' in out
    wait_until(lambda: running(agent, "example"), 30, "a running allocation")

    code, out, _ = caravan("job", "status")
    assert code == 0 and "example" in out and "service" in out
    code, out, _ = caravan("job", "status", "example")
    assert code == 0
    assert field(out, "ID") == "example" and field(out, "Status") == "running"
    assert "Summary" in out and "Allocations" in out
    alloc = running(agent, "example")[0]
    rows = [line for line in out.splitlines() if line.startswith(alloc["ID"][:8])]
    assert rows and "running" in rows[0] and alloc["NodeID"][:8] in rows[0]
    code, out, _ = caravan("job", "status", "-json", "example")
    assert code == 0 and json.loads(out)["Job"]["ID"] == "example"
    code, out, _ = caravan("job", "status", "exa")  # a unique prefix
    assert code == 0 and field(out, "ID") == "example"


def test_plan_shows_the_diff_and_the_check_index_to_run_with(agent, caravan):
    assert caravan("job", "run", "-detach", REDIS)[0] == 0
    code, out, _ = caravan("job", "plan", "-var", "image=redis:4.0", REDIS)
    assert code == 1, out  # allocations would be replaced
    assert '+/- Job: "example"' in out
    assert '+/- Task Group: "cache" (1 create/destroy update)' in out
    assert '+/- image: "redis:3.2" => "redis:4.0"' in out
    assert "Scheduler dry-run:" in out and "All tasks successfully allocated." in out
    index = api(agent, "/v1/job/example")["JobModifyIndex"]
    assert f"caravan job run -check-index {index} {REDIS}" in out

    code, out, err = caravan("job", "run", "-check-index", str(index + 1000), "-var",
                             "image=redis:4.0", REDIS)
    assert code == 1 and "Enforcing job modify index" in err
    code, out, _ = caravan("job", "run", "-check-index", str(index), "-var",
                           "image=redis:4.0", REDIS)
    assert code == 0, out
    code, out, _ = caravan("job", "plan", "-var", "image=redis:4.0", REDIS)
    assert code == 0, out  # nothing left to change


def test_history_revert_and_inspect(agent, caravan):
    assert caravan("job", "run", "-detach", REDIS)[0] == 0
    assert caravan("job", "run", "-detach", "-var", "image=redis:5.0", REDIS)[0] == 0
    newest = api(agent, "/v1/job/example")["Version"]
    code, out, _ = caravan("job", "history", "-p", "example")
    assert code == 0
    assert field(out, "Version") == str(newest) and "Diff =" in out
    assert '+/- image: "redis:3.2" => "redis:5.0"' in out

    older = newest - 1
    code, out, _ = caravan("job", "revert", "example", str(older))
    assert code == 0, out
    assert 'Monitoring evaluation "' in out
    job = api(agent, "/v1/job/example")
    assert job["Version"] == newest + 1
    assert job["TaskGroups"][0]["Tasks"][0]["Config"]["image"] == "redis:3.2"
    code, out, _ = caravan("job", "inspect", "example")
    assert code == 0 and json.loads(out)["Job"]["Version"] == newest + 1
    code, _, err = caravan("job", "revert", "example", "9999")
    assert code == 1 and "Error: " in err and "Traceback" not in err


def test_stop_then_purge(agent, caravan):
    assert caravan("job", "run", REDIS)[0] == 0
    code, out, _ = caravan("job", "stop", "example")
    assert code == 0 and 'Monitoring evaluation "' in out
    assert api(agent, "/v1/job/example")["Stop"] is True
    wait_until(lambda: not running(agent, "example"), 30, "the allocations to stop")
    code, out, _ = caravan("job", "stop", "-purge", "example")
    assert code == 0
    code, _, err = caravan("job", "status", "example")
    assert code == 1 and 'No job(s) with prefix or ID "example" found' in err


def test_dispatch_with_a_payload_from_stdin(agent, caravan):
    code, out, _ = caravan("job", "run", INVOICE)
    assert code == 0 and "Job registration successful" in out
    payload = b'{"order": 7}\n'
    p = subprocess_caravan(agent, "job", "dispatch", "-meta", "customer=acme", "invoice", "-",
                           stdin=payload)
    out = p.stdout.decode()
    assert p.returncode == 0, (out, p.stderr)
    child_id = next(line.split("=", 1)[1].strip() for line in out.splitlines()
                    if line.startswith("Dispatched Job ID"))
    assert child_id.startswith("invoice/dispatch-")
    child = api(agent, "/v1/job/" + child_id.replace("/", "%2F"))
    assert base64.b64decode(child["Payload"]) == payload
    assert child["Meta"] == {"customer": "acme"}

    p = subprocess_caravan(agent, "job", "dispatch", "invoice")
    err = p.stderr.decode()
    assert p.returncode == 1 and "Payload is not provided but required" in err
    assert "Traceback" not in err

    code, out, _ = caravan("job", "status", "invoice")
    assert code == 0 and field(out, "Parameterized") == "true" and child_id in out
    code, out, _ = caravan("job", "status", child_id)  # an ID with a "/" in it
    assert code == 0 and field(out, "ID") == child_id


def test_periodic_force_and_job_eval(agent, caravan):
    assert caravan("job", "run", CLEANUP)[0] == 0
    code, out, _ = caravan("job", "periodic", "force", "cleanup")
    assert code == 0 and 'finished with status "complete"' in out
    assert [j for j in api(agent, "/v1/jobs", prefix="cleanup/periodic-")]
    assert caravan("job", "run", "-detach", REDIS)[0] == 0
    code, out, _ = caravan("job", "eval", "-detach", "example")
    assert code == 0 and out.startswith("Evaluation ID: ")
    eval_id = out.split(":", 1)[1].strip()
    code, out, _ = caravan("eval", "status", eval_id[:8])
    assert code == 0 and field(out, "ID") == eval_id[:8] and field(out, "Job ID") == "example"


def test_placement_failure_exits_2_and_says_why(agent, caravan, tmp_path):
    job = tmp_path / "java.nomad.hcl"
    job.write_text('job "needs-java" {\n  group "g" {\n    task "t" {\n'
                   '      driver = "java"\n    }\n  }\n}\n')
    code, out, _ = caravan("job", "run", str(job))
    assert code == 2, out
    assert 'Task Group "g" (failed to place 1 allocation):' in out
    assert "  * " in out


def test_node_alloc_and_server_views(agent, caravan):
    assert caravan("job", "run", REDIS)[0] == 0
    wait_until(lambda: running(agent, "example"), 30, "a running allocation")
    alloc = running(agent, "example")[0]
    code, out, _ = caravan("node", "status")
    assert code == 0 and out.count("nodesim-") >= 2 and "ready" in out
    code, out, _ = caravan("node", "status", alloc["NodeID"][:8])
    assert code == 0 and field(out, "ID") == alloc["NodeID"] and alloc["ID"][:8] in out
    code, out, _ = caravan("alloc", "status", alloc["ID"][:8])
    assert code == 0 and field(out, "ID") == alloc["ID"]
    assert field(out, "Client Status") == "running" and field(out, "Job ID") == "example"
    assert "Placement Metrics" not in out
    code, out, _ = caravan("alloc", "status", "-verbose", alloc["ID"][:8])
    # the scores explained, as `nomad alloc status -verbose`: a column per scorer
    assert code == 0 and "Placement Metrics" in out
    header = next(line for line in out.splitlines()
                  if line.startswith("Node ") and "final score" in line)
    assert header.split()[1:] == ["binpack", "job-anti-affinity", "node-affinity",
                                  "node-reschedule-penalty", "final", "score"]
    assert alloc["NodeID"] in out
    code, out, _ = caravan("alloc", "status", "-json", alloc["ID"])
    assert code == 0 and json.loads(out)["ID"] == alloc["ID"]
    code, out, _ = caravan("server", "members")
    assert code == 0 and "alive" in out and "true" in out and "global" in out
    code, out, _ = caravan("server", "members", "-json")
    rows = json.loads(out)
    assert code == 0 and len(rows) == 1 and rows[0]["Status"] == "alive" and rows[0]["Leader"]


def test_validate_and_parse_errors_name_the_file_and_line(agent, caravan, tmp_path):
    code, out, _ = caravan("job", "validate", REDIS)
    assert code == 0 and "Job validation successful" in out
    bad = tmp_path / "bad.nomad.hcl"
    bad.write_text('job "bad" {\n  group "g" {\n    count = "three"\n  }\n}\n')
    code, _, err = caravan("job", "run", str(bad))
    assert code == 1
    assert f"Error parsing job file {bad}:3,5: Incorrect attribute value type" in err
    invalid = tmp_path / "invalid.nomad.hcl"
    invalid.write_text('job "invalid" {\n  priority = 500\n  group "g" {\n    task "t" {\n'
                       '      driver = "mock"\n    }\n  }\n}\n')
    code, out, _ = caravan("job", "validate", str(invalid))
    assert code == 1 and "Job validation errors:" in out and "priority" in out.lower()


def test_errors_are_one_line_with_nomads_exit_codes(agent, caravan):
    closed = f"http://127.0.0.1:{free_ports(1)[0]}"
    p = subprocess_caravan(agent, "job", "status", "-address", closed)
    assert p.returncode == 1 and b"Error querying" in p.stderr and b"Traceback" not in p.stderr
    code, _, err = caravan("job", "run")
    assert code == 1 and "Missing argument" in err
    code, _, _ = caravan("job", "plan", "/nonexistent.nomad.hcl")
    assert code == 255
