"""The reconciler and the alloc name index, as pure functions over hand-built rows.

Expected results follow Nomad 1.x ``scheduler/reconcile_test.go`` situations (place,
scale, stop, lost, migrate, MaxParallel) and its ``tasksUpdated`` tests; the counters
are the plan annotations ``/v1/job/:id/plan`` reports."""
from __future__ import annotations

import copy

import msgspec
import pytest
from msgspec.structs import replace

from caravan.fsm.structs import (
    Allocation,
    Constraint,
    DesiredTransition,
    DrainStrategy,
    EphemeralDisk,
    Job,
    LogConfig,
    NetworkResource,
    Node,
    Port,
    Resources,
    RestartPolicy,
    Service,
    Task,
    TaskArtifact,
    TaskGroup,
    Template,
    UpdateStrategy,
    Vault,
)
from caravan.scheduler.names import NameIndex, alloc_index, alloc_name, removal_order
from caravan.scheduler.reconcile import reconcile
from caravan.scheduler.reconcile_results import (
    ALLOC_LOST,
    ALLOC_MIGRATING,
    ALLOC_NOT_NEEDED,
    DesiredUpdates,
    PlaceRequest,
)
from caravan.scheduler.reconcile_system import reconcile_system
from caravan.scheduler.task_updates import (
    DESTRUCTIVE,
    IGNORE,
    INPLACE,
    classify_update,
    tasks_updated,
)

NOW = 1_700_000_000_000_000_000
SECOND = 1_000_000_000


# --- builders -------------------------------------------------------------------------------


def make_job(count: int = 3, type_: str = "service", update: UpdateStrategy | None = None,
             groups: list[TaskGroup] | None = None, **fields) -> Job:
    task = Task(Name="web", Driver="docker", Config={"image": "nginx:1.25"},
                Env={"MODE": "prod"}, Resources=Resources(CPU=100, MemoryMB=256))
    tg = TaskGroup(Name="web", Count=count, Tasks=[task], Update=update,
                   EphemeralDisk=EphemeralDisk(Sticky=False, SizeMB=300, Migrate=False),
                   RestartPolicy=RestartPolicy(Attempts=2, Mode="fail"))
    return Job(ID="example", Name="example", Type=type_, TaskGroups=groups or [tg],
               Version=0, JobModifyIndex=10, CreateIndex=10, **fields)


def changed(job: Job, edit) -> Job:
    """A new version of ``job``: deep copy, edit in place, bump version and index."""
    new = copy.deepcopy(job)
    edit(new)
    new.Version = job.Version + 1
    new.JobModifyIndex = job.JobModifyIndex + 10
    return new


def make_alloc(job: Job, index: int, node: str = "n1", group: str = "web", client: str = "running",
               desired: str = "run", create: int = 100, id_: str | None = None) -> Allocation:
    return Allocation(ID=id_ or f"a-{group}-{index}-{node}-{create}", Name=f"example.{group}[{index}]",
                      NodeID=node, JobID="example", Job=job, TaskGroup=group, DesiredStatus=desired,
                      ClientStatus=client, CreateIndex=create, ModifyIndex=create)


def allocs_for(job: Job, n: int, node: str = "n1", **kw) -> list[Allocation]:
    return [make_alloc(job, i, node=node, **kw) for i in range(n)]


def names(items) -> list[str]:
    """Names of place requests, stop/update requests or plain allocations."""
    return [r.name if isinstance(r, PlaceRequest) else getattr(r, "alloc", r).Name for r in items]


def counts(result, group: str = "web") -> dict[str, int]:
    return {k: v for k, v in result.desired_tg_updates[group].as_dict().items() if v}


def first_task(job: Job) -> Task:
    return job.TaskGroups[0].Tasks[0]


def node(id_: str, status: str = "ready", drain: bool = False) -> Node:
    return Node(ID=id_, Name=id_, Status=status, Drain=drain,
                DrainStrategy=DrainStrategy() if drain else None)


# --- names ----------------------------------------------------------------------------------


def test_alloc_name_and_index_round_trip():
    assert alloc_name("example", "web", 7) == "example.web[7]"
    assert alloc_index("example.web[7]") == 7
    assert alloc_index("batch/dispatch-1[x].web[12]") == 12
    assert alloc_index("example.web") is None
    assert alloc_index("example.web[-1]") is None


def test_name_index_reuses_lowest_free_indexes():
    index = NameIndex("example", "web", 5, ["example.web[0]", "example.web[2]", "example.web[4]"])
    assert index.next(3) == ["example.web[1]", "example.web[3]", "example.web[5]"]
    assert index.next(1) == ["example.web[6]"]


def test_name_index_highest_and_duplicates():
    index = NameIndex("example", "web", 3, ["example.web[0]", "example.web[1]", "example.web[1]"])
    assert index.is_duplicate(1) and not index.is_duplicate(0)
    index.unset(1)                              # one holder of [1] left: still held
    assert index.is_held(1) and not index.is_duplicate(1)
    assert index.highest(1) == ["example.web[1]"]
    assert index.next(1) == ["example.web[1]"]


def test_removal_order_stops_duplicates_then_highest_index():
    job = make_job()
    a0, a0_dup, a1, a2 = (make_alloc(job, 0), make_alloc(job, 0, create=200),
                          make_alloc(job, 1), make_alloc(job, 2))
    assert removal_order([a1, a0, a2, a0_dup]) == [a0_dup, a2, a1, a0]


# --- placing and scaling ----------------------------------------------------------------------


def test_new_job_places_count_with_lowest_names():
    result = reconcile(make_job(count=3), "example", [], {}, NOW)
    assert names(result.place) == ["example.web[0]", "example.web[1]", "example.web[2]"]
    assert all(p.previous_alloc_id is None and p.task_group == "web" for p in result.place)
    assert counts(result) == {"Place": 3}
    assert not result.stop and not result.followup


def test_unchanged_job_ignores_everything():
    job = make_job(count=3)
    result = reconcile(job, "example", allocs_for(job, 3), {}, NOW)
    assert not result.place and not result.stop and len(result.ignore) == 3
    assert counts(result) == {"Ignore": 3}


def test_scale_up_fills_gaps_first():
    job = make_job(count=2)
    existing = [make_alloc(job, 0), make_alloc(job, 3)]
    new = changed(job, lambda j: setattr(j.TaskGroups[0], "Count", 4))
    result = reconcile(new, "example", existing, {}, NOW)
    assert names(result.place) == ["example.web[1]", "example.web[2]"]
    assert counts(result) == {"Place": 2, "InPlaceUpdate": 2}


def test_scale_down_stops_highest_indexes_first():
    job = make_job(count=5)
    new = changed(job, lambda j: setattr(j.TaskGroups[0], "Count", 2))
    result = reconcile(new, "example", allocs_for(job, 5), {}, NOW)
    assert names(result.stop) == ["example.web[4]", "example.web[3]", "example.web[2]"]
    assert {s.description for s in result.stop} == {ALLOC_NOT_NEEDED}
    assert names(result.inplace_update) == ["example.web[0]", "example.web[1]"]
    assert counts(result) == {"Stop": 3, "InPlaceUpdate": 2}


def test_duplicate_names_are_stopped_and_gaps_filled():
    job = make_job(count=2)
    existing = [make_alloc(job, 0), make_alloc(job, 0, create=200), make_alloc(job, 1)]
    result = reconcile(job, "example", existing, {}, NOW)
    assert [s.alloc.CreateIndex for s in result.stop] == [200]
    result = reconcile(make_job(count=3), "example", existing[:2], {}, NOW)
    assert names(result.place) == ["example.web[1]"]


# --- stopping a job or a group ---------------------------------------------------------------


def test_job_stop_stops_all_and_reports_lost_on_down_nodes():
    job = make_job(count=3)
    existing = allocs_for(job, 2) + [make_alloc(job, 2, node="down")]
    stopped = changed(job, lambda j: setattr(j, "Stop", True))
    result = reconcile(stopped, "example", existing, {"down": node("down", "down")}, NOW)
    assert not result.place
    assert [(s.alloc.Name, s.description, s.client_status) for s in result.stop] == [
        ("example.web[0]", ALLOC_NOT_NEEDED, None), ("example.web[1]", ALLOC_NOT_NEEDED, None),
        ("example.web[2]", ALLOC_LOST, "lost")]
    assert counts(result) == {"Stop": 3}


def test_purged_job_stops_all_allocs_of_every_group():
    job = make_job(count=2)
    existing = allocs_for(job, 2) + [make_alloc(job, 0, group="db")]
    result = reconcile(None, "example", existing, {}, NOW)
    assert len(result.stop) == 3 and not result.place
    assert counts(result, "web") == {"Stop": 2} and counts(result, "db") == {"Stop": 1}
    assert not result.all_at_once


def test_stop_ignores_terminal_allocs():
    job = make_job(count=2)
    existing = [make_alloc(job, 0), make_alloc(job, 1, client="failed"),
                make_alloc(job, 1, desired="stop", client="complete", create=50)]
    result = reconcile(changed(job, lambda j: setattr(j, "Stop", True)), "example", existing, {}, NOW)
    assert names(result.stop) == ["example.web[0]"] and counts(result) == {"Stop": 1}


def test_removed_group_is_stopped_and_others_untouched():
    job = make_job(count=1)
    existing = allocs_for(job, 1) + [make_alloc(job, 0, group="db"), make_alloc(job, 1, group="db")]
    result = reconcile(job, "example", existing, {}, NOW)
    assert names(result.stop) == ["example.db[0]", "example.db[1]"]
    assert counts(result, "db") == {"Stop": 2} and counts(result, "web") == {"Ignore": 1}


def test_empty_group_of_a_stopped_job_is_still_reported():
    result = reconcile(make_job(Stop=True), "example", [], {}, NOW)
    assert result.desired_tg_updates == {"web": DesiredUpdates()}


# --- in place or destructive ------------------------------------------------------------------

def _net(static: int = 8080, dynamic: int = 0) -> list[NetworkResource]:
    return [NetworkResource(MBits=10, ReservedPorts=[Port(Label="admin", Value=static)],
                            DynamicPorts=[Port(Label="http", Value=dynamic)])]


EDITS = {
    "count": (lambda j: setattr(j.TaskGroups[0], "Count", 5), INPLACE),
    "update strategy": (lambda j: setattr(j.TaskGroups[0], "Update", UpdateStrategy(MaxParallel=2)), INPLACE),
    "restart policy": (lambda j: setattr(j.TaskGroups[0].RestartPolicy, "Attempts", 9), INPLACE),
    "group constraint": (lambda j: setattr(j.TaskGroups[0], "Constraints",
                                           [Constraint(LTarget="a", RTarget="b", Operand="=")]), INPLACE),
    "log config": (lambda j: setattr(first_task(j), "LogConfig", LogConfig(MaxFiles=3)), INPLACE),
    "kill timeout": (lambda j: setattr(first_task(j), "KillTimeout", 30 * SECOND), INPLACE),
    "service tags": (lambda j: setattr(first_task(j), "Services", [Service(Name="w", Tags=["x"])]), INPLACE),
    "priority": (lambda j: setattr(j, "Priority", 90), INPLACE),
    "job meta": (lambda j: setattr(j, "Meta", {"owner": "ops"}), DESTRUCTIVE),
    "group meta": (lambda j: setattr(j.TaskGroups[0], "Meta", {"tier": "web"}), DESTRUCTIVE),
    "task meta": (lambda j: setattr(first_task(j), "Meta", {"k": "v"}), DESTRUCTIVE),
    "driver": (lambda j: setattr(first_task(j), "Driver", "podman"), DESTRUCTIVE),
    "image": (lambda j: first_task(j).Config.update(image="nginx:1.27"), DESTRUCTIVE),
    "env": (lambda j: first_task(j).Env.update(MODE="dev"), DESTRUCTIVE),
    "user": (lambda j: setattr(first_task(j), "User", "nobody"), DESTRUCTIVE),
    "cpu": (lambda j: setattr(first_task(j).Resources, "CPU", 200), DESTRUCTIVE),
    "memory": (lambda j: setattr(first_task(j).Resources, "MemoryMB", 512), DESTRUCTIVE),
    "ephemeral disk": (lambda j: setattr(j.TaskGroups[0].EphemeralDisk, "SizeMB", 500), DESTRUCTIVE),
    "cores": (lambda j: setattr(first_task(j).Resources, "Cores", 2), DESTRUCTIVE),
    "vault": (lambda j: setattr(first_task(j), "Vault", Vault(Policies=["p"])), DESTRUCTIVE),
    "artifacts": (lambda j: setattr(first_task(j), "Artifacts", [TaskArtifact(GetterSource="s3://x")]),
                  DESTRUCTIVE),
    "templates": (lambda j: setattr(first_task(j), "Templates", [Template(DestPath="a")]), DESTRUCTIVE),
    "task added": (lambda j: j.TaskGroups[0].Tasks.append(Task(Name="side", Driver="exec")), DESTRUCTIVE),
    "group network": (lambda j: setattr(j.TaskGroups[0], "Networks", _net()), DESTRUCTIVE),
}


@pytest.mark.parametrize("edit,expected", EDITS.values(), ids=EDITS.keys())
def test_classification_of_job_changes(edit, expected):
    job = make_job(count=1)
    assert classify_update(make_alloc(job, 0), changed(job, edit), "web") == expected


def test_same_job_modify_index_is_ignored_and_unknown_job_is_destructive():
    job = make_job(count=1)
    assert classify_update(make_alloc(job, 0), job, "web") == IGNORE
    orphan = make_alloc(job, 0)
    orphan.Job = None
    assert classify_update(orphan, job, "web") == DESTRUCTIVE


def test_finished_alloc_ignores_an_in_place_change():
    job = make_job(count=1, type_="batch")
    done = make_alloc(job, 0, client="complete")
    assert classify_update(done, changed(job, EDITS["count"][0]), "web") == IGNORE
    assert classify_update(done, changed(job, EDITS["image"][0]), "web") == DESTRUCTIVE


def test_dynamic_port_values_are_not_a_change_but_static_ports_are():
    job = make_job(count=1)
    job.TaskGroups[0].Networks = _net(static=8080, dynamic=21000)
    assert tasks_updated(job, changed(job, lambda j: j.TaskGroups[0].Networks[0].DynamicPorts[0]
                                      .__setattr__("Value", 25000)), "web") is None
    assert tasks_updated(job, changed(job, lambda j: j.TaskGroups[0].Networks[0].ReservedPorts[0]
                                      .__setattr__("Value", 9090)), "web") == "network"


def test_nil_and_empty_collections_are_equal():
    job = make_job(count=1)
    assert tasks_updated(job, changed(job, lambda j: setattr(first_task(j), "Artifacts", [])), "web") is None
    assert tasks_updated(job, changed(job, lambda j: setattr(j, "Meta", {})), "web") is None


def test_inplace_update_keeps_the_alloc():
    job = make_job(count=2)
    result = reconcile(changed(job, EDITS["count"][0]), "example", allocs_for(job, 2), {}, NOW)
    assert names(result.inplace_update) == ["example.web[0]", "example.web[1]"]
    assert not result.destructive_update and not result.stop


# --- destructive updates and MaxParallel ---------------------------------------------------------


def test_destructive_updates_all_at_once_without_max_parallel():
    job = make_job(count=3)
    result = reconcile(changed(job, EDITS["image"][0]), "example", allocs_for(job, 3), {}, NOW)
    assert names(result.destructive_update) == ["example.web[0]", "example.web[1]", "example.web[2]"]
    assert not result.place and not result.stop and not result.followup
    assert counts(result) == {"DestructiveUpdate": 3}


def test_max_parallel_limits_destructive_updates_per_pass():
    job = make_job(count=3, update=UpdateStrategy(MaxParallel=1, Stagger=30 * SECOND))
    result = reconcile(changed(job, EDITS["image"][0]), "example", allocs_for(job, 3), {}, NOW)
    assert names(result.destructive_update) == ["example.web[0]"]
    assert names(result.ignore) == ["example.web[1]", "example.web[2]"]
    assert result.followup and result.followup_wait_ns == 30 * SECOND
    assert counts(result) == {"DestructiveUpdate": 1, "Ignore": 2}


def test_placements_use_up_the_max_parallel_budget():
    job = make_job(count=2, update=UpdateStrategy(MaxParallel=2))
    new = changed(job, lambda j: (EDITS["image"][0](j), setattr(j.TaskGroups[0], "Count", 3)))
    result = reconcile(new, "example", allocs_for(job, 2), {}, NOW)
    assert names(result.place) == ["example.web[2]"]
    assert names(result.destructive_update) == ["example.web[0]"]
    assert counts(result) == {"Place": 1, "DestructiveUpdate": 1, "Ignore": 1}
    assert result.followup


def test_max_parallel_without_destructive_work_does_not_limit_placements():
    result = reconcile(make_job(count=4, update=UpdateStrategy(MaxParallel=1)), "example", [], {}, NOW)
    assert counts(result) == {"Place": 4} and not result.followup


# --- lost and draining nodes ----------------------------------------------------------------------


@pytest.mark.parametrize("tainted", [node("n2", "down"), None], ids=["down", "deleted"])
def test_lost_allocs_are_stopped_and_replaced_under_their_name(tainted):
    job = make_job(count=3)
    existing = allocs_for(job, 2) + [make_alloc(job, 2, node="n2", id_="lost-1")]
    result = reconcile(job, "example", existing, {"n2": tainted}, NOW)
    assert [(s.alloc.ID, s.description, s.client_status) for s in result.stop] == [
        ("lost-1", ALLOC_LOST, "lost")]
    assert result.place == [PlaceRequest("example.web[2]", "web", "lost-1")]
    assert counts(result) == {"Stop": 1, "Place": 1, "Ignore": 2}


def test_lost_allocs_beyond_a_reduced_count_are_not_replaced():
    job = make_job(count=3)
    existing = allocs_for(job, 2) + [make_alloc(job, 2, node="n2")]
    new = changed(job, lambda j: setattr(j.TaskGroups[0], "Count", 2))
    result = reconcile(new, "example", existing, {"n2": node("n2", "down")}, NOW)
    assert not result.place and counts(result) == {"Stop": 1, "InPlaceUpdate": 2}


def test_only_allocs_marked_for_migration_leave_a_draining_node_all_at_once():
    """Nomad 1.x: the drainer paces migrations (``Migrate.MaxParallel``) by marking
    allocs; the reconciler migrates every marked one, whatever ``Update.MaxParallel``,
    and leaves the unmarked ones on the draining node alone."""
    job = make_job(count=4, update=UpdateStrategy(MaxParallel=1, Stagger=10 * SECOND))
    marked = DesiredTransition(Migrate=True)
    existing = [make_alloc(job, 0)] + [make_alloc(job, i, node="drain") for i in (1, 2, 3)]
    existing[1] = replace(existing[1], DesiredTransition=marked)
    existing[2] = replace(existing[2], DesiredTransition=marked)
    result = reconcile(job, "example", existing, {"drain": node("drain", drain=True)}, NOW)
    assert [(s.alloc.Name, s.description) for s in result.stop] == [
        ("example.web[1]", ALLOC_MIGRATING), ("example.web[2]", ALLOC_MIGRATING)]
    assert names(result.place) == ["example.web[1]", "example.web[2]"]
    assert [p.previous_alloc_id for p in result.place] == [existing[1].ID, existing[2].ID]
    assert counts(result) == {"Migrate": 2, "Ignore": 2} and not result.followup


def test_a_marked_alloc_on_a_down_node_is_lost_not_migrated():
    job = make_job(count=1)
    alloc = replace(make_alloc(job, 0, node="n2"), DesiredTransition=DesiredTransition(Migrate=True))
    result = reconcile(job, "example", [alloc], {"n2": node("n2", "down")}, NOW)
    assert [(s.description, s.client_status) for s in result.stop] == [(ALLOC_LOST, "lost")]


def test_allocs_marked_to_migrate_are_stopped_and_replaced_under_their_name():
    job = make_job(count=3)
    existing = allocs_for(job, 3)
    existing[1] = replace(existing[1], DesiredTransition=DesiredTransition(Migrate=True))
    result = reconcile(job, "example", existing, {}, NOW)
    assert [(s.alloc.ID, s.description) for s in result.stop] == [(existing[1].ID, ALLOC_MIGRATING)]
    assert [(p.name, p.previous_alloc_id) for p in result.place] == \
        [("example.web[1]", existing[1].ID)]
    assert counts(result) == {"Migrate": 1, "Ignore": 2}


def test_system_alloc_marked_to_migrate_is_placed_again_on_its_node():
    job = make_job(count=1, type_="system")
    n1, n2 = node("n1"), node("n2")
    existing = [make_alloc(job, 0, node="n1", id_="keep"),
                replace(make_alloc(job, 0, node="n2", id_="move"),
                        DesiredTransition=DesiredTransition(Migrate=True))]
    result = reconcile_system(job, "example", existing, [n1, n2], {}, NOW)
    assert [(s.alloc.ID, s.description) for s in result.stop] == [("move", ALLOC_MIGRATING)]
    assert [(p.node_id, p.previous_alloc_id) for p in result.place] == [("n2", "move")]
    assert counts(result) == {"Migrate": 1, "Ignore": 1}


def test_desired_stop_allocs_still_running_on_a_down_node_are_marked_lost():
    job = make_job(count=1)
    gone = make_alloc(job, 0, node="n2", desired="stop", client="running", id_="old")
    result = reconcile(job, "example", [gone, make_alloc(job, 0)], {"n2": node("n2", "down")}, NOW)
    assert [(m.alloc.ID, m.client_status) for m in result.mark_lost] == [("old", "lost")]
    assert counts(result) == {"Ignore": 1}


# --- terminal and batch allocs ---------------------------------------------------------------------


def test_terminal_service_allocs_are_ignored_and_replaced():
    job = make_job(count=2)
    existing = [make_alloc(job, 0), make_alloc(job, 1, desired="stop", client="complete",
                                                create=50)]
    result = reconcile(job, "example", existing, {}, NOW)
    assert names(result.place) == ["example.web[1]"] and not result.stop
    assert counts(result) == {"Ignore": 1, "Place": 1}


def test_failed_service_alloc_without_reschedule_policy_stays_failed():
    job = make_job(count=2)
    existing = [make_alloc(job, 0), make_alloc(job, 1, client="failed")]
    result = reconcile(job, "example", existing, {}, NOW)
    assert not result.place and not result.stop and not result.followups
    assert counts(result) == {"Ignore": 2}


def test_batch_complete_allocs_count_and_are_not_replaced():
    job = make_job(count=3, type_="batch")
    existing = [make_alloc(job, 0, client="complete"), make_alloc(job, 1, client="complete"),
                make_alloc(job, 2)]
    result = reconcile(job, "example", existing, {}, NOW)
    assert not result.place and not result.stop
    assert counts(result) == {"Ignore": 3}


def test_batch_failed_allocs_without_reschedule_policy_are_not_rescheduled():
    job = make_job(count=2, type_="batch")
    result = reconcile(job, "example", [make_alloc(job, 0, client="failed"), make_alloc(job, 1)], {}, NOW)
    assert not result.place and counts(result) == {"Ignore": 2}


def test_batch_allocs_stopped_before_finishing_are_replaced():
    job = make_job(count=1, type_="batch")
    killed = make_alloc(job, 0, desired="stop", client="failed")
    result = reconcile(job, "example", [killed], {}, NOW)
    assert names(result.place) == ["example.web[0]"]


def test_batch_complete_allocs_rerun_only_on_destructive_change():
    job = make_job(count=2, type_="batch")
    existing = [make_alloc(job, i, client="complete") for i in range(2)]
    inplace = reconcile(changed(job, EDITS["count"][0]), "example", existing[:1], {}, NOW)
    assert counts(inplace) == {"Ignore": 1, "Place": 4}
    rerun = reconcile(changed(job, EDITS["image"][0]), "example", existing, {}, NOW)
    assert counts(rerun) == {"DestructiveUpdate": 2}


def test_batch_complete_alloc_on_down_node_is_not_lost():
    job = make_job(count=1, type_="batch")
    result = reconcile(job, "example", [make_alloc(job, 0, node="n2", client="complete")],
                       {"n2": node("n2", "down")}, NOW)
    assert not result.place and not result.stop and counts(result) == {"Ignore": 1}


def test_older_finished_batch_copy_of_a_name_is_shadowed():
    job = make_job(count=1, type_="batch")
    old = make_alloc(job, 0, desired="stop", client="complete", create=50)
    result = reconcile(job, "example", [old, make_alloc(job, 0, client="complete", create=90)], {}, NOW)
    assert counts(result) == {"Ignore": 1} and not result.place


# --- result shape -----------------------------------------------------------------------------------


def test_all_at_once_flag_and_desired_updates_shape():
    result = reconcile(make_job(count=1, AllAtOnce=True), "example", [], {}, NOW)
    assert result.all_at_once
    assert set(result.desired_tg_updates["web"].as_dict()) == {
        "Ignore", "Place", "Migrate", "Stop", "InPlaceUpdate", "DestructiveUpdate", "Canary",
        "Preemptions"}


def test_reconcile_is_pure_and_deterministic():
    job = make_job(count=3, update=UpdateStrategy(MaxParallel=1))
    existing = allocs_for(job, 4) + [make_alloc(job, 1, node="n2")]
    before = copy.deepcopy(existing)
    new = changed(job, EDITS["image"][0])
    first = reconcile(new, "example", existing, {"n2": None}, NOW)
    second = reconcile(new, "example", list(reversed(existing)), {"n2": None}, NOW)
    assert existing == before and first == second


# --- system jobs -------------------------------------------------------------------------------------


def system_job(**kw) -> Job:
    return make_job(count=1, type_="system", **kw)


def test_system_job_places_one_per_eligible_node():
    nodes = [node("n1"), node("n2"), node("n3")]
    result = reconcile_system(system_job(), "example", [], nodes, {}, NOW)
    assert [(p.name, p.node_id) for p in result.place] == [
        ("example.web[0]", "n1"), ("example.web[0]", "n2"), ("example.web[0]", "n3")]
    assert counts(result) == {"Place": 3}


def test_system_node_joins_and_leaves():
    job = system_job()
    existing = [make_alloc(job, 0, node="n1"), make_alloc(job, 0, node="n2")]
    result = reconcile_system(job, "example", existing, [node("n1"), node("n3")], {}, NOW)
    assert [(s.alloc.NodeID, s.description) for s in result.stop] == [("n2", ALLOC_NOT_NEEDED)]
    assert [p.node_id for p in result.place] == ["n3"]
    assert counts(result) == {"Ignore": 1, "Stop": 1, "Place": 1}


def test_system_down_node_is_lost_and_draining_node_kept_until_marked():
    job = system_job()
    existing = [make_alloc(job, 0, node=n) for n in ("n1", "down", "drain", "off")]
    tainted = {"down": node("down", "down"), "drain": node("drain", drain=True)}
    result = reconcile_system(job, "example", existing, [node("n1")], tainted, NOW,
                              frozenset({"drain", "off"}))
    assert [(s.alloc.NodeID, s.description, s.client_status) for s in result.stop] == [
        ("down", ALLOC_LOST, "lost")]
    assert not result.place and counts(result) == {"Ignore": 3, "Stop": 1}
    # an update leaves the allocs on nodes that are not ready as they are
    result = reconcile_system(changed(job, EDITS["image"][0]), "example", existing,
                              [node("n1")], tainted, NOW, frozenset({"drain", "off"}))
    assert [u.alloc.NodeID for u in result.destructive_update] == ["n1"]

    existing[2] = replace(existing[2], DesiredTransition=DesiredTransition(Migrate=True))
    result = reconcile_system(job, "example", existing, [node("n1")], tainted, NOW,
                              frozenset({"drain", "off"}))
    assert [(s.alloc.NodeID, s.description) for s in result.stop] == [
        ("down", ALLOC_LOST), ("drain", ALLOC_MIGRATING)]
    assert not result.place


def test_system_updates_and_max_parallel():
    job = system_job(update=UpdateStrategy(MaxParallel=1, Stagger=5 * SECOND))
    nodes = [node("n1"), node("n2")]
    existing = [make_alloc(job, 0, node=n.ID) for n in nodes]
    result = reconcile_system(changed(job, EDITS["image"][0]), "example", existing, nodes, {}, NOW)
    assert [u.alloc.NodeID for u in result.destructive_update] == ["n1"]
    assert counts(result) == {"DestructiveUpdate": 1, "Ignore": 1} and result.followup
    inplace = reconcile_system(changed(job, EDITS["priority"][0]), "example", existing, nodes, {}, NOW)
    assert counts(inplace) == {"InPlaceUpdate": 2}


def test_system_job_stop_and_replacement_links_previous_alloc():
    job = system_job()
    existing = [make_alloc(job, 0, node="n1")]
    stopped = reconcile_system(None, "example", existing, [node("n1")], {}, NOW)
    assert names(stopped.stop) == ["example.web[0]"] and not stopped.place
    dead = make_alloc(job, 0, node="n1", desired="stop", client="complete", id_="dead")
    result = reconcile_system(job, "example", [dead], [node("n1")], {}, NOW)
    assert result.place == [PlaceRequest("example.web[0]", "web", "dead", node_id="n1")]


# --- rescheduling of failed allocs ---------------------------------------------------------------

from caravan.fsm.structs import (  # noqa: E402
    AllocDeploymentStatus,
    Deployment,
    DeploymentState,
    RescheduleEvent,
    ReschedulePolicy,
    RescheduleTracker,
    TaskState,
)
from caravan.fsm.times import format_rfc3339  # noqa: E402
from caravan.scheduler.reconcile import reschedule_decision  # noqa: E402
from caravan.scheduler.reconcile_results import ALLOC_RESCHEDULED  # noqa: E402

UNLIMITED = ReschedulePolicy(Attempts=0, Interval=0, Delay=5 * SECOND,
                             DelayFunction="exponential", MaxDelay=60 * SECOND, Unlimited=True)


def rescheduling_job(policy: ReschedulePolicy = UNLIMITED, count: int = 2,
                     type_: str = "service", update=None) -> Job:
    job = make_job(count=count, type_=type_, update=update)
    job.TaskGroups[0].ReschedulePolicy = policy
    return job


def failed(job: Job, index: int, at: int, **fields) -> Allocation:
    alloc = make_alloc(job, index, client="failed", create=100 + index)
    return msgspec.structs.replace(
        alloc, TaskStates={"web": TaskState(State="dead", Failed=True,
                                            FinishedAt=format_rfc3339(at))}, **fields)


def test_failed_alloc_due_now_is_replaced_under_its_name_and_stopped():
    job = rescheduling_job()
    gone = failed(job, 1, NOW - 10 * SECOND)          # failed 10s ago, delay 5s: due
    result = reconcile(job, "example", [make_alloc(job, 0), gone], {}, NOW, eval_id="ev")
    assert result.place == [PlaceRequest("example.web[1]", "web", gone.ID, reschedule=True)]
    assert [(s.alloc.ID, s.description) for s in result.stop] == [(gone.ID, ALLOC_RESCHEDULED)]
    assert not result.followups
    assert counts(result) == {"Ignore": 1, "Place": 1, "Stop": 1}


def test_failed_alloc_due_within_the_window_is_replaced_now():
    job = rescheduling_job()
    gone = failed(job, 1, NOW - 4_500_000_000)        # due in 0.5s
    result = reconcile(job, "example", [make_alloc(job, 0), gone], {}, NOW)
    assert [p.reschedule for p in result.place] == [True]


def test_failed_alloc_due_later_gets_a_followup_and_keeps_its_name():
    job = rescheduling_job(count=3)
    soon = failed(job, 1, NOW)                        # due at NOW + 5s
    also = failed(job, 2, NOW + 2 * SECOND)           # due 2s after: same batch
    result = reconcile(job, "example", [make_alloc(job, 0), soon, also], {}, NOW)
    assert not result.place and not result.stop
    assert len(result.followups) == 1
    f = result.followups[0]
    assert f.wait_until_ns == NOW + 5 * SECOND and set(f.alloc_ids) == {soon.ID, also.ID}
    assert counts(result) == {"Ignore": 3}


def test_followups_are_batched_per_five_seconds():
    job = rescheduling_job(count=3)
    a, b = failed(job, 1, NOW), failed(job, 2, NOW + 6 * SECOND)
    result = reconcile(job, "example", [make_alloc(job, 0), a, b], {}, NOW)
    assert [(f.wait_until_ns, f.alloc_ids) for f in result.followups] == [
        (NOW + 5 * SECOND, (a.ID,)), (NOW + 11 * SECOND, (b.ID,))]


def test_alloc_with_a_waiting_followup_is_not_given_another():
    job = rescheduling_job()
    waiting = failed(job, 1, NOW, FollowupEvalID="f1")
    result = reconcile(job, "example", [make_alloc(job, 0), waiting], {}, NOW, eval_id="other")
    assert not result.place and not result.followups
    # its own follow-up eval replaces it, even a little early
    result = reconcile(job, "example", [make_alloc(job, 0), waiting], {}, NOW, eval_id="f1")
    assert [p.previous_alloc_id for p in result.place] == [waiting.ID]


def test_replaced_failed_allocs_are_never_rescheduled_again():
    job = rescheduling_job(count=1)
    old = failed(job, 0, NOW - 60 * SECOND, NextAllocation="new", DesiredStatus="stop")
    new = make_alloc(job, 0, id_="new", create=200)
    result = reconcile(job, "example", [old, new], {}, NOW)
    assert not result.place and not result.stop and counts(result) == {"Ignore": 1}


def test_exhausted_attempts_leave_the_alloc_failed():
    policy = ReschedulePolicy(Attempts=1, Interval=3600 * SECOND, Delay=SECOND,
                              DelayFunction="constant", MaxDelay=0, Unlimited=False)
    job = rescheduling_job(policy, count=1, type_="batch")
    tracker = RescheduleTracker(Events=[RescheduleEvent(RescheduleTime=NOW - 100 * SECOND,
                                                        PrevAllocID="x", Delay=SECOND)])
    last = failed(job, 0, NOW - 50 * SECOND, RescheduleTracker=tracker)
    result = reconcile(job, "example", [last], {}, NOW)
    assert not result.place and not result.followups and counts(result) == {"Ignore": 1}
    # outside the interval, the attempt counts no more
    old = RescheduleTracker(Events=[RescheduleEvent(RescheduleTime=NOW - 7200 * SECOND,
                                                    PrevAllocID="x", Delay=SECOND)])
    result = reconcile(job, "example", [msgspec.structs.replace(last, RescheduleTracker=old)],
                       {}, NOW)
    assert [p.reschedule for p in result.place] == [True]


def test_force_reschedule_ignores_the_policy():
    job = rescheduling_job(ReschedulePolicy(Attempts=0, Unlimited=False), count=1)
    stuck = failed(job, 0, NOW, DesiredTransition=DesiredTransition(ForceReschedule=True))
    assert reschedule_decision(stuck, NOW, "", None)[0] is True
    result = reconcile(job, "example", [stuck], {}, NOW)
    assert [p.previous_alloc_id for p in result.place] == [stuck.ID]


def test_scale_down_stops_failed_allocs_first():
    job = rescheduling_job(count=1)
    result = reconcile(job, "example", [make_alloc(job, 0), failed(job, 1, NOW)], {}, NOW)
    assert [s.alloc.Name for s in result.stop] == ["example.web[1]"]
    assert not result.place and not result.followups


def _deployment(status: str = "running") -> Deployment:
    return Deployment(ID="d1", JobID="example", JobVersion=0, JobCreateIndex=10,
                      Status=status, TaskGroups={"web": DeploymentState(
                          DesiredTotal=2, ProgressDeadline=600 * SECOND)})


def test_failed_alloc_of_an_active_deployment_waits_for_its_permission():
    job = rescheduling_job(update=UpdateStrategy(MaxParallel=1))
    gone = failed(job, 1, NOW - 60 * SECOND, DeploymentID="d1",
                  DeploymentStatus=AllocDeploymentStatus(Healthy=False))
    existing = [make_alloc(job, 0), gone]
    result = reconcile(job, "example", existing, {}, NOW, _deployment())
    assert not result.place and not result.followups
    allowed = msgspec.structs.replace(gone, DesiredTransition=DesiredTransition(Reschedule=True))
    result = reconcile(job, "example", [existing[0], allowed], {}, NOW, _deployment())
    assert [p.previous_alloc_id for p in result.place] == [gone.ID]
    assert result.deployment_id == "d1"


def test_failed_deployment_does_not_replace_its_own_failed_allocs():
    job = rescheduling_job(update=UpdateStrategy(MaxParallel=1))
    mine = failed(job, 1, NOW - 60 * SECOND, DeploymentID="d1")
    older = failed(job, 0, NOW - 60 * SECOND, DeploymentID="d0")
    result = reconcile(job, "example", [older, mine], {}, NOW, _deployment("failed"))
    assert [p.previous_alloc_id for p in result.place] == [older.ID]
