"""One task of an allocation, from Received to dead: its directory, what it needs on
disk, its driver, the restart policy, and the kill. Every change of its ``TaskState`` is
handed to ``on_change`` (the allocation runner reports it to the servers)."""
from __future__ import annotations

import asyncio
import logging
import signal as signals
import time
from collections.abc import Callable

from msgspec.structs import replace

from caravan.client.clock import ZERO_TIME, rfc3339
from caravan.client.drivers.base import DriverError, TaskContext, TaskDirs
from caravan.client.lifecycle import terminates_on_success
from caravan.client.logs import RotatingLog
from caravan.client.prestart import PrestartError, fetch_artifact, render_template, write_payload
from caravan.client.restarts import NOT_RESTARTING, RESTART, TERMINATED, RestartTracker
from caravan.client.taskenv import interpolate_value, task_env
from caravan.client.volumes import link_mounts, task_mounts
from caravan.fsm.durations import go_duration
from caravan.fsm.structs import Allocation, Node, Task, TaskEvent, TaskGroup, TaskState

log = logging.getLogger("caravan.client.task")

DEFAULT_KILL_TIMEOUT_NS = 5_000_000_000


def event(kind: str, message: str = "", **fields) -> TaskEvent:
    """A TaskEvent with Nomad's DisplayMessage (the message itself, for these types)."""
    return TaskEvent(Type=kind, Time=time.time_ns(), Message=message, DisplayMessage=message,
                     **fields)


def kill_signal(task: Task) -> int:
    name = task.KillSignal or "SIGINT"
    try:
        return int(getattr(signals, name if name.startswith("SIG") else "SIG" + name))
    except AttributeError:
        return int(signals.SIGINT)


class TaskRunner:
    def __init__(self, *, alloc: Allocation, tg: TaskGroup | None, task: Task, node: Node,
                 driver, dirs: TaskDirs, region: str, on_change: Callable[[], None],
                 on_pid: Callable[[str, int | None], None] = lambda task, pid: None,
                 state: TaskState | None = None, driver_error: str = "",
                 gate: asyncio.Event | None = None):
        self.alloc = alloc
        self.tg = tg
        self.task = task
        self.node = node
        self.driver = driver
        self.driver_error = driver_error
        self.dirs = dirs
        self.region = region
        self.on_change = on_change
        self.on_pid = on_pid
        self.state = state or TaskState(State="pending", Events=[])
        # the lifecycle coordinator's gate for this task's stage: each start waits for it
        self.gate = gate
        self.restarts = RestartTracker(
            tg.RestartPolicy if tg else None,
            terminates_on_success(alloc.Job.Type if alloc.Job else None, task), time.time_ns)
        self.handle = None
        self.env: dict[str, str] = {}      # the environment of the latest start
        self._kill_requested: asyncio.Event = asyncio.Event()
        self.main: asyncio.Task | None = None
        self.stdout = self.stderr = None

    # --- state -----------------------------------------------------------------------------

    def _emit(self, ev: TaskEvent, **changes) -> None:
        self.state = replace(self.state, Events=[*(self.state.Events or ()), ev], **changes)
        self.on_change()

    def emit(self, ev: TaskEvent) -> None:
        """Record an event the allocation runner raises (e.g. why it kills the task)."""
        if not self.dead:
            self._emit(ev)

    @property
    def dead(self) -> bool:
        return self.state.State == "dead"

    @property
    def failed(self) -> bool:
        return self.state.Failed

    # --- running -----------------------------------------------------------------------------

    def start(self) -> None:
        self.main = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        try:
            await self._lifecycle()
        except asyncio.CancelledError:
            raise
        except Exception as exc:   # a bug must not leave the task "running" forever
            log.exception("task %s of alloc %s", self.task.Name, self.alloc.ID)
            self._emit(event("Setup Failure", f"failed to run task: {exc}", FailsTask=True,
                             SetupError=str(exc)),
                       State="dead", Failed=True, FinishedAt=rfc3339())
        finally:
            for sink in (self.stdout, self.stderr):
                if sink is not None:
                    sink.close()

    async def _wait_gate(self) -> bool:
        """Wait until the task's lifecycle stage may run; False when killed first."""
        if self.gate is None or self.gate.is_set():
            return not self._kill_requested.is_set()
        opened = asyncio.ensure_future(self.gate.wait())
        killer = asyncio.ensure_future(self._kill_requested.wait())
        await asyncio.wait({opened, killer}, return_when=asyncio.FIRST_COMPLETED)
        opened.cancel()
        killer.cancel()
        return not self._kill_requested.is_set()

    async def _lifecycle(self) -> None:
        self._emit(event("Received", "Task received by client"))
        # Until its lifecycle stage may run (prestart tasks done, main tasks started,
        # main tasks dead...) the task stays pending with only its Received event.
        if not await self._wait_gate():
            self._finish(failed=False)      # killed before it ever started
            return
        self._emit(event("Task Setup", "Building Task Directory"))
        self.dirs.build()
        logcfg = self.task.LogConfig
        files = (logcfg.MaxFiles if logcfg and logcfg.MaxFiles else 10)
        size = (logcfg.MaxFileSizeMB if logcfg and logcfg.MaxFileSizeMB else 10)
        self.stdout = RotatingLog(self.dirs.logs, self.task.Name, "stdout", files, size)
        self.stderr = RotatingLog(self.dirs.logs, self.task.Name, "stderr", files, size)
        if self.driver is None:
            self._emit(event("Driver Failure", self.driver_error, DriverError=self.driver_error,
                             FailsTask=True),
                       State="dead", Failed=True, FinishedAt=rfc3339())
            return
        while not self._kill_requested.is_set():
            decision = await self._attempt()
            if decision is None:      # killed while running or starting
                break
            if decision.kind == TERMINATED:
                self._finish(failed=False)
                return
            if decision.kind == NOT_RESTARTING:
                self._emit(event("Not Restarting", decision.reason, RestartReason=decision.reason,
                                 FailsTask=True))
                self._finish(failed=True)
                return
            assert decision.kind == RESTART
            delay = decision.delay_ns
            self._emit(event("Restarting", f"Task restarting in {go_duration(delay)}",
                             RestartReason=decision.reason, StartDelay=delay),
                       State="pending", Restarts=self.state.Restarts + 1,
                       LastRestart=rfc3339())
            try:
                await asyncio.wait_for(self._kill_requested.wait(), delay / 1e9)
            except TimeoutError:
                pass
            if not await self._wait_gate():
                break
        self._killed()

    def _context(self) -> TaskContext:
        env = task_env(self.alloc, self.tg, self.task, self.node, self.dirs, self.region)
        job = self.alloc.Job
        if self.task.DispatchPayload is not None and self.task.DispatchPayload.File and job:
            write_payload(self.dirs.dir, self.task.DispatchPayload.File, job.Payload)
        if self.task.Artifacts:
            self._emit(event("Downloading Artifacts", "Client is downloading artifacts"))
            for art in self.task.Artifacts:
                fetch_artifact(art, self.dirs.dir)
        for tmpl in self.task.Templates or ():
            env.update(render_template(tmpl, self.dirs.dir, env))
        mounts = task_mounts(self.alloc, self.tg, self.task, self.node)
        if mounts and getattr(self.driver, "links_mounts", True):
            link_mounts(mounts, self.dirs.dir)
        config = interpolate_value(dict(self.task.Config or {}), env, self.node)
        self.env = env
        return TaskContext(alloc=self.alloc, task=self.task, dirs=self.dirs, env=env,
                           stdout=self.stdout, stderr=self.stderr, config=config,
                           mounts=mounts,
                           driver_event=lambda msg: self._emit(event("Driver", msg,
                                                                     DriverMessage=msg)))

    async def _attempt(self):
        """Prepare and start the task once and wait for it to end; the restart
        decision, or None when a kill ended it."""
        try:
            ctx = self._context()
        except PrestartError as exc:
            kind = "Failed Artifact Download" if "artifact" in str(exc) else "Setup Failure"
            msg = str(exc)
            self._emit(event(kind, msg, DownloadError=msg if kind.startswith("Failed") else "",
                             SetupError=msg))
            return self.restarts.on_start_error(recoverable=True)
        starting = asyncio.ensure_future(self.driver.start(ctx))
        killer = asyncio.ensure_future(self._kill_requested.wait())
        await asyncio.wait({starting, killer}, return_when=asyncio.FIRST_COMPLETED)
        if not starting.done():     # killed while the driver was still starting it
            starting.cancel()
            killer.cancel()
            await asyncio.gather(starting, return_exceptions=True)
            return None
        killer.cancel()
        try:
            self.handle = starting.result()
        except DriverError as exc:
            msg = str(exc)
            self._emit(event("Driver Failure", msg, DriverError=msg))
            return self.restarts.on_start_error(exc.recoverable)
        self.on_pid(self.task.Name, self.handle.pid)
        self._emit(event("Started", "Task started by client"), State="running",
                   StartedAt=rfc3339(), FinishedAt=ZERO_TIME)
        waiter = asyncio.ensure_future(self.handle.wait())
        killer = asyncio.ensure_future(self._kill_requested.wait())
        await asyncio.wait({waiter, killer}, return_when=asyncio.FIRST_COMPLETED)
        if not waiter.done():
            killer.cancel()
            await self._kill_handle()
            waiter.cancel()
            return None
        killer.cancel()
        result = waiter.result()
        self.on_pid(self.task.Name, None)
        self.handle = None
        display = f"Exit Code: {result.exit_code}"
        if result.signal:
            display += f", Signal: {result.signal}"
        if result.err:
            display += f", Exit Message: {result.err!r}"
        self._emit(event("Terminated", display, ExitCode=result.exit_code,
                         Signal=result.signal), State="pending")
        if self._kill_requested.is_set():
            return None
        return self.restarts.on_exit(result.successful())

    async def _kill_handle(self) -> None:
        timeout = self.task.KillTimeout if self.task.KillTimeout is not None \
            else DEFAULT_KILL_TIMEOUT_NS
        self._emit(event(
            "Killing", f"Sent interrupt. Waiting {go_duration(timeout)} before force killing",
            KillTimeout=timeout))
        await self.handle.kill(kill_signal(self.task), timeout / 1e9)
        self.on_pid(self.task.Name, None)
        self.handle = None

    def _killed(self) -> None:
        self._emit(event("Killed", "Task successfully killed"), State="dead",
                   FinishedAt=rfc3339())

    def _finish(self, failed: bool) -> None:
        self.state = replace(self.state, State="dead", Failed=failed, FinishedAt=rfc3339())
        self.on_change()

    # --- stopping ----------------------------------------------------------------------------

    async def kill(self, ev: TaskEvent | None = None) -> None:
        """Stop the task and wait until it is dead; ``ev`` (e.g. Sibling Task Failed)
        says why, before the Killing event."""
        if self.main is None or self.main.done():
            return
        if ev is not None and not self._kill_requested.is_set():
            self._emit(ev)
        self._kill_requested.set()
        await asyncio.shield(self.main)
