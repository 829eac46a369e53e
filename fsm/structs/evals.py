"""Evaluations: a request to the scheduler to reconcile one job (or node) with the state."""
from __future__ import annotations

from typing import Any

from caravan.fsm.structs.allocs import AllocMetric
from caravan.fsm.structs.base import Record


class Evaluation(Record):
    ID: str = ""
    Namespace: str = "default"
    Priority: int = 50
    Type: str = ""
    TriggeredBy: str = ""
    JobID: str = ""
    JobModifyIndex: int = 0
    NodeID: str = ""
    NodeModifyIndex: int = 0
    DeploymentID: str = ""
    Status: str = ""
    StatusDescription: str = ""
    Wait: int = 0
    WaitUntil: str = "0001-01-01T00:00:00Z"
    NextEval: str = ""
    PreviousEval: str = ""
    BlockedEval: str = ""
    FailedTGAllocs: dict[str, AllocMetric] | None = None
    ClassEligibility: dict[str, bool] | None = None
    QuotaLimitReached: str = ""     # Nomad Enterprise quotas: always empty here
    EscapedComputedClass: bool = False
    AnnotatePlan: bool = False
    QueuedAllocations: dict[str, int] | None = None
    SnapshotIndex: int = 0
    # Filled only in the answer to ``/v1/evaluation/:id?related=true``; never stored.
    RelatedEvals: list[dict[str, Any]] | None = None
    CreateIndex: int = 0
    ModifyIndex: int = 0
    CreateTime: int = 0
    ModifyTime: int = 0
