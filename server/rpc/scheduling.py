"""Scheduling on every server, as Nomad does it: the ``caravan.v1.Scheduling`` service
(``proto/scheduling.proto``) and the workers that call it from followers.

The leader alone holds the eval broker and the plan applier (``server/leader.py``). A
follower runs workers of its own (``FollowerWorkers``): the same ``scheduler.worker.Worker``
as on the leader, given a broker and an applier that live on the leader
(``RemoteBroker``, ``RemoteApplier``). It takes an eval from the leader's broker, waits
until its own state has applied the eval, plans against that state, and sends the plan
to the leader's applier, which re-checks it against the newest state and commits what
fits, exactly as for its own workers. Planning is the costly part of scheduling; done on
followers, it leaves the leader's CPU (one process, one GIL) to the log, the applier and
the HTTP API. A plan names its eval and carries the token its delivery came with: the
leader takes plans, acks and nacks only for an eval that is still out with that token,
so a worker whose delivery timed out (and was given to another worker) cannot commit.

Only servers may call the service: each call carries ``caravan-server-token`` metadata,
derived from the cluster's raft secret (the secret itself never travels).
"""
from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import time

import grpc
import msgspec

from caravan.fsm.structs import Evaluation
from caravan.proto import scheduling_pb2 as pb
from caravan.proto import scheduling_pb2_grpc as pb_grpc
from caravan.scheduler.plan import Plan, PlanResult
from caravan.scheduler.worker import Worker
from caravan.server.metrics import METRICS

log = logging.getLogger("caravan.scheduling")

TOKEN_KEY = "caravan-server-token"
DEQUEUE_WAIT = 0.5          # seconds a follower's dequeue blocks on the leader (Nomad: 500 ms)
CALL_TIMEOUT = 30.0         # a plan may wait behind others in the applier
RETRY_DELAY = 0.2           # no leader, or it does not answer: wait this long

_plan_encoder = msgspec.msgpack.Encoder()
_plan_decoder = msgspec.msgpack.Decoder(Plan)
_eval_decoder = msgspec.msgpack.Decoder(Evaluation)


def server_token(secret: str) -> str:
    """What servers show each other: a digest of the cluster's raft secret."""
    return hashlib.sha256(b"caravan-scheduling\0" + secret.encode()).hexdigest()


# --- the leader's side ------------------------------------------------------------------


class SchedulingService(pb_grpc.SchedulingServicer):
    def __init__(self, agent):
        self._agent = agent
        self._token = server_token(agent.config.cluster.raft_secret)

    async def _services(self, context):
        """The leader's broker and applier, after checking the caller is a server."""
        sent = dict(context.invocation_metadata() or ()).get(TOKEN_KEY, "")
        if not hmac.compare_digest(sent.encode(), self._token.encode()):
            await context.abort(grpc.StatusCode.PERMISSION_DENIED, "not a server of this cluster")
        services = self._agent.leader_services
        if not self._agent.raft.is_leader or not services.running or services.broker is None:
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION, "not the leader")
        return services

    async def Dequeue(self, request, context):
        services = await self._services(context)
        wait = min(request.timeout_ms / 1000.0, 5.0) if request.timeout_ms else DEQUEUE_WAIT
        got = await services.broker.dequeue(timeout=wait)
        if got is None:
            return pb.DequeueResponse()
        ev, token = got
        if context.cancelled():        # the caller gave up meanwhile: deliver it again
            services.broker.nack(ev.ID, token)
            return pb.DequeueResponse()
        # The follower must plan against a state at least this new: the eval's own
        # index is not enough, as an earlier eval of the same job may have committed
        # placements after it was created (planned on a state without them, the same
        # allocations were placed twice, as the benchmark caught)
        return pb.DequeueResponse(eval_msgpack=msgspec.msgpack.encode(ev), token=token,
                                  wait_index=self._agent.fsm.state.last_index)

    async def Ack(self, request, context):
        services = await self._services(context)
        return pb.Outcome(ok=services.broker.ack(request.eval_id, request.token))

    async def Nack(self, request, context):
        services = await self._services(context)
        return pb.Outcome(ok=services.broker.nack(request.eval_id, request.token))

    async def SubmitPlan(self, request, context):
        services = await self._services(context)
        try:
            plan = _plan_decoder.decode(request.plan_msgpack)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            await context.abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid plan: {exc}")
        # Nomad's Plan.Submit: only for an eval still out with this token; its timeout
        # restarts, since its worker is evidently at it
        if not services.broker.touch(plan.eval_id, request.token):
            await context.abort(grpc.StatusCode.FAILED_PRECONDITION,
                                f"evaluation {plan.eval_id} is not outstanding")
        result = await services.applier.apply(plan)
        return pb.PlanResponse(index=result.index, rejected_nodes=result.rejected_nodes,
                               committed_allocs=result.committed_allocs)


def register_scheduling_service(server: grpc.aio.Server, agent) -> None:
    pb_grpc.add_SchedulingServicer_to_server(SchedulingService(agent), server)


# --- a follower's side --------------------------------------------------------------------


class _Leader:
    """The leader's Scheduling stub, for as long as this server follows it."""

    def __init__(self, agent):
        self._agent = agent
        self._metadata = ((TOKEN_KEY, server_token(agent.config.cluster.raft_secret)),)
        self._channels: dict[str, grpc.aio.Channel] = {}
        self._stubs: dict[str, pb_grpc.SchedulingStub] = {}

    def stub(self) -> pb_grpc.SchedulingStub | None:
        """None while this server leads (its own workers run) or no leader is known."""
        if self._agent.raft.is_leader:
            return None
        addr = self._agent.leader_rpc()
        if not addr:
            return None
        stub = self._stubs.get(addr)
        if stub is None:   # made once per leader: a stub registers every method anew
            ch = self._channels[addr] = grpc.aio.insecure_channel(addr, options=[
                ("grpc.max_receive_message_length", 256 * 1024 * 1024),
                ("grpc.max_send_message_length", 256 * 1024 * 1024)])
            stub = self._stubs[addr] = pb_grpc.SchedulingStub(ch)
        return stub

    @property
    def metadata(self):
        return self._metadata

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close(grace=None)
        self._channels.clear()
        self._stubs.clear()


class RemoteBroker:
    """The leader's broker as seen from a follower: the calls ``Worker`` makes."""

    def __init__(self, leader: _Leader, name: str):
        self._leader = leader
        self._name = name
        self.tokens: dict[str, str] = {}     # eval ID -> token of its delivery here
        self._wait: dict[str, int] = {}      # eval ID -> index to plan at or after
        self._answering: set[asyncio.Task] = set()

    async def dequeue(self, timeout: float) -> tuple[Evaluation, str] | None:
        stub = self._leader.stub()
        if stub is None:
            await asyncio.sleep(min(timeout, RETRY_DELAY))
            return None
        try:
            resp = await stub.Dequeue(
                pb.DequeueRequest(timeout_ms=int(DEQUEUE_WAIT * 1000), worker=self._name),
                metadata=self._leader.metadata, timeout=DEQUEUE_WAIT + 5.0)
        except grpc.aio.AioRpcError as err:
            if err.code() == grpc.StatusCode.PERMISSION_DENIED:
                log.error("the leader refused this server's scheduling calls: %s", err.details())
            await asyncio.sleep(RETRY_DELAY)
            return None
        if not resp.eval_msgpack:
            return None
        ev = _eval_decoder.decode(resp.eval_msgpack)
        self.tokens[ev.ID] = resp.token
        self._wait[ev.ID] = resp.wait_index
        return ev, resp.token

    def min_index(self, eval_id: str) -> int:
        """The leader's applied index when it handed out the eval."""
        return self._wait.get(eval_id, 0)

    async def _answer(self, method: str, eval_id: str, token: str) -> bool:
        self.tokens.pop(eval_id, None)
        self._wait.pop(eval_id, None)
        stub = self._leader.stub()
        if stub is None:
            return False     # leadership moved: the next leader delivers the eval again
        try:
            out = await getattr(stub, method)(pb.EvalToken(eval_id=eval_id, token=token),
                                              metadata=self._leader.metadata, timeout=10.0)
        except grpc.aio.AioRpcError as err:
            log.info("%s of eval %s failed: %s", method.lower(), eval_id, err.details())
            return False
        if out.ok and method == "Ack":
            METRICS.incr("caravan.scheduler.follower_evals_acked")
        return out.ok

    # Worker calls these without awaiting (the local broker's are plain methods); the
    # event loop holds tasks only weakly, so the answers in flight are kept here
    def ack(self, eval_id: str, token: str) -> None:
        self._send_answer("Ack", eval_id, token)

    def nack(self, eval_id: str, token: str) -> None:
        self._send_answer("Nack", eval_id, token)

    def _send_answer(self, method: str, eval_id: str, token: str) -> None:
        task = asyncio.ensure_future(self._answer(method, eval_id, token))
        self._answering.add(task)
        task.add_done_callback(self._answering.discard)


class RemoteApplier:
    """The leader's plan applier as seen from a follower's worker."""

    def __init__(self, leader: _Leader, broker: RemoteBroker):
        self._leader = leader
        self._broker = broker

    async def apply(self, plan: Plan) -> PlanResult:
        stub = self._leader.stub()
        token = self._broker.tokens.get(plan.eval_id, "")
        if stub is None:
            raise RuntimeError("no leader to submit the plan to")
        resp = await stub.SubmitPlan(
            pb.PlanRequest(token=token, plan_msgpack=_plan_encoder.encode(plan)),
            metadata=self._leader.metadata, timeout=CALL_TIMEOUT)
        return PlanResult(resp.index, list(resp.rejected_nodes), resp.committed_allocs)


class FollowerWorkers:
    """``count`` workers that schedule for the leader while this server follows it;
    idle while it leads (then ``LeaderServices`` runs the local ones)."""

    def __init__(self, agent, count: int):
        from caravan.scheduler.generic import compute_plan  # the scheduler proper, as in leader.py
        self._leader = _Leader(agent)
        self.workers = []
        for i in range(count):
            broker = RemoteBroker(self._leader, f"{agent.me.name}/f{i}")
            self.workers.append(Worker(
                f"f{i}", broker, RemoteApplier(self._leader, broker), lambda: agent.fsm.state,
                compute_plan, agent.submit, time.time_ns))
        self._tasks: list[asyncio.Task] = []

    def start(self) -> None:
        if not self._tasks:
            self._tasks = [asyncio.ensure_future(w.run()) for w in self.workers]

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks = []
        await self._leader.close()
