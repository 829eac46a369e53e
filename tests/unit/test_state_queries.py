"""The store's named queries (``index_members``, ``index_size``, ``totals``,
``table_version``), the scheduler's ``SchedulerState`` protocol that the snapshot
implements, and that nothing outside ``fsm/`` reaches into raw index maps."""
from __future__ import annotations

import re
from pathlib import Path

from msgspec.structs import replace

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.store import State
from caravan.scheduler.state import SchedulerState
from tests.unit.test_fsm import Log, make_eval, make_job
from tests.unit.test_fsm_allocs import alloc, node

ROOT = Path(__file__).resolve().parent.parent.parent


def placed() -> Log:
    log = Log()
    log.apply(e.NodeRegister(Node=node(1)))
    log.apply(e.JobRegister(Job=make_job("web"), Eval=make_eval("web", 1)))
    log.apply(e.PlanResults(JobID="web", Allocs=[alloc("web", 1), alloc("web", 2)]))
    return log


def test_the_store_snapshot_is_a_scheduler_state():
    assert isinstance(State.empty(), SchedulerState)
    assert isinstance(placed().fsm.state, SchedulerState)


def test_index_members_are_the_rows_under_a_key_and_keep_their_identity():
    log = placed()
    before = log.fsm.state
    on_n1 = before.index_members(t.ALLOCS, t.BY_NODE, "node-1")
    assert sorted(on_n1.keys()) == ["web-alloc-1", "web-alloc-2"]
    assert before.index_size(t.ALLOCS, t.BY_NODE, "node-1") == 2
    assert before.index_members(t.ALLOCS, t.BY_NODE, "node-1") is on_n1
    assert len(before.index_members(t.ALLOCS, t.BY_NODE, "nowhere")) == 0
    assert before.index_size(t.EVALS, t.BY_STATUS, "blocked") == 0
    # a write elsewhere keeps the entry; a write to one of its rows replaces it
    log.apply(e.JobRegister(Job=make_job("other"), Eval=make_eval("other", 2)))
    assert log.fsm.state.index_members(t.ALLOCS, t.BY_NODE, "node-1") is on_n1
    log.apply(e.PlanResults(JobID="web", Allocs=[
        replace(log.fsm.state.get(t.ALLOCS, "web-alloc-1"), DesiredStatus="stop")]))
    after = log.fsm.state.index_members(t.ALLOCS, t.BY_NODE, "node-1")
    assert after is not on_n1 and sorted(after.keys()) == ["web-alloc-1", "web-alloc-2"]
    assert log.fsm.state.index_size(t.ALLOCS, t.TERMINAL, True) == 1


def test_totals_and_table_versions():
    log = placed()
    state = log.fsm.state
    usage = dict(state.totals(t.ALLOCS, t.NODE_USAGE).items())
    assert set(usage) == {"node-1"} and usage["node-1"] == state.total(t.ALLOCS, t.NODE_USAGE, "node-1")
    assert set(state.totals(t.ALLOCS, t.JOB_COUNTS).keys()) == {"web"}
    version = state.table_version(t.DEPLOYMENTS)
    log.apply(e.JobRegister(Job=make_job("other"), Eval=make_eval("other", 2)))
    assert log.fsm.state.table_version(t.DEPLOYMENTS) is version
    assert log.fsm.state.table_version(t.JOBS) is not state.table_version(t.JOBS)


def test_no_code_outside_fsm_reaches_into_raw_index_maps():
    raw = re.compile(r"\.indexes\[")
    offenders = []
    for room in ("scheduler", "server", "client", "bench"):
        for path in sorted((ROOT / room).rglob("*.py")):
            for n, line in enumerate(path.read_text().splitlines(), 1):
                if raw.search(line):
                    offenders.append(f"{path.relative_to(ROOT)}:{n}: {line.strip()}")
    assert offenders == []
