"""Typed rows of the state store, shaped like Nomad's JSON.

Every record is a ``msgspec.Struct`` whose field names are Nomad's CamelCase names, so
the same type decodes a request body (with type checks that name the bad field),
encodes a response, and encodes/decodes the msgpack bodies of log entries and
snapshots. Fields that Nomad's API declares as pointers (unset is different from
zero) are ``X | None = None`` here; canonicalization (``server/jobspec``) fills them
before a job is submitted to the log.

Rows held by the state store are never mutated: appliers build changed copies with
``msgspec.structs.replace`` so that snapshots handed to readers stay unchanged.

Fields typed ``Any`` are accepted and stored as given (Nomad 1.x blocks that Caravan
keeps but does not act on yet, e.g. ``Volumes``).
"""
from __future__ import annotations

from typing import Any

import msgspec


class Record(msgspec.Struct, kw_only=True, gc=False):
    """Base of every row: keyword-only construction, all fields encoded (Nomad emits
    every field, with ``null`` for nil slices and maps).

    ``gc=False``: rows never form reference cycles, so the cyclic garbage collector
    need not track them; with tens of thousands of rows in the state, its full
    passes otherwise cost more than the rest of a registration."""


# --- job specification -------------------------------------------------------------


class Constraint(Record):
    LTarget: str = ""
    RTarget: str = ""
    Operand: str = ""


class Affinity(Record):
    """A soft constraint: nodes matching it score ``Weight`` (-100..100, not 0; a
    negative weight steers placements away). Canonicalized to weight 50."""
    LTarget: str = ""
    RTarget: str = ""
    Operand: str = ""
    Weight: int | None = None


class SpreadTarget(Record):
    Value: str = ""
    Percent: int = 0


class Spread(Record):
    """Spread a group's allocations over the values of ``Attribute``: by the targets'
    percentages, or evenly without targets. Canonicalized to weight 50."""
    Attribute: str = ""
    Weight: int | None = None
    SpreadTarget: list[SpreadTarget] | None = None


class Port(Record):
    Label: str = ""
    Value: int = 0
    To: int = 0
    HostNetwork: str = ""


class AllocatedPortMapping(Record):
    """One port of a group network as the allocation holds it (Nomad 1.x
    ``AllocatedResources.Shared.Ports``): ``HostIP`` is the address it was taken on."""
    Label: str = ""
    Value: int = 0
    To: int = 0
    HostIP: str = ""


class NetworkResource(Record):
    Mode: str = ""
    Device: str = ""
    CIDR: str = ""
    IP: str = ""
    Hostname: str = ""
    MBits: int | None = None
    DNS: Any = None
    ReservedPorts: list[Port] | None = None
    DynamicPorts: list[Port] | None = None


class Resources(Record):
    CPU: int | None = None
    Cores: int | None = None
    MemoryMB: int | None = None
    MemoryMaxMB: int | None = None
    DiskMB: int | None = None
    IOPS: int | None = None
    Networks: list[NetworkResource] | None = None
    Devices: Any = None


class RestartPolicy(Record):
    Attempts: int | None = None
    Interval: int | None = None
    Delay: int | None = None
    Mode: str | None = None


class ReschedulePolicy(Record):
    """How a failed allocation is replaced (Nomad >= 0.8). Durations in nanoseconds;
    ``DelayFunction`` is ``constant``, ``exponential`` or ``fibonacci``."""
    Attempts: int | None = None
    Interval: int | None = None
    Delay: int | None = None
    DelayFunction: str | None = None
    MaxDelay: int | None = None
    Unlimited: bool | None = None


class EphemeralDisk(Record):
    Sticky: bool | None = None
    SizeMB: int | None = None
    Migrate: bool | None = None


class UpdateStrategy(Record):
    Stagger: int | None = None
    MaxParallel: int | None = None
    HealthCheck: str | None = None
    MinHealthyTime: int | None = None
    HealthyDeadline: int | None = None
    ProgressDeadline: int | None = None
    AutoRevert: bool | None = None
    AutoPromote: bool | None = None
    Canary: int | None = None


class PeriodicConfig(Record):
    Enabled: bool | None = None
    Spec: str | None = None
    SpecType: str | None = None
    ProhibitOverlap: bool | None = None
    TimeZone: str | None = None


class ParameterizedJobConfig(Record):
    Payload: str = ""
    MetaRequired: list[str] | None = None
    MetaOptional: list[str] | None = None


class DispatchPayloadConfig(Record):
    File: str = ""


class ServiceCheck(Record):
    Name: str = ""
    Type: str = ""
    Command: str = ""
    Args: list[str] | None = None
    Path: str = ""
    Protocol: str = ""
    PortLabel: str = ""
    Method: str = ""
    Header: dict[str, list[str]] | None = None
    Interval: int = 0
    Timeout: int = 0
    InitialStatus: str = ""
    TLSSkipVerify: bool = False


class Service(Record):
    Name: str = ""
    PortLabel: str = ""
    AddressMode: str = ""
    Provider: str = ""
    Tags: list[str] | None = None
    CanaryTags: list[str] | None = None
    Meta: dict[str, str] | None = None
    Checks: list[ServiceCheck] | None = None


class Template(Record):
    SourcePath: str = ""
    DestPath: str = ""
    EmbeddedTmpl: str = ""
    ChangeMode: str = ""
    ChangeSignal: str = ""
    Splay: int | None = None
    Perms: str = ""
    LeftDelim: str = ""
    RightDelim: str = ""
    Envvars: bool = False


class TaskArtifact(Record):
    GetterSource: str = ""
    GetterOptions: dict[str, str] | None = None
    GetterHeaders: dict[str, str] | None = None
    GetterMode: str | None = None
    RelativeDest: str | None = None


class LogConfig(Record):
    MaxFiles: int | None = None
    MaxFileSizeMB: int | None = None


class Vault(Record):
    Policies: list[str] | None = None
    Namespace: str = ""
    Env: bool | None = None
    ChangeMode: str | None = None
    ChangeSignal: str | None = None


class TaskLifecycleConfig(Record):
    """When a task runs relative to the group's main tasks (``lifecycle`` block)."""
    Hook: str = ""              # prestart, poststart or poststop
    Sidecar: bool = False       # keeps running beside the main tasks


class VolumeRequest(Record):
    """A group's ``volume "name"`` block (Nomad's VolumeRequest)."""
    Name: str = ""
    Type: str = ""              # "host" (CSI volumes are not supported)
    Source: str = ""            # the client host volume's name
    ReadOnly: bool = False
    AccessMode: str = ""
    AttachmentMode: str = ""
    MountOptions: Any = None
    PerAlloc: bool = False


class VolumeMount(Record):
    """A task's ``volume_mount`` block: a group volume at a path inside the task."""
    Volume: str = ""
    Destination: str = ""
    ReadOnly: bool = False
    PropagationMode: str = ""


class Task(Record):
    Name: str = ""
    Driver: str = ""
    User: str = ""
    Lifecycle: TaskLifecycleConfig | None = None
    Config: dict[str, Any] | None = None
    Constraints: list[Constraint] | None = None
    Affinities: list[Affinity] | None = None
    Env: dict[str, str] | None = None
    Services: list[Service] | None = None
    Resources: Resources | None = None
    Meta: dict[str, str] | None = None
    KillTimeout: int | None = None
    KillSignal: str = ""
    ShutdownDelay: int = 0
    LogConfig: LogConfig | None = None
    Artifacts: list[TaskArtifact] | None = None
    Vault: Vault | None = None
    Templates: list[Template] | None = None
    DispatchPayload: DispatchPayloadConfig | None = None
    Leader: bool = False
    VolumeMounts: list[VolumeMount] | None = None

    def hook(self) -> str:
        """The lifecycle hook ("" for a main task)."""
        return self.Lifecycle.Hook if self.Lifecycle is not None else ""

    def sidecar(self) -> bool:
        return self.Lifecycle is not None and self.Lifecycle.Sidecar


class ScalingPolicy(Record):
    """A group's ``scaling`` block, and the row the state keeps for it (Nomad's
    ``ScalingPolicy``): ``Target`` names its namespace, job and group; ``ID`` stays the
    same across versions of the job for the same target (``fsm.scaling``)."""
    ID: str = ""
    Namespace: str = ""
    Type: str = ""
    Target: dict[str, str] | None = None
    Policy: dict[str, Any] | None = None
    Min: int | None = None
    Max: int | None = None
    Enabled: bool | None = None
    CreateIndex: int = 0
    ModifyIndex: int = 0


class TaskGroup(Record):
    Name: str | None = None
    Count: int | None = None
    Constraints: list[Constraint] | None = None
    Affinities: list[Affinity] | None = None
    Spreads: list[Spread] | None = None
    Tasks: list[Task] | None = None
    RestartPolicy: RestartPolicy | None = None
    ReschedulePolicy: ReschedulePolicy | None = None
    EphemeralDisk: EphemeralDisk | None = None
    Update: UpdateStrategy | None = None
    Migrate: Any = None
    Networks: list[NetworkResource] | None = None
    Services: list[Service] | None = None
    Volumes: dict[str, VolumeRequest] | None = None
    Scaling: ScalingPolicy | None = None
    ShutdownDelay: int | None = None
    Meta: dict[str, str] | None = None


class Job(Record):
    Region: str | None = None
    Namespace: str | None = None
    ID: str | None = None
    ParentID: str = ""
    Name: str | None = None
    Type: str | None = None
    Priority: int | None = None
    AllAtOnce: bool = False
    Datacenters: list[str] | None = None
    NodePool: str | None = None
    Constraints: list[Constraint] | None = None
    Affinities: list[Affinity] | None = None
    Spreads: list[Spread] | None = None
    TaskGroups: list[TaskGroup] | None = None
    Update: UpdateStrategy | None = None
    # the API's job-level block: merged into every group by canonicalization, which
    # then clears it (Nomad's stored job has none)
    Reschedule: ReschedulePolicy | None = None
    Multiregion: Any = None
    Periodic: PeriodicConfig | None = None
    ParameterizedJob: ParameterizedJobConfig | None = None
    Dispatched: bool = False
    DispatchIdempotencyToken: str = ""
    Payload: bytes | None = None
    Meta: dict[str, str] | None = None
    ConsulToken: str = ""
    ConsulNamespace: str = ""
    VaultToken: str = ""
    VaultNamespace: str = ""
    NomadTokenID: str = ""      # the submitter's token accessor, with ACLs (none here)
    Stop: bool = False
    Status: str = ""
    StatusDescription: str = ""
    Stable: bool = False
    Version: int = 0
    SubmitTime: int = 0
    CreateIndex: int = 0
    ModifyIndex: int = 0
    JobModifyIndex: int = 0

    def is_periodic(self) -> bool:
        return self.Periodic is not None

    def is_periodic_active(self) -> bool:
        return self.Periodic is not None and bool(self.Periodic.Enabled) and not self.Stop \
            and not self.is_parameterized()

    def is_parameterized(self) -> bool:
        return self.ParameterizedJob is not None and not self.Dispatched


# --- evaluations, allocations, deployments, summaries ------------------------------


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
    TaskResources: dict[str, Resources] | None = None
    SharedResources: Resources | None = None
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
        return self.Status == "running" and bool(self.TaskGroups) and all(
            s.AutoPromote for s in self.TaskGroups.values() if s.DesiredCanaries > 0)


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
    these still count (``fsm.allocs.summarize``). Not served over HTTP."""
    JobID: str = ""
    JobCreateIndex: int = 0       # the job incarnation the counts belong to
    Summary: dict[str, TaskGroupSummary] = {}
    CreateIndex: int = 0
    ModifyIndex: int = 0


class GCWitness(Record):
    """When log indexes were applied, as the garbage collector saw it: entry
    ``Applied[i]`` and all before it had been applied by unix time ``Times[i]`` (ns).
    Ascending; thinned to at most ``fsm.gc.WITNESS_SAMPLES`` (Nomad's TimeTable)."""
    ID: str = "gc"
    Applied: list[int] = []
    Times: list[int] = []
    CreateIndex: int = 0
    ModifyIndex: int = 0


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


class PeriodicLaunch(Record):
    ID: str = ""
    Namespace: str = "default"
    Launch: int = 0  # unix nanoseconds of the last launch
    CreateIndex: int = 0
    ModifyIndex: int = 0


# --- nodes and placement ---------------------------------------------------------------


class NodeCpuResources(Record):
    CpuShares: int = 0          # total MHz (cores x MHz)
    TotalCpuCores: int = 0


class NodeMemoryResources(Record):
    MemoryMB: int = 0


class NodeDiskResources(Record):
    DiskMB: int = 0


class NodeResources(Record):
    Cpu: NodeCpuResources = msgspec.field(default_factory=NodeCpuResources)
    Memory: NodeMemoryResources = msgspec.field(default_factory=NodeMemoryResources)
    Disk: NodeDiskResources = msgspec.field(default_factory=NodeDiskResources)
    Networks: list[NetworkResource] | None = None
    MinDynamicPort: int = 20000
    MaxDynamicPort: int = 32000


class NodeReservedNetworkResources(Record):
    ReservedHostPorts: str = ""   # e.g. "22,80,8000-8100"


class NodeReservedResources(Record):
    Cpu: NodeCpuResources = msgspec.field(default_factory=NodeCpuResources)
    Memory: NodeMemoryResources = msgspec.field(default_factory=NodeMemoryResources)
    Disk: NodeDiskResources = msgspec.field(default_factory=NodeDiskResources)
    Networks: NodeReservedNetworkResources = msgspec.field(
        default_factory=NodeReservedNetworkResources)


class DriverInfo(Record):
    Attributes: dict[str, str] | None = None
    Detected: bool = False
    Healthy: bool = False
    HealthDescription: str = ""
    UpdateTime: str = "0001-01-01T00:00:00Z"


class DrainStrategy(Record):
    """Nomad's ``DrainStrategy``: the operator's ``DrainSpec`` (Deadline in ns: 0 none,
    negative force at once) and, decided when the drain was set, when it started and
    when whatever is left is forced off (``ForceDeadline``, zero time: never)."""
    Deadline: int = 0
    IgnoreSystemJobs: bool = False
    ForceDeadline: str = "0001-01-01T00:00:00Z"
    StartedAt: str = "0001-01-01T00:00:00Z"


class DrainMetadata(Record):
    """Nomad's ``LastDrain``: the newest drain's times (second precision, as Nomad),
    status (``draining``, ``complete``, ``canceled``) and operator metadata."""
    StartedAt: str = "0001-01-01T00:00:00Z"
    UpdatedAt: str = "0001-01-01T00:00:00Z"
    Status: str = ""
    AccessorID: str = ""
    Meta: dict[str, str] | None = None


class NodeEvent(Record):
    Message: str = ""
    Subsystem: str = ""
    Details: dict[str, str] | None = None
    Timestamp: str = "0001-01-01T00:00:00Z"
    CreateIndex: int = 0


class ClientHostVolumeConfig(Record):
    """A directory of the client host offered to tasks (``host_volume`` in the
    client's configuration)."""
    Name: str = ""
    Path: str = ""
    ReadOnly: bool = False


class Node(Record):
    ID: str = ""
    SecretID: str = ""
    Datacenter: str = ""
    Name: str = ""
    HTTPAddr: str = ""
    TLSEnabled: bool = False
    Attributes: dict[str, str] | None = None
    NodeResources: NodeResources | None = None
    ReservedResources: NodeReservedResources | None = None
    Resources: Resources | None = None      # pre-0.9 view, derived from NodeResources
    Reserved: Resources | None = None
    Links: dict[str, str] | None = None
    Meta: dict[str, str] | None = None
    NodeClass: str = ""
    NodePool: str = "default"
    ComputedClass: str = ""
    Drain: bool = False                     # DrainStrategy is set (Nomad's deprecated flag)
    DrainStrategy: DrainStrategy | None = None
    LastDrain: DrainMetadata | None = None
    SchedulingEligibility: str = "eligible"
    Status: str = "initializing"
    StatusDescription: str = ""
    StatusUpdatedAt: int = 0                # unix seconds
    Drivers: dict[str, DriverInfo] | None = None
    Events: list[NodeEvent] | None = None   # the newest MAX_NODE_EVENTS, oldest first
    HostVolumes: dict[str, ClientHostVolumeConfig] | None = None
    CreateIndex: int = 0
    ModifyIndex: int = 0

    def ready(self) -> bool:
        return self.Status == "ready" and not self.Drain and \
            self.SchedulingEligibility == "eligible"


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
