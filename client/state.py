"""What the client keeps on disk across restarts: its node identity (so it comes back as
the same node) and the process groups of the tasks it started (so a restart after a
crash can kill whatever survived it)."""
from __future__ import annotations

import json
import logging
import os
import signal
import uuid

log = logging.getLogger("caravan.client.state")


def _write_json(path: str, value) -> None:
    tmp = path + ".tmp"
    with open(tmp, "w") as f:
        json.dump(value, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def _read_json(path: str, default):
    try:
        with open(path) as f:
            return json.load(f)
    except FileNotFoundError:
        return default
    except (OSError, ValueError) as exc:
        log.warning("ignoring unreadable %s: %s", path, exc)
        return default


def node_identity(state_dir: str) -> tuple[str, str]:
    """The node's ID and SecretID, made once and kept."""
    path = os.path.join(state_dir, "node.json")
    data = _read_json(path, {})
    if not data.get("ID") or not data.get("SecretID"):
        data = {"ID": str(uuid.uuid4()), "SecretID": str(uuid.uuid4())}
        os.makedirs(state_dir, exist_ok=True)
        _write_json(path, data)
    return data["ID"], data["SecretID"]


def _start_ticks(pid: int) -> str | None:
    """The process's start time in clock ticks (field 22 of /proc/<pid>/stat), which
    tells a pid from a later process that reused it."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[19]
    except (OSError, IndexError):
        return None


class ProcessRecord:
    """alloc id -> task -> [pid, start ticks] of running tasks' process groups."""

    def __init__(self, state_dir: str):
        self.path = os.path.join(state_dir, "processes.json")
        self.groups: dict[str, dict[str, list]] = _read_json(self.path, {})

    def set(self, alloc_id: str, task: str, pid: int | None) -> None:
        tasks = self.groups.setdefault(alloc_id, {})
        if pid is None:
            tasks.pop(task, None)
            if not tasks:
                self.groups.pop(alloc_id, None)
        else:
            tasks[task] = [pid, _start_ticks(pid)]
        _write_json(self.path, self.groups)

    def kill_leftovers(self) -> int:
        """SIGKILL every recorded group whose leader is still the same process."""
        killed = 0
        for alloc_id, tasks in self.groups.items():
            for task, (pid, ticks) in tasks.items():
                if ticks is not None and _start_ticks(pid) == ticks:
                    try:
                        os.killpg(pid, signal.SIGKILL)
                        killed += 1
                        log.warning("killed task %s of alloc %s left from a previous run "
                                    "(pid %d)", task, alloc_id, pid)
                    except (ProcessLookupError, PermissionError):
                        pass
        self.groups = {}
        _write_json(self.path, self.groups)
        return killed
