"""Durability with real servers: kill them all at once, compact the journal, damage it."""
from __future__ import annotations

import os
import signal
from pathlib import Path

import httpx
import pytest

from caravan.server.journal import scan
from tests.procs import Cluster, make_cluster, wait_until
from tests.test_cluster import Writer, assert_has_all


def journal_path(cluster: Cluster, name: str) -> Path:
    return Path(cluster.config_path).parent / "data" / name / "raft" / "raft.wal"


@pytest.fixture
def cluster(tmp_path):
    c = make_cluster(tmp_path)
    try:
        yield c
    finally:
        c.stop()
        for s in c.servers:
            s.kill()


def applied(server) -> int:
    return int(httpx.get(server.url + "/v1/jobs", params={"stale": ""},
                         timeout=5).headers["X-Nomad-Index"])


def test_sigkill_of_every_server_at_once_loses_no_acknowledged_write(cluster):
    cluster.start()
    writer = Writer()
    for i in range(60):
        assert writer.register(cluster.servers[i % 3], f"job-{i}", count=1 + i % 4)
    # the last writes are acknowledged moments before every server dies together
    for s in cluster.servers:
        os.killpg(s.proc.pid, signal.SIGKILL)
    for s in cluster.servers:
        s.proc.wait(10)
    cluster.start()
    cluster.leader()
    for s in cluster.servers:
        wait_until(lambda s=s: applied(s) >= max(writer.indexes), 30, f"{s.name} to replay")
        assert_has_all(s, writer.acked)
    # and the cluster keeps taking writes, with indexes after the old ones
    assert writer.register(cluster.servers[0], "after-restart")
    assert writer.indexes == sorted(writer.indexes)


def test_compaction_keeps_the_journal_bounded(tmp_path):
    threshold = 40
    cluster = make_cluster(tmp_path, snapshot_threshold=threshold)
    cluster.start()
    writer = Writer()
    try:
        for i in range(400):
            assert writer.register(cluster.servers[i % 3], f"job-{i % 50}", count=1 + i % 7)
        for s in cluster.servers:
            wait_until(lambda s=s: applied(s) >= max(writer.indexes), 30, f"{s.name} caught up")
        for s in cluster.servers:
            path = journal_path(cluster, s.name)
            entries, _, damage = scan(path.read_bytes(), str(path))
            assert damage is None
            # 400 writes went through; the journal holds only what the last snapshot
            # does not cover (compaction fires past the threshold)
            assert len(entries) <= 2 * threshold + 10, (s.name, len(entries))
            assert path.with_name("raft.snapshot").exists()
            assert entries[0][1] > 300
        assert_has_all(cluster.servers[0], writer.acked)
    finally:
        cluster.stop()


def test_damaged_journal_stops_the_server_and_repair_lets_it_catch_up(cluster):
    cluster.start()
    writer = Writer()
    for i in range(30):
        assert writer.register(cluster.servers[i % 3], f"job-{i}")
    leader = cluster.leader()
    victim = next(s for s in cluster.servers if s is not leader)
    wait_until(lambda: applied(victim) >= max(writer.indexes), 30, "the victim caught up")
    victim.kill()
    path = journal_path(cluster, victim.name)
    whole = path.read_bytes()

    def start_and_expect_refusal(data: bytes, why: str) -> None:
        path.write_bytes(data)
        log_start = victim.log_path.stat().st_size
        victim.start()
        assert victim.proc.wait(30) == 65, victim.log_path.read_text()[-2000:]
        out = victim.log_path.read_text()[log_start:]
        assert "damaged raft storage, not starting" in out and str(path) in out, out
        assert why in out, out

    # a torn tail (the last record cut short), then a flipped byte in the middle
    start_and_expect_refusal(whole[:-5], "truncated")
    _, offsets, _ = scan(whole)
    flipped = bytearray(whole)
    flipped[offsets[len(offsets) // 2] + 24 + 3] ^= 0x20   # inside a command, mid-journal
    start_and_expect_refusal(bytes(flipped), "checksum mismatch")

    # the operator chooses to cut the journal at the damage: the server starts and
    # fetches what it lost from the leader
    victim.args = victim.args + ["-repair-journal"]
    victim.start()
    victim.wait_healthy()
    wait_until(lambda: applied(victim) >= max(writer.indexes), 30, "the repaired server caught up")
    assert_has_all(victim, writer.acked, stale=True)
