"""The ``raw_exec`` driver: ``command`` with ``args`` as a child process of the agent, in
the task directory, with the task's environment, output piped into the rotating logs.

Each task leads its own process group; stopping sends the kill signal to the group,
waits ``KillTimeout`` and then sends SIGKILL. When the task's main process exits, what
is left of its group is killed too, so nothing it started outlives it. On Linux the
child is also started with a parent-death signal (``setpriv --pdeathsig KILL``), so a
SIGKILLed agent does not leave its tasks running; the agent kills the groups it
recorded before a crash when it starts again.
"""
from __future__ import annotations

import asyncio
import os
import shutil
import signal as signals

from caravan.client.drivers.base import DriverError, ExitResult, TaskContext
from caravan.client.logs import pump
from caravan.client.proc import Child, spawn

SETPRIV = shutil.which("setpriv")


def resolve(command: str, task_dir: str, path: str) -> str:
    if os.path.isabs(command):
        candidate = command
    elif "/" in command:
        candidate = os.path.join(task_dir, command)
    else:
        found = shutil.which(command, path=path)
        if found is None:
            local = os.path.join(task_dir, "local", command)
            if os.access(local, os.X_OK) and os.path.isfile(local):
                return local
            raise DriverError(f'failed to launch command with executor: exec: "{command}": '
                              f"executable file not found in $PATH")
        return found
    if not os.path.exists(candidate):
        raise DriverError(f'failed to launch command with executor: fork/exec {candidate}: '
                          f"no such file or directory")
    if os.path.isdir(candidate) or not os.access(candidate, os.X_OK):
        raise DriverError(f"failed to launch command with executor: fork/exec {candidate}: "
                          f"permission denied")
    return candidate


def kill_group(pgid: int, sig: int) -> bool:
    try:
        os.killpg(pgid, sig)
        return True
    except (ProcessLookupError, PermissionError):
        return False


class ProcessHandle:
    def __init__(self, proc: Child, pumps: list[asyncio.Task]):
        self.proc = proc
        self.pid = proc.pid
        self._pumps = pumps
        self._result: asyncio.Future | None = None

    async def _wait(self) -> ExitResult:
        code = await self.proc.wait()
        kill_group(self.pid, signals.SIGKILL)   # whatever the task left behind
        await asyncio.gather(*self._pumps, return_exceptions=True)
        if code < 0:
            return ExitResult(exit_code=0, signal=-code)
        return ExitResult(exit_code=code)

    async def wait(self) -> ExitResult:
        if self._result is None:
            self._result = asyncio.ensure_future(self._wait())
        return await asyncio.shield(self._result)

    async def kill(self, signal: int, timeout: float) -> None:
        if self.proc.returncode is not None:
            return
        kill_group(self.pid, signal)
        try:
            await asyncio.wait_for(asyncio.shield(self.wait()), timeout)
        except TimeoutError:
            kill_group(self.pid, signals.SIGKILL)
            await self.wait()


class RawExecDriver:
    name = "raw_exec"
    links_mounts = True     # no isolation: a volume is a symlink in the task directory

    def __init__(self, enabled: bool):
        self.enabled = enabled

    def fingerprint(self) -> dict[str, str] | None:
        return {"driver.raw_exec": "1"} if self.enabled else None

    async def start(self, ctx: TaskContext) -> ProcessHandle:
        config = ctx.config
        command = config.get("command")
        if not isinstance(command, str) or not command:
            raise DriverError("raw_exec: config.command: missing command", recoverable=False)
        args = config.get("args") or []
        if not isinstance(args, list) or not all(isinstance(a, (str, int, float)) for a in args):
            raise DriverError(f"raw_exec: config.args: expected a list of strings, got {args!r}",
                              recoverable=False)
        exe = resolve(command, ctx.dirs.dir, ctx.env.get("PATH", os.defpath))
        argv = [exe, *map(str, args)]
        if SETPRIV:
            argv = [SETPRIV, "--pdeathsig", "KILL", "--", *argv]
        try:
            proc = await spawn(argv, cwd=ctx.dirs.dir, env=ctx.env)
        except OSError as exc:
            raise DriverError(f"failed to launch command with executor: {exc}") from None
        pumps = [asyncio.ensure_future(pump(proc.stdout, ctx.stdout)),
                 asyncio.ensure_future(pump(proc.stderr, ctx.stderr))]
        return ProcessHandle(proc, pumps)
