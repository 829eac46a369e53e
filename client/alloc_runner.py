"""One allocation on this node: its task runners, the order of their lifecycle hooks
(``client.lifecycle``), its client status, its deployment health, and its stop. Every
change is handed to ``report`` as an ``AllocClientState`` (the agent batches them to
the servers)."""
from __future__ import annotations

import asyncio
import logging
import os
import shutil
import time
from collections.abc import Callable

from caravan.client.checks import PASSING, CheckRunner, checks_for
from caravan.client.clock import rfc3339
from caravan.client.drivers.base import TaskDirs
from caravan.client.lifecycle import POSTSTOP, STAGES, Coordinator, health_states, is_sidecar, stage_of
from caravan.client.task_runner import TaskRunner, event
from caravan.fsm.entries import AllocClientState
from caravan.fsm.structs import Allocation, AllocDeploymentStatus, TaskEvent, TaskGroup, UpdateStrategy

log = logging.getLogger("caravan.client.alloc")


def task_group(alloc: Allocation) -> TaskGroup | None:
    for tg in (alloc.Job.TaskGroups or ()) if alloc.Job else ():
        if tg.Name == alloc.TaskGroup:
            return tg
    return None


def client_status(states) -> tuple[str, str]:
    """Nomad's ``getClientStatus``: failed wins, then running, then pending."""
    kinds = {("failed" if s.Failed else "dead") if s.State == "dead" else s.State
             for s in states}
    if "failed" in kinds:
        return "failed", "Failed tasks"
    if "running" in kinds:
        return "running", "Tasks are running"
    if "pending" in kinds or not kinds:
        return "pending", "No tasks have started"
    return "complete", "All tasks have completed"


def update_strategy(alloc: Allocation, tg: TaskGroup | None) -> UpdateStrategy | None:
    if tg is not None and tg.Update is not None:
        return tg.Update
    return alloc.Job.Update if alloc.Job else None


def migrate_strategy(alloc: Allocation, tg: TaskGroup | None) -> UpdateStrategy | None:
    """Out of a deployment, a service allocation's health is still watched, with the
    group's ``migrate`` block (Nomad's defaults: checks, 10s, 5m): the node drainer
    moves the next allocations once the replacements are healthy. None for other jobs."""
    if alloc.Job is None or alloc.Job.Type != "service":
        return None
    m = tg.Migrate if tg is not None and isinstance(tg.Migrate, dict) else {}
    return UpdateStrategy(HealthCheck=m.get("HealthCheck") or "checks",
                          MinHealthyTime=m.get("MinHealthyTime", 10_000_000_000),
                          HealthyDeadline=m.get("HealthyDeadline", 300_000_000_000))


class HealthWatch:
    """Deployment health: healthy once every task has been running (and, with
    ``HealthCheck = "checks"``, every service check passing) for MinHealthyTime;
    unhealthy when a task fails or HealthyDeadline passes first."""

    def __init__(self, update: UpdateStrategy, on_result: Callable[[bool], None]):
        self.min_healthy = (update.MinHealthyTime or 0) / 1e9
        self.deadline = (update.HealthyDeadline or 300_000_000_000) / 1e9
        self.on_result = on_result
        self.decided: bool | None = None
        self._timer: asyncio.TimerHandle | None = None
        self._since: tuple | None = None
        loop = asyncio.get_running_loop()
        self._deadline = loop.call_later(self.deadline, self._decide, False)

    def _decide(self, healthy: bool) -> None:
        if self.decided is not None:
            return
        self.decided = healthy
        self.cancel()
        self.on_result(healthy)

    def observe(self, states, checks_passing: bool = True) -> None:
        if self.decided is not None:
            return
        if any(s.State == "dead" and s.Failed for s in states):
            self._decide(False)
            return
        if states and checks_passing and all(s.State == "running" for s in states):
            started = tuple(s.StartedAt for s in states)
            if started != self._since:   # (re)started: the clock starts again
                self._since = started
                if self._timer is not None:
                    self._timer.cancel()
                self._timer = asyncio.get_running_loop().call_later(
                    self.min_healthy, self._decide, True)
        else:
            self._since = None
            if self._timer is not None:
                self._timer.cancel()
                self._timer = None

    def cancel(self) -> None:
        for handle in (self._timer, self._deadline):
            if handle is not None:
                handle.cancel()


class AllocRunner:
    def __init__(self, alloc: Allocation, *, alloc_dir: str, node, drivers: dict,
                 region: str, report: Callable[[AllocClientState], None],
                 on_pid: Callable[[str, str, int | None], None] = lambda a, t, p: None):
        self.alloc = alloc
        self.root = os.path.join(alloc_dir, alloc.ID)
        self.report = report
        self.tg = task_group(alloc)
        self.runners: dict[str, TaskRunner] = {}
        self.health_result: bool | None = None
        self._stopping: asyncio.Task | None = None
        self._killing: asyncio.Task | None = None     # the one kill of the tasks
        tasks = list(self.tg.Tasks or ()) if self.tg else []
        # Lifecycle hooks: each task starts only once its stage's gate is open.
        self.coordinator = Coordinator(tasks)
        self.gates = {stage: asyncio.Event() for stage in STAGES}
        self.has_sidecars = any(is_sidecar(t) for t in tasks)
        for task in tasks:
            driver = drivers.get(task.Driver)
            self.runners[task.Name] = TaskRunner(
                alloc=alloc, tg=self.tg, task=task, node=node, driver=driver,
                driver_error="" if driver else f'driver "{task.Driver}" is not available on '
                                                 f"this node",
                dirs=TaskDirs(self.root, task.Name), region=region, on_change=self._changed,
                on_pid=lambda name, pid: on_pid(alloc.ID, name, pid),
                gate=self.gates[stage_of(task)])
        self.health: HealthWatch | None = None
        self.use_checks = False
        self.checks: dict[str, list[CheckRunner]] = {}

    # --- lifecycle ----------------------------------------------------------------------------

    def start(self) -> None:
        self._watch_health()
        if not self.runners:
            self._send()
        self._coordinate()
        for runner in self.runners.values():
            runner.start()

    def update(self, alloc: Allocation) -> None:
        """A newer version of the allocation from the servers: stopped, or updated in
        place (a new job version; tasks keep running). An allocation moved into another
        deployment has its health decided again for that deployment, as Nomad does."""
        previous = self.alloc
        self.alloc = alloc
        if alloc.DesiredStatus in ("stop", "evict") or alloc.ClientStatus == "lost":
            self.stop()
            return
        self.tg = task_group(alloc) or self.tg
        for runner in self.runners.values():
            runner.alloc, runner.tg = alloc, self.tg
        if alloc.DeploymentID != previous.DeploymentID:
            if self.health is not None:
                self.health.cancel()
            self.health, self.health_result = None, None
            self._watch_health()
            self._changed()

    def _watch_health(self) -> None:
        update = update_strategy(self.alloc, self.tg)
        if not self.alloc.DeploymentID:
            update = migrate_strategy(self.alloc, self.tg)
        if update is not None and update.HealthCheck != "manual":
            self.health = HealthWatch(update, self._health)
            self.use_checks = update.HealthCheck in ("checks", "", None)

    def stop(self) -> asyncio.Task:
        """The allocation is stopped: kill its tasks (leader first, sidecars last), then
        its poststop tasks run; done once every task is dead."""
        if self._stopping is None:
            self._stopping = asyncio.ensure_future(self._stop_all())
        return self._stopping

    async def _stop_all(self) -> None:
        if self._killing is None:
            self._killing = asyncio.ensure_future(self._kill_tasks())
        await asyncio.shield(self._killing)
        # the coordinator opens the poststop gate once the other tasks are dead
        await asyncio.gather(*(asyncio.shield(r.main) for r in self.runners.values()
                               if r.main is not None), return_exceptions=True)
        self._stop_watchers()

    async def shutdown(self) -> None:
        """The agent is stopping: kill every task, poststop ones included, and start
        nothing more."""
        self.coordinator.stop()
        for gate in self.gates.values():
            gate.clear()
        await asyncio.gather(*(r.kill() for r in self.runners.values()),
                             return_exceptions=True)
        self._stop_watchers()

    def _stop_watchers(self) -> None:
        for runners in self.checks.values():
            for check in runners:
                check.stop()
        if self.health is not None:
            self.health.cancel()

    async def _kill_tasks(self) -> None:
        """Nomad's ``killTasks``: the leader first, then the other tasks, then the
        sidecars; poststop tasks are left to run."""
        runners = [r for r in self.runners.values() if stage_of(r.task) != POSTSTOP]
        for r in runners:
            if r.task.Leader:
                await r.kill()
        await asyncio.gather(*(r.kill() for r in runners
                               if not r.task.Leader and not is_sidecar(r.task)),
                             return_exceptions=True)
        await asyncio.gather(*(r.kill() for r in runners
                               if not r.task.Leader and is_sidecar(r.task)),
                             return_exceptions=True)

    @property
    def done(self) -> bool:
        return all(r.dead for r in self.runners.values())

    async def destroy(self) -> None:
        """Stop everything and remove the allocation's directory (it is gone from the
        servers)."""
        await self.stop()
        shutil.rmtree(self.root, ignore_errors=True)

    # --- changes ------------------------------------------------------------------------------

    def _changed(self) -> None:
        self._kill_rules()
        self._coordinate()
        self._start_checks()
        if self.health is not None:
            states = {n: r.state for n, r in self.runners.items()}
            self.health.observe(health_states((r.task for r in self.runners.values()), states),
                                self._checks_passing())
        self._send()

    def _coordinate(self) -> None:
        """Open the gates of the lifecycle stages that may run now, close the others."""
        allowed = self.coordinator.update({n: r.state for n, r in self.runners.items()})
        for stage, gate in self.gates.items():
            if stage in allowed:
                gate.set()
            else:
                gate.clear()

    def _start_checks(self) -> None:
        """A task's service checks start once it first runs, and stop with the alloc."""
        if self._stopping is not None:
            return
        for name, runner in self.runners.items():
            if name in self.checks or runner.state.State != "running":
                continue
            self.checks[name] = [
                CheckRunner(check=check, service=service, alloc=self.alloc, task=runner.task,
                            env=runner.env, task_dir=runner.dirs.dir, on_change=self._changed)
                for service, check in checks_for(self.tg, runner.task, runner.env, runner.node)]
            for check in self.checks[name]:
                check.start()

    def _checks_passing(self) -> bool:
        if not self.use_checks:
            return True
        for name, runner in self.runners.items():
            if checks_for(self.tg, runner.task) and name not in self.checks:
                return False
        return all(c.status == PASSING for cs in self.checks.values() for c in cs)

    def _kill_rules(self) -> None:
        """Nomad's ``handleTaskStateUpdates``: a failed task takes the others down
        ("Sibling Task Failed"), so does a dead leader task ("Leader Task Dead"), and
        sidecars are killed once only sidecars are left ("Main Tasks Dead"). Poststop
        tasks neither count nor are killed: they run once the others are dead."""
        if self._killing is not None or self._stopping is not None:
            return
        why: TaskEvent | None = None
        live = []
        for name, runner in self.runners.items():
            if stage_of(runner.task) == POSTSTOP:
                continue
            if not runner.dead:
                live.append(runner)
            elif runner.failed:
                if why is None:
                    why = event("Sibling Task Failed", f'Task\'s sibling "{name}" failed',
                                FailedSibling=name)
            elif runner.task.Leader:
                why = event("Leader Task Dead", "Leader Task in Group dead")
        if not live:
            return
        if why is None and self.has_sidecars and all(is_sidecar(r.task) for r in live):
            why = event("Main Tasks Dead", "Main tasks in the group died")
        if why is None:
            return
        self._killing = asyncio.ensure_future(self._kill_tasks())
        for runner in live:
            runner.emit(why)

    def _health(self, healthy: bool) -> None:
        self.health_result = healthy
        self._send()

    def _send(self) -> None:
        states = {n: r.state for n, r in self.runners.items()}
        status, description = client_status(states.values())
        if not self.runners:
            status, description = "failed", f"task group {self.alloc.TaskGroup!r} has no tasks"
        deployment = None
        if self.health_result is not None:
            deployment = AllocDeploymentStatus(
                Healthy=self.health_result, Timestamp=rfc3339(),
                Canary=bool(self.alloc.DeploymentStatus and self.alloc.DeploymentStatus.Canary))
        self.report(AllocClientState(AllocID=self.alloc.ID, ClientStatus=status,
                                     ClientDescription=description, TaskStates=states,
                                     DeploymentStatus=deployment, ModifyTime=time.time_ns()))
