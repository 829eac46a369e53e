"""The raft journal file: round trips, fsync points, compaction, damage detection, and
the quorum-durability property over three real in-process pysyncobj nodes."""
from __future__ import annotations

import asyncio
import os
import time

import pytest

from caravan.fsm import entries as e
from caravan.fsm.apply import FSM
from caravan.fsm.store import decode_state
from caravan.fsm.structs import Evaluation
from caravan.server import journal as jm
from caravan.server.journal import DurableJournal, StorageDamaged
from tests.procs import free_ports, wait_until


def fill(j: DurableJournal, first: int, n: int, term: int = 1) -> None:
    for idx in range(first, first + n):
        j.add(b"cmd-%d" % idx, idx, term)


def test_round_trip_and_metadata(tmp_path):
    path = str(tmp_path / "raft.wal")
    j = DurableJournal(path)
    fill(j, 1, 5)
    j.setCurrentTerm(3, "127.0.0.1:9")
    j.setRaftCommitIndex(4)
    j._destroy()
    again = DurableJournal(path)
    assert [x[1] for x in again] == [1, 2, 3, 4, 5] and again[2] == (b"cmd-3", 3, 1)
    assert (again.getCurrentTerm(), again.getVotedForNodeId(), again.getRaftCommitIndex()) == \
        (3, "127.0.0.1:9", 4)
    assert again.durable_index == 5


def test_sync_points_are_group_commits(tmp_path, monkeypatch):
    calls = []
    real = os.fdatasync
    monkeypatch.setattr(jm.os, "fdatasync", lambda fd: (calls.append(fd), real(fd)))
    j = DurableJournal(str(tmp_path / "raft.wal"))
    fill(j, 1, 3)
    assert j.durable_index == 0 and not calls
    j.setRaftCommitIndex(3)          # the leader commits: one fsync for all three
    assert len(calls) == 1 and j.durable_index == 3
    j.sync()                         # nothing new: no fsync
    assert len(calls) == 1
    j.add(b"x", 4, 1)
    j.sync()
    assert len(calls) == 2 and j.durable_index == 4


def test_delete_from_and_to_survive_reopen(tmp_path):
    path = str(tmp_path / "raft.wal")
    j = DurableJournal(path)
    fill(j, 1, 10)
    j.deleteEntriesFrom(7)           # a follower drops a conflicting suffix
    fill(j, 8, 2, term=2)
    j.deleteEntriesTo(3)             # compaction after a snapshot at index 3
    size = os.path.getsize(path)
    j._destroy()
    again = DurableJournal(path)
    assert [(x[1], x[2]) for x in again] == [(4, 1), (5, 1), (6, 1), (7, 1), (8, 2), (9, 2)]
    assert size < 200


def test_re_appended_entries_keep_their_records_and_a_conflict_cuts_the_file(tmp_path,
                                                                            monkeypatch):
    path = str(tmp_path / "raft.wal")
    j = DurableJournal(path)
    fill(j, 1, 10)
    j.sync()
    size = os.path.getsize(path)
    writes = []
    real_write = os.write
    monkeypatch.setattr(jm.os, "write", lambda fd, b: (writes.append(b), real_write(fd, b))[1])
    # the leader re-sends 5..7 of what this follower holds: pysyncobj deletes 5.. and
    # re-appends 5..7; nothing is rewritten, only 8..10 go when the follower acknowledges
    j.deleteEntriesFrom(4)
    assert len(j) == 4 and j.durable_index == 4
    fill(j, 5, 3)
    assert not writes and len(j) == 7 and j.durable_index == 7
    j.sync()
    assert os.path.getsize(path) < size and not writes
    # a real conflict: entry 7 of another term replaces ours
    j.deleteEntriesFrom(6)
    j.add(b"other", 7, 2)
    assert len(writes) == 1
    j._destroy()
    assert [(x[1], x[2]) for x in DurableJournal(path)] == \
        [(1, 1), (2, 1), (3, 1), (4, 1), (5, 1), (6, 1), (7, 2)]


def test_random_operations_match_a_list_and_survive_reopening(tmp_path):
    """Seeded random runs of what pysyncobj does to a journal, against a plain list."""
    import random

    for seed in range(60):
        rng = random.Random(seed)
        path = str(tmp_path / f"raft-{seed}.wal")
        j, model, dropped = DurableJournal(path), [], []
        for _ in range(80):
            op = rng.random()
            if op < 0.5 or not model:
                idx = model[-1][1] + 1 if model else 1
                # often re-append exactly what was just deleted (pysyncobj's re-sends)
                if dropped and dropped[0][1] == idx and rng.random() < 0.7:
                    entry = dropped.pop(0)
                else:
                    entry, dropped = (b"c%d-%d" % (idx, rng.randrange(3)), idx, 1), []
                j.add(*entry)
                model.append(entry)
            elif op < 0.65:
                k = rng.randrange(1, len(model) + 1)
                dropped = model[k:]
                j.deleteEntriesFrom(k)
                del model[k:]
            elif op < 0.72 and len(model) > 1:
                k = rng.randrange(1, len(model))
                j.deleteEntriesTo(k)
                model, dropped = model[k:], []
            elif op < 0.9:
                j.sync()
            else:
                j._destroy()
                j = DurableJournal(path)
                dropped = []
            assert list(j) == model, seed
        j._destroy()
        assert list(DurableJournal(path)) == model, seed


@pytest.mark.parametrize("damage", ["truncate", "flip-command", "flip-header", "garbage-tail"])
def test_damaged_journal_is_refused_and_can_be_repaired(tmp_path, damage):
    path = str(tmp_path / "raft.wal")
    j = DurableJournal(path)
    fill(j, 1, 20)
    j._destroy()
    data = bytearray(open(path, "rb").read())
    if damage == "truncate":
        data = data[:-7]
    elif damage == "flip-command":
        data[-3] ^= 0x40
    elif damage == "flip-header":
        data[-20] ^= 0x01            # inside the last record's header
    else:
        data += b"\x00\x00\x00\x05junk"
    open(path, "wb").write(bytes(data))
    with pytest.raises(StorageDamaged) as info:
        DurableJournal(path)
    assert "record 20" in str(info.value) or "record 21" in str(info.value)
    assert path in str(info.value)
    repaired = DurableJournal(path, repair=True)
    assert [x[1] for x in repaired][-1] in (19, 20)
    repaired._destroy()
    assert len(DurableJournal(path)) == len(repaired)   # the cut is on disk


def test_damaged_metadata_is_refused(tmp_path):
    path = str(tmp_path / "raft.wal")
    j = DurableJournal(path)
    j.setCurrentTerm(7, None)
    j._destroy()
    meta = bytearray(open(path + ".meta", "rb").read())
    meta[2] ^= 0x10
    open(path + ".meta", "wb").write(bytes(meta))
    with pytest.raises(StorageDamaged, match="corrupted raft metadata"):
        DurableJournal(path)


def test_pysyncobj_journal_is_converted(tmp_path):
    from pysyncobj.journal import FileJournal
    old = str(tmp_path / "raft.journal")
    pj = FileJournal(old)
    for idx in range(1, 6):
        pj.add(b"old-%d" % idx, idx, 2)
    pj.setCurrentTerm(4, "127.0.0.1:7")
    pj.setRaftCommitIndex(5)
    pj.onOneSecondTimer()
    pj._destroy()
    new = str(tmp_path / "raft.wal")
    assert jm.convert_pysyncobj_journal(old, new) == 5
    j = DurableJournal(new)
    assert list(j) == [(b"old-%d" % i, i, 2) for i in range(1, 6)]
    assert (j.getCurrentTerm(), j.getVotedForNodeId(), j.getRaftCommitIndex()) == \
        (4, "127.0.0.1:7", 5)
    assert not os.path.exists(old) and os.path.exists(old + ".converted")


def _single_node(tmp_path):
    """An FSM that applied one entry and a (not started) RaftNode over it."""
    from caravan.server.raft import RaftNode, RaftSettings

    fsm = FSM()
    fsm.apply(1, e.encode(e.Noop(RequestID="a")))
    return fsm, RaftNode(RaftSettings(self_addr="127.0.0.1:1", peers=(),
                                      data_dir=str(tmp_path), password="pw"), fsm)


def _snapshot_now(node) -> int:
    """Start a background snapshot as pysyncobj does and poll its checker to the end."""
    from pysyncobj.config import SERIALIZER_STATE

    node._write_snapshot(node._snapshot_path + ".tmp", ((b"x", 1, 1), (b"y", 2, 1), set()))
    assert not os.path.exists(node._snapshot_path + ".tmp")   # pysyncobj's rename must fail
    deadline = time.monotonic() + 30
    while (status := node._snapshot_status()) == SERIALIZER_STATE.SERIALIZING:
        assert time.monotonic() < deadline
        node._snapshot_job.join(0.01)
    assert node._snapshot_status() == SERIALIZER_STATE.NOT_SERIALIZING
    return status


def test_background_snapshot_is_renamed_into_place_only_when_durable(tmp_path):
    from pysyncobj.config import SERIALIZER_STATE

    from caravan.server.raft_snapshot import check_snapshot

    fsm, node = _single_node(tmp_path)
    path = tmp_path / "raft.snapshot"
    assert node._snapshot_status() == SERIALIZER_STATE.NOT_SERIALIZING
    node._write_snapshot(str(path) + ".tmp", ((b"x", 1, 1), (b"y", 2, 1), set()))
    taken = fsm.state
    fsm.apply(2, e.encode(e.Noop(RequestID="b")))   # applies go on meanwhile
    node._snapshot_job.join(30)
    assert not path.exists()                        # not in place before the checker says so
    assert node._snapshot_status() == SERIALIZER_STATE.SUCCESS
    state_blob, _ = check_snapshot(str(path))
    assert decode_state(state_blob).last_index == taken.last_index == 1
    assert not (tmp_path / "raft.snapshot.writing").exists()
    # a snapshot installed from the leader while ours was being written wins
    installed = path.read_bytes()
    node._write_snapshot(str(path) + ".tmp", ((b"x", 2, 1), (b"y", 3, 1), set()))
    node._snapshot_job.join(30)
    node._read_snapshot(str(path))                  # what pysyncobj calls on an install
    assert node._snapshot_status() == SERIALIZER_STATE.FAILED
    assert path.read_bytes() == installed and not (tmp_path / "raft.snapshot.writing").exists()


def test_snapshot_checksum_catches_damage(tmp_path):
    from pysyncobj.config import SERIALIZER_STATE

    from caravan.server.raft_snapshot import check_snapshot

    fsm, node = _single_node(tmp_path)
    path = tmp_path / "raft.snapshot"
    assert _snapshot_now(node) == SERIALIZER_STATE.SUCCESS
    state_blob, _ = check_snapshot(str(path))
    assert state_blob
    whole = path.read_bytes()
    path.write_bytes(whole[:-3])
    with pytest.raises(StorageDamaged, match="truncated or corrupted"):
        check_snapshot(str(path))
    flipped = bytearray(whole)
    flipped[40] ^= 0x08
    path.write_bytes(bytes(flipped))
    with pytest.raises(StorageDamaged, match="checksum mismatch"):
        check_snapshot(str(path))
    # the server reading it on the raft thread stops instead of carrying on empty
    with pytest.raises(StorageDamaged):
        node._read_snapshot(str(path))
    assert "checksum mismatch" in fsm.fatal


# --- the property itself, over real pysyncobj nodes ---------------------------------------


@pytest.mark.parametrize("size", [1, 3])
def test_every_applied_write_was_on_disk_on_a_quorum_first(tmp_path, size):
    """In-process raft nodes over loopback. Whenever the submitting node applies an
    entry (after which its client hears OK), a majority of the journals must already
    have fsynced that entry (a single server commits with no message at all)."""
    from caravan.server.raft import RaftNode, RaftSettings

    quorum = size // 2 + 1
    ports = free_ports(size)
    addrs = [f"127.0.0.1:{p}" for p in ports]
    nodes, violations, checked = [], [], []

    def journal_of(node):
        return node._sync._SyncObj__raftLog

    async def main():
        loop = asyncio.get_running_loop()
        for i, addr in enumerate(addrs):
            fsm = FSM()
            node = RaftNode(RaftSettings(self_addr=addr, peers=tuple(a for a in addrs if a != addr),
                                         data_dir=str(tmp_path / f"n{i}"), password="pw"), fsm)
            real_apply = fsm.apply

            def apply(index, blob, real_apply=real_apply):
                if blob[0] == e.EntryType.JOB_EVALUATE:   # the test's marker entries
                    durable = sum(1 for n in nodes if n._sync is not None and
                                  journal_of(n).durable_index >= index)
                    checked.append(index)
                    if durable < quorum:
                        violations.append((index, durable))
                return real_apply(index, blob)
            fsm.apply = apply
            node.start(loop)
            nodes.append(node)
        try:
            await asyncio.get_running_loop().run_in_executor(
                None, lambda: wait_until(lambda: any(n.is_leader for n in nodes), 20, "a leader"))
            for i in range(40):
                submitter = nodes[i % size]
                body = e.JobEvaluate(RequestID=f"r{i}", JobID="nope", Eval=Evaluation(ID=f"e{i}"))
                result = await submitter.submit(e.encode(body))
                assert result["Code"] == 404   # refused by the FSM, but a log entry all the same
        finally:
            for n in nodes:
                n.stop()

    asyncio.run(main())
    assert len(checked) >= 40 and not violations, violations
