"""Rows the state machine keeps for itself: periodic launches, the garbage collector's
time witness, the leader's epoch and remembered request answers."""
from __future__ import annotations

from typing import Any

from caravan.fsm.structs.base import Record


class GCWitness(Record):
    """When log indexes were applied, as the garbage collector saw it: entry
    ``Applied[i]`` and all before it had been applied by unix time ``Times[i]`` (ns).
    Ascending; thinned to at most ``fsm.gc.WITNESS_SAMPLES`` (Nomad's TimeTable)."""
    ID: str = "gc"
    Applied: list[int] = []
    Times: list[int] = []
    CreateIndex: int = 0
    ModifyIndex: int = 0


class PeriodicLaunch(Record):
    ID: str = ""
    Namespace: str = "default"
    Launch: int = 0  # unix nanoseconds of the last launch
    CreateIndex: int = 0
    ModifyIndex: int = 0


class LeaderEpoch(Record):
    """The log index at which the current leader's term of service began (its first
    entry): plans from earlier leaderships are refused after it."""
    ID: str = "leader"
    Index: int = 0
    CreateIndex: int = 0
    ModifyIndex: int = 0


class RequestResult(Record):
    """What an applied entry answered, kept so a resubmitted request (same RequestID)
    gets the same answer instead of being applied twice."""
    RequestID: str = ""
    Index: int = 0
    Result: Any = None
