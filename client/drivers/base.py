"""The driver interface: how a task runner starts, waits for and stops one task.

A driver answers ``fingerprint()`` with the attributes it adds to the node (None when it
is not usable on this host), and ``start(ctx)`` with a handle, or raises ``DriverError``.
A handle's ``wait()`` resolves with an ``ExitResult`` when the task has exited; its
``kill(signal, timeout)`` sends the kill signal, waits up to ``timeout`` seconds and then
forces the task down, returning once it is gone.
"""
from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from caravan.fsm.structs import Allocation, Task


class DriverError(Exception):
    """A task could not be started. ``recoverable`` errors go through the restart
    policy; others fail the task at once ("Error was unrecoverable")."""

    def __init__(self, message: str, recoverable: bool = True):
        super().__init__(message)
        self.recoverable = recoverable


@dataclass
class ExitResult:
    exit_code: int = 0
    signal: int = 0
    err: str = ""

    def successful(self) -> bool:
        return self.exit_code == 0 and self.signal == 0 and not self.err


@dataclass
class TaskDirs:
    """Nomad's layout: ``<alloc>/alloc/{data,logs,tmp}`` shared by the group's tasks and
    ``<alloc>/<task>/{local,secrets,tmp}`` per task; the task runs in ``<alloc>/<task>``."""
    alloc_root: str
    task: str

    @property
    def shared(self) -> str:
        return os.path.join(self.alloc_root, "alloc")

    @property
    def logs(self) -> str:
        return os.path.join(self.shared, "logs")

    @property
    def dir(self) -> str:
        return os.path.join(self.alloc_root, self.task)

    @property
    def local(self) -> str:
        return os.path.join(self.dir, "local")

    @property
    def secrets(self) -> str:
        return os.path.join(self.dir, "secrets")

    @property
    def tmp(self) -> str:
        return os.path.join(self.dir, "tmp")

    def build(self) -> None:
        for path in (os.path.join(self.shared, "data"), self.logs,
                     os.path.join(self.shared, "tmp"), self.local, self.tmp):
            os.makedirs(path, exist_ok=True)
        os.makedirs(self.secrets, mode=0o700, exist_ok=True)


class LogSink(Protocol):
    """Where a task's output goes (``client.logs.RotatingLog``)."""

    def write(self, data: bytes) -> None: ...


@dataclass
class TaskContext:
    alloc: Allocation
    task: Task
    dirs: TaskDirs
    env: dict[str, str]
    stdout: LogSink
    stderr: LogSink
    config: dict = field(default_factory=dict)   # Task.Config, interpolated
    # host volumes (client.volumes.Mount); drivers with isolation mount them, the
    # others find them linked into the task directory already (``links_mounts``)
    mounts: list = field(default_factory=list)
    # a "Driver" task event with a message (e.g. "Downloading image")
    driver_event: Callable[[str], None] = lambda message: None


class TaskHandle(Protocol):
    pid: int | None

    async def wait(self) -> ExitResult: ...

    async def kill(self, signal: int, timeout: float) -> None: ...


class Driver(Protocol):
    name: str
    # True: the task runner makes host volume mounts symlinks inside the task directory
    # (no isolation to mount into); False: the driver mounts ``ctx.mounts`` itself
    links_mounts: bool

    def fingerprint(self) -> dict[str, str] | None: ...

    async def start(self, ctx: TaskContext) -> TaskHandle: ...
