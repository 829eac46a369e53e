"""The core garbage collector: what it chooses (``scheduler.core_gc.choose``) and what
the FSM deletes when the ``CoreGC`` entry applies (``fsm.gc``)."""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.store import Txn
from caravan.fsm.structs import Deployment, DeploymentState, ParameterizedJobConfig
from caravan.fsm.submit import Submitter
from caravan.fsm.summaries import summarize
from caravan.scheduler.core_gc import FORCE, MAX_IDS, Thresholds, _pack, choose
from tests.unit.test_fsm import Log, assert_replays_identically, make_eval, make_job
from tests.unit.test_fsm_allocs import alloc, node

HOUR = 3600 * 10**9
NOW = 100 * HOUR


def finish(ev, **kw):
    return replace(ev, Status="complete", ModifyTime=1, **kw)


def client(log: Log, alloc_id: str, status: str) -> None:
    log.apply(e.AllocClientUpdate(Updates=[e.AllocClientState(AllocID=alloc_id,
                                                              ClientStatus=status,
                                                              ModifyTime=1)]))


def gc(log: Log, th: Thresholds = FORCE) -> dict:
    """Choose on the current state and apply the entries; the summed answers."""
    total: dict[str, int] = {}
    for body in choose(log.fsm.state, NOW, th, log.fsm.state.last_index):
        for k, v in log.apply(body).items():
            if k != "Index":
                total[k] = total.get(k, 0) + v
    return total


def summary_of(log: Log, job_id: str):
    return log.fsm.state.get(t.JOB_SUMMARIES, job_id)


def assert_summaries_recount(log: Log) -> None:
    state = log.fsm.state
    txn = Txn(state, state.last_index)
    for s in state.rows(t.JOB_SUMMARIES):
        assert summarize(txn, s.JobID, s) == s.Summary, s.JobID


def service_with_replaced_alloc(log: Log) -> None:
    """web: eval 1 placed alloc 0, eval 2 stopped it and placed alloc 1 (running)."""
    log.apply(e.NodeRegister(Node=node(1)))
    log.register(make_job("web", TaskGroups=[replace(make_job().TaskGroups[0], Count=1)]))
    ev1 = log.fsm.state.by_index(t.EVALS, "job", "web")[0]
    log.apply(e.PlanResults(JobID="web", Allocs=[alloc("web", 0, EvalID=ev1.ID, ModifyTime=1)],
                            Evals=[finish(ev1, QueuedAllocations={"g": 0})]))
    client(log, "web-alloc-0", "running")
    ev2 = make_eval("web", 90)
    log.apply(e.JobEvaluate(JobID="web", Eval=ev2))
    ev2 = log.fsm.state.get(t.EVALS, ev2.ID)
    log.apply(e.PlanResults(JobID="web", Allocs=[alloc("web", 1, EvalID=ev2.ID, ModifyTime=1)],
                            Stops=[e.AllocStop(AllocID="web-alloc-0")],
                            Evals=[finish(ev2, QueuedAllocations={"g": 0})]))
    client(log, "web-alloc-0", "complete")
    client(log, "web-alloc-1", "running")


def test_eval_gc_takes_the_terminal_eval_with_its_allocs_and_keeps_the_summary():
    log = Log()
    service_with_replaced_alloc(log)
    before = summary_of(log, "web").Summary
    assert (before["g"].Running, before["g"].Complete) == (1, 1)
    done = gc(log)
    state = log.fsm.state
    assert done["Evals"] == 1 and done["Allocs"] == 1 and done["Jobs"] == 0
    assert state.get(t.ALLOCS, "web-alloc-0") is None
    assert state.get(t.ALLOCS, "web-alloc-1") is not None   # running: untouched
    # the eval that carries the Queued figures stays, so does the live alloc's
    assert [ev.ID for ev in state.by_index(t.EVALS, "job", "web")] == ["eval-web-90"]
    assert summary_of(log, "web").Summary == before
    assert state.get(t.COLLECTED_ALLOCS, "web").Summary["g"].Complete == 1
    assert_summaries_recount(log)
    # a later change recounts from the allocations plus what was collected
    client(log, "web-alloc-1", "failed")
    s = summary_of(log, "web").Summary["g"]
    assert (s.Running, s.Complete, s.Failed) == (0, 1, 1)
    assert_summaries_recount(log)
    assert_replays_identically(log.entries, log.fsm.state)


def test_thresholds_keep_young_objects():
    log = Log()
    service_with_replaced_alloc(log)
    young = Thresholds(eval_ns=NOW, job_ns=NOW, deployment_ns=NOW, node_ns=NOW)
    assert choose(log.fsm.state, NOW, young, 0) == []
    assert choose(log.fsm.state, NOW, Thresholds(eval_ns=NOW - 2), 0) != []


def test_the_fsm_checks_every_object_again():
    log = Log()
    service_with_replaced_alloc(log)
    state = log.fsm.state
    ev = state.get(t.EVALS, "eval-web-2")
    live = state.get(t.ALLOCS, "web-alloc-1")
    carrier = state.get(t.EVALS, "eval-web-90")
    web = state.get(t.JOBS, "web")
    n1 = state.get(t.NODES, "node-1")
    res = log.apply(e.CoreGC(
        Evals={ev.ID: ev.ModifyIndex - 1,             # changed since it was chosen
               carrier.ID: carrier.ModifyIndex},      # carries Queued; its alloc runs
        Allocs={live.ID: live.ModifyIndex},           # running
        Jobs={web.ID: web.ModifyIndex},               # not dead, not stopped
        Nodes={n1.ID: n1.ModifyIndex}))               # ready, with allocations
    assert {k: v for k, v in res.items() if k != "Index"} == \
        {"Jobs": 0, "Evals": 0, "Allocs": 0, "Deployments": 0, "Nodes": 0}
    assert log.fsm.state.get(t.EVALS, ev.ID) is not None
    # unknown ids are skipped too
    assert log.apply(e.CoreGC(Evals={"nope": 1}, Allocs={"nope": 1}))["Evals"] == 0


def test_batch_evals_stay_while_the_job_lives_and_go_with_it():
    log = Log()
    log.apply(e.NodeRegister(Node=node(1)))
    log.register(make_job("b", Type="batch"))
    ev = log.fsm.state.by_index(t.EVALS, "job", "b")[0]
    log.apply(e.PlanResults(JobID="b", Allocs=[alloc("b", 0, EvalID=ev.ID, ModifyTime=1)],
                            Evals=[finish(ev, QueuedAllocations={"g": 0})]))
    client(log, "b-alloc-0", "complete")
    assert log.fsm.state.get(t.JOBS, "b").Status == "dead"
    # eval GC alone (jobs too young): a finished batch job keeps its eval and alloc,
    # or the scheduler would run it again
    evals_only = Thresholds(eval_ns=0, job_ns=NOW, deployment_ns=0, node_ns=0)
    assert choose(log.fsm.state, NOW, evals_only, 0) == []
    ev = log.fsm.state.get(t.EVALS, ev.ID)
    log.apply(e.CoreGC(Evals={ev.ID: ev.ModifyIndex}))
    assert log.fsm.state.get(t.EVALS, ev.ID) is not None
    # stopped and dead: its evals and allocs may go
    log.apply(e.JobDeregister(JobID="b", Eval=make_eval("b", 50), SubmitTime=50))
    stop_ev = log.fsm.state.get(t.EVALS, "eval-b-50")
    log.apply(e.EvalUpdate(Evals=[finish(stop_ev)]))
    assert log.fsm.state.get(t.JOBS, "b").Status == "dead"
    # (the eval with the Queued figures stays while the job is there)
    assert set(choose(log.fsm.state, NOW, evals_only, 0)[0].Evals) == {"eval-b-50"}
    # with job GC, the dead batch job goes whole, versions and summary included
    assert gc(log)["Jobs"] == 1
    state = log.fsm.state
    assert state.get(t.JOBS, "b") is None and state.get(t.JOB_SUMMARIES, "b") is None
    assert not state.by_index(t.JOB_VERSIONS, "job", "b")
    assert not state.by_index(t.EVALS, "job", "b") and not state.by_index(t.ALLOCS, "job", "b")
    assert_replays_identically(log.entries, state)


def test_collected_children_stay_counted_as_dead_in_their_parent():
    log = Log()
    log.apply(e.NodeRegister(Node=node(1)))
    log.apply(e.JobRegister(Job=make_job("p", Type="batch", ParameterizedJob=ParameterizedJobConfig(
        Payload="optional")), SubmitTime=1))
    for i in range(2):
        child = f"p/dispatch-{i}"
        log.apply(e.JobDispatch(ParentID="p", DispatchedJobID=child,
                                Eval=make_eval(child, 10 + i), SubmitTime=10 + i))
    ev = log.fsm.state.get(t.EVALS, "eval-p/dispatch-0-10")
    log.apply(e.PlanResults(JobID="p/dispatch-0", Evals=[finish(ev, QueuedAllocations={"g": 0})],
                            Allocs=[alloc("p/dispatch-0", 0, EvalID=ev.ID, ModifyTime=1)]))
    client(log, "p/dispatch-0-alloc-0", "complete")
    children = summary_of(log, "p").Children
    assert (children.Pending, children.Running, children.Dead) == (1, 0, 1)
    done = gc(log)
    state = log.fsm.state
    assert done["Jobs"] == 1 and state.get(t.JOBS, "p/dispatch-0") is None
    assert state.get(t.JOBS, "p/dispatch-1") is not None     # pending: stays
    assert state.get(t.JOBS, "p") is not None                # a live parent stays
    children = summary_of(log, "p").Children
    # Nomad's DeleteJob: a collected dead child stays counted as dead
    assert (children.Pending, children.Running, children.Dead) == (1, 0, 1)
    assert_replays_identically(log.entries, state)


def test_stopped_parameterized_parent_goes():
    log = Log()
    log.apply(e.JobRegister(Job=make_job("p", Type="batch", ParameterizedJob=ParameterizedJobConfig(
        Payload="optional")), SubmitTime=1))    # a parent gets no eval
    assert gc(log).get("Jobs", 0) == 0
    log.apply(e.JobDeregister(JobID="p", SubmitTime=5))
    assert gc(log)["Jobs"] == 1 and log.fsm.state.get(t.JOBS, "p") is None


def test_deployments_and_nodes():
    log = Log()
    service_with_replaced_alloc(log)
    dep = Deployment(ID="d1", JobID="web", Status="running",
                     TaskGroups={"g": DeploymentState(DesiredTotal=1)})
    log.apply(e.PlanResults(JobID="web", Deployment=dep))
    log.apply(e.NodeRegister(Node=node(2)))
    log.apply(e.NodeStatus(NodeID="node-2", Status="down", UpdatedAt=1))
    state = log.fsm.state
    picked = choose(state, NOW, FORCE, state.last_index)
    assert "d1" not in (picked[0].Deployments or {})          # running
    assert set(picked[0].Nodes) == {"node-2"}                   # down, no allocations
    assert choose(state, NOW, FORCE, 0)[0].Nodes                # nodes need no witness
    log.apply(e.DeploymentStatusChange(DeploymentUpdate=e.DeploymentStatusUpdate(
        DeploymentID="d1", Status="successful")))
    done = gc(log)
    assert (done["Deployments"], done["Nodes"]) == (1, 1)
    state = log.fsm.state
    assert state.get(t.DEPLOYMENTS, "d1") is None and state.get(t.NODES, "node-2") is None
    assert state.get(t.NODES, "node-1") is not None
    # a down node that still holds an allocation stays
    log.apply(e.NodeStatus(NodeID="node-1", Status="down", UpdatedAt=2))
    assert all("node-1" not in (b.Nodes or {}) for b in choose(log.fsm.state, NOW, FORCE, 0))


def test_big_collections_are_split_into_entries():
    picked = {"Jobs": {}, "Evals": {f"e{i}": i for i in range(MAX_IDS + 5)},
              "Allocs": {"a": 1}, "Deployments": {}, "Nodes": {}}
    entries = _pack(picked)
    assert [len(b.Evals or {}) + len(b.Allocs or {}) for b in entries] == [MAX_IDS, 6]


def test_random_histories_with_stale_collections_keep_every_invariant():
    """Jobs placed, run, finished, updated and stopped at random, with collections
    chosen on the current state or on a state a few entries old (a slow leader): a
    collection never deletes a live allocation or eval, summaries always equal their
    recount, every allocation's job exists, and the log replays to the same bytes."""
    import random
    for seed in range(6):
        rng = random.Random(seed)
        log = Log()
        log.apply(e.NodeRegister(Node=node(1)))
        old_states = []
        n_alloc = 0
        for step in range(150):
            state = log.fsm.state
            old_states = (old_states + [state])[-8:]
            jid = f"j{rng.randrange(4)}"
            roll = rng.random()
            job = state.get(t.JOBS, jid)
            if roll < 0.2 or job is None:
                log.register(make_job(jid, Type=rng.choice(["service", "batch"]),
                                      Meta={"v": str(rng.randrange(3))}))
            elif roll < 0.45:
                pending = [ev for ev in state.by_index(t.EVALS, "job", jid)
                           if ev.Status == "pending"]
                if pending:
                    ev = pending[0]
                    live = [a for a in state.by_index(t.ALLOCS, "job", jid) if not a.terminal()]
                    stops = [e.AllocStop(AllocID=a.ID) for a in live if rng.random() < 0.5]
                    new = [] if job.Stop else [
                        alloc(jid, (n_alloc := n_alloc + 1), EvalID=ev.ID, ModifyTime=1)]
                    log.apply(e.PlanResults(JobID=jid, JobVersion=job.Version, Allocs=new,
                                            Stops=stops, Evals=[finish(
                                                ev, QueuedAllocations={"g": 0})]))
            elif roll < 0.7:
                mine = [a for a in state.by_index(t.ALLOCS, "job", jid)
                        if a.ClientStatus in ("pending", "running")]
                if mine:
                    a = rng.choice(mine)
                    status = rng.choice(["running", "complete", "failed"]) \
                        if a.DesiredStatus == "run" else "complete"
                    client(log, a.ID, status)
            elif roll < 0.8:
                log.apply(e.JobDeregister(JobID=jid, Eval=make_eval(jid, log.index + 1),
                                          SubmitTime=log.index + 1))
            elif roll < 0.9:
                gc(log)
            else:
                # a collection chosen a few entries ago applies now
                before = log.fsm.state
                for body in choose(rng.choice(old_states), NOW, FORCE, 10**9):
                    log.apply(body)
                after = log.fsm.state
                for a in before.rows(t.ALLOCS):
                    if not (a.terminal() and a.ClientStatus in ("complete", "failed", "lost")):
                        assert after.get(t.ALLOCS, a.ID) is not None, (seed, step, a.ID)
                for ev in before.rows(t.EVALS):
                    if ev.Status not in ("complete", "failed", "canceled"):
                        assert after.get(t.EVALS, ev.ID) is not None, (seed, step, ev.ID)
            state = log.fsm.state
            assert_summaries_recount(log)
            for a in state.rows(t.ALLOCS):
                assert state.get(t.JOBS, a.JobID) is not None, (seed, step, a.ID)
        assert_replays_identically(log.entries, log.fsm.state)


def test_deployments_age_by_the_replicated_time_table():
    """A deployment carries no time: each pass's first entry records (the index its
    collector had applied, its clock), and a terminal deployment goes once a sample a
    threshold old covers it, whichever leader took that sample."""
    import asyncio

    from caravan.fsm.gc import WITNESS_SAMPLES, applied_by
    from caravan.scheduler.core_gc import collect

    log = Log()
    service_with_replaced_alloc(log)
    log.apply(e.PlanResults(JobID="web", Deployment=Deployment(
        ID="d1", JobID="web", Status="running", TaskGroups={"g": DeploymentState()})))
    log.apply(e.DeploymentStatusChange(DeploymentUpdate=e.DeploymentStatusUpdate(
        DeploymentID="d1", Status="successful")))
    th = Thresholds(eval_ns=10 * NOW, job_ns=10 * NOW, deployment_ns=HOUR, node_ns=10 * NOW)

    async def submit(blob: bytes) -> dict:
        _, body = e.decode(blob)
        return log.apply(body)

    def run(now: int) -> dict:
        return asyncio.run(collect(log.fsm.state, Submitter(submit, lambda: ""), now, th))

    assert applied_by(log.fsm.state, NOW) == 0
    d_index = log.fsm.state.get(t.DEPLOYMENTS, "d1").ModifyIndex
    # nothing is old enough, but the deployment needs a sample: an empty entry
    before = log.index
    assert run(NOW)["Deployments"] == 0 and log.index == before + 1
    assert applied_by(log.fsm.state, NOW) == before >= d_index
    first, before = before, log.index
    run(NOW + HOUR // 2)                       # covered already: no entry
    assert log.index == before
    assert run(NOW + HOUR)["Deployments"] == 1     # a sample an hour old covers it
    assert log.fsm.state.get(t.DEPLOYMENTS, "d1") is None
    # the table stays small, ascending, and still covers all of history
    for i in range(2 * WITNESS_SAMPLES):
        log.apply(e.CoreGC(Now=NOW + (i + 2) * HOUR, Applied=log.index))
    w = log.fsm.state.get(t.GC_WITNESS, "gc")
    assert len(w.Applied) <= WITNESS_SAMPLES and w.Applied == sorted(w.Applied)
    assert w.Times == sorted(w.Times) and w.Applied[0] == first
    # a sample that is not later than the last one adds nothing
    log.apply(e.CoreGC(Now=NOW, Applied=log.index))
    assert log.fsm.state.get(t.GC_WITNESS, "gc") == w
    assert_replays_identically(log.entries, log.fsm.state)
