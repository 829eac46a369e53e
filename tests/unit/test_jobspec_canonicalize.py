"""Nomad 1.x register defaults, filled in by server.jobspec.canonicalize."""
from __future__ import annotations

import json
from pathlib import Path

import msgspec
import pytest

from caravan.fsm.structs import Job
from caravan.server.jobspec.canonicalize import canonicalize, inherit_job_migrate
from caravan.server.jobspec.validate import validate_job

# The "Read Job" sample response of Nomad's Jobs HTTP API document (a batch job, periodic
# and parameterized), as it appears there.
SEED_JOB = Path(__file__).resolve().parent.parent / "fixtures" / "read-job-response.json"
S = 1_000_000_000
M = 60 * S
H = 60 * M


def seed_job_body() -> bytes:
    """The "Read Job" sample response (a batch job, periodic and parameterized)."""
    return SEED_JOB.read_bytes()


def decode(spec: dict) -> Job:
    return msgspec.json.decode(json.dumps(spec).encode(), type=Job)


def make(spec: dict | None = None, **job_fields) -> Job:
    """A canonicalized job: one group "web" with one task "app" unless overridden."""
    body = {"ID": "example", "TaskGroups": [{"Name": "web", "Tasks": [{"Name": "app", "Driver": "exec"}]}]}
    body.update(spec or {})
    body.update(job_fields)
    job = decode(body)
    canonicalize(job)
    return job


def group(job: Job, idx: int = 0):
    return job.TaskGroups[idx]


def task(job: Job, g: int = 0, t: int = 0):
    return job.TaskGroups[g].Tasks[t]


# --- the Read Job sample ---------------------------------------------------------------


def test_seed_sample_decodes_and_canonicalizes():
    job = msgspec.json.decode(seed_job_body(), type=Job)
    canonicalize(job)
    assert job.Namespace == "default"
    assert job.Periodic.TimeZone == "UTC"
    assert job.ParameterizedJob.Payload == "required"
    tmpl = task(job).Templates[0]
    assert (tmpl.ChangeMode, tmpl.ChangeSignal, tmpl.Perms) == ("signal", "SIGUSR1", "0644")
    # The sample already carries the implied signal constraint: it is not added twice.
    assert [c.RTarget for c in group(job).Constraints] == ["SIGUSR1"]


def test_seed_sample_update_block_is_refused_for_batch_in_1x():
    # 0.6 silently dropped a batch job's update block; 1.x inherits it into the group
    # and then refuses it.
    job = msgspec.json.decode(seed_job_body(), type=Job)
    canonicalize(job)
    errors, _ = validate_job(job)
    assert errors == ['Task group cache validation failed: Job type "batch" does not allow update block']


def test_seed_sample_periodic_and_parameterized_batch_is_valid():
    # Nomad accepts a batch job that is both periodic and parameterized (the periodic
    # block is carried to dispatched children); without the update block it is clean.
    job = msgspec.json.decode(seed_job_body(), type=Job)
    job.Update = None
    canonicalize(job)
    errors, warnings = validate_job(job)
    assert errors == []
    assert job.is_periodic() and job.is_parameterized() and not job.is_periodic_active()
    assert warnings == ['Group "cache" has warnings: Task "redis" has warnings: task network '
                        'resources have been deprecated as of Nomad 0.12.0. Please configure '
                        'networking via group network block.']


def test_seed_sample_is_idempotent():
    job = msgspec.json.decode(seed_job_body(), type=Job)
    canonicalize(job)
    once = msgspec.json.encode(job)
    canonicalize(job)
    assert msgspec.json.encode(job) == once


# --- job-level defaults ------------------------------------------------------------------


def test_job_defaults():
    job = make()
    assert job.Region == "global"
    assert job.Namespace == "default"
    assert job.Name == "example"
    assert job.Type == "service"
    assert job.Priority == 50
    assert job.Datacenters == ["*"]
    assert job.AllAtOnce is False
    assert job.NodePool == "default"


def test_region_argument_and_explicit_values_win():
    job = decode({"ID": "x", "Name": "other", "Region": "", "Priority": 70,
                  "Datacenters": ["dc1"], "Namespace": "prod"})
    canonicalize(job, region="europe")
    assert (job.Region, job.Name, job.Priority, job.Datacenters, job.Namespace) == \
        ("europe", "other", 70, ["dc1"], "prod")
    job = decode({"ID": "x", "Region": "asia"})
    canonicalize(job, region="europe")
    assert job.Region == "asia"


def test_empty_datacenters_mean_any():
    assert make(Datacenters=[]).Datacenters == ["*"]


def test_missing_id_becomes_empty_string():
    job = decode({})
    canonicalize(job)
    assert (job.ID, job.Name) == ("", "")


# --- groups ------------------------------------------------------------------------------


def test_group_count_defaults_to_one_and_scaling_min():
    assert group(make()).Count == 1
    job = make({"TaskGroups": [{"Name": "web", "Scaling": {"Min": 3, "Max": 5},
                                "Tasks": [{"Name": "app", "Driver": "exec"}]}]})
    assert group(job).Count == 3
    job = make({"TaskGroups": [{"Name": "web", "Count": 0, "Tasks": [{"Name": "a", "Driver": "x"}]}]})
    assert group(job).Count == 0


def test_system_group_count_zero_becomes_one():
    job = make({"Type": "system", "TaskGroups": [{"Name": "web", "Count": 0,
                                                   "Tasks": [{"Name": "a", "Driver": "x"}]}]})
    assert group(job).Count == 1


@pytest.mark.parametrize("job_type, expected", [
    ("service", (2, 30 * M, 15 * S, "fail")),
    ("system", (2, 30 * M, 15 * S, "fail")),
    ("batch", (3, 24 * H, 15 * S, "fail")),
    ("sysbatch", (3, 24 * H, 15 * S, "fail")),
])
def test_restart_policy_defaults_by_type(job_type, expected):
    rp = group(make(Type=job_type)).RestartPolicy
    assert (rp.Attempts, rp.Interval, rp.Delay, rp.Mode) == expected


def test_restart_policy_user_fields_are_merged_over_default():
    job = make({"Type": "batch", "TaskGroups": [{"Name": "web", "RestartPolicy": {"Attempts": 7},
                                                  "Tasks": [{"Name": "a", "Driver": "x"}]}]})
    rp = group(job).RestartPolicy
    assert (rp.Attempts, rp.Interval, rp.Delay, rp.Mode) == (7, 24 * H, 15 * S, "fail")


def test_ephemeral_disk_defaults_and_merge():
    d = group(make()).EphemeralDisk
    assert (d.SizeMB, d.Sticky, d.Migrate) == (300, False, False)
    job = make({"TaskGroups": [{"Name": "web", "EphemeralDisk": {"Sticky": True},
                                "Tasks": [{"Name": "a", "Driver": "x"}]}]})
    d = group(job).EphemeralDisk
    assert (d.SizeMB, d.Sticky, d.Migrate) == (300, True, False)


# --- update strategy ---------------------------------------------------------------------

DEFAULT_UPDATE = dict(Stagger=30 * S, MaxParallel=1, HealthCheck="checks", MinHealthyTime=10 * S,
                      HealthyDeadline=5 * M, ProgressDeadline=10 * M, AutoRevert=False,
                      AutoPromote=False, Canary=0)


def as_dict(struct) -> dict:
    return msgspec.to_builtins(struct)


def test_service_group_gets_default_update_strategy():
    job = make()
    assert as_dict(group(job).Update) == DEFAULT_UPDATE
    # The job-level block keeps only Stagger and MaxParallel, as structs.Job does.
    assert as_dict(job.Update) == dict(DEFAULT_UPDATE, HealthCheck="", MinHealthyTime=0,
                                       HealthyDeadline=0, ProgressDeadline=0)


def test_job_update_is_merged_under_group_update():
    job = make({"Update": {"MaxParallel": 3, "Canary": 1, "AutoPromote": True},
                "TaskGroups": [{"Name": "web", "Update": {"Canary": 2},
                                "Tasks": [{"Name": "a", "Driver": "x"}]},
                               {"Name": "api", "Tasks": [{"Name": "a", "Driver": "x"}]}]})
    assert as_dict(group(job, 0).Update) == dict(DEFAULT_UPDATE, MaxParallel=3, Canary=2, AutoPromote=True)
    assert as_dict(group(job, 1).Update) == dict(DEFAULT_UPDATE, MaxParallel=3, Canary=1, AutoPromote=True)
    assert (job.Update.MaxParallel, job.Update.Stagger, job.Update.Canary) == (3, 30 * S, 0)


def test_batch_and_system_groups_get_no_default_update():
    assert group(make(Type="batch")).Update is None
    assert group(make(Type="system")).Update is None  # only service jobs get a default
    assert make(Type="batch").Update.MaxParallel == 0


def test_system_job_update_block_is_completed():
    job = make(Type="system", Update={"MaxParallel": 2})
    assert as_dict(group(job).Update) == dict(DEFAULT_UPDATE, MaxParallel=2)


# --- tasks -------------------------------------------------------------------------------


def test_task_defaults():
    t = task(make())
    r = t.Resources
    assert (r.CPU, r.Cores, r.MemoryMB, r.MemoryMaxMB, r.DiskMB, r.IOPS) == (100, 0, 300, 0, 0, 0)
    assert t.KillTimeout == 5 * S
    assert (t.LogConfig.MaxFiles, t.LogConfig.MaxFileSizeMB) == (10, 10)


def test_resources_are_merged_and_cores_replace_cpu():
    job = make({"TaskGroups": [{"Name": "web", "Tasks": [
        {"Name": "a", "Driver": "x", "Resources": {"MemoryMB": 64}},
        {"Name": "b", "Driver": "x", "Resources": {"Cores": 2}},
        {"Name": "c", "Driver": "x", "Resources": {"CPU": 250, "Networks": [{"DynamicPorts": [{"Label": "http"}]}]}},
    ]}]})
    a, b, c = group(job).Tasks
    assert (a.Resources.CPU, a.Resources.Cores, a.Resources.MemoryMB) == (100, 0, 64)
    assert (b.Resources.CPU, b.Resources.Cores, b.Resources.MemoryMB) == (0, 2, 300)
    assert (c.Resources.CPU, c.Resources.Cores) == (250, 0)
    assert c.Resources.Networks[0].MBits == 0  # 1.x no longer defaults mbits to 10
    assert c.Resources.Networks[0].ReservedPorts is None


def test_kill_timeout_zero_means_default():
    job = make({"TaskGroups": [{"Name": "web", "Tasks": [{"Name": "a", "Driver": "x", "KillTimeout": 0}]}]})
    assert task(job).KillTimeout == 5 * S


def test_log_config_merge():
    job = make({"TaskGroups": [{"Name": "web", "Tasks": [
        {"Name": "a", "Driver": "x", "LogConfig": {"MaxFiles": 3}}]}]})
    assert (task(job).LogConfig.MaxFiles, task(job).LogConfig.MaxFileSizeMB) == (3, 10)


def test_artifact_defaults():
    job = make({"TaskGroups": [{"Name": "web", "Tasks": [{"Name": "a", "Driver": "x", "Artifacts": [
        {"GetterSource": "https://example.com/app.tgz"},
        {"GetterSource": "https://example.com/files/run.sh", "GetterMode": "file"},
        {"GetterSource": "https://example.com/x", "RelativeDest": "custom/", "GetterOptions": {}},
    ]}]}]})
    a, b, c = task(job).Artifacts
    assert (a.GetterMode, a.RelativeDest) == ("any", "local/")
    assert (b.GetterMode, b.RelativeDest) == ("file", "local/run.sh")
    assert (c.RelativeDest, c.GetterOptions) == ("custom/", None)


def test_template_defaults():
    job = make({"TaskGroups": [{"Name": "web", "Tasks": [{"Name": "a", "Driver": "x", "Templates": [
        {"EmbeddedTmpl": "x", "DestPath": "local/a"},
        {"EmbeddedTmpl": "x", "DestPath": "local/b", "ChangeMode": "signal"},
        {"EmbeddedTmpl": "x", "DestPath": "local/c", "ChangeMode": "signal", "ChangeSignal": "sigusr2",
         "Splay": 0, "Perms": "0600"},
    ]}]}]})
    a, b, c = task(job).Templates
    assert (a.ChangeMode, a.ChangeSignal, a.Splay, a.Perms, a.LeftDelim, a.RightDelim) == \
        ("restart", "", 5 * S, "0644", "{{", "}}")
    assert (b.ChangeMode, b.ChangeSignal) == ("signal", "SIGHUP")
    assert (c.ChangeSignal, c.Splay, c.Perms) == ("SIGUSR2", 0, "0600")


def test_vault_defaults_only_when_block_exists():
    assert task(make()).Vault is None
    job = make({"TaskGroups": [{"Name": "web", "Tasks": [
        {"Name": "a", "Driver": "x", "Vault": {"Policies": ["p"]}}]}]})
    v = task(job).Vault
    assert (v.Env, v.ChangeMode, v.ChangeSignal) == (True, "restart", "SIGHUP")
    # restart mode needs no signal, so no implied constraint
    assert group(job).Constraints is None


def test_service_defaults():
    job = make({"ID": "shop", "TaskGroups": [{"Name": "web",
        "Services": [{"PortLabel": "http"}],
        "Tasks": [{"Name": "app", "Driver": "x", "Services": [
            {"PortLabel": "http", "Tags": [], "Checks": [{"Type": "tcp", "Interval": S, "Timeout": S}]},
            {"Name": "${TASK}-${JOB}-metrics"},
            {"Name": "${BASE}"},
        ]}]}]})
    assert group(job).Services[0].Name == "shop-web"
    first, second, third = task(job).Services
    assert (first.Name, first.AddressMode, first.Provider, first.Tags) == ("shop-web-app", "auto", "consul", None)
    assert first.Checks[0].Name == 'service: "shop-web-app" check'
    assert second.Name == "app-shop-metrics"
    assert third.Name == "shop-web-app"


def test_periodic_and_parameterized_defaults():
    job = make(Type="batch", Periodic={"Spec": "@daily"}, ParameterizedJob={})
    p = job.Periodic
    assert (p.Enabled, p.SpecType, p.ProhibitOverlap, p.TimeZone) == (True, "cron", False, "UTC")
    assert job.ParameterizedJob.Payload == "optional"
    job = make(Type="batch", Periodic={"Spec": "@daily", "Enabled": False, "TimeZone": ""})
    assert (job.Periodic.Enabled, job.Periodic.TimeZone) == (False, "UTC")


def test_empty_maps_and_lists_become_null():
    job = make({"Meta": {}, "Constraints": [], "Affinities": [], "TaskGroups": [
        {"Name": "web", "Meta": {}, "Constraints": [], "Networks": [], "Services": [],
         "Tasks": [{"Name": "a", "Driver": "x", "Env": {}, "Config": {}, "Meta": {},
                    "Templates": [], "Artifacts": [], "Constraints": []},
                   {"Name": "b", "Driver": "x", "Config": {"args": []}}]}]})
    assert (job.Meta, job.Constraints, job.Affinities) == (None, None, None)
    g = group(job)
    assert (g.Meta, g.Constraints, g.Networks, g.Services) == (None, None, None, None)
    t = task(job)
    assert (t.Env, t.Config, t.Meta, t.Templates, t.Artifacts, t.Constraints) == (None,) * 6
    assert task(job, t=1).Config == {"args": []}  # opaque driver config is not rewritten


# --- implied constraints -------------------------------------------------------------------


def signal_job() -> dict:
    return {"TaskGroups": [{"Name": "web", "Tasks": [
        {"Name": "a", "Driver": "x", "KillSignal": "SIGTERM",
         "Templates": [{"EmbeddedTmpl": "x", "DestPath": "local/a", "ChangeMode": "signal",
                        "ChangeSignal": "SIGUSR1"}]},
        {"Name": "b", "Driver": "x", "Vault": {"ChangeMode": "signal", "ChangeSignal": "SIGHUP"},
         "Templates": [{"EmbeddedTmpl": "x", "DestPath": "local/b", "ChangeMode": "restart",
                        "ChangeSignal": "SIGINT"}]},
    ]}, {"Name": "quiet", "Tasks": [{"Name": "c", "Driver": "x"}]}]}


def test_signal_constraint_is_added_sorted_and_once():
    job = make(signal_job())
    constraints = group(job).Constraints
    assert [msgspec.to_builtins(c) for c in constraints] == [
        {"LTarget": "${attr.os.signals}", "RTarget": "SIGHUP,SIGTERM,SIGUSR1", "Operand": "set_contains"}]
    assert group(job, 1).Constraints is None
    canonicalize(job)
    assert len(group(job).Constraints) == 1


def test_signal_constraint_keeps_user_constraints():
    spec = signal_job()
    spec["TaskGroups"][0]["Constraints"] = [{"LTarget": "${attr.kernel.name}", "RTarget": "linux", "Operand": "="}]
    job = make(spec)
    assert [c.LTarget for c in group(job).Constraints] == ["${attr.kernel.name}", "${attr.os.signals}"]


# --- idempotence ---------------------------------------------------------------------------


def rich_job() -> dict:
    spec = signal_job()
    spec.update({"ID": "rich", "Type": "service", "Update": {"MaxParallel": 2},
                 "Meta": {"team": "a"}, "Datacenters": []})
    spec["TaskGroups"][0].update({
        "Count": 3, "Networks": [{"ReservedPorts": [{"Label": "http", "Value": 8080}]}],
        "Services": [{"PortLabel": "http", "Checks": [{"Type": "http", "Path": "/", "Interval": S, "Timeout": S}]}],
        "RestartPolicy": {"Mode": "delay"}, "EphemeralDisk": {"SizeMB": 500}})
    spec["TaskGroups"][0]["Tasks"][0].update({
        "Artifacts": [{"GetterSource": "https://e.com/x.sh", "GetterMode": "file"}],
        "Resources": {"Cores": 1}, "LogConfig": {"MaxFiles": 2}})
    return spec


@pytest.mark.parametrize("spec", [rich_job(), {"Type": "batch", "Periodic": {"Spec": "* * * * *"},
                                               "Update": {"Stagger": 5 * S}}, {}])
def test_canonicalize_twice_equals_once(spec):
    job = make(spec)
    once = msgspec.json.encode(job)
    canonicalize(job)
    assert msgspec.json.encode(job) == once
    # A round trip through JSON (what a stored and re-submitted job looks like) too.
    again = msgspec.json.decode(once, type=Job)
    canonicalize(again)
    assert msgspec.json.encode(again) == once


def test_rich_job_validates_clean():
    errors, _ = validate_job(make(rich_job()))
    assert errors == []


def test_the_job_migrate_block_goes_under_each_groups_own():
    raw = {"ID": "j", "Migrate": {"MaxParallel": 2, "HealthCheck": "checks"},
           "TaskGroups": [{"Name": "a"}, {"Name": "b", "Migrate": {"MaxParallel": 5,
                                                                  "HealthCheck": None}}]}
    out = inherit_job_migrate(raw)
    assert "Migrate" not in out and raw["Migrate"] == {"MaxParallel": 2, "HealthCheck": "checks"}
    assert [g.get("Migrate") for g in out["TaskGroups"]] == [
        {"MaxParallel": 2, "HealthCheck": "checks"}, {"MaxParallel": 5, "HealthCheck": "checks"}]
    assert raw["TaskGroups"][0] == {"Name": "a"}     # the request itself is left alone
    assert inherit_job_migrate({"ID": "j", "Migrate": None}) == {"ID": "j", "Migrate": None}
