"""The scheduler end to end over a real in-memory state: evals in, plans through the
plan applier's checks, PlanResults entries applied by the FSM."""
from __future__ import annotations

import random

import msgspec
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from msgspec.structs import replace

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.structs import (
    DriverInfo,
    Evaluation,
    Job,
    NetworkResource,
    Node,
    NodeCpuResources,
    NodeDiskResources,
    NodeMemoryResources,
    NodeResources,
)
from caravan.fsm.submit import Submitter
from caravan.scheduler.fit import alloc_usage, node_capacity
from caravan.scheduler.generic import compute_plan
from caravan.scheduler.plan_apply import PlanApplier, results_entry
from caravan.scheduler.ports import alloc_networks
from caravan.server.jobspec.canonicalize import canonicalize
from tests.unit.test_fsm import Log


def mknode(i: int, cpu: int = 4000, mem: int = 8192, dc: str = "dc1", drivers=("mock",)) -> Node:
    attrs = {"kernel.name": "linux", "os.signals": "SIGHUP,SIGINT,SIGUSR1"}
    attrs.update({f"driver.{d}": "1" for d in drivers})
    return Node(ID=f"node-{i:03d}", Name=f"n{i}", Datacenter=dc, Status="ready", Attributes=attrs,
                Drivers={d: DriverInfo(Detected=True, Healthy=True) for d in drivers},
                NodeResources=NodeResources(
                    Cpu=NodeCpuResources(CpuShares=cpu), Memory=NodeMemoryResources(MemoryMB=mem),
                    Disk=NodeDiskResources(DiskMB=100_000),
                    Networks=[NetworkResource(Device="eth0", IP="127.0.0.1",
                                              CIDR="127.0.0.1/32", MBits=1000)]))


def mkjob(job_id="web", count=3, cpu=1000, driver="mock", ports=True, **kw) -> Job:
    task = {"Name": "t", "Driver": driver, "Config": {"run_for": "1h"},
            "Resources": {"CPU": cpu, "MemoryMB": 256}}
    if ports:
        task["Resources"]["Networks"] = [{"DynamicPorts": [{"Label": "http"}],
                                          "ReservedPorts": None}]
    job = msgspec.convert({"ID": job_id, "Datacenters": ["dc1"],
                           "TaskGroups": [{"Name": "g", "Count": count, "Tasks": [task]}], **kw}, Job)
    canonicalize(job)
    return job


class Harness:
    """Drives evals through compute_plan and the applier's node checks, committing
    each plan as the leader would."""

    def __init__(self):
        self.log = Log()
        self.applier = PlanApplier(lambda: self.log.fsm.state, None)
        self.n = 0

    @property
    def state(self):
        return self.log.fsm.state

    def node(self, node: Node):
        self.log.apply(e.NodeRegister(Node=node))

    def eval(self, job_id: str, trigger="job-register") -> Evaluation:
        self.n += 1
        return Evaluation(ID=f"ev-{self.n}", JobID=job_id, Type="service", Priority=50,
                          TriggeredBy=trigger, Status="pending")

    def register(self, job: Job):
        self.log.apply(e.JobRegister(Job=job, Eval=self.eval(job.ID)))
        return self.process_pending()

    def process(self, ev: Evaluation, attempts: int = 5):
        plan = None
        for attempt in range(attempts):
            plan = compute_plan(self.state, ev, random.Random(f"{ev.ID}/{attempt}"), 10**18)
            accepted, rejected = self.applier.check(plan, self.state)
            body = results_entry(plan, accepted, rejected)
            if body is not None:
                # no deployment watcher here to promote health: deployments are left out
                self.log.apply(msgspec.structs.replace(body, Deployment=None,
                                                       DeploymentUpdates=None))
            if not rejected:
                return plan
        return plan

    def process_pending(self):
        plans = []
        while True:
            pending = self.state.by_index(t.EVALS, "status", "pending")
            if not pending:
                return plans
            plans.append(self.process(pending[0]))

    def unblock(self):
        for ev in self.state.by_index(t.EVALS, "status", "blocked"):
            self.process(ev)

    def live(self, job_id=None):
        allocs = self.state.rows(t.ALLOCS) if job_id is None else \
            self.state.by_index(t.ALLOCS, "job", job_id)
        return [a for a in allocs if not a.terminal()]


def test_places_count_allocations_with_ports_and_metrics():
    h = Harness()
    for i in range(3):
        h.node(mknode(i))
    (plan,) = h.register(mkjob(count=5))
    live = h.live("web")
    assert sorted(a.Name for a in live) == [f"web.g[{i}]" for i in range(5)]
    assert all(a.Job.Version == 0 and a.ClientStatus == "pending" for a in live)
    for a in live:
        assert a.Metrics.NodesEvaluated >= 1 and a.Metrics.NodesAvailable == {"dc1": 3}
        port = a.Resources.Networks[0].DynamicPorts[0].Value
        assert 20000 <= port <= 32000
    assert plan.desired_tg_updates["g"]["Place"] == 5
    ev = h.state.get(t.EVALS, plan.eval_id)
    assert ev.Status == "complete" and ev.FailedTGAllocs is None
    assert h.state.get(t.JOB_SUMMARIES, "web").Summary["g"].Starting == 5
    assert h.state.get(t.JOBS, "web").Status == "running"


def test_exhaustion_blocks_and_a_new_node_unblocks():
    h = Harness()
    h.node(mknode(0, cpu=2000))
    h.register(mkjob(count=4))
    assert len(h.live("web")) == 2
    evals = h.state.by_index(t.EVALS, "job", "web")
    done = [x for x in evals if x.Status == "complete"][0]
    metric = done.FailedTGAllocs["g"]
    assert metric.DimensionExhausted == {"cpu exhausted": 1} and metric.NodesExhausted == 1
    assert metric.CoalescedFailures == 1
    blocked = [x for x in evals if x.Status == "blocked"]
    assert len(blocked) == 1 and blocked[0].PreviousEval == done.ID
    assert done.BlockedEval == blocked[0].ID
    assert h.state.get(t.JOB_SUMMARIES, "web").Summary["g"].Queued == 2

    h.unblock()                               # still no room: stays blocked
    assert h.state.get(t.EVALS, blocked[0].ID).Status == "blocked"
    h.node(mknode(1, cpu=4000))
    h.unblock()
    assert len(h.live("web")) == 4
    assert h.state.get(t.EVALS, blocked[0].ID).Status == "complete"
    assert h.state.get(t.JOB_SUMMARIES, "web").Summary["g"].Queued == 0


def test_missing_driver_is_filtered_not_exhausted():
    h = Harness()
    h.node(mknode(0, drivers=("raw_exec",)))
    h.register(mkjob(count=1, driver="docker"))
    metric = [x for x in h.state.by_index(t.EVALS, "job", "web") if x.Status == "complete"][0] \
        .FailedTGAllocs["g"]
    assert metric.NodesFiltered == 1 and metric.NodesExhausted == 0
    assert metric.ClassFiltered or metric.ConstraintFiltered


def test_stop_stops_every_allocation():
    h = Harness()
    h.node(mknode(0))
    h.register(mkjob(count=3))
    h.log.apply(e.JobDeregister(JobID="web", Eval=h.eval("web", "job-deregister")))
    h.process_pending()
    allocs = h.state.by_index(t.ALLOCS, "job", "web")
    assert len(allocs) == 3 and all(a.DesiredStatus == "stop" for a in allocs)
    assert {a.DesiredDescription for a in allocs} == {"alloc not needed due to job update"}


def test_node_down_marks_allocations_lost_and_replaces_them():
    h = Harness()
    h.node(mknode(0))
    h.node(mknode(1))
    h.register(mkjob(count=4, cpu=500))
    on0 = [a for a in h.live("web") if a.NodeID == "node-000"]
    assert on0, "expected some allocations on node-000"
    h.log.apply(e.NodeStatus(NodeID="node-000", Status="down", UpdatedAt=1,
                             Evals=[h.eval("web", "node-update")]))
    h.process_pending()
    lost = [h.state.get(t.ALLOCS, a.ID) for a in on0]
    assert all(a.ClientStatus == "lost" and a.DesiredStatus == "stop" for a in lost)
    live = h.live("web")
    assert len(live) == 4 and all(a.NodeID == "node-001" for a in live)
    replaced = {a.PreviousAllocation for a in live if a.PreviousAllocation}
    assert replaced == {a.ID for a in on0}
    assert h.state.get(t.JOB_SUMMARIES, "web").Summary["g"].Lost == len(on0)


def test_destructive_update_replaces_with_the_same_names():
    h = Harness()
    h.node(mknode(0))
    h.register(mkjob(count=2, ports=False))
    before = {a.Name: a.ID for a in h.live("web")}
    job = h.state.get(t.JOBS, "web")
    changed = replace(job, TaskGroups=[replace(job.TaskGroups[0], Tasks=[
        replace(job.TaskGroups[0].Tasks[0], Config={"run_for": "2h"})])])
    # the default update strategy (MaxParallel 1) rolls one allocation per eval
    h.register(changed)
    for _ in range(3):
        h.log.apply(e.JobEvaluate(JobID="web", Eval=h.eval("web", "job-eval")))
        h.process_pending()
    after = {a.Name: a for a in h.live("web")}
    assert set(after) == set(before)
    assert all(a.Job.Version == 1 and a.ID != before[a.Name] for a in after.values())


def test_count_change_is_an_in_place_update():
    h = Harness()
    h.node(mknode(0))
    h.register(mkjob(count=2, ports=False))
    ids = {a.ID for a in h.live("web")}
    job = h.state.get(t.JOBS, "web")
    (plan,) = h.register(replace(job, TaskGroups=[replace(job.TaskGroups[0], Count=3)]))
    assert plan.desired_tg_updates["g"]["InPlaceUpdate"] == 2
    assert plan.desired_tg_updates["g"]["Place"] == 1
    assert ids < {a.ID for a in h.live("web")}


def test_two_plans_racing_for_the_last_capacity_never_overcommit():
    h = Harness()
    h.node(mknode(0, cpu=1000))
    h.log.apply(e.JobRegister(Job=mkjob("a", count=1), Eval=h.eval("a")))
    h.log.apply(e.JobRegister(Job=mkjob("b", count=1), Eval=h.eval("b")))
    ev_a, ev_b = h.state.by_index(t.EVALS, "status", "pending")
    # both plan against the same snapshot: each sees the node empty
    snap = h.state
    plan_a = compute_plan(snap, ev_a, random.Random(1), 1)
    plan_b = compute_plan(snap, ev_b, random.Random(2), 1)
    assert plan_a.placements() == plan_b.placements() == 1
    for plan in (plan_a, plan_b):
        accepted, rejected = h.applier.check(plan, h.state)
        allocs = [a for n in accepted for a in accepted[n]]
        h.log.apply(e.PlanResults(JobID=plan.job_id, Allocs=allocs or None,
                                  Evals=plan.evals if not rejected else None))
    assert len(h.live()) == 1   # the second plan's node was rejected
    assert_no_overcommit(h.state)


def test_two_plans_racing_for_one_static_group_port_never_share_it():
    """Two jobs whose groups both want static port 9100 plan against the same
    snapshot (each sees the port free); the applier's re-check refuses the second."""
    h = Harness()
    h.node(mknode(0, cpu=4000))
    for job_id in ("a", "b"):
        job = mkjob(job_id, count=1, cpu=100, ports=False, TaskGroups=[{
            "Name": "g", "Count": 1,
            "Networks": [{"ReservedPorts": [{"Label": "admin", "Value": 9100}],
                          "DynamicPorts": [{"Label": "http"}]}],
            "Tasks": [{"Name": "t", "Driver": "mock", "Resources": {"CPU": 100}}]}])
        h.log.apply(e.JobRegister(Job=job, Eval=h.eval(job_id)))
    ev_a, ev_b = h.state.by_index(t.EVALS, "status", "pending")
    snap = h.state
    plans = [compute_plan(snap, ev, random.Random(i), 1) for i, ev in enumerate((ev_a, ev_b))]
    assert [p.placements() for p in plans] == [1, 1]
    outcomes = []
    for plan in plans:
        accepted, rejected = h.applier.check(plan, h.state)
        outcomes.append(bool(rejected))
        allocs = [a for n in accepted for a in accepted[n]]
        h.log.apply(e.PlanResults(JobID=plan.job_id, Allocs=allocs or None,
                                  Evals=plan.evals if not rejected else None))
    assert outcomes == [False, True]
    (alloc,) = h.live()
    assert [(p.Label, p.Value) for p in alloc.shared_ports()][0] == ("admin", 9100)
    assert_no_overcommit(h.state)


def test_system_job_runs_one_allocation_per_ready_node():
    h = Harness()
    for i in range(3):
        h.node(mknode(i))
    h.register(mkjob("sys", count=1, ports=False, Type="system"))
    assert sorted(a.NodeID for a in h.live("sys")) == ["node-000", "node-001", "node-002"]
    h.node(mknode(3))
    h.log.apply(e.JobEvaluate(JobID="sys", Eval=h.eval("sys", "node-update")))
    h.process_pending()
    assert len(h.live("sys")) == 4


def test_the_same_eval_over_the_same_state_places_the_same_way():
    def run():
        h = Harness()
        for i in range(8):
            h.node(mknode(i))
        h.register(mkjob(count=6, cpu=300))
        return sorted((a.Name, a.NodeID, a.Resources.Networks[0].DynamicPorts[0].Value)
                      for a in h.live("web"))
    assert run() == run()


# --- invariants, over random histories ----------------------------------------------------


def assert_no_overcommit(state) -> None:
    for node in state.rows(t.NODES):
        live = [a for a in state.by_index(t.ALLOCS, "node", node.ID) if not a.terminal()]
        cap = node_capacity(node)
        used_cpu = sum(alloc_usage(a).cpu for a in live)
        used_mem = sum(alloc_usage(a).memory_mb for a in live)
        assert used_cpu <= cap.cpu and used_mem <= cap.memory_mb, node.ID
        ports = [p.Value for a in live for net in alloc_networks(a)
                 for p in [*(net.ReservedPorts or ()), *(net.DynamicPorts or ())]]
        assert len(ports) == len(set(ports)), f"port shared on {node.ID}"


ops = st.lists(st.tuples(
    st.sampled_from(["register", "update", "stop", "join", "down", "eval", "race"]),
    st.integers(0, 3), st.integers(1, 6), st.sampled_from([300, 700, 1500])),
    min_size=1, max_size=25)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(ops)
def test_no_node_is_overcommitted_and_no_port_is_shared(history):
    h = Harness()
    h.node(mknode(0, cpu=3000))
    joined = 1
    for op, which, count, cpu in history:
        job_id = f"job-{which}"
        if op in ("register", "update"):
            h.register(mkjob(job_id, count=count, cpu=cpu))
        elif op == "stop" and h.state.get(t.JOBS, job_id) is not None:
            h.log.apply(e.JobDeregister(JobID=job_id, Eval=h.eval(job_id, "job-deregister")))
            h.process_pending()
        elif op == "join":
            h.node(mknode(joined, cpu=cpu * 3))
            joined += 1
            h.unblock()
        elif op == "down" and joined > 1:
            node_id = f"node-{which % joined:03d}"
            jobs_on = sorted({a.JobID for a in h.state.by_index(t.ALLOCS, "node", node_id)})
            h.log.apply(e.NodeStatus(NodeID=node_id, Status="down", UpdatedAt=1,
                                     Evals=[h.eval(j, "node-update") for j in jobs_on]))
            h.process_pending()
        elif op == "race":
            # two jobs planned against the same snapshot, then applied one after the
            # other: only the plan applier's re-check stands between them and overcommit
            a, b = f"race-{which}-a", f"race-{which}-b"
            h.log.apply(e.JobRegister(Job=mkjob(a, count=count, cpu=cpu), Eval=h.eval(a)))
            h.log.apply(e.JobRegister(Job=mkjob(b, count=count, cpu=cpu), Eval=h.eval(b)))
            snap = h.state
            evs = [x for x in snap.by_index(t.EVALS, "status", "pending") if x.JobID in (a, b)]
            plans = [compute_plan(snap, x, random.Random(x.ID), 1) for x in evs]
            for plan in plans:
                accepted, rejected = h.applier.check(plan, h.state)
                allocs = [x for n in sorted(accepted) for x in accepted[n]]
                h.log.apply(e.PlanResults(JobID=plan.job_id, JobVersion=plan.job_version,
                                          Allocs=allocs or None, Stops=plan.stops or None,
                                          Evals=plan.evals if not rejected else None))
            h.process_pending()
        elif op == "eval" and h.state.get(t.JOBS, job_id) is not None:
            h.log.apply(e.JobEvaluate(JobID=job_id, Eval=h.eval(job_id, "job-eval")))
            h.process_pending()
        assert_no_overcommit(h.state)
        for node in h.state.rows(t.NODES):
            if node.Status == "down":
                assert not [a for a in h.state.by_index(t.ALLOCS, "node", node.ID)
                            if not a.terminal() and a.CreateIndex > node.ModifyIndex]


def test_pipelined_applier_counts_placements_still_committing():
    """Plan B is checked while plan A's commit is still in flight: A's placement must
    count, so B is rejected and the node is never overcommitted. B's answer waits for
    A's commit and carries an index that covers it, so B's worker plans again on a
    state that holds A's placement."""
    import asyncio

    async def main():
        h = Harness()
        h.node(mknode(0, cpu=1000))
        h.log.apply(e.JobRegister(Job=mkjob("a", count=1), Eval=h.eval("a")))
        h.log.apply(e.JobRegister(Job=mkjob("b", count=1), Eval=h.eval("b")))
        ev_a, ev_b = h.state.by_index(t.EVALS, "status", "pending")
        snap = h.state
        plan_a = compute_plan(snap, ev_a, random.Random(1), 1)
        plan_b = compute_plan(snap, ev_b, random.Random(2), 1)
        gate = asyncio.Event()
        submitted = []

        async def slow_submit(blob: bytes) -> dict:
            submitted.append(blob)
            await gate.wait()                 # every commit is still in flight...
            h.log.index += 1
            return h.log.fsm.apply(h.log.index, blob)

        applier = PlanApplier(lambda: h.state, Submitter(slow_submit, lambda: "r"))
        runner = asyncio.ensure_future(applier.run())
        try:
            fa = asyncio.ensure_future(applier.apply(plan_a))
            fb = asyncio.ensure_future(applier.apply(plan_b))
            # ...when the second plan is checked (rejected outright, it has nothing to
            # submit, and its answer waits for the first commit)
            for _ in range(50):
                await asyncio.sleep(0)
            assert len(submitted) == 1 and not fa.done() and not fb.done()
            gate.set()
            ra, rb = await fa, await fb
        finally:
            runner.cancel()
        assert ra.fully_applied and ra.committed_allocs == 1
        assert rb.rejected_nodes == ["node-000"] and rb.committed_allocs == 0
        assert rb.index >= ra.index > 0
        assert len(h.live()) == 1
        assert_no_overcommit(h.state)

    asyncio.run(main())


def test_a_service_eval_carries_the_deployment_it_created_or_continued():
    h = Harness()
    h.node(mknode(0))

    def run(ev):   # commit the whole plan, its deployment included
        plan = compute_plan(h.state, ev, random.Random(ev.ID), 10**18)
        allocs = [a for n in sorted(plan.node_allocs) for a in plan.node_allocs[n]]
        h.log.apply(e.PlanResults(JobID=plan.job_id, JobVersion=plan.job_version,
                                  Allocs=allocs or None, Stops=plan.stops or None,
                                  Evals=plan.evals, Deployment=plan.deployment))
        return plan

    h.log.apply(e.JobRegister(Job=mkjob(count=2, Update={"MaxParallel": 1}),
                              Eval=h.eval("web")))
    plan = run(h.state.by_index(t.EVALS, "status", "pending")[0])
    (deployment,) = h.state.by_index(t.DEPLOYMENTS, "job", "web")
    assert plan.deployment is not None and plan.deployment.ID == deployment.ID
    assert h.state.get(t.EVALS, plan.eval_id).DeploymentID == deployment.ID
    ev = h.eval("web", trigger="deployment-watcher")
    h.log.apply(e.EvalUpdate(Evals=[ev]))
    assert run(ev).deployment is None
    assert h.state.get(t.EVALS, ev.ID).DeploymentID == deployment.ID


def test_a_batch_eval_names_no_deployment():
    h = Harness()
    h.node(mknode(0))
    (plan,) = h.register(mkjob(count=1, Type="batch"))
    assert h.state.get(t.EVALS, plan.eval_id).DeploymentID == ""


def test_system_job_preempts_a_lower_priority_allocation():
    h = Harness()
    h.node(mknode(0, cpu=2000))
    h.node(mknode(1, cpu=1000))
    h.register(mkjob("low", count=1, cpu=1500, ports=False, Priority=20))
    (victim,) = h.live("low")
    assert victim.NodeID == "node-000"
    h.register(mkjob("sys", count=1, cpu=800, ports=False, Type="system", Priority=80))
    sys_allocs = {a.NodeID: a for a in h.live("sys")}
    assert set(sys_allocs) == {"node-000", "node-001"}
    evicted = h.state.get(t.ALLOCS, victim.ID)
    preemptor = sys_allocs["node-000"]
    assert preemptor.PreemptedAllocations == [victim.ID]
    assert sys_allocs["node-001"].PreemptedAllocations is None
    assert evicted.DesiredStatus == "evict"
    assert evicted.PreemptedByAllocation == preemptor.ID
    assert evicted.DesiredDescription == f"Preempted by alloc ID {preemptor.ID}"
    # the evicted job got an eval; with no room left anywhere it waits blocked
    evals = h.state.by_index(t.EVALS, "job", "low")
    assert any(x.TriggeredBy == "preemption" and x.Status == "complete" for x in evals)
    assert any(x.Status == "blocked" for x in evals)
    assert h.live("low") == []
    for node in h.state.rows(t.NODES):
        used = sum(alloc_usage(a).cpu for a in h.state.by_index(t.ALLOCS, "node", node.ID)
                   if not a.terminal())
        assert used <= node_capacity(node).cpu


def test_applier_refuses_a_preemption_that_no_longer_holds():
    h = Harness()
    h.node(mknode(0, cpu=2000))
    h.register(mkjob("low", count=1, cpu=1500, ports=False, Priority=20))
    h.log.apply(e.JobRegister(Job=mkjob("sys", count=1, cpu=800, ports=False, Type="system",
                                        Priority=80), Eval=h.eval("sys")))
    ev = h.state.by_index(t.EVALS, "job", "sys")[0]
    plan = compute_plan(h.state, ev, random.Random(1), 10**18)
    assert plan.node_preemptions
    accepted, rejected = h.applier.check(plan, h.state)
    assert list(accepted) == ["node-000"] and not rejected
    # the victim's job now has a priority too close to the system job's
    low = h.state.get(t.JOBS, "low")
    h.log.apply(e.JobRegister(Job=replace(low, Priority=75), Eval=h.eval("low")))
    accepted, rejected = h.applier.check(plan, h.state)
    assert rejected == ["node-000"] and not accepted


def test_system_job_skips_nodes_its_constraints_rule_out_without_failing():
    h = Harness()
    for i in range(4):
        node = mknode(i)
        h.node(replace(node, Meta={"role": "edge" if i == 3 else "other"}))
    (plan,) = h.register(mkjob("sys", count=1, ports=False, Type="system", Constraints=[
        {"LTarget": "${meta.role}", "RTarget": "edge", "Operand": "="}]))
    assert [a.NodeID for a in h.live("sys")] == ["node-003"]
    ev = h.state.get(t.EVALS, plan.eval_id)
    assert ev.FailedTGAllocs is None and ev.Status == "complete"


def test_system_job_preempts_the_holder_of_its_reserved_port():
    h = Harness()
    h.node(mknode(0))
    static = {"ReservedPorts": [{"Label": "web", "Value": 8080}], "DynamicPorts": None}
    low = mkjob("low", count=1, cpu=100, ports=False, Priority=20)
    low.TaskGroups[0].Tasks[0].Resources.Networks = [msgspec.convert(static, NetworkResource)]
    h.register(low)
    (victim,) = h.live("low")
    sys_job = mkjob("sys", count=1, cpu=100, ports=False, Type="system", Priority=80)
    sys_job.TaskGroups[0].Tasks[0].Resources.Networks = [
        msgspec.convert(static, NetworkResource)]
    h.register(sys_job)
    (placed,) = h.live("sys")
    assert placed.PreemptedAllocations == [victim.ID]
    assert placed.Resources.Networks[0].ReservedPorts[0].Value == 8080
    assert h.state.get(t.ALLOCS, victim.ID).DesiredStatus == "evict"
    # the evicted job cannot get its port back anywhere: it waits
    assert h.live("low") == []
