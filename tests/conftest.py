import os
import signal
import time

import pytest

from tests.procs import dev_server, make_cluster


@pytest.fixture(scope="session")
def dev_agent(tmp_path_factory):
    """One real `caravan agent -dev` process shared by the HTTP tests."""
    server = dev_server(tmp_path_factory.mktemp("dev-agent")).start()
    try:
        server.wait_healthy()
        yield server
    finally:
        server.stop()


def pytest_addoption(parser):
    group = parser.getgroup("sim", "deterministic simulation (tests/sim)")
    group.addoption("--sim-seed", type=int, default=None, metavar="N",
                    help="run the simulation for exactly this seed (replays a failure)")
    group.addoption("--sim-seeds", type=int, default=None, metavar="N",
                    help="how many seeds (0..N-1) the simulation runs (default 200)")


@pytest.fixture
def sim_agent(tmp_path, monkeypatch):
    """A server-only ``caravan agent -dev`` with 1 s heartbeat TTL and grace, and a list
    the test appends its ``NodeSim`` processes to; all stopped afterwards."""
    monkeypatch.setenv("CARAVAN_HEARTBEAT_TTL", "1")
    monkeypatch.setenv("CARAVAN_HEARTBEAT_GRACE", "1")
    server = dev_server(tmp_path).start()
    sims: list = []
    try:
        server.wait_healthy()
        yield server, sims
    finally:
        for sim in sims:
            sim.stop(signal.SIGKILL)
        server.stop()


@pytest.fixture
def cluster(tmp_path):
    """Three real servers from a generated cluster file, started, and stopped (killed
    if they will not stop) after the test."""
    c = make_cluster(tmp_path)
    try:
        c.start()
        yield c
    finally:
        c.stop()
        for s in c.servers:
            s.kill()


def _leftovers(base: str) -> list[tuple[int, str]]:
    """Live processes started for this session: their command line or working directory
    is under the session's temporary directory (agents' data dirs, tasks' alloc dirs)."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit() or int(entry) == os.getpid():
            continue
        try:
            with open(f"/proc/{entry}/stat") as f:
                if f.read().rsplit(")", 1)[1].split()[0] == "Z":
                    continue
            with open(f"/proc/{entry}/cmdline", "rb") as f:
                cmdline = f.read().replace(b"\0", b" ").decode(errors="replace").strip()
            cwd = os.readlink(f"/proc/{entry}/cwd")
        except OSError:
            continue
        if base + os.sep in cmdline or cwd.startswith(base + os.sep):
            found.append((int(entry), cmdline))
    return found


def pytest_sessionfinish(session, exitstatus):
    """Every test must stop every process it started (agents, clients, their tasks):
    anything left is killed and fails the run."""
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None or not hasattr(factory, "_basetemp") or factory._basetemp is None:
        return
    base = str(factory.getbasetemp())
    deadline = time.monotonic() + 5
    left = _leftovers(base)
    while left and time.monotonic() < deadline:   # processes still exiting
        time.sleep(0.1)
        left = _leftovers(base)
    if not left:
        return
    for pid, _ in left:
        try:
            os.kill(pid, signal.SIGKILL)
        except OSError:
            pass
    lines = "\n".join(f"  pid {pid}: {cmd}" for pid, cmd in left)
    print(f"\nprocesses left behind by the tests (now killed):\n{lines}")
    session.exitstatus = 1
