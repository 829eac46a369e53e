"""gRPC ``caravan.v1.Node``: node registration, heartbeats and allocation sync.

Node and allocation records travel as msgspec JSON of ``fsm.structs`` types inside
protobuf ``bytes`` fields (see ``proto/node.proto`` for why). Every RPC but
``WatchAllocations`` is served by the leader only: a follower answers
``FAILED_PRECONDITION`` ("not the leader; leader at <addr>") with the leader's RPC
address in the trailing metadata key ``leader``.

- ``Register``: Nomad's checks and messages, ``ComputedClass``, the pre-0.9
  ``Resources``/``Reserved`` views, status ``ready`` (``server/rpc/node_registration.py``);
  one ``NodeRegister`` entry.
- ``Heartbeat``: resets the node's TTL (``server.heartbeats.HeartbeatTracker``); a node
  that was marked down (or never became ready) is marked ready again by one
  ``NodeStatus`` entry.
- ``WatchAllocations`` (one answer) and ``StreamAllocations`` (an answer per change, for
  the same wait): a blocking query over the node's allocations, from local state
  on any server (clients send them to the followers; a follower waits up to
  ``UNKNOWN_NODE_WAIT`` for a node whose registration it has not applied yet).
- ``UpdateAllocations``: client-reported alloc states; all updates that reach the
  leader within 50 ms are applied as one ``AllocClientUpdate`` entry, and each caller
  is answered once that entry is applied.

``register_node_service(server, agent)`` adds the service to a ``grpc.aio.Server``
before it starts, and sets ``agent.heartbeats`` (a ``HeartbeatTracker``) if the agent
has none yet.
"""
from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import Callable

import grpc
import msgspec

from caravan.fsm import entries as e
from caravan.fsm import reschedule
from caravan.fsm import schema as t
from caravan.fsm.structs import Evaluation, Node
from caravan.fsm.submit import Applied, EntryRejected
from caravan.proto import node_pb2 as pb
from caravan.proto import node_pb2_grpc as pb_grpc
from caravan.scheduler.api import node_update_evals
from caravan.server import ids
from caravan.server.context import ServiceContext
from caravan.server.heartbeats import HeartbeatTracker
from caravan.server.metrics import METRICS
from caravan.server.rpc.node_registration import prepare_node, validate_registration

log = logging.getLogger("caravan.rpc.node")
BATCH_INTERVAL = 0.05           # Nomad's batchUpdateInterval
UNKNOWN_NODE_WAIT = 5.0       # a follower waits this long for a node it has not applied
DEFAULT_WAIT = 300.0            # a watch without wait_ms blocks up to 5 minutes
MAX_WAIT = 600.0
CLIENT_STATUSES = ("pending", "running", "complete", "failed")
_node_decoder = msgspec.json.Decoder(Node)
_updates_decoder = msgspec.json.Decoder(list[e.AllocClientState])
_json = msgspec.json.Encoder()


class _Abort(Exception):
    def __init__(self, code: grpc.StatusCode, details: str, trailing=()):
        self.code, self.details, self.trailing = code, details, trailing


class _Batch:
    __slots__ = ("updates", "evals", "future")

    def __init__(self, loop: asyncio.AbstractEventLoop):
        self.updates: list[e.AllocClientState] = []
        self.evals: list[Evaluation] = []
        self.future = loop.create_future()


def failure_eval(state, alloc, update: e.AllocClientState, now_ns: int,
                 new_id: Callable[[], str] = ids.uuid4_str) -> Evaluation | None:
    """An ``alloc-failure`` eval when a report fails an allocation that its job's
    reschedule policy may replace (Nomad's ``Node.UpdateAlloc``); None otherwise."""
    if update.ClientStatus != "failed" or alloc.ClientStatus == "failed" or \
            alloc.DesiredStatus != "run" or alloc.FollowupEvalID:
        return None
    job = state.get(t.JOBS, alloc.JobID)
    if job is None or job.Stop:
        return None
    tg = next((g for g in job.TaskGroups or () if g.Name == alloc.TaskGroup), None)
    if tg is None or not reschedule.eligible(alloc, tg.ReschedulePolicy, now_ns):
        return None
    return Evaluation(ID=new_id(), Namespace=alloc.Namespace, Priority=job.Priority or 50,
                      Type=job.Type or "service", TriggeredBy="alloc-failure", JobID=alloc.JobID,
                      Status="pending", CreateTime=now_ns, ModifyTime=now_ns)


class NodeService(pb_grpc.NodeServicer):
    def __init__(self, agent: ServiceContext, tracker: HeartbeatTracker | None = None,
                 batch_interval: float = BATCH_INTERVAL,
                 clock: Callable[[], float] = time.time):
        self._agent = agent
        self._clock = clock          # wall-clock seconds (the simulation injects its own)
        self.tracker = tracker if tracker is not None else HeartbeatTracker(agent)
        self._batch_interval = batch_interval
        self._batch: _Batch | None = None
        self._parked: dict[str, list[tuple[int, asyncio.Future]]] = {}
        self._dispatcher: asyncio.Task | None = None
        # node ID -> (its row, its entry in the allocations' node index, their index)
        self._indexes: dict[str, tuple[Node, object, int]] = {}

    # --- plumbing ------------------------------------------------------------------------

    async def _guard(self, context, fn, *args):
        try:
            return await fn(*args)
        except _Abort as exc:
            await context.abort(exc.code, exc.details, trailing_metadata=exc.trailing)

    def _require_leader(self) -> None:
        if not self._agent.raft.is_leader:
            leader = self._agent.leader_rpc() or ""
            raise _Abort(grpc.StatusCode.FAILED_PRECONDITION,
                         f"not the leader; leader at {leader or 'unknown'}",
                         (("leader", leader),))

    def _authenticate(self, node_id: str, secret_id: str) -> Node:
        if not node_id:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, "missing node ID")
        node = self._agent.fsm.state.get(t.NODES, node_id)
        if node is None:
            raise _Abort(grpc.StatusCode.NOT_FOUND, f"node {node_id} not found")
        if not hmac.compare_digest(node.SecretID.encode(), secret_id.encode()):
            raise _Abort(grpc.StatusCode.PERMISSION_DENIED, "node secret ID does not match")
        return node

    async def _submit(self, body: e.Request) -> Applied:
        try:
            return await self._agent.submit(body)
        except EntryRejected as rej:
            code = {400: grpc.StatusCode.INVALID_ARGUMENT, 404: grpc.StatusCode.NOT_FOUND,
                    409: grpc.StatusCode.ABORTED}.get(rej.code, grpc.StatusCode.INTERNAL)
            raise _Abort(code, rej.message) from None
        except Exception as exc:
            raise _Abort(grpc.StatusCode.UNAVAILABLE, str(exc) or type(exc).__name__) from None

    # --- Register --------------------------------------------------------------------------

    async def Register(self, request, context):
        return await self._guard(context, self._register, request)

    async def _register(self, request):
        self._require_leader()
        try:
            node = _node_decoder.decode(request.node_json)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid node: {exc}") from None
        problem = validate_registration(node)
        if problem:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, problem)
        existing = self._agent.fsm.state.get(t.NODES, node.ID)
        if existing is not None and \
                not hmac.compare_digest(existing.SecretID.encode(), node.SecretID.encode()):
            raise _Abort(grpc.StatusCode.PERMISSION_DENIED,
                         "node secret ID does not match. Not registering node.")
        await self.tracker.settled(node.ID)
        now = self._clock()
        evals = None
        if existing is None or existing.Status != "ready":
            # a node that joins (or comes back) may owe system jobs an allocation
            evals = node_update_evals(self._agent.fsm.state, node.ID, int(now * 1e9),
                                      self._agent.new_id, system_jobs=True) or None
        result = await self._submit(e.NodeRegister(Node=prepare_node(node, now), Evals=evals))
        ttl = self.tracker.touch(node.ID)
        return pb.RegisterResponse(heartbeat_ttl_ms=int(ttl * 1000), index=result["Index"])

    # --- Heartbeat --------------------------------------------------------------------------

    async def Heartbeat(self, request, context):
        return await self._guard(context, self._heartbeat, request)

    async def _heartbeat(self, request):
        self._require_leader()
        await self.tracker.settled(request.node_id)
        node = self._authenticate(request.node_id, request.secret_id)
        index = node.ModifyIndex
        if node.Status != "ready":
            now = self._clock()
            state = self._agent.fsm.state
            result = await self._submit(e.NodeStatus(
                NodeID=node.ID, Status="ready", UpdatedAt=int(now),
                Evals=node_update_evals(state, node.ID, int(now * 1e9), self._agent.new_id,
                                        system_jobs=True) or None))
            index = result.get("NodeModifyIndex", result["Index"])
            log.info("node %s is back: marked ready", node.ID)
        ttl = self.tracker.touch(node.ID)
        return pb.HeartbeatResponse(heartbeat_ttl_ms=int(ttl * 1000), index=index)

    # --- WatchAllocations --------------------------------------------------------------------

    async def WatchAllocations(self, request, context):
        return await self._guard(context, self._watch, request)

    def _node_index(self, state, node: Node) -> int:
        """The index a watcher compares: the highest ``AllocModifyIndex`` (server-side
        changes: placements, updates, stops) among the node's allocations, never below
        the node's ``CreateIndex``. The node's own status reports do not move it, so a
        node is not woken by what it just said.

        The allocations' node index holds the rows themselves, and a node's entry is a
        new object whenever one of its rows changes (``fsm.schema`` ``Index.rows``):
        while the node row and that entry are the very objects seen last time, the
        answer is the one computed then. The dispatcher asks for every parked node
        after every write to the allocations, and most of them did not change."""
        entry = state.index_members(t.ALLOCS, t.BY_NODE, node.ID)
        hit = self._indexes.get(node.ID)
        if hit is not None and hit[0] is node and hit[1] is entry:
            return hit[2]
        index = node.CreateIndex
        for a in entry.values():
            i = a.AllocModifyIndex or a.ModifyIndex
            if i > index:
                index = i
        index = max(index, 1)
        if len(self._indexes) >= 100_000:
            self._indexes.clear()
        self._indexes[node.ID] = (node, entry, index)   # holding both keeps their ids
        return index

    async def _watch(self, request):
        answers = self._answers(request, stream=False)
        try:
            return await answers.__anext__()
        finally:
            await answers.aclose()

    async def StreamAllocations(self, request, context):
        try:
            async for answer in self._answers(request, stream=True):
                yield answer
        except _Abort as exc:
            await context.abort(exc.code, exc.details, trailing_metadata=exc.trailing)

    async def _answers(self, request, stream: bool):
        """The watch's answers: each time the node's allocations change past the last
        index answered (starting from ``min_index``), until ``wait_ms`` runs out; a
        unary watch takes the first (or, at the deadline, one with nothing new)."""
        wait = request.wait_ms / 1000.0 if request.wait_ms else DEFAULT_WAIT
        wait = min(wait, MAX_WAIT)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        await self._await_node(request.node_id, min(deadline, loop.time() + UNKNOWN_NODE_WAIT))
        self._authenticate(request.node_id, request.secret_id)
        since = request.min_index
        while True:
            state = self._agent.fsm.state
            node = state.get(t.NODES, request.node_id)
            if node is None:
                raise _Abort(grpc.StatusCode.NOT_FOUND, f"node {request.node_id} not found")
            index = self._node_index(state, node)
            remaining = deadline - loop.time()
            if index > since or (remaining <= 0 and not stream):
                allocs = state.by_index(t.ALLOCS, t.BY_NODE, node.ID)
                changed = [a for a in allocs if (a.AllocModifyIndex or a.ModifyIndex) > since]
                yield pb.AllocationsResponse(index=index, allocs_json=_json.encode(changed),
                                             alloc_ids=[a.ID for a in allocs])
                since = index
                continue
            if remaining <= 0:
                return
            await self._park(node.ID, since, remaining)

    async def _await_node(self, node_id: str, until: float) -> None:
        """Watches are stale reads that clients send to followers (leaving the leader's
        CPU to what only it can do, much as Nomad clients read their allocations with
        ``AllowStale``), so a follower may not yet have applied the registration of a
        node whose first watch arrives: wait for it, briefly. The leader committed it
        before answering the node, so the leader never waits."""
        notifier = self._agent.notifier
        loop = asyncio.get_running_loop()
        while not self._agent.raft.is_leader and loop.time() < until:
            watch = notifier.watch((t.NODES,))
            try:
                if self._agent.fsm.state.get(t.NODES, node_id) is not None:
                    return
                await notifier.wait(watch, until - loop.time())
            finally:
                notifier.unwatch(watch)

    # One dispatcher wakes parked watchers, instead of every watcher waking on every
    # write to the allocations table: with thousands of nodes watching, the wake-ups
    # alone would cost the leader more than the scheduling they are meant to observe.

    async def _park(self, node_id: str, min_index: int, timeout: float) -> None:
        """Wait until the node's allocation index passes ``min_index`` (or timeout).
        Called right after reading the state, with no await in between."""
        fut = asyncio.get_running_loop().create_future()
        entry = (min_index, fut)
        self._parked.setdefault(node_id, []).append(entry)
        if self._dispatcher is None or self._dispatcher.done():
            self._dispatcher = asyncio.ensure_future(self._dispatch())
        try:
            await asyncio.wait_for(fut, timeout)
        except TimeoutError:
            pass
        finally:
            entries = self._parked.get(node_id)
            if entries is not None:
                entries.remove(entry)
                if not entries:
                    del self._parked[node_id]

    async def _dispatch(self) -> None:
        notifier = self._agent.notifier
        while self._parked:
            # watch before reading: a write after this read wakes the wait below
            watch = notifier.watch((t.ALLOCS,))
            try:
                state = self._agent.fsm.state
                for node_id, entries in list(self._parked.items()):
                    node = state.get(t.NODES, node_id)
                    index = self._node_index(state, node) if node is not None else None
                    for min_index, fut in entries:
                        if (index is None or index > min_index) and not fut.done():
                            fut.set_result(None)
                await notifier.wait(watch, 1.0)
            finally:
                notifier.unwatch(watch)

    # --- UpdateAllocations ----------------------------------------------------------------------

    async def UpdateAllocations(self, request, context):
        return await self._guard(context, self._update, request)

    async def _update(self, request):
        self._require_leader()
        node = self._authenticate(request.node_id, request.secret_id)
        try:
            updates = _updates_decoder.decode(request.updates_json)
        except (msgspec.DecodeError, msgspec.ValidationError) as exc:
            raise _Abort(grpc.StatusCode.INVALID_ARGUMENT, f"invalid updates: {exc}") from None
        state = self._agent.fsm.state
        now = int(self._clock() * 1e9)
        checked, evals = [], []
        for u in updates:
            if u.ClientStatus not in CLIENT_STATUSES:
                raise _Abort(grpc.StatusCode.INVALID_ARGUMENT,
                             f"alloc {u.AllocID}: invalid client status {u.ClientStatus!r}")
            alloc = state.get(t.ALLOCS, u.AllocID)
            if alloc is None:
                continue            # collected meanwhile; nothing to update
            if alloc.NodeID != node.ID:
                raise _Abort(grpc.StatusCode.PERMISSION_DENIED,
                             f"alloc {u.AllocID} is not on node {node.ID}")
            if not u.ModifyTime:
                u.ModifyTime = now
            checked.append(u)
            ev = failure_eval(state, alloc, u, now, self._agent.new_id)
            if ev is not None:
                evals.append(ev)
        if not checked:
            return pb.Ack(index=state.last_index)
        index = await self._enqueue(checked, evals)
        return pb.Ack(index=index)

    async def _enqueue(self, updates: list[e.AllocClientState],
                       evals: list[Evaluation] = ()) -> int:
        loop = asyncio.get_running_loop()
        batch = self._batch
        if batch is None:
            batch = self._batch = _Batch(loop)
            loop.call_later(self._batch_interval, self._flush_soon, batch)
        batch.updates.extend(updates)
        batch.evals.extend(evals)
        return await asyncio.shield(batch.future)

    def _flush_soon(self, batch: _Batch) -> None:
        if self._batch is batch:
            self._batch = None
        asyncio.ensure_future(self._flush(batch))

    async def _flush(self, batch: _Batch) -> None:
        try:
            result = await self._submit(e.AllocClientUpdate(Updates=batch.updates,
                                                            Evals=batch.evals or None))
        except _Abort as exc:
            batch.future.set_exception(exc)
            batch.future.exception()    # each caller re-raises it; don't warn if none wait
        except Exception as exc:        # pragma: no cover - defensive
            batch.future.set_exception(_Abort(grpc.StatusCode.INTERNAL, str(exc)))
            batch.future.exception()
        else:
            # one entry carried this many client updates (bench/lifecycle.py reads it)
            METRICS.incr("caravan.client.alloc_updates_per_entry", len(batch.updates))
            batch.future.set_result(result["Index"])


def register_node_service(server: grpc.aio.Server, agent) -> None:
    """Add ``caravan.v1.Node`` to ``server`` (call before ``server.start()``). Uses
    ``agent.heartbeats`` as the heartbeat tracker, creating it if the agent has none;
    the leader must run ``agent.heartbeats.start()``/``stop()`` with leadership."""
    tracker = getattr(agent, "heartbeats", None)
    if tracker is None:
        tracker = HeartbeatTracker(agent)
        agent.heartbeats = tracker
    pb_grpc.add_NodeServicer_to_server(NodeService(agent, tracker), server)
