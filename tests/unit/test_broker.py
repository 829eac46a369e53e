"""The eval broker: order, one eval per job in flight, ack/nack, timeouts, limits."""
from __future__ import annotations

import asyncio

import pytest

from caravan.fsm.structs import Evaluation
from caravan.scheduler.broker import EvalBroker


def ev(i: str, job: str, priority: int = 50, index: int = 1) -> Evaluation:
    return Evaluation(ID=i, JobID=job, Priority=priority, CreateIndex=index, Status="pending")


def run(coro):
    return asyncio.run(coro)


def test_priority_then_age():
    async def main():
        b = EvalBroker()
        b.enqueue(ev("low", "a", 10, 1))
        b.enqueue(ev("high-new", "b", 90, 5))
        b.enqueue(ev("high-old", "c", 90, 2))
        got = [(await b.dequeue(1))[0].ID for _ in range(3)]
        assert got == ["high-old", "high-new", "low"]
    run(main())


def test_one_eval_per_job_in_flight_and_the_next_after_ack():
    async def main():
        b = EvalBroker()
        b.enqueue(ev("a1", "job", index=1))
        b.enqueue(ev("a2", "job", index=2))
        first, token = await b.dequeue(1)
        assert first.ID == "a1"
        assert await b.dequeue(0.05) is None       # a2 waits behind a1
        assert b.ack("a1", token)
        second, _ = await b.dequeue(1)
        assert second.ID == "a2"
    run(main())


def test_duplicates_are_ignored_until_acked():
    async def main():
        b = EvalBroker()
        assert b.enqueue(ev("x", "j"))
        assert not b.enqueue(ev("x", "j"))
        got, token = await b.dequeue(1)
        assert not b.enqueue(ev("x", "j"))          # in flight
        b.ack("x", token)
        assert b.enqueue(ev("x", "j"))               # may come back (e.g. re-blocked)
    run(main())


def test_nack_redelivers_and_wrong_tokens_are_refused():
    async def main():
        b = EvalBroker()
        b.enqueue(ev("x", "j"))
        _, token = await b.dequeue(1)
        assert not b.ack("x", "bogus")
        assert b.nack("x", token)
        again, token2 = await b.dequeue(1)
        assert again.ID == "x" and token2 != token
    run(main())


def test_visibility_timeout_redelivers_and_delivery_limit_fails():
    async def main():
        failed = []
        b = EvalBroker(visibility_timeout=0.05, delivery_limit=2, on_failed=failed.append)
        b.enqueue(ev("x", "j"))
        await b.dequeue(1)                   # never acked: times out
        again = await b.dequeue(1)
        assert again is not None and again[0].ID == "x"
        await asyncio.sleep(0.1)             # second timeout reaches the limit
        assert [f.ID for f in failed] == ["x"]
        assert await b.dequeue(0.05) is None
        b.enqueue(ev("y", "j"))              # the job is free again
        assert (await b.dequeue(1))[0].ID == "y"
    run(main())


def test_disable_drops_everything():
    async def main():
        b = EvalBroker()
        b.enqueue(ev("x", "j"))
        b.disable()
        assert await b.dequeue(0.05) is None
        assert not b.enqueue(ev("y", "k"))
        assert b.stats() == {"ready": 0, "unacked": 0, "waiting": 0, "delayed": 0}
    run(main())


@pytest.mark.parametrize("n_jobs", [1, 5])
def test_concurrent_workers_never_share_a_job(n_jobs):
    async def main():
        b = EvalBroker()
        for i in range(40):
            b.enqueue(ev(f"e{i}", f"job{i % n_jobs}", index=i))
        busy, seen = set(), []

        async def worker():
            while True:
                got = await b.dequeue(0.1)
                if got is None:
                    return
                e, token = got
                assert e.JobID not in busy
                busy.add(e.JobID)
                await asyncio.sleep(0)
                busy.discard(e.JobID)
                seen.append(e.ID)
                b.ack(e.ID, token)

        await asyncio.gather(*(worker() for _ in range(4)))
        assert sorted(seen) == sorted(f"e{i}" for i in range(40))
    run(main())


def test_an_eval_wakes_one_idle_worker_and_timeouts_leave_no_waiters():
    async def main():
        b = EvalBroker()
        takers = [asyncio.ensure_future(b.dequeue(timeout=5.0)) for _ in range(8)]
        await asyncio.sleep(0.01)
        assert len(b._waiters) == 8
        b.enqueue(ev("e1", "job-a"))
        await asyncio.sleep(0.01)
        done = [t for t in takers if t.done()]
        assert len(done) == 1 and done[0].result()[0].ID == "e1"
        b.disable()       # leadership lost: the idle workers wait out their timeout
        await asyncio.sleep(0.01)
        assert not b._waiters and not any(t.done() for t in takers if t is not done[0])
        for t in takers:
            t.cancel()
        b2 = EvalBroker()
        assert await b2.dequeue(timeout=0.02) is None
        assert not b2._waiters
    asyncio.run(main())
