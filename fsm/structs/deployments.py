"""Deployments and their per-group state."""
from __future__ import annotations

from caravan.fsm.structs.base import Record


class DeploymentState(Record):
    AutoRevert: bool = False
    AutoPromote: bool = False
    ProgressDeadline: int = 0
    RequireProgressBy: str = "0001-01-01T00:00:00Z"
    Promoted: bool = False
    PlacedCanaries: list[str] | None = None
    DesiredCanaries: int = 0
    DesiredTotal: int = 0
    PlacedAllocs: int = 0
    HealthyAllocs: int = 0
    UnhealthyAllocs: int = 0


class Deployment(Record):
    ID: str = ""
    Namespace: str = "default"
    JobID: str = ""
    JobVersion: int = 0
    JobModifyIndex: int = 0
    JobSpecModifyIndex: int = 0
    JobCreateIndex: int = 0
    IsMultiregion: bool = False     # multiregion deployments are Nomad Enterprise
    TaskGroups: dict[str, DeploymentState] | None = None
    Status: str = ""
    StatusDescription: str = ""
    CreateIndex: int = 0
    ModifyIndex: int = 0

    def active(self) -> bool:
        return self.Status in ("running", "paused")

    def requires_promotion(self) -> bool:
        """Running with a canary group not yet promoted."""
        return self.Status == "running" and any(
            s.DesiredCanaries > 0 and not s.Promoted for s in (self.TaskGroups or {}).values())

    def has_auto_promote(self) -> bool:
        """Running, and every group with canaries promotes itself."""
        groups = self.TaskGroups or {}
        return self.Status == "running" and bool(groups) and all(
            s.AutoPromote for s in groups.values() if s.DesiredCanaries > 0)
