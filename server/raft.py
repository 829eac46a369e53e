"""The one place that touches pysyncobj.

``RaftNode`` replicates opaque entry bytes through a single replicated method, applies
them with the FSM, snapshots the FSM with msgpack, and turns pysyncobj's callbacks and
failure codes into awaitable results and two exceptions: ``NoLeaderError`` (nobody can
take the write now; nothing was applied) and ``ApplyTimeout`` (the outcome is unknown).

pysyncobj's sharp edges (as of 0.3.x), and what is done about each; the ones handled
elsewhere are listed with the code that handles them (``server/raft_transport.py``:
pipelined resends and the fsyncs around messages; ``server/read_barrier.py``: two
leaders at once; ``server/raft_snapshot.py``: snapshots without checksums):
- an exception escaping a replicated method wedges the cluster: ``FSM.apply`` never
  raises;
- pickle over the raft port: a password is always set and raft binds only the
  configured address;
- a journal without a dump file loses data after compaction: both are always set;
- a custom deserializer must hand back tuples: the raft triple is stored with pickle;
- callbacks may never fire: every submission has its own deadline, and retries of an
  unknown outcome resubmit the same bytes, which the FSM deduplicates by request id;
- two leaders for ``leaderFallbackTimeout``: lowered to 3 s (and reads wait for a
  confirmed leader: ``server/read_barrier.py``);
- the file journal is never fsynced and has no checksums: it is replaced by
  ``server/journal.py``'s ``DurableJournal``, and damaged storage (journal or snapshot)
  stops the start-up (``StorageDamaged``) instead of being applied.
"""
from __future__ import annotations

import asyncio
import logging
import os
import pickle
import threading
import time
from dataclasses import dataclass

import pysyncobj.syncobj
from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.config import FAIL_REASON, SERIALIZER_STATE

from caravan.fsm.apply import FSM
from caravan.fsm.store import decode_state
from caravan.server.group_commit import GroupCommit
from caravan.server.journal import DurableJournal, StorageDamaged, convert_pysyncobj_journal, fsync_dir
from caravan.server.raft_snapshot import SnapshotJob, check_snapshot, remove_file
from caravan.server.raft_transport import Transport
from caravan.server.read_barrier import ReadBarrier

log = logging.getLogger("caravan.raft")


class NoLeaderError(Exception):
    """No leader could take the write within the hold time; nothing was applied."""


class ApplyTimeout(Exception):
    """The write was submitted but no outcome arrived in time: it may or may not apply."""


@dataclass(frozen=True)
class RaftSettings:
    self_addr: str                 # "host:port" of this server's raft listener
    peers: tuple[str, ...]         # the other servers' raft addresses
    data_dir: str
    password: str
    compaction_entries: int = 20000
    apply_timeout: float = 10.0    # seconds a write may take before its outcome is unknown
    leader_hold: float = 5.0       # seconds a write waits for a leader to exist
    fsync: bool = True             # False only to measure what durability costs
    repair_journal: bool = False   # cut a damaged journal tail instead of refusing to start


MAX_ENTRY_BYTES = 16 * 1024 * 1024   # above any entry Caravan writes (a plan is ~1 KB/alloc)
_LEADER = 2  # pysyncobj's _RAFT_STATE.LEADER

_RETRYABLE = {FAIL_REASON.QUEUE_FULL, FAIL_REASON.MISSING_LEADER, FAIL_REASON.DISCARDED,
              FAIL_REASON.NOT_LEADER, FAIL_REASON.LEADER_CHANGED}
_UNKNOWN_OUTCOME = getattr(FAIL_REASON, "UNKNOWN_OUTCOME", 7)
_RETRYABLE.add(_UNKNOWN_OUTCOME)


class _Replicated(SyncObjConsumer):
    """The single replicated entry point. Renaming or adding replicated methods would
    shift pysyncobj's method ids under old journals: keep exactly this one."""

    def __init__(self, fsm: FSM):
        super().__init__()
        self._fsm = fsm

    @replicated
    def apply_entry(self, blob: bytes):
        # Inside a replicated method raftLastApplied is still the previous entry's index.
        return self._fsm.apply(self._syncObj.raftLastApplied + 1, blob)


class RaftNode:
    def __init__(self, settings: RaftSettings, fsm: FSM):
        self.settings = settings
        self.fsm = fsm
        self._consumer = _Replicated(fsm)
        self._sync: SyncObj | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._group = GroupCommit(self._submit_one)
        self._snapshot_path = os.path.join(settings.data_dir, "raft.snapshot")
        self._snapshot_job: SnapshotJob | None = None
        self._installs = 0   # snapshots loaded (at start, or installed from the leader)
        self._barrier = ReadBarrier(self)
        # Called on the event loop with True when this node becomes leader and False
        # when it stops being leader.
        self.on_leadership = None

    # --- lifecycle ---------------------------------------------------------------------

    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Construct the pysyncobj node. Must run on the main thread: its tick thread
        stops when the constructing thread exits."""
        assert threading.current_thread() is threading.main_thread()
        self._loop = loop
        s = self.settings
        os.makedirs(s.data_dir, exist_ok=True)
        journal_path = os.path.join(s.data_dir, "raft.wal")
        snapshot_path = os.path.join(s.data_dir, "raft.snapshot")
        old_journal = os.path.join(s.data_dir, "raft.journal")   # pysyncobj's own format
        if os.path.exists(old_journal) and not os.path.exists(journal_path):
            n = convert_pysyncobj_journal(old_journal, journal_path)
            log.warning("converted %s (%d entries) to %s", old_journal, n, journal_path)
        if os.path.exists(snapshot_path):
            check_snapshot(snapshot_path)   # before pysyncobj, which ignores a failed load
        remove_file(snapshot_path + ".writing")   # a background snapshot cut short by a crash
        conf = SyncObjConf(
            journalFile=journal_path,
            fullDumpFile=snapshot_path,
            serializer=self._write_snapshot,
            serializeChecker=self._snapshot_status,
            deserializer=self._read_snapshot,
            appendEntriesUseBatch=False,   # ~0.4 ms per sync commit instead of ~100 ms
            # An entry larger than this is sent in chunks that follow the heartbeat
            # period: a 107 KB plan took 133 ms (p50) to commit at the 64 KiB default.
            appendEntriesBatchSizeBytes=MAX_ENTRY_BYTES,
            leaderFallbackTimeout=3.0,
            connectionRetryTime=1.0,
            commandsQueueSize=10000,
            logCompactionMinEntries=s.compaction_entries,
            password=s.password,
            bindAddress=s.self_addr,
            dynamicMembershipChange=False,
            onStateChanged=self._state_changed,
        )
        # pysyncobj builds its journal with the module-level createJournal(); build ours
        # (it raises StorageDamaged here, on the main thread, if the file is damaged).
        original = pysyncobj.syncobj.createJournal
        pysyncobj.syncobj.createJournal = lambda path: DurableJournal(
            path, fsync=s.fsync, repair=s.repair_journal, snapshot_path=snapshot_path)
        try:
            self._sync = SyncObj(s.self_addr, list(s.peers), conf=conf,
                                 consumers=[self._consumer], transportClass=Transport)
        finally:
            pysyncobj.syncobj.createJournal = original
        self._sync._SyncObj__transport.on_ack = self._barrier.on_ack
        self._sync._SyncObj__transport.hold_empty = self._round_follows
        if not s.peers:
            self._sync.addOnTickCallback(self._kick_single_node_commit)

    def _kick_single_node_commit(self) -> None:
        """On a single-node cluster nothing answers an append, so pysyncobj would only
        commit a new entry on its next timer tick (50 ms). Wake its poller instead when
        the log is ahead of the commit index (runs on the raft thread, after new
        commands were appended)."""
        sync = self._sync
        if sync is not None and sync._isLeader() and \
                sync._SyncObj__getCurrentLogIndex() > sync.raftCommitIndex:
            sync._SyncObj__pipeNotifier.notify()

    def _state_changed(self, old: int, new: int) -> None:
        """pysyncobj calls this on its thread; leadership hooks run on the loop."""
        if self.on_leadership is not None and self._loop is not None:
            self._loop.call_soon_threadsafe(self.on_leadership, new == _LEADER)

    def stop(self) -> None:
        if self._sync is not None:
            self._sync.destroy()
            self._sync = None

    # --- snapshot hooks (run on the raft thread, between applies) ---------------------------
    #
    # Serializing the whole state takes ~35 us per job (1 s at 30k jobs); done on the raft
    # thread it stalled every write and default read meanwhile. The state is an immutable
    # value, so the snapshot is written from a reference taken here, by a background
    # thread, and pysyncobj is told through its serializeChecker when it is durable.
    # Only the raft thread ever renames a snapshot into place (here, in the checker, or
    # pysyncobj installing one sent by the leader), so a snapshot written in the
    # background never replaces one installed meanwhile: that one wins, ours is dropped.

    def _write_snapshot(self, path: str, raft_data) -> None:
        """pysyncobj's serializer: start writing a snapshot of the state as applied now.
        ``path`` (pysyncobj's temporary name) is not created: pysyncobj's rename of it
        then fails, which it ignores when a serializeChecker is set."""
        earlier = self._snapshot_job
        if earlier is not None:
            # pysyncobj starts no second one before the checker ends the first; if it
            # ever did, the new one (whose index it now holds) must be the one reported
            earlier.join()
            remove_file(earlier.path)
        job = SnapshotJob(self.fsm.state, pickle.dumps(raft_data, protocol=4),
                           self._snapshot_path + ".writing", self.settings.fsync,
                           self._installs)
        self._snapshot_job = job
        job.start()

    def _snapshot_status(self) -> int:
        """pysyncobj's serializeChecker (raft thread): SUCCESS once, after the background
        snapshot is durable and renamed into place; the entries it covers may then go."""
        job = self._snapshot_job
        if job is None:
            return SERIALIZER_STATE.NOT_SERIALIZING
        if job.is_alive():
            return SERIALIZER_STATE.SERIALIZING
        self._snapshot_job = None
        if job.error is not None or job.installs != self._installs:
            why = job.error or "a snapshot from the leader was installed meanwhile"
            log.warning("snapshot not kept: %s", why)
            remove_file(job.path)
            return SERIALIZER_STATE.FAILED
        os.replace(job.path, self._snapshot_path)
        if self.settings.fsync:
            fsync_dir(os.path.dirname(self._snapshot_path))
        return SERIALIZER_STATE.SUCCESS

    def _read_snapshot(self, path: str):
        self._installs += 1   # at start, or a snapshot from the leader replaced ours
        try:
            state_blob, raft_blob = check_snapshot(path)
        except StorageDamaged as exc:
            # pysyncobj only logs a failed load and carries on: stop the server instead
            self.fsm.fatal = str(exc)
            log.critical("%s", exc)
            raise
        self.fsm.restore(decode_state(state_blob))
        # pysyncobj compares these entries with its journal; they must be tuples, which
        # pickle preserves (msgpack would turn them into lists and drop the journal).
        return pickle.loads(raft_blob)

    # --- status ----------------------------------------------------------------------------

    @property
    def is_leader(self) -> bool:
        return self._sync is not None and self._sync._isLeader()

    def leader(self) -> str | None:
        """The raft address of the leader this node believes in, if any."""
        if self._sync is None:
            return None
        node = self._sync._getLeader()
        return getattr(node, "address", None) if node is not None else None

    def last_contact_ms(self) -> int:
        if self.is_leader:
            return 0
        leader = self.leader()
        if leader is None or self._sync is None:
            return 0
        heard = self._sync._SyncObj__transport.last_heard.get(leader)
        return int((time.monotonic() - heard) * 1000) if heard else 0

    def status(self) -> dict:
        return self._sync.getStatus() if self._sync is not None else {}

    def applied_index(self) -> int:
        return self.fsm.state.last_index

    # --- writes ------------------------------------------------------------------------------

    async def submit(self, blob: bytes, body=None) -> dict:
        """Replicate ``blob`` and return the FSM's answer, once applied on this node.
        Writes that queue up behind rounds in flight share one raft entry
        (``server.group_commit``). ``body``: the entry object ``blob`` was just encoded
        from, applied here without decoding it again (``FSM.hold_decoded``)."""
        if body is not None:
            self.fsm.hold_decoded(blob, body)
        return await self._group.submit(blob)

    async def _submit_one(self, blob: bytes) -> dict:
        """One raft entry: replicate it, retrying the same bytes while its outcome is
        unknown, and return the FSM's answer once applied on this node."""
        loop = asyncio.get_running_loop()
        s = self.settings
        deadline = loop.time() + s.apply_timeout
        hold_until = loop.time() + s.leader_hold
        delay = 0.01
        while True:
            if self.leader() is None:
                if loop.time() >= hold_until:
                    raise NoLeaderError("No cluster leader")
                await asyncio.sleep(min(0.05, max(0.0, hold_until - loop.time())))
                continue
            fut = loop.create_future()

            def done(result, error, fut=fut):
                loop.call_soon_threadsafe(_resolve, fut, result, error)

            self._consumer.apply_entry(blob, callback=done)
            remaining = deadline - loop.time()
            try:
                result, error = await asyncio.wait_for(fut, max(remaining, 0.001))
            except TimeoutError:
                raise ApplyTimeout("timed out waiting for the write to be applied; "
                                   "its outcome is unknown") from None
            if error == FAIL_REASON.SUCCESS:
                if self.fsm.fatal:
                    raise RuntimeError(self.fsm.fatal)
                return result
            if error not in _RETRYABLE:
                raise RuntimeError(f"raft refused the write (reason {error})")
            # Not applied, or outcome unknown: resubmit the same bytes. The entry's
            # request id makes a second application answer with the first one's result.
            if loop.time() >= deadline:
                if error in (FAIL_REASON.LEADER_CHANGED, _UNKNOWN_OUTCOME):
                    raise ApplyTimeout("leader changed; the write's outcome is unknown")
                raise NoLeaderError("No cluster leader")
            await asyncio.sleep(delay)
            delay = min(delay * 2, 0.2)
            if self.leader() is None and loop.time() >= hold_until:
                raise NoLeaderError("No cluster leader")

    # --- consistent reads --------------------------------------------------------------------

    async def read_barrier(self) -> None:
        """Return once this node has applied every write acknowledged before the call
        (Raft's ReadIndex, or a no-op: ``server/read_barrier.py``)."""
        await self._barrier.wait()

    def _round_follows(self) -> bool:
        """Raft thread: writes are queued for the next group-commit round, and no
        reader waits for a leadership confirmation (which any message may carry)."""
        return self._group.waiting > 0 and not self._barrier.waiting


def _resolve(fut: asyncio.Future, result, error) -> None:
    if not fut.done():
        fut.set_result((result, error))
