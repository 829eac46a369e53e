"""Allocations, their task states and reschedule tracking, and placement metrics."""
from __future__ import annotations

from typing import Any

from caravan.fsm.structs.base import Record
from caravan.fsm.structs.jobspec import AllocatedPortMapping, Job, Resources

# Allocation has a field named Resources: its later annotations name the type by this alias.
_Resources = Resources


class TaskEvent(Record):
    Type: str = ""
    Time: int = 0
    Message: str = ""
    DisplayMessage: str = ""
    Details: dict[str, str] | None = None
    FailsTask: bool = False
    RestartReason: str = ""
    SetupError: str = ""
    DriverError: str = ""
    ExitCode: int = 0
    Signal: int = 0
    KillTimeout: int = 0
    KillError: str = ""
    KillReason: str = ""
    StartDelay: int = 0
    DownloadError: str = ""
    ValidationError: str = ""
    DiskLimit: int = 0
    FailedSibling: str = ""
    VaultError: str = ""
    TaskSignalReason: str = ""
    TaskSignal: str = ""
    DriverMessage: str = ""


class TaskState(Record):
    State: str = "pending"
    Failed: bool = False
    Restarts: int = 0
    LastRestart: str = "0001-01-01T00:00:00Z"
    StartedAt: str = "0001-01-01T00:00:00Z"
    FinishedAt: str = "0001-01-01T00:00:00Z"
    Events: list[TaskEvent] | None = None


class AllocDeploymentStatus(Record):
    Healthy: bool | None = None
    Timestamp: str = "0001-01-01T00:00:00Z"
    Canary: bool = False
    ModifyIndex: int = 0


class RescheduleEvent(Record):
    """One past rescheduling: when (unix ns), from which allocation and node, and the
    delay that was waited (ns)."""
    RescheduleTime: int = 0
    PrevAllocID: str = ""
    PrevNodeID: str = ""
    Delay: int = 0


class RescheduleTracker(Record):
    Events: list[RescheduleEvent] | None = None


class DesiredTransition(Record):
    """What the servers want to happen to an allocation next (Nomad's pointers:
    None is unset). ``Migrate``: stop it and place a replacement (``alloc stop``,
    or the node drainer moving it off a draining node). ``Reschedule``: a failed
    allocation of an active deployment may be replaced; ``ForceReschedule``: replace
    a failed allocation now, whatever its reschedule policy says."""
    Migrate: bool | None = None
    Reschedule: bool | None = None
    ForceReschedule: bool | None = None
    NoShutdownDelay: bool | None = None


class Allocation(Record):
    ID: str = ""
    Namespace: str = "default"
    EvalID: str = ""
    Name: str = ""
    NodeID: str = ""
    NodeName: str = ""
    JobID: str = ""
    Job: Job | None = None
    TaskGroup: str = ""
    # What the allocation reserved on its node: the sum over its tasks plus the group's
    # disk (the pre-0.9 view the scheduler counts with), per task, and shared.
    Resources: Resources | None = None
    TaskResources: dict[str, _Resources] | None = None
    SharedResources: _Resources | None = None
    AllocatedResources: Any = None
    DesiredStatus: str = ""
    DesiredDescription: str = ""
    DesiredTransition: DesiredTransition | None = None
    ClientStatus: str = ""
    ClientDescription: str = ""
    TaskStates: dict[str, TaskState] | None = None
    DeploymentID: str = ""
    DeploymentStatus: AllocDeploymentStatus | None = None
    PreviousAllocation: str = ""
    NextAllocation: str = ""
    # the allocations this one evicted to fit (system jobs preempt lower priorities),
    # and on an evicted one, the allocation that preempted it
    PreemptedAllocations: list[str] | None = None
    PreemptedByAllocation: str = ""
    FollowupEvalID: str = ""
    RescheduleTracker: RescheduleTracker | None = None
    Metrics: AllocMetric | None = None
    CreateIndex: int = 0
    ModifyIndex: int = 0
    AllocModifyIndex: int = 0
    CreateTime: int = 0
    ModifyTime: int = 0

    def terminal(self) -> bool:
        return self.DesiredStatus in ("stop", "evict") or \
            self.ClientStatus in ("complete", "failed", "lost")

    def should_migrate(self) -> bool:
        return self.DesiredTransition is not None and bool(self.DesiredTransition.Migrate)

    def should_reschedule(self) -> bool:
        """A deployment allowed replacing this failed allocation."""
        return self.DesiredTransition is not None and bool(self.DesiredTransition.Reschedule)

    def should_force_reschedule(self) -> bool:
        return self.DesiredTransition is not None and \
            bool(self.DesiredTransition.ForceReschedule)

    def client_terminal(self) -> bool:
        return self.ClientStatus in ("complete", "failed", "lost")

    def shared_ports(self) -> list[AllocatedPortMapping]:
        """The group network's ports, static then dynamic, as Nomad 1.x lists them
        (``AllocatedPorts``): each on its network's IP, ``To`` as asked (a dynamic
        port's ``-1`` was already resolved to its value by the scheduler)."""
        shared = self.SharedResources
        if shared is None or not shared.Networks:
            return []
        return [AllocatedPortMapping(Label=p.Label, Value=p.Value, To=p.To, HostIP=net.IP)
                for net in shared.Networks
                for p in (*(net.ReservedPorts or ()), *(net.DynamicPorts or ()))]

    def usage(self) -> tuple[int, int, int]:
        """(CPU MHz, MemoryMB, DiskMB) reserved: the combined ``Resources``, else the
        tasks' plus the shared disk (the older layout)."""
        res = self.Resources
        if res is not None:
            return (res.CPU or 0, res.MemoryMB or 0, res.DiskMB or 0)
        cpu = memory = 0
        for res in (self.TaskResources or {}).values():
            cpu += res.CPU or 0
            memory += res.MemoryMB or 0
        shared = self.SharedResources
        return (cpu, memory, (shared.DiskMB or 0) if shared is not None else 0)


class NodeScoreMeta(Record):
    NodeID: str = ""
    Scores: dict[str, float] | None = None
    NormScore: float = 0.0


class AllocMetric(Record):
    """Why a placement went where it went, or why it failed (Nomad's AllocMetric)."""
    NodesEvaluated: int = 0
    NodesFiltered: int = 0
    NodesInPool: int = 0
    NodesAvailable: dict[str, int] | None = None
    ClassFiltered: dict[str, int] | None = None
    ConstraintFiltered: dict[str, int] | None = None
    NodesExhausted: int = 0
    ClassExhausted: dict[str, int] | None = None
    DimensionExhausted: dict[str, int] | None = None
    QuotaExhausted: list[str] | None = None
    ResourcesExhausted: dict[str, Any] | None = None
    Scores: dict[str, float] | None = None
    ScoreMetaData: list[NodeScoreMeta] | None = None
    AllocationTime: int = 0                 # nanoseconds
    CoalescedFailures: int = 0
