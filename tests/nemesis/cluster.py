"""Real servers and client agents on 127.0.0.1, with every raft link through a proxy.

The generated cluster file gives each server, for each peer it dials, a ``raft_peers``
override pointing at the pair's proxy (see proxy.py for why one proxy per pair
suffices). Proxy ports are taken below every raft port, so that the dialing server's
own address still sorts above the proxy address it dials, as pysyncobj requires.
"""
from __future__ import annotations

import os
import random
import signal
import socket
from itertools import combinations
from pathlib import Path

import httpx

from tests.nemesis.proxy import RaftNet
from tests.procs import Server, free_ports, wait_until

CLIENT_CPU = 1000       # MHz per client node: small, so placements compete
CLIENT_MEMORY = 1024    # MB
GC_SETTINGS = ('gc_interval = "5s"\neval_gc_threshold = "20s"\njob_gc_threshold = "30s"\n'
               'deployment_gc_threshold = "20s"\nnode_gc_threshold = "60s"\n')


def low_ports(n: int, rng: random.Random, lo: int = 20000, hi: int = 29999) -> list[int]:
    """``n`` free ports in [lo, hi], below the kernel's ephemeral range."""
    ports: list[int] = []
    while len(ports) < n:
        port = rng.randint(lo, hi)
        if port in ports:
            continue
        s = socket.socket()
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            continue
        finally:
            s.close()
        ports.append(port)
    return ports


class NemesisCluster:
    def __init__(self, tmp: Path, n: int = 3, clients: int = 2, seed: int = 0):
        self.tmp = tmp
        self.net = RaftNet()
        self.paused: set[str] = set()
        ports = free_ports(3 * n + clients)
        self.servers: list[Server] = []
        for i in range(n):
            http, rpc, raft = ports[3 * i: 3 * i + 3]
            self.servers.append(Server(f"s{i + 1}", f"127.0.0.1:{http}", f"127.0.0.1:{rpc}",
                                       f"127.0.0.1:{raft}", [], tmp / f"s{i + 1}.log"))
        self.clients = [Server(f"c{i + 1}", f"127.0.0.1:{ports[3 * n + i]}", "", "", [],
                               tmp / f"c{i + 1}.log") for i in range(clients)]
        pairs = list(combinations(self.servers, 2))
        proxy_ports = low_ports(len(pairs), random.Random(seed))
        overrides: dict[str, dict[str, str]] = {s.name: {} for s in self.servers}
        for (a, b), port in zip(pairs, proxy_ports):
            dialer, peer = (a, b) if a.raft > b.raft else (b, a)
            proxy = f"127.0.0.1:{port}"
            if not dialer.raft > proxy:
                raise RuntimeError(f"raft port {dialer.raft} does not sort above proxy {proxy}")
            self.net.add(a.name, b.name, port, peer.raft)
            overrides[dialer.name][peer.name] = proxy
        self.config_path = tmp / "cluster.toml"
        self.config_path.write_text(self._config(overrides))
        for s in self.servers:
            s.args = ["-config", str(self.config_path), "-server", s.name]
        for c in self.clients:
            c.args = ["-config", str(self.config_path), "-client", c.name]

    def _config(self, overrides: dict[str, dict[str, str]]) -> str:
        # Every version is kept (the version checker sees them all); the garbage
        # collector runs often with short thresholds, so the state stays bounded: the
        # archiver (archive.py) records a job's versions before it may be collected.
        out = [f'[cluster]\ndata_dir = "{self.tmp / "data"}"\nraft_secret = "nemesis"\n'
               "job_tracked_versions = 100000\n" + GC_SETTINGS]
        for s in self.servers:
            peers = ", ".join(f'{k} = "{v}"' for k, v in sorted(overrides[s.name].items()))
            out.append(f'[[servers]]\nname = "{s.name}"\nhttp = "{s.http}"\nrpc = "{s.rpc}"\n'
                       f'raft = "{s.raft}"\nraft_peers = {{ {peers} }}\n')
        for c in self.clients:
            out.append(f'[[clients]]\nname = "{c.name}"\nhttp = "{c.http}"\n'
                       f"cpu_total_compute = {CLIENT_CPU}\nmemory_total_mb = {CLIENT_MEMORY}\n")
        return "\n".join(out)

    # --- lifecycle ---------------------------------------------------------------------

    def start(self) -> NemesisCluster:
        for p in self.servers + self.clients:
            p.start()
        for p in self.servers + self.clients:
            p.wait_healthy(60)
        return self

    def stop(self) -> None:
        for name in list(self.paused):
            self.resume(name)
        for p in self.clients + self.servers:
            p.stop()
        self.net.close()

    def by_name(self, name: str) -> Server:
        return next(p for p in self.servers + self.clients if p.name == name)

    def kill(self, name: str) -> None:
        self.by_name(name).kill()

    def restart(self, name: str) -> None:
        self.by_name(name).start()

    def pause(self, name: str) -> None:
        os.killpg(self.by_name(name).proc.pid, signal.SIGSTOP)
        self.paused.add(name)

    def resume(self, name: str) -> None:
        os.killpg(self.by_name(name).proc.pid, signal.SIGCONT)
        self.paused.discard(name)

    # --- observation -------------------------------------------------------------------

    def reachable(self) -> list[Server]:
        return [s for s in self.servers if s.alive() and s.name not in self.paused]

    def leaders_seen(self) -> dict[str, str]:
        """Server name -> the name of the leader it follows ("" for none)."""
        by_rpc = {s.rpc: s.name for s in self.servers}
        seen = {}
        for s in self.reachable():
            try:
                r = httpx.get(s.url + "/v1/status/leader", params={"stale": ""}, timeout=0.5)
                seen[s.name] = by_rpc.get(r.json(), "") if r.status_code == 200 else ""
            except (httpx.HTTPError, ValueError):
                seen[s.name] = ""
        return seen

    def majority_leader(self, exclude: str = "") -> str:
        """A leader followed by a majority of all servers (not ``exclude``), or ""."""
        seen = self.leaders_seen()
        for leader in set(seen.values()) - {"", exclude}:
            if sum(v == leader for v in seen.values()) > len(self.servers) // 2:
                return leader
        return ""

    def wait_leader(self, timeout: float = 30, exclude: str = "") -> str:
        return wait_until(lambda: self.majority_leader(exclude), timeout, "a majority leader")

    def digests(self) -> dict[str, tuple[int, str]]:
        out = {}
        for s in self.servers:
            r = httpx.get(s.url + "/v1/status/state-digest", timeout=5)
            r.raise_for_status()
            body = r.json()
            out[s.name] = (body["AppliedIndex"], body["StateHash"])
        return out
