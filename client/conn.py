"""A connection to the servers' RPC ports that follows the leader and fails over.

Every Node RPC but ``WatchAllocations`` must reach the leader; a follower answers
``FAILED_PRECONDITION`` with the leader's address in the trailing metadata key ``leader``.
``ServerConn.call`` re-dials there, rotates through the known servers when one is
unreachable, and retries with backoff; other errors are raised to the caller.
``ServerConn.read_call`` and ``read_stream`` are for the stale read (``WatchAllocations``,
``StreamAllocations``): each caller keeps to one server picked by its key among the
followers (all servers when there are none), so the watches of many nodes spread over
the followers and leave the leader's CPU to what only it can do (Nomad clients likewise
read their allocations with ``AllowStale``). Shared by the client agent and
``caravan nodesim``.
"""
from __future__ import annotations

import asyncio
import logging

import grpc

from caravan.proto import node_pb2_grpc as pb_grpc
from caravan.proto import status_pb2 as status_pb
from caravan.proto import status_pb2_grpc as status_grpc

log = logging.getLogger("caravan.conn")

MAX_MESSAGE = 256 * 1024 * 1024
CALL_TIMEOUT = 10.0


class ServerConn:
    """Which server to talk to: follows the leader, fails over to other servers."""

    def __init__(self, addrs: list[str] | str):
        self.addrs = [addrs] if isinstance(addrs, str) else list(addrs)
        self.current = self.addrs[0]
        self.leader_switches = 0
        self._channels: dict[tuple[str, int], grpc.aio.Channel] = {}
        self._stubs: dict[tuple[str, int], pb_grpc.NodeStub] = {}
        self._read_skew: dict[int, int] = {}    # read_call key -> servers skipped

    def _stub(self, addr: str, shard: int) -> pb_grpc.NodeStub:
        """The channel's stub, made once: building one registers every method on the
        channel, which cost nodesim a third of its CPU when done per call."""
        stub = self._stubs.get((addr, shard))
        if stub is None:
            stub = self._stubs[(addr, shard)] = pb_grpc.NodeStub(self._channel(addr, shard))
        return stub

    def _channel(self, addr: str, shard: int) -> grpc.aio.Channel:
        ch = self._channels.get((addr, shard))
        if ch is None:
            ch = self._channels[(addr, shard)] = grpc.aio.insecure_channel(addr, options=[
                ("grpc.max_receive_message_length", MAX_MESSAGE),
                ("grpc.max_send_message_length", MAX_MESSAGE),
                # a connection per shard, so no connection carries too many streams
                ("grpc.use_local_subchannel_pool", 1)])
        return ch

    async def discover(self) -> None:
        """Learn the other servers (for failover) and the leader; best effort."""
        for addr in list(self.addrs):
            try:
                stub = status_grpc.StatusStub(self._channel(addr, 0))
                peers = await stub.Peers(status_pb.Empty(), timeout=5)
                for a in peers.addresses:
                    if a not in self.addrs:
                        self.addrs.append(a)
                leader = (await stub.Leader(status_pb.Empty(), timeout=5)).address
                if leader:
                    self.follow(leader)
                return
            except grpc.aio.AioRpcError as err:
                log.info("status discovery at %s failed: %s", addr, err.details())

    def follow(self, leader: str) -> None:
        if leader not in self.addrs:
            self.addrs.append(leader)
        if leader != self.current:
            self.current = leader
            self.leader_switches += 1
            log.info("following the leader at %s", leader)

    def _rotate(self, failed: str) -> None:
        if self.current == failed and len(self.addrs) > 1:
            self.current = self.addrs[(self.addrs.index(failed) + 1) % len(self.addrs)]

    def _read_server(self, key: int) -> tuple[str, int]:
        """(address, skew): the key's follower first, then the next ones, the leader last."""
        skew = self._read_skew.get(key, 0)
        followers = [a for a in self.addrs if a != self.current]
        order = followers + [a for a in self.addrs if a == self.current]
        return order[(key % max(len(followers), 1) + skew) % len(order)], skew

    async def read_call(self, method: str, request, key: int, shard: int = 0,
                        timeout: float = CALL_TIMEOUT):
        """Call the server that ``key`` picks among the followers known (all servers if
        none is); an unreachable server moves this key to the next one. Other errors are
        raised."""
        delay = 0.05
        while True:
            addr, skew = self._read_server(key)
            stub = self._stub(addr, shard)
            try:
                return await getattr(stub, method)(request, timeout=timeout)
            except grpc.aio.AioRpcError as err:
                if err.code() not in (grpc.StatusCode.UNAVAILABLE,
                                      grpc.StatusCode.DEADLINE_EXCEEDED):
                    raise
                self._read_skew[key] = skew + 1
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def read_stream(self, method: str, request, key: int, shard: int = 0,
                          timeout: float | None = None):
        """The answers of a server-streaming read from the server ``key`` picks, as
        ``read_call`` picks it. An error is raised to the caller, who opens the next
        stream (an unreachable server first moves this key to the next one)."""
        addr, skew = self._read_server(key)
        stub = self._stub(addr, shard)
        call = getattr(stub, method)(request, timeout=timeout)
        try:
            async for answer in call:
                yield answer
        except grpc.aio.AioRpcError as err:
            if err.code() in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                self._read_skew[key] = skew + 1
            raise
        finally:
            call.cancel()

    async def call(self, method: str, request, shard: int = 0, timeout: float = CALL_TIMEOUT,
                   attempts: int | None = None):
        """One Node RPC, retried across leader changes and unreachable servers (at most
        ``attempts`` tries when given). Other errors are raised as ``AioRpcError``."""
        delay = 0.05
        tries = 0
        while True:
            addr = self.current
            stub = self._stub(addr, shard)
            tries += 1
            try:
                return await getattr(stub, method)(request, timeout=timeout)
            except grpc.aio.AioRpcError as err:
                code = err.code()
                if code == grpc.StatusCode.FAILED_PRECONDITION:
                    leader = dict(err.trailing_metadata() or ()).get("leader", "")
                    if leader and leader != addr:
                        self.follow(leader)
                        continue
                elif code in (grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.DEADLINE_EXCEEDED):
                    self._rotate(addr)
                else:
                    raise
                if attempts is not None and tries >= attempts:
                    raise
            await asyncio.sleep(delay)
            delay = min(delay * 2, 2.0)

    async def close(self) -> None:
        for ch in self._channels.values():
            await ch.close(grace=None)
        self._channels.clear()
        self._stubs.clear()
