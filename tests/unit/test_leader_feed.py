"""The leader's broker feed: pending evals reach the broker from the evals each commit
wrote (``FSM.write_listeners``), without waiting for a full scan of every pending eval."""
from __future__ import annotations

import asyncio
import time
from types import SimpleNamespace

from msgspec.structs import replace

from caravan.fsm import entries as e
from caravan.fsm.apply import FSM
from caravan.fsm.store import decode_state, encode_state
from caravan.scheduler import eval_feed
from caravan.server import leader
from caravan.server.notify import Notifier
from tests.unit.test_fsm import Log, make_eval, make_job


async def _until(predicate, what: str) -> None:
    for _ in range(400):
        if predicate():
            return
        await asyncio.sleep(0.005)
    raise AssertionError(f"timed out waiting for {what}")


def test_new_pending_evals_reach_the_broker_without_a_full_scan(monkeypatch):
    monkeypatch.setattr(eval_feed, "FEED_RESCAN", 1e9)   # only the first pass scans everything

    async def scenario():
        fsm = FSM()
        log = Log(fsm)
        notifier = Notifier(asyncio.get_running_loop())
        fsm.on_commit = notifier.notify_threadsafe
        handed: list[str] = []
        broker = SimpleNamespace(enqueue=lambda ev: handed.append(ev.ID))

        log.register(make_job("before"))                 # pending before the leader starts
        task = asyncio.ensure_future(eval_feed.feed_pending(
            broker, lambda: fsm.state, lambda: notifier, fsm.write_listeners, time.time_ns))
        await _until(lambda: handed == ["eval-before-1"], "the first full scan")

        log.index += 1
        fsm.apply(log.index, e.encode(e.Batch(Entries=[
            e.encode(e.JobRegister(RequestID=f"r{i}", Job=make_job(f"j{i}"),
                                   Eval=make_eval(f"j{i}", 5))) for i in range(3)])))
        await _until(lambda: len(handed) == 4, "the batch's evals")
        assert handed[1:] == ["eval-j0-5", "eval-j1-5", "eval-j2-5"]

        # an eval written but no longer pending, and one that is not due yet, stay out
        log.apply(e.EvalUpdate(Evals=[replace(make_eval("j0", 6), Status="complete")]))
        log.apply(e.EvalUpdate(Evals=[replace(make_eval("j1", 7), Wait=60 * 10 ** 9,
                                              CreateTime=time.time_ns())]))
        log.register(make_job("after"))
        await _until(lambda: len(handed) == 5, "the next registration")
        assert handed[4] == f"eval-after-{log.index}"

        # a replaced state (snapshot install) may hold anything: everything is scanned
        other = Log()
        other.register(make_job("restored"), n=100)
        fsm.restore(decode_state(encode_state(other.fsm.state)))
        await _until(lambda: "eval-restored-100" in handed, "a full scan after restore")

        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        assert fsm.write_listeners == []   # the listener goes with the feed

    asyncio.run(scenario())


def test_written_keys_hands_over_each_key_once_in_order():
    from caravan.scheduler.background import WrittenKeys
    listeners: list = []
    with WrittenKeys(listeners, "evals") as keys:
        assert len(listeners) == 1
        listeners[0]({"evals": ["a", "b"], "deployments": ["d"]})
        listeners[0](None)
        listeners[0]({"evals": ["c"]})
        assert keys.take() == ["a", "b", None, "c"]
        assert keys.take() == []
    assert listeners == []


def test_extra_workers_take_no_eval_while_clients_write():
    """``ClientWrites`` is quiet only with no write under way and none ended in the last
    ``WRITES_QUIET``; a worker given it as ``may_take`` dequeues nothing until then."""
    from caravan.scheduler.worker import Worker
    clock = [100.0]
    writes = leader.ClientWrites(clock=lambda: clock[0])
    assert writes.quiet()
    with writes.writing():
        assert not writes.quiet() and writes.in_flight == 1
    assert not writes.quiet()
    clock[0] += leader.WRITES_QUIET + 0.001
    assert writes.quiet()

    class Broker:
        dequeues = 0

        async def dequeue(self, timeout):
            Broker.dequeues += 1
            await asyncio.sleep(timeout)

    async def main():
        with writes.writing():
            w = Worker("w9", Broker(), None, None, None, None, None,
                       may_take=writes.quiet)
            task = asyncio.ensure_future(w.run())
            await asyncio.sleep(0.12)
            assert Broker.dequeues == 0          # paused while a write is under way
        clock[0] += leader.WRITES_QUIET + 0.001
        await asyncio.sleep(0.12)
        assert Broker.dequeues == 1              # taking evals again
        task.cancel()
    asyncio.run(main())


def test_an_eval_past_its_delivery_limit_fails_with_a_delayed_follow_up():
    ev = replace(make_eval("j", 3), Status="pending", CreateIndex=3, ModifyIndex=3)
    body = eval_feed.delivery_failed(ev, 7_000, lambda: "follow-1", lambda: "req-1")
    failed, follow = body.Evals
    assert body.RequestID == "req-1"
    assert (failed.ID, failed.Status, failed.ModifyTime) == (ev.ID, "failed", 7_000)
    assert failed.StatusDescription == "evaluation reached delivery limit (3)"
    assert (follow.ID, follow.Status, follow.TriggeredBy, follow.PreviousEval) == (
        "follow-1", "pending", "failed-follow-up", ev.ID)
    assert (follow.Wait, follow.CreateTime, follow.CreateIndex) == (eval_feed.FOLLOW_UP_WAIT_NS, 7_000, 0)
    assert follow.JobID == ev.JobID and follow.StatusDescription == ""
