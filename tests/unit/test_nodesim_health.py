"""How `caravan nodesim` reads the mock driver's config for deployment health."""
from __future__ import annotations

from caravan.client.nodesim import _health_reported, _health_wait_seconds, failed_update, reports_healthy, start_error
from caravan.fsm.structs import Allocation, Job, Task, TaskGroup, UpdateStrategy

MS = 1_000_000


def alloc(config: dict, health_check: str = "checks", deployment: str = "d1") -> Allocation:
    update = UpdateStrategy(MaxParallel=1, HealthCheck=health_check, MinHealthyTime=200 * MS,
                            HealthyDeadline=900 * MS)
    job = Job(ID="web", TaskGroups=[TaskGroup(Name="app", Update=update, Tasks=[
        Task(Name="a", Driver="raw_exec", Config={"start_error": "not mine"}),
        Task(Name="b", Driver="mock", Config=config)])])
    return Allocation(ID="a1", JobID="web", Job=job, TaskGroup="app", DeploymentID=deployment)


def test_start_error_of_a_mock_task_fails_the_alloc_unhealthy():
    a = alloc({"start_error": "boom"})
    assert start_error(a) == "boom" and start_error(alloc({})) == ""
    u = failed_update(a, "boom")
    assert u.ClientStatus == "failed" and u.DeploymentStatus.Healthy is False
    events = u.TaskStates["b"].Events
    assert events[-1].Type == "Driver Failure" and events[-1].DriverError == "boom"
    assert failed_update(alloc({}, deployment=""), "x").DeploymentStatus is None


def test_unhealthy_key_and_wait_times():
    assert reports_healthy(alloc({})) and not reports_healthy(alloc({"nodesim_healthy": False}))
    assert _health_wait_seconds(alloc({})) == 0.2
    assert _health_wait_seconds(alloc({"nodesim_healthy": False})) == 0.9


def test_manual_health_and_no_deployment_are_not_reported():
    assert _health_reported(alloc({}))
    assert not _health_reported(alloc({}, health_check="manual"))
    assert not _health_reported(alloc({}, deployment=""))
