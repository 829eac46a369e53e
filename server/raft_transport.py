"""pysyncobj's TCP transport, with what Caravan adds around its messages.

pysyncobj's sharp edges (as of 0.3.x) that this module handles:
- under pipelining the leader pulled a follower's next index back to each acknowledged
  position and re-sent entries in flight, which the follower truncated and appended
  again (it drops its suffix without comparing terms, logged at CRITICAL): an answer
  may raise the next index, never lower it (``Transport._keep_next_index``);
- the file journal is never fsynced: with ``server/journal.py``'s ``DurableJournal`` a
  follower fsyncs before it acknowledges entries and the leader before it marks them
  committed, so an acknowledged write is on disk on a quorum (``Transport.send``);
- leadership confirmations for reads (``server/read_barrier.py``) ride on the
  append_entries messages and their answers (``cv_seq``/``cv_ack``).
"""
from __future__ import annotations

import time

from pysyncobj.transport import TCPTransport

from caravan.server.journal import DurableJournal

HOLD_EMPTY_FOR = 0.05   # seconds: see Transport.send


class Transport(TCPTransport):
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
        # Leadership confirmations for reads (``server.read_barrier``): the leader
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
