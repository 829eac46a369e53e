"""The `caravan agent` command: start-up line, clean stops, config errors, gRPC status."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys

import grpc
import pytest

from caravan.proto import status_pb2 as pb
from caravan.proto import status_pb2_grpc as pb_grpc
from tests.procs import ROOT, free_ports, wait_until


def run_agent(*args: str, timeout: float = 20) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "caravan", "agent", *args], cwd=ROOT,
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_dev_agent_prints_where_it_listens_and_stops_cleanly(sig, tmp_path):
    http, rpc, raft = free_ports(3)
    log = tmp_path / "out.log"
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "caravan", "agent", "-dev",
                                 "-http-port", str(http), "-rpc-port", str(rpc),
                                 "-raft-port", str(raft)], cwd=ROOT, stdout=out,
                                stderr=subprocess.STDOUT)
    try:
        line = wait_until(lambda: re.search(r"HTTP http://127\.0\.0\.1:(\d+).*data (\S+)",
                                            log.read_text()), 20, "the start-up line")
        assert int(line.group(1)) == http and f"RPC 127.0.0.1:{rpc}" in log.read_text()
        data_dir = line.group(2)
        assert os.path.isdir(data_dir)
        proc.send_signal(sig)
        assert proc.wait(15) == 0
        assert not os.path.exists(data_dir), "the dev agent's temporary data dir was left behind"
        assert "Traceback" not in log.read_text()
    finally:
        if proc.poll() is None:
            proc.kill()


CONFIG_CASES = [
    ("[cluster]\nregoin = 'x'\n", "s1", "unknown key cluster.'regoin'"),
    ("[cluster]\nraft_secret='x'\n[[servers]]\nname='s1'\nhttp='127.0.0.1'\nrpc='127.0.0.1:2'\n"
     "raft='127.0.0.1:3'\n", "s1", "servers[0].http: bad address '127.0.0.1'"),
    ("[cluster]\nraft_secret='x'\n[[servers]]\nname='s1'\nhttp='127.0.0.1:99999'\n"
     "rpc='127.0.0.1:2'\nraft='127.0.0.1:3'\n", "s1", "port '99999' is not in 1-65535"),
    ("[cluster]\nraft_secret='x'\n[[servers]]\nname='s1'\nhttp='127.0.0.1:1'\n"
     "rpc='127.0.0.1:2'\nraft='127.0.0.1:3'\n", "s9", '-server "s9": no such server'),
    ("[cluster]\nraft_secret='x'\n[[servers]]\nhttp='127.0.0.1:1'\nrpc='127.0.0.1:2'\n"
     "raft='127.0.0.1:3'\n", "s1", "servers[0]: missing key 'name'"),
    ("[cluster]\njob_tracked_versions = 'six'\n", "s1",
     "cluster.job_tracked_versions: expected int, got 'six'"),
    ("[[servers]]\nname='s1'\nhttp='127.0.0.1:1'\nrpc='127.0.0.1:2'\nraft='127.0.0.1:3'\n",
     "s1", "cluster.raft_secret: missing"),
    ("this is = not toml [", "s1", "not valid TOML"),
]


@pytest.mark.parametrize("text,server,expect", CONFIG_CASES)
def test_config_errors_exit_nonzero_with_one_line(tmp_path, text, server, expect):
    path = tmp_path / "cluster.toml"
    path.write_text(text)
    result = run_agent("-config", str(path), "-server", server)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert expect in lines[0], lines[0]


def test_missing_server_flag_names_the_choices(tmp_path):
    result = run_agent("-config", str(ROOT / "cluster.toml"))
    assert result.returncode != 0
    assert "-server: missing server name (one of: s1, s2, s3)" in result.stderr


def test_shipped_cluster_file_parses():
    from caravan.server.config import load
    config = load(str(ROOT / "cluster.toml"))
    assert [s.name for s in config.servers] == ["s1", "s2", "s3"]
    assert all(s.raft.startswith("127.0.0.1:") for s in config.servers)
    assert config.cluster.raft_secret


def test_grpc_status_service(dev_agent):
    import httpx
    written = httpx.post(dev_agent.url + "/v1/jobs", timeout=10, json={"Job": {
        "ID": "grpc-probe", "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "mock"}]}]}})
    index = int(written.headers["X-Nomad-Index"])
    with grpc.insecure_channel(dev_agent.rpc) as channel:
        stub = pb_grpc.StatusStub(channel)
        assert stub.Leader(pb.Empty(), timeout=5).address == dev_agent.rpc
        assert list(stub.Peers(pb.Empty(), timeout=5).addresses) == [dev_agent.rpc]
        health = stub.Ping(pb.Empty(), timeout=5)
        assert health.ok and health.leader == dev_agent.rpc and health.applied_index >= index


def test_raft_port_is_bound_to_the_configured_address_only(dev_agent):
    import socket
    port = int(dev_agent.raft.rsplit(":", 1)[1])
    s = socket.socket()
    s.settimeout(1)
    try:
        # another local address than the configured 127.0.0.1 must not reach the raft port
        assert s.connect_ex(("127.0.0.2", port)) != 0
    finally:
        s.close()


# --- Nomad's dev flags ------------------------------------------------------------------------


def test_acl_enabled_is_refused_with_one_line():
    result = run_agent("-dev", "-acl-enabled")
    assert result.returncode == 1
    assert result.stderr.strip() == \
        "caravan: -acl-enabled: ACLs are not supported yet; start without it"


@pytest.mark.parametrize("args,expect", [
    (("-dev", "-bind", "nowhere"), "-bind: bad address 'nowhere': not an IP address"),
    (("-dev", "-dc", "two words"), "-dc: bad name 'two words'"),
    (("-dev", "-region", "a\tb"), "-region: bad name"),
    (("-dev", "-node", " "), "-node: the node name must not be empty"),
    (("-config", str(ROOT / "cluster.toml"), "-server", "s1", "-bind", "0.0.0.0"),
     "-bind: only with -dev"),
    (("-config", str(ROOT / "cluster.toml"), "-server", "s1", "-node", "n"),
     "-node: names a client's node"),
])
def test_bad_dev_flags_exit_nonzero_with_one_line(args, expect):
    result = run_agent(*args)
    assert result.returncode != 0
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and expect in lines[0], result.stderr


def test_dev_flags_bind_name_the_node_region_and_datacenter(tmp_path):
    """``-bind`` moves HTTP, RPC and raft; ``-node``, ``-region`` and ``-dc`` name the
    dev node, its region and datacenter; the node has Nomad's default meta."""
    import httpx

    from tests.procs import Server
    http, rpc, raft = free_ports(3)
    host = "127.0.0.2"
    server = Server("dev", f"{host}:{http}", f"{host}:{rpc}", f"{host}:{raft}",
                    ["-dev", "-bind", host, "-http-port", str(http), "-rpc-port", str(rpc),
                     "-raft-port", str(raft), "-data-dir", str(tmp_path / "dev"),
                     "-node", "edge-1", "-region", "eu", "-dc", "fra1"], tmp_path / "dev.log")
    server.start()
    try:
        server.wait_healthy()
        with httpx.Client(base_url=server.url, timeout=10) as c:
            assert c.get("/v1/status/leader").json() == f"{host}:{rpc}"
            members = c.get("/v1/agent/members").json()
            assert members["ServerRegion"] == "eu" and members["ServerDC"] == "fra1"
            node = wait_until(lambda: c.get("/v1/nodes").json(), 30, "the dev node")[0]
            assert node["Name"] == "edge-1" and node["Datacenter"] == "fra1"
            meta = c.get(f"/v1/node/{node['ID']}").json()["Meta"]
            assert meta == {
                "connect.sidecar_image": "envoyproxy/envoy:v${NOMAD_envoy_version}",
                "connect.gateway_image": "envoyproxy/envoy:v${NOMAD_envoy_version}",
                "connect.log_level": "info", "connect.proxy_concurrency": "1"}
            r = c.put("/v1/jobs", json={"Job": {
                "ID": "where", "Type": "batch", "Datacenters": ["fra1"],
                "TaskGroups": [{"Name": "g", "Tasks": [{"Name": "t", "Driver": "raw_exec",
                                                        "Config": {"command": "/bin/true"}}]}]}})
            assert r.status_code == 200, r.text
            assert c.get("/v1/job/where").json()["Region"] == "eu"
            allocs = wait_until(lambda: [a for a in c.get("/v1/job/where/allocations").json()
                                         if a["ClientStatus"] == "complete"], 30,
                                "the job to complete on the dev node")
            assert allocs[0]["NodeName"] == "edge-1"
        # nothing listens on the default loopback address
        with pytest.raises(httpx.TransportError):
            httpx.get(f"http://127.0.0.1:{http}/v1/status/leader", timeout=2)
    finally:
        server.stop()
