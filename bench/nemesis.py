#!/usr/bin/env python3
"""Fault-injection figures (tier 2, see docs/reliability.md): real servers and client agents under a
seeded nemesis, concurrent clients, then the checkers of tests/nemesis.

    python3 bench/nemesis.py [--seconds 300] [--seed 1] [--servers 3,5] [--faults ...] [--keep]

For each server count: one run of ``--seconds`` of faults, its problems (if any) and
its summary line: operations, faults, acknowledged writes, lost writes,
linearizability violations, convergence time after healing, leader election time
and time to the first acknowledged write after each fault (p50/max), then each server's
journal and snapshot size every ``--disk-every`` seconds. The last line is
``SUMMARY {json}``. Figures only; the checks that must hold are asserted by
tests/nemesis/test_nemesis.py. 127.0.0.1 only; every process is stopped.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
from dataclasses import asdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import tree_state  # noqa: E402

from tests.nemesis.nemesis import FAULTS  # noqa: E402
from tests.nemesis.run import run  # noqa: E402


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=300.0)
    p.add_argument("--seed", type=int, default=1)
    p.add_argument("--servers", default="3,5", help="comma-separated server counts")
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--faults", default=",".join(FAULTS))
    p.add_argument("--keep", action="store_true", help="keep logs and histories")
    p.add_argument("--disk-every", type=float, default=60.0,
                   help="seconds between samples of each server's journal and snapshot size")
    args = p.parse_args()
    faults = tuple(f for f in args.faults.split(",") if f)
    runs = []
    for n in (int(x) for x in args.servers.split(",")):
        tmp = Path(tempfile.mkdtemp(prefix=f"nemesis-{n}-"))
        try:
            result = run(tmp, args.seconds, args.seed, servers=n, clients=args.clients,
                         workers=args.workers, faults=faults, disk_every=args.disk_every)
        finally:
            if not args.keep:
                shutil.rmtree(tmp, ignore_errors=True)
        for problem in result.problems[:20]:
            print("  " + problem)
        print(result.summary(), flush=True)
        for t, sizes in result.disk:
            print(f"  disk at {t:7.1f}s: " + "  ".join(
                f"{name} journal {v['journal'] / 1e6:5.1f} MB snapshot {v['snapshot'] / 1e6:5.1f} MB"
                for name, v in sorted(sizes.items())), flush=True)
        record = asdict(result)
        record["history"] = str(result.history) if args.keep else None
        record["problems"] = result.problems[:50]
        runs.append(record)
    print("SUMMARY " + json.dumps({"tree": tree_state(), "faults": faults, "runs": runs}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
