import os
import signal
import subprocess
import time
from pathlib import Path

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
    tiers = parser.getgroup("tiers", "test tiers")
    tiers.addoption("--full", action="store_true", default=False,
                    help="the full tier: every simulation seed and the tests that start real "
                         "processes (agents, clusters, nodesims, nemesis); without it only the "
                         "fast tier runs (unit tests, in-process tests, "
                         f"{FAST_SIM_SEEDS} simulation seeds)")
    group = parser.getgroup("sim", "deterministic simulation (tests/sim)")
    group.addoption("--sim-seed", type=int, default=None, metavar="N",
                    help="run the simulation for exactly this seed (replays a failure)")
    group.addoption("--sim-seeds", type=int, default=None, metavar="N",
                    help=f"how many seeds (0..N-1) the simulation runs (default {FULL_SIM_SEEDS} "
                         f"with --full, else {FAST_SIM_SEEDS})")


# The two tiers. Plain `python3 -m pytest` runs the fast tier; `--full` runs everything.
FAST_SIM_SEEDS = 20
FULL_SIM_SEEDS = 200
# A test belongs to the full tier when it needs one of these fixtures (they start real
# processes) or its module holds one of these process starters.
REAL_PROCESS_FIXTURES = frozenset({"dev_agent", "sim_agent", "cluster"})
PROCESS_STARTERS = frozenset({
    "tests.procs.Server", "tests.procs.Cluster", "tests.procs.dev_server",
    "tests.procs.make_cluster", "tests.procs.dev_with_client", "tests.test_scheduling.NodeSim",
    "tests.nemesis.cluster.NemesisCluster", "tests.nemesis.run.run",
})
# Modules that start caravan processes themselves (`python3 -m caravan`, an installed one).
FULL_TIER_MODULES = frozenset({"tests.test_agent_cli", "tests.test_install"})


def starts_processes(item) -> bool:
    """Whether a collected test starts real processes (the full tier's tests)."""
    if REAL_PROCESS_FIXTURES.intersection(getattr(item, "fixturenames", ())):
        return True
    module = getattr(item, "module", None)
    if getattr(module, "__name__", None) in FULL_TIER_MODULES:
        return True
    for obj in vars(module).values() if module is not None else ():
        name = f"{getattr(obj, '__module__', '')}.{getattr(obj, '__qualname__', '')}"
        if name in PROCESS_STARTERS:
            return True
    return False


def sim_seed_count(config) -> int:
    """How many simulation seeds run: --sim-seeds, else by tier."""
    count = config.getoption("sim_seeds")
    if count is not None:
        return count
    return FULL_SIM_SEEDS if config.getoption("full") else FAST_SIM_SEEDS


@pytest.fixture(autouse=True)
def _fast_tier_starts_no_agent(request, monkeypatch):
    """In the fast tier a test that starts `python3 -m caravan` fails at once: it belongs
    to the full tier (PROCESS_STARTERS or FULL_TIER_MODULES above)."""
    if request.config.getoption("full") or "full" in request.keywords:
        return
    popen_init = subprocess.Popen.__init__

    def guarded(self, args, *rest, **kwargs):
        argv = [str(a) for a in args] if isinstance(args, (list, tuple)) else str(args).split()
        if any(a == "-m" and b == "caravan" for a, b in zip(argv, argv[1:])):
            raise RuntimeError(f"{request.node.nodeid} starts a caravan process: mark its module "
                               "for the full tier in tests/conftest.py")
        popen_init(self, args, *rest, **kwargs)

    monkeypatch.setattr(subprocess.Popen, "__init__", guarded)


def pytest_configure(config):
    config.addinivalue_line("markers", "full: the full tier (real processes); run with --full")


def named_files(config) -> set[Path]:
    """The test files named on the command line (a file or a test id in it)."""
    files = set()
    for arg in config.args:
        path = Path(config.invocation_params.dir, arg.split("::")[0])
        if path.suffix == ".py":
            files.add(path.resolve())
    return files


def pytest_collection_modifyitems(config, items):
    """Every test that starts real processes is marked `full`; without --full they are
    deselected (reported as such), so a plain run stays well under a minute. A test file
    named on the command line runs whole (its simulation seeds still follow the tier)."""
    named = named_files(config)
    keep, drop = [], []
    for item in items:
        if starts_processes(item):
            item.add_marker(pytest.mark.full)
            if not config.getoption("full") and Path(item.fspath).resolve() not in named:
                drop.append(item)
                continue
        keep.append(item)
    if drop:
        config.hook.pytest_deselected(items=drop)
        items[:] = keep
        config._full_tier_deselected = len(drop)


def pytest_terminal_summary(terminalreporter, config):
    dropped = getattr(config, "_full_tier_deselected", 0)
    if dropped:
        terminalreporter.write_line(f"fast tier: {dropped} tests that start real processes were "
                                    "deselected; `python3 -m pytest --full` runs everything")


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
