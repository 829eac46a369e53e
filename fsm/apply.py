"""The finite-state machine: apply one log entry to the state, deterministically.

``FSM.apply(index, blob)`` decodes the envelope, runs the applier for its type inside
one transaction, publishes the new state and returns the answer for the submitter.
It never raises: a request that the state refuses (a failed check-and-set, an unknown
job) comes back as ``{"Error", "Code"}`` and changes nothing, and an unexpected
exception is caught, logged and answered as an error, because an exception escaping a
pysyncobj replicated method wedges the whole cluster.

The appliers themselves live in ``caravan.fsm.appliers``, by domain; this module holds
the dispatch table (checked at start-up to cover every entry type), batches, held
bodies and the remembered answers of resubmitted requests.
"""
from __future__ import annotations

import logging
from collections.abc import Callable, Hashable
from functools import partial
from typing import Any

from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.appliers import Result
from caravan.fsm.appliers import allocs as alloc_appliers
from caravan.fsm.appliers import deployments as deployment_appliers
from caravan.fsm.appliers import jobs as job_appliers
from caravan.fsm.appliers import nodes as node_appliers
from caravan.fsm.appliers import system as system_appliers
from caravan.fsm.jobs import Rejected
from caravan.fsm.store import State, Txn
from caravan.fsm.structs import RequestResult

log = logging.getLogger("caravan.fsm")

DEFAULT_TRACKED_VERSIONS = 6
# How many log indexes a request id is remembered for (its answer is replayed to a
# retry that arrives within that window).
REQUEST_WINDOW = 200_000
HELD_LIMIT = 1024   # bodies held by ``hold_decoded`` (a few rounds' worth of writes)
_SWEEP_EVERY = 4096


class FSM:
    def __init__(self, tracked_versions: int = DEFAULT_TRACKED_VERSIONS):
        self.tracked_versions = tracked_versions
        self.state = State.empty()
        # while a batch entry applies: its members' state so far, and what they touched
        self._staged: State | None = None
        self._staged_touched: set[str] | None = None
        self._staged_written: dict[str, list[Hashable]] | None = None
        # Called after each applied entry with (tables touched, index); the server uses
        # it to wake blocking queries. It must not raise and must be quick.
        self.on_commit: Callable[[frozenset[str], int], None] | None = None
        # Each is called after a published state with the keys it wrote in the tracked
        # tables (``Txn.written``: table -> keys), before ``on_commit``, or with None
        # when the whole state was replaced. The leader's broker feed and deployment
        # watcher use them. Same rules as ``on_commit``.
        # (a key is its table's primary key: an ID, or a tuple of fields)
        self.write_listeners: list[Callable[[dict[str, list[Any]] | None], None]] = []
        # entry bytes -> the body they were encoded from (``hold_decoded``)
        self._held: dict[bytes, e.Request] = {}
        # Set when an entry of an unknown type arrives: this binary is older than the
        # log, and the node must stop rather than skip it.
        self.fatal: str | None = None

        def versioned(applier: Callable[..., Result]) -> Callable[[Txn, Any], Result]:
            return partial(applier, tracked_versions=tracked_versions)   # they keep this many

        # Each applier takes its own entry's body (the table pairs them; ``e.decode``
        # gives the body of the type its first byte names), hence Any for the body.
        self._appliers: dict[e.EntryType, Callable[[Txn, Any], Result]] = {
            e.EntryType.NOOP: system_appliers.noop,
            e.EntryType.JOB_REGISTER: versioned(job_appliers.job_register),
            e.EntryType.JOB_DEREGISTER: versioned(job_appliers.job_deregister),
            e.EntryType.JOB_STABILITY: job_appliers.job_stability,
            e.EntryType.JOB_REVERT: versioned(job_appliers.job_revert),
            e.EntryType.JOB_DISPATCH: versioned(job_appliers.job_dispatch),
            e.EntryType.PERIODIC_FORCE: versioned(job_appliers.periodic_force),
            e.EntryType.JOB_EVALUATE: job_appliers.job_evaluate,
            e.EntryType.NODE_REGISTER: node_appliers.node_register,
            e.EntryType.NODE_STATUS: node_appliers.node_status,
            e.EntryType.EVAL_UPDATE: alloc_appliers.eval_update,
            e.EntryType.PLAN_RESULTS: alloc_appliers.plan_results,
            e.EntryType.ALLOC_CLIENT_UPDATE: alloc_appliers.alloc_client_update,
            e.EntryType.DEPLOYMENT_STATUS_UPDATE: versioned(deployment_appliers.deployment_status),
            e.EntryType.DEPLOYMENT_PROMOTE: versioned(deployment_appliers.deployment_promote),
            e.EntryType.DEPLOYMENT_ALLOC_HEALTH: versioned(deployment_appliers.deployment_alloc_health),
            e.EntryType.PERIODIC_LAUNCH: versioned(job_appliers.periodic_launch),
            e.EntryType.BATCH: system_appliers.batch_inside,
            e.EntryType.LEADER_EPOCH: system_appliers.leader_epoch,
            e.EntryType.CORE_GC: system_appliers.core_gc,
            e.EntryType.JOB_SCALE: versioned(job_appliers.job_scale),
            e.EntryType.NODE_DRAIN: node_appliers.node_drain,
            e.EntryType.NODE_ELIGIBILITY: node_appliers.node_eligibility,
            e.EntryType.NODE_DEREGISTER: node_appliers.node_deregister,
            e.EntryType.ALLOC_DESIRED_TRANSITION: alloc_appliers.alloc_desired_transition,
        }
        missing = set(e.EntryType) - set(self._appliers)
        if missing:
            raise RuntimeError(f"entry types without an applier: {sorted(missing)}")

    # --- the entry point ----------------------------------------------------------------

    def apply(self, index: int, blob: bytes) -> Result:
        if blob[:1] == bytes([e.EntryType.BATCH]):
            return self._apply_batch(index, blob)
        return self._apply_one(index, blob)

    def _apply_batch(self, index: int, blob: bytes) -> Result:
        """Each entry of a batch in order, at the batch's index; the answers in order."""
        try:
            _, batch = e.decode(blob)
        except Exception as exc:
            log.error("log entry %d (a batch) could not be decoded: %s", index, exc)
            return self._publish(Txn(self.state, index), {"Error": f"undecodable entry: {exc}",
                                                         "Code": 500})
        # The members are applied one after the other but published together: they
        # share one index, so a reader who saw part of the batch at that index would
        # never learn of the rest (a blocking query would not wake for it, and a
        # follower's worker that waited for the index planned on a state without a
        # plan committed in the same batch, placing its allocations twice).
        assert isinstance(batch, e.Batch)   # its first byte said so
        results = []
        self._staged, self._staged_touched, self._staged_written = self.state, set(), {}
        try:
            for sub in batch.Entries:
                if sub[:1] == bytes([e.EntryType.BATCH]):
                    results.append({"Error": "a batch may not hold a batch", "Code": 400,
                                    "Index": index})
                    continue
                results.append(self._apply_one(index, sub))
                if self.fatal:
                    break
        finally:
            staged, touched, written = self._staged, self._staged_touched, self._staged_written
            self._staged, self._staged_touched, self._staged_written = None, None, None
            self._set_state(staged, frozenset(touched), index, written)
        return {"Results": results, "Index": index}

    def _base(self) -> State:
        """The state the next entry applies to (a batch's staged one while in a batch)."""
        return self._staged if self._staged is not None else self.state

    def hold_decoded(self, blob: bytes, body: e.Request) -> None:
        """``blob`` is about to be submitted by this node, and ``body`` is the object it
        was just encoded from (``entries.encode``), equal to what decoding it gives:
        when this node applies that entry, it takes ``body`` instead of decoding the
        bytes again (~12 µs of a registration, on the raft thread). The submitter must
        not touch ``body`` afterwards. Only a shortcut: every other replica decodes the
        same bytes to an equal body, and a body never applied is dropped eventually."""
        held = self._held
        if len(held) >= HELD_LIMIT:
            held.clear()   # writes that never reached the log (no leader, a timeout)
        held[blob] = body

    def _apply_one(self, index: int, blob: bytes) -> Result:
        body = self._held.pop(blob, None) if self._held else None
        try:
            if body is not None:
                etype = e.entry_type(body)
            else:
                etype, body = e.decode(blob)
        except e.UnknownEntryType as exc:
            self.fatal = f"log entry {index}: {exc}"
            log.critical("%s; this server is older than the log and must be upgraded", self.fatal)
            return {"Error": str(exc), "Code": 500, "Index": index}
        except Exception as exc:  # undecodable body: nothing to apply
            log.error("log entry %d could not be decoded: %s", index, exc)
            return self._publish(Txn(self._base(), index), {"Error": f"undecodable entry: {exc}",
                                                         "Code": 500})
        if body.RequestID:
            seen = self._base().get(t.REQUESTS, body.RequestID)
            if seen is not None:
                return self._publish(Txn(self._base(), index), seen.Result)
        txn = Txn(self._base(), index)
        try:
            result = self._appliers[etype](txn, body)
        except Rejected as rej:
            txn = Txn(self._base(), index)
            result = {"Error": rej.message, "Code": rej.code}
        except Exception as exc:
            log.exception("applying log entry %d (%s) failed", index, etype.name)
            txn = Txn(self._base(), index)
            result = {"Error": f"internal error applying {etype.name}: {exc}", "Code": 500}
        result["Index"] = index
        if body.RequestID and etype != e.EntryType.NOOP:
            txn.put(t.REQUESTS, RequestResult(RequestID=body.RequestID, Index=index, Result=result))
        if index % _SWEEP_EVERY == 0:
            self._forget_old_requests(txn)
        return self._publish(txn, result)

    def restore(self, state: State) -> None:
        """Replace the whole state (snapshot install); wakes every blocking query."""
        self.state = state
        for listener in list(self.write_listeners):
            listener(None)
        if self.on_commit is not None:
            self.on_commit(frozenset(t.SCHEMA), state.last_index)

    def _publish(self, txn: Txn, result: Result) -> Result:
        result.setdefault("Index", txn.index)
        if self._staged is not None:            # in a batch: published at its end
            assert self._staged_touched is not None and self._staged_written is not None
            self._staged = txn.commit()
            self._staged_touched.update(txn.touched)
            for table, keys in txn.written.items():
                self._staged_written.setdefault(table, []).extend(keys)
            return result
        self._set_state(txn.commit(), txn.touched, txn.index, txn.written)
        return result

    def _set_state(self, state: State, touched: frozenset[str], index: int,
                   written: dict[str, list[Hashable]]) -> None:
        self.state = state
        if written:
            for listener in list(self.write_listeners):
                try:
                    listener(written)
                except Exception:
                    log.exception("write listener failed")
        if self.on_commit is not None:
            try:
                self.on_commit(touched, index)
            except Exception:
                log.exception("on_commit hook failed")

    def _forget_old_requests(self, txn: Txn) -> None:
        horizon = txn.index - REQUEST_WINDOW
        old = [r.RequestID for r in txn.rows_unordered(t.REQUESTS) if r.Index < horizon]
        for rid in sorted(old):
            txn.delete(t.REQUESTS, rid)
