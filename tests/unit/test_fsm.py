"""The FSM, driven directly with log entries: determinism, versions, checks, children."""
from __future__ import annotations

import random

import msgspec
import pytest
from msgspec.structs import replace

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.apply import FSM
from caravan.fsm.store import decode_state, encode_state, state_hash
from caravan.fsm.structs import Evaluation, Job, ParameterizedJobConfig, PeriodicConfig, Task, TaskGroup


def make_job(job_id="web", **kw) -> Job:
    base = dict(ID=job_id, Name=job_id, Region="global", Namespace="default", Type="service",
                Priority=50, Datacenters=["dc1"],
                TaskGroups=[TaskGroup(Name="g", Count=1, Tasks=[Task(Name="t", Driver="mock")])])
    base.update(kw)
    return Job(**base)


def make_eval(job_id, n, trigger="job-register") -> Evaluation:
    return Evaluation(ID=f"eval-{job_id}-{n}", Priority=50, Type="service", TriggeredBy=trigger,
                      JobID=job_id, Status="pending", CreateTime=n, ModifyTime=n)


class Log:
    """Applies entries with increasing indexes, like raft would."""

    hold = False   # apply each entry from the body it was encoded from (FSM.hold_decoded)

    def __init__(self, fsm: FSM | None = None):
        self.fsm = fsm or FSM()
        self.index = 0
        self.entries: list[bytes] = []

    def apply(self, body: e.Request) -> dict:
        self.index += 1
        if not body.RequestID:
            body.RequestID = f"req-{self.index}"
        blob = e.encode(body)
        self.entries.append(blob)
        if self.hold:
            self.fsm.hold_decoded(blob, body)
        return self.fsm.apply(self.index, blob)

    def register(self, job: Job, n: int | None = None, **kw) -> dict:
        n = self.index + 1 if n is None else n
        return self.apply(e.JobRegister(Job=job, Eval=make_eval(job.ID, n), SubmitTime=n, **kw))


def random_workload(log: Log, rng: random.Random, steps: int) -> None:
    ids = [f"job-{i}" for i in range(6)]
    log.register(make_job("batchy", Type="batch",
                          ParameterizedJob=ParameterizedJobConfig(Payload="optional",
                                                                  MetaOptional=["k"])))
    log.register(make_job("cron", Type="batch",
                          Periodic=PeriodicConfig(Enabled=True, Spec="* * * * *",
                                                  SpecType="cron", TimeZone="UTC")))
    for step in range(steps):
        op = rng.choice(["reg", "reg", "reg", "stop", "purge", "revert", "stable", "dispatch",
                         "force", "eval"])
        jid = rng.choice(ids)
        if op == "reg":
            log.register(make_job(jid, Priority=rng.randint(40, 60), Meta={"s": str(step % 3)}))
        elif op == "stop":
            log.apply(e.JobDeregister(JobID=jid, Eval=make_eval(jid, step, "job-deregister")))
        elif op == "purge":
            log.apply(e.JobDeregister(JobID=jid, Purge=True))
        elif op == "revert":
            log.apply(e.JobRevert(JobID=jid, JobVersion=rng.randint(0, 4),
                                  Eval=make_eval(jid, step)))
        elif op == "stable":
            log.apply(e.JobStability(JobID=jid, JobVersion=rng.randint(0, 4), Stable=True))
        elif op == "dispatch":
            log.apply(e.JobDispatch(ParentID="batchy", DispatchedJobID=f"batchy/dispatch-{step}",
                                    Meta={"k": "v"}, Eval=make_eval(f"batchy/dispatch-{step}", step),
                                    SubmitTime=step))
        elif op == "force":
            log.apply(e.PeriodicForce(ParentID="cron", LaunchTime=step * 1_000_000_000,
                                      Eval=make_eval("cron", step, "periodic-job")))
        else:
            log.apply(e.JobEvaluate(JobID=jid, Eval=make_eval(jid, step, "job-eval")))


def assert_replays_identically(entries: list[bytes], final) -> None:
    """The same entries applied to a fresh FSM, and to an FSM restored from a snapshot
    taken half-way plus the tail, give byte-identical state."""
    fresh = FSM()
    for i, blob in enumerate(entries, start=1):
        fresh.apply(i, blob)
    assert encode_state(fresh.state) == encode_state(final)
    half = len(entries) // 2
    first_half = FSM()
    for i, blob in enumerate(entries[:half], start=1):
        first_half.apply(i, blob)
    restored = FSM()
    restored.restore(decode_state(encode_state(first_half.state)))
    for i, blob in enumerate(entries[half:], start=half + 1):
        restored.apply(i, blob)
    assert state_hash(restored.state) == state_hash(final)


@pytest.mark.parametrize("seed", range(5))
def test_same_entries_give_byte_identical_state(seed):
    log = Log()
    random_workload(log, random.Random(seed), 300)
    assert_replays_identically(log.entries, log.fsm.state)


def test_snapshot_roundtrip_keeps_indexes_and_secondary_indexes():
    log = Log()
    random_workload(log, random.Random(7), 120)
    restored = decode_state(encode_state(log.fsm.state))
    for name in t.SCHEMA:
        assert restored.tables[name].index == log.fsm.state.tables[name].index
        assert restored.tables[name].indexes == log.fsm.state.tables[name].indexes
    assert restored.last_index == log.fsm.state.last_index


def test_resubmitting_the_same_spec_creates_an_eval_but_no_version():
    log = Log()
    first = log.register(make_job())
    again = log.register(make_job())
    assert again["JobModifyIndex"] == first["JobModifyIndex"]
    assert again["EvalID"] and again["EvalID"] != first["EvalID"]
    assert len(log.fsm.state.by_index(t.JOB_VERSIONS, "job", "web")) == 1
    changed = log.register(make_job(Priority=70))
    assert changed["JobModifyIndex"] == changed["Index"]
    assert log.fsm.state.get(t.JOBS, "web").Version == 1


def test_register_stop_register_gives_three_versions():
    log = Log()
    log.register(make_job())
    log.apply(e.JobDeregister(JobID="web", Eval=make_eval("web", 9, "job-deregister")))
    assert log.fsm.state.get(t.JOBS, "web").Stop is True
    log.register(make_job())
    versions = sorted(v.Version for v in log.fsm.state.by_index(t.JOB_VERSIONS, "job", "web"))
    assert versions == [0, 1, 2]


def test_versions_are_pruned_but_the_newest_stable_survives():
    log = Log(FSM(tracked_versions=3))
    log.register(make_job(Priority=1))
    log.apply(e.JobStability(JobID="web", JobVersion=0, Stable=True))
    for p in range(2, 300):
        log.register(make_job(Priority=(p % 100) + 1))
    kept = sorted(v.Version for v in log.fsm.state.by_index(t.JOB_VERSIONS, "job", "web"))
    assert kept == [0, 297, 298]  # numeric order past 255, stable v0 kept
    assert log.fsm.state.get(t.JOB_VERSIONS, ("web", 0)).Stable


@pytest.mark.parametrize("exists,want,expect", [
    (False, 5, "Enforcing job modify index 5: job does not exist"),
    (True, 0, "Enforcing job modify index 0: job already exists"),
    (True, 99, "Enforcing job modify index 99: job exists with conflicting job modify index: 1"),
])
def test_enforce_index_rejections_change_nothing(exists, want, expect):
    log = Log()
    if exists:
        log.register(make_job())
    before = encode_state(log.fsm.state)
    result = log.register(make_job(Priority=99), EnforceIndex=True, JobModifyIndex=want)
    assert result["Error"] == expect and result["Code"] == 409
    after = log.fsm.state
    assert encode_state(after).replace(b"", b"") != b""  # encodes
    # only the request bookkeeping may differ: jobs, evals and versions are untouched
    restored = decode_state(before)
    for table in (t.JOBS, t.JOB_VERSIONS, t.EVALS, t.JOB_SUMMARIES):
        assert list(restored.rows(table)) == list(after.rows(table))


def test_enforce_index_success_on_new_and_existing_job():
    log = Log()
    assert "Error" not in log.register(make_job(), EnforceIndex=True, JobModifyIndex=0)
    current = log.fsm.state.get(t.JOBS, "web").JobModifyIndex
    assert "Error" not in log.register(make_job(Priority=10), EnforceIndex=True,
                                       JobModifyIndex=current)


def test_a_retried_request_is_answered_from_its_first_application():
    log = Log()
    body = e.JobRegister(RequestID="same", Job=make_job(), Eval=make_eval("web", 1))
    first = log.fsm.apply(1, e.encode(body))
    body2 = e.JobRegister(RequestID="same", Job=make_job(), Eval=make_eval("web", 2))
    second = log.fsm.apply(2, e.encode(body2))
    assert second == first
    assert log.fsm.state.count(t.EVALS) == 1


def test_revert_checks_and_creates_a_new_version():
    log = Log()
    log.register(make_job(Priority=10))
    log.register(make_job(Priority=20))
    assert log.apply(e.JobRevert(JobID="web", JobVersion=1))["Error"] == \
        "can't revert to current version"
    rej = log.apply(e.JobRevert(JobID="web", JobVersion=0, EnforcePriorVersion=5))
    assert rej["Code"] == 409 and rej["Error"] == "Current job has version 1; enforcing version 5"
    ok = log.apply(e.JobRevert(JobID="web", JobVersion=0, EnforcePriorVersion=1,
                               Eval=make_eval("web", 50)))
    job = log.fsm.state.get(t.JOBS, "web")
    assert job.Version == 2 and job.Priority == 10 and ok["EvalID"] == "eval-web-50"
    assert log.apply(e.JobRevert(JobID="web", JobVersion=9))["Code"] == 404
    assert log.apply(e.JobRevert(JobID="nope", JobVersion=0))["Code"] == 404


def test_stability_of_an_older_version_leaves_the_current_spec_alone():
    log = Log()
    log.register(make_job(Priority=10))
    log.register(make_job(Priority=20))
    log.apply(e.JobStability(JobID="web", JobVersion=0, Stable=True))
    job = log.fsm.state.get(t.JOBS, "web")
    assert job.Priority == 20 and job.Version == 1 and not job.Stable
    assert log.fsm.state.get(t.JOB_VERSIONS, ("web", 0)).Stable
    missing = log.apply(e.JobStability(JobID="web", JobVersion=7, Stable=True))
    assert missing["Error"] == 'job "web" in namespace "default" at version 7 not found'


def test_status_rules():
    log = Log()
    log.register(make_job())
    assert log.fsm.state.get(t.JOBS, "web").Status == "pending"
    log.apply(e.JobRegister(Job=make_job("cron", Type="batch", Periodic=PeriodicConfig(
        Enabled=True, Spec="* * * * *", SpecType="cron", TimeZone="UTC"))))
    assert log.fsm.state.get(t.JOBS, "cron").Status == "running"
    log.apply(e.JobDeregister(JobID="cron"))
    assert log.fsm.state.get(t.JOBS, "cron").Status == "dead"
    assert log.fsm.state.count(t.EVALS) == 1  # the periodic parent got no eval


def test_dispatch_children_are_counted_and_idempotent():
    log = Log()
    parent = make_job("p", Type="batch", ParameterizedJob=ParameterizedJobConfig(
        Payload="required", MetaRequired=["a"]))
    log.apply(e.JobRegister(Job=parent))
    assert log.apply(e.JobDispatch(ParentID="p", DispatchedJobID="p/dispatch-1-aa",
                                   Meta={"a": "1"}))["Error"] == \
        "Payload is not provided but required by parameterized job"
    ok = log.apply(e.JobDispatch(ParentID="p", DispatchedJobID="p/dispatch-1-aa", Meta={"a": "1"},
                                 Payload=b"x", IdempotencyToken="tok", Eval=make_eval("p/d", 1)))
    again = log.apply(e.JobDispatch(ParentID="p", DispatchedJobID="p/dispatch-2-bb",
                                    Meta={"a": "1"}, Payload=b"x", IdempotencyToken="tok",
                                    Eval=make_eval("p/d", 2)))
    assert again["DispatchedJobID"] == ok["DispatchedJobID"] == "p/dispatch-1-aa"
    child = log.fsm.state.get(t.JOBS, "p/dispatch-1-aa")
    assert child.ParentID == "p" and child.Dispatched and child.Payload == b"x"
    assert log.fsm.state.get(t.JOB_SUMMARIES, "p").Children.Pending == 1
    log.apply(e.JobDeregister(JobID="p/dispatch-1-aa", Purge=True))
    children = log.fsm.state.get(t.JOB_SUMMARIES, "p").Children
    assert (children.Pending, children.Dead) == (0, 1)
    bad = log.apply(e.JobDispatch(ParentID="p", DispatchedJobID="p/x", Meta={"zz": "1"},
                                  Payload=b"x"))
    assert bad["Error"] == "Dispatch request included unpermitted metadata keys: [zz]"


def test_periodic_force_creates_child_and_launch_row():
    log = Log()
    log.apply(e.JobRegister(Job=make_job("cron", Type="batch", Periodic=PeriodicConfig(
        Enabled=True, Spec="* * * * *", SpecType="cron", TimeZone="UTC"))))
    res = log.apply(e.PeriodicForce(ParentID="cron", LaunchTime=1_700_000_000_123_000_000,
                                    Eval=make_eval("x", 1, "periodic-job")))
    child = log.fsm.state.get(t.JOBS, "cron/periodic-1700000000")
    assert child is not None and child.Periodic is None and child.ParentID == "cron"
    ev = log.fsm.state.get(t.EVALS, res["EvalID"])
    assert ev.JobID == child.ID and ev.TriggeredBy == "periodic-job"
    assert log.fsm.state.get(t.PERIODIC_LAUNCHES, "cron").Launch == 1_700_000_000_123_000_000
    log.register(make_job("plain"))
    assert log.apply(e.PeriodicForce(ParentID="plain", LaunchTime=1))["Error"] == \
        "can't force launch non-periodic job"


def test_apply_never_raises():
    fsm = FSM()
    out = fsm.apply(1, bytes([250]) + b"\x80")
    assert out["Code"] == 500 and fsm.fatal
    fsm2 = FSM()
    out = fsm2.apply(1, bytes([e.EntryType.JOB_REGISTER]) + b"\xc1garbage")
    assert out["Code"] == 500 and fsm2.state.last_index == 1


def test_table_indexes_are_zero_until_written_and_track_writes():
    log = Log()
    assert log.fsm.state.table_index(t.JOBS) == 0          # as Nomad's state.Index
    assert log.fsm.state.table_index(t.JOBS, t.EVALS) == 0
    log.register(make_job())
    log.apply(e.Noop())
    assert log.fsm.state.table_index(t.JOBS) == 1
    assert log.fsm.state.table_index(t.ALLOCS) == 0
    assert log.fsm.state.tables[t.EVALS].index == 1
    log.register(make_job("other"), n=5)
    assert log.fsm.state.table_index(t.JOBS) == 3
    assert log.fsm.state.last_index == 3


def test_job_roundtrips_through_entry_encoding():
    job = make_job(Meta={"b": "2", "a": "1"}, Payload=None)
    etype, body = e.decode(e.encode(e.JobRegister(Job=job)))
    assert etype == e.EntryType.JOB_REGISTER and body.Job == job
    assert msgspec.json.decode(msgspec.json.encode(job), type=Job) == job
    assert replace(job, Priority=1) != job


def test_write_listeners_hear_the_evals_and_deployments_each_published_state_wrote():
    """The leader's broker feed and deployment watcher learn which evals and deployments
    changed from ``write_listeners`` instead of scanning whole tables: each published
    state reports the keys it wrote, a batch once with all of its members' keys, a
    rejected entry none, and a restore None (everything may have changed). Listeners run
    before ``on_commit``, so a reader woken by a commit finds the keys already reported."""
    log = Log()
    calls = []
    log.fsm.write_listeners.append(lambda keys: calls.append(("written", keys)))
    log.fsm.on_commit = lambda touched, index: calls.append(("commit", index))
    log.register(make_job("a"))
    assert calls == [("written", {t.EVALS: ["eval-a-1"]}), ("commit", 1)]

    calls.clear()
    batch = [e.encode(e.JobRegister(RequestID=f"b{i}", Job=make_job(f"b{i}"),
                                    Eval=make_eval(f"b{i}", 9))) for i in range(2)]
    refused = e.encode(e.JobRegister(RequestID="r", Job=make_job("a"), EnforceIndex=True,
                                     JobModifyIndex=99, Eval=make_eval("a", 10)))
    log.index += 1
    log.fsm.apply(log.index, e.encode(e.Batch(Entries=[batch[0], refused, batch[1]])))
    assert calls == [("written", {t.EVALS: ["eval-b0-9", "eval-b1-9"]}), ("commit", log.index)]

    calls.clear()
    log.apply(e.JobStability(JobID="a", JobVersion=0, Stable=True))   # writes no eval
    assert [c[0] for c in calls] == ["commit"]

    calls.clear()
    log.fsm.restore(decode_state(encode_state(log.fsm.state)))
    assert calls[0] == ("written", None)


class HoldingLog(Log):
    """Applies each entry the way the node that submitted it does: from the body it
    was encoded from, not from its bytes."""

    hold = True


@pytest.mark.parametrize("seed", range(3))
def test_a_held_body_applies_exactly_as_its_bytes_do(seed, monkeypatch):
    """The leader applies its own writes from the objects it encoded; every other
    replica decodes the bytes. Both must reach byte-identical states."""
    decoded, decode = [], e.decode
    monkeypatch.setattr(e, "decode", lambda blob: decoded.append(blob) or decode(blob))
    log = HoldingLog()
    random_workload(log, random.Random(seed), 150)
    assert decoded == [] and log.fsm._held == {}   # every entry applied from its held body
    monkeypatch.undo()
    assert_replays_identically(log.entries, log.fsm.state)


def test_held_bodies_are_bounded():
    from caravan.fsm.apply import HELD_LIMIT
    fsm = FSM()
    for i in range(HELD_LIMIT + 5):
        body = e.JobRegister(RequestID=f"r{i}", Job=make_job(f"j{i}"))
        fsm.hold_decoded(e.encode(body), body)   # never applied: no leader, say
    assert len(fsm._held) <= HELD_LIMIT
