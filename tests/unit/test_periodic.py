"""Periodic launches: the schedule arithmetic, the FSM's launch entry, and one
dispatcher pass over a real in-memory state (no processes, an injected clock)."""
from __future__ import annotations

import asyncio
from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from msgspec.structs import replace

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.structs import PeriodicConfig
from caravan.fsm.submit import Submitter
from caravan.scheduler.periodic import PeriodicDispatcher
from caravan.server.jobspec.periodic import launch_due
from tests.unit.test_fsm import Log, make_eval, make_job

S = 1_000_000_000
T0 = 1_700_000_000 * S    # 2023-11-14T22:13:20Z, a multiple of 5 s


def cron_job(spec="*/5 * * * * * *", tz="UTC", overlap=False, job_id="cron", **kw):
    return make_job(job_id, Type="batch", Periodic=PeriodicConfig(
        Enabled=True, Spec=spec, SpecType="cron", TimeZone=tz, ProhibitOverlap=overlap), **kw)


# --- launch_due: pure schedule arithmetic ----------------------------------------------


def test_nothing_due_before_the_next_slot():
    assert launch_due(cron_job(), T0, T0 + 4 * S) == (None, T0 + 5 * S)
    assert launch_due(cron_job(), T0 + S // 2, T0 + 4 * S) == (None, T0 + 5 * S)


def test_due_exactly_at_the_slot_and_next_is_the_one_after():
    assert launch_due(cron_job(), T0, T0 + 5 * S) == (T0 + 5 * S, T0 + 10 * S)


def test_missed_slots_are_caught_up_once_with_the_newest():
    # last launch at T0, the cluster was leaderless until T0+47s: one launch, of T0+45
    assert launch_due(cron_job(), T0, T0 + 47 * S + 123) == (T0 + 45 * S, T0 + 50 * S)


def test_five_and_six_field_specs_and_macros():
    five = cron_job("*/2 * * * *")   # every 2 minutes
    slot, upcoming = launch_due(five, T0, T0 + 3600 * S)
    assert slot % (120 * S) == 0 and upcoming == slot + 120 * S
    six = cron_job("* * * * * 2023")   # cronexpr: 5 fields + year
    assert launch_due(six, T0, T0)[1] == T0 + 40 * S   # 22:14:00
    hourly = cron_job("@hourly")
    assert launch_due(hourly, T0, T0)[1] == T0 + (46 * 60 + 40) * S   # 23:00:00


def test_time_zone_is_honoured():
    ny = ZoneInfo("America/New_York")
    job = cron_job("0 9 * * *", tz="America/New_York")
    start = int(datetime(2026, 3, 7, 12, tzinfo=ny).timestamp()) * S
    _, upcoming = launch_due(job, start, start)
    # across the DST change: 09:00 New York is 13:00 UTC on March 8th
    assert datetime.fromtimestamp(upcoming / S, ny).hour == 9
    assert upcoming == int(datetime(2026, 3, 8, 13, tzinfo=ZoneInfo("UTC")).timestamp()) * S


def test_disabled_job_has_no_launches():
    job = cron_job()
    off = replace(job, Periodic=replace(job.Periodic, Enabled=False))
    assert launch_due(off, T0, T0 + 100 * S) == (None, None)


# --- the FSM's launch entry ---------------------------------------------------------------


def launch(log: Log, slot: int, parent="cron") -> dict:
    return log.apply(e.PeriodicLaunch(ParentID=parent, LaunchTime=slot, SubmitTime=slot + 1,
                                      Eval=make_eval(parent, slot, "periodic-job")))


def test_launch_creates_child_and_is_idempotent_by_launch_time():
    log = Log()
    log.apply(e.JobRegister(Job=cron_job(), SubmitTime=T0))
    # registering records the start of the schedule: nothing before it can launch
    assert log.fsm.state.get(t.PERIODIC_LAUNCHES, "cron").Launch == T0
    assert launch(log, T0)["Code"] == 409
    res = launch(log, T0 + 5 * S)
    child = log.fsm.state.get(t.JOBS, f"cron/periodic-{T0 // S + 5}")
    assert res["DispatchedJobID"] == child.ID and child.ParentID == "cron"
    assert child.Periodic is None and child.SubmitTime == T0 + 5 * S + 1
    assert log.fsm.state.get(t.EVALS, res["EvalID"]).JobID == child.ID
    assert log.fsm.state.get(t.PERIODIC_LAUNCHES, "cron").Launch == T0 + 5 * S
    # the same slot again (another leader, a retry) and an older one: refused, no change
    before = log.fsm.state
    again = launch(log, T0 + 5 * S)
    assert again["Code"] == 409 and "not after the last launch" in again["Error"]
    assert launch(log, T0 + 2 * S)["Code"] == 409
    assert log.fsm.state.count(t.EVALS) == before.count(t.EVALS)
    assert log.fsm.state.get(t.JOB_SUMMARIES, "cron").Children.Pending == 1


def test_prohibit_overlap_skips_while_a_child_is_unfinished_and_records_the_slot():
    log = Log()
    log.apply(e.JobRegister(Job=cron_job(overlap=True), SubmitTime=T0))
    first = launch(log, T0 + 5 * S)["DispatchedJobID"]
    assert log.fsm.state.get(t.JOBS, first).Status == "pending"
    skipped = launch(log, T0 + 10 * S)
    assert skipped["Skipped"] == f'child "{first}" is still pending' and not skipped["EvalID"]
    assert log.fsm.state.get(t.PERIODIC_LAUNCHES, "cron").Launch == T0 + 10 * S
    assert [j.ID for j in log.fsm.state.by_index(t.JOBS, "parent", "cron")] == [first]
    # the child's eval completes with nothing placed: it is dead, the next slot launches
    ev = log.fsm.state.by_index(t.EVALS, "job", first)[0]
    log.apply(e.EvalUpdate(Evals=[replace(ev, Status="complete")]))
    assert log.fsm.state.get(t.JOBS, first).Status == "dead"
    assert launch(log, T0 + 15 * S)["DispatchedJobID"] == f"cron/periodic-{T0 // S + 15}"


def test_stopped_or_disabled_parent_does_not_launch_and_resumes_from_its_restart():
    log = Log()
    log.apply(e.JobRegister(Job=cron_job(), SubmitTime=T0))
    log.apply(e.JobDeregister(JobID="cron"))
    assert launch(log, T0 + 5 * S)["Code"] == 400
    assert not log.fsm.state.by_index(t.JOBS, "periodic", True)
    # registered again much later: slots missed while stopped are not caught up
    log.apply(e.JobRegister(Job=cron_job(), SubmitTime=T0 + 100 * S))
    assert [j.ID for j in log.fsm.state.by_index(t.JOBS, "periodic", True)] == ["cron"]
    assert log.fsm.state.get(t.PERIODIC_LAUNCHES, "cron").Launch == T0 + 100 * S
    disabled = cron_job()
    disabled = replace(disabled, Periodic=replace(disabled.Periodic, Enabled=False))
    log.apply(e.JobRegister(Job=disabled, SubmitTime=T0 + 101 * S))
    assert launch(log, T0 + 105 * S)["Code"] == 400


def test_a_new_schedule_counts_from_its_submission_and_a_same_spec_update_does_not():
    log = Log()
    log.apply(e.JobRegister(Job=cron_job(), SubmitTime=T0))
    launch(log, T0 + 5 * S)
    log.apply(e.JobRegister(Job=cron_job(Meta={"v": "2"}), SubmitTime=T0 + 9 * S))
    assert log.fsm.state.get(t.PERIODIC_LAUNCHES, "cron").Launch == T0 + 5 * S
    log.apply(e.JobRegister(Job=cron_job("*/3 * * * * * *"), SubmitTime=T0 + 31 * S))
    assert log.fsm.state.get(t.PERIODIC_LAUNCHES, "cron").Launch == T0 + 31 * S


def test_force_records_the_launch_but_never_moves_it_back():
    log = Log()
    log.apply(e.JobRegister(Job=cron_job(overlap=True), SubmitTime=T0))
    launch(log, T0 + 5 * S)
    # force ignores ProhibitOverlap; a force stamped by a lagging clock keeps the record
    forced = log.apply(e.PeriodicForce(ParentID="cron", LaunchTime=T0 + 3 * S,
                                       Eval=make_eval("cron", 1, "periodic-job")))
    assert forced["EvalID"] and log.fsm.state.get(t.PERIODIC_LAUNCHES, "cron").Launch == T0 + 5 * S


# --- one dispatcher pass over a real state -------------------------------------------------


def test_dispatcher_launches_due_slots_once_and_sleeps_until_the_next():
    log = Log()
    log.apply(e.JobRegister(Job=cron_job(), SubmitTime=T0))
    log.apply(e.JobRegister(Job=cron_job("*/7 * * * * * *", job_id="seven"), SubmitTime=T0))
    log.apply(e.JobRegister(Job=make_job("plain"), SubmitTime=T0))
    clock = [T0 + 12 * S]
    submitted = []

    async def submit(blob):
        submitted.append(e.decode(blob)[1])
        log.index += 1
        return log.fsm.apply(log.index, blob)

    ids = iter(range(1000))
    d = PeriodicDispatcher(state=lambda: log.fsm.state,
                           submit=Submitter(submit, lambda: f"rq-{next(ids)}"), notifier=None,
                           due=launch_due, now=lambda: clock[0],
                           new_id=lambda: f"ev-{next(ids)}")
    sleep = asyncio.run(d.run_once())
    # cron: slots 5 and 10 fell due, one catch-up of 10; seven (T0 is hh:13:20,
    # slots at :21 and :28): one of :28. Both next fire at :35.
    assert sorted((b.ParentID, b.LaunchTime) for b in submitted) == [
        ("cron", T0 + 10 * S), ("seven", T0 + 8 * S)]
    assert sleep == pytest.approx(3.0)   # cron's next slot, T0+15
    submitted.clear()
    assert asyncio.run(d.run_once()) == pytest.approx(3.0) and not submitted
    assert d.launched == 2
