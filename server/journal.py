"""The raft journal on disk: checksummed records, and fsync before anything is acknowledged.

pysyncobj's own ``FileJournal`` writes records into an mmap that is never msynced, its
records carry no checksum, and its metadata (term, vote) is renamed into place without
fsync: a power loss can forget acknowledged entries and a vote, and a damaged file is
read back as whatever bytes it holds. ``DurableJournal`` implements the same interface
(``server/raft.py`` installs it) with:

- records ``>IIQQ`` (command length, CRC-32 of everything else, index, term) followed by
  the command, appended with ``os.write`` and made durable by ``sync()``
  (``fdatasync``). The raft layer calls ``sync()`` before this node sends any message
  (so a follower's acknowledgement of an entry, and the leader's own copy counted in the
  quorum, are on disk) and when the commit index advances (a single server commits with
  no message at all). Entries appended in one raft tick share one fsync;
- a metadata file (term, vote, commit index) written to a temporary file, fsynced,
  renamed and the directory fsynced: a vote is durable before it is sent;
- a follower that deletes and re-appends entries it already holds (pysyncobj does so
  whenever the leader re-sends a range) keeps their records: the file is cut only at a
  real conflict or before the next sync, so those re-sends neither rewrite the file nor
  open a moment in which acknowledged entries are missing from the disk;
- compaction (``deleteEntriesTo``, after a snapshot) and ``clear`` (after installing a
  snapshot) first fsync the snapshot file and the directory, so the snapshot and its
  rename are durable before the entries it replaces are dropped; compaction then
  rewrites the file the same careful way;
- on open, every record is checked (length within the file, checksum, consecutive
  indexes). A truncated or corrupted journal raises ``StorageDamaged`` naming the file,
  the record and the byte offset; nothing is applied. ``repair=True`` instead cuts the
  file at the first damaged record (an explicit operator decision: the entries from
  there on are then fetched again from the leader, if a quorum still holds them).
"""
from __future__ import annotations

import json
import logging
import os
import struct
import time
import zlib

log = logging.getLogger("caravan.journal")

MAGIC = b"CRVNWAL1"
_HEAD = struct.Struct(">IIQQ")   # command length, crc, index, term
META_SUFFIX = ".meta"


class StorageDamaged(Exception):
    """The journal, its metadata or the snapshot on disk is truncated or corrupted:
    the server must not start on it."""


def _crc(length: int, idx: int, term: int, command: bytes) -> int:
    return zlib.crc32(command, zlib.crc32(struct.pack(">IQQ", length, idx, term)))


def _record(command: bytes, idx: int, term: int) -> bytes:
    return _HEAD.pack(len(command), _crc(len(command), idx, term, command), idx, term) + command


def fsync_dir(path: str) -> None:
    fd = os.open(path or ".", os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_durably(path: str, data: bytes) -> None:
    """Replace ``path`` with ``data``: temporary file, fsync, rename, fsync the folder."""
    tmp = path + ".tmp"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_dir(os.path.dirname(path))


def scan(data: bytes, path: str = "journal") -> tuple[list[tuple[bytes, int, int]], list[int],
                                                    StorageDamaged | None]:
    """Parse a journal file's bytes: the valid entries, their byte offsets, and the damage
    found after them (None if the file is whole)."""
    if data[:len(MAGIC)] != MAGIC:
        return [], [], StorageDamaged(f"{path}: not a caravan raft journal (bad header)")
    entries, offsets = [], []
    off, n = len(MAGIC), 0
    while off < len(data):
        n += 1
        where = f"{path}: record {n} at byte {off} of {len(data)}"
        if len(data) - off < _HEAD.size:
            return entries, offsets, StorageDamaged(
                f"{where}: truncated (only {len(data) - off} bytes of its header)")
        length, crc, idx, term = _HEAD.unpack_from(data, off)
        end = off + _HEAD.size + length
        if end > len(data):
            return entries, offsets, StorageDamaged(
                f"{where}: truncated (its {length}-byte command runs past the end of the file)")
        command = bytes(data[off + _HEAD.size:end])
        if _crc(length, idx, term, command) != crc:
            return entries, offsets, StorageDamaged(f"{where}: checksum mismatch (corrupted)")
        if entries and idx != entries[-1][1] + 1:
            return entries, offsets, StorageDamaged(
                f"{where}: index {idx} does not follow {entries[-1][1]} (corrupted)")
        entries.append((command, idx, term))
        offsets.append(off)
        off = end
    return entries, offsets, None


class DurableJournal:
    """pysyncobj's ``Journal`` interface over a checksummed, fsynced file."""

    def __init__(self, path: str, *, fsync: bool = True, repair: bool = False,
                 snapshot_path: str | None = None):
        self.path = path
        self.snapshot_path = snapshot_path
        self.fsync = fsync
        self.syncs = 0            # fdatasync calls made (for the benchmark)
        self.sync_seconds = 0.0
        self.durable_index = 0    # the newest entry known to be on disk
        self._dirty = False
        self._meta_dirty = False
        # entries deleted from the end whose records are still in the file (see
        # deleteEntriesFrom), and how far the log was durable before the deletion
        self._removed: list[tuple[bytes, int, int]] = []
        self._removed_offsets: list[int] = []
        self._removed_durable = 0
        self._meta_path = path + META_SUFFIX
        self._meta = self._load_meta()
        if not os.path.exists(path):
            write_durably(path, MAGIC)
        with open(path, "rb") as f:
            data = f.read()
        self._entries, self._offsets, damage = scan(data, path)
        if damage is not None:
            if not repair:
                raise damage
            cut = self._offsets[-1] + _HEAD.size + len(self._entries[-1][0]) \
                if self._entries else len(MAGIC)
            log.warning("%s; repairing: cutting the journal at byte %d (%d bytes dropped, "
                        "%d entries kept)", damage, cut, len(data) - cut, len(self._entries))
            with open(path, "r+b") as f:
                f.truncate(cut)
                os.fsync(f.fileno())
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND)
        self._size = os.fstat(self._fd).st_size
        self.durable_index = self._last_index()

    def _last_index(self) -> int:
        return self._entries[-1][1] if self._entries else 0

    # --- metadata ---------------------------------------------------------------------

    def _load_meta(self) -> dict:
        if not os.path.exists(self._meta_path):
            return {}
        with open(self._meta_path, "rb") as f:
            raw = f.read()
        try:
            body, _, crc = raw.rpartition(b"\n")
            if int(crc) != zlib.crc32(body):
                raise ValueError("checksum mismatch")
            meta = json.loads(body)
            if not isinstance(meta, dict):
                raise ValueError("not an object")
        except ValueError as exc:
            raise StorageDamaged(f"{self._meta_path}: corrupted raft metadata ({exc})") from None
        return meta

    def _store_meta(self) -> None:
        body = json.dumps(self._meta, sort_keys=True).encode()
        data = body + b"\n" + str(zlib.crc32(body)).encode()
        if self.fsync:
            write_durably(self._meta_path, data)
        else:
            with open(self._meta_path + ".tmp", "wb") as f:
                f.write(data)
            os.replace(self._meta_path + ".tmp", self._meta_path)
        self._meta_dirty = False

    # --- durability -------------------------------------------------------------------

    def sync(self) -> None:
        """Make every appended entry durable (one fdatasync for all of them)."""
        self._materialize()
        if not self._dirty:
            return
        self._dirty = False
        if self.fsync:
            started = time.perf_counter()
            os.fdatasync(self._fd)
            self.sync_seconds += time.perf_counter() - started
            self.syncs += 1
            self.durable_index = self._last_index()

    # --- the Journal interface ----------------------------------------------------------

    def add(self, command, idx, term):
        command = bytes(command)
        if self._removed:
            if self._removed[0] == (command, idx, term):
                # pysyncobj re-appending the very entry it just deleted: keep the record
                entry, off = self._removed.pop(0), self._removed_offsets.pop(0)
                self._entries.append(entry)
                self._offsets.append(off)
                if idx <= self._removed_durable:
                    self.durable_index = idx
                return
            self._materialize()
        self._entries.append((command, idx, term))
        self._offsets.append(self._size)
        rec = _record(command, idx, term)
        os.write(self._fd, rec)
        self._size += len(rec)
        self._dirty = True

    def clear(self):
        # pysyncobj clears the journal after installing a snapshot (one from the leader
        # is written without fsync): that snapshot must be durable before the entries go
        self._snapshot_durable()
        self._truncate(0)

    def _snapshot_durable(self) -> None:
        if not self.fsync:
            return
        if self.snapshot_path and os.path.exists(self.snapshot_path):
            fd = os.open(self.snapshot_path, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
        fsync_dir(os.path.dirname(self.path))

    def deleteEntriesFrom(self, entryFrom):
        """Drop the entries from ``entryFrom`` on. The file is cut lazily: pysyncobj's
        followers delete and re-append entries they already hold whenever the leader
        re-sends a range (it drops its suffix after ``prevLogIdx`` without comparing terms,
        where Raft drops only a conflicting one); re-appended identical entries
        keep their records, so only a real conflict (or a sync) cuts the file."""
        self._materialize()
        if entryFrom >= len(self._entries):
            return
        self._removed = self._entries[entryFrom:]
        self._removed_offsets = self._offsets[entryFrom:]
        self._removed_durable = self.durable_index
        del self._entries[entryFrom:]
        del self._offsets[entryFrom:]
        self.durable_index = min(self.durable_index, self._last_index())

    def _materialize(self) -> None:
        """Cut the file where the deleted entries that were not re-appended begin."""
        if not self._removed:
            return
        cut = self._removed_offsets[0]
        self._removed, self._removed_offsets = [], []
        os.ftruncate(self._fd, cut)
        self._size = cut
        self._dirty = True

    def _truncate(self, keep: int) -> None:
        self._materialize()
        if keep >= len(self._entries):
            return
        cut = self._offsets[keep]
        del self._entries[keep:]
        del self._offsets[keep:]
        os.ftruncate(self._fd, cut)
        self._size = cut
        self._dirty = True
        self.durable_index = min(self.durable_index, self._last_index())

    def deleteEntriesTo(self, entryTo):
        """Drop the entries a snapshot now covers: the snapshot's rename is made durable
        first, then the rest of the journal is rewritten to a new file."""
        self._materialize()
        self._snapshot_durable()
        keep = self._entries[entryTo:]
        records = [_record(*entry) for entry in keep]
        data = MAGIC + b"".join(records)
        if self.fsync:
            write_durably(self.path, data)
        else:
            with open(self.path + ".tmp", "wb") as f:
                f.write(data)
            os.replace(self.path + ".tmp", self.path)
        os.close(self._fd)
        self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        self._entries = keep
        self._offsets, off = [], len(MAGIC)
        for rec in records:
            self._offsets.append(off)
            off += len(rec)
        self._size = off
        self._dirty = False
        if self.fsync:
            self.durable_index = self._last_index()

    def __getitem__(self, item):
        return self._entries[item]

    def __len__(self):
        return len(self._entries)

    def flush(self):
        self.sync()

    def _destroy(self):
        if self._fd is None:
            return
        self.sync()
        self._store_meta()
        os.close(self._fd)
        self._fd = None

    def setRaftCommitIndex(self, raftCommitIndex):
        # The leader calls this when an entry is committed, before applying it (and so
        # before any client hears OK): its own copy must be on disk by then.
        self.sync()
        self._meta["raftCommitIndex"] = raftCommitIndex
        self._meta_dirty = True

    def getRaftCommitIndex(self):
        # never past the journal's end (a repaired tail, or a meta saved before a crash)
        return max(1, min(self._meta.get("raftCommitIndex", 1), self._last_index()))

    def setCurrentTerm(self, term, votedForNodeId):
        # Raft: term and vote are durable before any message that reflects them is sent.
        self._meta["currentTerm"] = term
        self._meta["votedForNodeId"] = votedForNodeId
        self._store_meta()

    def getCurrentTerm(self):
        return self._meta.get("currentTerm", 0)

    def getVotedForNodeId(self):
        return self._meta.get("votedForNodeId")

    def onOneSecondTimer(self):
        # the commit index is a hint (pysyncobj clamps it to the journal): lazily saved
        if self._meta_dirty:
            self._store_meta()


# --- journals written by pysyncobj's FileJournal (Caravan before this module) ------------

_PSO_HEADER = 40            # name (24) + version (8) + format (4) + end offset (4)


def convert_pysyncobj_journal(old_path: str, new_path: str) -> int:
    """Rewrite a pysyncobj ``FileJournal`` (and its ``.meta``) as a ``DurableJournal``,
    then rename the old files aside (``.converted``). Returns the entries converted."""
    import pickle  # pysyncobj's meta is a pickled dict written by this very node

    with open(old_path, "rb") as f:
        data = f.read()
    if not data.startswith(b"PYSYNCOBJ") or len(data) < _PSO_HEADER:
        raise StorageDamaged(f"{old_path}: not a pysyncobj journal")
    end = struct.unpack_from("<I", data, 36)[0]
    if end > len(data):
        raise StorageDamaged(f"{old_path}: its header says it ends at byte {end}, past the "
                             f"end of the file ({len(data)} bytes): truncated")
    records, off = [], _PSO_HEADER
    while off < end:
        size = struct.unpack_from("<I", data, off)[0]
        if off + 8 + size > end or size < 16 or \
                struct.unpack_from("<I", data, off + 4 + size)[0] != size:
            raise StorageDamaged(f"{old_path}: record at byte {off} is damaged")
        idx, term = struct.unpack_from("<QQ", data, off + 4)
        records.append(_record(bytes(data[off + 20:off + 4 + size]), idx, term))
        off += size + 8
    meta = {}
    if os.path.exists(old_path + ".meta"):
        with open(old_path + ".meta", "rb") as f:
            old_meta = pickle.loads(f.read())
        meta = {k: old_meta[k] for k in ("raftCommitIndex", "currentTerm", "votedForNodeId")
                if k in old_meta}
    body = json.dumps(meta, sort_keys=True).encode()
    write_durably(new_path + META_SUFFIX, body + b"\n" + str(zlib.crc32(body)).encode())
    write_durably(new_path, MAGIC + b"".join(records))
    for suffix in ("", ".meta"):
        if os.path.exists(old_path + suffix):
            os.replace(old_path + suffix, old_path + suffix + ".converted")
    fsync_dir(os.path.dirname(new_path))
    return len(records)
