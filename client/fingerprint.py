"""What this host offers, as a Node registration: CPU (cores x MHz), memory, the disk of
the data dir, kernel, signals, hostname, the network address the servers see, and one
``driver.<name>`` attribute per usable driver. Resources reserved for the agent itself
come from the client's configuration."""
from __future__ import annotations

import logging
import os
import platform
import shutil
import signal
import socket

from caravan.client.clock import rfc3339
from caravan.fsm.structs import (
    ClientHostVolumeConfig,
    DriverInfo,
    NetworkResource,
    Node,
    NodeCpuResources,
    NodeDiskResources,
    NodeMemoryResources,
    NodeReservedNetworkResources,
    NodeReservedResources,
    NodeResources,
)

log = logging.getLogger("caravan.client.fingerprint")

VERSION = "1.6.0"   # the Nomad version whose API the client speaks


def cpu_mhz() -> float | None:
    """The per-core clock: cpufreq's maximum when the kernel exposes it, else the
    ``cpu MHz`` of /proc/cpuinfo. None when neither says (set cpu_total_compute)."""
    try:
        with open("/sys/devices/system/cpu/cpu0/cpufreq/cpuinfo_max_freq") as f:
            return int(f.read().strip()) / 1000.0
    except (OSError, ValueError):
        pass
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.lower().startswith("cpu mhz"):
                    return float(line.split(":", 1)[1])
    except (OSError, ValueError):
        pass
    return None


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_mb() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) // 1024
    raise RuntimeError("MemTotal missing from /proc/meminfo")


def os_signals() -> str:
    return ",".join(sorted(s.name for s in signal.Signals if not s.name.startswith("SIGRT")))


def address_towards(server_addr: str) -> str:
    """The local IP address this host uses to reach ``server_addr`` (a UDP socket is
    connected, which sends nothing)."""
    host = server_addr.rpartition(":")[0].strip("[]") or "127.0.0.1"
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_DGRAM) as s:
        try:
            s.connect((host, 9))
            return s.getsockname()[0]
        except OSError:
            return "127.0.0.1"


def interface_of(ip: str) -> str:
    """The network interface that holds ``ip`` (``lo`` for loopback)."""
    if ip.startswith("127.") or ip == "::1":
        return "lo"
    try:
        for _index, name in socket.if_nameindex():
            if name != "lo":
                return name
    except OSError:
        pass
    return "eth0"


# Meta every Nomad 1.x client gives its node unless its configuration sets the key
# (client.setupNode): the Envoy images and settings Consul Connect sidecars use.
ENVOY_IMAGE = "envoyproxy/envoy:v${NOMAD_envoy_version}"
DEFAULT_META = {
    "connect.sidecar_image": ENVOY_IMAGE,
    "connect.gateway_image": ENVOY_IMAGE,
    "connect.log_level": "info",
    "connect.proxy_concurrency": "1",
}


class HostVolumeError(RuntimeError):
    """A configured host volume cannot be offered (its directory is missing)."""


def host_volumes(config: dict) -> dict[str, ClientHostVolumeConfig] | None:
    """The node's ``HostVolumes`` from the client's ``host_volume`` settings (name ->
    {"path", "read_only"}). As Nomad's client, refuses to start when a path is not an
    existing directory; the path is resolved (symlinks) so tasks see the real one."""
    out: dict[str, ClientHostVolumeConfig] = {}
    for name, vol in sorted(config.items()):
        path = vol["path"]
        if not os.path.isdir(path):
            raise HostVolumeError(f'host_volume "{name}": path {path!r} is not an existing '
                                  f"directory")
        out[name] = ClientHostVolumeConfig(Name=name, Path=os.path.realpath(path),
                                           ReadOnly=bool(vol.get("read_only", False)))
    return out or None


def build_node(*, node_id: str, secret_id: str, name: str, datacenter: str, node_class: str,
               meta: dict[str, str], data_dir: str, server_addr: str, http_addr: str,
               drivers: dict[str, DriverInfo], reserved: dict, cpu_total_compute: int = 0,
               memory_total_mb: int = 0, network_mbits: int = 1000,
               host_volumes: dict[str, ClientHostVolumeConfig] | None = None) -> Node:
    cores = os.cpu_count() or 1
    mhz = cpu_mhz()
    if cpu_total_compute:
        total = cpu_total_compute
        mhz = total / cores
    elif mhz is None:
        raise RuntimeError("could not read the CPU clock of this host; set "
                           "cpu_total_compute in the client's configuration")
    else:
        total = int(cores * mhz)
    mem = memory_total_mb or memory_mb()
    usage = shutil.disk_usage(data_dir)
    disk_mb = usage.free // (1024 * 1024)
    ip = address_towards(server_addr)
    device = interface_of(ip)
    attributes = {
        "kernel.name": platform.system().lower(), "kernel.version": platform.release(),
        "kernel.arch": platform.machine(), "arch": platform.machine(),
        "os.name": platform.system().lower(), "os.signals": os_signals(),
        "cpu.arch": platform.machine(), "cpu.numcores": str(cores),
        "cpu.frequency": str(int(mhz)), "cpu.totalcompute": str(total),
        "cpu.modelname": cpu_model(), "memory.totalbytes": str(mem * 1024 * 1024),
        "unique.hostname": socket.gethostname(), "unique.network.ip-address": ip,
        "unique.storage.volume": data_dir,
        "unique.storage.bytestotal": str(usage.total),
        "unique.storage.bytesfree": str(usage.free),
        "nomad.version": VERSION, "nomad.advertise.address": http_addr,
    }
    for dname, info in drivers.items():
        attributes.update(info.Attributes or {f"driver.{dname}": "1"})
    ports = reserved.get("reserved_ports", "")
    return Node(
        ID=node_id, SecretID=secret_id, Datacenter=datacenter, Name=name,
        HTTPAddr=http_addr, Attributes=attributes, Meta={**DEFAULT_META, **meta},
        NodeClass=node_class,
        Status="initializing",
        NodeResources=NodeResources(
            Cpu=NodeCpuResources(CpuShares=total, TotalCpuCores=cores),
            Memory=NodeMemoryResources(MemoryMB=mem),
            Disk=NodeDiskResources(DiskMB=disk_mb),
            Networks=[NetworkResource(Mode="host", Device=device,
                                      CIDR=f"{ip}/{128 if ':' in ip else 32}", IP=ip,
                                      MBits=network_mbits)]),
        ReservedResources=NodeReservedResources(
            Cpu=NodeCpuResources(CpuShares=reserved.get("cpu", 0)),
            Memory=NodeMemoryResources(MemoryMB=reserved.get("memory", 0)),
            Disk=NodeDiskResources(DiskMB=reserved.get("disk", 0)),
            Networks=NodeReservedNetworkResources(ReservedHostPorts=ports)),
        Drivers=drivers, HostVolumes=host_volumes)


def driver_info(attributes: dict[str, str], healthy: bool = True,
                description: str = "Healthy") -> DriverInfo:
    return DriverInfo(Detected=True, Healthy=healthy, HealthDescription=description,
                      UpdateTime=rfc3339(), Attributes=attributes)
