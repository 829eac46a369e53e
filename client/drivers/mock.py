"""The ``mock`` driver, as Nomad's: a task that runs for ``run_for``, prints
``stdout_string`` (``stdout_repeat`` times, every ``stdout_repeat_duration``), then exits
with ``exit_code`` (or ``exit_signal``, or ``exit_err_msg``). ``start_error`` fails the
start (recoverable when ``start_error_recoverable``), ``start_block_for`` delays it, and
``kill_after`` makes the task outlive a kill signal for that long."""
from __future__ import annotations

import asyncio

from caravan.client.drivers.base import DriverError, ExitResult, TaskContext
from caravan.fsm.durations import duration_value

NS = 1e9


def _seconds(config: dict, key: str) -> float:
    value = config.get(key)
    if value in (None, ""):
        return 0.0
    try:
        return duration_value(value) / NS
    except ValueError as exc:
        raise DriverError(f"mock config {key}: {exc}", recoverable=False) from None


def _int(config: dict, key: str) -> int:
    value = config.get(key, 0)
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise DriverError(f"mock config {key}: expected an integer, got {value!r}",
                          recoverable=False)
    try:
        return int(value)
    except ValueError:
        raise DriverError(f"mock config {key}: expected an integer, got {value!r}",
                          recoverable=False) from None


class MockHandle:
    pid = None

    def __init__(self, ctx: TaskContext, config: dict):
        self.run_for = _seconds(config, "run_for")
        self.kill_after = _seconds(config, "kill_after")
        self.result = ExitResult(exit_code=_int(config, "exit_code"),
                                 signal=_int(config, "exit_signal"),
                                 err=str(config.get("exit_err_msg") or ""))
        self.stdout = str(config.get("stdout_string") or "").encode()
        self.repeat = _int(config, "stdout_repeat")
        self.repeat_every = _seconds(config, "stdout_repeat_duration")
        self.ctx = ctx
        self._done = asyncio.get_running_loop().create_future()
        self._runner = asyncio.ensure_future(self._run())

    async def _run(self) -> None:
        if self.stdout:
            self.ctx.stdout.write(self.stdout)
            for _ in range(self.repeat):
                await asyncio.sleep(self.repeat_every)
                self.ctx.stdout.write(self.stdout)
        await asyncio.sleep(self.run_for)
        self._finish(self.result)

    def _finish(self, result: ExitResult) -> None:
        if not self._done.done():
            self._done.set_result(result)

    async def wait(self) -> ExitResult:
        return await asyncio.shield(self._done)

    async def kill(self, signal: int, timeout: float) -> None:
        if self._done.done():
            return
        if self.kill_after > 0:   # the task ignores the signal this long
            try:
                await asyncio.wait_for(asyncio.shield(self._done),
                                       min(self.kill_after, timeout))
                return
            except TimeoutError:
                pass
        self._runner.cancel()
        self._finish(ExitResult(exit_code=0, signal=signal if self.kill_after <= timeout
                                else 9))


class MockDriver:
    name = "mock"
    links_mounts = True

    def fingerprint(self) -> dict[str, str] | None:
        return {"driver.mock": "1"}

    async def start(self, ctx: TaskContext) -> MockHandle:
        config = ctx.config
        block = _seconds(config, "start_block_for")
        if block:
            await asyncio.sleep(block)
        error = config.get("start_error")
        if error:
            raise DriverError(str(error),
                              recoverable=bool(config.get("start_error_recoverable")))
        return MockHandle(ctx, config)
