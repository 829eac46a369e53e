"""Scaling in the FSM: policies kept from scaling blocks (IDs stable per target), the
JobScale entry's checks and writes, bounded scaling events, desired transitions."""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.scaling import TRACKED_EVENTS
from caravan.fsm.structs import Allocation, Deployment, DesiredTransition, ScalingEvent, ScalingPolicy, Task, TaskGroup
from tests.unit.test_fsm import Log, make_eval, make_job


def scaled_job(job_id="web", policy=True, **kw):
    scaling = ScalingPolicy(Type="horizontal", Min=1, Max=5, Enabled=True,
                            Policy={"cooldown": "1m"}) if policy else None
    groups = [TaskGroup(Name="g", Count=2, Scaling=scaling, Tasks=[Task(Name="t", Driver="mock")]),
              TaskGroup(Name="h", Count=1, Tasks=[Task(Name="t", Driver="mock")])]
    return make_job(job_id, TaskGroups=groups, **kw)


def policies(log, job_id="web"):
    return log.fsm.state.by_index(t.SCALING_POLICIES, "job", job_id)


def scale(log, count=None, group="g", job_id="web", **kw):
    ev = make_eval(job_id, log.index + 1, "job-scaling") if count is not None else None
    return log.apply(e.JobScale(JobID=job_id, Group=group, Count=count, Eval=ev,
                                Event=ScalingEvent(Time=log.index, **kw), SubmitTime=log.index))


def test_a_scaling_block_becomes_a_policy_with_a_target_and_a_stable_id():
    log = Log()
    log.register(scaled_job())
    (p,) = policies(log)
    assert p.Target == {"Namespace": "default", "Job": "web", "Group": "g"}
    assert (p.Min, p.Max, p.Enabled, p.Type, p.CreateIndex) == (1, 5, True, "horizontal", 1)
    assert log.fsm.state.get(t.JOBS, "web").TaskGroups[0].Scaling.ID == p.ID
    # an unchanged resubmission is no new version; a changed one keeps the ID
    assert log.register(scaled_job())["JobModifyIndex"] == 1
    log.register(scaled_job(Meta={"a": "b"}))
    (p2,) = policies(log)
    assert p2.ID == p.ID and p2.ModifyIndex == p.ModifyIndex == 1
    changed = scaled_job()
    changed.TaskGroups[0] = replace(changed.TaskGroups[0],
                                    Scaling=replace(changed.TaskGroups[0].Scaling, Max=9))
    log.register(changed)
    (p3,) = policies(log)
    assert (p3.ID, p3.Max, p3.CreateIndex, p3.ModifyIndex) == (p.ID, 9, 1, log.index)


def test_policies_follow_the_job_stop_group_removal_and_purge():
    log = Log()
    log.register(scaled_job())
    log.apply(e.JobDeregister(JobID="web", Eval=make_eval("web", 9, "job-deregister")))
    assert [p.Enabled for p in policies(log)] == [False]
    log.register(scaled_job())
    assert [p.Enabled for p in policies(log)] == [True]
    log.register(scaled_job(policy=False))
    assert policies(log) == []
    log.register(scaled_job())
    log.apply(e.JobDeregister(JobID="web", Purge=True, Eval=make_eval("web", 20)))
    assert policies(log) == [] and log.fsm.state.count(t.SCALING_POLICIES) == 0


def test_two_jobs_get_distinct_policy_ids():
    log = Log()
    log.register(scaled_job("a"))
    log.register(scaled_job("b"))
    assert policies(log, "a")[0].ID != policies(log, "b")[0].ID


def test_scale_writes_a_version_an_eval_and_an_event():
    log = Log()
    log.register(scaled_job())
    result = scale(log, 4, Message="up", Meta={"k": 1})
    job = log.fsm.state.get(t.JOBS, "web")
    assert job.Version == 1 and job.TaskGroups[0].Count == 4
    assert result["JobModifyIndex"] == job.JobModifyIndex == log.index
    ev = log.fsm.state.get(t.EVALS, result["EvalID"])
    assert ev.TriggeredBy == "job-scaling" and ev.JobModifyIndex == job.JobModifyIndex
    (event,) = log.fsm.state.get(t.SCALING_EVENTS, "web").ScalingEvents["g"]
    assert (event.Count, event.PreviousCount, event.Message, event.Meta, event.EvalID,
            event.CreateIndex) == (4, 2, "up", {"k": 1}, ev.ID, log.index)


def test_an_error_event_changes_nothing_but_the_events():
    log = Log()
    log.register(scaled_job())
    before = log.fsm.state.get(t.JOBS, "web")
    result = scale(log, None, Error=True, Message="boom")
    assert result["EvalID"] == "" and result["JobModifyIndex"] == before.ModifyIndex
    assert log.fsm.state.get(t.JOBS, "web") is before
    (event,) = log.fsm.state.get(t.SCALING_EVENTS, "web").ScalingEvents["g"]
    assert event.Error and event.Count is None and event.EvalID is None


def test_events_are_newest_first_and_bounded():
    log = Log()
    log.register(scaled_job())
    for i in range(TRACKED_EVENTS + 3):
        scale(log, None, group="h", Message=f"m{i}")
    events = log.fsm.state.get(t.SCALING_EVENTS, "web").ScalingEvents["h"]
    assert [ev.Message for ev in events] == [f"m{i}" for i in range(TRACKED_EVENTS + 2, 2, -1)]
    log.apply(e.JobDeregister(JobID="web", Purge=True, Eval=make_eval("web", 99)))
    assert log.fsm.state.get(t.SCALING_EVENTS, "web") is None


def test_scale_checks_at_apply_time():
    log = Log()
    log.register(scaled_job())
    index = log.index
    assert scale(log, 1, job_id="nope")["Code"] == 404
    r = scale(log, 1, group="x")
    assert (r["Code"], r["Error"]) == (400, 'task group "x" specified for scaling does not exist in job')
    assert scale(log, 9)["Error"] == "group count was greater than scaling policy maximum: 9 > 5"
    assert scale(log, 0)["Error"] == "group count was less than scaling policy minimum: 0 < 1"
    r = log.apply(e.JobScale(JobID="web", Group="g", Count=3, Event=ScalingEvent(),
                             JobModifyIndex=index + 100))
    assert r["Code"] == 409 and r["Error"].startswith("Enforcing job modify index")
    assert log.fsm.state.get(t.JOBS, "web").Version == 0
    assert log.fsm.state.get(t.SCALING_EVENTS, "web") is None
    log.register(make_job("sys", Type="system"))
    assert scale(log, 2, job_id="sys")["Error"] == \
        'jobs of type "system" can only be scaled to 1 or 0'


def test_scaling_is_blocked_while_a_deployment_of_the_job_is_active():
    log = Log()
    log.register(scaled_job())
    job = log.fsm.state.get(t.JOBS, "web")
    log.apply(e.PlanResults(JobID="web", Deployment=Deployment(
        ID="d1", JobID="web", JobCreateIndex=job.CreateIndex, Status="running")))
    assert scale(log, 3)["Error"] == "job scaling blocked due to active deployment"
    assert scale(log, None, Message="note").get("Error") is None


def test_desired_transition_merges_and_creates_the_eval():
    log = Log()
    log.register(make_job())
    job = log.fsm.state.get(t.JOBS, "web")
    alloc = Allocation(ID="a1", JobID="web", Job=job, TaskGroup="g", NodeID="n1",
                       DesiredStatus="run", ClientStatus="running")
    log.apply(e.PlanResults(JobID="web", Allocs=[alloc]))
    ev = make_eval("web", 50, "alloc-stop")
    r = log.apply(e.AllocDesiredTransition(
        Allocs={"a1": DesiredTransition(Migrate=True, NoShutdownDelay=False),
                "gone": DesiredTransition(Migrate=True)}, Evals=[ev]))
    stored = log.fsm.state.get(t.ALLOCS, "a1")
    assert stored.DesiredTransition == DesiredTransition(Migrate=True, NoShutdownDelay=False)
    assert stored.ModifyIndex == r["Index"] and stored.should_migrate()
    assert log.fsm.state.get(t.EVALS, ev.ID).CreateIndex == r["Index"]
    log.apply(e.AllocDesiredTransition(Allocs={"a1": DesiredTransition(Reschedule=True)}))
    assert log.fsm.state.get(t.ALLOCS, "a1").DesiredTransition == DesiredTransition(
        Migrate=True, Reschedule=True, NoShutdownDelay=False)
