"""Node, allocation, evaluation and deployment reads.

Nodes and allocations cannot be created over HTTP yet, so content is tested in process:
``build_app`` over a small agent whose FSM is fed log entries directly. The real dev
agent covers what needs no content: empty lists, headers, errors.
"""
from __future__ import annotations

import asyncio
import time
import uuid

import httpx
import pytest

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.apply import FSM
from caravan.fsm.store import Txn
from caravan.fsm.structs import (
    Allocation,
    AllocMetric,
    Deployment,
    DeploymentState,
    DriverInfo,
    Evaluation,
    Job,
    NetworkResource,
    Node,
    NodeCpuResources,
    NodeDiskResources,
    NodeMemoryResources,
    NodeReservedNetworkResources,
    NodeReservedResources,
    NodeResources,
    Port,
    Resources,
    Task,
    TaskGroup,
    TaskState,
)
from caravan.server.http.app import build_app
from caravan.server.http.job_reads import alloc_stub
from caravan.server.notify import Notifier
from tests.http.helpers import assert_error, assert_read_headers, index_of, register, service_job, uid

NODE_A = "4a1f0000-0000-4000-8000-000000000001"
NODE_B = "4a2e0000-0000-4000-8000-000000000002"
EVAL_1 = "e1000000-0000-4000-8000-000000000001"
EVAL_2 = "e2000000-0000-4000-8000-000000000002"
ALLOC_1 = "a1000000-0000-4000-8000-000000000001"
ALLOC_2 = "a1b00000-0000-4000-8000-000000000002"
DEPLOY_1 = "d1000000-0000-4000-8000-000000000001"
MISSING = "00000000-0000-4000-8000-00000000dead"

NODE_STUB_FIELDS = {"Address", "ID", "Datacenter", "Name", "NodeClass", "NodePool", "Version",
                    "Drain", "SchedulingEligibility", "Status", "StatusDescription", "Drivers",
                    "HostVolumes", "LastDrain", "CreateIndex", "ModifyIndex"}
ALLOC_FIELDS = {"ID", "Namespace", "EvalID", "Name", "NodeID", "NodeName", "JobID", "Job",
                "TaskGroup", "Resources", "TaskResources", "SharedResources",
                "AllocatedResources", "DesiredStatus", "DesiredDescription", "ClientStatus",
                "ClientDescription", "TaskStates", "DeploymentID", "DeploymentStatus",
                "PreviousAllocation", "NextAllocation", "Metrics", "CreateIndex", "ModifyIndex",
                "AllocModifyIndex", "CreateTime", "ModifyTime", "FollowupEvalID",
                "DesiredTransition", "RescheduleTracker", "PreemptedAllocations",
                "PreemptedByAllocation"}

# every route, for the method checks
ITEM_ROUTES = [f"/v1/node/{NODE_A}", f"/v1/node/{NODE_A}/allocations",
               f"/v1/allocation/{ALLOC_1}", f"/v1/evaluation/{EVAL_1}",
               f"/v1/evaluation/{EVAL_1}/allocations", f"/v1/deployment/{DEPLOY_1}",
               f"/v1/deployment/allocations/{DEPLOY_1}"]
LIST_ROUTES = ["/v1/nodes", "/v1/allocations", "/v1/evaluations", "/v1/deployments"]


# --- an in-process agent ------------------------------------------------------------------


class FakeRaft:
    def __init__(self):
        self.barriers = 0

    def leader(self):
        return "127.0.0.1:4647"

    def last_contact_ms(self):
        return 0

    async def read_barrier(self):
        self.barriers += 1


class FakeAgent:
    """What the HTTP layer uses of an agent: a real FSM fed entries in index order."""

    def __init__(self, loop):
        self.fsm = FSM()
        self.raft = FakeRaft()
        self.notifier = Notifier(loop)
        self.fsm.on_commit = self.notifier.notify_threadsafe
        self.index = 0

    def apply(self, body: e.Request) -> dict:
        self.index += 1
        body.RequestID = f"req-{self.index}"
        result = self.fsm.apply(self.index, e.encode(body))
        assert "Error" not in result, result
        return result

    def put_deployment(self, d: Deployment) -> None:
        """No log entry writes deployments yet: install the row as a snapshot would."""
        self.index += 1
        txn = Txn(self.fsm.state, self.index)
        txn.put(t.DEPLOYMENTS, d)
        self.fsm.restore(txn.commit())


def node_a() -> Node:
    return Node(
        ID=NODE_A, SecretID="top-secret", Datacenter="dc1", Name="alpha",
        HTTPAddr="10.0.0.5:4646", NodeClass="gpu", Status="ready", ComputedClass="v1:1",
        Attributes={"os.name": "ubuntu", "nomad.version": "1.6.2", "kernel.name": "linux"},
        NodeResources=NodeResources(
            Cpu=NodeCpuResources(CpuShares=4000, TotalCpuCores=4),
            Memory=NodeMemoryResources(MemoryMB=8192), Disk=NodeDiskResources(DiskMB=100_000),
            Networks=[NetworkResource(Mode="host", Device="eth0", IP="10.0.0.5",
                                      CIDR="10.0.0.5/32", MBits=1000)]),
        ReservedResources=NodeReservedResources(
            Cpu=NodeCpuResources(CpuShares=100), Memory=NodeMemoryResources(MemoryMB=256),
            Disk=NodeDiskResources(DiskMB=1000),
            Networks=NodeReservedNetworkResources(ReservedHostPorts="22,8000-8002")),
        Drivers={"docker": DriverInfo(Detected=True, Healthy=True, HealthDescription="ok")})


def node_b() -> Node:
    # no port in its address, and its own pre-0.9 resources
    return Node(ID=NODE_B, SecretID="s2", Datacenter="dc2", Name="beta", HTTPAddr="10.0.0.6",
                Status="initializing", Attributes={"os.name": "debian"},
                Resources=Resources(CPU=1000, MemoryMB=1024, DiskMB=5000, IOPS=0))


def job() -> Job:
    return Job(ID="web", Name="web", Region="global", Namespace="default", Type="service",
               Priority=50, Datacenters=["dc1"],
               TaskGroups=[TaskGroup(Name="cache", Count=2,
                                     Tasks=[Task(Name="redis", Driver="docker")])])


def alloc(alloc_id: str, node: Node, index: int) -> Allocation:
    task = Resources(CPU=500, MemoryMB=256, Networks=[NetworkResource(
        IP="10.0.0.5", MBits=10, DynamicPorts=[Port(Label="db", Value=23456)])])
    shared = Resources(DiskMB=300)
    if index == 1:   # the second one also holds a group network
        shared = Resources(DiskMB=300, Networks=[NetworkResource(
            Mode="host", Device="eth0", IP="10.0.0.6",
            ReservedPorts=[Port(Label="admin", Value=9100, To=80)],
            DynamicPorts=[Port(Label="http", Value=24567)])])
    return Allocation(
        ID=alloc_id, EvalID=EVAL_1, Name=f"web.cache[{index}]", NodeID=node.ID,
        NodeName=node.Name, JobID="web", TaskGroup="cache", DesiredStatus="run",
        ClientStatus="pending", DeploymentID=DEPLOY_1,
        Resources=Resources(CPU=500, MemoryMB=256, DiskMB=300),
        TaskResources={"redis": task}, SharedResources=shared,
        Metrics=AllocMetric(NodesEvaluated=2, NodesAvailable={"dc1": 1}, AllocationTime=1500),
        CreateTime=1_700_000_000_000_000_000 + index)


def populate(agent: FakeAgent) -> None:
    agent.apply(e.NodeRegister(Node=node_a()))
    agent.apply(e.NodeRegister(Node=node_b()))
    agent.apply(e.JobRegister(Job=job(), Eval=Evaluation(
        ID=EVAL_1, JobID="web", Type="service", TriggeredBy="job-register", Status="pending",
        Priority=50)))
    done = Evaluation(ID=EVAL_1, JobID="web", Type="service", TriggeredBy="job-register",
                      Status="complete", Priority=50, QueuedAllocations={"cache": 0})
    agent.apply(e.PlanResults(JobID="web", Allocs=[alloc(ALLOC_1, node_a(), 0),
                                                   alloc(ALLOC_2, node_b(), 1)], Evals=[done]))
    agent.apply(e.EvalUpdate(Evals=[Evaluation(ID=EVAL_2, JobID="web", Type="service",
                                               TriggeredBy="queued-allocs", Status="blocked")]))
    agent.put_deployment(Deployment(
        ID=DEPLOY_1, JobID="web", JobVersion=0, Status="running",
        TaskGroups={"cache": DeploymentState(DesiredTotal=2, PlacedAllocs=2)},
        CreateIndex=agent.index + 1, ModifyIndex=agent.index + 1))


def scenario(test):
    """Run ``await test(agent, client)`` against a populated in-process app."""
    async def main():
        agent = FakeAgent(asyncio.get_running_loop())
        populate(agent)
        transport = httpx.ASGITransport(app=build_app(agent))
        async with httpx.AsyncClient(transport=transport, base_url="http://caravan") as client:
            return await test(agent, client)
    return asyncio.run(main())


def ok(r: httpx.Response) -> int:
    assert r.status_code == 200, (r.status_code, r.text)
    assert r.headers["content-type"] == "application/json"
    assert r.headers["x-nomad-knownleader"] == "true"
    return int(r.headers["x-nomad-index"])


def error(r: httpx.Response, status: int, text: str) -> None:
    assert (r.status_code, r.text) == (status, text)
    assert r.headers["content-type"].startswith("text/plain")


def ids(r: httpx.Response) -> list[str]:
    return [x["ID"] for x in r.json()]


# --- nodes ----------------------------------------------------------------------------------


def test_node_list_stub_shape_and_field_options():
    async def test(agent, c):
        r = await c.get("/v1/nodes")
        assert ok(r) == agent.fsm.state.table_index(t.NODES)
        a, b = r.json()
        assert set(a) == NODE_STUB_FIELDS  # Attributes and resources are omitted, as in 1.x
        assert a["ID"] == NODE_A and a["Address"] == "10.0.0.5" and a["Version"] == "1.6.2"
        assert (a["Name"], a["Datacenter"], a["NodeClass"], a["NodePool"]) == \
            ("alpha", "dc1", "gpu", "default")
        assert (a["Status"], a["SchedulingEligibility"], a["Drain"]) == ("ready", "eligible", False)
        assert a["Drivers"]["docker"]["Healthy"] is True and a["LastDrain"] is None
        assert (b["Address"], b["Version"]) == ("", "")  # no port, no nomad.version

        r = await c.get("/v1/nodes", params={"os": "true"})
        assert [n["Attributes"] for n in r.json()] == [{"os.name": "ubuntu"}, {"os.name": "debian"}]
        r = await c.get("/v1/nodes", params={"resources": "1"})
        a, b = r.json()
        assert a["NodeResources"]["Cpu"]["CpuShares"] == 4000
        assert a["ReservedResources"]["Networks"]["ReservedHostPorts"] == "22,8000-8002"
        assert b["NodeResources"] is None and "Attributes" not in a
        error(await c.get("/v1/nodes", params={"os": "yes"}), 400,
              'Failed to parse value of "os" (yes) as a bool: '
              'strconv.ParseBool: parsing "yes": invalid syntax')
    scenario(test)


def test_node_list_prefix_is_a_plain_string_prefix_of_any_length():
    async def test(agent, c):
        for prefix, want in [("4a", [NODE_A, NODE_B]), ("4a1", [NODE_A]), ("4a2e", [NODE_B]),
                             ("4a1f0000-0", [NODE_A]), (NODE_B, [NODE_B]), ("4A1", []),
                             ("zz", []), ("", [NODE_A, NODE_B])]:
            r = await c.get("/v1/nodes", params={"prefix": prefix})
            ok(r)
            assert ids(r) == want, prefix
    scenario(test)


def test_node_read_full_shape_with_derived_seed_era_resources():
    async def test(agent, c):
        r = await c.get(f"/v1/node/{NODE_A}")
        n = r.json()
        assert ok(r) == n["ModifyIndex"] == agent.fsm.state.get(t.NODES, NODE_A).ModifyIndex
        assert n["SecretID"] == ""  # the node's credential is never served
        assert n["HTTPAddr"] == "10.0.0.5:4646" and n["Attributes"]["kernel.name"] == "linux"
        assert n["NodeResources"]["Memory"]["MemoryMB"] == 8192
        assert n["ReservedResources"]["Cpu"]["CpuShares"] == 100
        res = n["Resources"]
        assert (res["CPU"], res["MemoryMB"], res["DiskMB"], res["IOPS"]) == (4000, 8192, 100_000, 0)
        assert [x["Device"] for x in res["Networks"]] == ["eth0"]
        reserved = n["Reserved"]
        assert (reserved["CPU"], reserved["MemoryMB"], reserved["DiskMB"]) == (100, 256, 1000)
        (net,) = reserved["Networks"]
        assert (net["Device"], net["IP"], net["MBits"]) == ("eth0", "10.0.0.5", 0)
        assert [p["Value"] for p in net["ReservedPorts"]] == [22, 8000, 8001, 8002]
        for field in ("DrainStrategy", "LastDrain", "HostVolumes"):
            assert n[field] is None, field
        assert [(ev["Message"], ev["Subsystem"]) for ev in n["Events"]] == [
            ("Node registered", "Cluster")]

        b = (await c.get(f"/v1/node/{NODE_B}")).json()
        assert b["Resources"]["CPU"] == 1000 and b["Reserved"] is None  # the row's own kept
        assert b["NodeResources"] is None and b["SecretID"] == ""
    scenario(test)


def test_node_read_errors():
    async def test(agent, c):
        error(await c.get(f"/v1/node/{MISSING}"), 404, "node not found")
        for short in ("4a1f", NODE_A[:-1], NODE_A + "0"):
            error(await c.get(f"/v1/node/{short}"), 400, "UUID must be 36 characters")
    scenario(test)


def test_node_allocations_are_full_allocations():
    async def test(agent, c):
        r = await c.get(f"/v1/node/{NODE_A}/allocations")
        assert ok(r) == agent.fsm.state.table_index(t.ALLOCS)
        (a,) = r.json()
        assert set(a) == ALLOC_FIELDS and a["ID"] == ALLOC_1 and a["Job"]["ID"] == "web"
        r = await c.get(f"/v1/node/{MISSING}/allocations")
        ok(r)
        assert r.json() == []  # an unknown node has no allocations, as in Nomad
    scenario(test)


# --- allocations ---------------------------------------------------------------------------


def test_alloc_list_stubs_prefix_and_field_options():
    async def test(agent, c):
        r = await c.get("/v1/allocations")
        assert ok(r) == agent.fsm.state.table_index(t.ALLOCS)
        stubs = r.json()
        assert ids(r) == [ALLOC_1, ALLOC_2]
        want = alloc_stub(agent.fsm.state.get(t.ALLOCS, ALLOC_1))
        assert set(stubs[0]) == set(want) and "AllocatedResources" not in stubs[0]
        assert stubs[0]["JobType"] == "service" and stubs[1]["NodeName"] == "beta"

        for prefix, want_ids in [("a1", [ALLOC_1, ALLOC_2]), ("a1b", [ALLOC_2]),
                                 ("a10", [ALLOC_1]), ("a1000000-", [ALLOC_1]), ("b", [])]:
            r = await c.get("/v1/allocations", params={"prefix": prefix})
            assert ids(r) == want_ids, prefix

        r = await c.get("/v1/allocations", params={"resources": "true", "task_states": "false"})
        s = r.json()[0]
        assert s["AllocatedResources"]["Tasks"]["redis"]["Cpu"] == {"CpuShares": 500}
        assert s["TaskStates"] is None
        error(await c.get("/v1/allocations", params={"task_states": "x"}), 400,
              'Failed to parse value of "task_states" (x) as a bool: '
              'strconv.ParseBool: parsing "x": invalid syntax')
    scenario(test)


def test_alloc_read_full_shape_with_allocated_resources():
    async def test(agent, c):
        r = await c.get(f"/v1/allocation/{ALLOC_1}")
        a = r.json()
        assert ok(r) == a["ModifyIndex"]
        assert set(a) == ALLOC_FIELDS
        assert a["Job"]["ID"] == "web" and a["Job"]["TaskGroups"][0]["Name"] == "cache"
        assert a["Resources"] == {**a["Resources"], "CPU": 500, "MemoryMB": 256, "DiskMB": 300}
        assert a["TaskResources"]["redis"]["CPU"] == 500
        assert a["SharedResources"]["DiskMB"] == 300
        task = a["AllocatedResources"]["Tasks"]["redis"]
        assert task["Cpu"] == {"CpuShares": 500}
        assert task["Memory"] == {"MemoryMB": 256, "MemoryMaxMB": 0}
        assert task["Networks"][0]["DynamicPorts"][0]["Value"] == 23456
        assert a["AllocatedResources"]["Shared"] == {"DiskMB": 300, "Networks": None, "Ports": None}
        assert a["Metrics"]["NodesEvaluated"] == 2 and a["Metrics"]["AllocationTime"] == 1500
        assert (a["EvalID"], a["DeploymentID"], a["NodeID"]) == (EVAL_1, DEPLOY_1, NODE_A)

        b = (await c.get(f"/v1/allocation/{ALLOC_2}")).json()
        shared = b["AllocatedResources"]["Shared"]
        assert shared["DiskMB"] == 300
        assert shared["Networks"] == b["SharedResources"]["Networks"]
        (net,) = shared["Networks"]
        assert (net["Mode"], net["IP"], net["DynamicPorts"][0]["Value"]) == ("host", "10.0.0.6",
                                                                            24567)
        assert shared["Ports"] == [
            {"Label": "admin", "Value": 9100, "To": 80, "HostIP": "10.0.0.6"},
            {"Label": "http", "Value": 24567, "To": 0, "HostIP": "10.0.0.6"}]

        error(await c.get(f"/v1/allocation/{MISSING}"), 404, "alloc not found")
        error(await c.get("/v1/allocation/a1"), 400, "UUID must be 36 characters")
    scenario(test)


def test_blocking_alloc_list_wakes_on_a_client_update():
    async def test(agent, c):
        index = ok(await c.get("/v1/allocations"))

        async def update():
            await asyncio.sleep(0.2)
            agent.apply(e.AllocClientUpdate(Updates=[e.AllocClientState(
                AllocID=ALLOC_1, ClientStatus="running",
                TaskStates={"redis": TaskState(State="running")})]))

        t0 = time.monotonic()
        r, _ = await asyncio.gather(
            c.get("/v1/allocations", params={"index": index, "wait": "5s"}), update())
        elapsed = time.monotonic() - t0
        assert 0.15 <= elapsed < 2, elapsed
        assert ok(r) > index
        by_id = {s["ID"]: s for s in r.json()}
        assert by_id[ALLOC_1]["ClientStatus"] == "running"
        assert by_id[ALLOC_1]["TaskStates"]["redis"]["State"] == "running"
    scenario(test)


def test_blocking_reads_time_out_unchanged_and_ignore_other_tables():
    async def test(agent, c):
        r = await c.get(f"/v1/allocation/{ALLOC_2}")
        index = ok(r)

        async def unrelated():
            await asyncio.sleep(0.05)
            agent.apply(e.EvalUpdate(Evals=[Evaluation(ID=uid("ev"), JobID="other",
                                                       Status="complete")]))

        t0 = time.monotonic()
        again, _ = await asyncio.gather(
            c.get(f"/v1/allocation/{ALLOC_2}", params={"index": index, "wait": "300ms"}),
            unrelated())
        assert 0.28 <= time.monotonic() - t0 < 1.5
        assert ok(again) == index and again.json() == r.json()

        # a node read blocks until the node itself changes
        n_index = ok(await c.get(f"/v1/node/{NODE_B}"))

        async def ready():
            await asyncio.sleep(0.1)
            agent.apply(e.NodeStatus(NodeID=NODE_B, Status="ready", UpdatedAt=5))

        r, _ = await asyncio.gather(
            c.get(f"/v1/node/{NODE_B}", params={"index": n_index, "wait": "5s"}), ready())
        assert ok(r) > n_index and r.json()["Status"] == "ready"
    scenario(test)


def test_stale_reads_skip_the_barrier():
    async def test(agent, c):
        before = agent.raft.barriers
        ok(await c.get("/v1/allocations", params={"stale": ""}))
        assert agent.raft.barriers == before
        ok(await c.get("/v1/allocations"))
        assert agent.raft.barriers == before + 1
    scenario(test)


# --- evaluations -------------------------------------------------------------------------------


def test_eval_list_filters_and_read():
    async def test(agent, c):
        r = await c.get("/v1/evaluations")
        assert ok(r) == agent.fsm.state.table_index(t.EVALS)
        assert ids(r) == [EVAL_1, EVAL_2]  # oldest first
        for params, want in [({"status": "blocked"}, [EVAL_2]), ({"status": "complete"}, [EVAL_1]),
                             ({"status": "pending"}, []), ({"job": "web"}, [EVAL_1, EVAL_2]),
                             ({"job": "nope"}, []), ({"prefix": "e2"}, [EVAL_2]),
                             ({"prefix": "e"}, [EVAL_1, EVAL_2]),
                             ({"prefix": "e", "status": "complete"}, [EVAL_1])]:
            r = await c.get("/v1/evaluations", params=params)
            ok(r)
            assert ids(r) == want, params

        r = await c.get(f"/v1/evaluation/{EVAL_1}")
        ev = r.json()
        assert ok(r) == ev["ModifyIndex"]
        assert (ev["Status"], ev["JobID"], ev["QueuedAllocations"]) == \
            ("complete", "web", {"cache": 0})
        assert ev["QuotaLimitReached"] == ""     # structs.Evaluation's field (Enterprise)
        error(await c.get(f"/v1/evaluation/{MISSING}"), 404, "eval not found")
        error(await c.get("/v1/evaluation/e1"), 400, "UUID must be 36 characters")

        r = await c.get(f"/v1/evaluation/{EVAL_1}/allocations")
        assert ok(r) == agent.fsm.state.table_index(t.ALLOCS)
        assert ids(r) == [ALLOC_1, ALLOC_2] and "Job" not in r.json()[0]
        r = await c.get(f"/v1/evaluation/{EVAL_2}/allocations")
        assert r.json() == []
    scenario(test)


# --- deployments --------------------------------------------------------------------------------


def test_deployment_list_read_and_allocations():
    async def test(agent, c):
        r = await c.get("/v1/deployments")
        assert ok(r) == agent.fsm.state.table_index(t.DEPLOYMENTS)
        assert ids(r) == [DEPLOY_1]
        assert ids(await c.get("/v1/deployments", params={"prefix": "d10"})) == [DEPLOY_1]
        assert ids(await c.get("/v1/deployments", params={"prefix": "d2"})) == []

        r = await c.get(f"/v1/deployment/{DEPLOY_1}")
        d = r.json()
        assert ok(r) == d["ModifyIndex"]
        assert d["Status"] == "running" and d["TaskGroups"]["cache"]["DesiredTotal"] == 2
        assert d["IsMultiregion"] is False
        error(await c.get(f"/v1/deployment/{MISSING}"), 404, "deployment not found")
        error(await c.get("/v1/deployment/d1"), 400, "UUID must be 36 characters")

        r = await c.get(f"/v1/deployment/allocations/{DEPLOY_1}")
        assert ok(r) == agent.fsm.state.table_index(t.ALLOCS)
        assert ids(r) == [ALLOC_1, ALLOC_2]
        r = await c.get(f"/v1/deployment/allocations/{MISSING}")
        assert r.json() == []
    scenario(test)


def test_every_route_is_get_only():
    async def test(agent, c):
        for path in LIST_ROUTES + ITEM_ROUTES:
            for method in ("PUT", "POST", "DELETE", "PATCH", "HEAD"):
                if (method, path) == ("DELETE", "/v1/evaluations"):
                    continue   # Nomad's eval delete (tests/http/test_evals.py)
                r = await c.request(method, path)
                assert r.status_code == 405, (method, path)
                if method != "HEAD":
                    error(r, 405, "Invalid method")
    scenario(test)


# --- the real dev agent --------------------------------------------------------------------------


@pytest.mark.parametrize("path", LIST_ROUTES)
def test_dev_agent_lists_are_lists_with_an_index(client, path):
    """The index is the table's: 0 while it was never written (the shared agent has no
    nodes, and may have no allocations yet), as in Nomad."""
    r = client.get(path)
    index = assert_read_headers(r, fresh=None)
    assert isinstance(r.json(), list)
    r = client.get(path, params={"prefix": uuid.uuid4().hex[:8]})
    assert assert_read_headers(r, fresh=None) >= index
    assert r.text == "[]"


@pytest.mark.parametrize("path", ["/v1/node/{id}/allocations", "/v1/evaluation/{id}/allocations",
                                  "/v1/deployment/allocations/{id}"])
def test_dev_agent_child_lists_of_unknown_ids_are_empty(client, path):
    r = client.get(path.format(id=uuid.uuid4()))
    assert_read_headers(r, fresh=None)
    assert r.text == "[]"


@pytest.mark.parametrize("path,text", [("/v1/node/{id}", "node not found"),
                                       ("/v1/allocation/{id}", "alloc not found"),
                                       ("/v1/evaluation/{id}", "eval not found"),
                                       ("/v1/deployment/{id}", "deployment not found")])
def test_dev_agent_unknown_ids(client, path, text):
    assert_error(client.get(path.format(id=uuid.uuid4())), 404, text)
    assert_error(client.get(path.format(id="abcd")), 400, "UUID must be 36 characters")
    assert_error(client.put(path.format(id=uuid.uuid4())), 405, "Invalid method")


def test_dev_agent_serves_a_registered_jobs_eval(client):
    job_id = uid("evr")
    eval_id = register(client, service_job(job_id))["EvalID"]
    r = client.get(f"/v1/evaluation/{eval_id}")
    assert assert_read_headers(r) == r.json()["ModifyIndex"]
    assert r.json()["JobID"] == job_id and r.json()["ID"] == eval_id
    # the single read first: the scheduler may update the eval between the two reads,
    # and the later list read must then answer an index at least as high
    single_index = index_of(client.get(f"/v1/evaluation/{eval_id}"))
    r = client.get("/v1/evaluations", params={"job": job_id})
    assert assert_read_headers(r) >= single_index
    assert eval_id in [ev["ID"] for ev in r.json()]
    r = client.get("/v1/evaluations", params={"prefix": eval_id[:7]})  # odd length is fine
    assert eval_id in [ev["ID"] for ev in r.json()]
