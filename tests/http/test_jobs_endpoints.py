"""Success shapes of the 17 Jobs API endpoints, against a real agent."""
from __future__ import annotations

import base64
import re
import time

import pytest

from tests.http.helpers import (
    BLOCKED_DESCRIPTION,
    SECOND,
    UUID_RE,
    assert_no_nodes_outcome,
    assert_read_headers,
    assert_write_headers,
    batch_job,
    blocked_chain,
    created_by,
    enc,
    index_of,
    observe,
    parameterized_job,
    periodic_job,
    raw,
    register,
    service_job,
    settle,
    successful_description,
    superseded_description,
    task,
    the_blocked_eval,
    uid,
)

WRITE_METHODS = ("PUT", "POST")

STUB_FIELDS = {"ID", "ParentID", "Name", "Namespace", "Datacenters", "Type", "Priority",
               "Periodic", "ParameterizedJob", "Stop", "Status", "StatusDescription",
               "JobSummary", "CreateIndex", "ModifyIndex", "JobModifyIndex", "SubmitTime"}
JOB_FIELDS = {"Region", "Namespace", "ID", "ParentID", "Name", "Type", "Priority", "AllAtOnce",
              "Datacenters", "Constraints", "TaskGroups", "Update", "Periodic",
              "ParameterizedJob", "Dispatched", "Payload", "Meta", "Stop", "Status",
              "StatusDescription", "Stable", "Version", "SubmitTime", "CreateIndex",
              "ModifyIndex", "JobModifyIndex", "ConsulToken", "ConsulNamespace",
              "VaultToken", "VaultNamespace", "NomadTokenID"}
REGISTER_FIELDS = {"EvalID", "EvalCreateIndex", "JobModifyIndex", "Warnings", "Index",
                   "LastContact", "KnownLeader"}


def versions_of(client, job_id):
    r = client.get(f"/v1/job/{enc(job_id)}/versions")
    assert_read_headers(r)
    return r.json()["Versions"]


def evals_of(client, job_id):
    r = client.get(f"/v1/job/{enc(job_id)}/evaluations")
    assert_read_headers(r)
    return r.json()


def read(client, job_id):
    r = client.get(f"/v1/job/{enc(job_id)}")
    assert_read_headers(r)
    return r.json()


def is_camel(name: str) -> bool:
    return bool(re.fullmatch(r"[A-Z][A-Za-z0-9]*", name))


# --- list ------------------------------------------------------------------------------


def test_list_unknown_prefix_is_empty_list(client):
    r = client.get("/v1/jobs", params={"prefix": uid("nothing-here")})
    assert_read_headers(r, fresh=None)   # 0 if it runs first: no job written yet
    assert r.json() == []


def test_list_with_prefix_and_stub_shape(client):
    base = uid("lst")
    ids = [f"{base}-b", f"{base}-a", f"{base}x"]
    for job_id in ids:
        register(client, service_job(job_id))
    register(client, service_job(uid("other")))

    r = client.get("/v1/jobs", params={"prefix": base})
    assert_read_headers(r)
    stubs = r.json()
    assert [s["ID"] for s in stubs] == sorted(ids)
    r = client.get("/v1/jobs", params={"prefix": base + "-"})
    assert [s["ID"] for s in r.json()] == [f"{base}-a", f"{base}-b"]

    stub = stubs[0]
    assert STUB_FIELDS <= set(stub)
    assert all(is_camel(k) for k in stub)
    assert stub["Namespace"] == "default"
    assert stub["Datacenters"] == ["*"]
    assert stub["Type"] == "service" and stub["Priority"] == 50
    assert stub["Periodic"] is False and stub["ParameterizedJob"] is False
    assert stub["Stop"] is False
    assert isinstance(stub["SubmitTime"], int) and stub["SubmitTime"] > 0
    assert stub["JobSummary"]["JobID"] == stub["ID"]
    assert set(stub["JobSummary"]["Summary"]) == {"cache"}
    assert stub["JobModifyIndex"] > 0

    # the stub's JobModifyIndex is usable for check-and-set
    r = client.put("/v1/jobs", json={"Job": service_job(stub["ID"], Priority=70),
                                     "EnforceIndex": True,
                                     "JobModifyIndex": stub["JobModifyIndex"]})
    assert_write_headers(r)
    assert read(client, stub["ID"])["Priority"] == 70


def test_list_index_header_tracks_registrations(client):
    before = index_of(client.get("/v1/jobs"))
    reply = register(client, service_job(uid("idx")))
    after = index_of(client.get("/v1/jobs"))
    assert after >= reply["JobModifyIndex"] > before


# --- register ----------------------------------------------------------------------------


@pytest.mark.parametrize("method", WRITE_METHODS)
def test_register_via_jobs_collection(client, method):
    job_id = uid("reg")
    r = client.request(method, "/v1/jobs", json={"Job": service_job(job_id)})
    header = assert_write_headers(r)
    body = r.json()
    assert REGISTER_FIELDS <= set(body)
    assert UUID_RE.match(body["EvalID"])
    assert body["EvalCreateIndex"] > 0 and body["JobModifyIndex"] > 0
    assert body["Index"] == header == body["EvalCreateIndex"]
    assert body["Warnings"] == ""
    assert body["KnownLeader"] is True
    # the registration eval is listed under the job, with the job's priority; once the
    # scheduler is done with it, the only other eval is the blocked one it created
    # (no nodes on the dev agent)
    evals = settle(client, job_id)
    assert evals == evals_of(client, job_id)
    assert created_by(evals, body["EvalID"]) == [body["EvalID"]]
    ev = next(e for e in evals if e["ID"] == body["EvalID"])
    assert ev["TriggeredBy"] == "job-register"
    assert ev["Priority"] == 50 and ev["Type"] == "service"
    assert ev["JobModifyIndex"] == body["JobModifyIndex"]
    assert_no_nodes_outcome(ev, evals=evals)
    blocked = the_blocked_eval(evals, previous=body["EvalID"])
    assert ev["BlockedEval"] == blocked["ID"]
    assert [e["ID"] for e in evals] == [blocked["ID"], body["EvalID"]]  # newest first


@pytest.mark.parametrize("method", WRITE_METHODS)
def test_register_via_job_path(client, method):
    job_id = uid("path")
    r = client.request(method, f"/v1/job/{enc(job_id)}", json={"Job": service_job(job_id)})
    assert_write_headers(r)
    assert UUID_RE.match(r.json()["EvalID"])
    assert read(client, job_id)["ID"] == job_id


def test_register_hands_the_job_migrate_block_down_to_the_groups(client):
    """``Migrate`` at the job level is an api.Job field: Nomad's agent merges it under
    each group's own block (the group's set fields win) before storing the job."""
    job_id = uid("migrate")
    job = service_job(job_id, Migrate={"MaxParallel": 2, "HealthCheck": "task_states",
                                       "MinHealthyTime": 5 * SECOND, "HealthyDeadline": None})
    job["TaskGroups"].append({"Name": "db", "Count": 1, "Tasks": [task("pg")],
                              "Migrate": {"MaxParallel": 3, "HealthCheck": None}})
    assert client.put("/v1/jobs", json={"Job": job}).status_code == 200
    stored = read(client, job_id)
    assert "Migrate" not in stored
    # ... and what neither sets comes from the default strategy of a service group
    assert [g["Migrate"] for g in stored["TaskGroups"]] == [
        {"MaxParallel": 2, "HealthCheck": "task_states", "MinHealthyTime": 5 * SECOND,
         "HealthyDeadline": 300 * SECOND},
        {"MaxParallel": 3, "HealthCheck": "task_states", "MinHealthyTime": 5 * SECOND,
         "HealthyDeadline": 300 * SECOND}]
    plain = uid("migrate")
    assert client.put("/v1/jobs", json={"Job": service_job(plain)}).status_code == 200
    assert read(client, plain)["TaskGroups"][0]["Migrate"] == {
        "MaxParallel": 1, "HealthCheck": "checks", "MinHealthyTime": 10 * SECOND,
        "HealthyDeadline": 300 * SECOND}
    bad = client.put("/v1/jobs", json={"Job": service_job(uid("migrate"), Migrate=[1])})
    assert (bad.status_code, bad.text) == \
        (400, "Job: Expected `object | null`, got `list` - at `Migrate`")


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/job/{id}"])
def test_register_bare_job_object(client, path):
    job_id = uid("bare")
    r = client.put(path.format(id=enc(job_id)), json=service_job(job_id))
    assert_write_headers(r)
    assert read(client, job_id)["TaskGroups"][0]["Name"] == "cache"


def test_register_eval_priority(client):
    job_id = uid("evprio")
    reply = register(client, service_job(job_id, Priority=20), EvalPriority=90)
    ev = next(e for e in evals_of(client, job_id) if e["ID"] == reply["EvalID"])
    assert ev["Priority"] == 90
    reply = register(client, service_job(job_id, Priority=21))
    ev = next(e for e in evals_of(client, job_id) if e["ID"] == reply["EvalID"])
    assert ev["Priority"] == 21


def test_register_periodic_and_parameterized_create_no_eval(client):
    for job in (periodic_job(uid("per")), parameterized_job(uid("param"))):
        reply = register(client, job)
        assert reply["EvalID"] == "" and reply["EvalCreateIndex"] == 0
        assert reply["JobModifyIndex"] > 0
        assert evals_of(client, job["ID"]) == []
        assert read(client, job["ID"])["Status"] == "running"


# --- read ----------------------------------------------------------------------------------


def test_read_job_shape_and_defaults(client):
    job_id = uid("read")
    reply = register(client, service_job(job_id))
    settle(client, job_id)  # still "pending" after: the job's blocked eval is not terminal
    r = client.get(f"/v1/job/{enc(job_id)}")
    header = assert_read_headers(r)
    job = r.json()
    assert JOB_FIELDS <= set(job)
    assert header == job["ModifyIndex"]
    assert job["ID"] == job["Name"] == job_id
    assert job["Namespace"] == "default" and job["Region"] == "global"
    assert job["Type"] == "service" and job["Priority"] == 50
    assert job["Datacenters"] == ["*"]
    assert job["Stop"] is False and job["Stable"] is False and job["Dispatched"] is False
    assert job["Version"] == 0
    assert job["Payload"] is None and job["ParentID"] == ""
    assert job["ConsulNamespace"] == job["VaultNamespace"] == job["NomadTokenID"] == ""
    assert job["Status"] == "pending"
    assert isinstance(job["SubmitTime"], int) and job["SubmitTime"] > 0
    assert job["CreateIndex"] == job["JobModifyIndex"] == reply["JobModifyIndex"]
    assert job["ModifyIndex"] >= job["JobModifyIndex"]

    tg = job["TaskGroups"][0]
    assert tg["Count"] == 1
    assert tg["EphemeralDisk"] == {"Sticky": False, "SizeMB": 300, "Migrate": False}
    rp = tg["RestartPolicy"]
    assert rp["Mode"] == "fail" and rp["Attempts"] == 2
    assert rp["Interval"] == 30 * 60 * SECOND and rp["Delay"] == 15 * SECOND
    assert isinstance(tg["Update"]["MinHealthyTime"], int)
    assert tg["Update"]["HealthyDeadline"] == 5 * 60 * SECOND
    t = tg["Tasks"][0]
    assert t["Resources"]["CPU"] == 100 and t["Resources"]["MemoryMB"] == 300
    assert t["KillTimeout"] == 5 * SECOND
    assert t["LogConfig"] == {"MaxFiles": 10, "MaxFileSizeMB": 10}
    assert t["Config"] == {"image": "redis:7"}

    def camel(obj):
        if isinstance(obj, dict):
            for k, v in obj.items():
                if k != "Config" and k != "Meta":
                    assert is_camel(k), k
                    camel(v)
        elif isinstance(obj, list):
            for v in obj:
                camel(v)
    camel(job)


def test_read_batch_defaults(client):
    job_id = uid("batchdef")
    register(client, batch_job(job_id))
    job = read(client, job_id)
    rp = job["TaskGroups"][0]["RestartPolicy"]
    assert rp == {"Attempts": 3, "Interval": 24 * 3600 * SECOND, "Delay": 15 * SECOND,
                  "Mode": "fail"}
    assert job["TaskGroups"][0]["Update"] is None


# --- version rule --------------------------------------------------------------------------


def test_same_spec_creates_no_version_but_a_new_eval(client):
    job_id = uid("same")
    first = register(client, service_job(job_id))
    second = register(client, service_job(job_id))
    assert second["JobModifyIndex"] == first["JobModifyIndex"]
    assert second["EvalID"] != first["EvalID"] and UUID_RE.match(second["EvalID"])
    assert [v["Version"] for v in versions_of(client, job_id)] == [0]
    evals = settle(client, job_id)
    # newest first; each of the two evals failed to place (no nodes) and made a blocked
    # eval of its own, the second superseding the first: those two are the only others
    assert created_by(evals, first["EvalID"], second["EvalID"]) == [second["EvalID"],
                                                                    first["EvalID"]]
    assert len(evals) == 4
    by_id = {e["ID"]: e for e in evals}
    for mine in (first, second):
        assert by_id[mine["EvalID"]]["TriggeredBy"] == "job-register"
        assert_no_nodes_outcome(by_id[mine["EvalID"]], evals=evals)
    blocked = the_blocked_eval(evals, previous=second["EvalID"])
    older = by_id[by_id[first["EvalID"]]["BlockedEval"]]
    assert older["Status"] == "canceled" and older["PreviousEval"] == first["EvalID"]
    assert older["StatusDescription"] == superseded_description(blocked["ID"])
    assert [e["ID"] for e in blocked_chain(evals)] == [older["ID"], blocked["ID"]]

    # re-submitting the job exactly as read back is the same spec too
    job = read(client, job_id)
    third = register(client, job, EnforceIndex=True, JobModifyIndex=job["JobModifyIndex"])
    assert third["JobModifyIndex"] == first["JobModifyIndex"]
    assert read(client, job_id)["Version"] == 0


def test_changed_spec_bumps_version(client):
    job_id = uid("chg")
    register(client, service_job(job_id))
    for n, change in enumerate([{"Meta": {"a": "1"}}, {"Meta": {"a": "1"}, "Priority": 60},
                                {"Meta": {"a": "1"}, "Priority": 60,
                                 "Datacenters": ["dc1"]}], start=1):
        register(client, service_job(job_id, **change))
        assert read(client, job_id)["Version"] == n


def test_register_stop_register_gives_versions_0_1_2(client):
    job_id = uid("rsr")
    register(client, service_job(job_id))
    r = client.delete(f"/v1/job/{enc(job_id)}")
    assert_write_headers(r)
    register(client, service_job(job_id))
    versions = versions_of(client, job_id)
    assert [v["Version"] for v in versions] == [2, 1, 0]
    assert [v["Stop"] for v in versions] == [False, True, False]
    assert read(client, job_id)["Stop"] is False


# --- versions ------------------------------------------------------------------------------


def test_versions_newest_first_with_diffs(client):
    job_id = uid("vers")
    register(client, service_job(job_id, Meta={"v": "0"}))
    register(client, service_job(job_id, Meta={"v": "1"}))
    last = register(client, service_job(job_id, Meta={"v": "1"}, Priority=70))

    r = client.get(f"/v1/job/{enc(job_id)}/versions")
    header = assert_read_headers(r)
    body = r.json()
    assert {"Versions", "Diffs", "Index", "KnownLeader", "LastContact"} <= set(body)
    assert body["Diffs"] is None
    assert [v["Version"] for v in body["Versions"]] == [2, 1, 0]
    assert all(v["ID"] == job_id for v in body["Versions"])
    assert body["Versions"][0]["JobModifyIndex"] == last["JobModifyIndex"]
    assert header == body["Index"] >= last["JobModifyIndex"]
    assert body["KnownLeader"] is True

    for flag in ("true", "1", "True"):
        r = client.get(f"/v1/job/{enc(job_id)}/versions", params={"diffs": flag})
        assert_read_headers(r)
        diffs = r.json()["Diffs"]
        assert len(diffs) == 2
        assert all(d["Type"] == "Edited" and d["ID"] == job_id for d in diffs)
        # Diffs[0] is version 1 -> 2 (priority), Diffs[1] is version 0 -> 1 (meta)
        prio = [f for f in diffs[0]["Fields"] or [] if f["Name"] == "Priority"]
        assert prio and prio[0]["Old"] == "50" and prio[0]["New"] == "70"
        meta = [f for f in diffs[1]["Fields"] or [] if f["Name"] == "Meta[v]"]
        assert meta and meta[0]["Old"] == "0" and meta[0]["New"] == "1"


def test_version_retention_keeps_six(client):
    job_id = uid("retain")
    for n in range(8):
        register(client, service_job(job_id, Meta={"v": str(n)}))
    r = client.get(f"/v1/job/{enc(job_id)}/versions", params={"diffs": "true"})
    assert_read_headers(r)
    assert [v["Version"] for v in r.json()["Versions"]] == [7, 6, 5, 4, 3, 2]
    assert len(r.json()["Diffs"]) == 5
    # a version that fell out of the history cannot be reverted to
    r = client.put(f"/v1/job/{enc(job_id)}/revert", json={"JobID": job_id, "JobVersion": 1})
    assert r.status_code == 404 and r.text == f'job "{job_id}" at version 1 not found'


# --- revert ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", WRITE_METHODS)
def test_revert_creates_new_version_with_old_spec(client, method):
    job_id = uid("rev")
    register(client, service_job(job_id, Meta={"v": "0"}))
    latest = register(client, service_job(job_id, Meta={"v": "1"}))
    # the job's blocked eval before the revert: made of the latest registration's eval
    before = settle(client, job_id)
    old_blocked = the_blocked_eval(before, previous=latest["EvalID"])
    r = client.request(method, f"/v1/job/{enc(job_id)}/revert",
                       json={"JobID": job_id, "JobVersion": 0, "EnforcePriorVersion": 1})
    header = assert_write_headers(r)
    body = r.json()
    assert UUID_RE.match(body["EvalID"])
    assert body["EvalCreateIndex"] > 0 and body["JobModifyIndex"] > 0
    assert body["Index"] == header
    job = read(client, job_id)
    assert job["Version"] == 2 and job["Meta"] == {"v": "0"}
    assert job["JobModifyIndex"] == body["JobModifyIndex"]
    assert job["Stable"] is False
    assert [v["Version"] for v in versions_of(client, job_id)] == [2, 1, 0]
    # the revert's eval is the newest the job has, but for the blocked eval the
    # scheduler may already have made of it
    ids_now = [e["ID"] for e in evals_of(client, job_id)]
    assert body["EvalID"] in ids_now
    at = ids_now.index(body["EvalID"])
    assert at <= 1 and ids_now[at:] == [body["EvalID"]] + [e["ID"] for e in before]
    evals = settle(client, job_id)
    ev = next(e for e in evals if e["ID"] == body["EvalID"])
    assert ev["TriggeredBy"] == "job-register" and ev["JobModifyIndex"] == body["JobModifyIndex"]
    assert_no_nodes_outcome(ev, evals=evals)
    # the revert's eval failed too, and its blocked eval superseded the job's old one:
    # still exactly one blocked eval, now the revert's
    blocked = the_blocked_eval(evals, previous=body["EvalID"])
    assert [e["ID"] for e in evals] == [blocked["ID"], body["EvalID"]] + [e["ID"] for e in before]
    old = next(e for e in evals if e["ID"] == old_blocked["ID"])
    assert old["Status"] == "canceled"
    assert old["StatusDescription"] == superseded_description(blocked["ID"])


def test_revert_without_enforce_prior_version(client):
    job_id = uid("rev2")
    register(client, service_job(job_id, Meta={"v": "0"}))
    register(client, service_job(job_id, Meta={"v": "1"}))
    register(client, service_job(job_id, Meta={"v": "2"}))
    r = client.put(f"/v1/job/{enc(job_id)}/revert", json={"JobID": job_id, "JobVersion": 1})
    assert_write_headers(r)
    job = read(client, job_id)
    assert job["Version"] == 3 and job["Meta"] == {"v": "1"}


def test_revert_of_a_stopped_job_restarts_it(client):
    job_id = uid("revstop")
    register(client, service_job(job_id))
    client.delete(f"/v1/job/{enc(job_id)}")
    assert read(client, job_id)["Stop"] is True
    r = client.post(f"/v1/job/{enc(job_id)}/revert", json={"JobID": job_id, "JobVersion": 0})
    assert_write_headers(r)
    job = read(client, job_id)
    assert job["Stop"] is False and job["Version"] == 2


# --- stable --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", WRITE_METHODS)
def test_stable_flag_visible_on_read(client, method):
    job_id = uid("stable")
    register(client, service_job(job_id))
    evals_before = settle(client, job_id)
    r = client.request(method, f"/v1/job/{enc(job_id)}/stable",
                       json={"JobID": job_id, "JobVersion": 0, "Stable": True})
    header = assert_write_headers(r)
    assert r.json()["Index"] == header
    job = read(client, job_id)
    assert job["Stable"] is True and job["Version"] == 0
    assert versions_of(client, job_id)[0]["Stable"] is True
    # no version bump, no eval: the job's evals (its registration eval and the blocked
    # eval the scheduler made of it) are exactly as they were
    assert len(versions_of(client, job_id)) == 1
    assert settle(client, job_id) == evals_before

    r = client.request(method, f"/v1/job/{enc(job_id)}/stable",
                       json={"JobID": job_id, "JobVersion": 0, "Stable": False})
    assert_write_headers(r)
    assert read(client, job_id)["Stable"] is False


def test_stable_on_older_version(client):
    job_id = uid("stable-old")
    register(client, service_job(job_id, Meta={"v": "0"}))
    register(client, service_job(job_id, Meta={"v": "1"}))
    r = client.put(f"/v1/job/{enc(job_id)}/stable",
                   json={"JobID": job_id, "JobVersion": 0, "Stable": True})
    assert_write_headers(r)
    job = read(client, job_id)
    assert job["Version"] == 1 and job["Stable"] is False and job["Meta"] == {"v": "1"}
    versions = versions_of(client, job_id)
    assert [(v["Version"], v["Stable"]) for v in versions] == [(1, False), (0, True)]


# --- summary, evaluations, allocations, deployments -----------------------------------------------


def test_summary_shape(client):
    job_id = uid("sum")
    job = service_job(job_id)
    job["TaskGroups"].append({"Name": "second", "Tasks": [{"Name": "t", "Driver": "exec"}]})
    register(client, job)
    r = client.get(f"/v1/job/{enc(job_id)}/summary")
    header = assert_read_headers(r)
    s = r.json()
    assert s["JobID"] == job_id and s["Namespace"] == "default"
    assert set(s["Summary"]) == {"cache", "second"}
    assert set(s["Summary"]["cache"]) >= {"Queued", "Complete", "Failed", "Running", "Starting",
                                          "Lost"}
    assert s["Children"] == {"Pending": 0, "Running": 0, "Dead": 0}
    assert s["CreateIndex"] > 0 and header == s["ModifyIndex"]


def test_unknown_job_collections_are_empty(client):
    job_id = uid("ghost")
    for suffix in ("/evaluations", "/allocations", "/deployments"):
        r = client.get(f"/v1/job/{enc(job_id)}{suffix}")
        assert_read_headers(r, fresh=None)   # the table's index: 0 if never written
        assert r.json() == []
    r = client.get(f"/v1/job/{enc(job_id)}/deployment")
    assert_read_headers(r, fresh=None)
    assert r.json() is None


def test_known_job_allocations_and_deployments(client):
    job_id = uid("alloc")
    register(client, service_job(job_id))
    for suffix, params in (("/allocations", {}), ("/allocations", {"all": "true"})):
        r = client.get(f"/v1/job/{enc(job_id)}{suffix}", params=params)
        assert_read_headers(r, fresh=None)   # no node here: allocations may be unwritten
        assert r.json() == []
    # once the scheduler has run, the first version's deployment exists with nothing
    # placed (there is no node to place on)
    r = client.get(f"/v1/job/{enc(job_id)}/deployments")
    assert_read_headers(r, fresh=None)
    for d in r.json():
        assert d["JobID"] == job_id and d["JobVersion"] == 0 and d["Status"] == "running"
        assert all(s["PlacedAllocs"] == 0 for s in d["TaskGroups"].values())
    r = client.get(f"/v1/job/{enc(job_id)}/deployment")
    assert_read_headers(r, fresh=None)
    assert r.json() is None or r.json()["JobID"] == job_id


def test_evaluations_newest_first_registration_eval_last(client):
    job_id = uid("evals")
    first = register(client, service_job(job_id))
    blocked = the_blocked_eval(settle(client, job_id), previous=first["EvalID"])
    r = client.put(f"/v1/job/{enc(job_id)}/evaluate")
    assert_write_headers(r)
    forced = r.json()["EvalID"]
    evals = evals_of(client, job_id)
    assert evals[-1]["ID"] == first["EvalID"]
    # the evaluate's eval is the newest but for the blocked eval a worker may already
    # have made of it
    assert created_by(evals, forced, first["EvalID"]) == [forced, first["EvalID"]]
    at = [e["ID"] for e in evals].index(forced)
    assert [e["ID"] for e in evals[at + 1:]] == [blocked["ID"], first["EvalID"]]
    ev = evals[at]
    assert ev["JobID"] == job_id and ev["Namespace"] == "default"
    # created pending; a worker may already have completed it
    assert ev["Status"] in ("pending", "complete")
    if at == 1:
        assert ev["Status"] == "complete" and evals[0]["ID"] == ev["BlockedEval"]
    else:
        assert at == 0
    assert isinstance(ev["CreateTime"], int) and ev["CreateTime"] > 0
    evals = settle(client, job_id)
    newer = the_blocked_eval(evals, previous=forced)
    assert [e["ID"] for e in evals] == [newer["ID"], forced, blocked["ID"], first["EvalID"]]
    assert evals[1]["Status"] == "complete" and evals[1]["BlockedEval"] == newer["ID"]
    assert evals[2]["Status"] == "canceled"
    assert evals[2]["StatusDescription"] == superseded_description(newer["ID"])


# --- evaluate --------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", WRITE_METHODS)
@pytest.mark.parametrize("body", [None, "with-id"])
def test_evaluate(client, method, body):
    job_id = uid("eval")
    reg = register(client, service_job(job_id))
    kwargs = {} if body is None else {"json": {"JobID": job_id,
                                               "EvalOptions": {"ForceReschedule": True}}}
    r = client.request(method, f"/v1/job/{enc(job_id)}/evaluate", **kwargs)
    header = assert_write_headers(r)
    reply = r.json()
    assert UUID_RE.match(reply["EvalID"]) and reply["EvalID"] != reg["EvalID"]
    assert reply["EvalCreateIndex"] == reply["Index"] == header
    assert reply["JobModifyIndex"] == reg["JobModifyIndex"]
    ev = next(e for e in evals_of(client, job_id) if e["ID"] == reply["EvalID"])
    assert ev["TriggeredBy"] == "job-eval"
    # evaluating does not change the job's spec
    assert read(client, job_id)["Version"] == 0


# --- the scheduler on the node-less dev agent --------------------------------------------------------


def test_scheduler_lifecycle_without_nodes(client):
    """What the scheduler visibly does with a job when there is no node to place on:
    register -> the eval completes with the group's failed placements and a blocked
    eval B1 waits for capacity; evaluate -> one more eval that completes the same way
    and makes a blocked eval B2 of its own, which supersedes B1 (canceled in the same
    write): still one blocked eval; deregister -> the stop needs no placement, so its
    eval is successful and cancels B2, and the job is dead."""
    job_id = uid("life")
    job = service_job(job_id)
    job["TaskGroups"][0]["Count"] = 3
    reg = register(client, job)
    evals = settle(client, job_id)
    b1 = the_blocked_eval(evals, previous=reg["EvalID"])
    assert [e["ID"] for e in evals] == [b1["ID"], reg["EvalID"]]
    ev = evals[1]
    assert ev["TriggeredBy"] == "job-register" and ev["StatusDescription"] == ""
    assert_no_nodes_outcome(ev, evals=evals)
    # one AllocMetric per group; the other two failures of the group are coalesced
    assert ev["FailedTGAllocs"]["cache"]["CoalescedFailures"] == 2
    assert ev["QueuedAllocations"] == {"cache": 3}
    assert ev["BlockedEval"] == b1["ID"] and ev["PreviousEval"] == ""
    assert b1["PreviousEval"] == reg["EvalID"]
    assert b1["StatusDescription"] == BLOCKED_DESCRIPTION
    assert b1["TriggeredBy"] == "queued-allocs"
    assert b1["FailedTGAllocs"] == ev["FailedTGAllocs"]  # the failed metrics, copied
    assert b1["JobModifyIndex"] == reg["JobModifyIndex"]
    assert b1["Type"] == "service" and b1["Priority"] == 50
    # the eval's completion and the blocked eval are one write
    assert b1["CreateIndex"] == ev["ModifyIndex"] > ev["CreateIndex"]
    r = client.get(f"/v1/evaluation/{b1['ID']}")
    assert_read_headers(r)
    assert r.json() == b1
    # nothing placed; the job waits (a blocked eval is not terminal), its 3 queued
    assert evals_of(client, job_id) == evals
    assert client.get(f"/v1/job/{enc(job_id)}/allocations").json() == []
    assert read(client, job_id)["Status"] == "pending"
    summary = client.get(f"/v1/job/{enc(job_id)}/summary").json()["Summary"]["cache"]
    assert summary["Queued"] == 3 and summary["Starting"] == summary["Running"] == 0

    # evaluate: one more eval, failing the same way; its own blocked eval B2 supersedes
    # B1, so B2 is the job's only blocked eval
    r = client.put(f"/v1/job/{enc(job_id)}/evaluate")
    assert_write_headers(r)
    forced = r.json()["EvalID"]
    evals = settle(client, job_id)
    b2 = the_blocked_eval(evals, previous=forced)
    assert b2["ID"] != b1["ID"]
    assert [e["ID"] for e in evals] == [b2["ID"], forced, b1["ID"], reg["EvalID"]]
    ev = evals[1]
    assert ev["TriggeredBy"] == "job-eval"
    assert_no_nodes_outcome(ev, evals=evals)
    assert ev["QueuedAllocations"] == {"cache": 3}
    assert ev["BlockedEval"] == b2["ID"]
    assert b2["StatusDescription"] == BLOCKED_DESCRIPTION
    assert b2["TriggeredBy"] == "queued-allocs"
    assert b2["FailedTGAllocs"] == ev["FailedTGAllocs"]
    assert b2["CreateIndex"] == ev["ModifyIndex"] > ev["CreateIndex"]
    canceled = evals[2]
    assert canceled["Status"] == "canceled"
    assert canceled["StatusDescription"] == superseded_description(b2["ID"])
    assert canceled["ModifyIndex"] == b2["CreateIndex"]  # in the same write
    # B1 is otherwise as it was
    assert {k: v for k, v in canceled.items()
            if k not in ("Status", "StatusDescription", "ModifyIndex", "ModifyTime")} == \
        {k: v for k, v in b1.items()
         if k not in ("Status", "StatusDescription", "ModifyIndex", "ModifyTime")}
    # the registration eval is untouched
    assert evals[3] == next(e for e in evals_of(client, job_id) if e["ID"] == reg["EvalID"])
    assert evals[3]["BlockedEval"] == b1["ID"]
    assert read(client, job_id)["Status"] == "pending"

    # deregister: nothing to place, so the eval succeeds and cancels the blocked eval
    r = client.delete(f"/v1/job/{enc(job_id)}")
    assert_write_headers(r)
    stop = r.json()["EvalID"]
    evals = settle(client, job_id)
    assert [e["ID"] for e in evals] == [stop, b2["ID"], forced, b1["ID"], reg["EvalID"]]
    ev, canceled = evals[0], evals[1]
    assert ev["TriggeredBy"] == "job-deregister" and ev["Status"] == "complete"
    assert ev["FailedTGAllocs"] is None and ev["BlockedEval"] == ""
    assert ev["QueuedAllocations"] == {"cache": 0}
    assert canceled["Status"] == "canceled"
    assert canceled["StatusDescription"] == successful_description(stop)
    assert canceled["StatusDescription"] == f'evaluation "{stop}" successful'
    assert canceled["ModifyIndex"] == ev["ModifyIndex"]  # in the same write
    assert canceled["PreviousEval"] == forced
    # B1 stays canceled as superseded by B2
    assert evals[3]["Status"] == "canceled"
    assert evals[3]["StatusDescription"] == superseded_description(b2["ID"])
    assert [e["ID"] for e in blocked_chain(evals)] == [b1["ID"], b2["ID"]]
    assert not [e for e in evals if e["Status"] in ("pending", "blocked")]
    # every eval terminal, no allocation: the stopped job is dead, nothing queued
    job = read(client, job_id)
    assert job["Stop"] is True and job["Status"] == "dead"
    summary = client.get(f"/v1/job/{enc(job_id)}/summary").json()["Summary"]["cache"]
    assert summary["Queued"] == 0


# --- plan ------------------------------------------------------------------------------------------


@pytest.mark.parametrize("method", WRITE_METHODS)
def test_plan_existing_job(client, method):
    job_id = uid("plan")
    reg = register(client, service_job(job_id))
    evals = settle(client, job_id)
    existing_blocked = the_blocked_eval(evals, previous=reg["EvalID"])
    before = observe(client, job_id)
    r = client.request(method, f"/v1/job/{enc(job_id)}/plan",
                       json={"Job": service_job(job_id, Priority=80), "Diff": True})
    header = assert_write_headers(r)
    plan = r.json()
    assert {"Index", "JobModifyIndex", "Diff", "Annotations", "FailedTGAllocs",
            "CreatedEvals", "NextPeriodicLaunch", "Warnings"} <= set(plan)
    assert plan["JobModifyIndex"] == reg["JobModifyIndex"] == plan["Index"] == header
    diff = plan["Diff"]
    assert diff["Type"] == "Edited" and diff["ID"] == job_id
    prio = [f for f in diff["Fields"] if f["Name"] == "Priority"]
    assert prio == [{"Type": "Edited", "Name": "Priority", "Old": "50", "New": "80",
                     "Annotations": None}]
    # the scheduler's dry run: the group's one allocation is to be placed, which fails
    # on the node-less dev agent; so the plan's eval would create a blocked eval (every
    # failing eval does, even though the job already has one), made of the plan's own
    # eval -- which is never written, so it is none of the job's evals
    updates = plan["Annotations"]["DesiredTGUpdates"]
    assert set(updates) == {"cache"} and updates["cache"]["Place"] == 1
    assert all(n == 0 for k, n in updates["cache"].items() if k != "Place")
    assert set(plan["FailedTGAllocs"]) == {"cache"}
    assert plan["FailedTGAllocs"]["cache"]["NodesEvaluated"] == 0
    created = plan["CreatedEvals"]
    assert isinstance(created, list) and len(created) == 1, created
    would_block = created[0]
    assert would_block["Status"] == "blocked" and would_block["TriggeredBy"] == "queued-allocs"
    assert would_block["StatusDescription"] == BLOCKED_DESCRIPTION
    assert UUID_RE.match(would_block["ID"]) and UUID_RE.match(would_block["PreviousEval"])
    assert would_block["PreviousEval"] not in [e["ID"] for e in evals]  # the plan's eval
    assert would_block["ID"] not in [e["ID"] for e in evals]
    assert would_block["ID"] != existing_blocked["ID"]
    assert would_block["JobID"] == job_id and would_block["Priority"] == 80
    assert would_block["FailedTGAllocs"] == plan["FailedTGAllocs"]
    assert would_block["CreateIndex"] == would_block["ModifyIndex"] == 0  # not written
    assert plan["NextPeriodicLaunch"] == "0001-01-01T00:00:00Z"
    # a plan is a dry run: nothing written, the job's blocked eval still the one it was
    assert observe(client, job_id) == before
    assert the_blocked_eval(settle(client, job_id), previous=reg["EvalID"]) == existing_blocked

    r = client.request(method, f"/v1/job/{enc(job_id)}/plan",
                       json={"Job": service_job(job_id, Priority=80)})
    assert_write_headers(r)
    assert r.json()["Diff"] is None


def test_plan_new_and_periodic_job(client):
    job_id = uid("plan-new")
    r = client.put(f"/v1/job/{enc(job_id)}/plan",
                   json={"Job": periodic_job(job_id), "Diff": True})
    assert r.status_code == 200, r.text
    assert r.headers["X-Nomad-Index"] == "0"   # the new job's modify index, as Nomad's
    plan = r.json()
    assert plan["JobModifyIndex"] == plan["Index"] == 0
    assert plan["Diff"]["Type"] == "Added"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", plan["NextPeriodicLaunch"])
    assert plan["NextPeriodicLaunch"] != "0001-01-01T00:00:00Z"
    assert client.get(f"/v1/job/{enc(job_id)}").status_code == 404


# --- dispatch --------------------------------------------------------------------------------------

DISPATCH_RE = r"/dispatch-(\d{10})-[0-9a-f]{8}"


@pytest.mark.parametrize("method", WRITE_METHODS)
def test_dispatch(client, method):
    parent = uid("disp")
    register(client, parameterized_job(parent, Meta={"team": "a", "color": "none"}))
    payload = bytes(range(256)) * 4
    t0 = int(time.time())
    r = client.request(method, f"/v1/job/{enc(parent)}/dispatch", json={
        "Meta": {"color": "red", "size": "L"},
        "Payload": base64.b64encode(payload).decode()})
    header = assert_write_headers(r)
    reply = r.json()
    assert {"DispatchedJobID", "EvalID", "EvalCreateIndex", "JobCreateIndex", "Index"} <= set(reply)
    child_id = reply["DispatchedJobID"]
    m = re.fullmatch(re.escape(parent) + DISPATCH_RE, child_id)
    assert m and t0 - 1 <= int(m.group(1)) <= time.time() + 1
    assert UUID_RE.match(reply["EvalID"])
    assert reply["Index"] == header and reply["JobCreateIndex"] > 0

    child = read(client, child_id)
    assert child["ID"] == child["Name"] == child_id
    assert child["ParentID"] == parent
    assert child["Dispatched"] is True
    assert child["Meta"] == {"team": "a", "color": "red", "size": "L"}
    assert base64.b64decode(child["Payload"]) == payload
    assert child["CreateIndex"] == reply["JobCreateIndex"]
    # the child's eval, addressed both escaped and raw; besides it, once the scheduler
    # is done, only the blocked eval it created (no nodes)
    evals = settle(client, child_id)
    for path in (enc(child_id), raw(child_id)):
        r = client.get(f"/v1/job/{path}/evaluations")
        assert_read_headers(r)
        assert r.json() == evals
    assert created_by(evals, reply["EvalID"]) == [reply["EvalID"]] and len(evals) == 2
    assert_no_nodes_outcome(next(e for e in evals if e["ID"] == reply["EvalID"]), evals=evals)
    assert the_blocked_eval(evals)["PreviousEval"] == reply["EvalID"]
    # still pending: its blocked eval is not terminal
    assert read(client, child_id)["Status"] == "pending"
    # the parent counts the child; the parent itself has no eval
    r = client.get(f"/v1/job/{enc(parent)}/summary")
    assert r.json()["Children"] == {"Pending": 1, "Running": 0, "Dead": 0}
    assert evals_of(client, parent) == []
    stubs = client.get("/v1/jobs", params={"prefix": parent + "/"}).json()
    assert [s["ID"] for s in stubs] == [child_id]
    # a dispatched child is not itself parameterized (Nomad's IsParameterized)
    assert stubs[0]["ParentID"] == parent and stubs[0]["ParameterizedJob"] is False
    parent_stub = client.get("/v1/jobs", params={"prefix": parent}).json()[0]
    assert parent_stub["ID"] == parent and parent_stub["ParameterizedJob"] is True


def test_dispatch_children_counters(client):
    parent = uid("dispn")
    register(client, parameterized_job(parent, payload="forbidden", required=(), optional=()))
    children = {}
    for n in range(1, 4):
        r = client.put(f"/v1/job/{enc(parent)}/dispatch", json={})
        assert_write_headers(r)
        children[r.json()["DispatchedJobID"]] = r.json()["EvalID"]
        settle(client, r.json()["DispatchedJobID"])
        s = client.get(f"/v1/job/{enc(parent)}/summary").json()
        assert s["Children"] == {"Pending": n, "Running": 0, "Dead": 0}
    assert len(children) == 3
    # a child's evaluations are its own: its dispatch eval and the blocked eval the
    # scheduler made of it
    for child, eval_id in children.items():
        evals = settle(client, child)
        assert all(e["JobID"] == child for e in evals) and len(evals) == 2
        assert created_by(evals, eval_id) == [eval_id]
        assert the_blocked_eval(evals)["PreviousEval"] == eval_id


def test_dispatch_payload_with_line_breaks(client):
    """MIME-style base64 (line breaks every 76 chars) decodes, as Go's decoder does."""
    parent = uid("dispmime")
    register(client, parameterized_job(parent, payload="required", required=()))
    payload = bytes(range(200))
    r = client.put(f"/v1/job/{enc(parent)}/dispatch",
                   json={"Payload": base64.encodebytes(payload).decode().replace("\n", "\r\n")})
    assert_write_headers(r)
    child = read(client, r.json()["DispatchedJobID"])
    assert base64.b64decode(child["Payload"]) == payload


def test_dispatch_id_prefix_template(client):
    parent = uid("dispp")
    register(client, parameterized_job(parent))
    r = client.post(f"/v1/job/{enc(parent)}/dispatch",
                    json={"Meta": {"color": "blue"}, "IdPrefixTemplate": "nightly"})
    assert_write_headers(r)
    child_id = r.json()["DispatchedJobID"]
    assert re.fullmatch(re.escape(parent) + r"/dispatch-nightly-\d{10}-[0-9a-f]{8}", child_id)
    assert read(client, child_id)["Meta"] == {"color": "blue"}


def test_dispatch_idempotency_token(client):
    parent = uid("dispi")
    register(client, parameterized_job(parent))
    url = f"/v1/job/{enc(parent)}/dispatch"
    r1 = client.put(url, params={"idempotency_token": "tok-1"}, json={"Meta": {"color": "a"}})
    assert_write_headers(r1)
    first = r1.json()
    assert UUID_RE.match(first["EvalID"])
    r2 = client.post(url, params={"idempotency_token": "tok-1"}, json={"Meta": {"color": "b"}})
    assert_write_headers(r2)
    second = r2.json()
    assert second["DispatchedJobID"] == first["DispatchedJobID"]
    assert second["JobCreateIndex"] == first["JobCreateIndex"]
    assert second["EvalID"] == ""
    assert read(client, first["DispatchedJobID"])["Meta"] == {"color": "a"}
    # another token gives another child
    r3 = client.put(url, params={"idempotency_token": "tok-2"}, json={"Meta": {"color": "a"}})
    assert r3.json()["DispatchedJobID"] != first["DispatchedJobID"]
    # a token in the body is ignored
    ids = {client.put(url, json={"Meta": {"color": "a"}, "IdempotencyToken": "body"})
           .json()["DispatchedJobID"] for _ in range(2)}
    assert len(ids) == 2
    children = client.get("/v1/jobs", params={"prefix": parent + "/"}).json()
    assert len(children) == 4
    s = client.get(f"/v1/job/{enc(parent)}/summary").json()
    assert s["Children"]["Pending"] == 4


# --- periodic force ----------------------------------------------------------------------------------


@pytest.mark.parametrize("method", WRITE_METHODS)
def test_periodic_force(client, method):
    parent = uid("perf")
    register(client, periodic_job(parent))
    t0 = int(time.time())
    r = client.request(method, f"/v1/job/{enc(parent)}/periodic/force")
    header = assert_write_headers(r)
    reply = r.json()
    assert UUID_RE.match(reply["EvalID"])
    assert reply["EvalCreateIndex"] == reply["Index"] == header

    stubs = client.get("/v1/jobs", params={"prefix": parent + "/"}).json()
    assert len(stubs) == 1
    child_id = stubs[0]["ID"]
    m = re.fullmatch(re.escape(parent) + r"/periodic-(\d{10})", child_id)
    assert m and t0 - 1 <= int(m.group(1)) <= time.time() + 1
    assert stubs[0]["ParentID"] == parent and stubs[0]["Periodic"] is False

    settled = settle(client, child_id)
    for path in (enc(child_id), raw(child_id)):
        r = client.get(f"/v1/job/{path}/evaluations")
        assert_read_headers(r)
        evals = r.json()
        assert evals == settled
        # the forced eval, and the blocked eval the scheduler made of it (no nodes)
        assert created_by(evals, reply["EvalID"]) == [reply["EvalID"]] and len(evals) == 2
        assert all(e["JobID"] == child_id for e in evals)
        ev = next(e for e in evals if e["ID"] == reply["EvalID"])
        assert ev["TriggeredBy"] == "periodic-job"
        assert_no_nodes_outcome(ev, evals=evals)
        assert the_blocked_eval(evals)["PreviousEval"] == reply["EvalID"]
    child = read(client, child_id)
    assert child["Status"] == "pending"  # its blocked eval is not terminal
    assert child["Periodic"] is None and child["ParentID"] == parent
    assert evals_of(client, parent) == []
    s = client.get(f"/v1/job/{enc(parent)}/summary").json()
    assert s["Children"]["Pending"] == 1


def test_periodic_force_on_dispatched_periodic_child(client):
    """A parameterized job with a periodic block dispatches periodic children (no eval);
    such a child is an active periodic job and can be forced."""
    parent = uid("perparam")
    register(client, parameterized_job(parent, Periodic={"Spec": "0 0 1 1 *"}))
    r = client.put(f"/v1/job/{enc(parent)}/dispatch", json={"Meta": {"color": "c"}})
    assert_write_headers(r)
    assert r.json()["EvalID"] == ""
    child = r.json()["DispatchedJobID"]
    stub = client.get("/v1/jobs", params={"prefix": child}).json()[0]
    assert stub["Periodic"] is True and stub["ParameterizedJob"] is False
    r = client.put(f"/v1/job/{raw(child)}/periodic/force")
    assert_write_headers(r)
    grandchildren = client.get("/v1/jobs", params={"prefix": child + "/periodic-"}).json()
    assert len(grandchildren) == 1
    evals = settle(client, grandchildren[0]["ID"])
    assert created_by(evals, r.json()["EvalID"]) == [r.json()["EvalID"]] and len(evals) == 2
    assert the_blocked_eval(evals)["PreviousEval"] == r.json()["EvalID"]
    assert evals_of(client, child) == []  # the forced periodic job itself has none


# --- deregister --------------------------------------------------------------------------------------


def test_deregister_soft_keeps_job_stopped(client):
    job_id = uid("stop")
    reg = register(client, service_job(job_id, Priority=35))
    r = client.delete(f"/v1/job/{enc(job_id)}")
    header = assert_write_headers(r)
    reply = r.json()
    assert UUID_RE.match(reply["EvalID"])
    assert reply["EvalCreateIndex"] == reply["Index"] == header
    assert reply["JobModifyIndex"] > reg["JobModifyIndex"]
    job = read(client, job_id)
    assert job["Stop"] is True and job["Version"] == 1
    assert job["JobModifyIndex"] == reply["JobModifyIndex"]
    stub = client.get("/v1/jobs", params={"prefix": job_id}).json()
    assert [(s["ID"], s["Stop"]) for s in stub] == [(job_id, True)]
    ev = next(e for e in evals_of(client, job_id) if e["ID"] == reply["EvalID"])
    assert ev["TriggeredBy"] == "job-deregister" and ev["Priority"] == 35

    # stopping again: no new version
    r = client.delete(f"/v1/job/{enc(job_id)}", params={"eval_priority": "77"})
    assert_write_headers(r)
    assert read(client, job_id)["Version"] == 1
    ev = next(e for e in evals_of(client, job_id) if e["ID"] == r.json()["EvalID"])
    assert ev["Priority"] == 77


@pytest.mark.parametrize("flag", ["true", "True", "1"])
def test_deregister_purge(client, flag):
    job_id = uid("purge")
    reg = register(client, service_job(job_id))
    blocked = the_blocked_eval(settle(client, job_id), previous=reg["EvalID"])
    r = client.delete(f"/v1/job/{enc(job_id)}", params={"purge": flag})
    index = assert_write_headers(r)
    assert UUID_RE.match(r.json()["EvalID"])
    # the purge itself cancels the job's blocked eval, in the same write
    gone = client.get(f"/v1/evaluation/{blocked['ID']}").json()
    assert gone["Status"] == "canceled" and gone["StatusDescription"] == "job purged"
    assert gone["ModifyIndex"] == index
    for suffix, text in (("", "job not found"), ("/summary", "job not found"),
                         ("/versions", "job versions not found")):
        r2 = client.get(f"/v1/job/{enc(job_id)}{suffix}")
        assert r2.status_code == 404 and r2.text == text
    assert client.get("/v1/jobs", params={"prefix": job_id}).json() == []
    assert job_id not in {s["ID"] for s in client.get("/v1/jobs").json()}
    # a purged ID can be registered afresh
    again = register(client, service_job(job_id))
    assert read(client, job_id)["Version"] == 0
    assert read(client, job_id)["CreateIndex"] == again["JobModifyIndex"]


@pytest.mark.parametrize("query", ["?purge=", "?purge", "?purge=false", "?purge=0"])
def test_deregister_empty_or_false_purge_is_a_soft_stop(client, query):
    """As in Nomad, an empty ``purge`` value means false: the job is only stopped."""
    job_id = uid("nopurge")
    register(client, service_job(job_id))
    r = client.delete(f"/v1/job/{enc(job_id)}{query}")
    assert_write_headers(r)
    job = read(client, job_id)
    assert job["Stop"] is True and job["Version"] == 1


def test_empty_bool_query_values_mean_false(client):
    job_id = uid("emptybool")
    register(client, service_job(job_id))
    register(client, service_job(job_id, Priority=51))
    r = client.get(f"/v1/job/{enc(job_id)}/versions?diffs=")
    assert_read_headers(r)
    assert r.json()["Diffs"] is None
    r = client.get(f"/v1/job/{enc(job_id)}/allocations?all")
    assert_read_headers(r, fresh=None)
    assert r.json() == []


@pytest.mark.parametrize("params", [{}, {"purge": "true"}])
def test_deregister_unknown_job(client, params):
    job_id = uid("unknown")
    before = observe(client, job_id)
    r = client.delete(f"/v1/job/{enc(job_id)}", params=params)
    assert_write_headers(r)
    assert r.json()["EvalID"] == "" and r.json()["EvalCreateIndex"] == 0
    assert observe(client, job_id) == before


def test_deregister_periodic_and_parameterized_create_no_eval(client):
    for job in (periodic_job(uid("per-stop")), parameterized_job(uid("param-stop"))):
        register(client, job)
        r = client.delete(f"/v1/job/{enc(job['ID'])}")
        assert_write_headers(r)
        assert r.json()["EvalID"] == ""
        got = read(client, job["ID"])
        assert got["Stop"] is True and got["Status"] == "dead"
        assert evals_of(client, job["ID"]) == []


def test_purged_child_moves_to_dead_on_parent(client):
    parent = uid("pchild")
    register(client, parameterized_job(parent))
    child = client.put(f"/v1/job/{enc(parent)}/dispatch",
                       json={"Meta": {"color": "x"}}).json()["DispatchedJobID"]
    r = client.delete(f"/v1/job/{raw(child)}", params={"purge": "true"})
    assert_write_headers(r)
    settle(client, child)
    assert client.get(f"/v1/job/{enc(child)}").status_code == 404
    s = client.get(f"/v1/job/{enc(parent)}/summary").json()
    assert s["Children"] == {"Pending": 0, "Running": 0, "Dead": 1}


# --- odd job IDs and suffix routing ----------------------------------------------------------------

ODD_IDS = [
    "slash/in/id",
    "a:b?&字",
    "line\nbreak",
    "back\\slash",
    "literal%2Fpercent",
    "ends-with-slash/",
    "tab\tand#hash",
]


@pytest.mark.parametrize("shape", ODD_IDS, ids=lambda s: repr(s))
def test_odd_job_ids_route_by_suffix(client, shape):
    job_id = f"{uid('odd')}-{shape}"
    forms = {enc(job_id), raw(job_id)}

    # register through the item path (escaped) and through the collection
    r = client.put(f"/v1/job/{enc(job_id)}", json={"Job": service_job(job_id)})
    assert_write_headers(r)
    if "/" in job_id:
        r = client.post(f"/v1/job/{raw(job_id)}", json={"Job": service_job(job_id)})
        assert_write_headers(r)

    stubs = client.get("/v1/jobs", params={"prefix": job_id}).json()
    assert [s["ID"] for s in stubs] == [job_id]

    for path in forms:
        assert read(client, job_id)["ID"] == job_id
        r = client.get(f"/v1/job/{path}")
        assert_read_headers(r)
        assert r.json()["ID"] == job_id
        for suffix in ("/summary", "/versions", "/evaluations", "/allocations",
                       "/deployments", "/deployment"):
            r = client.get(f"/v1/job/{path}{suffix}")
            assert_read_headers(r, fresh=None if suffix in ("/allocations", "/deployments",
                                                            "/deployment") else False)
        assert client.get(f"/v1/job/{path}/summary").json()["JobID"] == job_id
        versions = client.get(f"/v1/job/{path}/versions").json()["Versions"]
        assert versions[0]["ID"] == job_id
        evals = client.get(f"/v1/job/{path}/evaluations").json()
        assert evals and all(e["JobID"] == job_id for e in evals)

        r = client.put(f"/v1/job/{path}/evaluate")
        assert_write_headers(r)
        r = client.post(f"/v1/job/{path}/plan", json={"Job": service_job(job_id), "Diff": True})
        assert_write_headers(r)
        assert r.json()["Diff"]["ID"] == job_id
        r = client.put(f"/v1/job/{path}/stable",
                       json={"JobID": job_id, "JobVersion": 0, "Stable": True})
        assert_write_headers(r)
    assert read(client, job_id)["Stable"] is True

    # a new version through the raw form, revert through the escaped one
    r = client.put(f"/v1/job/{raw(job_id)}", json={"Job": service_job(job_id, Priority=61)})
    assert_write_headers(r)
    r = client.put(f"/v1/job/{enc(job_id)}/revert", json={"JobID": job_id, "JobVersion": 0})
    assert_write_headers(r)
    assert read(client, job_id)["Priority"] == 50

    r = client.delete(f"/v1/job/{raw(job_id)}")
    assert_write_headers(r)
    assert read(client, job_id)["Stop"] is True
    r = client.delete(f"/v1/job/{enc(job_id)}", params={"purge": "true"})
    assert_write_headers(r)
    assert client.get(f"/v1/job/{enc(job_id)}").status_code == 404
    assert client.get("/v1/jobs", params={"prefix": job_id}).json() == []


def test_odd_ids_for_dispatch_and_periodic_parents(client):
    parent = uid("odd-parent") + "/a:b?&字"
    register(client, parameterized_job(parent))
    for path in (enc(parent), raw(parent)):
        r = client.put(f"/v1/job/{path}/dispatch", json={"Meta": {"color": "c"}})
        assert_write_headers(r)
        child = r.json()["DispatchedJobID"]
        assert re.fullmatch(re.escape(parent) + DISPATCH_RE, child)
        assert read(client, child)["ParentID"] == parent
        settle(client, child)
    assert client.get(f"/v1/job/{enc(parent)}/summary").json()["Children"]["Pending"] == 2

    parent = uid("odd-periodic") + "/x\ny"
    register(client, periodic_job(parent))
    r = client.post(f"/v1/job/{raw(parent)}/periodic/force")
    assert_write_headers(r)
    stubs = client.get("/v1/jobs", params={"prefix": parent + "/periodic-"}).json()
    assert len(stubs) == 1
    evals = settle(client, stubs[0]["ID"])
    assert created_by(evals, r.json()["EvalID"]) == [r.json()["EvalID"]] and len(evals) == 2
    assert the_blocked_eval(evals)["PreviousEval"] == r.json()["EvalID"]
