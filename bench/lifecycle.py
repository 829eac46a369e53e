#!/usr/bin/env python3
"""Allocation lifecycle through real client agents, next to a scheduling-only baseline
measured in the same run.

    python3 bench/lifecycle.py [--allocs 500] [--keep]

1. Baseline: 1 server + 2 ``caravan nodesim`` nodes (no tasks run; a placed allocation
   is reported "running" at once). Time from ``POST /v1/jobs`` (one batch job, one
   group, Count=--allocs, a mock task) to every allocation reported running.
2. Clients: 1 server + 2 ``caravan agent -client`` processes. The same job with the mock
   driver's ``run_for = "0s"``: each allocation is received, started, terminated and
   reported ``complete``. Time from register to the job summary showing every
   allocation Complete.

For run 2 the server's ``/v1/metrics`` counter ``caravan.client.alloc_updates_per_entry``
says how many ALLOC_CLIENT_UPDATE log entries carried the clients' reports and how many
updates each batched (count = entries, sum = updates, mean/max per entry).

Figures only, nothing asserted; 127.0.0.1 only; every process is stopped in a finally.
The last line is ``SUMMARY {json}``.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import clean_up, cpu_s, tree_state  # noqa: E402

from tests.procs import make_cluster, wait_until  # noqa: E402

NODE_MHZ, NODE_MB = 40000, 64000


def the_job(count: int, mock_config: dict) -> dict:
    return {"Job": {"ID": "lifecycle", "Type": "batch", "Datacenters": ["dc1"],
                    "TaskGroups": [{"Name": "g", "Count": count,
                                    "RestartPolicy": {"Attempts": 0, "Mode": "fail"},
                                    "Tasks": [{"Name": "t", "Driver": "mock",
                                               "Config": mock_config,
                                               "Resources": {"CPU": 20, "MemoryMB": 10}}]}]}}


def summary_counts(http: httpx.Client, index: int) -> tuple[dict, int]:
    r = http.get("/v1/job/lifecycle/summary", params={"index": index, "wait": "5s"})
    if r.status_code != 200:
        return {}, index
    return r.json()["Summary"].get("g", {}), int(r.headers.get("X-Nomad-Index", index))


def wait_for(http: httpx.Client, field: str, count: int, timeout: float) -> float:
    index, deadline = 0, time.monotonic() + timeout
    while time.monotonic() < deadline:
        counts, index = summary_counts(http, index)
        if counts.get(field, 0) >= count:
            return time.monotonic()
    raise TimeoutError(f"{field} did not reach {count} in {timeout}s")


def run(tmp: Path, allocs: int, clients: bool, cleanup: list) -> dict:
    tmp.mkdir(parents=True, exist_ok=True)
    cluster = make_cluster(tmp, n=1, clients=2 if clients else 0,
                           client_toml=f"cpu_total_compute = {NODE_MHZ}\n"
                                       f"memory_total_mb = {NODE_MB}")
    cleanup.append(cluster.stop)
    cluster.start()
    server = cluster.servers[0]
    http = httpx.Client(base_url=server.url, timeout=30)
    cleanup.append(http.close)
    if not clients:
        log = open(tmp / "nodesim.log", "w")
        sim = subprocess.Popen([sys.executable, "-m", "caravan", "nodesim", "-server",
                                server.rpc, "-count", "2", "-cpu", str(NODE_MHZ), "-memory",
                                str(NODE_MB)], cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                               start_new_session=True)
        cleanup.append(lambda: (sim.terminate(), sim.wait(10)))
    wait_until(lambda: len([n for n in http.get("/v1/nodes").json()
                            if n["Status"] == "ready"]) == 2, 60, "two ready nodes")
    cpu0 = cpu_s(server.proc.pid)
    mock = {"run_for": "0s"} if clients else {"run_for": "1h"}
    t0 = time.monotonic()
    http.post("/v1/jobs", json=the_job(allocs, mock)).raise_for_status()
    t_end = wait_for(http, "Complete" if clients else "Running", allocs, 300)
    out = {"seconds": round(t_end - t0, 3), "allocs": allocs,
           "allocs_per_s": round(allocs / (t_end - t0), 1),
           "server_cpu_s": round(cpu_s(server.proc.pid) - cpu0, 2)}
    if clients:
        m = {c["Name"]: c for c in http.get("/v1/metrics").json()["Counters"]}
        batch = m.get("caravan.client.alloc_updates_per_entry")
        if batch:
            out.update(entries=batch["Count"], updates=int(batch["Sum"]),
                       entries_per_s=round(batch["Count"] / (t_end - t0), 1),
                       updates_per_entry_mean=round(batch["Mean"], 1),
                       updates_per_entry_max=int(batch["Max"]))
    for fn in reversed(cleanup):
        fn()
    cleanup.clear()
    return out


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--allocs", type=int, default=500)
    ap.add_argument("--keep", action="store_true")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="caravan-bench-lifecycle-"))
    cleanup: list = []
    try:
        base = run(tmp / "baseline", args.allocs, clients=False, cleanup=cleanup)
        print(f"baseline (nodesim, scheduling + 'running' reports): {base['allocs']} allocs "
              f"running in {base['seconds']} s ({base['allocs_per_s']}/s), "
              f"server CPU {base['server_cpu_s']} s", flush=True)
        real = run(tmp / "clients", args.allocs, clients=True, cleanup=cleanup)
        print(f"client agents (mock run_for 0): {real['allocs']} allocs complete in "
              f"{real['seconds']} s ({real['allocs_per_s']}/s), server CPU "
              f"{real['server_cpu_s']} s", flush=True)
        if "entries" in real:
            print(f"  alloc-update log entries: {real['entries']} carrying {real['updates']} "
                  f"updates ({real['entries_per_s']} entries/s; per entry mean "
                  f"{real['updates_per_entry_mean']}, max {real['updates_per_entry_max']})",
                  flush=True)
        print("SUMMARY " + json.dumps({"baseline": base, "clients": real,
                                       "tree": tree_state()}))
        return 0
    finally:
        clean_up(cleanup, tmp, args.keep)


if __name__ == "__main__":
    sys.exit(main())
