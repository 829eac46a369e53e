"""Reschedule policies as pure parts: delay functions, eligibility and trackers
(``fsm.reschedule``), defaults and validation (``server.jobspec``), the HCL blocks, the
broker holding ``WaitUntil`` evals, the state machine's entries (follow-ups, links,
force-reschedule, desired transitions), the deployment watcher's permission to replace
a failed alloc, and the node reschedule penalty."""
from __future__ import annotations

import asyncio
import json

import msgspec
import pytest
from msgspec.structs import replace

from caravan.fsm import entries as e
from caravan.fsm import reschedule as rs
from caravan.fsm import schema as t
from caravan.fsm.structs import (
    Allocation,
    AllocDeploymentStatus,
    Deployment,
    DeploymentState,
    DesiredTransition,
    Evaluation,
    Job,
    Node,
    RescheduleEvent,
    ReschedulePolicy,
    RescheduleTracker,
    Task,
    TaskGroup,
    TaskState,
)
from caravan.fsm.times import format_rfc3339
from caravan.scheduler.broker import EvalBroker
from caravan.scheduler.deployment_watcher import Action, decide, entry_for
from caravan.scheduler.rank import RankedNode, ScoreBoard, node_reschedule_penalty
from caravan.server.jobspec.canonicalize import canonicalize
from caravan.server.jobspec.hcl import parse_job
from caravan.server.jobspec.validate import validate_job
from caravan.server.rpc.node import failure_eval
from tests.unit.test_fsm import Log
from tests.unit.test_fsm_allocs import alloc

S = 1_000_000_000
T0 = 1_700_000_000 * S


def policy(**kw) -> ReschedulePolicy:
    base = dict(Attempts=0, Interval=0, Delay=5 * S, DelayFunction="exponential",
                MaxDelay=60 * S, Unlimited=True)
    base.update(kw)
    return ReschedulePolicy(**base)


def job_with(p: ReschedulePolicy | None, job_type: str = "service") -> Job:
    return Job(ID="web", Name="web", Type=job_type, Namespace="default", Priority=50,
               TaskGroups=[TaskGroup(Name="g", Count=1, ReschedulePolicy=p,
                                     Tasks=[Task(Name="t", Driver="mock")])])


def failed_alloc(p: ReschedulePolicy | None, delays: list[int] = (), at: int = T0,
                 since: int = 0, **kw) -> Allocation:
    events = [RescheduleEvent(RescheduleTime=at - since - (len(delays) - i) * S,
                              PrevAllocID=f"p{i}", PrevNodeID=f"n{i}", Delay=d)
              for i, d in enumerate(delays)]
    base = dict(ID="a", Name="web.g[0]", JobID="web", TaskGroup="g", NodeID="node",
                Job=job_with(p), DesiredStatus="run", ClientStatus="failed",
                TaskStates={"t": TaskState(State="dead", Failed=True,
                                           FinishedAt=format_rfc3339(at))},
                RescheduleTracker=RescheduleTracker(Events=events) if delays else None)
    base.update(kw)
    return Allocation(**base)


# --- delays, eligibility, trackers ----------------------------------------------------------


def test_delay_functions():
    expo = policy()
    assert rs.next_delay(failed_alloc(expo)) == 5 * S
    assert rs.next_delay(failed_alloc(expo, [5 * S])) == 10 * S
    assert rs.next_delay(failed_alloc(expo, [5 * S, 10 * S, 20 * S, 40 * S])) == 60 * S
    const = policy(DelayFunction="constant")
    assert rs.next_delay(failed_alloc(const, [5 * S, 5 * S])) == 5 * S
    fib = policy(DelayFunction="fibonacci")
    assert rs.next_delay(failed_alloc(fib, [5 * S])) == 5 * S
    assert rs.next_delay(failed_alloc(fib, [5 * S, 5 * S])) == 10 * S
    assert rs.next_delay(failed_alloc(fib, [5 * S, 10 * S])) == 15 * S


def test_delay_resets_after_running_longer_than_the_ceiling():
    capped = failed_alloc(policy(), [40 * S], since=120 * S)   # ran 2 min since the last one
    assert rs.next_delay(capped) == 5 * S
    recent = failed_alloc(policy(), [40 * S])
    assert rs.next_delay(recent) == 60 * S


def test_next_reschedule_time_and_attempt_limits():
    limited = policy(Attempts=2, Interval=3600 * S, Unlimited=False, DelayFunction="constant")
    assert rs.next_reschedule_time(failed_alloc(limited)) == (T0 + 5 * S, True)
    assert rs.next_reschedule_time(failed_alloc(limited, [5 * S]))[1] is True
    assert rs.next_reschedule_time(failed_alloc(limited, [5 * S, 5 * S]))[1] is False
    # attempts older than the interval no longer count
    assert rs.next_reschedule_time(failed_alloc(limited, [5 * S, 5 * S], since=7200 * S))[1]
    assert rs.next_reschedule_time(failed_alloc(policy()))[1] is True
    assert rs.next_reschedule_time(failed_alloc(None)) == (0, False)
    assert rs.next_reschedule_time(failed_alloc(policy(), ClientStatus="complete"))[1] is False
    disabled = policy(Attempts=0, Unlimited=False)
    assert not rs.enabled(disabled) and not rs.eligible(failed_alloc(disabled), disabled, T0)


def test_fail_time_falls_back_to_modify_time():
    a = failed_alloc(policy(), TaskStates=None, ModifyTime=T0 + 3)
    assert rs.last_event_time(a) == T0 + 3


def test_tracker_carries_events_and_penalty_nodes():
    prev = failed_alloc(policy(), [5 * S, 10 * S])
    tracker = rs.tracker_for(prev, T0 + 30 * S)
    assert [ev.Delay for ev in tracker.Events] == [5 * S, 10 * S, 20 * S]
    assert tracker.Events[-1] == RescheduleEvent(RescheduleTime=T0 + 30 * S, PrevAllocID="a",
                                                 PrevNodeID="node", Delay=20 * S)
    assert rs.penalty_nodes(prev) == {"node", "n0", "n1"}
    many = failed_alloc(policy(), [5 * S] * 8)
    assert len(rs.tracker_for(many, T0).Events) == rs.MAX_PAST_EVENTS + 1
    limited = policy(Attempts=3, Interval=100 * S, Unlimited=False)
    old = failed_alloc(limited, [5 * S], since=500 * S)
    assert len(rs.tracker_for(old, T0).Events) == 1     # the old event is outside the interval


# --- defaults, validation, HCL --------------------------------------------------------------


def canonical(spec: dict) -> Job:
    job = msgspec.json.decode(json.dumps(spec).encode(), type=Job)
    canonicalize(job)
    return job


def spec(job_type: str = "service", job_level: dict | None = None,
         group: dict | None = None) -> dict:
    g = {"Name": "g", "Tasks": [{"Name": "t", "Driver": "mock"}]}
    if group is not None:
        g["ReschedulePolicy"] = group
    out = {"ID": "j", "Type": job_type, "TaskGroups": [g]}
    if job_level is not None:
        out["Reschedule"] = job_level
    return out


def test_defaults_per_job_type_and_merging():
    service = canonical(spec()).TaskGroups[0].ReschedulePolicy
    assert service == ReschedulePolicy(Attempts=0, Interval=0, Delay=30 * S,
                                       DelayFunction="exponential", MaxDelay=3600 * S,
                                       Unlimited=True)
    batch = canonical(spec("batch")).TaskGroups[0].ReschedulePolicy
    assert batch == ReschedulePolicy(Attempts=1, Interval=24 * 3600 * S, Delay=5 * S,
                                     DelayFunction="constant", MaxDelay=0, Unlimited=False)
    assert canonical(spec("system")).TaskGroups[0].ReschedulePolicy is None
    merged = canonical(spec(job_level={"Delay": 10 * S, "Unlimited": False, "Attempts": 3,
                                       "Interval": 3600 * S},
                            group={"Attempts": 2}))
    rp = merged.TaskGroups[0].ReschedulePolicy
    assert (rp.Attempts, rp.Delay, rp.Unlimited, rp.Interval, rp.DelayFunction) == \
        (2, 10 * S, False, 3600 * S, "exponential")
    assert merged.Reschedule is None
    assert validate_job(merged)[0] == []


@pytest.mark.parametrize("group, message", [
    ({"Delay": S // 2}, "Reschedule policy: Delay cannot be less than 1s (got 500ms)"),
    ({"DelayFunction": "linear"},
     'Reschedule policy: Invalid delay function "linear", must be one of '
     '["constant" "exponential" "fibonacci"]'),
    ({"MaxDelay": 10 * S, "Delay": 20 * S},
     "Reschedule policy: Max Delay cannot be less than Delay 20s (got 10s)"),
    ({"Attempts": 2, "Interval": 10 * S, "Unlimited": False},
     "Reschedule policy: Interval cannot be less than 15s (got 10s)"),
    ({"Attempts": 2, "Interval": 3600 * S},
     "Reschedule policy: If Attempts >0, Unlimited cannot also be set to true"),
    ({"Attempts": 10, "Interval": 60 * S, "Unlimited": False, "Delay": 10 * S,
      "DelayFunction": "constant"},
     "Reschedule policy: Nomad can only make 6 attempts in 1m0s with initial delay 10s and "
     'delay function "constant"'),
    ({"Attempts": 5, "Interval": 60 * S, "Unlimited": False, "Delay": 10 * S,
      "MaxDelay": 3600 * S},
     "Reschedule policy: Set the interval to at least 2m40s to accommodate 5 attempts"),
])
def test_invalid_policies_name_the_problem(group, message):
    errors = validate_job(canonical(spec(group=group)))[0]
    assert any(message in err for err in errors), errors


def test_disabled_policy_is_never_wrong_and_system_jobs_may_not_have_one():
    assert validate_job(canonical(spec(group={"Attempts": 0, "Unlimited": False,
                                              "Delay": 0})))[0] == []
    errors = validate_job(canonical(spec("system", group={"Delay": 5 * S})))[0]
    assert any("System jobs should not have a reschedule policy" in err for err in errors)


def test_hcl_reschedule_blocks():
    parsed = parse_job('''job "j" {
      reschedule {
        delay = "2s"
        delay_function = "fibonacci"
        max_delay = "1m"
        unlimited = true
      }
      group "g" {
        reschedule {
          attempts = 3
          interval = "10m"
          unlimited = false
        }
        task "t" { driver = "mock" }
      }
    }''')
    assert parsed["Reschedule"] == {"Delay": 2 * S, "DelayFunction": "fibonacci",
                                    "MaxDelay": 60 * S, "Unlimited": True}
    job = canonical({**parsed, "Type": "service"})
    rp = job.TaskGroups[0].ReschedulePolicy
    assert (rp.Attempts, rp.Interval, rp.Delay, rp.DelayFunction, rp.MaxDelay, rp.Unlimited) == \
        (3, 600 * S, 2 * S, "fibonacci", 60 * S, False)


# --- the broker holds WaitUntil evals ----------------------------------------------------------


def test_broker_holds_an_eval_until_its_wait_until():
    async def main():
        loop = asyncio.get_running_loop()
        origin = loop.time()
        wall = lambda: T0 + int((loop.time() - origin) * 1e9)   # noqa: E731
        b = EvalBroker(now_ns=wall)
        later = Evaluation(ID="later", JobID="j", Status="pending",
                           WaitUntil=format_rfc3339(T0 + 200_000_000))
        assert b.enqueue(later) and not b.enqueue(later)
        b.enqueue(Evaluation(ID="now", JobID="k", Status="pending"))
        assert b.stats()["delayed"] == 1
        first, token = await b.dequeue(1)
        assert first.ID == "now"
        assert await b.dequeue(0.1) is None              # still held
        got, _ = await b.dequeue(1)
        assert got.ID == "later" and loop.time() - origin >= 0.2
        b.enqueue(Evaluation(ID="gone", JobID="j2", Status="pending",
                             WaitUntil=format_rfc3339(T0 + 10 * S)))
        b.disable()
        assert b.stats()["delayed"] == 0
    asyncio.run(main())


# --- the state machine ------------------------------------------------------------------------


def test_plan_links_replacements_records_followups_and_force_reschedule():
    log = Log()
    job = job_with(policy())
    log.apply(e.JobRegister(Job=job))
    log.apply(e.PlanResults(JobID="web", Allocs=[alloc("web", 0), alloc("web", 1)]))
    log.apply(e.AllocClientUpdate(Updates=[
        e.AllocClientState(AllocID="web-alloc-0", ClientStatus="failed"),
        e.AllocClientState(AllocID="web-alloc-1", ClientStatus="failed")]))
    follow = Evaluation(ID="f1", JobID="web", Status="pending", TriggeredBy="alloc-failure",
                        WaitUntil=format_rfc3339(T0))
    replacement = alloc("web", 2, PreviousAllocation="web-alloc-0")
    log.apply(e.PlanResults(JobID="web", Allocs=[replacement],
                            Stops=[e.AllocStop(AllocID="web-alloc-0")],
                            FollowupEvals=[follow], AllocFollowups={"web-alloc-1": "f1"}))
    state = log.fsm.state
    assert state.get(t.ALLOCS, "web-alloc-0").NextAllocation == "web-alloc-2"
    assert state.get(t.ALLOCS, "web-alloc-1").FollowupEvalID == "f1"
    assert state.get(t.EVALS, "f1").Status == "pending"
    log.apply(e.JobEvaluate(JobID="web", Eval=Evaluation(ID="ev", JobID="web",
                                                         Status="pending"),
                            ForceReschedule=True))
    state = log.fsm.state
    assert state.get(t.ALLOCS, "web-alloc-1").DesiredTransition.ForceReschedule is True
    # the replaced one is left alone
    assert not state.get(t.ALLOCS, "web-alloc-0").should_force_reschedule()
    log.apply(e.AllocDesiredTransition(Allocs={"web-alloc-1": DesiredTransition(
        Reschedule=True)}, Evals=[Evaluation(ID="ev2", JobID="web", Status="pending")]))
    moved = log.fsm.state.get(t.ALLOCS, "web-alloc-1").DesiredTransition
    assert moved == DesiredTransition(Reschedule=True, ForceReschedule=True)
    assert log.fsm.state.get(t.EVALS, "ev2") is not None


def test_failure_report_creates_an_eval_only_when_the_policy_may_replace():
    log = Log()
    log.apply(e.JobRegister(Job=job_with(policy())))
    log.apply(e.PlanResults(JobID="web", Allocs=[alloc("web", 0, ClientStatus="running")]))
    state = log.fsm.state
    a = state.get(t.ALLOCS, "web-alloc-0")
    report = e.AllocClientState(AllocID=a.ID, ClientStatus="failed")
    ev = failure_eval(state, a, report, T0)
    assert (ev.TriggeredBy, ev.JobID, ev.Status, ev.Type) == \
        ("alloc-failure", "web", "pending", "service")
    assert failure_eval(state, a, replace(report, ClientStatus="complete"), T0) is None
    assert failure_eval(state, replace(a, FollowupEvalID="f"), report, T0) is None
    log.apply(e.JobRegister(Job=job_with(policy(Attempts=0, Unlimited=False))))
    assert failure_eval(log.fsm.state, a, report, T0) is None


# --- deployments ----------------------------------------------------------------------------


def test_watcher_allows_replacing_an_unhealthy_alloc_while_its_policy_may():
    log = Log()
    log.apply(e.JobRegister(Job=job_with(policy())))
    d = Deployment(ID="d1", JobID="web", JobVersion=0, JobCreateIndex=1, Status="running",
                   TaskGroups={"g": DeploymentState(DesiredTotal=1, ProgressDeadline=60 * S)})
    log.apply(e.PlanResults(JobID="web", Allocs=[alloc("web", 0, DeploymentID="d1", ModifyTime=T0)],
                            Deployment=d))
    log.apply(e.AllocClientUpdate(Updates=[e.AllocClientState(
        AllocID="web-alloc-0", ClientStatus="failed",
        DeploymentStatus=AllocDeploymentStatus(Healthy=False))]))
    state = log.fsm.state
    d = state.get(t.DEPLOYMENTS, "d1")
    action = decide(state, d, T0)
    assert action == Action("allow", allocs=("web-alloc-0",))
    body = entry_for(state, d, action, "ev-allow", T0)
    assert body.Allocs == {"web-alloc-0": DesiredTransition(Reschedule=True)}
    log.apply(body)
    assert decide(log.fsm.state, log.fsm.state.get(t.DEPLOYMENTS, "d1"), T0) is None
    # without a progress deadline, the first unhealthy alloc fails the deployment
    no_deadline = replace(d, TaskGroups={"g": replace(d.TaskGroups["g"], ProgressDeadline=0)})
    assert decide(state, no_deadline, T0).kind == "fail"
    # and so it does once the policy cannot replace it
    log.apply(e.JobRegister(Job=job_with(policy(Attempts=0, Unlimited=False))))
    assert decide(log.fsm.state, d, T0).kind == "fail"


# --- ranking ----------------------------------------------------------------------------------


def test_node_reschedule_penalty():
    nodes = [Node(ID="a"), Node(ID="b")]
    options = [RankedNode(n, None, None, {}, [0.5]) for n in nodes]
    board = ScoreBoard()
    out = list(node_reschedule_penalty(iter(options), frozenset({"a"}), board))
    assert [o.scores for o in out] == [[0.5, -1.0], [0.5]]
    assert board.scores_of("a") == {"node-reschedule-penalty": -1.0}
    assert board.scores_of("b") == {"node-reschedule-penalty": 0.0}
