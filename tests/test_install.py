"""``pip install .`` as a user does it (full tier): the wheel puts exactly one top-level
package, ``caravan``, in site-packages, and the installed ``caravan agent -dev``,
started outside any checkout, answers ``/v1/agent/health``.

No network: the checkout is copied (so the build leaves nothing in it) and installed
with ``--no-deps --no-build-isolation`` into a fresh venv that sees this interpreter's
site-packages for the dependencies through a plain path entry, which (unlike
``--system-site-packages``) does not run their ``.pth`` files: an editable install of
some checkout there would otherwise shadow the installed copy."""
from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import sysconfig
import tomllib
from pathlib import Path

import httpx

from tests.procs import ROOT, free_ports, wait_until

IGNORE = shutil.ignore_patterns(".git", "build", "dist", "*.egg-info", "__pycache__",
                                ".mypy_cache", ".pytest_cache", ".ruff_cache")


def _venv(tmp: Path) -> tuple[Path, Path]:
    """A fresh venv and its site-packages; this interpreter's site-packages reachable as
    a plain path, after the venv's own."""
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=300)
    python = venv / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
                               check=True, capture_output=True, text=True).stdout.strip())
    (site / "zz_host_site_packages.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return python, site


def _installed_top_level(site: Path) -> tuple[set[str], list[str], str]:
    """(top-level names the RECORD puts in site-packages, the RECORD's paths, top_level.txt)."""
    dist = next(site.glob("caravan_scheduler-*.dist-info"))
    record = [line.split(",")[0] for line in (dist / "RECORD").read_text().splitlines() if line]
    inside = [p for p in record if not p.startswith("..")]   # scripts go to bin/
    top = {p.split("/")[0] for p in inside}
    return top, record, (dist / "top_level.txt").read_text().split()


def test_pip_install_puts_one_package_and_the_agent_runs_from_it(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=IGNORE, symlinks=True)
    python, site = _venv(tmp_path)
    subprocess.run([str(python), "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation",
                    str(source)], check=True, timeout=600, cwd=tmp_path)

    top, record, top_level = _installed_top_level(site)
    dist_info = {t for t in top if t.endswith(".dist-info")}
    assert top - dist_info == {"caravan"}, top
    assert top_level == ["caravan"]
    # every listed package made it into the wheel, and each room's modules
    packages = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]["packages"]
    for package in packages:
        assert package.replace(".", "/") + "/__init__.py" in record, package
    for module in ("caravan/fsm/apply.py", "caravan/scheduler/stack.py", "caravan/client/agent.py",
                   "caravan/server/cli.py", "caravan/proto/node_pb2.py"):
        assert module in record, module

    empty = tmp_path / "elsewhere"
    empty.mkdir()
    where = subprocess.run([str(python), "-c", "import caravan.server; print(caravan.server.__file__)"],
                           cwd=empty, check=True, capture_output=True, text=True).stdout.strip()
    assert Path(where).is_relative_to(site), where

    http, rpc, raft = free_ports(3)
    log = tmp_path / "agent.log"
    with open(log, "wb") as out:
        agent = subprocess.Popen(
            [str(python.parent / "caravan"), "agent", "-dev", "-no-client",
             "-http-port", str(http), "-rpc-port", str(rpc), "-raft-port", str(raft),
             "-data-dir", str(tmp_path / "data")],
            cwd=empty, stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            env={k: v for k, v in os.environ.items() if k != "PYTHONPATH"})
    try:
        def healthy() -> bool:
            if agent.poll() is not None:
                raise RuntimeError(f"the installed agent exited: {log.read_text()[-2000:]}")
            return httpx.get(f"http://127.0.0.1:{http}/v1/agent/health", timeout=1).status_code == 200
        wait_until(healthy, 60, "the installed agent to be healthy")
    finally:
        if agent.poll() is None:
            agent.send_signal(signal.SIGTERM)
            try:
                agent.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(agent.pid, signal.SIGKILL)
                agent.wait(10)
