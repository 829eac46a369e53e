"""A job's specification: the job, its groups and tasks, and the blocks inside them."""
from __future__ import annotations

from typing import Any

from caravan.fsm.structs.base import Record


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
