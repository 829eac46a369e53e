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

The rows are grouped by domain, one module each: ``base`` (``Record``), ``jobspec``
(a job's specification), ``evals``, ``allocs``, ``deployments``, ``summaries``,
``scaling``, ``nodes`` and ``bookkeeping`` (rows the state machine keeps for itself).
Every row is re-exported here, so ``from caravan.fsm.structs import Job`` keeps working.
"""
from caravan.fsm.structs.allocs import (
    Allocation,
    AllocDeploymentStatus,
    AllocMetric,
    DesiredTransition,
    NodeScoreMeta,
    RescheduleEvent,
    RescheduleTracker,
    TaskEvent,
    TaskState,
)
from caravan.fsm.structs.base import (
    Record,
)
from caravan.fsm.structs.bookkeeping import (
    GCWitness,
    LeaderEpoch,
    PeriodicLaunch,
    RequestResult,
)
from caravan.fsm.structs.deployments import (
    Deployment,
    DeploymentState,
)
from caravan.fsm.structs.evals import (
    Evaluation,
)
from caravan.fsm.structs.jobspec import (
    Affinity,
    AllocatedPortMapping,
    Constraint,
    DispatchPayloadConfig,
    EphemeralDisk,
    Job,
    LogConfig,
    NetworkResource,
    ParameterizedJobConfig,
    PeriodicConfig,
    Port,
    ReschedulePolicy,
    Resources,
    RestartPolicy,
    ScalingPolicy,
    Service,
    ServiceCheck,
    Spread,
    SpreadTarget,
    Task,
    TaskArtifact,
    TaskGroup,
    TaskLifecycleConfig,
    Template,
    UpdateStrategy,
    Vault,
    VolumeMount,
    VolumeRequest,
)
from caravan.fsm.structs.nodes import (
    ClientHostVolumeConfig,
    DrainMetadata,
    DrainStrategy,
    DriverInfo,
    Node,
    NodeCpuResources,
    NodeDiskResources,
    NodeEvent,
    NodeMemoryResources,
    NodeReservedNetworkResources,
    NodeReservedResources,
    NodeResources,
)
from caravan.fsm.structs.scaling import (
    JobScalingEvents,
    ScalingEvent,
)
from caravan.fsm.structs.summaries import (
    CollectedAllocs,
    JobChildrenSummary,
    JobSummary,
    TaskGroupSummary,
)

__all__ = [
    "Affinity",
    "AllocDeploymentStatus",
    "AllocMetric",
    "AllocatedPortMapping",
    "Allocation",
    "ClientHostVolumeConfig",
    "CollectedAllocs",
    "Constraint",
    "Deployment",
    "DeploymentState",
    "DesiredTransition",
    "DispatchPayloadConfig",
    "DrainMetadata",
    "DrainStrategy",
    "DriverInfo",
    "EphemeralDisk",
    "Evaluation",
    "GCWitness",
    "Job",
    "JobChildrenSummary",
    "JobScalingEvents",
    "JobSummary",
    "LeaderEpoch",
    "LogConfig",
    "NetworkResource",
    "Node",
    "NodeCpuResources",
    "NodeDiskResources",
    "NodeEvent",
    "NodeMemoryResources",
    "NodeReservedNetworkResources",
    "NodeReservedResources",
    "NodeResources",
    "NodeScoreMeta",
    "ParameterizedJobConfig",
    "PeriodicConfig",
    "PeriodicLaunch",
    "Port",
    "Record",
    "RequestResult",
    "RescheduleEvent",
    "ReschedulePolicy",
    "RescheduleTracker",
    "Resources",
    "RestartPolicy",
    "ScalingEvent",
    "ScalingPolicy",
    "Service",
    "ServiceCheck",
    "Spread",
    "SpreadTarget",
    "Task",
    "TaskArtifact",
    "TaskEvent",
    "TaskGroup",
    "TaskGroupSummary",
    "TaskLifecycleConfig",
    "TaskState",
    "Template",
    "UpdateStrategy",
    "Vault",
    "VolumeMount",
    "VolumeRequest",
]
