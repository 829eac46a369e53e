"""``null`` in a request body means "not set" (server/http/nulls.py, used by ``convert``)."""
from __future__ import annotations

import json
from pathlib import Path

import msgspec
import msgspec.inspect as mi
import pytest

from caravan.fsm import structs
from caravan.fsm.structs import Job, Record
from caravan.server.http.common import ApiError, convert
from caravan.server.http.nulls import without_nulls
from caravan.server.jobspec.canonicalize import canonicalize
from caravan.server.jobspec.validate import validate_job

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "go-client-requests"
JOB_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json")
                      if "Job" in json.loads(p.read_text()))


def _records() -> list[type]:
    return [v for v in vars(structs).values()
            if isinstance(v, type) and issubclass(v, Record) and v is not Record]


@pytest.mark.parametrize("cls", _records(), ids=lambda c: c.__name__)
def test_every_nullable_field_defaults_to_null(cls):
    """``convert`` walks a body only when the plain conversion refuses it; that is the
    same record only if a field that accepts null also defaults to it (else an explicit
    null and an absent field would differ)."""
    for field in mi.type_info(cls).fields:
        kinds = field.type.types if isinstance(field.type, mi.UnionType) else (field.type,)
        if any(isinstance(k, (mi.NoneType, mi.AnyType)) for k in kinds):
            assert field.default is None and field.default_factory is mi.NODEFAULT, \
                f"{cls.__name__}.{field.name} accepts null but defaults to something else"


def test_null_members_are_absent_at_every_depth():
    body = {"ID": "j", "AllAtOnce": None, "Stop": None, "Priority": None,
            "Update": {"MaxParallel": None, "Canary": 2},
            "TaskGroups": [{"Name": "g", "Count": None, "EphemeralDisk": {"Sticky": None},
                            "Tasks": [{"Name": "t", "Driver": None, "Leader": None,
                                       "Resources": {"CPU": None, "Networks": None},
                                       "Templates": [{"ChangeSignal": None,
                                                      "Envvars": None}],
                                       "LogConfig": None}]}]}
    job = convert(body, Job, "Job")
    assert job == convert({"ID": "j", "Update": {"Canary": 2},
                           "TaskGroups": [{"Name": "g", "EphemeralDisk": {},
                                           "Tasks": [{"Name": "t", "Resources": {},
                                                      "Templates": [{}]}]}]}, Job, "Job")
    task = job.TaskGroups[0].Tasks[0]
    assert job.AllAtOnce is False and job.Stop is False and task.Driver == ""
    assert task.Templates[0].ChangeSignal == "" and task.Templates[0].Envvars is False


def test_null_list_and_map_elements_follow_go():
    out = without_nulls({"Datacenters": [None, "dc1"], "Meta": {"a": None, "b": "x"},
                         "TaskGroups": [{"Tasks": [{"Config": {"args": None},
                                                    "Env": {"E": None}}],
                                         "Services": [{"Checks": [{"Header": {"X": None}}]}]}]},
                        Job)
    assert out["Datacenters"] == ["", "dc1"]         # a string's zero value
    assert out["Meta"] == {"a": "", "b": "x"}
    task = out["TaskGroups"][0]["Tasks"][0]
    assert task["Config"] == {"args": None}            # opaque: kept as sent
    assert task["Env"] == {"E": ""}
    assert out["TaskGroups"][0]["Services"][0]["Checks"][0]["Header"] == {"X": []}


@pytest.mark.parametrize("body,where", [
    ({"TaskGroups": [None]}, "`TaskGroups[0]`"),
    ({"TaskGroups": [{"Tasks": [{"Name": "t"}, None]}]}, "`TaskGroups[0].Tasks[1]`"),
    ({"Constraints": [None]}, "`Constraints[0]`"),
    ({"TaskGroups": [{"Networks": [{"ReservedPorts": [None]}]}]},
     "`TaskGroups[0].Networks[0].ReservedPorts[0]`"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_null_record_in_a_list_is_refused_with_its_path(body, where):
    with pytest.raises(ApiError) as exc:
        convert({"ID": "j", **body}, Job, "Job")
    assert exc.value.code == 400
    assert exc.value.message == f"Job: Expected `object`, got `null` - at {where}"


@pytest.mark.parametrize("body,where", [
    ({"AllAtOnce": None, "Priority": "50"}, "`Priority`"),
    ({"Stop": None, "TaskGroups": [{"Count": None, "Tasks": [{"KillTimeout": "5s"}]}]},
     "`TaskGroups[0].Tasks[0].KillTimeout`"),
    ({"Meta": {"a": None, "b": 1}}, "`Meta[...]`"),
    ({"Datacenters": [None, 3]}, "`Datacenters[1]`"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_a_wrong_type_beside_nulls_is_still_refused_with_its_path(body, where):
    with pytest.raises(ApiError) as exc:
        convert({"ID": "j", **body}, Job, "Job")
    assert exc.value.code == 400 and exc.value.message.startswith("Job: Expected ")
    assert exc.value.message.endswith(f" - at {where}")


@pytest.mark.parametrize("name", JOB_FIXTURES)
def test_go_client_jobs_decode_to_what_they_mean(name):
    """Every job Nomad's Go client sent decodes, canonicalizes and validates, and is the
    job its non-null fields alone describe."""
    raw = json.loads((FIXTURES / name).read_text())["Job"]
    job = convert(raw, Job, "Job")

    def strip(v):
        if isinstance(v, dict):
            return {k: strip(x) for k, x in v.items() if x is not None}
        if isinstance(v, list):
            return [strip(x) for x in v]
        return v
    # opaque values (ReschedulePolicy, Spreads, ...) are kept as sent, nulls included
    assert strip(msgspec.to_builtins(job)) == \
        strip(msgspec.to_builtins(msgspec.convert(strip(raw), Job)))
    canonicalize(job)
    errors, _ = validate_job(job)
    assert errors == []
    for tg in job.TaskGroups:
        assert tg.EphemeralDisk.SizeMB in (150, 300) and tg.RestartPolicy.Mode == "fail"
        for task in tg.Tasks:
            assert task.KillTimeout > 0 and task.LogConfig.MaxFiles == 10
            assert task.Resources.CPU > 0 and task.Resources.MemoryMB > 0


def test_go_client_defaults_are_nomads():
    raw = json.loads((FIXTURES / "register-batch-minimal.json").read_text())["Job"]
    job = convert(raw, Job, "Job")
    canonicalize(job)
    task = job.TaskGroups[0].Tasks[0]
    assert (job.Namespace, job.AllAtOnce, job.Stop) == ("default", False, False)
    assert task.KillTimeout == 5_000_000_000
    assert (task.Resources.CPU, task.Resources.MemoryMB) == (100, 300)
    assert (task.LogConfig.MaxFiles, task.LogConfig.MaxFileSizeMB) == (10, 10)
    rp = job.TaskGroups[0].RestartPolicy                 # batch defaults
    assert (rp.Attempts, rp.Interval, rp.Delay) == (3, 24 * 3600 * 10 ** 9, 15 * 10 ** 9)
    assert job.TaskGroups[0].EphemeralDisk.SizeMB == 300
