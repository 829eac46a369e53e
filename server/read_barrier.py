"""Consistent reads on a pysyncobj node: Raft's ReadIndex, with a no-op as the fallback.

pysyncobj's sharp edge: two leaders may coexist for ``leaderFallbackTimeout`` (lowered
to 3 s in ``server/raft.py``). So no server, the leader included, serves a default read
before a majority confirmed its leader after the read began (the answers are numbered
in ``server/raft_transport.py``) or, failing that, a no-op submitted after the read
began is applied (a deposed leader cannot commit one).
"""
from __future__ import annotations

import asyncio

from caravan.fsm import entries
from caravan.server.metrics import METRICS

READ_INDEX_WAIT = 0.5   # seconds a leader waits for its confirmations before a no-op
_NOOP = entries.encode(entries.Noop())


class ReadBarrier:
    """``RaftNode.read_barrier``'s machinery. ``node`` is the ``RaftNode``: its pysyncobj
    node (``_sync``), settings, FSM and ``submit``."""

    def __init__(self, node):
        self._node = node
        self._group: asyncio.Future | None = None
        self._running = False
        self.waiting = 0                             # readers waiting for confirmations
        self._acked: asyncio.Future | None = None    # set when a follower echoes

    async def wait(self) -> None:
        """Return once this node has applied every write acknowledged before the call.

        The leader cannot answer from its own state alone: one that was paused or cut
        off does not know it has been deposed until pysyncobj's leaderFallbackTimeout,
        and would serve stale reads meanwhile (the fault tests saw it). So it confirms
        its leadership first (Raft's ReadIndex): it notes its commit index, has a round
        of append_entries sent at once, and waits until a majority (itself included)
        has answered one sent after the call began, then until it has applied that
        index. A deposed leader cannot get those answers: a majority has moved to a
        later term and ignores it. That costs no log entry and no fsync. A follower, or
        a leader without confirmations (no entry of its term committed yet, peers that
        do not echo, no answers within READ_INDEX_WAIT), waits instead for a no-op
        entry submitted after the call began, which only a current leader can commit.
        Concurrent readers share one confirmation or one no-op."""
        if self._group is None:
            self._group = asyncio.get_running_loop().create_future()
        group = self._group
        if not self._running:
            self._running = True
            asyncio.ensure_future(self._run())
        await asyncio.shield(group)

    async def _run(self) -> None:
        try:
            while self._group is not None:
                group, self._group = self._group, None
                try:
                    if await self._confirm_leadership():
                        METRICS.incr("caravan.raft.read_barrier.read_index")
                    else:
                        await self._node.submit(_NOOP)
                        METRICS.incr("caravan.raft.read_barrier.noop")
                except Exception as exc:
                    if not group.done():
                        group.set_exception(exc)
                    # the group's readers saw the exception; don't leave it unretrieved
                    group.exception()
                else:
                    if not group.done():
                        group.set_result(None)
        finally:
            self._running = False

    async def _confirm_leadership(self) -> bool:
        """ReadIndex (see ``wait``): True once this leader's leadership is confirmed by
        a majority after the call began and the commit index it had then is applied
        here; False when that cannot be done (the caller falls back)."""
        node = self._node
        sync, loop = node._sync, asyncio.get_running_loop()
        if sync is None or not node.settings.peers or not sync._isLeader():
            return False
        transport = sync._SyncObj__transport
        term = sync._SyncObj__raftCurrentTerm
        noop = sync._SyncObj__noopIDx
        commit = sync._SyncObj__raftCommitIndex
        if noop is None or commit < noop:
            return False        # no entry of this term committed: its commit index may lag
        first = transport.sent_seq + 1
        majority = (len(node.settings.peers) + 1) // 2 + 1

        def confirmed() -> bool:
            return 1 + sum(1 for n in list(transport.acked_seq.values()) if n >= first) >= majority

        deadline = loop.time() + READ_INDEX_WAIT
        self.waiting += 1
        try:
            # send an append_entries round now rather than at the next heartbeat
            sync._SyncObj__newAppendEntriesTime = 0.0
            sync._SyncObj__pipeNotifier.notify()
            while not confirmed():
                if loop.time() >= deadline:
                    return False
                self._acked = loop.create_future()
                try:
                    await asyncio.wait_for(self._acked, max(0.0, deadline - loop.time()))
                except TimeoutError:
                    pass
        finally:
            self.waiting -= 1
        if not sync._isLeader() or sync._SyncObj__raftCurrentTerm != term:
            return False
        while node.fsm.state.last_index < commit:    # applied here shortly after commit
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.0005)
        return True

    def on_ack(self) -> None:
        """Raft thread: a follower echoed a newer number; wake a waiting reader."""
        loop = self._node._loop
        if self.waiting and loop is not None:
            loop.call_soon_threadsafe(self._wake_acked)

    def _wake_acked(self) -> None:
        if self._acked is not None and not self._acked.done():
            self._acked.set_result(None)
