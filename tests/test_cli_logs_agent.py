"""``caravan alloc logs`` end to end: a real dev agent (whose built-in client node runs
the task), a raw_exec job that writes to stdout and stderr, and the command reading
both."""
from __future__ import annotations

import os
import subprocess
import sys

import httpx
import pytest

from tests.procs import ROOT, dev_server, wait_until

JOB = '''
job "logs" {
  type = "batch"
  group "g" {
    task "say" {
      driver = "raw_exec"
      config {
        command = "/bin/sh"
        args    = ["-c", "echo out-marker; echo err-marker 1>&2"]
      }
      resources {
        cpu    = 50
        memory = 32
      }
    }
  }
}
'''


@pytest.fixture
def agent(tmp_path):
    server = dev_server(tmp_path, client=True).start()
    try:
        wait_until(lambda: [n for n in httpx.get(f"{server.url}/v1/nodes").json()
                            if n["Status"] == "ready"], 30, "the dev client's node")
        yield server
    finally:
        server.stop()


def caravan(agent, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "caravan", *argv], cwd=ROOT,
                          capture_output=True, timeout=60,
                          env={**os.environ, "CARAVAN_ADDR": agent.url})


def test_alloc_logs_reads_stdout_and_stderr_of_a_real_task(agent, tmp_path):
    path = tmp_path / "logs.nomad.hcl"
    path.write_text(JOB)
    run = caravan(agent, "job", "run", str(path))
    assert run.returncode == 0, (run.stdout, run.stderr)

    def placed():
        allocs = httpx.get(f"{agent.url}/v1/job/logs/allocations", timeout=10).json()
        done = [a for a in allocs if a["ClientStatus"] in ("running", "complete")]
        return done[0]["ID"] if done else None
    alloc_id = wait_until(placed, 30, "the task to run")

    def output(*flags):
        p = caravan(agent, "alloc", "logs", *flags, alloc_id[:8])
        return p.stdout.decode() if p.returncode == 0 else ""
    wait_until(lambda: "out-marker" in output(), 30, "stdout in the logs")
    wait_until(lambda: "err-marker" in output("-stderr"), 30, "stderr in the logs")
    assert "err-marker" not in output()
