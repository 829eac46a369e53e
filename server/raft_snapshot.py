"""Caravan's snapshot file: the FSM's state and pysyncobj's raft data, with a checksum.

A snapshot is ``MAGIC``, the two blobs' lengths and the CRC-32 of both, then the state
blob (``fsm.store.encode_state``) and the raft blob (pickled: pysyncobj compares its
entries with its journal and needs them back as tuples). ``check_snapshot`` reads one
and raises ``StorageDamaged`` on any damage (pysyncobj itself keeps no checksum and
carries on after a failed load); ``SnapshotJob`` writes one in the background.
"""
from __future__ import annotations

import os
import struct
import threading
import zlib

from caravan.fsm.store import encode_state
from caravan.server.journal import StorageDamaged

MAGIC = b"CRVNSNP2"     # + lengths, CRC-32 of both blobs, the blobs
MAGIC_V1 = b"CRVNSNP1"  # no checksum (read for upgrades)


def check_snapshot(path: str) -> tuple[bytes, bytes]:
    """The state and raft blobs of a snapshot file; StorageDamaged if it is damaged."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:8]
    if magic == MAGIC and len(data) >= 28:
        n_state, n_raft, crc = struct.unpack(">QQI", data[8:28])
        body = 28
    elif magic == MAGIC_V1 and len(data) >= 24:
        (n_state, n_raft), crc, body = struct.unpack(">QQ", data[8:24]), None, 24
    else:
        raise StorageDamaged(f"{path}: not a caravan snapshot (bad header)")
    if len(data) != body + n_state + n_raft:
        raise StorageDamaged(f"{path}: {len(data)} bytes where its header promises "
                             f"{body + n_state + n_raft}: truncated or corrupted")
    state_blob = data[body:body + n_state]
    raft_blob = data[body + n_state:]
    if crc is not None and zlib.crc32(raft_blob, zlib.crc32(state_blob)) != crc:
        raise StorageDamaged(f"{path}: checksum mismatch (corrupted)")
    return state_blob, raft_blob


class SnapshotJob(threading.Thread):
    """Encode ``state`` (immutable: it cannot change under us) and write it with the
    raft data to ``path``, fsynced. Encoding goes table by table in chunks of rows
    (``fsm.store.encode_state``), so the raft and HTTP threads get the GIL in between."""

    def __init__(self, state, raft_blob: bytes, path: str, fsync: bool, installs: int):
        super().__init__(name="caravan-snapshot", daemon=True)
        self.state, self.raft_blob, self.path = state, raft_blob, path
        self.fsync, self.installs = fsync, installs
        self.error: str | None = None

    def run(self) -> None:
        try:
            state_blob = encode_state(self.state)
            raft_blob = self.raft_blob
            with open(self.path, "wb") as f:
                f.write(MAGIC)
                f.write(struct.pack(">QQI", len(state_blob), len(raft_blob),
                                    zlib.crc32(raft_blob, zlib.crc32(state_blob))))
                f.write(state_blob)
                f.write(raft_blob)
                f.flush()
                if self.fsync:
                    os.fsync(f.fileno())
        except Exception as exc:   # disk full, ...: reported, the journal keeps the entries
            self.error = f"{type(exc).__name__}: {exc}"
        finally:
            self.state = None


def remove_file(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
