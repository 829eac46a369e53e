"""What the services above the FSM need of the replicated log, and nothing more.

The HTTP gateway, the node RPC service, the leader-only services (broker feeder,
workers, plan applier, heartbeats) and the agent's leadership switch only ever:

- ``submit(blob, body=None)``: replicate one encoded entry and return the FSM's answer
  once it is applied on this server (``body``: the object ``blob`` was encoded from,
  which this server may apply instead of decoding the bytes: ``FSM.hold_decoded``).
  Raises ``NoLeaderError`` when nothing was applied, and ``ApplyTimeout`` when the
  outcome is unknown (a retry of the same bytes is answered by the FSM from the first
  application, by request id);
- ``read_barrier()``: wait until this server has applied every write acknowledged
  before the call;
- ``is_leader`` / ``leader()`` / ``on_leadership``: who leads, and a hook called on the
  event loop with True/False when this server gains/loses leadership;
- ``applied_index()``: the index of the last entry applied here.

``server.raft.RaftNode`` (pysyncobj) is the production implementation;
``tests/sim/memlog.py`` is an in-memory one that replicates to N FSM replicas with
seeded delays, reordering, leader changes and crashes. Both satisfy this protocol
structurally; neither inherits from it.
"""
from __future__ import annotations

from collections.abc import Callable
from typing import Protocol, runtime_checkable

from caravan.fsm.apply import FSM


@runtime_checkable
class ReplicatedLog(Protocol):
    fsm: FSM
    on_leadership: Callable[[bool], None] | None

    async def submit(self, blob: bytes, body=None) -> dict: ...

    async def read_barrier(self) -> None: ...

    @property
    def is_leader(self) -> bool: ...

    def leader(self) -> str | None: ...

    def applied_index(self) -> int: ...
