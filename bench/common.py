"""What the benchmark scripts share: process CPU from /proc, which code was measured,
and cleaning up every process and temp dir a run started."""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """user+system CPU seconds of a process (all threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_state() -> dict:
    """Which code was measured: HEAD and the uncommitted paths (read-only git)."""
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = [ln[3:] for ln in git("status", "--porcelain", "--", "server", "fsm",
                                  "scheduler").splitlines()]
    return {"head": git("rev-parse", "--short", "HEAD").strip(), "uncommitted": dirty}


def clean_up(cleanup: list, tmp: Path, keep: bool) -> None:
    """Run every cleanup step (newest first, each even if another failed), then remove
    the temp dir unless asked to keep it."""
    for fn in reversed(cleanup):
        try:
            fn()
        except Exception as exc:  # keep cleaning
            print(f"cleanup: {exc}", file=sys.stderr)
    if keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)
