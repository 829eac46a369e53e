"""Scaling events of a job's groups."""
from __future__ import annotations

from typing import Any

from caravan.fsm.structs.base import Record


class ScalingEvent(Record):
    """One scaling action or message on a group (Nomad's ``ScalingEvent``); ``Count``
    is None for an event that changed no count, ``EvalID`` None when no eval ran."""
    Time: int = 0                 # unix ns
    Count: int | None = None
    PreviousCount: int = 0
    Message: str = ""
    Error: bool = False
    Meta: dict[str, Any] | None = None
    EvalID: str | None = None
    CreateIndex: int = 0


class JobScalingEvents(Record):
    """A job's scaling events per group, newest first, at most
    ``fsm.scaling.TRACKED_EVENTS`` each (Nomad's ``JobScalingEvents``)."""
    JobID: str = ""
    Namespace: str = "default"
    ScalingEvents: dict[str, list[ScalingEvent]] = {}
    CreateIndex: int = 0
    ModifyIndex: int = 0
