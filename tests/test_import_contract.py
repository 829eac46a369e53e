"""The rooms' import contract (``[tool.importlinter]`` in pyproject.toml): fsm and proto
import nothing of ours, the scheduler only fsm, the client only fsm and proto, the server
anything; no cycle between rooms. import-linter runs in a subprocess on this checkout
(``caravan`` imported first: its ``__init__`` adds the checkout's root to the package
path, where the rooms' folders are), and its report is the failure message."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

LINT = textwrap.dedent("""
    import sys
    import caravan
    from importlinter.cli import lint_imports
    sys.exit(lint_imports(no_cache=True, no_logo=True))
""")


def run_import_linter(cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", LINT], cwd=cwd, capture_output=True,
                          text=True, timeout=300)


def test_rooms_keep_their_import_contract():
    result = run_import_linter(ROOT)
    report = result.stdout + result.stderr
    assert result.returncode == 0, report
    assert "4 kept, 0 broken" in report, report


def test_a_room_importing_upwards_breaks_the_contract(tmp_path):
    """The same contract on a checkout whose fsm imports the server (which imports fsm),
    whose scheduler imports the gRPC stubs, and whose HTTP handler reaches past
    ``caravan.scheduler.api``."""
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    (tmp_path / "caravan").mkdir()
    (tmp_path / "caravan" / "__init__.py").write_text((ROOT / "caravan" / "__init__.py").read_text())
    (tmp_path / "caravan" / "__main__.py").write_text("from caravan.server import api\n")
    for room in ("fsm", "scheduler", "client", "server", "proto"):
        (tmp_path / room).mkdir()
        (tmp_path / room / "__init__.py").write_text("")
    (tmp_path / "fsm" / "store.py").write_text("from caravan.server import api\n")
    (tmp_path / "server" / "api.py").write_text("from caravan.fsm import store\n")
    (tmp_path / "scheduler" / "plan.py").write_text("from caravan.proto import stubs\n")
    (tmp_path / "proto" / "stubs.py").write_text("")
    (tmp_path / "server" / "http").mkdir()
    (tmp_path / "server" / "http" / "__init__.py").write_text("")
    (tmp_path / "server" / "http" / "system.py").write_text("from caravan.scheduler import api, core_gc\n")
    (tmp_path / "scheduler" / "api.py").write_text("from caravan.scheduler import core_gc\n")
    (tmp_path / "server" / "rpc").mkdir()
    (tmp_path / "server" / "rpc" / "__init__.py").write_text("")
    (tmp_path / "server" / "rpc" / "node.py").write_text("from caravan.scheduler import api\n")
    (tmp_path / "server" / "rpc" / "node_registration.py").write_text("from caravan.scheduler import api\n")
    (tmp_path / "scheduler" / "core_gc.py").write_text("")
    result = run_import_linter(tmp_path)
    report = result.stdout + result.stderr
    assert result.returncode != 0, report
    assert "0 kept, 4 broken" in report, report
    assert "caravan.fsm.store -> caravan.server.api" in report, report
    assert "caravan.scheduler.plan -> caravan.proto.stubs" in report, report
    assert "caravan.server.http.system -> caravan.scheduler.core_gc" in report, report
