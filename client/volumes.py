"""Host volumes inside a task: which host directories a task's ``volume_mount`` blocks
name (Nomad's ``volume_hook``), and how ``raw_exec`` makes them visible without
isolation (a symlink at the destination inside the task directory)."""
from __future__ import annotations

import os
import posixpath
import re
from dataclasses import dataclass

from caravan.client.prestart import PrestartError
from caravan.fsm.structs import Allocation, Node, Task, TaskGroup


class HostVolumeFlagError(ValueError):
    """A ``-host-volume`` flag that does not read as ``name=/absolute/path[:ro]``."""


def parse_host_volume_flag(text: str) -> tuple[str, dict]:
    """``-host-volume name=/path[:ro]`` (the dev agent's and nodesim's spelling of a
    ``host_volume`` table): (name, {"path", "read_only"})."""
    name, sep, rest = text.partition("=")
    read_only = False
    if rest.endswith(":ro"):
        rest, read_only = rest[:-3], True
    elif rest.endswith(":rw"):
        rest = rest[:-3]
    if not sep or not name or not rest:
        raise HostVolumeFlagError(f"-host-volume {text!r}: expected name=/absolute/path[:ro]")
    if not os.path.isabs(rest):
        raise HostVolumeFlagError(f"-host-volume {text!r}: {rest!r} is not an absolute path")
    return name, {"path": rest, "read_only": read_only}


@dataclass(frozen=True)
class Mount:
    """One host directory mounted into a task (Nomad's ``drivers.MountConfig``)."""
    volume: str          # the group's volume name
    host_path: str
    task_path: str       # the mount's destination as written in the job
    read_only: bool


def _suffix(alloc_name: str) -> str:
    """``structs.AllocSuffix``: ``[index]`` at the end of an allocation's name."""
    m = re.search(r"\[\d+\]$", alloc_name)
    return m.group(0) if m else ""


def task_mounts(alloc: Allocation, tg: TaskGroup | None, task: Task,
                node: Node) -> list[Mount]:
    """The task's host volume mounts. As Nomad's client, every host volume the group
    requests must be on this node (it can be missing when the client restarted with
    another configuration), and a mount is read-only when the host volume, the
    group's request or the mount says so."""
    requests = (tg.Volumes or {}) if tg is not None else {}
    offered = node.HostVolumes or {}

    def source(req) -> str:
        return req.Source + _suffix(alloc.Name) if req.PerAlloc else req.Source

    missing = [source(r) for _, r in sorted(requests.items())
               if r is not None and r.Type == "host" and source(r) not in offered]
    if missing:
        raise PrestartError("host volume validation error: "
                            + "; ".join(f"missing {m}" for m in missing))
    mounts = []
    for m in task.VolumeMounts or ():
        req = requests.get(m.Volume)
        if req is None:
            raise PrestartError(f"No group volume declaration found named: {m.Volume}")
        if req.Type != "host":
            continue
        host = offered[source(req)]
        mounts.append(Mount(volume=m.Volume, host_path=host.Path, task_path=m.Destination,
                            read_only=host.ReadOnly or req.ReadOnly or m.ReadOnly))
    return mounts


def link_path(task_dir: str, destination: str) -> str:
    """Where a mount's destination lands inside the task directory (an absolute
    destination is taken from the task directory, as from the root of a chroot);
    PrestartError when it would leave the task directory or is the directory itself."""
    rel = posixpath.normpath(destination.lstrip("/")) if destination else ""
    if rel in ("", ".") or rel == ".." or rel.startswith("../"):
        raise PrestartError(f"volume_mount destination {destination!r} is not a path inside "
                            f"the task directory")
    return os.path.join(task_dir, rel)


def link_mounts(mounts: list[Mount], task_dir: str) -> None:
    """``raw_exec``: make each mount a symlink at its destination inside the task
    directory, pointing at the host volume's directory. An earlier link (a restart)
    is replaced; anything else already there is an error."""
    for mount in mounts:
        path = link_path(task_dir, mount.task_path)
        parent = os.path.dirname(path)
        real_parent = os.path.realpath(parent) if os.path.exists(parent) else None
        if real_parent is not None and not (real_parent + os.sep).startswith(
                os.path.realpath(task_dir) + os.sep):
            raise PrestartError(f"volume_mount destination {mount.task_path!r} leaves the "
                                f"task directory")
        os.makedirs(parent, exist_ok=True)
        if os.path.islink(path):
            os.unlink(path)
        elif os.path.exists(path):
            raise PrestartError(f"volume_mount destination {mount.task_path!r} already exists "
                                f"in the task directory")
        os.symlink(mount.host_path, path, target_is_directory=True)
