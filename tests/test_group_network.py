"""Group ``network`` blocks end to end (Nomad >= 0.12), on a real `caravan agent -dev`
with its client: the scheduler's ports reach the allocation (``SharedResources``,
``AllocatedResources.Shared.Networks`` and ``.Ports``) and the task (``NOMAD_PORT_*``
in its arguments, templates and service checks); a static port is reserved once per
node; task-level networks still work, with Nomad's deprecation warning."""
from __future__ import annotations

from pathlib import Path

import httpx
import pytest

from caravan.server.commands import main
from tests.procs import dev_with_client, wait_until

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "web.nomad.hcl"
GO_REQUESTS = Path(__file__).parent / "fixtures" / "go-client-requests"
GO_SERVICE = GO_REQUESTS / "register-service-group-network.json"
TASK_NETWORK_WARNING = ('Task "app" has warnings: task network resources have been deprecated '
                        'as of Nomad 0.12.0. Please configure networking via group network '
                        'block.')


@pytest.fixture(scope="module")
def dev(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("groupnet-dev")
    with dev_with_client(tmp) as (http, agent):
        yield http


def register(http: httpx.Client, body: dict | bytes) -> dict:
    """Register a job; bytes are sent as they are (a Go client body, nulls and all)."""
    r = (http.put("/v1/jobs", content=body) if isinstance(body, bytes)
         else http.put("/v1/jobs", json=body))
    assert r.status_code == 200, r.text
    return r.json()


def evaluation(http: httpx.Client, eval_id: str) -> dict:
    """The evaluation once the scheduler is done with it."""
    def done():
        ev = http.get(f"/v1/evaluation/{eval_id}").json()
        return ev if ev["Status"] not in ("pending",) else None
    return wait_until(done, 30, f"evaluation {eval_id}")


def running_allocs(http: httpx.Client, job_id: str, count: int) -> list[dict]:
    def ready():
        allocs = [a for a in http.get(f"/v1/job/{job_id}/allocations").json()
                  if a["ClientStatus"] == "running"]
        return allocs if len(allocs) == count else None
    stubs = wait_until(ready, 60, f"{count} running allocations of {job_id}")
    return [http.get(f"/v1/allocation/{a['ID']}").json() for a in stubs]


def stop(http: httpx.Client, job_id: str) -> None:
    """Stop the job and wait until the client has stopped its allocations."""
    r = http.delete(f"/v1/job/{job_id}")
    assert r.status_code == 200, r.text
    evaluation(http, r.json()["EvalID"])
    wait_until(lambda: all(a["ClientStatus"] != "running"
                           for a in http.get(f"/v1/job/{job_id}/allocations").json()),
               30, f"{job_id} to stop")


def port_of(alloc: dict, label: str) -> dict:
    (port,) = [p for p in alloc["AllocatedResources"]["Shared"]["Ports"] if p["Label"] == label]
    return port


def get(url: str) -> httpx.Response:
    return httpx.get(url, timeout=5)


def test_example_serves_http_on_its_dynamic_port(dev):
    http = dev
    r = http.put("/v1/jobs/parse", json={"JobHCL": EXAMPLE.read_text(), "Canonicalize": True})
    assert r.status_code == 200, r.text
    job = r.json()
    assert job["TaskGroups"][0]["Networks"][0]["DynamicPorts"] == [
        {"Label": "http", "Value": 0, "To": 0, "HostNetwork": "default"}]
    out = register(http, {"Job": job})
    assert out["Warnings"] == ""
    assert evaluation(http, out["EvalID"])["FailedTGAllocs"] is None

    (alloc,) = running_allocs(http, "website", 1)
    port = port_of(alloc, "http")
    assert port["HostIP"] == "127.0.0.1" and 20000 <= port["Value"] <= 32000
    assert port["To"] == 0
    shared = alloc["AllocatedResources"]["Shared"]
    (net,) = shared["Networks"]
    assert net["IP"] == "127.0.0.1" and net["DynamicPorts"][0]["Value"] == port["Value"]
    assert alloc["SharedResources"]["Networks"] == shared["Networks"]
    assert alloc["SharedResources"]["DiskMB"] == shared["DiskMB"] == 300
    # the port answers HTTP, and the page the template wrote names the same address
    url = f"http://127.0.0.1:{port['Value']}"
    page = wait_until(lambda: get(f"{url}/local/index.html"), 30, "the web server to answer")
    assert page.status_code == 200
    assert page.text == f"served by website.web[0] on 127.0.0.1:{port['Value']}\n"
    # the service check (health_check = "checks") found the port by its label
    healthy = wait_until(
        lambda: (http.get(f"/v1/allocation/{alloc['ID']}").json()["DeploymentStatus"]
                 or {}).get("Healthy"), 30, "the http check to pass")
    assert healthy is True
    stop(http, "website")


def test_go_client_validate_and_plan_of_the_service_job(dev):
    """Before it is registered: the Go client's validate and plan bodies of the same
    job. The plan places one allocation on the one node; the static admin port leaves
    no room for the other two."""
    http = dev
    body = (GO_REQUESTS / "validate-service-group-network.json").read_bytes()
    r = http.put("/v1/validate/job", content=body)
    assert r.status_code == 200, r.text
    assert r.json()["Error"] == "" and r.json()["Warnings"] == ""
    body = (GO_REQUESTS / "plan-service-group-network.json").read_bytes()
    r = http.put("/v1/job/web/plan", content=body)
    assert r.status_code == 200, r.text
    plan = r.json()
    assert plan["Diff"]["Type"] == "Added"
    failed = plan["FailedTGAllocs"]["web"]
    assert failed["DimensionExhausted"] == {"network: reserved port collision admin=9100": 1}
    assert failed["CoalescedFailures"] == 1
    assert plan["Annotations"]["DesiredTGUpdates"]["web"]["Place"] == 3


def alloc_status(http: httpx.Client, capsys, monkeypatch, alloc_id: str) -> list[str]:
    """``caravan alloc status ID`` run in-process against the dev agent."""
    monkeypatch.setenv("CARAVAN_ADDR", str(http.base_url).rstrip("/"))
    capsys.readouterr()
    assert main(["alloc", "status", alloc_id]) == 0
    return [line.rstrip() for line in capsys.readouterr().out.splitlines()]


def test_go_client_service_job_gets_its_ports_and_the_static_one_once(dev, capsys,
                                                                      monkeypatch):
    """The Go client's service job: count 3 of a group with dynamic ``http`` and static
    ``admin`` (9100). One node holds 9100 once: one allocation runs, the others fail
    with Nomad's port-collision dimension."""
    http = dev
    raw = GO_SERVICE.read_bytes()
    out = register(http, raw)
    ev = evaluation(http, out["EvalID"])
    failed = ev["FailedTGAllocs"]["web"]
    assert failed["DimensionExhausted"] == {"network: reserved port collision admin=9100": 1}
    assert (failed["NodesEvaluated"], failed["NodesExhausted"], failed["CoalescedFailures"]) == \
        (1, 1, 1)
    assert ev["BlockedEval"]
    assert ev["QueuedAllocations"] == {"web": 2}

    (alloc,) = running_allocs(http, "web", 1)
    http_port, admin = port_of(alloc, "http"), port_of(alloc, "admin")
    assert admin == {"Label": "admin", "Value": 9100, "To": 0, "HostIP": "127.0.0.1"}
    assert 20000 <= http_port["Value"] <= 32000
    net = alloc["AllocatedResources"]["Shared"]["Networks"][0]
    assert [p["Value"] for p in net["ReservedPorts"]] == [9100]
    assert alloc["Resources"]["Networks"] == alloc["AllocatedResources"]["Shared"]["Networks"]
    # ${NOMAD_PORT_http} in the task's args: python's http.server listens there, and
    # the template rendered {{ env "NOMAD_PORT_http" }} into local/app.conf
    url = f"http://127.0.0.1:{http_port['Value']}"
    conf = wait_until(lambda: get(f"{url}/local/app.conf"), 30, "the Go client's job to serve")
    assert conf.status_code == 200 and conf.text == f"port={http_port['Value']}\n"
    # `caravan alloc status` lists the addresses as Nomad's CLI does
    lines = alloc_status(http, capsys, monkeypatch, alloc["ID"])
    at = lines.index('Allocation Addresses (mode = "host"):')
    assert lines[at + 1].split() == ["Label", "Dynamic", "Address"]
    assert lines[at + 2].split() == ["*admin", "yes", "127.0.0.1:9100"]
    assert lines[at + 3].split() == ["*http", "yes", f"127.0.0.1:{http_port['Value']}"]
    stop(http, "web")


def test_static_port_is_reserved_once_per_node(dev):
    http = dev
    group = {"Name": "g", "Count": 2,
             "Networks": [{"ReservedPorts": [{"Label": "admin", "Value": 9200}]}],
             "Tasks": [{"Name": "t", "Driver": "mock", "Config": {"run_for": "1h"},
                        "Resources": {"CPU": 10, "MemoryMB": 10}}]}
    out = register(http, {"Job": {"ID": "static-once", "Type": "service",
                                  "TaskGroups": [group]}})
    ev = evaluation(http, out["EvalID"])
    failed = ev["FailedTGAllocs"]["g"]
    assert failed["DimensionExhausted"] == {"network: reserved port collision admin=9200": 1}
    assert failed["NodesExhausted"] == 1 and failed["CoalescedFailures"] == 0
    (alloc,) = running_allocs(http, "static-once", 1)
    assert port_of(alloc, "admin")["Value"] == 9200
    # the plan dry run says the same of a third one
    group["Count"] = 3
    r = http.put("/v1/job/static-once/plan", json={"Job": {"ID": "static-once",
                                                           "Type": "service",
                                                           "TaskGroups": [group]}})
    assert r.status_code == 200, r.text
    assert r.json()["FailedTGAllocs"]["g"]["DimensionExhausted"] == {
        "network: reserved port collision admin=9200": 1}
    stop(http, "static-once")


def test_task_level_networks_still_work_with_nomads_warning(dev):
    http = dev
    job = {"ID": "legacy-net", "Type": "service", "TaskGroups": [{
        "Name": "g", "Count": 1,
        "Tasks": [{"Name": "app", "Driver": "raw_exec",
                   "Config": {"command": "python3",
                              "args": ["-m", "http.server", "--bind", "${NOMAD_IP_web}",
                                       "${NOMAD_PORT_web}"]},
                   "Resources": {"CPU": 100, "MemoryMB": 64,
                                 "Networks": [{"DynamicPorts": [{"Label": "web"}]}]}}]}]}
    r = http.put("/v1/validate/job", json={"Job": job})
    assert r.status_code == 200 and r.json()["Warnings"] == 'Group "g" has warnings: ' + \
        TASK_NETWORK_WARNING, r.text
    r = http.put("/v1/job/legacy-net/plan", json={"Job": job})
    assert r.status_code == 200 and TASK_NETWORK_WARNING in r.json()["Warnings"], r.text
    out = register(http, {"Job": job})
    assert out["Warnings"] == 'Group "g" has warnings: ' + TASK_NETWORK_WARNING

    (alloc,) = running_allocs(http, "legacy-net", 1)
    (net,) = alloc["AllocatedResources"]["Tasks"]["app"]["Networks"]
    port = net["DynamicPorts"][0]["Value"]
    assert alloc["AllocatedResources"]["Shared"]["Ports"] is None
    assert alloc["SharedResources"]["Networks"] is None
    page = wait_until(lambda: get(f"http://{net['IP']}:{port}/"), 30, "the task-network server")
    assert page.status_code == 200
    stop(http, "legacy-net")
