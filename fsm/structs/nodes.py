"""Client nodes: resources, drivers, drain, events and host volumes."""
from __future__ import annotations

import msgspec

from caravan.fsm.structs.base import Record
from caravan.fsm.structs.jobspec import NetworkResource, Resources

# Node has a field named Resources: its later annotations name the type by this alias.
_Resources = Resources


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
    Reserved: _Resources | None = None
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
