"""Host volumes end to end: a server and two client agents, one declaring a read-write
host volume and the other a read-only one (``[[clients.host_volume]]``); jobs that need
a volume land only where it is offered, read files through it, or wait in a blocked
evaluation that says why."""
from __future__ import annotations

import uuid

import httpx
import pytest

from tests.procs import dev_server, make_cluster, wait_until
from tests.test_client import full_alloc, job, logs, shell, wait_allocs


def host_job(job_id: str, tasks: list[dict], volumes: dict, **kw) -> dict:
    body = job(job_id, tasks, **kw)
    body["Job"]["TaskGroups"][0]["Volumes"] = volumes
    return body


def evals_with_failures(http, job_id: str):
    evals = http.get(f"/v1/job/{job_id}/evaluations").json()
    failed = [e for e in evals if e["Status"] == "complete" and e.get("FailedTGAllocs")]
    blocked = [e for e in evals if e["Status"] == "blocked"]
    return (failed[0], blocked[0]) if failed and blocked else None


@pytest.fixture(scope="module")
def cluster(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("host-volumes")
    shared, configs = tmp / "shared", tmp / "configs"
    shared.mkdir()
    configs.mkdir()
    (shared / "hello.txt").write_text("hello from the host volume\n")
    (configs / "app.conf").write_text("answer = 42\n")
    c1 = (f'raw_exec = true\n[[clients.host_volume]]\nname = "shared"\npath = "{shared}"\n')
    c2 = (f'raw_exec = true\n[[clients.host_volume]]\nname = "configs"\npath = "{configs}"\n'
          f'read_only = true\n')
    cl = make_cluster(tmp, n=1, clients=2, client_toml=[c1, c2])
    cl.start()
    http = httpx.Client(base_url=cl.servers[0].url, timeout=10)
    try:
        nodes = wait_until(lambda: (lambda ns: ns if len(ns) == 2 else None)(
            [n for n in http.get("/v1/nodes").json() if n["Status"] == "ready"]),
            30, "two ready nodes")
        yield http, {n["Name"]: n["ID"] for n in nodes}, tmp
    finally:
        http.close()
        cl.stop()


def test_nodes_advertise_their_host_volumes(cluster):
    http, nodes, tmp = cluster
    c1 = http.get(f"/v1/node/{nodes['c1']}").json()
    assert c1["HostVolumes"] == {"shared": {"Name": "shared", "Path": str(tmp / "shared"),
                                            "ReadOnly": False}}
    stub = next(n for n in http.get("/v1/nodes").json() if n["ID"] == nodes["c2"])
    assert stub["HostVolumes"] == {"configs": {"Name": "configs", "Path": str(tmp / "configs"),
                                               "ReadOnly": True}}


def test_a_job_needing_a_host_volume_lands_where_it_is_and_reads_it(cluster):
    http, nodes, _ = cluster
    jid = f"vol-{uuid.uuid4().hex[:6]}"
    task = shell("reader", "cat srv/data/hello.txt; ls -l srv | grep -c -- '->'",
                 VolumeMounts=[{"Volume": "data", "Destination": "/srv/data"}])
    http.post("/v1/jobs", json=host_job(jid, [task], {
        "data": {"Type": "host", "Source": "shared"}}, count=3)).raise_for_status()
    allocs = wait_allocs(http, jid, lambda a: len(a) == 3 and all(
        x["ClientStatus"] == "complete" for x in a), timeout=60, what="3 complete allocs")
    assert {a["NodeID"] for a in allocs} == {nodes["c1"]}
    for a in allocs:
        alloc = full_alloc(http, a["ID"])
        # c2 is filtered when it was evaluated (later selects reuse its class's answer)
        assert alloc["Metrics"]["ConstraintFiltered"] in (
            None, {"missing compatible host volumes": 1}, {"computed class ineligible": 1})
        assert logs(http, a["ID"], "reader") == "hello from the host volume\n1\n"


def test_read_only_volumes_serve_only_read_only_requests(cluster):
    http, nodes, _ = cluster
    reader = shell("conf", "cat etc/app.conf",
                   VolumeMounts=[{"Volume": "c", "Destination": "etc", "ReadOnly": True}])
    ok = f"ro-{uuid.uuid4().hex[:6]}"
    http.post("/v1/jobs", json=host_job(ok, [reader], {
        "c": {"Type": "host", "Source": "configs", "ReadOnly": True}})).raise_for_status()
    (a,) = wait_allocs(http, ok, lambda a: a[0]["ClientStatus"] == "complete", timeout=60)
    assert a["NodeID"] == nodes["c2"]
    assert logs(http, a["ID"], "conf") == "answer = 42\n"

    rw = f"rw-{uuid.uuid4().hex[:6]}"
    http.post("/v1/jobs", json=host_job(rw, [reader], {
        "c": {"Type": "host", "Source": "configs"}})).raise_for_status()
    failed, _blocked = wait_until(lambda: evals_with_failures(http, rw), 30,
                                  "a failed placement")
    assert failed["FailedTGAllocs"]["g"]["ConstraintFiltered"] == {
        "missing compatible host volumes": 2}


def test_no_client_has_the_volume_blocks_the_eval(cluster):
    http, _, _ = cluster
    jid = f"novol-{uuid.uuid4().hex[:6]}"
    http.post("/v1/jobs", json=host_job(jid, [shell("t", "true")], {
        "d": {"Type": "host", "Source": "nowhere"}})).raise_for_status()
    failed, blocked = wait_until(lambda: evals_with_failures(http, jid), 30,
                                 "a failed placement and a blocked eval")
    metric = failed["FailedTGAllocs"]["g"]
    assert metric["ConstraintFiltered"] == {"missing compatible host volumes": 2}
    assert metric["NodesFiltered"] == 2 and metric["NodesEvaluated"] == 2
    assert failed["BlockedEval"] == blocked["ID"]


def test_dev_agent_host_volume_flag(tmp_path):
    (tmp_path / "vol").mkdir()
    (tmp_path / "vol" / "x.txt").write_text("from the flag\n")
    agent = dev_server(tmp_path, client=True,
                       extra_args=("-host-volume", f"v={tmp_path / 'vol'}:ro")).start()
    http = httpx.Client(base_url=agent.url, timeout=10)
    try:
        node = wait_until(lambda: [n for n in http.get("/v1/nodes").json()
                                   if n["Status"] == "ready"], 30, "the dev node")[0]
        assert node["HostVolumes"]["v"]["ReadOnly"] is True
        jid = f"flag-{uuid.uuid4().hex[:6]}"
        task = shell("t", "cat v/x.txt",
                     VolumeMounts=[{"Volume": "v", "Destination": "v", "ReadOnly": True}])
        http.post("/v1/jobs", json=host_job(jid, [task], {
            "v": {"Type": "host", "Source": "v", "ReadOnly": True}})).raise_for_status()
        (a,) = wait_allocs(http, jid, lambda a: a[0]["ClientStatus"] == "complete", timeout=30)
        assert logs(http, a["ID"], "t") == "from the flag\n"
    finally:
        http.close()
        agent.stop()
    missing = dev_server(tmp_path / "m", client=True,
                         extra_args=("-host-volume", f"v={tmp_path / 'absent'}"))
    (tmp_path / "m").mkdir()
    missing.start()
    assert missing.proc.wait(30) == 1
    assert "is not an existing directory" in missing.log_path.read_text()
