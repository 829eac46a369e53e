"""The one typed submit (``caravan.fsm.submit``): request ids, the FSM's answer as
``Applied``, a refusal as ``EntryRejected``, and what reaches the log."""
from __future__ import annotations

import asyncio
import itertools

import pytest

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.apply import FSM
from caravan.fsm.submit import Applied, EntryRejected, Submitter, outcome
from tests.unit.test_fsm import make_eval, make_job


class OneNodeLog:
    """Applies each submitted blob at once; remembers what it was handed."""

    def __init__(self):
        self.fsm = FSM()
        self.index = 0
        self.calls: list[tuple] = []

    async def submit(self, blob: bytes, *held) -> dict:
        self.calls.append((blob, *held))
        if held:
            self.fsm.hold_decoded(blob, held[0])
        self.index += 1
        return self.fsm.apply(self.index, blob)


def submitter(log: OneNodeLog) -> Submitter:
    ids = itertools.count(1)
    return Submitter(log.submit, lambda: f"rq-{next(ids)}")


def test_an_applied_entry_answers_its_index_and_values():
    log = OneNodeLog()
    body = e.JobRegister(Job=make_job("web"), Eval=make_eval("web", 1), SubmitTime=1)
    applied = asyncio.run(submitter(log)(body))
    assert isinstance(applied, Applied)
    assert applied.index == 1 == applied["Index"]
    assert applied["EvalID"] == "eval-web-1"
    assert applied["JobModifyIndex"] == 1
    assert applied.get("Skipped") is None and "EvalCreateIndex" in applied
    assert log.fsm.state.get(t.JOBS, "web") is not None


def test_each_submit_stamps_a_fresh_request_id():
    log = OneNodeLog()
    submit = submitter(log)
    first, second = e.LeaderEpochStart(), e.LeaderEpochStart()
    a = asyncio.run(submit(first))
    b = asyncio.run(submit(second))
    assert (first.RequestID, second.RequestID) == ("rq-1", "rq-2")
    assert [e.decode(call[0])[1].RequestID for call in log.calls] == ["rq-1", "rq-2"]
    # two writes, not one retried: each is applied at its own index
    assert (a["Epoch"], b["Epoch"]) == (1, 2)


def test_a_refused_entry_raises_the_code_and_message_the_fsm_recorded():
    log = OneNodeLog()
    with pytest.raises(EntryRejected) as caught:
        asyncio.run(submitter(log)(e.JobStability(JobID="nope", JobVersion=0, Stable=True)))
    rej = caught.value
    assert (rej.code, rej.message, rej.index) == (404, "job not found", 1)
    assert str(rej) == "job not found"
    # the FSM recorded the refusal under the request id: a retry gets the same answer
    assert log.fsm.state.get(t.REQUESTS, "rq-1").Result["Code"] == 404


def test_only_a_held_entry_hands_its_body_to_the_log():
    log = OneNodeLog()
    submit = submitter(log)
    plain, held = e.LeaderEpochStart(), e.LeaderEpochStart()
    asyncio.run(submit(plain))
    asyncio.run(submit(held, hold=True))
    assert len(log.calls[0]) == 1
    assert len(log.calls[1]) == 2 and log.calls[1][1] is held


def test_a_log_failure_passes_through_unchanged():
    class Down(Exception):
        pass

    async def no_leader(blob: bytes) -> dict:
        raise Down("No cluster leader")

    with pytest.raises(Down):
        asyncio.run(Submitter(no_leader, lambda: "rq")(e.LeaderEpochStart()))


def test_outcome_of_an_answer_without_a_code_is_an_internal_error():
    with pytest.raises(EntryRejected) as caught:
        outcome({"Error": "boom", "Index": 7})
    assert (caught.value.code, caught.value.index) == (500, 7)
    applied = outcome({"Index": 3, "Deleted": 2})
    assert applied.index == 3 and dict(applied) == {"Index": 3, "Deleted": 2}
    assert len(applied) == 2


def test_a_request_id_the_caller_decided_is_kept():
    log = OneNodeLog()
    body = e.LeaderEpochStart(RequestID="decided-1")
    asyncio.run(submitter(log)(body))
    assert body.RequestID == "decided-1"
    assert log.fsm.state.get(t.REQUESTS, "decided-1") is not None
