"""Figures of the deterministic simulation (``tests/sim``): how much one CI run covers.

    python3 bench/sim.py [--seeds 200] [--first 0]

Runs the seeds exactly as ``pytest tests/sim`` does (same configurations) and prints
one line per 50 seeds and a total: log entries applied (= invariant checks), whole-state
hash comparisons between replicas, faults injected, client writes, virtual and CPU
seconds. Asserts nothing; a failing seed is printed and counted.
"""
from __future__ import annotations

import argparse
import collections
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from tests.sim.test_sim import config_for  # noqa: E402
from tests.sim.world import SimFailure, run_seed  # noqa: E402

FAULTS = ("leader changes", "server crashes", "node failures", "unknown")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=200)
    ap.add_argument("--first", type=int, default=0)
    args = ap.parse_args()
    totals = collections.Counter()
    failed = []
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for n, seed in enumerate(range(args.first, args.first + args.seeds), 1):
        try:
            o = run_seed(seed, config_for(seed))
        except SimFailure as exc:
            failed.append(seed)
            print(str(exc).splitlines()[0])
        else:
            totals.update(entries=o.entries, checks=o.checks, hash_compares=o.hash_compares,
                          virtual_s=o.virtual_seconds)
            totals.update({k: v for k, v in o.stats.items()
                           if k in FAULTS or k.endswith(" ok") or k.startswith(
                               ("restored", "elections"))})
        if n % 50 == 0 or n == args.seeds:
            print(f"{n} seeds: {totals['entries']} entries, cpu {time.process_time() - cpu0:.1f} s",
                  flush=True)
    writes = sum(v for k, v in totals.items() if k.endswith(" ok"))
    print(f"seeds {args.seeds} (failed {len(failed)}: {failed}) | entries applied and checked "
          f"{totals['entries']} | replica hash comparisons {totals['hash_compares']} | "
          f"acknowledged client writes {writes} | leader changes {totals['leader changes']}, "
          f"elections {totals['elections']}, server crashes {totals['server crashes']} "
          f"(snapshot restores {totals['restored']}), node failures {totals['node failures']}, "
          f"unknown outcomes {totals['unknown']} | virtual {totals['virtual_s'] / 3600:.1f} h | "
          f"cpu {time.process_time() - cpu0:.1f} s, wall {time.perf_counter() - wall0:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
