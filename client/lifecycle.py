"""Task lifecycle hooks, as Nomad 1.x's client orders them (``client/allocrunner/
tasklifecycle/coordinator.go`` and the alloc runner's kill rules). Pure: given the
group's tasks and their states, which kinds of task may (re)start now, and what the
restart policy does with a successful exit.

The coordinator is a small state machine over the allocation:

``init`` -> ``prestart`` (prestart tasks may run) -> ``main`` (every ephemeral prestart
task finished successfully and every prestart sidecar is running: main tasks start,
prestart sidecars keep running) -> ``poststart`` (no main task is pending any more:
poststart tasks start) -> ``wait_alloc`` (ephemeral poststart tasks are done) ->
``poststop`` (every task but the poststop ones is dead, reachable from any state: only
poststop tasks may run).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping

from caravan.fsm.structs import Task, TaskState

# What a task is, for ordering (Nomad's lifecycleStage).
PRESTART_EPHEMERAL = "prestart"
PRESTART_SIDECAR = "prestart-sidecar"
MAIN = "main"
POSTSTART_EPHEMERAL = "poststart"
POSTSTART_SIDECAR = "poststart-sidecar"
POSTSTOP = "poststop"
STAGES = (PRESTART_EPHEMERAL, PRESTART_SIDECAR, MAIN, POSTSTART_EPHEMERAL, POSTSTART_SIDECAR,
          POSTSTOP)

# Coordinator states and the stages each lets run.
INIT, PRESTART, MAIN_STATE, POSTSTART, WAIT_ALLOC, POSTSTOP_STATE = (
    "init", "prestart", "main", "poststart", "wait_alloc", "poststop")
ALLOWED: dict[str, frozenset[str]] = {
    INIT: frozenset(),
    PRESTART: frozenset({PRESTART_EPHEMERAL, PRESTART_SIDECAR}),
    MAIN_STATE: frozenset({PRESTART_SIDECAR, MAIN}),
    POSTSTART: frozenset({PRESTART_SIDECAR, MAIN, POSTSTART_EPHEMERAL, POSTSTART_SIDECAR}),
    WAIT_ALLOC: frozenset({PRESTART_SIDECAR, MAIN, POSTSTART_SIDECAR}),
    POSTSTOP_STATE: frozenset({POSTSTOP}),
}


def stage_of(task: Task) -> str:
    """Nomad's ``taskLifecycleStage``: a task without a hook is a main task (a main
    task marked sidecar starts with the others, so it is one too)."""
    hook = task.hook()
    if hook == "prestart":
        return PRESTART_SIDECAR if task.sidecar() else PRESTART_EPHEMERAL
    if hook == "poststart":
        return POSTSTART_SIDECAR if task.sidecar() else POSTSTART_EPHEMERAL
    if hook == "poststop":
        return POSTSTOP
    return MAIN


def is_sidecar(task: Task) -> bool:
    """The alloc runner's ``IsSidecarTask``: any task with ``sidecar = true``."""
    return task.sidecar()


def terminates_on_success(job_type: str | None, task: Task) -> bool:
    """``NewRestartTracker``'s ``onSuccess``, inverted: a successful exit ends the task
    (instead of restarting it) for batch and sysbatch jobs, for ephemeral prestart and
    poststart tasks (of any job type), and always for poststop tasks; prestart and
    poststart sidecars are restarted like service tasks."""
    terminates = job_type in ("batch", "sysbatch")
    hook = task.hook()
    if hook in ("prestart", "poststart"):
        terminates = not task.sidecar()
    if hook == "poststop":
        terminates = True
    return terminates


class Coordinator:
    """Which lifecycle stages may run, from the tasks' states (``update``)."""

    def __init__(self, tasks: Iterable[Task]):
        self.stages: dict[str, list[str]] = {}
        for task in tasks:
            self.stages.setdefault(stage_of(task), []).append(task.Name)
        self.state = INIT
        self.stopped = False

    def allowed(self) -> frozenset[str]:
        return frozenset() if self.stopped else ALLOWED[self.state]

    def may_run(self, task: Task) -> bool:
        return stage_of(task) in self.allowed()

    def update(self, states: Mapping[str, TaskState]) -> frozenset[str]:
        """Move through as many states as the task states allow; the stages allowed."""
        while True:
            nxt = self._next(states)
            if nxt == self.state:
                return self.allowed()
            self.state = nxt

    def stop(self) -> None:
        """Nothing more may start (the agent is shutting down)."""
        self.stopped = True

    # --- transitions -----------------------------------------------------------------

    def _tasks(self, *stages: str) -> list[str]:
        return [name for stage in stages for name in self.stages.get(stage, ())]

    def _next(self, states: Mapping[str, TaskState]) -> str:
        if self._alloc_done(states):
            return POSTSTOP_STATE
        if self.state == INIT:
            return PRESTART if all(_state(states, n) == "pending" for n in states) else INIT
        if self.state == PRESTART:
            return MAIN_STATE if self._prestart_done(states) else PRESTART
        if self.state == MAIN_STATE:
            return POSTSTART if self._main_done(states) else MAIN_STATE
        if self.state == POSTSTART:
            return WAIT_ALLOC if self._poststart_done(states) else POSTSTART
        return self.state

    def _prestart_done(self, states) -> bool:
        for name in self._tasks(PRESTART_EPHEMERAL):
            st = states.get(name)
            if st is None or st.State != "dead" or st.Failed:
                return False
        return all(_state(states, n) == "running" for n in self._tasks(PRESTART_SIDECAR))

    def _main_done(self, states) -> bool:
        return all(_state(states, n) != "pending" for n in self._tasks(MAIN))

    def _poststart_done(self, states) -> bool:
        return all(_state(states, n) == "dead" for n in self._tasks(POSTSTART_EPHEMERAL))

    def _alloc_done(self, states) -> bool:
        return all(_state(states, n) == "dead" for stage, names in self.stages.items()
                   if stage != POSTSTOP for n in names)


def _state(states: Mapping[str, TaskState], name: str) -> str:
    st = states.get(name)
    return st.State if st is not None else "pending"


def health_states(tasks: Iterable[Task], states: Mapping[str, TaskState]) -> list[TaskState]:
    """The task states deployment health is judged on (Nomad's allochealth tracker):
    poststop tasks are left out (they stay pending while the alloc runs), ephemeral
    prestart tasks only count when they failed, ephemeral poststart tasks not once
    they finished successfully."""
    out = []
    for task in tasks:
        st = states.get(task.Name)
        if st is None:
            continue
        stage = stage_of(task)
        if stage == POSTSTOP:
            continue
        if stage == PRESTART_EPHEMERAL and not st.Failed:
            continue
        if stage == POSTSTART_EPHEMERAL and st.State == "dead" and not st.Failed:
            continue
        out.append(st)
    return out
