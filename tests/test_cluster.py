"""Three real server processes from a cluster file: replication, failover, restarts."""
from __future__ import annotations

import os
import uuid

import httpx
import nomad

from tests.procs import Cluster, make_cluster, wait_until


def job_body(job_id: str, count: int = 1) -> dict:
    return {"Job": {"ID": job_id, "Type": "service", "TaskGroups": [
        {"Name": "g", "Count": count, "Tasks": [{"Name": "t", "Driver": "mock"}]}]}}


class Writer:
    """Registers jobs and remembers what was acknowledged and the indexes it saw."""

    def __init__(self):
        self.acked: dict[str, int] = {}   # job id -> count acknowledged last
        self.indexes: list[int] = []

    def register(self, server, job_id: str, count: int = 1, timeout: float = 15) -> bool:
        try:
            r = httpx.post(server.url + "/v1/jobs", json=job_body(job_id, count), timeout=timeout)
        except httpx.HTTPError:
            return False  # outcome unknown: not counted as acknowledged
        if r.status_code != 200:
            return False
        self.acked[job_id] = count
        self.indexes.append(int(r.headers["X-Nomad-Index"]))
        return True


def followers(cluster: Cluster):
    leader = cluster.leader()
    return leader, [s for s in cluster.servers if s is not leader and s.alive()]


def assert_has_all(server, acked: dict[str, int], stale: bool = False):
    params = {"stale": ""} if stale else {}
    listed = httpx.get(server.url + "/v1/jobs", params=params, timeout=10).json()
    ids = {j["ID"] for j in listed}
    missing = set(acked) - ids
    assert not missing, f"{server.name} lost acknowledged writes: {sorted(missing)[:5]}"
    for job_id, count in acked.items():
        job = httpx.get(server.url + f"/v1/job/{job_id}", params=params, timeout=10).json()
        assert job["TaskGroups"][0]["Count"] == count, (server.name, job_id)


def test_write_through_follower_and_survive_leader_kill(cluster):
    writer = Writer()
    leader, (f1, f2) = followers(cluster)

    # a write through a follower is readable on that follower at once, and on all
    assert writer.register(f1, "via-follower")
    job = httpx.get(f1.url + "/v1/job/via-follower", timeout=5)
    assert job.status_code == 200
    for s in cluster.servers:
        assert_has_all(s, writer.acked)
    for i in range(20):
        assert writer.register(cluster.servers[i % 3], f"before-{i}")

    # the leader status agrees everywhere and names an RPC address
    leaders = {httpx.get(s.url + "/v1/status/leader", timeout=5).json() for s in cluster.servers}
    assert leaders == {leader.rpc}
    peers = httpx.get(f2.url + "/v1/status/peers", timeout=5).json()
    assert sorted(peers) == sorted(s.rpc for s in cluster.servers)

    # /v1/agent/members (python-nomad's agent.get_members): every server alive
    members = _members(f2)
    assert members == {f"{s.name}.global": "alive" for s in cluster.servers}

    # SIGKILL the leader; the survivors elect a new one and keep taking writes
    leader.kill()
    survivors = [f1, f2]
    wait_until(lambda: writer.register(survivors[0], "after-kill-0"), 30, "a write after the kill")
    wait_until(lambda: _members(f1)[f"{leader.name}.global"] == "failed", 30,
               "the killed server shown as failed")
    assert _members(f1)[f"{f2.name}.global"] == "alive"
    for i in range(1, 20):
        assert writer.register(survivors[i % 2], f"after-kill-{i}")
    new_leader = cluster.leader()
    assert new_leader in survivors

    # restart the killed server: it catches up from its journal and the new leader
    leader.start()
    leader.wait_healthy()
    assert writer.register(leader, "after-restart")
    for s in cluster.servers:
        wait_until(lambda s=s: _applied(s) >= max(writer.indexes), 30, f"{s.name} to catch up")
        assert_has_all(s, writer.acked)
        assert_has_all(s, writer.acked, stale=True)
    assert writer.indexes == sorted(writer.indexes), "indexes went backwards"


def _members(server) -> dict[str, str]:
    reply = nomad.Nomad(host="127.0.0.1", port=int(server.http.rsplit(":", 1)[1]),
                        timeout=5).agent.get_members()
    return {m["Name"]: m["Status"] for m in reply["Members"]}


def test_default_read_on_follower_sees_acknowledged_writes(cluster):
    leader, (f1, f2) = followers(cluster)
    for i in range(30):
        job_id = f"ryw-{i}"
        r = httpx.post(leader.url + "/v1/jobs", json=job_body(job_id, count=i + 1), timeout=10)
        assert r.status_code == 200
        # a default (consistent) read on a follower, right after the leader acknowledged
        got = httpx.get(f2.url + f"/v1/job/{job_id}", timeout=10)
        assert got.status_code == 200 and got.json()["TaskGroups"][0]["Count"] == i + 1


def test_default_reads_confirm_the_leader_without_a_log_entry(cluster):
    """On the leader a default read waits for a majority to confirm its leadership
    (ReadIndex) instead of committing a no-op; a follower still waits for a no-op."""
    leader, (f1, _) = followers(cluster)

    def barriers(server) -> dict[str, int]:
        counters = httpx.get(server.url + "/v1/metrics", timeout=10).json()["Counters"]
        return {c["Name"].rsplit(".", 1)[1]: c["Count"] for c in counters
                if c["Name"].startswith("caravan.raft.read_barrier.")}

    r = httpx.post(leader.url + "/v1/jobs", json=job_body("ri"), timeout=10)
    index = int(r.headers["X-Nomad-Index"])
    start = barriers(leader)
    for _ in range(5):
        got = httpx.get(leader.url + "/v1/job/ri", timeout=10)
        assert got.status_code == 200 and int(got.headers["X-Nomad-Index"]) >= index
    after = barriers(leader)
    assert after.get("read_index", 0) - start.get("read_index", 0) >= 1
    assert after.get("noop", 0) == start.get("noop", 0)
    assert httpx.get(f1.url + "/v1/job/ri", timeout=10).status_code == 200
    assert barriers(f1).get("noop", 0) >= 1


def test_full_restart_after_log_compaction_restores_everything(tmp_path):
    cluster = make_cluster(tmp_path, snapshot_threshold=50)
    cluster.start()
    writer = Writer()
    try:
        leader = cluster.leader()
        for i in range(150):
            assert writer.register(leader, f"compact-{i % 60}", count=i)
        wait_until(lambda: all(os.path.exists(tmp_path / "data" / s.name / "raft" / "raft.snapshot")
                               for s in cluster.servers), 30, "snapshots on every server")
        for s in cluster.servers:
            s.kill()
        cluster.start()
        leader = cluster.leader()
        for s in cluster.servers:
            wait_until(lambda s=s: _applied(s) >= max(writer.indexes), 30,
                       f"{s.name} to replay its journal")
            assert_has_all(s, writer.acked)
        versions = httpx.get(leader.url + "/v1/job/compact-0/versions", timeout=10).json()
        assert [v["Version"] for v in versions["Versions"]] == [2, 1, 0]
        assert writer.register(leader, "after-full-restart")
    finally:
        cluster.stop()
        for s in cluster.servers:
            s.kill()


def test_no_leader_means_a_clear_error_not_a_hang(tmp_path):
    cluster = make_cluster(tmp_path).start()
    try:
        leader, (f1, f2) = followers(cluster)
        leader.kill()
        f2.kill()
        r = httpx.post(f1.url + "/v1/jobs", json=job_body(f"lonely-{uuid.uuid4().hex[:6]}"),
                       timeout=30)
        assert r.status_code in (500, 503)
        assert r.text in ("No cluster leader",) or "outcome is unknown" in r.text
    finally:
        cluster.stop()
        for s in cluster.servers:
            s.kill()


def _applied(server) -> int:
    r = httpx.get(server.url + "/v1/agent/health", timeout=5)
    return r.json()["server"]["applied_index"] if r.status_code == 200 else -1
