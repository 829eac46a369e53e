"""The reconciler's deployment cases, as pure functions over hand-built rows (Nomad 1.x
``reconcile_test.go`` situations: create, pace by health, canaries, promotion, pause,
failure, cancellation, success)."""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import deployments as dep
from caravan.fsm.structs import AllocDeploymentStatus, Deployment, DeploymentState, UpdateStrategy
from caravan.scheduler.reconcile import reconcile
from caravan.scheduler.reconcile_results import ALLOC_NOT_NEEDED
from tests.unit.test_reconcile import EDITS, NOW, SECOND, allocs_for, changed, counts, make_alloc, make_job, names, node

DID = "new-deployment"


def strategy(max_parallel: int = 1, canary: int = 0, **kw) -> UpdateStrategy:
    return UpdateStrategy(MaxParallel=max_parallel, Canary=canary, MinHealthyTime=SECOND,
                          HealthyDeadline=10 * SECOND, ProgressDeadline=60 * SECOND, **kw)


def v0_v1(count: int = 4, **kw):
    job = make_job(count=count, update=strategy(**kw))
    return job, changed(job, EDITS["image"][0])


def deployment_of(job, status: str = "running", **state) -> Deployment:
    return Deployment(ID="d1", JobID="example", JobVersion=job.Version,
                      JobCreateIndex=job.CreateIndex, Status=status,
                      TaskGroups={"web": DeploymentState(**state)})


def in_deployment(alloc, healthy: bool | None, canary: bool = False, d: str = "d1"):
    return replace(alloc, DeploymentID=d,
                   DeploymentStatus=AllocDeploymentStatus(Healthy=healthy, Canary=canary))


def test_first_version_creates_a_deployment_for_its_placements():
    job = make_job(count=3, update=strategy(AutoRevert=True))
    result = reconcile(job, "example", [], {}, NOW, None, DID)
    d = result.deployment
    assert d is not None and d.ID == DID and result.deployment_id == DID
    assert (d.Status, d.StatusDescription) == ("running", dep.DESC_RUNNING)
    state = d.TaskGroups["web"]
    assert (state.DesiredTotal, state.AutoRevert, state.ProgressDeadline) == (3, True, 60 * SECOND)
    assert counts(result) == {"Place": 3}


def test_no_update_strategy_no_deployment():
    result = reconcile(make_job(count=2), "example", [], {}, NOW, None, DID)
    assert result.deployment is None and result.deployment_id == ""


def test_rerunning_the_same_version_creates_no_deployment():
    job = make_job(count=3, update=strategy())
    existing = allocs_for(job, 2)    # one is missing, same version
    result = reconcile(job, "example", existing, {}, NOW, None, DID)
    assert result.deployment is None and counts(result) == {"Place": 1, "Ignore": 2}


def test_new_version_creates_a_deployment_limited_by_max_parallel():
    job, new = v0_v1(count=4, max_parallel=2)
    result = reconcile(new, "example", allocs_for(job, 4), {}, NOW, None, DID)
    assert result.deployment.TaskGroups["web"].DesiredTotal == 4
    assert names(result.destructive_update) == ["example.web[0]", "example.web[1]"]
    assert counts(result) == {"DestructiveUpdate": 2, "Ignore": 2}


def test_allocations_not_yet_healthy_use_up_max_parallel():
    job, new = v0_v1(count=3)
    d = deployment_of(new, DesiredTotal=3, PlacedAllocs=1)
    existing = [in_deployment(make_alloc(new, 0, create=200), None)] + \
        [make_alloc(job, i) for i in (1, 2)]
    result = reconcile(new, "example", existing, {}, NOW, d, DID)
    assert result.deployment is None and not result.destructive_update
    assert counts(result) == {"Ignore": 3} and not result.deployment_updates


def test_a_healthy_allocation_lets_the_next_one_go():
    job, new = v0_v1(count=3)
    d = deployment_of(new, DesiredTotal=3, PlacedAllocs=1, HealthyAllocs=1)
    existing = [in_deployment(make_alloc(new, 0, create=200), True)] + \
        [make_alloc(job, i) for i in (1, 2)]
    result = reconcile(new, "example", existing, {}, NOW, d, DID)
    assert names(result.destructive_update) == ["example.web[1]"]
    assert result.deployment_id == "d1" and not result.deployment_updates


def test_an_unhealthy_allocation_stops_the_rollout():
    job, new = v0_v1(count=3, max_parallel=2)
    d = deployment_of(new, DesiredTotal=3, PlacedAllocs=2, HealthyAllocs=1, UnhealthyAllocs=1)
    existing = [in_deployment(make_alloc(new, 0, create=200), True),
                in_deployment(make_alloc(new, 1, create=200), False), make_alloc(job, 2)]
    result = reconcile(new, "example", existing, {}, NOW, d, DID)
    assert not result.destructive_update


def test_everything_healthy_marks_the_deployment_successful():
    _, new = v0_v1(count=2)
    d = deployment_of(new, DesiredTotal=2, PlacedAllocs=2, HealthyAllocs=2)
    existing = [in_deployment(make_alloc(new, i, create=200), True) for i in range(2)]
    result = reconcile(new, "example", existing, {}, NOW, d, DID)
    assert [(u.DeploymentID, u.Status, u.StatusDescription) for u in result.deployment_updates] \
        == [("d1", "successful", dep.DESC_SUCCESSFUL)]


def test_healthy_count_short_of_desired_is_not_success():
    _, new = v0_v1(count=2)
    d = deployment_of(new, DesiredTotal=2, PlacedAllocs=2, HealthyAllocs=1)
    existing = [in_deployment(make_alloc(new, 0, create=200), True),
                in_deployment(make_alloc(new, 1, create=200), None)]
    assert not reconcile(new, "example", existing, {}, NOW, d, DID).deployment_updates


def test_paused_and_failed_deployments_place_no_replacements():
    job, new = v0_v1(count=2)
    for status in ("paused", "failed"):
        d = deployment_of(new, status, DesiredTotal=2)
        result = reconcile(new, "example", allocs_for(job, 2), {}, NOW, d, DID)
        assert not result.destructive_update and counts(result) == {"Ignore": 2}, status
        assert result.deployment_id == ("d1" if status == "paused" else "")


def test_lost_allocations_are_replaced_even_while_paused():
    job, new = v0_v1(count=2)
    d = deployment_of(new, "paused", DesiredTotal=2)
    existing = [make_alloc(job, 0), make_alloc(job, 1, node="n2")]
    result = reconcile(new, "example", existing, {"n2": node("n2", "down")}, NOW, d, DID)
    assert names(result.place) == ["example.web[1]"] and not result.destructive_update


def test_canaries_are_placed_beside_the_old_allocations():
    job, new = v0_v1(count=3, canary=1)
    result = reconcile(new, "example", allocs_for(job, 3), {}, NOW, None, DID)
    assert [(p.name, p.canary) for p in result.place] == [("example.web[0]", True)]
    assert not result.destructive_update and not result.stop
    assert counts(result) == {"Canary": 1, "Ignore": 3}
    d = result.deployment
    assert d.TaskGroups["web"].DesiredCanaries == 1 and d.TaskGroups["web"].DesiredTotal == 3
    assert d.StatusDescription == dep.DESC_NEEDS_PROMOTION


def test_auto_promote_canaries_are_described_so():
    job, new = v0_v1(count=2, canary=1, AutoPromote=True)
    d = reconcile(new, "example", allocs_for(job, 2), {}, NOW, None, DID).deployment
    assert d.StatusDescription == dep.DESC_AUTO_PROMOTION


def test_unpromoted_canaries_hold_the_rollout():
    job, new = v0_v1(count=3, canary=1)
    canary = in_deployment(make_alloc(new, 0, create=200, id_="canary"), True, canary=True)
    d = deployment_of(new, DesiredTotal=3, DesiredCanaries=1, PlacedCanaries=["canary"],
                      PlacedAllocs=1, HealthyAllocs=1)
    result = reconcile(new, "example", allocs_for(job, 3) + [canary], {}, NOW, d, DID)
    assert not result.place and not result.stop and not result.destructive_update
    assert not result.deployment_updates


def test_promotion_stops_the_old_alloc_of_the_canary_name_and_rolls_the_rest():
    job, new = v0_v1(count=3, canary=1)
    canary = in_deployment(make_alloc(new, 0, create=200, id_="canary"), True, canary=True)
    d = deployment_of(new, DesiredTotal=3, DesiredCanaries=1, PlacedCanaries=["canary"],
                      Promoted=True, PlacedAllocs=1, HealthyAllocs=1)
    old = allocs_for(job, 3)
    result = reconcile(new, "example", old + [canary], {}, NOW, d, DID)
    assert [(s.alloc.ID, s.description) for s in result.stop] == [(old[0].ID, ALLOC_NOT_NEEDED)]
    assert names(result.destructive_update) == ["example.web[1]"]


def test_a_failed_deployment_stops_its_unpromoted_canaries():
    job, new = v0_v1(count=2, canary=1)
    canary = in_deployment(make_alloc(new, 0, create=200, id_="canary"), False, canary=True)
    d = deployment_of(new, "failed", DesiredTotal=2, DesiredCanaries=1, PlacedCanaries=["canary"])
    result = reconcile(new, "example", allocs_for(job, 2) + [canary], {}, NOW, d, DID)
    assert [s.alloc.ID for s in result.stop] == ["canary"]
    assert not result.place and not result.destructive_update


def test_a_newer_version_cancels_the_running_deployment():
    job, new = v0_v1(count=2)
    newer = changed(new, EDITS["env"][0])
    d = deployment_of(new, DesiredTotal=2)
    result = reconcile(newer, "example", allocs_for(job, 2), {}, NOW, d, DID)
    assert [(u.DeploymentID, u.Status, u.StatusDescription) for u in result.deployment_updates] \
        == [("d1", "cancelled", dep.DESC_NEWER_JOB)]
    assert result.deployment.ID == DID and result.deployment.JobVersion == newer.Version


def test_stopping_the_job_cancels_the_running_deployment():
    job, new = v0_v1(count=2)
    d = deployment_of(new, DesiredTotal=2)
    stopped = replace(new, Stop=True)
    result = reconcile(stopped, "example", allocs_for(job, 2), {}, NOW, d, DID)
    assert [(u.Status, u.StatusDescription) for u in result.deployment_updates] == \
        [("cancelled", dep.DESC_STOPPED_JOB)]
    assert result.deployment is None and counts(result) == {"Stop": 2}
