"""Real caravan processes for tests: free loopback ports, readiness by health check,
and cleanup of every process a test started."""
from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent


def free_ports(n: int) -> list[int]:
    socks, ports = [], []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
        ports.append(s.getsockname()[1])
    for s in socks:
        s.close()
    return ports


def wait_until(predicate, timeout: float, what: str, interval: float = 0.05):
    deadline = time.monotonic() + timeout
    last_exc = None
    while time.monotonic() < deadline:
        try:
            result = predicate()
            if result:
                return result
        except Exception as exc:  # not up yet
            last_exc = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout}s waiting for {what} (last error: {last_exc})")


@dataclass
class Server:
    name: str
    http: str
    rpc: str
    raft: str
    args: list[str]
    log_path: Path
    proc: subprocess.Popen | None = None

    @property
    def url(self) -> str:
        return f"http://{self.http}"

    def start(self) -> Server:
        log = open(self.log_path, "ab")
        self.proc = subprocess.Popen([sys.executable, "-m", "caravan", "agent", *self.args],
                                     cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                                     start_new_session=True)
        log.close()
        return self

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def healthy(self) -> bool:
        r = httpx.get(self.url + "/v1/agent/health", timeout=1)
        return r.status_code == 200

    def wait_healthy(self, timeout: float = 30) -> None:
        def check():
            if not self.alive():
                raise RuntimeError(f"{self.name} exited: {self.log_path.read_text()[-2000:]}")
            return self.healthy()
        wait_until(check, timeout, f"{self.name} to follow a leader")

    def kill(self, sig=signal.SIGKILL) -> None:
        if self.alive():
            os.killpg(self.proc.pid, sig)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.kill()


def dev_server(tmp: Path, client: bool = False, extra_args: tuple[str, ...] = ()) -> Server:
    """A ``caravan agent -dev``; without ``client`` it runs the server only (no nodes).
    ``extra_args`` are added to its command line (e.g. ``-host-volume``)."""
    http, rpc, raft = free_ports(3)
    return Server("dev", f"127.0.0.1:{http}", f"127.0.0.1:{rpc}", f"127.0.0.1:{raft}",
                  ["-dev", "-http-port", str(http), "-rpc-port", str(rpc), "-raft-port", str(raft),
                   "-data-dir", str(tmp / "dev"), *(() if client else ("-no-client",)),
                   *extra_args],
                  tmp / "dev.log")


@contextlib.contextmanager
def dev_with_client(tmp: Path, *, check_exit: bool = True):
    """A ``caravan agent -dev`` with its client, started and waited on until its node is
    ready; yields ``(http, agent)`` (an ``httpx.Client`` on the agent). On the way out
    it stops the agent and, with ``check_exit``, asserts it exited cleanly."""
    agent = dev_server(tmp, client=True).start()
    http = httpx.Client(base_url=agent.url, timeout=10)
    try:
        wait_until(lambda: [n for n in http.get("/v1/nodes").json() if n["Status"] == "ready"],
                   30, "the dev client's node")
        yield http, agent
    finally:
        http.close()
        agent.stop()
        if check_exit:
            assert agent.proc.returncode == 0, (tmp / "dev.log").read_text()[-3000:]


@dataclass
class Cluster:
    servers: list[Server]
    config_path: Path
    extra: dict = field(default_factory=dict)
    clients: list[Server] = field(default_factory=list)   # client agents (http only)

    def start(self) -> Cluster:
        """Start every process and wait until each is healthy; if one never is, stop
        them all before raising, so a failed start leaves nothing running."""
        try:
            for s in self.servers + self.clients:
                s.start()
            for s in self.servers + self.clients:
                s.wait_healthy()
        except BaseException:
            self.stop()
            raise
        return self

    def leader(self) -> Server:
        def find():
            for s in self.servers:
                if not s.alive():
                    continue
                try:
                    r = httpx.get(s.url + "/v1/status/leader", params={"stale": ""}, timeout=1)
                except httpx.HTTPError:
                    continue
                rpc = r.json() if r.status_code == 200 else ""
                match = [x for x in self.servers if x.rpc == rpc and x.alive()]
                if match:
                    return match[0]
            return None
        return wait_until(find, 30, "a leader")

    def stop(self) -> None:
        for s in self.clients + self.servers:
            s.stop()


def make_cluster(tmp: Path, n: int = 3, tracked_versions: int = 6,
                 snapshot_threshold: int = 20000, clients: int = 0,
                 client_toml: str | list[str] = "", cluster_toml: str = "") -> Cluster:
    """``n`` servers and ``clients`` client agents (each with ``client_toml`` added to
    its ``[[clients]]`` entry; a list gives each client its own) described by one
    generated cluster file; ``cluster_toml`` is added to its ``[cluster]`` table."""
    ports = free_ports(3 * n + clients)
    servers, blocks = [], []
    for i in range(n):
        http, rpc, raft = ports[3 * i: 3 * i + 3]
        name = f"s{i + 1}"
        servers.append(Server(name, f"127.0.0.1:{http}", f"127.0.0.1:{rpc}", f"127.0.0.1:{raft}",
                              [], tmp / f"{name}.log"))
        blocks.append(f'[[servers]]\nname = "{name}"\nhttp = "127.0.0.1:{http}"\n'
                      f'rpc = "127.0.0.1:{rpc}"\nraft = "127.0.0.1:{raft}"\n')
    client_procs = []
    for i in range(clients):
        name, http = f"c{i + 1}", f"127.0.0.1:{ports[3 * n + i]}"
        client_procs.append(Server(name, http, "", "", [], tmp / f"{name}.log"))
        extra = client_toml[i] if isinstance(client_toml, list) else client_toml
        blocks.append(f'[[clients]]\nname = "{name}"\nhttp = "{http}"\n{extra}\n')
    path = tmp / "cluster.toml"
    path.write_text(f'[cluster]\ndata_dir = "{tmp / "data"}"\nraft_secret = "test-secret"\n'
                    f"job_tracked_versions = {tracked_versions}\n"
                    f"snapshot_threshold = {snapshot_threshold}\n{cluster_toml}\n\n"
                    + "\n".join(blocks))
    for s in servers:
        s.args = ["-config", str(path), "-server", s.name]
    for c in client_procs:
        c.args = ["-config", str(path), "-client", c.name]
    return Cluster(servers, path, clients=client_procs)
