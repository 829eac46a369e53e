"""Scaling, scaling policies, allocation stop, eval reads and the DeploymentID of evals,
through real dev agents over HTTP.

Two agents: a server-only one (no nodes, so nothing is placed and nothing runs: the Go
client's job binds a static port) and one with its client node (mock tasks run).

Nomad's Go client's bodies (``tests/fixtures/go-client-requests``) are sent as it sends
them, ``null`` for every unset field.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import uuid
from pathlib import Path

import httpx
import pytest

from tests.http.helpers import assert_error, assert_read_headers, assert_write_headers, settle, uid
from tests.procs import ROOT, dev_server, wait_until

FIXTURES = Path(__file__).resolve().parent / "fixtures" / "go-client-requests"
UUID = "00000000-0000-4000-8000-00000000dead"


def go_body(name: str) -> dict:
    """A request body exactly as Nomad's Go client sends it."""
    return json.loads((FIXTURES / name).read_text())


def _agent(tmp_path_factory, name: str, client: bool):
    server = dev_server(tmp_path_factory.mktemp(name), client=client).start()
    try:
        server.wait_healthy()
        if client:
            wait_until(lambda: any(n["Status"] == "ready" for n in
                                   httpx.get(server.url + "/v1/nodes").json()), 30, "its node")
    except BaseException:
        server.stop()
        raise
    return server


@pytest.fixture(scope="module")
def api(tmp_path_factory):
    """A server-only dev agent's HTTP client."""
    server = _agent(tmp_path_factory, "scale-server", client=False)
    try:
        with httpx.Client(base_url=server.url, timeout=15) as c:
            yield c
    finally:
        server.stop()


@pytest.fixture(scope="module")
def node_api(tmp_path_factory):
    """A dev agent with its client node (mock tasks run)."""
    server = _agent(tmp_path_factory, "scale-client", client=True)
    try:
        with httpx.Client(base_url=server.url, timeout=15) as c:
            yield c
    finally:
        server.stop()


def batch_job(job_id: str, count: int = 2, scaling: dict | None = None, **over) -> dict:
    group = {"Name": "g", "Count": count,
             "Tasks": [{"Name": "t", "Driver": "mock", "Config": {"run_for": "1h"}}]}
    if scaling is not None:
        group["Scaling"] = scaling
    return {"ID": job_id, "Type": "batch", "TaskGroups": [group], **over}


def put(c: httpx.Client, path: str, body=None, method: str = "PUT") -> httpx.Response:
    return c.request(method, path, json=body)


def register(c: httpx.Client, job: dict) -> dict:
    r = put(c, "/v1/jobs", {"Job": job})
    assert_write_headers(r)
    return r.json()


# --- scale -------------------------------------------------------------------------------


def test_go_client_scale_request(api):
    """register-service-group-network.json, then scale.json (count 5) as the Go client
    sends them: refused while the job's first deployment is active, as Nomad refuses
    it, and applied once that deployment is failed."""
    reg = put(api, "/v1/jobs", go_body("register-service-group-network.json"))
    assert_write_headers(reg)
    settle(api, "web")
    r = api.get("/v1/job/web/scale")
    assert_read_headers(r)
    status = r.json()
    assert status["JobID"] == "web" and status["Namespace"] == "default"
    assert status["JobCreateIndex"] == reg.json()["JobModifyIndex"] and not status["JobStopped"]
    assert status["TaskGroups"] == {"web": {"Desired": 3, "Placed": 0, "Running": 0, "Healthy": 0,
                                            "Unhealthy": 0, "Events": None}}

    assert_error(put(api, "/v1/job/web/scale", go_body("scale.json")), 400,
                 "job scaling blocked due to active deployment")
    deployment = api.get("/v1/job/web/deployment").json()
    assert put(api, f"/v1/deployment/fail/{deployment['ID']}").status_code == 200
    settle(api, "web")
    before = api.get("/v1/job/web").json()

    r = put(api, "/v1/job/web/scale", go_body("scale.json"), method="PUT")
    index = assert_write_headers(r)
    out = r.json()
    assert set(out) >= {"EvalID", "EvalCreateIndex", "JobModifyIndex", "Index", "Warnings"}
    assert out["EvalCreateIndex"] > 0 and out["JobModifyIndex"] > before["JobModifyIndex"]
    assert out["Index"] == index
    job = api.get("/v1/job/web").json()
    assert job["TaskGroups"][0]["Count"] == 5 and job["Version"] == before["Version"] + 1
    ev = api.get(f"/v1/evaluation/{out['EvalID']}").json()
    assert ev["TriggeredBy"] == "job-scaling" and ev["JobModifyIndex"] == out["JobModifyIndex"]

    status = api.get("/v1/job/web/scale").json()
    group = status["TaskGroups"]["web"]
    assert group["Desired"] == 5
    (event,) = group["Events"]
    assert event["Count"] == 5 and event["PreviousCount"] == 3 and event["Message"] == "scale up"
    assert event["EvalID"] == out["EvalID"] and event["Time"] > 0 and not event["Error"]
    assert event["Meta"] is None and event["CreateIndex"] == index
    settle(api, "web")


def test_error_event_changes_nothing_and_events_are_bounded_newest_first(api):
    job_id = uid("scerr")
    register(api, batch_job(job_id))
    settle(api, job_id)
    job = api.get(f"/v1/job/{job_id}").json()
    r = put(api, f"/v1/job/{job_id}/scale", {"Target": {"Job": job_id, "Group": "g"},
                                             "Error": True, "Message": "boom",
                                             "Meta": {"reason": "metrics down", "n": 3}},
            method="POST")
    assert_write_headers(r)
    assert r.json()["EvalID"] == "" and r.json()["EvalCreateIndex"] == 0
    assert r.json()["JobModifyIndex"] == job["ModifyIndex"]
    assert api.get(f"/v1/job/{job_id}").json()["Version"] == job["Version"]
    (event,) = api.get(f"/v1/job/{job_id}/scale").json()["TaskGroups"]["g"]["Events"]
    assert event["Error"] and event["Count"] is None and event["EvalID"] is None
    assert event["Meta"] == {"reason": "metrics down", "n": 3} and event["PreviousCount"] == 2

    # a message without a count is recorded too; 20 are kept per group, newest first
    for i in range(21):
        assert put(api, f"/v1/job/{job_id}/scale",
                   {"Target": {"Group": "g"}, "Message": f"m{i}"}).status_code == 200
    events = api.get(f"/v1/job/{job_id}/scale").json()["TaskGroups"]["g"]["Events"]
    assert [e["Message"] for e in events] == [f"m{i}" for i in range(20, 0, -1)]


def test_scale_a_batch_job_within_its_scaling_bounds(api):
    job_id = uid("scb")
    register(api, batch_job(job_id, scaling={"Min": 1, "Max": 4}))
    settle(api, job_id)
    path = f"/v1/job/{job_id}/scale"
    assert_error(put(api, path, {"Count": 9, "Target": {"Group": "g"}}), 400,
                 "group count was greater than scaling policy maximum: 9 > 4")
    assert_error(put(api, path, {"Count": 0, "Target": {"Group": "g"}}), 400,
                 "group count was less than scaling policy minimum: 0 < 1")
    job = api.get(f"/v1/job/{job_id}").json()
    assert_error(put(api, path, {"Count": 3, "Target": {"Group": "g"},
                                 "JobModifyIndex": job["JobModifyIndex"] + 7}), 409,
                 startswith="Enforcing job modify index")
    assert api.get(f"/v1/job/{job_id}").json()["Version"] == job["Version"]
    assert api.get(path).json()["TaskGroups"]["g"]["Events"] is None   # nothing recorded

    r = put(api, path, {"Count": 4, "Target": {"Group": "g"}, "EnforceIndex": True,
                        "JobModifyIndex": job["JobModifyIndex"]})
    assert_write_headers(r)
    assert api.get(f"/v1/job/{job_id}").json()["TaskGroups"][0]["Count"] == 4
    assert api.get(path).json()["TaskGroups"]["g"]["Desired"] == 4
    settle(api, job_id)


@pytest.mark.parametrize("job, body, status, message", [
    ("", {"Target": {"Group": ""}}, 400, "Missing job ID"),
    ("", {"Target": {"Group": "nope"}}, 400, "Missing job ID"),
    ("{ghost}", {"Target": {"Group": ""}}, 400, "missing task group name for scaling action"),
    ("{ghost}", {"Count": 1, "Target": {"Group": "nope"}}, 404, 'job "{ghost}" not found'),
    ("{known}", {"Count": 1, "Target": {"Group": "nope"}}, 400,
     'task group "nope" specified for scaling does not exist in job'),
    ("{known}", {"Count": 1, "Target": {"Job": "other", "Group": "g"}}, 400,
     "job ID in payload did not match URL"),
    ("{known}", {"Count": -1, "Target": {"Group": "g"}}, 400,
     "scaling action count can't be negative"),
    ("{known}", {"Count": 2, "Error": True, "Target": {"Group": "g"}}, 400,
     "scaling action should not contain count if error is true"),
    ("{known}", {"Count": "2", "Target": {"Group": "g"}}, 400,
     "Expected `int | null`, got `str` - at `Count`"),
    ("{known}", {"Count": 1, "Target": {"Group": "g"}, "Meta": "x"}, 400,
     "Expected `object | null`, got `str` - at `Meta`"),
    ("{known}", [1], 400, "Request body must be a JSON object"),
])
def test_scale_refusals_name_the_problem(api, job, body, status, message):
    known, ghost = uid("sck"), uid("ghost")
    register(api, batch_job(known))
    job = job.format(known=known, ghost=ghost)
    assert_error(put(api, f"/v1/job/{job}/scale", body), status,
                 message.format(known=known, ghost=ghost))
    assert api.get(f"/v1/job/{known}/scale").json()["TaskGroups"]["g"]["Events"] is None
    assert api.get(f"/v1/job/{known}").json()["Version"] == 0
    assert_error(api.delete(f"/v1/job/{known}/scale"), 405, "Invalid method")
    assert_error(api.get(f"/v1/job/{ghost}/scale"), 404, "job not found")
    settle(api, known)


def test_scale_status_blocks_until_an_event(api):
    job_id = uid("scw")
    register(api, batch_job(job_id))
    settle(api, job_id)
    r = api.get(f"/v1/job/{job_id}/scale")
    index = assert_read_headers(r)
    r = api.get(f"/v1/job/{job_id}/scale", params={"index": index, "wait": "50ms"})
    assert assert_read_headers(r) == index
    put(api, f"/v1/job/{job_id}/scale", {"Target": {"Group": "g"}, "Message": "hello"})
    r = api.get(f"/v1/job/{job_id}/scale", params={"index": index, "wait": "5s"})
    assert assert_read_headers(r) > index
    assert r.json()["TaskGroups"]["g"]["Events"][0]["Message"] == "hello"


# --- scaling policies --------------------------------------------------------------------


def policies(api, **params) -> list[dict]:
    r = api.get("/v1/scaling/policies", params=params)
    assert_read_headers(r)
    return r.json()


def test_scaling_policies_follow_the_jobs_scaling_blocks(api):
    job_id = uid("pol")
    policy = {"Min": 1, "Max": 4, "Policy": {"cooldown": "1m", "check": [{"x": [{"a": 1}]}]}}
    register(api, batch_job(job_id, scaling=policy))
    (stub,) = policies(api, job=job_id)
    assert set(stub) == {"ID", "Enabled", "Type", "Target", "CreateIndex", "ModifyIndex"}
    assert stub["Enabled"] and stub["Type"] == "horizontal"
    assert stub["Target"] == {"Namespace": "default", "Job": job_id, "Group": "g"}
    assert stub in policies(api) and stub in policies(api, type="horiz")
    assert policies(api, job=job_id, type="vertical") == []

    r = api.get(f"/v1/scaling/policy/{stub['ID']}")
    assert assert_read_headers(r) == stub["ModifyIndex"]
    full = r.json()
    assert (full["ID"], full["Min"], full["Max"], full["Enabled"]) == (stub["ID"], 1, 4, True)
    assert full["Policy"] == policy["Policy"] and full["Target"] == stub["Target"]
    assert api.get(f"/v1/job/{job_id}").json()["TaskGroups"][0]["Scaling"]["ID"] == stub["ID"]

    # a new version keeps the policy's ID; a changed block updates it in place
    register(api, batch_job(job_id, scaling={**policy, "Max": 6}, Meta={"v": "2"}))
    (again,) = policies(api, job=job_id)
    assert again["ID"] == stub["ID"] and again["CreateIndex"] == stub["CreateIndex"]
    assert again["ModifyIndex"] > stub["ModifyIndex"]
    assert api.get(f"/v1/scaling/policy/{stub['ID']}").json()["Max"] == 6
    # stopped: disabled; running again: enabled
    assert api.delete(f"/v1/job/{job_id}").status_code == 200
    assert [p["Enabled"] for p in policies(api, job=job_id)] == [False]
    register(api, batch_job(job_id, scaling={**policy, "Max": 6}, Meta={"v": "2"}))
    assert [p["Enabled"] for p in policies(api, job=job_id)] == [True]
    # the block removed: gone
    register(api, batch_job(job_id))
    assert policies(api, job=job_id) == []
    assert_error(api.get(f"/v1/scaling/policy/{stub['ID']}"), 404, "policy not found")
    # purged with its job
    register(api, batch_job(job_id, scaling=policy))
    assert len(policies(api, job=job_id)) == 1
    settle(api, job_id)
    assert api.delete(f"/v1/job/{job_id}", params={"purge": "true"}).status_code == 200
    assert policies(api, job=job_id) == []
    assert_error(api.put("/v1/scaling/policies"), 405, "Invalid method")


def test_scaling_block_errors_are_400(api):
    job_id = uid("polbad")
    r = put(api, "/v1/jobs", {"Job": batch_job(job_id, count=5, scaling={"Min": 1, "Max": 3})})
    assert_error(r, 400, contains="task group count must not be greater than maximum count "
                                  "in scaling policy")
    r = put(api, "/v1/jobs", {"Job": batch_job(job_id, scaling={"Min": 1})})
    assert_error(r, 400, contains="maximum count must be specified and non-negative")
    r = put(api, "/v1/jobs", {"Job": batch_job(job_id, scaling={"Min": "one"})})
    assert_error(r, 400, contains="TaskGroups[0].Scaling.Min")
    assert api.get(f"/v1/job/{job_id}").status_code == 404


def test_hcl_scaling_block_reaches_the_policies(api):
    job_id = uid("polhcl")
    hcl = f'''
job "{job_id}" {{
  type = "batch"
  group "g" {{
    scaling {{
      min = 2
      max = 8
      policy {{
        cooldown = "2m"
        check "cpu" {{
          source = "prometheus"
        }}
      }}
    }}
    task "t" {{
      driver = "mock"
    }}
  }}
}}'''
    r = put(api, "/v1/jobs/parse", {"JobHCL": hcl, "Canonicalize": True})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["TaskGroups"][0]["Count"] == 2
    register(api, job)
    (stub,) = policies(api, job=job_id)
    full = api.get(f"/v1/scaling/policy/{stub['ID']}").json()
    assert (full["Min"], full["Max"]) == (2, 8)
    assert full["Policy"] == {"cooldown": "2m", "check": [{"cpu": [{"source": "prometheus"}]}]}
    settle(api, job_id)


# --- evaluations ------------------------------------------------------------------------------


def test_related_evals_follow_the_blocked_eval_chain(api):
    job_id = uid("rel")
    ev_id = register(api, batch_job(job_id))["EvalID"]      # no nodes: a blocked eval follows
    settle(api, job_id)
    r = api.get(f"/v1/evaluation/{ev_id}")
    assert r.json()["RelatedEvals"] is None
    ev = api.get(f"/v1/evaluation/{ev_id}", params={"related": "true"}).json()
    (blocked,) = ev["RelatedEvals"]
    assert blocked["ID"] == ev["BlockedEval"] and blocked["PreviousEval"] == ev_id
    assert blocked["Status"] == "blocked" and blocked["TriggeredBy"] == "queued-allocs"
    assert set(blocked) == {"ID", "Namespace", "Priority", "Type", "TriggeredBy", "JobID",
                            "NodeID", "DeploymentID", "Status", "StatusDescription",
                            "WaitUntil", "NextEval", "PreviousEval", "BlockedEval",
                            "CreateIndex", "ModifyIndex", "CreateTime", "ModifyTime"}
    back = api.get(f"/v1/evaluation/{blocked['ID']}", params={"related": "1"}).json()
    assert [x["ID"] for x in back["RelatedEvals"]] == [ev_id]
    assert_error(api.get(f"/v1/evaluation/{ev_id}", params={"related": "maybe"}), 400,
                 startswith='Failed to parse value of "related"')


@pytest.mark.parametrize("body, message", [
    (None, "evals must be deleted by either ID or filter"),
    ({"EvalIDs": [UUID], "Filter": "Status == \"blocked\""},
     "evals cannot be deleted by both ID and filter"),
    ({"EvalIDs": [UUID] * 7282}, "request includes 7282 evals IDs, must be 7281 or fewer"),
    ({"EvalIDs": "x"}, "EvalIDs: expected an array of strings"),
    ({"EvalIDs": [UUID]}, "eval broker is enabled; eval broker must be paused to delete evals"),
    ({"Filter": "Status == \"blocked\""},
     "eval broker is enabled; eval broker must be paused to delete evals"),
])
def test_deleting_evals_is_refused_while_the_broker_runs(api, body, message):
    before = len(api.get("/v1/evaluations").json())
    assert_error(api.request("DELETE", "/v1/evaluations", json=body), 400, message)
    assert len(api.get("/v1/evaluations").json()) >= before


# --- allocation stop and deployments (with a node) ---------------------------------------------


def live(c: httpx.Client, job_id: str) -> list[dict]:
    return [a for a in c.get(f"/v1/job/{job_id}/allocations").json()
            if a["DesiredStatus"] == "run" and a["ClientStatus"] == "running"]


def test_alloc_stop_migrates_the_allocation(node_api):
    c = node_api
    job_id = uid("stop")
    register(c, batch_job(job_id, count=2))
    wait_until(lambda: len(live(c, job_id)) == 2, 30, "two running allocations")
    victim = live(c, job_id)[0]

    r = put(c, f"/v1/allocation/{victim['ID']}/stop", method="POST")
    index = assert_write_headers(r)
    out = r.json()
    assert set(out) == {"EvalID", "Index"} and out["Index"] == index
    ev = c.get(f"/v1/evaluation/{out['EvalID']}").json()
    assert ev["TriggeredBy"] == "alloc-stop" and ev["JobID"] == job_id

    def replaced():
        allocs = c.get(f"/v1/job/{job_id}/allocations").json()
        new = [a for a in allocs if a["ID"] != victim["ID"] and a["DesiredStatus"] == "run"]
        return len(new) == 2 and all(a["ClientStatus"] == "running" for a in new) and new
    new = wait_until(replaced, 30, "a running replacement")
    old = c.get(f"/v1/allocation/{victim['ID']}").json()
    assert old["DesiredStatus"] == "stop" and old["DesiredDescription"] == "alloc is being migrated"
    assert old["DesiredTransition"]["Migrate"] is True
    assert old["ModifyIndex"] >= index
    successor = [a for a in new if c.get(f"/v1/allocation/{a['ID']}").json()
                 ["PreviousAllocation"] == victim["ID"]]
    assert len(successor) == 1 and successor[0]["Name"] == victim["Name"]
    assert c.get(f"/v1/evaluation/{out['EvalID']}").json()["Status"] == "complete"

    missing = str(uuid.uuid4())
    assert_error(put(c, f"/v1/allocation/{missing}/stop"), 404, f'Unknown allocation "{missing}"')
    assert_error(c.get(f"/v1/allocation/{victim['ID']}/stop"), 405, "Invalid method")
    assert c.delete(f"/v1/job/{job_id}", params={"purge": "true"}).status_code == 200


def test_evals_carry_the_deployment_they_start_or_continue(node_api):
    c = node_api
    job_id = uid("dep")
    job = {"ID": job_id, "Type": "service", "TaskGroups": [{
        "Name": "g", "Count": 1,
        "Update": {"MaxParallel": 1, "MinHealthyTime": 100_000_000,
                   "HealthyDeadline": 30_000_000_000},
        "Tasks": [{"Name": "t", "Driver": "mock", "Config": {"run_for": "1h"}}]}]}
    first = register(c, job)["EvalID"]
    settle(c, job_id)
    d1 = c.get(f"/v1/job/{job_id}/deployment").json()
    assert c.get(f"/v1/evaluation/{first}").json()["DeploymentID"] == d1["ID"]

    job["TaskGroups"][0]["Tasks"][0]["Env"] = {"V": "2"}
    second = register(c, job)["EvalID"]
    settle(c, job_id)
    d2 = c.get(f"/v1/job/{job_id}/deployment").json()
    assert d2["ID"] != d1["ID"] and d2["JobVersion"] == 1
    assert c.get(f"/v1/evaluation/{second}").json()["DeploymentID"] == d2["ID"]
    wait_until(lambda: c.get(f"/v1/deployment/{d2['ID']}").json()["Status"] == "successful",
               30, "the rollout to succeed")
    watcher = [e for e in c.get(f"/v1/job/{job_id}/evaluations").json()
               if e["TriggeredBy"] == "deployment-watcher"]
    assert all(e["DeploymentID"] in (d1["ID"], d2["ID"]) for e in watcher)
    assert c.delete(f"/v1/job/{job_id}", params={"purge": "true"}).status_code == 200


def test_job_run_follows_the_deployment_named_by_its_eval(node_api, tmp_path):
    job_id = uid("run")
    path = tmp_path / "svc.nomad.hcl"
    path.write_text(f'''
job "{job_id}" {{
  group "g" {{
    update {{
      max_parallel     = 1
      min_healthy_time = "100ms"
      healthy_deadline = "30s"
    }}
    task "t" {{
      driver = "mock"
      config {{
        run_for = "1h"
      }}
    }}
  }}
}}''')
    p = subprocess.run([sys.executable, "-m", "caravan", "job", "run", str(path)], cwd=ROOT,
                       capture_output=True, timeout=60,
                       env={**os.environ, "CARAVAN_ADDR": str(node_api.base_url).rstrip("/")})
    out = p.stdout.decode()
    assert p.returncode == 0, (out, p.stderr.decode())
    deployment = node_api.get(f"/v1/job/{job_id}/deployment").json()
    assert f'Monitoring deployment "{deployment["ID"][:8]}"' in out
    assert f'Deployment "{deployment["ID"][:8]}" successful' in out
    assert node_api.delete(f"/v1/job/{job_id}", params={"purge": "true"}).status_code == 200


def caravan(node_api, *argv: str) -> tuple[int, str]:
    p = subprocess.run([sys.executable, "-m", "caravan", *argv], cwd=ROOT,
                       capture_output=True, timeout=60,
                       env={**os.environ, "CARAVAN_ADDR": str(node_api.base_url).rstrip("/")})
    return p.returncode, p.stdout.decode() + p.stderr.decode()


def test_cli_job_scale_and_alloc_stop(node_api):
    c = node_api
    job_id = uid("cli")
    register(c, batch_job(job_id, count=1))
    wait_until(lambda: len(live(c, job_id)) == 1, 30, "a running allocation")
    code, out = caravan(c, "job", "scale", job_id, "2")         # the only group
    assert code == 0 and 'Monitoring evaluation "' in out, out
    assert c.get(f"/v1/job/{job_id}").json()["TaskGroups"][0]["Count"] == 2
    (event,) = c.get(f"/v1/job/{job_id}/scale").json()["TaskGroups"]["g"]["Events"]
    assert event["Count"] == 2 and event["Message"] == "submitted using the caravan CLI"
    code, out = caravan(c, "job", "scale", job_id, "nope", "3")
    assert code == 1 and 'task group "nope" specified for scaling does not exist' in out
    wait_until(lambda: len(live(c, job_id)) == 2, 30, "two running allocations")

    victim = live(c, job_id)[0]["ID"]
    code, out = caravan(c, "alloc", "stop", "-detach", victim[:8])
    assert code == 0
    ev = c.get(f"/v1/evaluation/{out.strip()}").json()
    assert ev["TriggeredBy"] == "alloc-stop"
    wait_until(lambda: c.get(f"/v1/allocation/{victim}").json()["DesiredStatus"] == "stop",
               30, "the allocation to be stopped")
    wait_until(lambda: len(live(c, job_id)) == 2, 30, "a running replacement")
    victim = live(c, job_id)[0]["ID"]
    code, out = caravan(c, "alloc", "stop", victim)
    assert code == 0 and 'finished with status "complete"' in out, out
    assert c.delete(f"/v1/job/{job_id}", params={"purge": "true"}).status_code == 200


def test_python_nomad_scaling_policies_and_alloc_stop(node_api):
    import nomad
    c = node_api
    host, port = c.base_url.host, c.base_url.port
    pn = nomad.Nomad(host=host, port=port, timeout=10)
    job_id = uid("pyn")
    register(c, batch_job(job_id, count=1, scaling={"Min": 0, "Max": 3}))
    (stub,) = [p for p in pn.scaling.get_scaling_policies() if p["Target"]["Job"] == job_id]
    assert pn.scaling.get_scaling_policies(job=job_id, type_="horizontal") == [stub]
    assert pn.scaling.get_scaling_policy(stub["ID"])["Max"] == 3
    wait_until(lambda: len(live(c, job_id)) == 1, 30, "a running allocation")
    victim = live(c, job_id)[0]["ID"]
    reply = pn.allocation.stop_allocation(victim)
    assert c.get(f"/v1/evaluation/{reply['EvalID']}").json()["TriggeredBy"] == "alloc-stop"
    wait_until(lambda: [a["ID"] for a in live(c, job_id)] not in ([], [victim]), 30,
               "a replacement")
    assert c.delete(f"/v1/job/{job_id}", params={"purge": "true"}).status_code == 200


def test_cli_scaling_policy_list_and_info(node_api):
    c = node_api
    job_id = uid("clipol")
    register(c, batch_job(job_id, count=0, scaling={"Min": 0, "Max": 7,
                                                     "Policy": {"cooldown": "3m"}}))
    (stub,) = c.get("/v1/scaling/policies", params={"job": job_id}).json()
    code, out = caravan(c, "scaling", "policy", "list", "-job", job_id)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0].split() == ["ID", "Enabled", "Type", "Target"]
    assert lines[1].split() == [stub["ID"][:8], "true", "horizontal",
                                f"Namespace:default,Job:{job_id},Group:g"]
    code, out = caravan(c, "scaling", "policy", "info", stub["ID"][:8])
    assert code == 0, out
    assert f"ID      = {stub['ID']}" in out and "Max     = 7" in out and '"cooldown": "3m"' in out
    code, out = caravan(c, "scaling", "policy", "list", "-job", uid("none"))
    assert code == 0 and "No policies found" in out
    assert c.get("/v1/scaling/policies", params={"prefix": stub["ID"][:6]}).json()[0] == stub
    assert c.delete(f"/v1/job/{job_id}", params={"purge": "true"}).status_code == 200
