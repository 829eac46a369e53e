"""``caravan.v1.Scheduling`` in-process: only servers may call it, only the leader
answers, plans are taken only for an eval still out with the caller's token, and the
follower-side broker and applier proxies speak it as ``Worker`` expects."""
from __future__ import annotations

import asyncio
from types import SimpleNamespace

import grpc
import msgspec
import pytest

from caravan.fsm.structs import Allocation, Evaluation
from caravan.proto import scheduling_pb2 as pb
from caravan.proto import scheduling_pb2_grpc as pb_grpc
from caravan.scheduler.broker import EvalBroker
from caravan.scheduler.plan import Plan, PlanResult
from caravan.server.rpc import scheduling as sched


class FakeApplier:
    def __init__(self):
        self.plans: list[Plan] = []

    async def apply(self, plan: Plan) -> PlanResult:
        self.plans.append(plan)
        return PlanResult(41, ["n2"], 1)


def fake_agent(secret="s3cret", leader=True):
    services = SimpleNamespace(running=True, broker=None, applier=FakeApplier())
    return SimpleNamespace(
        config=SimpleNamespace(cluster=SimpleNamespace(raft_secret=secret)),
        raft=SimpleNamespace(is_leader=leader), leader_services=services,
        fsm=SimpleNamespace(state=SimpleNamespace(last_index=40)))


async def serve(agent):
    server = grpc.aio.server()
    sched.register_scheduling_service(server, agent)
    port = server.add_insecure_port("127.0.0.1:0")
    await server.start()
    return server, f"127.0.0.1:{port}"


def run(coro):
    return asyncio.run(coro)


def test_the_service_checks_the_caller_the_leader_and_the_token():
    async def go():
        agent = fake_agent()
        agent.leader_services.broker = broker = EvalBroker(token_prefix="e7-")
        broker.enqueue(Evaluation(ID="ev1", JobID="j", Priority=50, CreateIndex=3))
        server, addr = await serve(agent)
        try:
            async with grpc.aio.insecure_channel(addr) as ch:
                stub = pb_grpc.SchedulingStub(ch)
                md = ((sched.TOKEN_KEY, sched.server_token("s3cret")),)
                with pytest.raises(grpc.aio.AioRpcError) as no_token:
                    await stub.Dequeue(pb.DequeueRequest(timeout_ms=10))
                with pytest.raises(grpc.aio.AioRpcError) as bad_token:
                    await stub.Dequeue(pb.DequeueRequest(timeout_ms=10),
                                       metadata=((sched.TOKEN_KEY, sched.server_token("x")),))
                got = await stub.Dequeue(pb.DequeueRequest(timeout_ms=10), metadata=md)
                ev = msgspec.msgpack.decode(got.eval_msgpack, type=Evaluation)
                empty = await stub.Dequeue(pb.DequeueRequest(timeout_ms=10), metadata=md)

                plan = Plan(eval_id="ev1", job_id="j", job_version=0)
                plan.add(Allocation(ID="a1", NodeID="n1"))
                blob = msgspec.msgpack.encode(plan)
                with pytest.raises(grpc.aio.AioRpcError) as stale:
                    await stub.SubmitPlan(pb.PlanRequest(token="e6-1", plan_msgpack=blob),
                                          metadata=md)
                done = await stub.SubmitPlan(pb.PlanRequest(token=got.token, plan_msgpack=blob),
                                             metadata=md)
                acked = await stub.Ack(pb.EvalToken(eval_id="ev1", token=got.token), metadata=md)
                again = await stub.Ack(pb.EvalToken(eval_id="ev1", token=got.token), metadata=md)

                agent.raft.is_leader = False
                with pytest.raises(grpc.aio.AioRpcError) as follower:
                    await stub.Dequeue(pb.DequeueRequest(timeout_ms=10), metadata=md)
        finally:
            await server.stop(None)
        return (no_token.value, bad_token.value, got, ev, empty, stale.value, done, acked,
                again, follower.value, agent.leader_services.applier.plans)

    (no_token, bad_token, got, ev, empty, stale, done, acked, again, follower,
     plans) = run(go())
    assert no_token.code() == bad_token.code() == grpc.StatusCode.PERMISSION_DENIED
    assert ev.ID == "ev1" and got.token == "e7-1" and got.wait_index == 40
    assert not empty.eval_msgpack
    assert stale.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert stale.details() == "evaluation ev1 is not outstanding"
    assert (done.index, list(done.rejected_nodes), done.committed_allocs) == (41, ["n2"], 1)
    assert [p.eval_id for p in plans] == ["ev1"] and plans[0].node_allocs["n1"][0].ID == "a1"
    assert acked.ok and not again.ok
    assert follower.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_the_follower_side_proxies_dequeue_submit_and_ack_for_a_worker():
    async def go():
        leader = fake_agent()
        leader.leader_services.broker = broker = EvalBroker(token_prefix="e9-")
        broker.enqueue(Evaluation(ID="ev2", JobID="j", Priority=50, CreateIndex=3))
        server, addr = await serve(leader)
        follower = fake_agent(leader=False)
        follower.leader_rpc = lambda: addr
        proxy = sched._Leader(follower)
        try:
            remote = sched.RemoteBroker(proxy, "s2/f0")
            applier = sched.RemoteApplier(proxy, remote)
            ev, token = await remote.dequeue(timeout=1.0)
            wait = remote.min_index(ev.ID)
            result = await applier.apply(Plan(eval_id=ev.ID, job_id="j", job_version=0))
            ok = await remote._answer("Ack", ev.ID, token)
            follower.raft.is_leader = True          # leading now: its own workers run
            idle = await remote.dequeue(timeout=0.05)
        finally:
            await proxy.close()
            await server.stop(None)
        return ev, token, wait, result, ok, idle, broker.stats()

    ev, token, wait, result, ok, idle, stats = run(go())
    assert ev.ID == "ev2" and token == "e9-1" and wait == 40
    assert result == PlanResult(41, ["n2"], 1)
    assert ok and idle is None and stats["unacked"] == 0
