"""Nomad 1.x validation messages from server.jobspec.validate."""
from __future__ import annotations

import copy
import json
import random

import msgspec
import pytest

from caravan.fsm.durations import go_duration
from caravan.fsm.structs import Job, Task, TaskGroup
from caravan.server.jobspec.canonicalize import canonicalize
from caravan.server.jobspec.validate import format_errors, validate_job, validate_update
from caravan.server.jobspec.validate_constraints import version_constraint_error

S = 1_000_000_000
M = 60 * S
TG = "Task group web validation failed: "
TASK = TG + "Task app validation failed: "

BASE = {"ID": "example", "TaskGroups": [{"Name": "web", "Tasks": [{"Name": "app", "Driver": "exec"}]}]}


def build(spec: dict | None = None, **changes) -> Job:
    body = copy.deepcopy(BASE)
    body.update(spec or {})
    body.update(changes)
    job = msgspec.json.decode(json.dumps(body).encode(), type=Job)
    canonicalize(job)
    return job


def errors_of(spec: dict | None = None, **changes) -> list[str]:
    return validate_job(build(spec, **changes))[0]


def with_group(**fields) -> dict:
    g = {"Name": "web", "Tasks": [{"Name": "app", "Driver": "exec"}]}
    g.update(fields)
    return {"TaskGroups": [g]}


def with_task(**fields) -> dict:
    t = {"Name": "app", "Driver": "exec"}
    t.update(fields)
    return {"TaskGroups": [{"Name": "web", "Tasks": [t]}]}


def test_minimal_job_is_valid():
    assert validate_job(build()) == ([], [])


# --- job level ---------------------------------------------------------------------------


def test_missing_job_id():
    assert errors_of(ID="") == ["Missing job ID", "Missing job name"]


def test_job_id_with_space():
    assert errors_of(ID="my job") == ["Job ID contains a space"]


def test_invalid_and_missing_job_type():
    assert errors_of(Type="cron") == ['Invalid job type: "cron"']
    assert errors_of(Type="")[0] == "Missing job type"


def test_core_job_type_is_refused_at_register():
    assert "job type cannot be core" in errors_of(Type="_core")


@pytest.mark.parametrize("priority", [0, 101])
def test_priority_range(priority):
    assert errors_of(Priority=priority) == ["job priority must be between [1, 100]"]


def test_missing_task_groups():
    assert errors_of(TaskGroups=[]) == ["Missing job task groups"]


def test_empty_datacenter_name():
    assert errors_of(Datacenters=["dc1", ""]) == ["Job datacenter must be non-empty string"]


def test_group_names_missing_and_duplicated():
    spec = {"TaskGroups": [
        {"Name": "web", "Tasks": [{"Name": "a", "Driver": "x"}]},
        {"Name": "web", "Tasks": [{"Name": "a", "Driver": "x"}]},
        {"Tasks": [{"Name": "a", "Driver": "x"}]},
    ]}
    errs = errors_of(spec)
    assert "Job task group 2 redefines 'web' from group 1" in errs
    assert "Job task group 3 missing name" in errs
    assert "Task group  validation failed: Missing task group name" in errs


def test_system_job_count_cannot_exceed_one():
    errs = errors_of(with_group(Count=3), Type="system")
    assert errs == ["Job task group web has count 3. Count cannot exceed 1 with system scheduler"]


def test_payload_cannot_be_submitted():
    job = build(Type="batch", ParameterizedJob={})
    job.Payload = b"data"
    assert validate_job(job)[0] == ["job can't be submitted with a payload, only dispatched"]


# --- periodic and parameterized ------------------------------------------------------------


def test_periodic_requires_batch():
    assert errors_of(Periodic={"Spec": "* * * * *"}) == [
        'Periodic can only be used with "batch" or "sysbatch" scheduler']


def test_disabled_periodic_is_not_checked():
    assert errors_of(Type="service", Periodic={"Spec": "nonsense", "Enabled": False}) == []


@pytest.mark.parametrize("spec", ["* * * * *", "*/5 2 * * 1-5", "0 0 1 1 * 2030", "30 * * * * * 2029-2031",
                                  "@hourly", "@daily", "@yearly", "0 0 L * *"])
def test_valid_cron_specs(spec):
    assert errors_of(Type="batch", Periodic={"Spec": spec}) == []


@pytest.mark.parametrize("spec", ["61 * * * *", "* * *", "* * * * * * * *", "@fortnightly",
                                  "* * * * * 1800", "not a cron"])
def test_invalid_cron_specs(spec):
    errs = errors_of(Type="batch", Periodic={"Spec": spec})
    assert len(errs) == 1 and errs[0].startswith(f'Invalid cron spec "{spec}": ')


def test_periodic_spec_and_type_and_zone():
    assert errors_of(Type="batch", Periodic={}) == ["Must specify a spec"]
    assert errors_of(Type="batch", Periodic={"Spec": "* * * * *", "SpecType": "rrule"}) == [
        'Unknown periodic specification type "rrule"']
    assert errors_of(Type="batch", Periodic={"Spec": "* * * * *", "TimeZone": "Mars/Olympus"}) == [
        'Invalid time zone "Mars/Olympus": unknown time zone Mars/Olympus']
    assert errors_of(Type="batch", Periodic={"Spec": "* * * * *", "TimeZone": "America/New_York"}) == []


def test_parameterized_requires_batch():
    assert errors_of(ParameterizedJob={}) == [
        'Parameterized job can only be used with "batch" or "sysbatch" scheduler']


def test_unknown_payload_requirement():
    assert errors_of(Type="batch", ParameterizedJob={"Payload": "maybe"}) == [
        'Unknown payload requirement: "maybe"']


def test_meta_keys_disjoint():
    errs = errors_of(Type="batch", ParameterizedJob={"MetaRequired": ["a", "b", "c"], "MetaOptional": ["c", "a"]})
    assert errs == ["Required and optional meta keys should be disjoint. Following keys exist in both: [a c]"]


def test_dispatched_child_is_not_checked_as_parameterized():
    job = build(Type="service", ParameterizedJob={})
    job.Dispatched = True
    assert validate_job(job)[0] == []


# --- groups --------------------------------------------------------------------------------


def test_negative_count():
    assert errors_of(with_group(Count=-1)) == [TG + "Task group count can't be negative"]


def test_missing_tasks():
    assert errors_of(with_group(Tasks=[])) == [TG + "Missing tasks for task group"]


def test_restart_policy_checks():
    errs = errors_of(with_group(RestartPolicy={"Mode": "sometimes", "Attempts": 0, "Interval": S}))
    assert errs == [TG + 'Unsupported restart mode: "sometimes"',
                    TG + 'Restart policy "sometimes" with 0 attempts is ambiguous',
                    TG + "Interval can not be less than 5s (got 1s)"]
    errs = errors_of(with_group(RestartPolicy={"Mode": "delay", "Attempts": 10, "Interval": 5 * M, "Delay": M}))
    assert errs == [TG + "Nomad can't restart the TaskGroup 10 times in an interval of 5m0s with a delay of 1m0s"]


def test_ephemeral_disk_minimum():
    errs = errors_of(with_group(EphemeralDisk={"SizeMB": 5}))
    assert TG + "minimum DiskMB value is 10; got 5" in errs


def test_update_block_not_allowed_for_batch():
    assert errors_of(with_group(Update={"MaxParallel": 1}), Type="batch") == [
        TG + 'Job type "batch" does not allow update block']


def test_update_strategy_checks():
    errs = errors_of(with_group(Update={"HealthCheck": "vibes", "MaxParallel": -1, "Canary": -1,
                                        "MinHealthyTime": 6 * M, "Stagger": 0}))
    assert errs == [TG + 'Invalid health check given: "vibes"',
                    TG + "Max parallel can not be less than zero: -1 < 0",
                    TG + "Canary count can not be less than zero: -1 < 0",
                    TG + "Minimum healthy time must be less than healthy deadline: 6m0s > 5m0s",
                    TG + "Stagger must be greater than zero: 0s"]
    errs = errors_of(with_group(Update={"AutoPromote": True, "HealthyDeadline": 20 * M}))
    assert errs == [TG + "Auto Promote requires a Canary count greater than zero",
                    TG + "Healthy deadline must be less than progress deadline: 20m0s > 10m0s"]


def test_migrate_block_only_for_service():
    assert errors_of(with_group(Migrate={"MaxParallel": 1}), Type="batch") == [
        TG + 'Job type "batch" does not allow migrate block']


def test_duplicate_tasks_and_leaders():
    errs = errors_of(with_group(Tasks=[{"Name": "app", "Driver": "x", "Leader": True},
                                       {"Name": "app", "Driver": "x", "Leader": True},
                                       {"Driver": "x"}]))
    assert TG + "Task 2 redefines 'app' from task 1" in errs
    assert TG + "Task 3 missing name" in errs
    assert TG + "Only one task may be marked as leader" in errs
    assert TG + "Task  validation failed: Missing task name" in errs


def test_static_port_conflicts_and_labels():
    spec = with_group(Networks=[{"ReservedPorts": [{"Label": "http", "Value": 8080},
                                                    {"Label": "admin", "Value": 70000}]}],
                      Tasks=[{"Name": "app", "Driver": "x", "Resources": {"Networks": [
                          {"ReservedPorts": [{"Label": "http", "Value": 8080}]}]}}])
    errs = errors_of(spec)
    net = TG + "Task group network validation failed: "
    assert net + "Port admin (70000) cannot be greater than 65535" in errs
    assert net + "Port label http already in use by taskgroup network" in errs
    assert net + "Static port 8080 already reserved by taskgroup network:http" in errs


def test_static_port_conflict_between_tasks():
    port = {"Networks": [{"ReservedPorts": [{"Label": "db", "Value": 5432}]}]}
    spec = with_group(Tasks=[{"Name": "a", "Driver": "x", "Resources": dict(port)},
                             {"Name": "b", "Driver": "x", "Resources": dict(port)}])
    assert TG + "Task group network validation failed: Static port 5432 already reserved by a:db" in errors_of(spec)


def test_system_job_may_not_have_reschedule_policy():
    assert TG + "System jobs should not have a reschedule policy" in errors_of(
        with_group(ReschedulePolicy={"Attempts": 1}), Type="system")


# --- tasks ---------------------------------------------------------------------------------


def test_missing_driver_and_slashes():
    assert errors_of(with_task(Driver="")) == [TASK + "Missing task driver"]
    errs = errors_of(with_task(Name="a/b"))
    assert errs == [TG + "Task a/b validation failed: Task name cannot include slashes"]


def test_resource_minimums():
    errs = errors_of(with_task(Resources={"CPU": 0, "MemoryMB": 5}))
    assert errs == [TASK + "minimum CPU value is 1; got 0", TASK + "minimum MemoryMB value is 10; got 5"]


def test_cpu_and_cores_together():
    assert errors_of(with_task(Resources={"CPU": 100, "Cores": 2})) == [
        TASK + "Task can only ask for 'cpu' or 'cores' resource, not both."]


def test_task_disk_and_memory_max():
    errs = errors_of(with_task(Resources={"DiskMB": 100, "MemoryMB": 512, "MemoryMaxMB": 256}))
    assert errs == [TASK + "Task can't ask for disk resources, they have to be specified at the task group level.",
                    TASK + "MemoryMaxMB value (256) should be larger than MemoryMB value (512)"]


def test_log_storage_must_fit_disk():
    spec = with_task(LogConfig={"MaxFiles": 10, "MaxFileSizeMB": 30})
    assert errors_of(spec) == [TASK + "log storage (300 MB) must be less than requested disk capacity (300 MB)"]
    assert errors_of(with_task(LogConfig={"MaxFiles": 0, "MaxFileSizeMB": 1})) == [
        TASK + "minimum number of files is 1; got 0"]


def test_kill_timeout_checks():
    assert errors_of(with_task(KillTimeout=-1)) == [TASK + "KillTimeout must be a positive value"]
    assert errors_of(with_task(KillTimeout=11 * M)) == [
        TASK + "KillTimout (11m0s) longer than the group's ProgressDeadline (10m0s)"]


def test_distinct_hosts_disallowed_at_task_level():
    errs = errors_of(with_task(Constraints=[{"Operand": "distinct_hosts"}]))
    assert errs == [TASK + "Constraint 1 has disallowed Operand at task level: distinct_hosts"]


def test_service_checks():
    spec = with_task(Services=[
        {"Name": "bad_name!"},
        {"Name": "web", "PortLabel": "http"},
        {"Name": "tcp", "Checks": [{"Type": "tcp", "Interval": S, "Timeout": S}]},
        {"Name": "script", "Checks": [{"Name": "c", "Type": "script", "Command": "/x", "Interval": S // 2,
                                       "Timeout": S}]},
    ])
    errs = errors_of(spec)
    assert errs == [
        TASK + 'service[0] "bad_name!" validation failed: Service name must be valid per RFC 1123 and '
               'can contain only alphanumeric characters or dashes and must be no longer than 63 '
               'characters: "bad_name!"',
        TASK + 'service[2] "tcp" validation failed: Check service: "tcp" check invalid: check requires '
               'a port but neither check nor service "tcp" have a port',
        TASK + 'check "service: \\"tcp\\" check" is missing a port',
        TASK + 'service[3] "script" validation failed: Check c invalid: interval (500ms) cannot be '
               'lower than 1s',
        TASK + 'port label "http" referenced by services web does not exist',
    ]


def test_artifact_checks():
    spec = with_task(Artifacts=[
        {"GetterSource": ""},
        {"GetterSource": "https://e.com/a", "RelativeDest": "../../etc"},
        {"GetterSource": "https://e.com/b", "GetterOptions": {"checksum": "md5:abc"}},
        {"GetterSource": "https://e.com/c", "GetterOptions": {"checksum": "sha256:" + "ab" * 16}},
    ])
    assert errors_of(spec) == [
        TASK + "Artifact 1 validation failed: source must be specified",
        TASK + "Artifact 2 validation failed: destination escapes allocation directory",
        TASK + "Artifact 3 validation failed: invalid checksum: encoding/hex: odd length hex string",
        TASK + "Artifact 4 validation failed: invalid sha256 checksum: " + "ab" * 16,
    ]


def test_template_checks():
    spec = with_task(Templates=[
        {"DestPath": "local/a", "ChangeMode": "sometimes", "SourcePath": "x"},
        {"EmbeddedTmpl": "x", "DestPath": "local/a", "Perms": "999"},
        {"EmbeddedTmpl": "x", "DestPath": "../../../x"},
    ])
    assert errors_of(spec) == [
        TASK + "Template 1 validation failed: Invalid change mode. Must be one of the following: "
               "noop, signal, script, restart",
        TASK + 'Template 2 validation failed: Failed to parse "999" as octal: strconv.ParseUint: '
               'parsing "999": invalid syntax',
        TASK + "Template 2 has same destination as 1",
        TASK + "Template 3 validation failed: destination escapes allocation directory",
    ]
    assert errors_of(with_task(Templates=[{"DestPath": "local/x"}])) == [
        TASK + "Template 1 validation failed: Must specify a source path or have an embedded template"]


def test_vault_checks():
    errs = errors_of(with_task(Vault={"Policies": ["root"], "ChangeMode": "explode"}))
    assert errs == [TASK + 'Vault validation failed: Can not specify "root" policy',
                    TASK + 'Vault validation failed: Unknown change mode "explode"']


def test_dispatch_payload_and_lifecycle():
    errs = errors_of(with_task(DispatchPayload={"File": "../../../../etc/passwd"}, Lifecycle={"Hook": "sometime"}))
    assert errs == [TASK + "Dispatch Payload validation failed: destination escapes allocation directory",
                    TASK + "Lifecycle validation failed: invalid hook: sometime"]


def test_lifecycle_hooks():
    for hook in ("prestart", "poststart", "poststop"):
        assert errors_of(with_task(Lifecycle={"Hook": hook, "Sidecar": True})) == []
    assert errors_of(with_task(Lifecycle={"Sidecar": True})) == [
        TASK + "Lifecycle validation failed: no lifecycle hook provided"]
    # an empty block is no lifecycle at all (api.TaskLifecycle.Empty)
    job = build(with_task(Lifecycle={"Hook": ""}))
    assert job.TaskGroups[0].Tasks[0].Lifecycle is None


def test_host_volumes_and_mounts():
    ok = with_group(Volumes={"data": {"Type": "host", "Source": "shared", "ReadOnly": True}},
                    Tasks=[{"Name": "app", "Driver": "exec",
                            "VolumeMounts": [{"Volume": "data", "Destination": "/srv"}]}])
    assert errors_of(ok) == []
    assert build(ok).TaskGroups[0].Tasks[0].VolumeMounts[0].PropagationMode == "private"
    bad = with_group(
        Volumes={"a": {"Type": "nfs", "Source": "x"}, "b": {"Type": "host"},
                 "c": {"Type": "host", "Source": "y", "AccessMode": "single-node-writer"}},
        Tasks=[{"Name": "app", "Driver": "exec",
                "VolumeMounts": [{"Volume": "", "Destination": "/x"},
                                 {"Volume": "nope", "Destination": "/y"}]}])
    assert errors_of(bad) == [
        TG + "Task group volume validation for a failed: volume has unrecognized type nfs",
        TG + "Task group volume validation for b failed: volume has an empty source",
        TG + "Task group volume validation for c failed: host volumes cannot have an access mode",
        TG + "Task app has a volume mount (0) referencing an empty volume",
        TG + "Task app has a volume mount (1) referencing undefined volume nope"]


# --- constraints ---------------------------------------------------------------------------


@pytest.mark.parametrize("constraint, messages", [
    ({"LTarget": "${attr.a}", "RTarget": "x"}, ["Missing constraint operand", 'Unknown constraint type ""']),
    ({"LTarget": "${attr.a}", "RTarget": "x", "Operand": "near"}, ['Unknown constraint type "near"']),
    ({"LTarget": "${attr.a}", "Operand": "="}, ['Operator "=" requires an RTarget']),
    ({"RTarget": "x", "Operand": "!="}, ["No LTarget provided but is required by constraint"]),
    ({"LTarget": "${attr.a}", "Operand": "set_contains"}, ["Set contains constraint requires an RTarget"]),
    ({"LTarget": "${attr.a}", "RTarget": "x", "Operand": "is_set"}, ['Operator "is_set" does not support an RTarget']),
    ({"LTarget": "${attr.a}", "RTarget": "abc", "Operand": "distinct_property"},
     ['Failed to convert RTarget "abc" to uint64: strconv.ParseUint: parsing "abc": invalid syntax']),
    ({"LTarget": "${attr.a}", "RTarget": "0", "Operand": "distinct_property"},
     ["Distinct Property must have an allowed count of 1 or greater: 0 < 1"]),
    ({"LTarget": "${attr.a}", "RTarget": ">= 1.2, < 2.0", "Operand": "version"}, []),
    ({"LTarget": "${attr.a}", "RTarget": "~> 1.2", "Operand": "version"}, []),
    ({"LTarget": "${attr.a}", "RTarget": ">= 1.x", "Operand": "version"},
     ["Version constraint is invalid: Malformed constraint: >= 1.x"]),
    ({"LTarget": "${attr.a}", "RTarget": "~> 1.2", "Operand": "semver"},
     ["Semver constraint is invalid: Malformed constraint: ~> 1.2"]),
    ({"LTarget": "${attr.a}", "RTarget": ">= 1.2.3-beta.1", "Operand": "semver"}, []),
    ({"Operand": "distinct_hosts"}, []),
])
def test_constraint_checks(constraint, messages):
    assert errors_of(Constraints=[constraint]) == [f"Constraint 1 validation failed: {m}" for m in messages]


def test_regexp_constraint_must_compile():
    errs = errors_of(Constraints=[{"LTarget": "${attr.a}", "RTarget": "(unclosed", "Operand": "regexp"}])
    assert len(errs) == 1
    assert errs[0].startswith("Constraint 1 validation failed: Regular expression failed to compile: ")


def test_group_constraints_are_prefixed():
    errs = errors_of(with_group(Constraints=[{"LTarget": "${attr.a}", "Operand": "<"}]))
    assert errs == [TG + 'Constraint 1 validation failed: Operator "<" requires an RTarget']


@pytest.mark.parametrize("text, ok", [("1.2.3", True), ("= 1.0", True), ("> 1, <= 2.5.0-rc1", True),
                                      ("v1.2", True), ("", False), (">>1.0", False), ("1.2,", False)])
def test_version_constraint_parser(text, ok):
    assert (version_constraint_error(text) is None) is ok


# --- warnings ------------------------------------------------------------------------------


def test_warnings():
    spec = {"TaskGroups": [
        {"Name": "web", "Count": 2, "Update": {"MaxParallel": 5, "Canary": 1, "AutoPromote": True},
         "Networks": [{"MBits": 10}],
         "Tasks": [{"Name": "app", "Driver": "x", "Resources": {"IOPS": 5}}]},
        {"Name": "api", "Update": {"Canary": 1}, "Tasks": [{"Name": "app", "Driver": "x"}]},
    ]}
    errors, warnings = validate_job(build(spec))
    assert errors == []
    assert warnings == [
        'Group "web" has warnings: Update max parallel count is greater than task group count (5 > 2). '
        'A destructive change would result in the simultaneous replacement of all allocations.',
        'Group "web" has warnings: mbits has been deprecated as of Nomad 0.12.0. Please remove mbits '
        'from the network block',
        'Group "web" has warnings: Task "app" has warnings: IOPS has been deprecated as of Nomad 0.9.0. '
        'Please remove IOPS from resource block.',
        "auto_promote must be true for all groups to enable automatic promotion",
    ]


# --- robustness ----------------------------------------------------------------------------


@pytest.mark.parametrize("job", [
    Job(),
    Job(TaskGroups=[TaskGroup()]),
    Job(TaskGroups=[TaskGroup(Tasks=[Task()])]),
    Job(TaskGroups=[None], Datacenters=[None], Constraints=[None]),  # type: ignore[list-item]
])
def test_odd_input_gives_messages_not_exceptions(job):
    errors, _ = validate_job(job)
    assert errors
    assert not any(e.startswith("internal error") for e in errors)


def _structs_in(obj, out):
    if isinstance(obj, msgspec.Struct):
        out.append(obj)
        for name in obj.__struct_fields__:
            _structs_in(getattr(obj, name), out)
    elif isinstance(obj, list):
        for item in obj:
            _structs_in(item, out)
    return out


def test_nulls_and_empties_anywhere_never_raise():
    """Null (or empty, or odd but well-typed) values in random fields of a rich job."""
    rng = random.Random(7)
    spec = {"Type": "service", "Constraints": [{"LTarget": "a", "RTarget": "b", "Operand": "="}],
            "TaskGroups": [{"Name": "web", "Networks": [{"ReservedPorts": [{"Label": "http", "Value": 80}]}],
                            "Services": [{"PortLabel": "http", "Checks": [{"Type": "http", "Path": "/"}]}],
                            "Tasks": [{"Name": "app", "Driver": "x",
                                       "Services": [{"PortLabel": "http", "Checks": [{"Type": "tcp"}]}],
                                       "Templates": [{"EmbeddedTmpl": "x", "DestPath": "local/x"}],
                                       "Artifacts": [{"GetterSource": "s"}], "Vault": {},
                                       "Resources": {"Networks": [{"DynamicPorts": [{"Label": "db"}]}]}}]}]}
    base = msgspec.json.encode(build(spec, Periodic={"Spec": "* * * * *"}, ParameterizedJob={}))
    for _ in range(400):
        job = msgspec.json.decode(base, type=Job)
        nodes = _structs_in(job, [])
        for _ in range(rng.randint(1, 8)):
            node = rng.choice(nodes)
            name = rng.choice(node.__struct_fields__)
            value = getattr(node, name)
            odd = {bool: [True], int: [0, -1], str: ["", "a b/c"], list: [[], [None]], dict: [{}]}
            setattr(node, name, rng.choice([None, *odd.get(type(value), [])]))
        errors, _ = validate_job(job)
        assert not any(e.startswith("internal error") for e in errors), errors


def test_uncanonicalized_job_reports_nomad_messages():
    errors, _ = validate_job(Job())
    assert errors[:6] == ["Missing job region", "Missing job ID", "Missing job name",
                          "Job must be in a namespace", "Missing job type", "Missing job datacenters"]
    errors, _ = validate_job(Job(TaskGroups=[TaskGroup(Name="g", Tasks=[Task(Name="t", Driver="x")])]))
    assert "Task group g validation failed: Task Group g should have a restart policy" in errors
    assert "Task group g validation failed: Task t validation failed: Missing task resources" in errors
    assert "Task group g validation failed: Task t validation failed: Missing Log Config" in errors


# --- updates -------------------------------------------------------------------------------


def test_validate_update_rules():
    service = build()
    batch = build(Type="batch")
    periodic = build(Type="batch", Periodic={"Spec": "@daily"})
    parameterized = build(Type="batch", ParameterizedJob={})
    assert validate_update(service, build()) == []
    assert validate_update(service, batch) == ['cannot update job from type "service" to "batch"']
    assert validate_update(batch, periodic) == ["cannot update non-periodic job to being periodic"]
    assert validate_update(periodic, batch) == ["cannot update periodic job to being non-periodic"]
    assert validate_update(batch, parameterized) == [
        "cannot update non-parameterized job to being parameterized"]
    assert validate_update(parameterized, batch) == [
        "cannot update parameterized job to being non-parameterized"]
    child = build(Type="batch")
    child.Dispatched = True
    assert validate_update(batch, child) == ["field 'Dispatched' is read-only"]
    assert validate_update(None, child) == ["job can't be submitted with 'Dispatched' set"]
    assert validate_update(None, batch) == []


# --- formatting ----------------------------------------------------------------------------


def test_format_errors_matches_go_multierror():
    assert format_errors(["Missing job ID"]) == "1 error occurred:\n\t* Missing job ID\n\n"
    assert format_errors(["a", "b"]) == "2 errors occurred:\n\t* a\n\t* b\n\n"
    assert format_errors([]) == ""


@pytest.mark.parametrize("ns, text", [
    (0, "0s"), (5 * S, "5s"), (90 * S, "1m30s"), (30 * M, "30m0s"), (24 * 60 * M, "24h0m0s"),
    (1_500_000_000, "1.5s"), (500_000_000, "500ms"), (1500, "1.5µs"), (42, "42ns"), (-S, "-1s"),
])
def test_go_duration(ns, text):
    assert go_duration(ns) == text


def test_scaling_block_defaults_and_bounds():
    job = build(with_group(Count=3, Scaling={"Max": 5}))
    p = job.TaskGroups[0].Scaling
    assert (p.Min, p.Max, p.Enabled, p.Type) == (3, 5, True, "horizontal")
    assert build(with_group(Scaling={"Min": 2, "Max": 4})).TaskGroups[0].Count == 2
    prefix = ("Task group web validation failed: Task group scaling policy validation failed: "
              "Scaling policy invalid: ")
    assert errors_of(with_group(Scaling={"Min": 1})) == [
        prefix + "maximum count must be specified and non-negative",
        prefix + "task group count must not be greater than maximum count in scaling policy"]
    assert errors_of(with_group(Count=2, Scaling={"Min": 3, "Max": 1})) == [
        prefix + "maximum count must not be less than minimum count",
        prefix + "task group count must not be greater than maximum count in scaling policy",
        prefix + "task group count must not be less than minimum count in scaling policy"]
    assert errors_of(with_group(Scaling={"Max": 2, "Type": "vertical_cpu"})) == [
        prefix + 'scaling policy type "vertical_cpu" is not valid for a task group']
