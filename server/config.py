"""``cluster.toml``: parsed with tomllib into frozen dataclasses, merged over defaults.

Every error names the key and the bad value in one line, e.g.
``cluster.toml: servers[1].http: bad address "127.0.0.1": expected "host:port"``.
"""
from __future__ import annotations

import ipaddress
import os
import tomllib
from dataclasses import dataclass, field, replace

from caravan.fsm.durations import parse_go_duration


class ConfigError(Exception):
    pass


@dataclass(frozen=True)
class ClusterConfig:
    region: str = "global"
    datacenter: str = "dc1"
    data_dir: str = "caravan-data"
    raft_secret: str = ""
    job_tracked_versions: int = 6
    snapshot_threshold: int = 20000   # log entries between snapshots (log compaction)
    # Scheduling workers on the leader. They are coroutines on one event loop, so the
    # count is how many plans are under way at once (planning, in the applier, being
    # committed), not CPU parallelism as Nomad's NumCPU default assumes. A worker plans
    # for ~10 ms and then waits 100-200 ms for its plan's raft round, and plans that wait
    # together share a round: in bench/schedule.py on this 2-core machine 32 placed ~2x
    # as many per second as 4, and 64 no more than 32. While clients are writing, all
    # but 4 of them pause (server.leader.ClientWrites).
    scheduler_workers: int = 32
    # scheduling workers on each follower (server/rpc/scheduling.py); when set, the
    # leader keeps a quarter of scheduler_workers, as Nomad's leader pauses 3/4 of its own
    follower_scheduler_workers: int = 0
    # the core garbage collector (Go durations): how often it runs, and how long an
    # object must have been dead before it is collected (Nomad's defaults)
    gc_interval: str = "5m"
    eval_gc_threshold: str = "1h"
    job_gc_threshold: str = "4h"
    deployment_gc_threshold: str = "1h"
    node_gc_threshold: str = "24h"
    # how long a request that needs a leader waits for one to be elected before it is
    # answered "No cluster leader" (Nomad's rpc_hold_timeout)
    rpc_hold_timeout: str = "5s"

    def duration_ns(self, key: str) -> int:
        """A duration setting in nanoseconds (validated by ``parse``)."""
        return parse_go_duration(getattr(self, key))


@dataclass(frozen=True)
class ServerConfig:
    name: str
    http: str
    rpc: str
    raft: str
    # Optional: the address this server dials for a peer's raft port, by peer name,
    # instead of the peer's ``raft`` (a fault-injecting proxy in tests, a NAT). The
    # peer still knows this server by its own ``raft`` address.
    raft_peers: dict = field(default_factory=dict)


@dataclass(frozen=True)
class ClientConfig:
    """A ``[[clients]]`` entry: a client agent (node) of the cluster."""
    name: str
    http: str                          # where it serves its allocations' logs
    data_dir: str = ""                 # default: cluster data_dir/<name>
    datacenter: str = ""               # default: the cluster's
    node_class: str = ""
    meta: dict = field(default_factory=dict)
    raw_exec: bool = False             # as in Nomad, raw_exec is opt-in outside -dev
    reserved: dict = field(default_factory=dict)   # cpu, memory, disk (MHz/MB), reserved_ports
    cpu_total_compute: int = 0         # override the fingerprinted MHz (cores x clock)
    memory_total_mb: int = 0           # override the fingerprinted memory
    network_mbits: int = 1000
    servers: tuple[str, ...] = ()      # RPC addresses to dial; default: every server's
    # directories offered to tasks: name -> {"path": absolute dir, "read_only": bool}
    host_volumes: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Config:
    cluster: ClusterConfig
    servers: tuple[ServerConfig, ...]
    clients: tuple[ClientConfig, ...] = field(default=())
    source: str = "cluster.toml"

    def client(self, name: str) -> ClientConfig:
        for c in self.clients:
            if c.name == name:
                return c
        known = ", ".join(c.name for c in self.clients) or "none"
        raise ConfigError(f'{self.source}: -client "{name}": no such client (known: {known})')

    def client_data_dir(self, c: ClientConfig) -> str:
        return c.data_dir or os.path.join(self.cluster.data_dir, c.name)

    def client_servers(self, c: ClientConfig) -> list[str]:
        return list(c.servers) or [s.rpc for s in self.servers]

    def server(self, name: str) -> ServerConfig:
        for s in self.servers:
            if s.name == name:
                return s
        known = ", ".join(s.name for s in self.servers)
        raise ConfigError(f'{self.source}: -server "{name}": no such server (known: {known})')

    def server_by_raft(self, raft_addr: str, me: ServerConfig | None = None
                       ) -> ServerConfig | None:
        """The server whose raft address is ``raft_addr``; as seen by ``me``, also the
        peer that ``me`` dials at that address (its ``raft_peers`` entry)."""
        dialed = {a: n for n, a in me.raft_peers.items()} if me is not None else {}
        return next((s for s in self.servers
                     if s.raft == raft_addr or dialed.get(raft_addr) == s.name), None)

    def raft_dial_addresses(self, me: ServerConfig) -> tuple[str, ...]:
        """The raft addresses ``me`` dials for its peers (``raft_peers`` overrides)."""
        return tuple(me.raft_peers.get(s.name, s.raft) for s in self.servers
                     if s.name != me.name)

    def data_dir_for(self, name: str) -> str:
        return os.path.join(self.cluster.data_dir, name)


_CLUSTER_KEYS = {"region": str, "datacenter": str, "data_dir": str, "raft_secret": str,
                 "job_tracked_versions": int, "snapshot_threshold": int,
                 "scheduler_workers": int, "follower_scheduler_workers": int,
                 "gc_interval": str, "eval_gc_threshold": str,
                 "job_gc_threshold": str, "deployment_gc_threshold": str,
                 "node_gc_threshold": str, "rpc_hold_timeout": str}
_DURATION_KEYS = ("gc_interval", "eval_gc_threshold", "job_gc_threshold",
                  "deployment_gc_threshold", "node_gc_threshold", "rpc_hold_timeout")
_SERVER_KEYS = ("name", "http", "rpc", "raft")
_SERVER_OPTIONAL_KEYS = ("raft_peers",)
_TOP_KEYS = {"cluster", "servers", "clients"}


def parse_address(value, where: str) -> str:
    """Check a ``"host:port"`` string; the host must be an IP literal or ``localhost``."""
    if not isinstance(value, str) or value.count(":") < 1:
        raise ConfigError(f'{where}: bad address {value!r}: expected "host:port"')
    host, _, port = value.rpartition(":")
    host = host.strip("[]")
    if host != "localhost":
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"{where}: bad address {value!r}: host {host!r} is not an IP "
                              f"address") from None
    if not port.isdigit() or not 0 < int(port) < 65536:
        raise ConfigError(f"{where}: bad address {value!r}: port {port!r} is not in 1-65535")
    return value


def load(path: str) -> Config:
    try:
        with open(path, "rb") as f:
            raw = tomllib.load(f)
    except FileNotFoundError:
        raise ConfigError(f"{path}: file not found") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None
    return parse(raw, path)


def parse(raw: dict, source: str = "cluster.toml") -> Config:
    for key in raw:
        if key not in _TOP_KEYS:
            raise ConfigError(f"{source}: unknown key {key!r}")
    cluster_raw = raw.get("cluster", {})
    if not isinstance(cluster_raw, dict):
        raise ConfigError(f"{source}: cluster: expected a table, got {cluster_raw!r}")
    values = {}
    for key, value in cluster_raw.items():
        want = _CLUSTER_KEYS.get(key)
        if want is None:
            raise ConfigError(f"{source}: unknown key cluster.{key!r}")
        if not isinstance(value, want) or isinstance(value, bool):
            raise ConfigError(f"{source}: cluster.{key}: expected {want.__name__}, got {value!r}")
        values[key] = value
    cluster = ClusterConfig(**values)
    if cluster.job_tracked_versions < 1:
        raise ConfigError(f"{source}: cluster.job_tracked_versions: must be at least 1, got "
                          f"{cluster.job_tracked_versions}")
    if cluster.scheduler_workers < 1:
        raise ConfigError(f"{source}: cluster.scheduler_workers: must be at least 1, got "
                          f"{cluster.scheduler_workers}")
    if cluster.follower_scheduler_workers < 0:
        raise ConfigError(f"{source}: cluster.follower_scheduler_workers: must be at least 0, "
                          f"got {cluster.follower_scheduler_workers}")
    if cluster.snapshot_threshold < 10:
        raise ConfigError(f"{source}: cluster.snapshot_threshold: must be at least 10, got "
                          f"{cluster.snapshot_threshold}")
    for key in _DURATION_KEYS:
        value = getattr(cluster, key)
        try:
            ns = parse_go_duration(value)
        except ValueError as exc:
            raise ConfigError(f"{source}: cluster.{key}: bad duration {value!r}: {exc}") from None
        if ns <= 0:
            raise ConfigError(f"{source}: cluster.{key}: must be positive, got {value!r}")
    if not os.path.isabs(cluster.data_dir):
        base = os.path.dirname(os.path.abspath(source)) if os.path.exists(source) else os.getcwd()
        cluster = replace(cluster, data_dir=os.path.join(base, cluster.data_dir))

    servers_raw = raw.get("servers", [])
    if not isinstance(servers_raw, list) or not servers_raw:
        raise ConfigError(f"{source}: servers: at least one [[servers]] entry is required")
    servers, seen = [], set()
    for i, entry in enumerate(servers_raw):
        where = f"{source}: servers[{i}]"
        if not isinstance(entry, dict):
            raise ConfigError(f"{where}: expected a table, got {entry!r}")
        for key in entry:
            if key not in _SERVER_KEYS and key not in _SERVER_OPTIONAL_KEYS:
                raise ConfigError(f"{where}: unknown key {key!r}")
        for key in _SERVER_KEYS:
            if key not in entry:
                raise ConfigError(f"{where}: missing key {key!r}")
        name = entry["name"]
        if not isinstance(name, str) or not name:
            raise ConfigError(f"{where}.name: bad name {name!r}")
        if name in seen:
            raise ConfigError(f"{where}.name: duplicate server name {name!r}")
        seen.add(name)
        addrs = {k: parse_address(entry[k], f"{where}.{k}") for k in ("http", "rpc", "raft")}
        peers = entry.get("raft_peers", {})
        if not isinstance(peers, dict):
            raise ConfigError(f"{where}.raft_peers: expected a table of name = \"host:port\", "
                              f"got {peers!r}")
        peers = {k: parse_address(v, f"{where}.raft_peers.{k}") for k, v in peers.items()}
        servers.append(ServerConfig(name=name, raft_peers=peers, **addrs))
    raft_addrs = [s.raft for s in servers]
    if len(set(raft_addrs)) != len(raft_addrs):
        raise ConfigError(f"{source}: servers: two servers share a raft address: {raft_addrs}")
    _check_raft_peers(servers, source)
    clients = raw.get("clients", [])
    if not isinstance(clients, list):
        raise ConfigError(f"{source}: clients: expected an array of tables, got {clients!r}")
    parsed, names = [], set()
    for i, entry in enumerate(clients):
        c = _parse_client(entry, f"{source}: clients[{i}]")
        if c.name in names or c.name in seen:
            raise ConfigError(f"{source}: clients[{i}].name: duplicate name {c.name!r}")
        names.add(c.name)
        parsed.append(c)
    return Config(cluster=cluster, servers=tuple(servers), clients=tuple(parsed), source=source)


def _check_raft_peers(servers: list[ServerConfig], source: str) -> None:
    names = {s.name for s in servers}
    raft_addrs = {s.raft for s in servers}
    for i, s in enumerate(servers):
        for peer, addr in s.raft_peers.items():
            where = f"{source}: servers[{i}].raft_peers.{peer}"
            if peer == s.name or peer not in names:
                known = ", ".join(sorted(names - {s.name}))
                raise ConfigError(f"{where}: not another server's name (known: {known})")
            if addr in raft_addrs:
                raise ConfigError(f"{where}: {addr!r} is a server's own raft address; "
                                  f"an override must be an address of its own")
            # pysyncobj: of each pair, the server whose own address sorts higher than
            # the address it has for the other dials, and names itself by its own
            # address. An override anywhere else would leave the pair unconnected.
            peer_raft = next(p.raft for p in servers if p.name == peer)
            if not s.raft > peer_raft:
                raise ConfigError(f"{where}: only the server whose raft address sorts "
                                  f"higher dials a pair's link; set it on {peer!r} instead")
            if not s.raft > addr:
                raise ConfigError(f"{where}: {addr!r} must sort below this server's own "
                                  f"raft address {s.raft!r}, or pysyncobj will not dial it")
        dialed = list(s.raft_peers.values())
        if len(set(dialed)) != len(dialed):
            raise ConfigError(f"{source}: servers[{i}].raft_peers: two peers share an "
                              f"address: {dialed}")


_CLIENT_KEYS = {"name": str, "http": str, "data_dir": str, "datacenter": str,
                "node_class": str, "meta": dict, "raw_exec": bool, "reserved": dict,
                "cpu_total_compute": int, "memory_total_mb": int, "network_mbits": int,
                "servers": list, "host_volume": list}
_HOST_VOLUME_KEYS = {"name": str, "path": str, "read_only": bool}
_RESERVED_KEYS = {"cpu": int, "memory": int, "disk": int, "reserved_ports": str}


def _check_type(value, want: type, where: str) -> None:
    ok = isinstance(value, want) and (want is bool or not isinstance(value, bool))
    if not ok:
        raise ConfigError(f"{where}: expected {want.__name__}, got {value!r}")


def _parse_client(entry, where: str) -> ClientConfig:
    if not isinstance(entry, dict):
        raise ConfigError(f"{where}: expected a table, got {entry!r}")
    for key, value in entry.items():
        want = _CLIENT_KEYS.get(key)
        if want is None:
            raise ConfigError(f"{where}: unknown key {key!r}")
        _check_type(value, want, f"{where}.{key}")
    for key in ("name", "http"):
        if key not in entry:
            raise ConfigError(f"{where}: missing key {key!r}")
    if not entry["name"]:
        raise ConfigError(f"{where}.name: bad name {entry['name']!r}")
    values = dict(entry)
    values["http"] = parse_address(entry["http"], f"{where}.http")
    values["servers"] = tuple(parse_address(a, f"{where}.servers[{j}]")
                              for j, a in enumerate(entry.get("servers", [])))
    for key, value in entry.get("meta", {}).items():
        _check_type(value, str, f"{where}.meta.{key}")
    for key, value in entry.get("reserved", {}).items():
        want = _RESERVED_KEYS.get(key)
        if want is None:
            raise ConfigError(f"{where}.reserved: unknown key {key!r}")
        _check_type(value, want, f"{where}.reserved.{key}")
        if want is int and value < 0:
            raise ConfigError(f"{where}.reserved.{key}: must not be negative, got {value}")
    for key in ("cpu_total_compute", "memory_total_mb", "network_mbits"):
        if entry.get(key, 0) < 0:
            raise ConfigError(f"{where}.{key}: must not be negative, got {entry[key]}")
    values["host_volumes"] = parse_host_volumes(values.pop("host_volume", []), where)
    return ClientConfig(**values)


def parse_host_volumes(entries: list, where: str) -> dict:
    """``[[clients.host_volume]]`` tables (``name``, ``path``, optional ``read_only``), as
    Nomad's ``host_volume "name" { path, read_only }``: name -> {"path", "read_only"}.
    The path must be an absolute directory that exists when the client starts."""
    volumes: dict[str, dict] = {}
    for j, vol in enumerate(entries):
        at = f"{where}.host_volume[{j}]"
        if not isinstance(vol, dict):
            raise ConfigError(f"{at}: expected a table, got {vol!r}")
        for key, value in vol.items():
            want = _HOST_VOLUME_KEYS.get(key)
            if want is None:
                raise ConfigError(f"{at}: unknown key {key!r}")
            _check_type(value, want, f"{at}.{key}")
        for key in ("name", "path"):
            if not vol.get(key):
                raise ConfigError(f"{at}: missing key {key!r}")
        name, path = vol["name"], vol["path"]
        if name in volumes:
            raise ConfigError(f"{at}.name: duplicate host volume {name!r}")
        if not os.path.isabs(path):
            raise ConfigError(f"{at}.path: {path!r} is not an absolute path")
        volumes[name] = {"path": path, "read_only": bool(vol.get("read_only", False))}
    return volumes


def dev_config(http_port: int, rpc_port: int, raft_port: int, data_dir: str,
               secret: str, *, bind: str = "127.0.0.1", region: str = "global",
               datacenter: str = "dc1") -> Config:
    """The one-server cluster of ``agent -dev``: HTTP, RPC and raft on ``bind``
    (Nomad's ``-bind``), in ``region`` and ``datacenter`` (``-region``, ``-dc``)."""
    host = _host_part(bind, "-bind")
    for flag, value in (("-region", region), ("-dc", datacenter)):
        if not value or any(c.isspace() for c in value):
            raise ConfigError(f"{flag}: bad name {value!r}: must be non-empty, without spaces")
    addrs = {k: parse_address(f"{host}:{port}", f"-{k}-port")
             for k, port in (("http", http_port), ("rpc", rpc_port), ("raft", raft_port))}
    return Config(
        cluster=ClusterConfig(data_dir=data_dir, raft_secret=secret, region=region,
                              datacenter=datacenter),
        servers=(ServerConfig(name="dev", **addrs),), source="-dev")


def _host_part(bind: str, flag: str) -> str:
    """An IP literal as the host of a "host:port" address (IPv6 in brackets)."""
    try:
        ip = ipaddress.ip_address(bind.strip("[]"))
    except ValueError:
        raise ConfigError(f"{flag}: bad address {bind!r}: not an IP address") from None
    return f"[{ip}]" if ip.version == 6 else str(ip)


def dial_address(addr: str) -> str:
    """Where a local process reaches a listener bound to ``addr``: a wildcard host
    (0.0.0.0, ::) is dialed on the loopback address."""
    host, _, port = addr.rpartition(":")
    ip = ipaddress.ip_address(host.strip("[]"))
    if ip.is_unspecified:
        return f"[::1]:{port}" if ip.version == 6 else f"127.0.0.1:{port}"
    return addr
