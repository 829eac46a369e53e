"""Heartbeat timers of the nodes, kept by the leader only (Nomad's ``nomad/heartbeat.go``).

Every registration and heartbeat a node sends to the leader resets that node's
deadline to ``now + ttl + grace`` and hands the node ``ttl``. A node whose deadline
passes is marked down by one ``NodeStatus`` log entry that also carries one
``node-update`` evaluation per job with non-terminal allocations on the node; the
scheduler then marks those allocations lost and places replacements elsewhere.

The TTL scales with the number of tracked nodes so that the cluster receives at most
``max_per_second`` heartbeats per second (Nomad: ``max(MinHeartbeatTTL 10s,
nodes / MaxHeartbeatsPerSecond 50)``), plus a random stagger of up to one TTL that
spreads the heartbeats of nodes registered together.

Timers are not replicated: a new leader (``start()``) gives every node that is not
down a fresh TTL, so nodes have time to find it. ``stop()`` forgets all timers.

Tuning for tests and small setups, read when a tracker is built without explicit
values (the defaults are Nomad's):

- ``CARAVAN_HEARTBEAT_TTL``: minimum TTL handed to nodes, seconds (10)
- ``CARAVAN_HEARTBEAT_GRACE``: grace after the TTL before a node is down, seconds (10)
- ``CARAVAN_HEARTBEAT_RATE``: most heartbeats per second the TTL aims for (50)
"""
from __future__ import annotations

import asyncio
import heapq
import logging
import os
import random
import time
from collections.abc import Callable

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.submit import EntryRejected
from caravan.scheduler.background import LeaderLoop
from caravan.scheduler.eval_feed import node_update_evals
from caravan.server.context import ServiceContext

log = logging.getLogger("caravan.heartbeats")

MIN_HEARTBEAT_TTL = 10.0
HEARTBEAT_GRACE = 10.0
MAX_HEARTBEATS_PER_SECOND = 50.0
# how many expiries may be in flight to the log at once (a mass failure of nodes)
_EXPIRE_CONCURRENCY = 32
# a failed down-marking (no leader for a moment) is retried after this long
_RETRY_AFTER = 1.0


def _env_seconds(name: str, default: float) -> float:
    raw = os.environ.get(name, "").strip()
    if not raw:
        return default
    try:
        value = float(raw)
    except ValueError:
        log.warning("%s=%r is not a number of seconds; using %s", name, raw, default)
        return default
    if value <= 0:
        log.warning("%s=%r must be positive; using %s", name, raw, default)
        return default
    return value


class HeartbeatTracker(LeaderLoop):
    """Leader-only node TTLs. ``touch`` on every registration and heartbeat; ``start``
    and ``stop`` with leadership (it has ``async start()/stop()`` for
    ``LeaderServices.add``)."""

    def __init__(self, agent: ServiceContext, ttl: float | None = None, grace: float | None = None,
                 clock: Callable[[], float] = time.monotonic, *,
                 max_per_second: float | None = None, stagger: bool = True,
                 wall_clock: Callable[[], float] = time.time,
                 rng: random.Random | None = None):
        self.agent = agent
        self.ttl = ttl if ttl is not None else _env_seconds("CARAVAN_HEARTBEAT_TTL",
                                                            MIN_HEARTBEAT_TTL)
        self.grace = grace if grace is not None else _env_seconds("CARAVAN_HEARTBEAT_GRACE",
                                                                  HEARTBEAT_GRACE)
        self.max_per_second = max_per_second if max_per_second is not None else \
            _env_seconds("CARAVAN_HEARTBEAT_RATE", MAX_HEARTBEATS_PER_SECOND)
        self.stagger = stagger
        self.clock = clock
        self.wall_clock = wall_clock
        self._rng = rng or random.Random()
        self._deadlines: dict[str, float] = {}
        self._heap: list[tuple[float, str]] = []   # (deadline, node id); stale entries skipped
        self._expiring: dict[str, asyncio.Future] = {}
        self._wake: asyncio.Event | None = None
        self.expired_total = 0

    # --- what the RPC handlers call ------------------------------------------------------

    def scaled_ttl(self, n_nodes: int) -> float:
        """The TTL before stagger for ``n_nodes`` tracked nodes (Nomad's
        ``RateScaledInterval``): ``max(ttl, n_nodes / max_per_second)``."""
        return max(self.ttl, n_nodes / self.max_per_second)

    def touch(self, node_id: str) -> float:
        """Reset the node's timer; returns the TTL in seconds to hand to the node (its
        timer here runs ``ttl + grace``)."""
        n = len(self._deadlines) + (0 if node_id in self._deadlines else 1)
        ttl = self.scaled_ttl(n)
        if self.stagger:
            ttl += self._rng.random() * ttl
        self._arm(node_id, self.clock() + ttl + self.grace)
        return ttl

    def forget(self, node_id: str) -> None:
        self._deadlines.pop(node_id, None)

    def tracked(self) -> dict[str, float]:
        """Node id -> deadline (on ``clock``)."""
        return dict(self._deadlines)

    async def settled(self, node_id: str) -> None:
        """Wait until a down-marking of this node that is in flight has been applied,
        so a heartbeat that races it re-marks the node ready afterwards."""
        fut = self._expiring.get(node_id)
        if fut is not None:
            await asyncio.shield(fut)

    # --- leadership ------------------------------------------------------------------------

    def _reset(self) -> None:
        """On gaining leadership: a fresh TTL for every node that is not down."""
        self._deadlines.clear()
        self._heap.clear()
        nodes = [n for n in self.agent.fsm.state.rows(t.NODES) if n.Status != "down"]
        ttl = self.scaled_ttl(len(nodes))
        now = self.clock()
        for node in nodes:
            self._arm(node.ID, now + ttl + self.grace)
        self._wake = asyncio.Event()
        log.info("heartbeat timers started for %d nodes (ttl %.1fs, grace %.1fs)",
                 len(nodes), ttl, self.grace)

    async def stop(self) -> None:
        await super().stop()
        self._deadlines.clear()
        self._heap.clear()

    # --- expiry ------------------------------------------------------------------------------

    def _arm(self, node_id: str, deadline: float) -> None:
        earliest = self._heap[0][0] if self._heap else None
        self._deadlines[node_id] = deadline
        heapq.heappush(self._heap, (deadline, node_id))
        if self._wake is not None and (earliest is None or deadline < earliest):
            self._wake.set()
        # Heartbeats leave stale heap entries behind; rebuild when they dominate.
        if len(self._heap) > 4 * len(self._deadlines) + 64:
            self._heap = [(d, n) for n, d in self._deadlines.items()]
            heapq.heapify(self._heap)

    def _due(self, now: float) -> list[str]:
        due = []
        while self._heap and self._heap[0][0] <= now:
            deadline, node_id = heapq.heappop(self._heap)
            if self._deadlines.get(node_id) == deadline:
                del self._deadlines[node_id]
                due.append(node_id)
        return due

    async def expire_due(self) -> list[str]:
        """Mark down every node whose deadline has passed on ``clock``; returns their
        ids. The background loop calls this; tests call it after moving a fake clock."""
        due = [n for n in self._due(self.clock()) if n not in self._expiring]
        if not due:
            return []
        sem = asyncio.Semaphore(_EXPIRE_CONCURRENCY)

        async def one(node_id: str) -> str | None:
            async with sem:
                return node_id if await self._expire(node_id) else None

        done = await asyncio.gather(*(one(n) for n in due))
        return [n for n in done if n is not None]

    async def _expire(self, node_id: str) -> bool:
        node = self.agent.fsm.state.get(t.NODES, node_id)
        if node is None or node.Status == "down":
            return False
        fut = asyncio.get_running_loop().create_future()
        self._expiring[node_id] = fut
        try:
            state = self.agent.fsm.state
            wall = self.wall_clock()
            body = e.NodeStatus(NodeID=node_id, Status="down",
                                UpdatedAt=int(wall),
                                Evals=node_update_evals(state, node_id, int(wall * 1e9),
                                                        self.agent.new_id) or None)
            try:
                await self.agent.submit(body)
            except EntryRejected as rej:
                log.warning("marking node %s down was refused: %s", node_id, rej.message)
                return False
            except Exception as exc:
                log.warning("could not mark node %s down (%s); retrying", node_id, exc)
                if self._task is not None and node_id not in self._deadlines:
                    self._arm(node_id, self.clock() + _RETRY_AFTER)
                return False
            self.expired_total += 1
            log.info("node %s missed its heartbeats: marked down with %d evals", node_id,
                     len(body.Evals or ()))
            return True
        finally:
            self._expiring.pop(node_id, None)
            fut.set_result(None)

    async def _run(self) -> None:
        while True:
            self._wake.clear()
            try:
                await self.expire_due()
            except Exception:
                log.exception("heartbeat expiry failed")
            if self._heap:
                delay = min(max(self._heap[0][0] - self.clock(), 0.0), 1.0)
            else:
                delay = 1.0
            try:
                await asyncio.wait_for(self._wake.wait(), max(delay, 0.01))
            except TimeoutError:
                pass
