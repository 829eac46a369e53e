"""An in-memory replicated log: N FSM replicas behind one committed log, all faults
drawn from one seeded ``random.Random``.

``MemRaft`` is the replication group; each ``Replica`` is what one server sees and
satisfies ``server.log.ReplicatedLog`` (the protocol ``server.raft.RaftNode`` fills in
production). What it models, and what raft does the same way:

- a submission travels to the leader over a "network" with a random delay, so
  concurrent submissions are committed in an order the seed picks; one that arrives
  after the leader changed is dropped (pysyncobj: NOT_LEADER/LEADER_CHANGED) and the
  submitter resubmits the same bytes until its deadline, exactly like ``RaftNode``;
  a committed one may still be reported to the submitter as an unknown outcome, and
  its resubmission is answered by the FSM from the request id;
- every replica applies the committed log strictly in order, in batches, at its own
  random pace; a submitter is answered once its own replica applied the entry;
- leaders step down and new ones are elected only while a majority is up; a new
  leader runs its services only after a barrier of its own term (like the agent);
- a replica crashes (its FSM, in-flight submissions and services are gone) and
  restarts from its last snapshot (``encode_state``/``decode_state``) plus the log
  tail; snapshots are taken every few dozen entries.

After every entry a replica applies, ``on_apply(replica, index)`` runs (the invariant
checks), and the replica's per-table indexes are checked to be monotonic.
"""
from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

from caravan.fsm import entries
from caravan.fsm.apply import FSM
from caravan.fsm.store import State, decode_state, encode_state
from caravan.server.raft import ApplyTimeout, NoLeaderError

APPLY_TIMEOUT = 10.0     # RaftSettings.apply_timeout
LEADER_HOLD = 5.0        # RaftSettings.leader_hold
_NOOP = entries.encode(entries.Noop())


class InvariantViolation(Exception):
    """A property that must hold after every step of the simulation does not."""


class _Dropped(Exception):
    """The proposal reached no leader of the term it was sent in: not applied."""


class _Unknown(Exception):
    """Committed, but the answer was lost on the way back."""


class MemRaft:
    def __init__(self, n: int, rng: random.Random, trace: Callable[[str], None], *,
                 net_delay: tuple[float, float] = (0.0005, 0.02),
                 apply_lag: tuple[float, float] = (0.0, 0.03),
                 max_batch: int = 4, snapshot_every: tuple[int, int] = (15, 60),
                 unknown_outcome: float = 0.03,
                 on_apply: Callable[[Replica, int], None] | None = None):
        self.rng = rng
        self.trace = trace
        self.net_delay = net_delay
        self.apply_lag = apply_lag
        self.max_batch = max_batch
        self.snapshot_every = snapshot_every
        self.unknown_outcome = unknown_outcome
        self.on_apply = on_apply
        self.log: list[bytes] = []          # committed entries; index i is log[i - 1]
        self.term = 0
        self.leader_id: int | None = None
        self.replicas = [Replica(self, i) for i in range(n)]
        self.stats = {"committed": 0, "dropped": 0, "unknown": 0, "elections": 0,
                      "crashes": 0, "restarts": 0, "snapshots": 0, "restored": 0}

    # --- membership ------------------------------------------------------------------------

    @property
    def quorum(self) -> int:
        return len(self.replicas) // 2 + 1

    def up(self) -> list[Replica]:
        return [r for r in self.replicas if r.up]

    def start(self) -> None:
        for r in self.replicas:
            r.boot()

    def step_down(self, why: str) -> None:
        """The leader loses leadership (or dies); nobody leads until ``elect``."""
        old = self.leader_id
        if old is None:
            return
        self.leader_id = None
        self.term += 1
        self.trace(f"leader s{old} steps down ({why}); term {self.term}")
        self.replicas[old].leadership_changed(False)

    def elect(self, candidate: Replica) -> bool:
        if self.leader_id is not None or not candidate.up or len(self.up()) < self.quorum:
            return False
        self.term += 1
        self.leader_id = candidate.id
        self.stats["elections"] += 1
        self.trace(f"s{candidate.id} elected leader; term {self.term}")
        candidate.leadership_changed(True)
        return True

    # --- the network and the log ----------------------------------------------------------------

    async def propose(self, blob: bytes) -> int:
        """Carry ``blob`` to the leader of the current term and commit it."""
        term = self.term
        if self.leader_id is None:
            raise _Dropped()
        await asyncio.sleep(self.rng.uniform(*self.net_delay))
        if self.term != term or self.leader_id is None or len(self.up()) < self.quorum:
            self.stats["dropped"] += 1
            raise _Dropped()
        self.log.append(blob)
        index = len(self.log)
        self.stats["committed"] += 1
        for r in self.replicas:
            r.wake()
        if self.rng.random() < self.unknown_outcome:
            self.stats["unknown"] += 1
            raise _Unknown()
        return index


class Replica:
    """One server's view of the log: its own FSM, applied index and snapshot."""

    def __init__(self, group: MemRaft, i: int):
        self.group = group
        self.id = i
        self.name = f"s{i}"
        self.fsm = FSM()
        self.up = False
        self.incarnation = 0
        self.snapshot: tuple[int, bytes] | None = None
        self.on_leadership: Callable[[bool], None] | None = None
        self.on_boot: Callable[[Replica], None] | None = None
        self._next_snapshot = 0
        self._waiters: dict[int, list[asyncio.Future]] = {}
        self._pump: asyncio.Task | None = None
        self._new: asyncio.Event | None = None
        self._read_ready_term: int | None = None
        self._table_indexes: dict[str, int] = {}

    # --- ReplicatedLog -------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self.up and self.group.leader_id == self.id

    def leader(self) -> str | None:
        lid = self.group.leader_id
        return None if lid is None or not self.up else f"s{lid}"

    def applied_index(self) -> int:
        return self.fsm.state.last_index

    async def submit(self, blob: bytes, body=None) -> dict:
        """``RaftNode.submit``'s contract: retry the same bytes on a dropped or unknown
        outcome until the deadline; answer once applied here (with ``body``, this
        replica applies that object instead of decoding the bytes, as the leader does:
        the other replicas decode, and the state hashes must still agree)."""
        if body is not None:
            self.fsm.hold_decoded(blob, body)
        loop = asyncio.get_running_loop()
        incarnation = self.incarnation
        deadline = loop.time() + APPLY_TIMEOUT
        hold_until = loop.time() + LEADER_HOLD
        delay = 0.01
        unknown = False
        while True:
            self._alive(incarnation)
            if self.group.leader_id is None:
                if loop.time() >= hold_until:
                    raise NoLeaderError("No cluster leader")
                await asyncio.sleep(0.05)
                continue
            try:
                index = await self.group.propose(blob)
            except _Dropped:
                pass
            except _Unknown:
                unknown = True
            else:
                self._alive(incarnation)
                return await self._applied(index)
            if loop.time() >= deadline:
                if unknown:
                    raise ApplyTimeout("leader changed; the write's outcome is unknown")
                raise NoLeaderError("No cluster leader")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)

    async def read_barrier(self) -> None:
        term = self.group.term
        if self.is_leader and self._read_ready_term == term:
            return
        await self.submit(_NOOP)
        if self.is_leader and self.group.term == term:
            self._read_ready_term = term

    # --- lifecycle -----------------------------------------------------------------------

    def _alive(self, incarnation: int) -> None:
        if not self.up or self.incarnation != incarnation:
            raise ApplyTimeout(f"{self.name} crashed; the write's outcome is unknown")

    def boot(self) -> None:
        """Start (or restart) from the last snapshot plus the log tail."""
        self.incarnation += 1
        self.fsm = FSM()
        if self.snapshot is not None:
            index, blob = self.snapshot
            self.fsm.restore(decode_state(blob))
            self.group.stats["restored"] += 1
            self.group.trace(f"{self.name} restored snapshot at {index}")
        self._table_indexes = {}
        self._observe_indexes(self.fsm.state)
        self._next_snapshot = self.applied_index() + self.group.rng.randint(
            *self.group.snapshot_every)
        self.up = True
        self._new = asyncio.Event()
        self._pump = asyncio.ensure_future(self._apply_loop())
        if self.on_boot is not None:
            self.on_boot(self)
        self.wake()

    def crash(self) -> None:
        if not self.up:
            return
        self.up = False
        self.group.stats["crashes"] += 1
        self.group.trace(f"{self.name} crashes at {self.applied_index()}")
        if self._pump is not None:
            self._pump.cancel()
            self._pump = None
        waiters, self._waiters = self._waiters, {}
        for futs in waiters.values():
            for fut in futs:
                if not fut.done():
                    fut.set_exception(ApplyTimeout(f"{self.name} crashed"))
                    fut.exception()
        self._read_ready_term = None
        if self.group.leader_id == self.id:
            self.group.step_down("crash")

    def leadership_changed(self, leading: bool) -> None:
        if self.on_leadership is not None:
            asyncio.get_running_loop().call_soon(self.on_leadership, leading)

    def wake(self) -> None:
        if self._new is not None:
            self._new.set()

    # --- applying -------------------------------------------------------------------------

    async def _applied(self, index: int) -> dict:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.setdefault(index, []).append(fut)
        if self.applied_index() >= index:   # propose() returns before any pump runs
            raise InvariantViolation(f"{self.name}: entry {index} applied before its "
                                     f"submitter waited for it")
        return await fut

    def _resolve(self, index: int, result: dict) -> None:
        for fut in self._waiters.pop(index, ()):
            if not fut.done():
                fut.set_result(result)

    async def _apply_loop(self) -> None:
        group = self.group
        while True:
            if self.applied_index() >= len(group.log):
                self._new.clear()
                await self._new.wait()
            await asyncio.sleep(group.rng.uniform(*group.apply_lag))
            first = self.applied_index() + 1
            last = min(len(group.log), first + group.rng.randint(1, group.max_batch) - 1)
            for index in range(first, last + 1):
                result = self.fsm.apply(index, group.log[index - 1])
                if self.fsm.fatal:
                    raise InvariantViolation(f"{self.name}: {self.fsm.fatal}")
                self._observe_indexes(self.fsm.state)
                if group.on_apply is not None:
                    group.on_apply(self, index)
                self._resolve(index, result)
            if self.applied_index() >= self._next_snapshot:
                self.snapshot = (self.applied_index(), encode_state(self.fsm.state))
                group.stats["snapshots"] += 1
                self._next_snapshot = self.applied_index() + group.rng.randint(
                    *group.snapshot_every)

    def _observe_indexes(self, state: State) -> None:
        """Every table's index only grows, never passes the applied index, and equals
        it for a table the entry just changed."""
        seen = self._table_indexes
        for name, table in state.tables.items():
            before = seen.get(name)
            if table.index > state.last_index:
                raise InvariantViolation(f"{self.name}: table {name} index {table.index} is "
                                         f"past the applied index {state.last_index}")
            if before is not None:
                old_index, old_rows = before
                if table.index < old_index:
                    raise InvariantViolation(f"{self.name}: table {name} index went back "
                                             f"from {old_index} to {table.index}")
                if table.rows is not old_rows and table.index != state.last_index:
                    raise InvariantViolation(
                        f"{self.name}: table {name} changed at {state.last_index} but its "
                        f"index says {table.index}")
            seen[name] = (table.index, table.rows)
