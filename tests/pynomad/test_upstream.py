"""python-nomad's own integration tests (from its pinned sdist) against a real agent.

python-nomad's CI starts ``nomad agent -dev -bind 127.0.0.1 -node pynomad1``, writes the
``nomad job init`` example job as ``example.json`` and runs ``py.test tests/``. Here the
sdist is fetched once with pip into pytest's cache (``tests/.cache`` without the cache
plugin), its ``tests/`` is extracted next to
our ``tests/common.py`` and ``tests/conftest.py`` (the sdist lacks them) and our
``example.json``/``example.nomad`` (the init example's redis job, on ``raw_exec``) and
``example_batch_parameterized.json``, and each upstream file runs with pytest in a
subprocess against a fresh agent of its own. (Upstream's CI runs them all against one
agent; its files assume the example job's deployment is still running when
``test_deployment.py`` starts, which holds there only because the files before it take
long enough with docker. A fresh agent per file keeps each file's assumptions true
whatever ran before it.)

An upstream test listed in ``WAITING`` is one that fails for a reason owned by work not
yet landed, or that fails against Nomad too (the value says which); every other test of
a file must pass, and a listed test that passes fails the run, so the list is kept
exact. ``RACY`` tests may pass or fail: they race the scheduler.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tarfile
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from tests.procs import Server, free_ports

VERSION = "2.1.0"
HERE = Path(__file__).resolve().parent
SUPPORT = HERE / "upstream"
NODE_NAME = "pynomad1"

FILES = [
    "test_allocation.py", "test_allocations.py", "test_deployment.py",
    "test_deployments.py", "test_evaluation.py", "test_evaluations.py", "test_job.py",
    "test_jobs.py", "test_node.py", "test_nodes.py", "test_scaling.py",
]

# upstream test id -> the work it waits on (the owner area), or why it fails on Nomad too
WAITING: dict[str, str] = {
    # python-nomad 2.1.0 registers the job whose ID is "example-batch" at
    # /v1/job/example-batch-idempotent: Nomad answers 400 "Job ID does not match name"
    "test_job.py::test_dispatch_job_idempotency": "upstream: fails against Nomad too",
    # python-nomad 2.1.0 no longer raises InvalidParameters there; it sends
    # ?purge=True, which Go's strconv.ParseBool (and Nomad) accept
    "test_job.py::test_delete_job_with_invalid_purge_param_raises":
        "upstream: fails against Nomad too",
}

# tests that read what the scheduler places right after registering, without waiting:
# Caravan commits the example's allocation ~5-15 ms after the register reply, and the
# test's next request may come before or after it
RACY = {"test_allocation.py::test_get_allocation"}


def _sdist(cache_dir: Path) -> Path:
    found = sorted(cache_dir.glob(f"python_nomad-{VERSION}.tar.gz"))
    if found:
        return found[0]
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps",
                    "--no-binary", ":all:", "-d", str(cache_dir), f"python-nomad=={VERSION}"],
                   check=True, timeout=300)
    found = sorted(cache_dir.glob(f"python_nomad-{VERSION}.tar.gz"))
    assert found, f"pip download left no python_nomad-{VERSION}.tar.gz in {cache_dir}"
    return found[0]


def _extract(sdist: Path, dest: Path) -> Path:
    """The sdist's ``nomad/`` (the client under test, imported from the working dir
    ahead of any installed copy) and ``tests/``, with our support files added."""
    top = f"python_nomad-{VERSION}/"
    with tarfile.open(sdist) as tar:
        members = [m for m in tar.getmembers()
                   if m.name.startswith((top + "nomad/", top + "tests/")) and
                   (m.isfile() or m.isdir())]
        tar.extractall(dest, members=members, filter="data")
    root = dest / top
    shutil.copy(SUPPORT / "common.py", root / "tests" / "common.py")
    shutil.copy(SUPPORT / "upstream_conftest.py", root / "tests" / "conftest.py")
    (root / "tests" / "__init__.py").touch()
    for name in ("example.json", "example.nomad", "example_batch_parameterized.json"):
        shutil.copy(SUPPORT / name, root / name)
    return root


@pytest.fixture(scope="module")
def upstream(request, tmp_path_factory) -> Path:
    cache = getattr(request.config, "cache", None)   # None under -p no:cacheprovider
    if cache is not None:
        cache_dir = Path(cache.mkdir("python-nomad"))
    else:
        cache_dir = HERE.parent / ".cache" / "python-nomad"
        cache_dir.mkdir(parents=True, exist_ok=True)
    return _extract(_sdist(cache_dir), tmp_path_factory.mktemp("python-nomad"))


@pytest.fixture
def agent(tmp_path):
    """A fresh ``caravan agent -dev -bind 127.0.0.1 -node pynomad1`` (on free ports; no
    ``-acl-enabled``: Caravan has no ACLs yet), once its node is ready; and the version
    the node reports (upstream's tests read NOMAD_VERSION to skip tests)."""
    import httpx

    from tests.procs import wait_until

    http, rpc, raft = free_ports(3)
    server = Server("dev", f"127.0.0.1:{http}", f"127.0.0.1:{rpc}", f"127.0.0.1:{raft}",
                    ["-dev", "-bind", "127.0.0.1", "-node", NODE_NAME,
                     "-http-port", str(http), "-rpc-port", str(rpc), "-raft-port", str(raft),
                     "-data-dir", str(tmp_path / "dev")], tmp_path / "dev.log")
    try:
        server.start()
        server.wait_healthy()

        def node_version():
            nodes = httpx.get(server.url + "/v1/nodes", timeout=2).json()
            return next((n["Version"] for n in nodes
                         if n["Name"] == NODE_NAME and n["Status"] == "ready"), None)
        version = wait_until(node_version, 30, f"node {NODE_NAME} to be ready")
        yield server, version
    finally:
        server.stop()


def _outcomes(report: Path) -> dict[str, str]:
    """test id (``file::name``) -> passed / failed / skipped, from a junit report."""
    outcomes = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f'{case.get("classname").rsplit(".", 1)[-1]}.py::{case.get("name")}'
        kinds = {child.tag for child in case}
        outcomes[name] = ("failed" if kinds & {"failure", "error"} else
                          "skipped" if "skipped" in kinds else "passed")
    return outcomes


def _env(server: Server, version: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("NOMAD_", "PYTEST_"))}
    host, port = server.http.rsplit(":", 1)
    env.update(NOMAD_IP=host, NOMAD_PORT=port, NOMAD_VERSION=version)
    return env


@pytest.mark.parametrize("name", FILES)
def test_upstream_file(name, upstream, agent, tmp_path):
    report = tmp_path / "report.xml"
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rfE",
         "--runxfail", f"--junitxml={report}", "--basetemp", str(tmp_path / "base"),
         f"tests/{name}"],
        cwd=upstream, env=_env(*agent), capture_output=True, text=True, timeout=600)
    output = proc.stdout + proc.stderr
    assert report.exists(), f"upstream {name} did not run:\n{output}"
    outcomes = _outcomes(report)
    assert outcomes, f"upstream {name} collected no tests:\n{output}"
    failed = sorted(t for t, o in outcomes.items()
                    if o == "failed" and t not in WAITING and t not in RACY)
    fixed = sorted(t for t, o in outcomes.items() if o == "passed" and t in WAITING)
    assert not failed, f"upstream {name}: {failed} failed\n{output}"
    assert not fixed, f"upstream {name}: {fixed} now pass: take them off WAITING\n{output}"
