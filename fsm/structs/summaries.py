"""Job summaries: per-group allocation counts, children counts, and the counts of
collected allocations that still belong to a live job."""
from __future__ import annotations

import msgspec

from caravan.fsm.structs.base import Record


class TaskGroupSummary(Record):
    Queued: int = 0
    Complete: int = 0
    Failed: int = 0
    Running: int = 0
    Starting: int = 0
    Lost: int = 0
    Unknown: int = 0


class JobChildrenSummary(Record):
    Pending: int = 0
    Running: int = 0
    Dead: int = 0


class JobSummary(Record):
    JobID: str = ""
    Namespace: str = "default"
    Summary: dict[str, TaskGroupSummary] = {}
    Children: JobChildrenSummary = msgspec.field(default_factory=JobChildrenSummary)
    CreateIndex: int = 0
    ModifyIndex: int = 0


class CollectedAllocs(Record):
    """Per group, the summary buckets of a job's allocations that the garbage collector
    deleted while the job lived on: summaries are recounted from the allocations, and
    these still count (``fsm.summaries.summarize``). Not served over HTTP."""
    JobID: str = ""
    JobCreateIndex: int = 0       # the job incarnation the counts belong to
    Summary: dict[str, TaskGroupSummary] = {}
    CreateIndex: int = 0
    ModifyIndex: int = 0
