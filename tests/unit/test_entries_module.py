"""The log-entry builders (``caravan.server.entries``) stand apart from the HTTP
gateway: importing them loads no web framework, and the gateway's handlers and the
simulation use the same functions."""
from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent.parent

PROBE = textwrap.dedent("""
    import sys
    import caravan.server.entries.allocs, caravan.server.entries.deployments
    import caravan.server.entries.jobs
    import caravan.server.entries.nodes, caravan.server.entries.scale
    print(sorted({m.split(".")[0] for m in sys.modules if m.split(".")[0] in
                  ("starlette", "uvicorn", "grpc")}))
""")


def test_the_builders_import_no_web_framework():
    out = subprocess.run([sys.executable, "-c", PROBE], cwd=ROOT, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]", out.stdout


def test_the_gateway_and_the_simulation_share_the_builders():
    from caravan.server.entries import allocs, deployments, jobs, nodes, scale
    from caravan.server.http import alloc_writes, deployment_writes, job_writes, node_writes
    from caravan.server.http import scale as http_scale
    from tests.sim import world

    assert job_writes.register_entry is jobs.register_entry is world.job_entries.register_entry
    assert job_writes.dispatch_entry is jobs.dispatch_entry
    assert node_writes.drain_entry is nodes.drain_entry is world.node_entries.drain_entry
    assert alloc_writes.stop_entry is allocs.stop_entry is world.alloc_entries.stop_entry
    assert http_scale.scale_entry is scale.scale_entry is world.scale_entries.scale_entry
    assert deployment_writes.promote_entry is deployments.promote_entry
    assert deployment_writes.alloc_health_entry is deployments.alloc_health_entry
