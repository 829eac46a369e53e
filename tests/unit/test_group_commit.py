"""Group commit: a Batch entry applies its members in order at one index, each answered
as if alone; the GroupCommit submitter sends a lone write at once and groups the writes
that queue up behind rounds in flight."""
from __future__ import annotations

import asyncio

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.apply import FSM
from caravan.server.group_commit import GroupCommit
from tests.unit.test_fsm import make_eval, make_job


def register(job_id: str, rid: str, **kw) -> bytes:
    return e.encode(e.JobRegister(RequestID=rid, Job=make_job(job_id, **kw),
                                  Eval=make_eval(job_id, 1), SubmitTime=1))


def test_a_batch_applies_each_member_at_its_index_and_answers_each():
    fsm = FSM()
    first = register("a", "r1")
    second = register("b", "r2")
    refused = e.encode(e.JobRegister(RequestID="r3", Job=make_job("b"), EnforceIndex=True,
                                     JobModifyIndex=99, Eval=make_eval("b", 2)))
    nested = e.encode(e.Batch(Entries=[register("c", "r4")]))
    out = fsm.apply(7, e.encode(e.Batch(Entries=[first, second, refused, nested])))
    results = out["Results"]
    assert out["Index"] == 7 and len(results) == 4
    assert results[0]["JobModifyIndex"] == 7 and results[1]["JobModifyIndex"] == 7
    assert results[2]["Code"] == 409 and "Enforcing job modify index" in results[2]["Error"]
    assert results[3] == {"Error": "a batch may not hold a batch", "Code": 400, "Index": 7}
    assert {j.ID for j in fsm.state.rows(t.JOBS)} == {"a", "b"}
    assert fsm.state.get(t.JOBS, "a").ModifyIndex == 7

    # the same batch again (a retry after an unknown outcome): every member is answered
    # from its first application and nothing changes
    before = fsm.state.tables[t.JOBS]
    again = fsm.apply(8, e.encode(e.Batch(Entries=[first, second])))
    assert [r["JobModifyIndex"] for r in again["Results"]] == [7, 7]
    assert fsm.state.tables[t.JOBS] is before


def test_a_batch_ends_the_same_as_its_members_applied_alone():
    alone, batched = FSM(), FSM()
    blobs = [register(f"j{i}", f"r{i}") for i in range(5)]
    for blob in blobs:
        alone.apply(3, blob)
    batched.apply(3, e.encode(e.Batch(Entries=blobs)))
    assert sorted(j.ID for j in alone.state.rows(t.JOBS)) == \
        sorted(j.ID for j in batched.state.rows(t.JOBS))
    for job in alone.state.rows(t.JOBS):
        assert batched.state.get(t.JOBS, job.ID) == job


def test_a_batch_is_published_once_whole():
    """Readers (and the blocking queries woken by ``on_commit``) see a batch all at once:
    a state at the batch's index always holds every member. Published member by member,
    a follower's worker that waited for the index planned without a plan committed in
    the same batch and placed its allocations twice."""
    fsm = FSM()
    seen = []
    fsm.on_commit = lambda touched, index: seen.append(
        (index, touched, sorted(j.ID for j in fsm.state.rows(t.JOBS))))
    fsm.apply(4, e.encode(e.Batch(Entries=[register(f"j{i}", f"r{i}") for i in range(3)])))
    assert len(seen) == 1
    index, touched, jobs = seen[0]
    assert index == 4 and jobs == ["j0", "j1", "j2"] and t.JOBS in touched and t.EVALS in touched
    assert fsm.state.last_index == 4


class FakeRaft:
    """Applies what it is given to an FSM after a delay, as a replicated round would."""

    def __init__(self, fail_on: int | None = None):
        self.fsm = FSM()
        self.index = 0
        self.sent: list[bytes] = []
        self.fail_on = fail_on

    async def submit(self, blob: bytes) -> dict:
        self.sent.append(blob)
        await asyncio.sleep(0.01)
        if self.fail_on is not None and len(self.sent) == self.fail_on:
            raise TimeoutError("no outcome")
        self.index += 1
        return self.fsm.apply(self.index, blob)


def test_group_commit_sends_a_lone_write_at_once_and_groups_the_rest():
    async def scenario():
        raft = FakeRaft()
        gc = GroupCommit(raft.submit, max_inflight=1)
        lone = await gc.submit(register("solo", "s"))
        assert lone["JobModifyIndex"] == 1 and raft.sent[0][0] == e.EntryType.JOB_REGISTER
        results = await asyncio.gather(*(gc.submit(register(f"j{i}", f"r{i}"))
                                         for i in range(20)))
        return raft, gc, results
    raft, gc, results = asyncio.run(scenario())
    # the first of the 20 leaves alone; the 19 that queued behind it leave together
    assert [blob[0] for blob in raft.sent[1:]] == [e.EntryType.JOB_REGISTER, e.EntryType.BATCH]
    assert [r["JobModifyIndex"] for r in results] == [2] + [3] * 19
    assert gc.rounds == 3 and gc.entries == 21
    assert {j.ID for j in raft.fsm.state.rows(t.JOBS)} == {"solo", *(f"j{i}" for i in range(20))}


def test_group_commit_limits_and_failures():
    async def scenario():
        raft = FakeRaft(fail_on=2)
        gc = GroupCommit(raft.submit, max_inflight=1, max_entries=4)
        outcomes = await asyncio.gather(*(gc.submit(register(f"j{i}", f"r{i}"))
                                          for i in range(9)), return_exceptions=True)
        return raft, outcomes
    raft, outcomes = asyncio.run(scenario())
    sizes = [len(e.decode(b)[1].Entries) if b[0] == e.EntryType.BATCH else 1 for b in raft.sent]
    assert sizes == [1, 4, 4]
    # the second round's outcome is unknown: each of its four writers hears so
    assert [type(o).__name__ for o in outcomes[1:5]] == ["TimeoutError"] * 4
    assert all(isinstance(o, dict) and "Error" not in o for o in outcomes[:1] + outcomes[5:])


def test_group_commit_byte_limit_keeps_big_entries_alone():
    async def scenario():
        raft = FakeRaft()
        gc = GroupCommit(raft.submit, max_inflight=1, max_bytes=100)   # < one entry
        await asyncio.gather(*(gc.submit(register(f"j{i}", f"r{i}")) for i in range(4)))
        return raft
    raft = asyncio.run(scenario())
    assert all(b[0] == e.EntryType.JOB_REGISTER for b in raft.sent) and len(raft.sent) == 4
