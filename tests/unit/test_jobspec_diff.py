"""Job diffs, checked against the situations and expected output of Nomad 1.x's
``nomad/structs/diff_test.go`` (names, order, value rendering, Type rules)."""
from __future__ import annotations

import copy

import msgspec
import pytest

from caravan.fsm.structs import Job
from caravan.server.jobspec.diff import job_diff, versions_diffs


def J(**fields) -> Job:
    return msgspec.convert(fields, Job)


def F(type_: str, name: str, old: str = "", new: str = "") -> dict:
    return {"Type": type_, "Name": name, "Old": old, "New": new, "Annotations": None}


def O(type_: str, name: str, fields=None, objects=None) -> dict:  # noqa: E743  (an Object diff)
    return {"Type": type_, "Name": name, "Fields": fields, "Objects": objects}


def full_job(**overrides) -> dict:
    """A canonicalized-looking service job as a JSON dict."""
    job = {
        "ID": "example", "Name": "example", "Type": "service", "Region": "global",
        "Namespace": "default", "Priority": 50, "Datacenters": ["dc1"],
        "Constraints": [{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}],
        "Meta": {"owner": "ops"},
        "Update": {"MaxParallel": 1, "Stagger": 30_000_000_000},
        "TaskGroups": [{
            "Name": "cache", "Count": 1,
            "RestartPolicy": {"Attempts": 2, "Interval": 1_800_000_000_000,
                              "Delay": 15_000_000_000, "Mode": "fail"},
            "EphemeralDisk": {"SizeMB": 300, "Sticky": False, "Migrate": False},
            "Tasks": [{
                "Name": "redis", "Driver": "docker", "KillTimeout": 5_000_000_000,
                "Config": {"image": "redis:7", "ports": ["db"]},
                "Resources": {"CPU": 500, "MemoryMB": 256},
                "LogConfig": {"MaxFiles": 10, "MaxFileSizeMB": 10},
            }],
        }],
        "Status": "running", "Version": 0, "CreateIndex": 10, "ModifyIndex": 10,
        "JobModifyIndex": 10, "SubmitTime": 1,
    }
    job.update(overrides)
    return job


def edit(d: dict, fn) -> dict:
    d = copy.deepcopy(d)
    fn(d)
    return d


def task_of(d: dict) -> dict:
    return d["TaskGroups"][0]["Tasks"][0]


# --- whole-job cases ---------------------------------------------------------------------


def test_both_nil_is_none():
    assert job_diff(None, None) == {"Type": "None", "ID": "", "Fields": None, "Objects": None,
                                    "TaskGroups": None}


def test_different_ids_raise():
    with pytest.raises(ValueError, match="can not diff jobs with different IDs"):
        job_diff(J(ID="foo"), J(ID="bar"))


def test_primitive_only_same():
    job = dict(Region="foo", ID="foo", Name="foo", Type="batch", Priority=10, AllAtOnce=True,
               Meta={"foo": "bar"})
    assert job_diff(J(**job), J(**job)) == {"Type": "None", "ID": "foo", "Fields": None,
                                            "Objects": None, "TaskGroups": None}


def test_primitive_only_has_diffs():
    old = J(Region="foo", ID="foo", Name="foo", Type="batch", Priority=10, AllAtOnce=True,
            Meta={"foo": "bar"})
    new = J(Region="bar", ID="foo", Name="bar", Type="system", Priority=100, AllAtOnce=False,
            Meta={"foo": "baz"})
    d = job_diff(old, new)
    assert d["Type"] == "Edited" and d["ID"] == "foo"
    assert d["Fields"] == [
        F("Edited", "AllAtOnce", "true", "false"),
        F("Edited", "Meta[foo]", "bar", "baz"),
        F("Edited", "Name", "foo", "bar"),
        F("Edited", "Priority", "10", "100"),
        F("Edited", "Region", "foo", "bar"),
        F("Edited", "Type", "batch", "system"),
    ]
    assert d["Objects"] is None and d["TaskGroups"] is None


def test_primitive_only_added_job():
    new = J(Region="foo", ID="foo", Name="foo", Type="batch", Priority=10, AllAtOnce=True,
            Meta={"foo": "bar"})
    d = job_diff(None, new)
    assert d["Type"] == "Added" and d["ID"] == "foo"
    # Empty strings are not "added"; zero-valued ints/bools are (Go has no unset scalar).
    assert d["Fields"] == [
        F("Added", "AllAtOnce", "", "true"),
        F("Added", "Dispatched", "", "false"),
        F("Added", "Meta[foo]", "", "bar"),
        F("Added", "Name", "", "foo"),
        F("Added", "Priority", "", "10"),
        F("Added", "Region", "", "foo"),
        F("Added", "Stop", "", "false"),
        F("Added", "Type", "", "batch"),
    ]


def test_primitive_only_deleted_job():
    old = J(Region="foo", ID="foo", Name="foo", Type="batch", Priority=10, AllAtOnce=True,
            Meta={"foo": "bar"})
    d = job_diff(old, None)
    assert d["Type"] == "Deleted" and d["ID"] == "foo"
    assert [f["Name"] for f in d["Fields"]] == [
        "AllAtOnce", "Dispatched", "Meta[foo]", "Name", "Priority", "Region", "Stop", "Type"]
    assert all(f["Type"] == "Deleted" and f["New"] == "" for f in d["Fields"])


def test_added_full_job_nests_everything():
    d = job_diff(None, J(**full_job()))
    assert d["Type"] == "Added"
    assert [o["Name"] for o in d["Objects"]] == ["Datacenters", "Constraint"]
    assert d["Objects"][0] == O("Added", "Datacenters", [F("Added", "Datacenters", "", "dc1")])
    (group,) = d["TaskGroups"]
    assert group["Type"] == "Added" and group["Name"] == "cache" and group["Updates"] is None
    assert group["Fields"] == [F("Added", "Count", "", "1")]
    assert [o["Name"] for o in group["Objects"]] == ["RestartPolicy", "EphemeralDisk"]
    (task,) = group["Tasks"]
    assert task["Type"] == "Added" and task["Annotations"] is None
    assert F("Added", "Driver", "", "docker") in task["Fields"]
    assert F("Added", "KillTimeout", "", "5000000000") in task["Fields"]
    assert [o["Name"] for o in task["Objects"]] == ["Config", "Resources", "LogConfig"]
    # The whole thing is JSON-encodable as is.
    msgspec.json.encode(d)


def test_identical_full_job_is_none_but_lists_groups():
    d = job_diff(J(**full_job()), J(**full_job()))
    assert d["Type"] == "None" and d["Fields"] is None and d["Objects"] is None
    # Unchanged groups and tasks are still listed, with Type "None".
    assert d["TaskGroups"] == [{
        "Type": "None", "Name": "cache", "Fields": None, "Objects": None, "Updates": None,
        "Tasks": [{"Type": "None", "Name": "redis", "Fields": None, "Objects": None,
                   "Annotations": None}],
    }]


def test_excluded_job_fields_are_not_diffed():
    old = J(**full_job())
    new = J(**full_job(Status="dead", StatusDescription="x", Version=7, Stable=True,
                       CreateIndex=1, ModifyIndex=99, JobModifyIndex=99, SubmitTime=123,
                       VaultToken="secret", Update={"MaxParallel": 5}))
    assert job_diff(old, new)["Type"] == "None"


# --- datacenters, meta, constraints ------------------------------------------------------------


@pytest.mark.parametrize("old,new,type_,fields", [
    (["foo", "bar"], ["baz", "bar"], "Edited",
     [F("Added", "Datacenters", "", "baz"), F("Deleted", "Datacenters", "foo", "")]),
    (["foo", "bar"], ["foo", "bar", "baz"], "Added", [F("Added", "Datacenters", "", "baz")]),
    (["foo", "bar"], ["foo"], "Deleted", [F("Deleted", "Datacenters", "bar", "")]),
])
def test_datacenters_set_diff(old, new, type_, fields):
    d = job_diff(J(Datacenters=old), J(Datacenters=new))
    assert d["Type"] == "Edited"
    assert d["Objects"] == [O(type_, "Datacenters", fields)]


def test_datacenters_order_is_not_a_change():
    assert job_diff(J(Datacenters=["a", "b"]), J(Datacenters=["b", "a"]))["Type"] == "None"


def test_datacenters_contextual():
    same = job_diff(J(Datacenters=["foo", "bar"]), J(Datacenters=["foo", "bar"]), contextual=True)
    assert same["Type"] == "None" and same["Objects"] is None
    d = job_diff(J(Datacenters=["foo", "bar"]), J(Datacenters=["foo", "bar", "baz"]), contextual=True)
    assert d["Objects"] == [O("Added", "Datacenters", [
        F("Added", "Datacenters", "", "baz"),
        F("None", "Datacenters", "bar", "bar"),
        F("None", "Datacenters", "foo", "foo"),
    ])]


def test_meta_added_removed_edited():
    old = J(Meta={"foo": "foo", "bar": "bar", "qux": "1"})
    new = J(Meta={"bar": "bar", "baz": "baz", "qux": "2"})
    d = job_diff(old, new)
    assert d["Type"] == "Edited"
    assert d["Fields"] == [
        F("Added", "Meta[baz]", "", "baz"),
        F("Deleted", "Meta[foo]", "foo", ""),
        F("Edited", "Meta[qux]", "1", "2"),
    ]


def test_constraints_added_and_deleted():
    old = J(Constraints=[{"LTarget": "foo", "RTarget": "foo", "Operand": "foo"},
                         {"LTarget": "bar", "RTarget": "bar", "Operand": "bar"}])
    new = J(Constraints=[{"LTarget": "foo", "RTarget": "foo", "Operand": "foo"},
                         {"LTarget": "baz", "RTarget": "baz", "Operand": "baz"}])
    d = job_diff(old, new)
    assert d["Type"] == "Edited"
    # Matched by equality: an edited constraint is a Deleted + Added pair, Added first.
    assert d["Objects"] == [
        O("Added", "Constraint", [F("Added", "LTarget", "", "baz"), F("Added", "Operand", "", "baz"),
                                  F("Added", "RTarget", "", "baz")]),
        O("Deleted", "Constraint", [F("Deleted", "LTarget", "bar", ""),
                                    F("Deleted", "Operand", "bar", ""),
                                    F("Deleted", "RTarget", "bar", "")]),
    ]


def test_constraints_reordered_is_none_even_contextual():
    a = {"LTarget": "a", "RTarget": "1", "Operand": "="}
    b = {"LTarget": "b", "RTarget": "2", "Operand": "="}
    assert job_diff(J(Constraints=[a, b]), J(Constraints=[b, a]), contextual=True)["Type"] == "None"


def test_periodic_edited_with_context():
    old = J(Periodic={"Enabled": False, "Spec": "*/15 * * * * *", "SpecType": "foo",
                      "ProhibitOverlap": False, "TimeZone": "Europe/Minsk"})
    new = J(Periodic={"Enabled": True, "Spec": "* * * * * *", "SpecType": "foo",
                      "ProhibitOverlap": False, "TimeZone": "Europe/Minsk"})
    d = job_diff(old, new, contextual=True)
    assert d["Objects"] == [O("Edited", "Periodic", [
        F("Edited", "Enabled", "false", "true"),
        F("None", "ProhibitOverlap", "false", "false"),
        F("Edited", "Spec", "*/15 * * * * *", "* * * * * *"),
        F("None", "SpecType", "foo", "foo"),
        F("None", "TimeZone", "Europe/Minsk", "Europe/Minsk"),
    ])]
    # Without context only the changes remain.
    assert [f["Name"] for f in job_diff(old, new)["Objects"][0]["Fields"]] == ["Enabled", "Spec"]


def test_parameterized_job_added():
    d = job_diff(J(), J(ParameterizedJob={"Payload": "required", "MetaOptional": ["foo"],
                                          "MetaRequired": ["bar"]}))
    assert d["Objects"] == [O("Added", "ParameterizedJob", [F("Added", "Payload", "", "required")], [
        O("Added", "MetaOptional", [F("Added", "MetaOptional", "", "foo")]),
        O("Added", "MetaRequired", [F("Added", "MetaRequired", "", "bar")]),
    ])]


# --- task groups --------------------------------------------------------------------------------


def test_task_groups_added_removed_edited():
    old = J(TaskGroups=[{"Name": "foo", "Count": 1}, {"Name": "bar", "Count": 1},
                        {"Name": "baz", "Count": 1}])
    new = J(TaskGroups=[{"Name": "bar", "Count": 1}, {"Name": "baz", "Count": 2},
                        {"Name": "bam", "Count": 1}])
    d = job_diff(old, new)
    assert d["Type"] == "Edited"
    groups = d["TaskGroups"]
    assert [(g["Name"], g["Type"]) for g in groups] == [
        ("bam", "Added"), ("bar", "None"), ("baz", "Edited"), ("foo", "Deleted")]
    assert groups[0]["Fields"] == [F("Added", "Count", "", "1")]
    assert groups[1]["Fields"] is None
    assert groups[2]["Fields"] == [F("Edited", "Count", "1", "2")]
    assert groups[3]["Fields"] == [F("Deleted", "Count", "1", "")]


def test_group_count_and_meta_change():
    old = full_job()
    new = edit(old, lambda d: d["TaskGroups"][0].update(Count=3, Meta={"tier": "web"}))
    (group,) = job_diff(J(**old), J(**new))["TaskGroups"]
    assert group["Type"] == "Edited"
    assert group["Fields"] == [F("Edited", "Count", "1", "3"), F("Added", "Meta[tier]", "", "web")]
    assert group["Objects"] is None
    assert group["Tasks"][0]["Type"] == "None"


def test_group_blocks_restart_update_and_shutdown_delay():
    old = full_job()
    new = edit(old, lambda d: d["TaskGroups"][0].update(
        RestartPolicy={"Attempts": 3, "Interval": 1_800_000_000_000, "Delay": 15_000_000_000,
                       "Mode": "fail"},
        Update={"MaxParallel": 2, "Stagger": 5, "HealthCheck": "checks"},
        ShutdownDelay=5_000_000_000))
    (group,) = job_diff(J(**old), J(**new))["TaskGroups"]
    assert group["Fields"] == [F("Added", "ShutdownDelay", "", "5000000000")]
    restart, update = group["Objects"]
    assert restart == O("Edited", "RestartPolicy", [F("Edited", "Attempts", "2", "3")])
    # Update is diffed at group level, Stagger excluded; unset fields read as zero.
    assert update["Type"] == "Added" and update["Name"] == "Update"
    names = [f["Name"] for f in update["Fields"]]
    assert "Stagger" not in names
    assert F("Added", "MaxParallel", "", "2") in update["Fields"]
    assert F("Added", "HealthCheck", "", "checks") in update["Fields"]


def test_group_networks_are_matched_by_content():
    old = full_job()
    old["TaskGroups"][0]["Networks"] = [{"Mode": "bridge", "MBits": 10,
                                         "DynamicPorts": [{"Label": "http", "To": 8080}]}]
    new = edit(old, lambda d: d["TaskGroups"][0]["Networks"][0]["DynamicPorts"][0].update(To=9090))
    (group,) = job_diff(J(**old), J(**new))["TaskGroups"]
    added, deleted = group["Objects"]
    assert (added["Type"], added["Name"], deleted["Type"]) == ("Added", "Network", "Deleted")
    assert added["Fields"] == [F("Added", "MBits", "", "10"), F("Added", "Mode", "", "bridge")]
    assert added["Objects"] == [O("Added", "Dynamic Port", [F("Added", "Label", "", "http"),
                                                            F("Added", "To", "", "9090")])]


# --- tasks ---------------------------------------------------------------------------------------


def test_tasks_added_deleted_edited():
    def tasks(*specs):
        return J(TaskGroups=[{"Name": "g", "Count": 1, "Tasks": [dict(s) for s in specs]}])

    old = tasks({"Name": "a", "Driver": "exec"}, {"Name": "b", "Driver": "exec"})
    new = tasks({"Name": "b", "Driver": "docker", "User": "nobody"}, {"Name": "c", "Driver": "raw_exec"})
    (group,) = job_diff(old, new)["TaskGroups"]
    assert group["Type"] == "Edited" and group["Fields"] is None
    a, b, c = group["Tasks"]
    assert (a["Name"], a["Type"]) == ("a", "Deleted")
    assert F("Deleted", "Driver", "exec", "") in a["Fields"]
    assert (b["Name"], b["Type"]) == ("b", "Edited")
    assert b["Fields"] == [F("Edited", "Driver", "exec", "docker"), F("Added", "User", "", "nobody")]
    assert (c["Name"], c["Type"]) == ("c", "Added")
    assert F("Added", "Driver", "", "raw_exec") in c["Fields"]


def test_task_env_meta_and_kill_timeout():
    old = full_job()
    new = edit(old, lambda d: task_of(d).update(Env={"FOO": "bar"}, Meta={"a": "b"},
                                                KillTimeout=2_000_000_000))
    task = job_diff(J(**old), J(**new))["TaskGroups"][0]["Tasks"][0]
    assert task["Fields"] == [
        F("Added", "Env[FOO]", "", "bar"),
        F("Edited", "KillTimeout", "5000000000", "2000000000"),
        F("Added", "Meta[a]", "", "b"),
    ]


def test_task_driver_config_nested_change():
    old = full_job()
    task_of(old)["Config"] = {"image": "redis:7", "args": ["-v"], "labels": {"env": "dev"},
                              "port_map": [{"db": 6379}]}
    new = edit(old, lambda d: task_of(d).update(Config={
        "image": "redis:7", "args": ["-v", "-x"], "labels": {"env": "prod"},
        "port_map": [{"db": 6380}], "memory_hard_limit": 10_000_000, "init": True}))
    task = job_diff(J(**old), J(**new))["TaskGroups"][0]["Tasks"][0]
    assert task["Type"] == "Edited" and task["Fields"] is None
    # Maps nest as key[sub], lists as key[i]; numbers render like Go's float64 %v.
    assert task["Objects"] == [O("Edited", "Config", [
        F("Added", "args[1]", "", "-x"),
        F("Added", "init", "", "true"),
        F("Edited", "labels[env]", "dev", "prod"),
        F("Added", "memory_hard_limit", "", "1e+07"),
        F("Edited", "port_map[0][db]", "6379", "6380"),
    ])]


def test_task_resources_change_and_contextual():
    old = full_job()
    new = edit(old, lambda d: task_of(d)["Resources"].update(CPU=1000, MemoryMB=256))
    task = job_diff(J(**old), J(**new))["TaskGroups"][0]["Tasks"][0]
    assert task["Objects"] == [O("Edited", "Resources", [F("Edited", "CPU", "500", "1000")])]
    ctx = job_diff(J(**old), J(**new), contextual=True)["TaskGroups"][0]["Tasks"][0]
    assert ctx["Objects"] == [O("Edited", "Resources", [
        F("Edited", "CPU", "500", "1000"),
        F("None", "Cores", "0", "0"),
        F("None", "DiskMB", "0", "0"),
        F("None", "IOPS", "0", "0"),
        F("None", "MemoryMB", "256", "256"),
        F("None", "MemoryMaxMB", "0", "0"),
    ])]


def test_task_network_resources_edited():
    old = full_job()
    task_of(old)["Resources"]["Networks"] = [{
        "Device": "foo", "CIDR": "foo", "IP": "foo", "MBits": 100,
        "ReservedPorts": [{"Label": "foo", "Value": 80}],
        "DynamicPorts": [{"Label": "bar", "To": 8080}]}]
    new = edit(old, lambda d: task_of(d)["Resources"].update(Networks=[{
        "Device": "bar", "CIDR": "bar", "IP": "bar", "MBits": 200,
        "ReservedPorts": [{"Label": "foo", "Value": 81}],
        "DynamicPorts": [{"Label": "baz", "To": 8081}]}]))
    (resources,) = job_diff(J(**old), J(**new))["TaskGroups"][0]["Tasks"][0]["Objects"]
    assert resources == O("Edited", "Resources", None, [
        O("Added", "Network", [F("Added", "MBits", "", "200")], [
            O("Added", "Static Port", [F("Added", "Label", "", "foo"), F("Added", "To", "", "0"),
                                       F("Added", "Value", "", "81")]),
            O("Added", "Dynamic Port", [F("Added", "Label", "", "baz"),
                                        F("Added", "To", "", "8081")]),
        ]),
        O("Deleted", "Network", [F("Deleted", "MBits", "100", "")], [
            O("Deleted", "Static Port", [F("Deleted", "Label", "foo", ""),
                                         F("Deleted", "To", "0", ""),
                                         F("Deleted", "Value", "80", "")]),
            O("Deleted", "Dynamic Port", [F("Deleted", "Label", "bar", ""),
                                          F("Deleted", "To", "8080", "")]),
        ]),
    ])


def test_task_constraint_logconfig_dispatch_payload():
    old = full_job()
    task_of(old)["DispatchPayload"] = {"File": "foo"}
    new = edit(old, lambda d: task_of(d).update(
        Constraints=[{"LTarget": "${meta.rack}", "RTarget": "r1", "Operand": "="}],
        LogConfig={"MaxFiles": 2, "MaxFileSizeMB": 10},
        DispatchPayload={"File": "bar"}))
    objects = job_diff(J(**old), J(**new))["TaskGroups"][0]["Tasks"][0]["Objects"]
    assert [(o["Type"], o["Name"]) for o in objects] == [
        ("Added", "Constraint"), ("Edited", "LogConfig"), ("Edited", "DispatchPayload")]
    assert objects[1]["Fields"] == [F("Edited", "MaxFiles", "10", "2")]
    assert objects[2]["Fields"] == [F("Edited", "File", "foo", "bar")]


def test_task_service_checks_edited():
    check = {"Type": "http", "Path": "/health", "Interval": 1_000_000_000, "Timeout": 1_000_000_000}
    old = full_job()
    task_of(old)["Services"] = [{"Name": "foo", "Tags": ["a", "b"], "Checks": [
        dict(check, Name="foo", Header={"Foo": ["bar"]}), dict(check, Name="baz")]}]
    new = edit(old, lambda d: task_of(d)["Services"][0].update(Tags=["b", "c"], Checks=[
        dict(check, Name="baz", Type="tcp", Header={"Eggs": ["spam"]}), dict(check, Name="bam")]))
    (service,) = job_diff(J(**old), J(**new))["TaskGroups"][0]["Tasks"][0]["Objects"]
    assert service["Type"] == "Edited" and service["Name"] == "Service" and service["Fields"] is None
    tags, baz, bam, foo = service["Objects"]
    assert tags == O("Edited", "Tags", [F("Added", "Tags", "", "c"), F("Deleted", "Tags", "a", "")])
    # Checks are matched by name; Edited sorts before Added before Deleted.
    assert baz == O("Edited", "Check", [F("Edited", "Type", "http", "tcp")],
                    [O("Added", "Header", [F("Added", "Eggs[0]", "", "spam")])])
    assert (bam["Type"], foo["Type"]) == ("Added", "Deleted")
    assert F("Added", "Interval", "", "1000000000") in bam["Fields"]
    assert foo["Objects"] == [O("Deleted", "Header", [F("Deleted", "Foo[0]", "bar", "")])]


def test_task_artifacts_vault_templates():
    old = full_job()
    task_of(old).update(
        Artifacts=[{"GetterSource": "foo", "RelativeDest": "foo"},
                   {"GetterSource": "bar", "GetterMode": "dir", "RelativeDest": "bar"}],
        Vault={"Policies": ["a"], "ChangeMode": "restart"},
        Templates=[{"DestPath": "local/a", "EmbeddedTmpl": "x", "Splay": 5}])
    new = edit(old, lambda d: task_of(d).update(
        Artifacts=[{"GetterSource": "foo/bar", "RelativeDest": "foo"},
                   {"GetterSource": "bam", "GetterMode": "file", "RelativeDest": "bam"}],
        Vault={"Policies": ["a", "b"], "ChangeMode": "restart"},
        Templates=[{"DestPath": "local/a", "EmbeddedTmpl": "y", "Splay": 5}]))
    objects = job_diff(J(**old), J(**new))["TaskGroups"][0]["Tasks"][0]["Objects"]
    names = [(o["Type"], o["Name"]) for o in objects]
    assert names == [("Edited", "Artifact"), ("Added", "Artifact"), ("Deleted", "Artifact"),
                     ("Edited", "Vault"), ("Edited", "Template")]
    assert objects[0]["Fields"] == [F("Edited", "GetterSource", "foo", "foo/bar")]
    assert objects[3] == O("Edited", "Vault", None,
                           [O("Added", "Policies", [F("Added", "Policies", "", "b")])])
    assert objects[4] == O("Edited", "Template", [F("Edited", "EmbeddedTmpl", "x", "y")])


# --- contextual and history ----------------------------------------------------------------------


def test_contextual_group_objects_keep_unchanged_fields():
    old = full_job()
    new = edit(old, lambda d: d["TaskGroups"][0]["EphemeralDisk"].update(SizeMB=500))
    (group,) = job_diff(J(**old), J(**new), contextual=True)["TaskGroups"]
    assert group["Objects"] == [O("Edited", "EphemeralDisk", [
        F("None", "Migrate", "false", "false"),
        F("Edited", "SizeMB", "300", "500"),
        F("None", "Sticky", "false", "false"),
    ])]
    # Group-level primitive fields are never contextual; unchanged blocks stay out.
    assert group["Fields"] is None


def test_versions_diffs_three_versions_newest_first():
    v0 = J(**full_job(Version=0))
    v1 = J(**edit(full_job(Version=1), lambda d: d.update(Priority=60)))
    v2 = J(**edit(full_job(Version=2, Priority=60),
                  lambda d: d["TaskGroups"][0].update(Count=2)))
    diffs = versions_diffs([v2, v1, v0])
    assert len(diffs) == 2
    newest, older = diffs
    assert newest["Type"] == "Edited" and newest["Fields"] is None
    assert newest["TaskGroups"][0]["Fields"] == [F("Edited", "Count", "1", "2")]
    assert older["Fields"] == [F("Edited", "Priority", "50", "60")]
    assert older["TaskGroups"][0]["Type"] == "None"
    assert versions_diffs([v0]) == [] and versions_diffs([]) == []
    # Same result as diffing the neighbours by hand (Nomad uses contextual diffs here).
    assert diffs == [job_diff(v1, v2, True), job_diff(v0, v1, True)]


def test_scaling_block_diff_shows_bounds_and_policy_not_ids():
    import msgspec as _msgspec

    from caravan.fsm.scaling import with_policy_ids
    from caravan.fsm.structs import Job as _Job
    from caravan.server.jobspec.canonicalize import canonicalize as _canonicalize
    from caravan.server.jobspec.diff import job_diff as _job_diff

    def mk(high, policy=True):
        g = {"Name": "g", "Count": 1, "Tasks": [{"Name": "t", "Driver": "mock"}]}
        if policy:
            g["Scaling"] = {"Min": 1, "Max": high, "Policy": {"cooldown": f"{high}m"}}
        job = _msgspec.convert({"ID": "a", "TaskGroups": [g]}, _Job)
        _canonicalize(job)
        return job

    stored = with_policy_ids(mk(3), None, 7)
    assert _job_diff(stored, with_policy_ids(mk(3), stored, 0))["Type"] == "None"
    (obj,) = _job_diff(stored, with_policy_ids(mk(5), stored, 0))["TaskGroups"][0]["Objects"]
    assert obj["Name"] == "Scaling" and obj["Type"] == "Edited"
    assert [(f["Name"], f["Old"], f["New"]) for f in obj["Fields"]] == [("Max", "3", "5")]
    assert obj["Objects"][0]["Name"] == "Policy"
    assert obj["Objects"][0]["Fields"][0]["New"] == "5m"
    (added,) = _job_diff(mk(1, policy=False), mk(5))["TaskGroups"][0]["Objects"]
    assert added["Type"] == "Added" and {f["Name"] for f in added["Fields"]} == \
        {"Enabled", "Max", "Min"}


def test_lifecycle_volumes_and_volume_mounts_diff():
    def job(hook: str, read_only: bool, dest: str) -> Job:
        return msgspec.convert({"ID": "j", "TaskGroups": [{
            "Name": "g", "Volumes": {"d": {"Type": "host", "Source": "s", "ReadOnly": read_only}},
            "Tasks": [{"Name": "t", "Driver": "raw_exec", "Lifecycle": {"Hook": hook},
                       "VolumeMounts": [{"Volume": "d", "Destination": dest}]}]}]}, Job)
    diff = job_diff(job("prestart", False, "/a"), job("poststop", True, "/b"))
    (tg,) = diff["TaskGroups"]
    assert tg["Objects"] == [O("Edited", "Volume", [F("Edited", "ReadOnly", "false", "true")])]
    (task,) = tg["Tasks"]
    lifecycle, *mounts = task["Objects"]
    assert lifecycle == O("Edited", "TaskLifecycle", [F("Edited", "Hook", "prestart", "poststop")])
    assert sorted((m["Type"], [f for f in m["Fields"] if f["Name"] == "Destination"][0]["New"]
                   or "-") for m in mounts) == [("Added", "/b"), ("Deleted", "-")]
