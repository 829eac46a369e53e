"""The one place that touches pysyncobj.

``RaftNode`` replicates opaque entry bytes through a single replicated method, applies
them with the FSM, snapshots the FSM with msgpack, and turns pysyncobj's callbacks and
failure codes into awaitable results and two exceptions: ``NoLeaderError`` (nobody can
take the write now; nothing was applied) and ``ApplyTimeout`` (the outcome is unknown).

pysyncobj's sharp edges (as of 0.3.x), and what this module does about each:
- an exception escaping a replicated method wedges the cluster: ``FSM.apply`` never
  raises;
- pickle over the raft port: a password is always set and raft binds only the
  configured address;
- a journal without a dump file loses data after compaction: both are always set;
- a custom deserializer must hand back tuples: the raft triple is stored with pickle;
- callbacks may never fire: every submission has its own deadline, and retries of an
  unknown outcome resubmit the same bytes, which the FSM deduplicates by request id;
- two leaders for ``leaderFallbackTimeout``: lowered to 3 s, and no server, the leader
  included, serves a default read before a majority confirmed its leader after the read
  began (Raft's ReadIndex, the answers numbered in ``_Transport``) or, failing that, a
  no-op submitted after the read began is applied (a deposed leader cannot commit one);
- under pipelining the leader pulled a follower's next index back to each acknowledged
  position and re-sent entries in flight, which the follower truncated and appended
  again (it drops its suffix without comparing terms, logged at CRITICAL): an answer
  may raise the next index, never lower it
  (``_Transport._keep_next_index``);
- the file journal is never fsynced and has no checksums: it is replaced by
  ``server/journal.py``'s ``DurableJournal``; a follower fsyncs before it acknowledges
  entries and the leader before it marks them committed, so an acknowledged write is on
  disk on a quorum; snapshots carry a checksum too, and damaged storage stops the
  start-up (``StorageDamaged``) instead of being applied.
"""
from __future__ import annotations

import asyncio
import logging
import os
import pickle
import struct
import threading
import time
import zlib
from dataclasses import dataclass

import pysyncobj.syncobj
from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, replicated
from pysyncobj.config import FAIL_REASON, SERIALIZER_STATE
from pysyncobj.transport import TCPTransport

from caravan.fsm import entries
from caravan.fsm.apply import FSM
from caravan.fsm.store import decode_state, encode_state
from caravan.server.group_commit import GroupCommit
from caravan.server.journal import DurableJournal, StorageDamaged, convert_pysyncobj_journal, fsync_dir
from caravan.server.metrics import METRICS

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


_SNAPSHOT_MAGIC = b"CRVNSNP2"     # + lengths, CRC-32 of both blobs, the blobs
_SNAPSHOT_MAGIC_V1 = b"CRVNSNP1"  # no checksum (read for upgrades)
HOLD_EMPTY_FOR = 0.05   # seconds: see _Transport.send
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


class _Transport(TCPTransport):
    """Records when each peer was last heard from (for ``X-Nomad-LastContact``), and
    places the journal's fsyncs around messages:

    - a follower's acknowledgement of appended entries (``next_node_idx``) leaves only
      once those entries are on its disk: the leader counts it toward the quorum;
    - the leader fsyncs its own new entries right after handing them to the followers,
      so its disk write overlaps theirs (Raft allows this: the leader counts itself only
      once its copy is durable, which ``DurableJournal.setRaftCommitIndex`` enforces
      before anything is applied)."""

    def __init__(self, *args, **kwargs):
        self.last_heard: dict[str, float] = {}
        # Leadership confirmations for reads (``RaftNode.read_barrier``): the leader
        # numbers every append_entries it sends (``cv_seq``); a follower echoes, in the
        # answer pysyncobj sends while handling one (``cv_ack``), the number of the
        # message it is answering. It answers only messages of a term it accepts, so an
        # echo of n proves the follower took this node as its leader after n was sent.
        self.sent_seq = 0
        self.acked_seq: dict[str, int] = {}   # leader: peer -> highest number echoed
        self._answering: dict[str, int] = {}  # follower: leader -> number being handled
        self.on_ack = None                    # leader: called (raft thread) on a new echo
        # Leader: called (raft thread) before an append_entries without entries goes to
        # a follower that was sent entries less than HOLD_EMPTY_FOR ago; True means the
        # next round follows at once and will carry the new commit index (see send).
        self.hold_empty = None
        self._entries_sent_at: dict[str, float] = {}
        super().__init__(*args, **kwargs)

    def send(self, node, message):
        kind = message.get("type") if isinstance(message, dict) else None
        if kind == "append_entries" and "entries" in message:   # not a snapshot transfer
            # After each commit pysyncobj sends every follower the new commit index in a
            # message of its own. Under load the next round of entries, a millisecond
            # later, carries the same index; those messages and their answers were half
            # of the leader's raft traffic. One is held back only while a follower was
            # sent entries within HOLD_EMPTY_FOR (it keeps hearing from its leader) and
            # ``hold_empty`` says a round is about to follow and no reader is waiting
            # for a leadership confirmation.
            addr, now = _address(node), time.monotonic()
            if message["entries"]:
                self._entries_sent_at[addr] = now
            elif (self.hold_empty is not None
                  and now - self._entries_sent_at.get(addr, 0.0) < HOLD_EMPTY_FOR
                  and self.hold_empty()):
                return True
        if kind == "append_entries":
            self.sent_seq += 1
            message = {**message, "cv_seq": self.sent_seq}
        elif kind == "next_node_idx":
            number = self._answering.get(_address(node))
            if number is not None:
                message = {**message, "cv_ack": number}
        journal = getattr(self._syncObj, "_SyncObj__raftLog", None)
        if not isinstance(journal, DurableJournal):
            return super().send(node, message)
        if kind == "next_node_idx":
            journal.sync()
        sent = super().send(node, message)
        if kind == "append_entries":
            journal.sync()
        return sent

    def _onMessageReceived(self, node, message):
        addr = _address(node)
        self.last_heard[addr] = time.monotonic()
        if isinstance(message, dict):
            kind = message.get("type")
            if kind == "append_entries" and "cv_seq" in message:
                # pysyncobj answers (if at all) while handling it, just below
                self._answering[addr] = message["cv_seq"]
            elif kind == "next_node_idx":
                if message.get("cv_ack", 0) > self.acked_seq.get(addr, 0):
                    self.acked_seq[addr] = message["cv_ack"]
                    if self.on_ack is not None:
                        self.on_ack()
                if message.get("success") and not message.get("reset"):
                    return self._keep_next_index(node, message)
        return super()._onMessageReceived(node, message)

    def _keep_next_index(self, node, message):
        """pysyncobj sets a follower's next index to the one its success answer names,
        even when entries after it were already sent and are still in flight: with
        more than one append_entries under way (group commit, plans, heartbeats) a
        fifth of the entries were sent twice, and each resend made the follower cut its
        journal back and append them again. Raft needs no such rewind: a follower that
        misses entries answers the next message with ``reset`` and the leader backs up
        then. So an answer may raise the next index, never lower it."""
        ahead = getattr(self._syncObj, "_SyncObj__raftNextIndex", None)
        before = ahead.get(node) if ahead is not None else None
        result = super()._onMessageReceived(node, message)
        if before is not None and ahead.get(node, before) < before:
            ahead[node] = before
        return result


def _address(node) -> str:
    return getattr(node, "address", str(node))


class RaftNode:
    def __init__(self, settings: RaftSettings, fsm: FSM):
        self.settings = settings
        self.fsm = fsm
        self._consumer = _Replicated(fsm)
        self._sync: SyncObj | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._group = GroupCommit(self._submit_one)
        self._barrier_group: asyncio.Future | None = None
        self._snapshot_path = os.path.join(settings.data_dir, "raft.snapshot")
        self._snapshot_job: _SnapshotJob | None = None
        self._installs = 0   # snapshots loaded (at start, or installed from the leader)
        self._barrier_running = False
        self._ack_waiters = 0                        # readers waiting for confirmations
        self._acked: asyncio.Future | None = None    # set when a follower echoes
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
            _check_snapshot(snapshot_path)   # before pysyncobj, which ignores a failed load
        _remove(snapshot_path + ".writing")   # a background snapshot cut short by a crash
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
                                 consumers=[self._consumer], transportClass=_Transport)
        finally:
            pysyncobj.syncobj.createJournal = original
        self._sync._SyncObj__transport.on_ack = self._on_ack
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
            _remove(earlier.path)
        job = _SnapshotJob(self.fsm.state, pickle.dumps(raft_data, protocol=4),
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
            _remove(job.path)
            return SERIALIZER_STATE.FAILED
        os.replace(job.path, self._snapshot_path)
        if self.settings.fsync:
            fsync_dir(os.path.dirname(self._snapshot_path))
        return SERIALIZER_STATE.SUCCESS

    def _read_snapshot(self, path: str):
        self._installs += 1   # at start, or a snapshot from the leader replaced ours
        try:
            state_blob, raft_blob = _check_snapshot(path)
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
        """Return once this node has applied every write acknowledged before the call.

        The leader cannot answer from its own state alone: one that was paused or cut
        off does not know it has been deposed until pysyncobj's leaderFallbackTimeout,
        and would serve stale reads meanwhile (the fault tests saw it). So it confirms
        its leadership first (Raft's ReadIndex): it notes its commit index, has a round
        of append_entries sent at once, and waits until a majority (itself included)
        has answered one sent after the call began, then until it has applied that
        index. A deposed leader cannot get those answers: a majority has moved to a
        later term and ignores it. That costs no log entry and no fsync. A follower, or
        a leader without confirmations (no entry of its term committed yet, peers that
        do not echo, no answers within READ_INDEX_WAIT), waits instead for a no-op
        entry submitted after the call began, which only a current leader can commit.
        Concurrent readers share one confirmation or one no-op."""
        await self._shared_barrier()

    async def _shared_barrier(self) -> None:
        if self._barrier_group is None:
            self._barrier_group = asyncio.get_running_loop().create_future()
        group = self._barrier_group
        if not self._barrier_running:
            self._barrier_running = True
            asyncio.ensure_future(self._run_barriers())
        await asyncio.shield(group)

    async def _run_barriers(self) -> None:
        try:
            while self._barrier_group is not None:
                group, self._barrier_group = self._barrier_group, None
                try:
                    if await self._confirm_leadership():
                        METRICS.incr("caravan.raft.read_barrier.read_index")
                    else:
                        await self.submit(_NOOP)
                        METRICS.incr("caravan.raft.read_barrier.noop")
                except Exception as exc:
                    if not group.done():
                        group.set_exception(exc)
                    # the group's readers saw the exception; don't leave it unretrieved
                    group.exception()
                else:
                    if not group.done():
                        group.set_result(None)
        finally:
            self._barrier_running = False

    async def _confirm_leadership(self) -> bool:
        """ReadIndex (see ``read_barrier``): True once this leader's leadership is
        confirmed by a majority after the call began and the commit index it had then
        is applied here; False when that cannot be done (the caller falls back)."""
        sync, loop = self._sync, asyncio.get_running_loop()
        if sync is None or not self.settings.peers or not sync._isLeader():
            return False
        transport = sync._SyncObj__transport
        term = sync._SyncObj__raftCurrentTerm
        noop = sync._SyncObj__noopIDx
        commit = sync._SyncObj__raftCommitIndex
        if noop is None or commit < noop:
            return False        # no entry of this term committed: its commit index may lag
        first = transport.sent_seq + 1
        majority = (len(self.settings.peers) + 1) // 2 + 1

        def confirmed() -> bool:
            return 1 + sum(1 for n in list(transport.acked_seq.values()) if n >= first) >= majority

        deadline = loop.time() + READ_INDEX_WAIT
        self._ack_waiters += 1
        try:
            # send an append_entries round now rather than at the next heartbeat
            sync._SyncObj__newAppendEntriesTime = 0.0
            sync._SyncObj__pipeNotifier.notify()
            while not confirmed():
                if loop.time() >= deadline:
                    return False
                self._acked = loop.create_future()
                try:
                    await asyncio.wait_for(self._acked, max(0.0, deadline - loop.time()))
                except TimeoutError:
                    pass
        finally:
            self._ack_waiters -= 1
        if not sync._isLeader() or sync._SyncObj__raftCurrentTerm != term:
            return False
        while self.fsm.state.last_index < commit:    # applied here shortly after commit
            if loop.time() >= deadline:
                return False
            await asyncio.sleep(0.0005)
        return True

    def _round_follows(self) -> bool:
        """Raft thread: writes are queued for the next group-commit round, and no
        reader waits for a leadership confirmation (which any message may carry)."""
        return self._group.waiting > 0 and not self._ack_waiters

    def _on_ack(self) -> None:
        """Raft thread: a follower echoed a newer number; wake a waiting reader."""
        if self._ack_waiters and self._loop is not None:
            self._loop.call_soon_threadsafe(self._wake_acked)

    def _wake_acked(self) -> None:
        if self._acked is not None and not self._acked.done():
            self._acked.set_result(None)


READ_INDEX_WAIT = 0.5   # seconds a leader waits for its confirmations before a no-op
_NOOP = entries.encode(entries.Noop())


def _check_snapshot(path: str) -> tuple[bytes, bytes]:
    """The state and raft blobs of a snapshot file; StorageDamaged if it is damaged."""
    with open(path, "rb") as f:
        data = f.read()
    magic = data[:8]
    if magic == _SNAPSHOT_MAGIC and len(data) >= 28:
        n_state, n_raft, crc = struct.unpack(">QQI", data[8:28])
        body = 28
    elif magic == _SNAPSHOT_MAGIC_V1 and len(data) >= 24:
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


def _resolve(fut: asyncio.Future, result, error) -> None:
    if not fut.done():
        fut.set_result((result, error))


class _SnapshotJob(threading.Thread):
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
                f.write(_SNAPSHOT_MAGIC)
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


def _remove(path: str) -> None:
    try:
        os.remove(path)
    except FileNotFoundError:
        pass
