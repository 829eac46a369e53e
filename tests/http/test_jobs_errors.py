"""Every error of the Jobs API, with its exact status and text; a rejected write must
leave everything a client can see unchanged."""
from __future__ import annotations

import base64

import pytest

from caravan.server.http.common import MAX_BODY_BYTES
from caravan.server.jobspec.validate import format_errors
from tests.http.helpers import (
    assert_error,
    assert_write_headers,
    batch_job,
    enc,
    observe,
    parameterized_job,
    periodic_job,
    register,
    service_job,
    settle,
    task,
    uid,
)

WRITE_METHODS = ("PUT", "POST")


def _two_version_job(client) -> str:
    job_id = uid("err")
    register(client, service_job(job_id, Meta={"v": "0"}))
    register(client, service_job(job_id, Meta={"v": "1"}))
    settle(client, job_id)  # the scheduler is done with both registration evals
    return job_id


@pytest.fixture(scope="module")
def job_id(client):
    """A registered service job at version 1, shared by the tests of this module: they
    only send writes that must be rejected, and each checks that nothing changed."""
    return _two_version_job(client)


@pytest.fixture
def fresh_job_id(client):
    """Like ``job_id``, for a test whose writes may succeed."""
    return _two_version_job(client)


def rejected(client, watched, method, path, status, message=None, **kwargs):
    """Send a write that must fail; assert the error and that nothing changed.

    ``observe`` waits until the whole agent is quiet (no eval pending) before each
    snapshot, so the scheduler finishing an earlier write in the background (this
    test's setup or a previous test's) cannot pass for a change made by the rejected
    write; and a rejected write that wrongly created an eval would show up in the
    second snapshot as the eval itself, whatever state the scheduler left it in."""
    before = observe(client, *watched)
    check = {k: kwargs.pop(k) for k in ("startswith", "contains") if k in kwargs}
    r = client.request(method, path, **kwargs)
    assert_error(r, status, message, **check)
    assert observe(client, *watched) == before
    return r


# --- bodies ---------------------------------------------------------------------------------

EMPTY_BODY_PATHS = ["/v1/jobs", "/v1/job/{id}", "/v1/job/{id}/plan", "/v1/job/{id}/dispatch",
                    "/v1/job/{id}/revert", "/v1/job/{id}/stable", "/v1/validate/job"]


@pytest.mark.parametrize("method", WRITE_METHODS)
@pytest.mark.parametrize("path", EMPTY_BODY_PATHS)
@pytest.mark.parametrize("body", [b"", b"  \n\t "], ids=["empty", "whitespace"])
def test_empty_body(client, job_id, method, path, body):
    rejected(client, [job_id], method, path.format(id=enc(job_id)), 400,
             "Request body is empty", content=body)


@pytest.mark.parametrize("path", EMPTY_BODY_PATHS + ["/v1/job/{id}/evaluate"])
@pytest.mark.parametrize("body", [b"{", b"{\"Job\": }", b"not json", b"{\"a\":1}}"])
def test_malformed_json(client, job_id, path, body):
    rejected(client, [job_id], "PUT", path.format(id=enc(job_id)), 400,
             startswith="Failed to decode request body as JSON: ", content=body)


@pytest.mark.parametrize("path", EMPTY_BODY_PATHS + ["/v1/job/{id}/evaluate"])
def test_too_deeply_nested_json(client, job_id, path):
    body = b"[" * 5000 + b"]" * 5000
    rejected(client, [job_id], "PUT", path.format(id=enc(job_id)), 400,
             startswith="Failed to decode request body as JSON", content=body)


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/job/{id}", "/v1/job/{id}/revert",
                                  "/v1/job/{id}/stable", "/v1/job/{id}/dispatch",
                                  "/v1/job/{id}/evaluate"])
@pytest.mark.parametrize("body", [[], "job", 3, [{"Job": {}}]], ids=repr)
def test_body_not_an_object(client, job_id, path, body):
    rejected(client, [job_id], "POST", path.format(id=enc(job_id)), 400,
             "Request body must be a JSON object", json=body)


@pytest.mark.parametrize("method", WRITE_METHODS)
@pytest.mark.parametrize("path", ["/v1/job/{id}", "/v1/job/{id}/dispatch"])
def test_body_too_large(client, job_id, method, path):
    url = path.format(id=enc(job_id))
    # declared by Content-Length
    body = b'{"Job": {"ID": "' + b"x" * MAX_BODY_BYTES + b'"}}'
    rejected(client, [job_id], method, url, 413, startswith="Request body too large",
             content=body)

    # chunked: no length announced, counted while streaming
    def chunks():
        yield b'{"Job": {"Meta": {"k": "'
        for _ in range(MAX_BODY_BYTES // (1 << 20) + 1):
            yield b"x" * (1 << 20)
        yield b'"}}}'
    rejected(client, [job_id], method, url, 413, startswith="Request body too large",
             content=chunks())
    # the connection is still usable afterwards
    assert client.get(f"/v1/job/{enc(job_id)}").status_code == 200


# --- register -----------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/job/{id}"])
@pytest.mark.parametrize("body", [{}, {"Job": None}, {"EnforceIndex": True}], ids=repr)
def test_register_without_job(client, job_id, path, body):
    rejected(client, [job_id], "PUT", path.format(id=enc(job_id)), 400,
             "Job must be specified", json=body)


@pytest.mark.parametrize("job", [{"Name": "x", "TaskGroups": []}, {"ID": "", "Type": "service"},
                                 {"ID": None, "Name": "n"}], ids=repr)
def test_register_without_job_id(client, job_id, job):
    rejected(client, [job_id], "PUT", "/v1/jobs", 400, "Job ID hasn't been provided",
             json={"Job": job})
    rejected(client, [job_id], "POST", f"/v1/job/{enc(job_id)}", 400,
             "Job ID hasn't been provided", json={"Job": job})


@pytest.mark.parametrize("method", WRITE_METHODS)
def test_register_url_id_differs_from_body(client, job_id, method):
    other = uid("other")
    rejected(client, [job_id, other], method, f"/v1/job/{enc(job_id)}", 400,
             "Job ID does not match name", json={"Job": service_job(other)})
    rejected(client, [job_id, other], method, f"/v1/job/{enc(other)}", 400,
             "Job ID does not match name", json={"Job": service_job(job_id, Priority=99)})


WRONG_TYPES = [
    ("Count", lambda j: j["TaskGroups"][0].update(Count="3"), "`TaskGroups[0].Count`"),
    ("Priority", lambda j: j.update(Priority="50"), "`Priority`"),
    ("Datacenters", lambda j: j.update(Datacenters="dc1"), "`Datacenters`"),
    ("Meta", lambda j: j.update(Meta={"a": 1}), "`Meta[...]`"),
    ("TaskGroups", lambda j: j.update(TaskGroups={"Name": "x"}), "`TaskGroups`"),
    ("Driver", lambda j: j["TaskGroups"][0]["Tasks"][0].update(Driver=7),
     "`TaskGroups[0].Tasks[0].Driver`"),
    ("KillTimeout", lambda j: j["TaskGroups"][0]["Tasks"][0].update(KillTimeout="5s"),
     "`TaskGroups[0].Tasks[0].KillTimeout`"),
    ("Stop", lambda j: j.update(Stop="yes"), "`Stop`"),
]


@pytest.mark.parametrize("field,mutate,where", WRONG_TYPES, ids=[w[0] for w in WRONG_TYPES])
def test_register_wrong_field_type(client, job_id, field, mutate, where):
    job = service_job(job_id, Meta={"v": "2"})
    mutate(job)
    r = rejected(client, [job_id], "PUT", "/v1/jobs", 400, json={"Job": job},
                 startswith="Job: ")
    assert where in r.text


def go_style(job: dict) -> dict:
    """``job`` as Nomad's Go client sends it: every unset field of the job, its groups
    and tasks present as null."""
    out = {"Namespace": None, "AllAtOnce": None, "Stop": None, "Update": None,
           "Periodic": None, "ParameterizedJob": None, "Meta": None, **job}
    if not isinstance(job.get("TaskGroups"), list):
        return out   # a wrong type there is what the test sends
    out["TaskGroups"] = [
        {"Count": None, "Constraints": None, "RestartPolicy": None, "EphemeralDisk": None,
         "Networks": None, "Services": None, **tg,
         "Tasks": [{"Env": None, "Resources": None, "KillTimeout": None, "LogConfig": None,
                    "Templates": None, "Artifacts": None, **t} for t in tg["Tasks"]]}
        for tg in job["TaskGroups"]]
    return out


@pytest.mark.parametrize("field,mutate,where", WRONG_TYPES, ids=[w[0] for w in WRONG_TYPES])
def test_register_wrong_field_type_beside_nulls(client, job_id, field, mutate, where):
    """Nulls mean "not set"; a wrong type that is not null is still named by its path."""
    job = service_job(job_id, Meta={"v": "2"})
    mutate(job)
    r = rejected(client, [job_id], "PUT", "/v1/jobs", 400, json={"Job": go_style(job)},
                 startswith="Job: ")
    assert where in r.text


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/job/{id}/plan", "/v1/validate/job"])
@pytest.mark.parametrize("mutate,where", [
    (lambda j: j.update(TaskGroups=[None]), "TaskGroups[0]"),
    (lambda j: j["TaskGroups"][0].update(Tasks=[task("a"), None]), "TaskGroups[0].Tasks[1]"),
    (lambda j: j.update(Constraints=[None]), "Constraints[0]"),
    (lambda j: j["TaskGroups"][0].update(Networks=[{"ReservedPorts": [None]}]),
     "TaskGroups[0].Networks[0].ReservedPorts[0]"),
], ids=["group", "task", "constraint", "port"])
def test_a_null_record_in_a_list_is_refused(client, job_id, path, mutate, where):
    """A null where a list holds records is no record (Go would hand Nomad a nil
    pointer): 400 naming the element, nothing written."""
    job = go_style(service_job(job_id, Meta={"v": "2"}))
    mutate(job)
    rejected(client, [job_id], "PUT", path.format(id=enc(job_id)), 400,
             f"Job: Expected `object`, got `null` - at `{where}`", json={"Job": job})


def test_a_null_string_in_a_list_is_an_empty_one(client, job_id):
    """As in Go: a null string element is "", which validation then names."""
    job = go_style(service_job(job_id, Meta={"v": "2"}, Datacenters=[None]))
    rejected(client, [job_id], "PUT", "/v1/jobs", 400,
             format_errors(["Job datacenter must be non-empty string"]), json={"Job": job})


@pytest.mark.parametrize("opts,field", [
    ({"EnforceIndex": "yes"}, "EnforceIndex"),
    ({"EnforceIndex": True, "JobModifyIndex": "5"}, "JobModifyIndex"),
    ({"EnforceIndex": True, "JobModifyIndex": -1}, "JobModifyIndex"),
    ({"PreserveCounts": "yes"}, "PreserveCounts"),
    ({"EvalPriority": "high"}, "EvalPriority"),
    ({"EvalPriority": 101}, "EvalPriority"),
], ids=repr)
def test_register_wrong_option_type(client, job_id, opts, field):
    r = rejected(client, [job_id], "PUT", "/v1/jobs", 400,
                 json={"Job": service_job(job_id, Meta={"v": "2"}), **opts})
    assert r.text.startswith(field + ": "), r.text


@pytest.mark.parametrize("path,body,where", [
    ("/v1/jobs", {"Job": {"ID": "big", "TaskGroups": [{"Name": "g", "Count": 2 ** 64}]}},
     "Job.TaskGroups[0].Count"),
    ("/v1/jobs", {"Job": {"ID": "big", "Priority": -(2 ** 63) - 1}}, "Job.Priority"),
    ("/v1/jobs", {"Job": {"ID": "big"}, "EnforceIndex": True, "JobModifyIndex": 2 ** 64},
     "JobModifyIndex"),
    ("/v1/job/{id}/revert", {"JobID": "{id}", "JobVersion": 2 ** 64}, "JobVersion"),
    ("/v1/job/{id}/stable", {"JobID": "{id}", "JobVersion": 2 ** 70, "Stable": True},
     "JobVersion"),
    ("/v1/job/{id}/dispatch", {"Meta": {"a": "b"}, "X": [1, 2 ** 65]}, "X[1]"),
], ids=lambda v: v if isinstance(v, str) else None)
def test_integer_out_of_range(client, job_id, path, body, where):
    """Integers beyond int64/uint64 are a 400 naming the field, not an internal error."""
    import json
    text = json.dumps(body).replace('"{id}"', json.dumps(job_id))
    rejected(client, [job_id], "PUT", path.format(id=enc(job_id)), 400,
             f"Failed to decode request body as JSON: integer out of range at `{where}`",
             content=text.encode())
    # the keep-alive connection survives
    assert client.get(f"/v1/job/{enc(job_id)}").status_code == 200


@pytest.mark.parametrize("change,errors", [
    ({"Type": "foo"}, ['Invalid job type: "foo"']),
    ({"Priority": 0}, ["job priority must be between [1, 100]"]),
    ({"Priority": 101}, ["job priority must be between [1, 100]"]),
    ({"Region": "", "Datacenters": [""]}, ["Job datacenter must be non-empty string"]),
    ({"TaskGroups": None}, ["Missing job task groups"]),
    ({"TaskGroups": [{"Name": "g", "Count": -1, "Tasks": [task("t")]}]},
     ["Task group g validation failed: Task group count can't be negative"]),
    ({"TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t"}]}]},
     ["Task group g validation failed: Task t validation failed: Missing task driver"]),
    ({"Payload": base64.b64encode(b"x").decode()},
     ["job can't be submitted with a payload, only dispatched"]),
], ids=lambda v: None if isinstance(v, list) else repr(v))
def test_register_failed_validation(client, change, errors):
    """Validation failures are 400 with go-multierror text; nothing is created."""
    new_id = uid("invalid")
    job = service_job(new_id)
    job.update(change)
    for method in WRITE_METHODS:
        rejected(client, [new_id], method, "/v1/jobs", 400, format_errors(errors),
                 json={"Job": job})
        rejected(client, [new_id], method, f"/v1/job/{enc(new_id)}", 400, format_errors(errors),
                 json={"Job": job})


@pytest.mark.parametrize("suffix,error", [(" with space", "Job ID contains a space"),
                                          ("\x00nul", "Job ID contains a null character")])
def test_register_invalid_job_id(client, suffix, error):
    bad_id = uid("badid") + suffix
    rejected(client, [bad_id], "PUT", "/v1/jobs", 400, format_errors([error]),
             json={"Job": service_job(bad_id, Name="fine-name")})


def test_register_failed_validation_of_existing_job(client, job_id):
    job = service_job(job_id, Type="batch")
    rejected(client, [job_id], "PUT", "/v1/jobs", 400,
             format_errors(['cannot update job from type "service" to "batch"']),
             json={"Job": job})
    job = service_job(job_id, Type="nope", Priority=0)
    rejected(client, [job_id], "PUT", "/v1/jobs", 400,
             format_errors(['Invalid job type: "nope"', "job priority must be between [1, 100]",
                            'cannot update job from type "service" to "nope"']),
             json={"Job": job})


def test_register_new_job_marked_dispatched(client):
    new_id = uid("fake-child")
    rejected(client, [new_id], "PUT", "/v1/jobs", 400,
             format_errors(["job can't be submitted with 'Dispatched' set"]),
             json={"Job": batch_job(new_id, Dispatched=True)})


def test_register_periodic_switch_rejected(client):
    job_id = uid("per-switch")
    register(client, periodic_job(job_id))
    rejected(client, [job_id], "PUT", "/v1/jobs", 400,
             format_errors(["cannot update periodic job to being non-periodic"]),
             json={"Job": batch_job(job_id)})


# --- EnforceIndex ---------------------------------------------------------------------------------


@pytest.mark.parametrize("enforce", [True, 1])
def test_enforce_index_conflicts(client, fresh_job_id, enforce):
    current = client.get(f"/v1/job/{enc(fresh_job_id)}").json()["JobModifyIndex"]
    new = service_job(fresh_job_id, Meta={"v": "2"})
    rejected(client, [fresh_job_id], "PUT", "/v1/jobs", 409,
             "Enforcing job modify index 0: job already exists",
             json={"Job": new, "EnforceIndex": enforce, "JobModifyIndex": 0})
    rejected(client, [fresh_job_id], "POST", f"/v1/job/{enc(fresh_job_id)}", 409,
             f"Enforcing job modify index {current - 1}: job exists with conflicting job "
             f"modify index: {current}",
             json={"Job": new, "EnforceIndex": enforce, "JobModifyIndex": current - 1})
    missing = uid("cas-missing")
    rejected(client, [missing], "PUT", "/v1/jobs", 409,
             "Enforcing job modify index 5: job does not exist",
             json={"Job": service_job(missing), "EnforceIndex": enforce, "JobModifyIndex": 5})
    # and the success cases
    r = client.put("/v1/jobs", json={"Job": new, "EnforceIndex": enforce,
                                     "JobModifyIndex": current})
    assert_write_headers(r)
    r = client.put("/v1/jobs", json={"Job": service_job(missing), "EnforceIndex": enforce,
                                     "JobModifyIndex": 0})
    assert_write_headers(r)


def test_enforce_index_ignored_when_not_enforced(client, fresh_job_id):
    r = client.put("/v1/jobs", json={"Job": service_job(fresh_job_id, Meta={"v": "9"}),
                                     "EnforceIndex": False, "JobModifyIndex": 1})
    assert_write_headers(r)


# --- unknown jobs ---------------------------------------------------------------------------------


@pytest.mark.parametrize("suffix,message", [("", "job not found"), ("/summary", "job not found"),
                                            ("/versions", "job versions not found")])
def test_read_unknown_job(client, suffix, message):
    r = client.get(f"/v1/job/{enc(uid('ghost'))}{suffix}")
    assert_error(r, 404, message)


@pytest.mark.parametrize("method", WRITE_METHODS)
def test_writes_to_unknown_job(client, method):
    ghost = uid("ghost")
    url = f"/v1/job/{enc(ghost)}"
    rejected(client, [ghost], method, url + "/evaluate", 404, "job not found")
    rejected(client, [ghost], method, url + "/periodic/force", 404, "job not found")
    rejected(client, [ghost], method, url + "/revert", 404, f'job "{ghost}" not found',
             json={"JobID": ghost, "JobVersion": 0})
    rejected(client, [ghost], method, url + "/stable", 404, "job not found",
             json={"JobID": ghost, "JobVersion": 0, "Stable": True})
    rejected(client, [ghost], method, url + "/dispatch", 404, "parameterized job not found",
             json={})


# --- revert and stable ------------------------------------------------------------------------------


@pytest.mark.parametrize("endpoint", ["revert", "stable"])
@pytest.mark.parametrize("body,message", [
    ({"JobVersion": 0}, "JobID must be specified"),
    ({"JobID": "", "JobVersion": 0}, "JobID must be specified"),
    ({"JobID": "someone-else", "JobVersion": 0}, "Job ID does not match"),
], ids=repr)
def test_revert_stable_body_job_id(client, job_id, endpoint, body, message):
    for method in WRITE_METHODS:
        rejected(client, [job_id], method, f"/v1/job/{enc(job_id)}/{endpoint}", 400, message,
                 json={**body, "Stable": True})


def test_revert_enforce_prior_version_mismatch(client, job_id):
    for method in WRITE_METHODS:
        rejected(client, [job_id], method, f"/v1/job/{enc(job_id)}/revert", 409,
                 "Current job has version 1; enforcing version 0",
                 json={"JobID": job_id, "JobVersion": 0, "EnforcePriorVersion": 0})
        rejected(client, [job_id], method, f"/v1/job/{enc(job_id)}/revert", 409,
                 "Current job has version 1; enforcing version 7",
                 json={"JobID": job_id, "JobVersion": 0, "EnforcePriorVersion": 7})


def test_revert_to_current_or_unknown_version(client, job_id):
    rejected(client, [job_id], "PUT", f"/v1/job/{enc(job_id)}/revert", 400,
             "can't revert to current version", json={"JobID": job_id, "JobVersion": 1})
    rejected(client, [job_id], "PUT", f"/v1/job/{enc(job_id)}/revert", 400,
             "can't revert to current version",
             json={"JobID": job_id, "JobVersion": 1, "EnforcePriorVersion": 1})
    rejected(client, [job_id], "POST", f"/v1/job/{enc(job_id)}/revert", 404,
             f'job "{job_id}" at version 9 not found', json={"JobID": job_id, "JobVersion": 9})


@pytest.mark.parametrize("endpoint,body,field", [
    ("revert", {"JobVersion": "0"}, "JobVersion"),
    ("revert", {"JobVersion": -1}, "JobVersion"),
    ("revert", {"JobVersion": 0, "EnforcePriorVersion": "1"}, "EnforcePriorVersion"),
    ("stable", {"JobVersion": "0", "Stable": True}, "JobVersion"),
    ("stable", {"JobVersion": 0, "Stable": "true"}, "Stable"),
], ids=repr)
def test_revert_stable_wrong_types(client, job_id, endpoint, body, field):
    r = rejected(client, [job_id], "PUT", f"/v1/job/{enc(job_id)}/{endpoint}", 400,
                 json={"JobID": job_id, **body})
    assert r.text.startswith(field + ": "), r.text


def test_stable_unknown_version(client, job_id):
    rejected(client, [job_id], "PUT", f"/v1/job/{enc(job_id)}/stable", 404,
             f'job "{job_id}" in namespace "default" at version 5 not found',
             json={"JobID": job_id, "JobVersion": 5, "Stable": True})


# --- dispatch -------------------------------------------------------------------------------------


@pytest.fixture
def param_parent(client):
    parent = uid("dparent")
    register(client, parameterized_job(parent, payload="optional", required=("color",),
                                       optional=("size",)))
    return parent


def dispatch_rejected(client, parent, status, message, body, **kwargs):
    for method in WRITE_METHODS:
        rejected(client, [parent], method, f"/v1/job/{enc(parent)}/dispatch", status, message,
                 json=body, **kwargs)


def test_dispatch_meta_errors(client, param_parent):
    dispatch_rejected(client, param_parent, 400,
                      "Dispatch did not provide required meta keys: [color]", {})
    dispatch_rejected(client, param_parent, 400,
                      "Dispatch did not provide required meta keys: [color]",
                      {"Meta": {"size": "L"}})
    dispatch_rejected(client, param_parent, 400,
                      "Dispatch request included unpermitted metadata keys: [flavor zone]",
                      {"Meta": {"color": "red", "zone": "z", "flavor": "f"}})
    dispatch_rejected(client, param_parent, 400, "Meta: expected an object of string values",
                      {"Meta": {"color": 1}})
    dispatch_rejected(client, param_parent, 400, "Meta: expected an object of string values",
                      {"Meta": ["color"]})


def test_dispatch_payload_errors(client):
    required = uid("dreq")
    register(client, parameterized_job(required, payload="required", required=()))
    dispatch_rejected(client, required, 400,
                      "Payload is not provided but required by parameterized job", {})
    dispatch_rejected(client, required, 400,
                      "Payload is not provided but required by parameterized job",
                      {"Payload": ""})
    forbidden = uid("dforb")
    register(client, parameterized_job(forbidden, payload="forbidden", required=()))
    dispatch_rejected(client, forbidden, 400,
                      "Payload provided but forbidden by parameterized job",
                      {"Payload": base64.b64encode(b"hi").decode()})

    too_big = base64.b64encode(b"x" * 16385).decode()
    dispatch_rejected(client, required, 400, "Payload exceeds maximum size; 16385 > 16384",
                      {"Payload": too_big})
    for bad in ("not base64!", "aGVsbG8", "aGVs bG8=", "aGVsbG8=\x00"):
        dispatch_rejected(client, required, 400, "Payload: not valid base64", {"Payload": bad})
    dispatch_rejected(client, required, 400, "Payload: expected a base64-encoded string",
                      {"Payload": 12})
    # exactly at the limit is fine
    r = client.put(f"/v1/job/{enc(required)}/dispatch",
                   json={"Payload": base64.b64encode(b"y" * 16384).decode()})
    assert_write_headers(r)


def test_dispatch_parent_errors(client, job_id):
    dispatch_rejected(client, job_id, 400, f'Specified job "{job_id}" is not a parameterized job',
                      {"Meta": {"color": "red"}})
    stopped = uid("dstop")
    register(client, parameterized_job(stopped))
    assert_write_headers(client.delete(f"/v1/job/{enc(stopped)}"))
    dispatch_rejected(client, stopped, 400, f'Specified job "{stopped}" is stopped',
                      {"Meta": {"color": "red"}})
    # a dispatched child is not parameterized itself
    parent = uid("dchild")
    register(client, parameterized_job(parent))
    child = client.put(f"/v1/job/{enc(parent)}/dispatch",
                       json={"Meta": {"color": "red"}}).json()["DispatchedJobID"]
    rejected(client, [parent, child], "PUT", f"/v1/job/{enc(child)}/dispatch", 400,
             f'Specified job "{child}" is not a parameterized job', json={"Meta": {"color": "x"}})


def test_dispatch_body_job_id_mismatch(client, param_parent):
    dispatch_rejected(client, param_parent, 400, "Job ID does not match",
                      {"JobID": "another", "Meta": {"color": "red"}})


def test_dispatch_bad_id_prefix_template(client, param_parent):
    dispatch_rejected(client, param_parent, 400,
                      "IdPrefixTemplate: expected a string without '/'",
                      {"Meta": {"color": "red"}, "IdPrefixTemplate": "a/b"})


# --- periodic force and evaluate ----------------------------------------------------------------------


def test_periodic_force_errors(client, job_id):
    for method in WRITE_METHODS:
        rejected(client, [job_id], method, f"/v1/job/{enc(job_id)}/periodic/force", 400,
                 "can't force launch non-periodic job")
    disabled = uid("per-off")
    register(client, periodic_job(disabled, Periodic={"Enabled": False}))
    rejected(client, [disabled], "PUT", f"/v1/job/{enc(disabled)}/periodic/force", 400,
             f'force launch for job "{disabled}" failed: can\'t force run non-tracked job '
             f"{disabled}")
    stopped = uid("per-stop")
    register(client, periodic_job(stopped))
    assert_write_headers(client.delete(f"/v1/job/{enc(stopped)}"))
    rejected(client, [stopped], "PUT", f"/v1/job/{enc(stopped)}/periodic/force", 400,
             f'force launch for job "{stopped}" failed: can\'t force run non-tracked job '
             f"{stopped}")


def test_evaluate_errors(client, job_id):
    periodic = uid("ev-per")
    register(client, periodic_job(periodic))
    param = uid("ev-param")
    register(client, parameterized_job(param))
    for method in WRITE_METHODS:
        rejected(client, [periodic], method, f"/v1/job/{enc(periodic)}/evaluate", 400,
                 "can't evaluate periodic job")
        rejected(client, [param], method, f"/v1/job/{enc(param)}/evaluate", 400,
                 "can't evaluate parameterized job")
        rejected(client, [job_id], method, f"/v1/job/{enc(job_id)}/evaluate", 400,
                 "Job ID does not match", json={"JobID": "not-" + job_id})


# --- plan ---------------------------------------------------------------------------------------


def test_plan_errors(client, job_id):
    url = f"/v1/job/{enc(job_id)}/plan"
    for method in WRITE_METHODS:
        rejected(client, [job_id], method, url, 400, "Job must be specified", json={})
        rejected(client, [job_id], method, url, 400, "Job must be specified",
                 json={"Job": None, "Diff": True})
        rejected(client, [job_id], method, url, 400, "Job must have a valid ID",
                 json={"Job": {"Name": "x"}})
        rejected(client, [job_id], method, url, 400, "Job ID does not match",
                 json={"Job": service_job("other-" + job_id)})
        rejected(client, [job_id], method, url, 400,
                 format_errors(["job priority must be between [1, 100]"]),
                 json={"Job": service_job(job_id, Priority=0)})
        r = rejected(client, [job_id], method, url, 400,
                     json={"Job": service_job(job_id, Priority="high")}, startswith="Job: ")
        assert "`Priority`" in r.text
        rejected(client, [job_id], method, url, 400,
                 startswith='Failed to parse value of "Diff" (maybe) as a bool',
                 json={"Job": service_job(job_id), "Diff": "maybe"})


# --- query parameters ----------------------------------------------------------------------------


def test_bad_purge_value(client, job_id):
    for value in ("maybe", "yes", "2"):
        rejected(client, [job_id], "DELETE", f"/v1/job/{enc(job_id)}", 400,
                 f'Failed to parse value of "purge" ({value}) as a bool: strconv.ParseBool: '
                 f'parsing "{value}": invalid syntax', params={"purge": value})


def test_bad_eval_priority_on_deregister(client, job_id):
    for value in ("abc", "500", "1.5", " 5"):
        rejected(client, [job_id], "DELETE", f"/v1/job/{enc(job_id)}", 400,
                 startswith="eval_priority: ", params={"eval_priority": value})


def test_bad_global_value(client, job_id):
    rejected(client, [job_id], "DELETE", f"/v1/job/{enc(job_id)}", 400,
             'Failed to parse value of "global" (maybe) as a bool: strconv.ParseBool: '
             'parsing "maybe": invalid syntax', params={"global": "maybe"})


@pytest.mark.parametrize("endpoint,body,field", [
    ("stable", {"JobVersion": None, "Stable": "yes"}, "Stable"),
    ("revert", {"JobVersion": None, "EnforcePriorVersion": "1"}, "EnforcePriorVersion"),
], ids=repr)
def test_wrong_types_beside_nulls_in_revert_stable(client, job_id, endpoint, body, field):
    r = rejected(client, [job_id], "PUT", f"/v1/job/{enc(job_id)}/{endpoint}", 400,
                 json={"JobID": job_id, "Region": None, "Namespace": None, **body})
    assert r.text.startswith(field + ": "), r.text


@pytest.mark.parametrize("path", ["/v1/jobs", "/v1/job/{id}", "/v1/job/{id}/versions",
                                  "/v1/job/{id}/summary", "/v1/job/{id}/evaluations",
                                  "/v1/job/{id}/allocations", "/v1/job/{id}/deployments",
                                  "/v1/job/{id}/deployment"])
def test_bad_blocking_parameters(client, job_id, path):
    url = path.format(id=enc(job_id))
    for index in ("abc", "-1", "1.5", "1_000", " 7", str(2 ** 64)):
        assert_error(client.get(url, params={"index": index}), 400, "Invalid index")
    for wait in ("xyz", "5", "1x", "s", "5s5"):
        assert_error(client.get(url, params={"index": "1", "wait": wait}), 400,
                     "Invalid wait time")


@pytest.mark.parametrize("suffix,name", [("/versions", "diffs"), ("/allocations", "all")])
def test_bad_bool_query(client, job_id, suffix, name):
    r = client.get(f"/v1/job/{enc(job_id)}{suffix}", params={name: "maybe"})
    assert_error(r, 400, f'Failed to parse value of "{name}" (maybe) as a bool: '
                         f'strconv.ParseBool: parsing "maybe": invalid syntax')


# --- methods and paths -------------------------------------------------------------------------------

WRONG_METHODS = [
    ("DELETE", "/v1/jobs"), ("PATCH", "/v1/jobs"), ("OPTIONS", "/v1/jobs"),
    ("PATCH", "/v1/job/{id}"), ("OPTIONS", "/v1/job/{id}"),
    ("GET", "/v1/job/{id}/evaluate"), ("DELETE", "/v1/job/{id}/evaluate"),
    ("GET", "/v1/job/{id}/plan"), ("GET", "/v1/job/{id}/dispatch"),
    ("GET", "/v1/job/{id}/revert"), ("GET", "/v1/job/{id}/stable"),
    ("GET", "/v1/job/{id}/periodic/force"), ("DELETE", "/v1/job/{id}/periodic/force"),
    ("POST", "/v1/job/{id}/summary"), ("PUT", "/v1/job/{id}/versions"),
    ("DELETE", "/v1/job/{id}/evaluations"), ("POST", "/v1/job/{id}/allocations"),
    ("PUT", "/v1/job/{id}/deployments"), ("POST", "/v1/job/{id}/deployment"),
    ("GET", "/v1/validate/job"), ("DELETE", "/v1/validate/job"),
]


@pytest.mark.parametrize("method,path", WRONG_METHODS, ids=lambda v: v)
def test_wrong_method(client, job_id, method, path):
    rejected(client, [job_id], method, path.format(id=enc(job_id)), 405, "Invalid method",
             json={"Job": service_job(job_id, Meta={"v": "x"}), "JobID": job_id,
                   "JobVersion": 0})


def test_head_is_not_a_read(client, job_id):
    r = client.head(f"/v1/job/{enc(job_id)}/plan")
    assert r.status_code == 405


@pytest.mark.parametrize("path", ["/v1/job/", "/v1/job//summary", "/v1/job//evaluate"])
def test_missing_job_id(client, path):
    assert_error(client.put(path) if path.endswith("evaluate") else client.get(path), 400,
                 "Missing job ID")


def test_error_bodies_are_plain_text(client, job_id):
    """Every error carries the message alone, as text/plain, never a traceback."""
    samples = [
        client.get(f"/v1/job/{enc(uid('ghost'))}"),
        client.put("/v1/jobs", content=b"{"),
        client.put("/v1/jobs", json={"Job": service_job(job_id, Priority=0)}),
        client.patch("/v1/jobs"),
        client.put("/v1/jobs", json={"Job": service_job(job_id), "EnforceIndex": True}),
    ]
    for r in samples:
        assert r.status_code >= 400
        assert r.headers["content-type"].startswith("text/plain")
        assert not r.text.startswith(("{", "[", "\"")), r.text
        assert "Traceback" not in r.text and "File \"" not in r.text
