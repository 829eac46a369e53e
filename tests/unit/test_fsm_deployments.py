"""Deployments in the FSM (counters, client health, promotion, status, auto-revert) and
the deployment watcher's pure decisions."""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import deployments as dep
from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.structs import AllocDeploymentStatus, Deployment, DeploymentState, Task
from caravan.fsm.times import format_rfc3339, parse_rfc3339
from caravan.scheduler.deployment_watcher import Action, decide
from tests.unit.test_fsm import Log, assert_replays_identically, make_eval, make_job
from tests.unit.test_fsm_allocs import alloc

SECOND = 1_000_000_000
T0 = 1_700_000_000 * SECOND


def deployment(version: int = 1, **state) -> Deployment:
    return Deployment(ID="d1", JobID="web", JobVersion=version, JobCreateIndex=1,
                      Status="running", StatusDescription=dep.DESC_RUNNING,
                      TaskGroups={"g": DeploymentState(**state)})


def health(alloc_id: str, healthy: bool, at: int) -> e.AllocClientState:
    return e.AllocClientState(AllocID=alloc_id, ClientStatus="running", DeploymentStatus=
                              AllocDeploymentStatus(Healthy=healthy, Timestamp=format_rfc3339(at)))


def rolled_out(log: Log, n: int = 2, canaries: int = 0, **state) -> None:
    """v0 (stable) and v1 registered; v1's plan placed ``n`` allocs in deployment d1."""
    log.register(make_job())
    log.apply(e.JobStability(JobID="web", JobVersion=0, Stable=True))
    log.register(make_job(TaskGroups=[replace(make_job().TaskGroups[0],
                                              Tasks=[Task(Name="t", Driver="mock",
                                                          Config={"v": 1})])]))
    allocs = [alloc("web", i, DeploymentID="d1", ModifyTime=T0,
                    DeploymentStatus=AllocDeploymentStatus(Canary=True) if i < canaries else None)
              for i in range(n)]
    log.apply(e.PlanResults(JobID="web", JobVersion=1, Allocs=allocs,
                            Deployment=deployment(DesiredTotal=n, DesiredCanaries=canaries,
                                                  ProgressDeadline=60 * SECOND, **state)))


def d1(log: Log) -> Deployment:
    return log.fsm.state.get(t.DEPLOYMENTS, "d1")


def test_counters_follow_the_allocations_and_progress_deadline_moves_forward():
    log = Log()
    rolled_out(log, n=2, canaries=1)
    s = d1(log).TaskGroups["g"]
    assert (s.PlacedAllocs, s.HealthyAllocs, s.PlacedCanaries) == (2, 0, ["web-alloc-0"])
    assert parse_rfc3339(s.RequireProgressBy) == T0 + 60 * SECOND
    log.apply(e.AllocClientUpdate(Updates=[health("web-alloc-0", True, T0 + 5 * SECOND)]))
    s = d1(log).TaskGroups["g"]
    assert s.HealthyAllocs == 1 and parse_rfc3339(s.RequireProgressBy) == T0 + 65 * SECOND
    a = log.fsm.state.get(t.ALLOCS, "web-alloc-0")
    # the client sets health; the canary flag stays; the flip is stamped with its index
    assert a.DeploymentStatus.Canary and a.DeploymentStatus.ModifyIndex == log.index
    log.apply(e.AllocClientUpdate(Updates=[health("web-alloc-1", False, T0 + 6 * SECOND)]))
    s = d1(log).TaskGroups["g"]
    assert (s.HealthyAllocs, s.UnhealthyAllocs) == (1, 1)
    assert_replays_identically(log.entries, log.fsm.state)


def test_successful_deployment_marks_the_version_stable_and_terminal_ones_refuse():
    log = Log()
    rolled_out(log)
    update = e.DeploymentStatusUpdate(DeploymentID="d1", Status="successful",
                                      StatusDescription=dep.DESC_SUCCESSFUL)
    log.apply(e.PlanResults(JobID="web", JobVersion=1, DeploymentUpdates=[update]))
    assert d1(log).Status == "successful"
    assert log.fsm.state.get(t.JOBS, "web").Stable is True
    res = log.apply(e.DeploymentStatusChange(DeploymentUpdate=replace(update, Status="failed")))
    assert res["Error"] == 'Deployment "d1" has terminal status "successful":'
    assert log.apply(e.DeploymentPromote(DeploymentID="nope", All=True))["Code"] == 404


def test_failure_with_revert_registers_the_stable_version_again_with_the_eval():
    log = Log()
    rolled_out(log)
    res = log.apply(e.DeploymentStatusChange(
        DeploymentUpdate=e.DeploymentStatusUpdate(DeploymentID="d1", Status="failed",
                                                  StatusDescription="x"),
        RevertToVersion=0, Eval=make_eval("web", 99, "deployment-watcher"), SubmitTime=7))
    assert res["RevertedJobVersion"] == 0 and res["EvalID"] == "eval-web-99"
    job = log.fsm.state.get(t.JOBS, "web")
    assert job.Version == 2 and job.TaskGroups[0].Tasks[0].Config is None
    assert d1(log).Status == "failed" and res["DeploymentModifyIndex"] == log.index


def test_promotion_needs_healthy_canaries():
    log = Log()
    rolled_out(log, n=1, canaries=1)
    res = log.apply(e.DeploymentPromote(DeploymentID="d1", All=True, Now=T0))
    assert res["Error"] == ('1 error occurred:\n\t* Canary allocation "web-alloc-0" for group '
                            '"g" is not healthy\n\n')
    log.apply(e.AllocClientUpdate(Updates=[health("web-alloc-0", True, T0)]))
    assert log.apply(e.DeploymentPromote(DeploymentID="d1", Groups=["other"]))["Error"] == \
        "no canaries to promote"
    res = log.apply(e.DeploymentPromote(DeploymentID="d1", All=True, Now=T0 + SECOND,
                                        Eval=make_eval("web", 50)))
    assert "Error" not in res and res["EvalID"] == "eval-web-50"
    s = d1(log).TaskGroups["g"]
    assert s.Promoted and parse_rfc3339(s.RequireProgressBy) == T0 + 61 * SECOND


def test_operator_health_checks_membership():
    log = Log()
    rolled_out(log)
    log.apply(e.PlanResults(JobID="web", JobVersion=1, Allocs=[alloc("web", 9)]))
    body = dict(DeploymentID="d1", Timestamp=format_rfc3339(T0))
    assert log.apply(e.DeploymentAllocHealth(HealthyAllocationIDs=["zz"], **body))["Error"] == \
        'unknown alloc "zz"'
    assert log.apply(e.DeploymentAllocHealth(HealthyAllocationIDs=["web-alloc-9"], **body))[
        "Error"] == 'alloc "web-alloc-9" is not part of deployment "d1"'
    log.apply(e.DeploymentAllocHealth(HealthyAllocationIDs=["web-alloc-0"], **body))
    assert d1(log).TaskGroups["g"].HealthyAllocs == 1


# --- the watcher's decisions -----------------------------------------------------------------


def test_watcher_fails_on_unhealthy_and_reverts_only_with_auto_revert():
    log = Log()
    rolled_out(log, AutoRevert=True)
    log.apply(e.AllocClientUpdate(Updates=[health("web-alloc-0", False, T0)]))
    assert decide(log.fsm.state, d1(log), T0) == Action(
        "fail", "Failed due to unhealthy allocations - rolling back to job version 0", 0)
    plain = Log()
    rolled_out(plain)
    plain.apply(e.AllocClientUpdate(Updates=[health("web-alloc-0", False, T0)]))
    assert decide(plain.fsm.state, d1(plain), T0) == Action("fail", dep.DESC_FAILED_ALLOCS, None)


def test_watcher_progress_deadline_and_health_evals():
    log = Log()
    rolled_out(log)
    # health after the latest eval: a new eval lets the scheduler go on
    log.apply(e.AllocClientUpdate(Updates=[health("web-alloc-0", True, T0)]))
    assert decide(log.fsm.state, d1(log), T0) == Action("eval")
    log.apply(e.EvalUpdate(Evals=[make_eval("web", 77)]))
    assert decide(log.fsm.state, d1(log), T0) is None
    assert decide(log.fsm.state, d1(log), T0 + 61 * SECOND) == \
        Action("fail", dep.DESC_PROGRESS_DEADLINE, None)


def test_watcher_auto_promotes_when_all_canaries_are_healthy():
    log = Log()
    rolled_out(log, n=1, canaries=1, AutoPromote=True)
    log.apply(e.EvalUpdate(Evals=[make_eval("web", 77)]))
    assert decide(log.fsm.state, d1(log), T0) is None
    log.apply(e.AllocClientUpdate(Updates=[health("web-alloc-0", True, T0)]))
    assert decide(log.fsm.state, d1(log), T0) == Action("promote")


def test_watcher_service_acts_on_the_deployments_written_since_its_last_pass(monkeypatch):
    """With the FSM's write listeners the watcher's passes after the first look only at
    the deployments written since the last one (no scan of every active deployment),
    and act on them as a full pass would; a restore brings back a full pass."""
    import asyncio
    import itertools

    from caravan.fsm.store import decode_state, encode_state
    from caravan.fsm.submit import Submitter
    from caravan.scheduler import deployment_watcher as dw
    from caravan.scheduler.background import WrittenKeys

    log = Log()
    rolled_out(log)
    counter = itertools.count()

    async def submit(blob: bytes) -> dict:
        log.index += 1
        return log.fsm.apply(log.index, blob)

    watcher = dw.DeploymentWatcher(lambda: log.fsm.state,
                                   Submitter(submit, lambda: f"rq-{next(counter)}"),
                                   lambda: None, lambda: T0, lambda: f"id-{next(counter)}",
                                   write_listeners=log.fsm.write_listeners)
    looked = []
    monkeypatch.setattr(dw, "decide", lambda state, d, now: looked.append(d.ID) or decide(
        state, d, now))

    async def scenario():
        await watcher.run_once()                     # first pass: every active one
        assert looked == ["d1"] and watcher.actions == 0
        await watcher.run_once()                     # nothing written: nothing looked at
        assert looked == ["d1"]
        log.fsm.restore(decode_state(encode_state(log.fsm.state)))
        watcher._seen.clear()
        await watcher.run_once()                     # after a restore, a full pass
        assert looked == ["d1", "d1"]
        log.apply(e.AllocClientUpdate(Updates=[health("web-alloc-0", False, T0)]))
        await watcher.run_once()                     # d1 written: looked at, and failed
        assert looked == ["d1", "d1", "d1"] and watcher.actions == 1
        assert d1(log).Status == "failed" and list(watcher._written._keys) == ["d1"]  # its own
        await watcher.run_once()                     # no longer active: let go
        assert looked == ["d1", "d1", "d1"] and "d1" not in watcher._seen

    with WrittenKeys(log.fsm.write_listeners, t.DEPLOYMENTS) as watcher._written:  # as _run
        asyncio.run(scenario())
    assert log.fsm.write_listeners == []
