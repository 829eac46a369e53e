"""The finite-state machine: apply one log entry to the state, deterministically.

``FSM.apply(index, blob)`` decodes the envelope, runs the applier for its type inside
one transaction, publishes the new state and returns the answer for the submitter.
It never raises: a request that the state refuses (a failed check-and-set, an unknown
job) comes back as ``{"Error", "Code"}`` and changes nothing, and an unexpected
exception is caught, logged and answered as an error, because an exception escaping a
pysyncobj replicated method wedges the whole cluster.
"""
from __future__ import annotations

import logging
from collections.abc import Callable

from msgspec.structs import replace

from caravan.fsm import allocs, deployments, gc, jobs, nodes, scaling
from caravan.fsm import entries as e
from caravan.fsm import schema as t
from caravan.fsm.jobs import Rejected
from caravan.fsm.store import State, Txn
from caravan.fsm.structs import LeaderEpoch, RequestResult

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
        self._staged_written: dict[str, list] | None = None
        # Called after each applied entry with (tables touched, index); the server uses
        # it to wake blocking queries. It must not raise and must be quick.
        self.on_commit: Callable[[frozenset[str], int], None] | None = None
        # Each is called after a published state with the keys it wrote in the tracked
        # tables (``Txn.written``: table -> keys), before ``on_commit``, or with None
        # when the whole state was replaced. The leader's broker feed and deployment
        # watcher use them. Same rules as ``on_commit``.
        self.write_listeners: list[Callable[[dict[str, list] | None], None]] = []
        # entry bytes -> the body they were encoded from (``hold_decoded``)
        self._held: dict[bytes, e.Request] = {}
        # Set when an entry of an unknown type arrives: this binary is older than the
        # log, and the node must stop rather than skip it.
        self.fatal: str | None = None
        self._appliers: dict[e.EntryType, Callable[[Txn, e.Request], dict]] = {
            e.EntryType.NOOP: self._noop,
            e.EntryType.JOB_REGISTER: self._job_register,
            e.EntryType.JOB_DEREGISTER: self._job_deregister,
            e.EntryType.JOB_STABILITY: self._job_stability,
            e.EntryType.JOB_REVERT: self._job_revert,
            e.EntryType.JOB_DISPATCH: self._job_dispatch,
            e.EntryType.PERIODIC_FORCE: self._periodic_force,
            e.EntryType.JOB_EVALUATE: self._job_evaluate,
            e.EntryType.NODE_REGISTER: self._node_register,
            e.EntryType.NODE_STATUS: self._node_status,
            e.EntryType.EVAL_UPDATE: self._eval_update,
            e.EntryType.PLAN_RESULTS: self._plan_results,
            e.EntryType.ALLOC_CLIENT_UPDATE: self._alloc_client_update,
            e.EntryType.DEPLOYMENT_STATUS_UPDATE: self._deployment_status,
            e.EntryType.DEPLOYMENT_PROMOTE: self._deployment_promote,
            e.EntryType.DEPLOYMENT_ALLOC_HEALTH: self._deployment_alloc_health,
            e.EntryType.PERIODIC_LAUNCH: self._periodic_launch,
            e.EntryType.BATCH: self._batch_inside,
            e.EntryType.LEADER_EPOCH: self._leader_epoch,
            e.EntryType.CORE_GC: self._core_gc,
            e.EntryType.JOB_SCALE: self._job_scale,
            e.EntryType.NODE_DRAIN: self._node_drain,
            e.EntryType.NODE_ELIGIBILITY: self._node_eligibility,
            e.EntryType.NODE_DEREGISTER: self._node_deregister,
            e.EntryType.ALLOC_DESIRED_TRANSITION: self._alloc_desired_transition,
        }
        missing = set(e.EntryType) - set(self._appliers)
        if missing:
            raise RuntimeError(f"entry types without an applier: {sorted(missing)}")

    # --- the entry point ----------------------------------------------------------------

    def apply(self, index: int, blob: bytes) -> dict:
        if blob[:1] == bytes([e.EntryType.BATCH]):
            return self._apply_batch(index, blob)
        return self._apply_one(index, blob)

    def _apply_batch(self, index: int, blob: bytes) -> dict:
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

    def _apply_one(self, index: int, blob: bytes) -> dict:
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

    def _publish(self, txn: Txn, result: dict) -> dict:
        result.setdefault("Index", txn.index)
        if self._staged is not None:            # in a batch: published at its end
            self._staged = txn.commit()
            self._staged_touched.update(txn.touched)
            for table, keys in txn.written.items():
                self._staged_written.setdefault(table, []).extend(keys)
            return result
        self._set_state(txn.commit(), txn.touched, txn.index, txn.written)
        return result

    def _set_state(self, state: State, touched: frozenset[str], index: int,
                   written: dict[str, list]) -> None:
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

    # --- appliers -------------------------------------------------------------------------

    def _noop(self, txn: Txn, body: e.Noop) -> dict:
        return {}

    def _batch_inside(self, txn: Txn, body: e.Batch) -> dict:
        raise Rejected(400, "a batch may not hold a batch")   # apply() unpacks batches

    def _job_register(self, txn: Txn, body: e.JobRegister) -> dict:
        job = body.Job
        existing = txn.get(t.JOBS, job.ID)
        if body.EnforceIndex:
            _enforce_index(existing, body.JobModifyIndex)
        if existing is not None and body.PreserveCounts:
            counts = {tg.Name: tg.Count for tg in existing.TaskGroups or ()}
            job = replace(job, TaskGroups=[
                replace(tg, Count=counts[tg.Name]) if tg.Name in counts else tg
                for tg in job.TaskGroups or ()])
        return self._register(txn, job, existing, body.Eval, body.SubmitTime)

    def _register(self, txn: Txn, job, existing, ev, submit_time: int) -> dict:
        """Shared by register, revert, dispatch and periodic launches: write a new
        version if the spec changed, then the eval (if any) in the same transaction."""
        job = scaling.with_policy_ids(job, existing, txn.index)
        if existing is None or jobs.spec_changed(existing, job):
            stored = jobs.upsert_job(txn, replace(job, SubmitTime=submit_time or job.SubmitTime),
                                     tracked_versions=self.tracked_versions)
        else:
            stored = existing
        result = {"JobModifyIndex": stored.JobModifyIndex, "EvalID": "", "EvalCreateIndex": 0,
                  "JobCreateIndex": stored.CreateIndex}
        if ev is not None:
            ev = jobs.insert_eval(txn, replace(ev, JobModifyIndex=stored.JobModifyIndex))
            jobs.refresh_status(txn, stored.ID)
            result.update(EvalID=ev.ID, EvalCreateIndex=ev.CreateIndex)
        if stored.is_periodic_active() and (existing is None or not existing.is_periodic_active()
                                            or existing.Periodic != stored.Periodic):
            # A parent that starts, resumes or changes its schedule counts from its
            # submission (as Nomad's dispatcher re-adds it): earlier slots are never
            # caught up by a new leader.
            jobs.record_launch(txn, stored.ID, submit_time)
        return result

    def _job_deregister(self, txn: Txn, body: e.JobDeregister) -> dict:
        job = txn.get(t.JOBS, body.JobID)
        if job is None:
            # Nomad 1.x: deregistering an unknown job succeeds and creates nothing.
            return {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": 0}
        if body.Purge:
            jobs.purge_job(txn, job)
            modify_index = txn.index
        elif not job.Stop:
            modify_index = jobs.upsert_job(
                txn, replace(job, Stop=True, SubmitTime=body.SubmitTime or job.SubmitTime),
                tracked_versions=self.tracked_versions).JobModifyIndex
        else:
            modify_index = job.JobModifyIndex
        result = {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": modify_index}
        # Periodic and parameterized parents are never evaluated themselves.
        if body.Eval is not None and not job.is_periodic() and not job.is_parameterized():
            ev = jobs.insert_eval(txn, replace(body.Eval, JobModifyIndex=modify_index))
            jobs.refresh_status(txn, job.ID)
            result.update(EvalID=ev.ID, EvalCreateIndex=ev.CreateIndex)
        return result

    def _job_stability(self, txn: Txn, body: e.JobStability) -> dict:
        if txn.get(t.JOBS, body.JobID) is None:
            raise Rejected(404, "job not found")
        job = jobs.set_stability(txn, body.JobID, body.JobVersion, body.Stable)
        return {"JobModifyIndex": job.JobModifyIndex if job else 0}

    def _job_revert(self, txn: Txn, body: e.JobRevert) -> dict:
        current = txn.get(t.JOBS, body.JobID)
        if current is None:
            raise Rejected(404, f'job "{body.JobID}" not found')
        if body.EnforcePriorVersion is not None and body.EnforcePriorVersion != current.Version:
            raise Rejected(409, f"Current job has version {current.Version}; enforcing version "
                                f"{body.EnforcePriorVersion}")
        if body.JobVersion == current.Version:
            raise Rejected(400, "can't revert to current version")
        target = txn.get(t.JOB_VERSIONS, (body.JobID, body.JobVersion))
        if target is None:
            raise Rejected(404, f'job "{body.JobID}" at version {body.JobVersion} not found')
        ev = body.Eval if not target.is_periodic() and not target.is_parameterized() else None
        return self._register(txn, target, current, ev, body.SubmitTime)

    def _job_dispatch(self, txn: Txn, body: e.JobDispatch) -> dict:
        parent = txn.get(t.JOBS, body.ParentID)
        rej = jobs.dispatch_rejection(parent, body.ParentID, body.Meta, body.Payload)
        if rej is not None:
            raise rej
        if body.IdempotencyToken:
            for child in txn.by_index(t.JOBS, "parent", parent.ID):
                if child.Dispatched and child.DispatchIdempotencyToken == body.IdempotencyToken:
                    return {"DispatchedJobID": child.ID, "EvalID": "", "EvalCreateIndex": 0,
                            "JobCreateIndex": child.CreateIndex}
        child = jobs.dispatch_child(parent, body.DispatchedJobID, body.Meta, body.Payload,
                                    body.IdempotencyToken, body.SubmitTime)
        ev = body.Eval if not child.is_periodic() else None
        result = self._register(txn, child, txn.get(t.JOBS, child.ID), ev, body.SubmitTime)
        result["DispatchedJobID"] = child.ID
        return result

    def _periodic_force(self, txn: Txn, body: e.PeriodicForce) -> dict:
        parent = txn.get(t.JOBS, body.ParentID)
        if parent is None:
            raise Rejected(404, "job not found")
        if not parent.is_periodic():
            raise Rejected(400, "can't force launch non-periodic job")
        if not parent.is_periodic_active():
            raise Rejected(400, f'force launch for job "{parent.ID}" failed: can\'t force run '
                                f"non-tracked job {parent.ID}")
        child = jobs.periodic_child(parent, body.LaunchTime)
        ev = replace(body.Eval, JobID=child.ID) if body.Eval is not None else None
        result = self._register(txn, child, txn.get(t.JOBS, child.ID), ev, body.LaunchTime)
        jobs.record_launch(txn, parent.ID, body.LaunchTime)
        result["DispatchedJobID"] = child.ID
        return result

    def _periodic_launch(self, txn: Txn, body: e.PeriodicLaunch) -> dict:
        parent = txn.get(t.JOBS, body.ParentID)
        if parent is None:
            raise Rejected(404, "job not found")
        if not parent.is_periodic_active():
            raise Rejected(400, f'job "{parent.ID}" is not tracked by the periodic dispatcher')
        last = txn.get(t.PERIODIC_LAUNCHES, parent.ID)
        if last is not None and body.LaunchTime <= last.Launch:
            # another leader (or a retry) already launched this slot or a later one
            raise Rejected(409, f"periodic launch at {body.LaunchTime} is not after the last "
                                f"launch at {last.Launch}")
        jobs.record_launch(txn, parent.ID, body.LaunchTime)
        result = {"DispatchedJobID": "", "EvalID": "", "EvalCreateIndex": 0, "Skipped": ""}
        if parent.Periodic.ProhibitOverlap:
            busy = jobs.unfinished_children(txn, parent.ID)
            if busy:
                result["Skipped"] = f'child "{busy[0].ID}" is still {busy[0].Status}'
                return result
        child = jobs.periodic_child(parent, body.LaunchTime)
        ev = replace(body.Eval, JobID=child.ID) if body.Eval is not None else None
        result.update(self._register(txn, child, txn.get(t.JOBS, child.ID), ev,
                                     body.SubmitTime or body.LaunchTime))
        result["DispatchedJobID"] = child.ID
        return result

    def _job_evaluate(self, txn: Txn, body: e.JobEvaluate) -> dict:
        job = txn.get(t.JOBS, body.JobID)
        if job is None:
            raise Rejected(404, "job not found")
        if job.is_periodic():
            raise Rejected(400, "can't evaluate periodic job")
        if job.is_parameterized():
            raise Rejected(400, "can't evaluate parameterized job")
        # Nomad quirk kept for compatibility: the eval's JobModifyIndex is the job's
        # ModifyIndex.
        if body.ForceReschedule:
            allocs.force_reschedule(txn, job)
        ev = jobs.insert_eval(txn, replace(body.Eval, JobModifyIndex=job.ModifyIndex))
        jobs.refresh_status(txn, job.ID)
        return {"EvalID": ev.ID, "EvalCreateIndex": ev.CreateIndex,
                "JobModifyIndex": job.JobModifyIndex}

    def _job_scale(self, txn: Txn, body: e.JobScale) -> dict:
        """Nomad's ``Job.Scale``, in one entry: the checks, a new job version with the
        group's new count and its eval, and the scaling event."""
        job = txn.get(t.JOBS, body.JobID)
        if job is None:
            raise Rejected(404, f'job "{body.JobID}" not found')
        if job.Type == "system" and body.Count is not None and body.Count > 1:
            raise Rejected(400, 'jobs of type "system" can only be scaled to 1 or 0')
        group = next((tg for tg in job.TaskGroups or () if tg.Name == body.Group), None)
        if group is None:
            raise Rejected(400, f'task group "{body.Group}" specified for scaling does not '
                                f'exist in job')
        event = replace(body.Event, PreviousCount=group.Count or 0, Count=body.Count,
                        EvalID=None)
        result = {"EvalID": "", "EvalCreateIndex": 0, "JobModifyIndex": job.ModifyIndex}
        if body.Count is not None:
            policy = group.Scaling
            if policy is not None:
                low, high = policy.Min or 0, policy.Max if policy.Max is not None else 0
                if body.Count < low:
                    raise Rejected(400, f"group count was less than scaling policy minimum: "
                                        f"{body.Count} < {low}")
                if high < body.Count:
                    raise Rejected(400, f"group count was greater than scaling policy maximum: "
                                        f"{body.Count} > {high}")
            latest = max(txn.by_index(t.DEPLOYMENTS, "job", job.ID),
                         key=lambda d: (d.CreateIndex, d.ID), default=None)
            if latest is not None and latest.active() and latest.JobCreateIndex == job.CreateIndex:
                raise Rejected(400, "job scaling blocked due to active deployment")
            if body.JobModifyIndex > 0 and body.JobModifyIndex != job.JobModifyIndex:
                raise Rejected(409, f"Enforcing job modify index {body.JobModifyIndex}: job "
                                    f"exists with conflicting job modify index: "
                                    f"{job.JobModifyIndex}")
            scaled = replace(job, SubmitTime=body.SubmitTime or job.SubmitTime, TaskGroups=[
                replace(tg, Count=body.Count) if tg.Name == body.Group else tg
                for tg in job.TaskGroups or ()])
            stored = jobs.upsert_job(txn, scaled, tracked_versions=self.tracked_versions)
            result["JobModifyIndex"] = stored.JobModifyIndex
            if body.Eval is not None and not job.is_periodic() and not job.is_parameterized():
                ev = jobs.insert_eval(txn, replace(body.Eval, JobModifyIndex=stored.JobModifyIndex))
                jobs.refresh_status(txn, job.ID)
                result.update(EvalID=ev.ID, EvalCreateIndex=ev.CreateIndex)
                event = replace(event, EvalID=ev.ID)
        scaling.add_event(txn, job, body.Group, event)
        return result

    def _alloc_desired_transition(self, txn: Txn, body: e.AllocDesiredTransition) -> dict:
        allocs.set_desired_transitions(txn, body.Allocs)
        if body.Evals:
            allocs.upsert_evals(txn, body.Evals)
        return {"EvalIDs": [ev.ID for ev in body.Evals or ()]}

    def _node_register(self, txn: Txn, body: e.NodeRegister) -> dict:
        node = allocs.register_node(txn, body.Node)
        if body.Evals:
            allocs.upsert_evals(txn, [replace(ev, NodeModifyIndex=node.ModifyIndex)
                                      for ev in body.Evals])
        return {"NodeModifyIndex": node.ModifyIndex,
                "EvalIDs": [ev.ID for ev in body.Evals or ()]}

    def _node_status(self, txn: Txn, body: e.NodeStatus) -> dict:
        node = allocs.set_node_status(txn, body.NodeID, body.Status, body.UpdatedAt)
        if body.Evals:
            allocs.upsert_evals(txn, [replace(ev, NodeModifyIndex=node.ModifyIndex)
                                      for ev in body.Evals])
        return {"NodeModifyIndex": node.ModifyIndex,
                "EvalIDs": [ev.ID for ev in body.Evals or ()]}

    def _node_drain(self, txn: Txn, body: e.NodeDrain) -> dict:
        node = nodes.update_drain(txn, body.NodeID, body.DrainStrategy, body.MarkEligible,
                                  body.Meta, body.Now, body.Completed, body.StartedAt,
                                  body.EventDetails)
        return self._node_evals(txn, node, body.Evals)

    def _node_eligibility(self, txn: Txn, body: e.NodeEligibility) -> dict:
        before = txn.get(t.NODES, body.NodeID)
        node = nodes.update_eligibility(txn, body.NodeID, body.Eligibility, body.Now)
        # evals only for a node that became eligible (the submitter's view may be stale)
        becomes_eligible = before is not None and before.SchedulingEligibility != "eligible" \
            and node.SchedulingEligibility == "eligible"
        return self._node_evals(txn, node, body.Evals if becomes_eligible else None)

    def _node_deregister(self, txn: Txn, body: e.NodeDeregister) -> dict:
        nodes.deregister(txn, body.NodeID)
        return self._node_evals(txn, None, body.Evals)

    def _node_evals(self, txn: Txn, node, evals) -> dict:
        """Nomad's node update answer: the node's new ModifyIndex and the evals made."""
        if evals:
            allocs.upsert_evals(txn, [replace(ev, NodeModifyIndex=txn.index) for ev in evals])
        return {"NodeModifyIndex": node.ModifyIndex if node is not None else txn.index,
                "EvalIDs": [ev.ID for ev in evals or ()],
                "EvalCreateIndex": txn.index if evals else 0}

    def _eval_update(self, txn: Txn, body: e.EvalUpdate) -> dict:
        allocs.upsert_evals(txn, body.Evals)
        return {}

    def _leader_epoch(self, txn: Txn, body: e.LeaderEpochStart) -> dict:
        old = txn.get(t.LEADERSHIP, "leader")
        txn.put(t.LEADERSHIP, LeaderEpoch(Index=txn.index, ModifyIndex=txn.index,
                                          CreateIndex=old.CreateIndex if old else txn.index))
        return {"Epoch": txn.index}

    def _core_gc(self, txn: Txn, body: e.CoreGC) -> dict:
        return gc.collect(txn, body)

    def _plan_results(self, txn: Txn, body: e.PlanResults) -> dict:
        # A deposed leader's applier may still have a plan in flight (the submit retries
        # across leader changes); it was checked against that leader's state, not the
        # new leader's, so it must not land after the new leader began.
        current = txn.get(t.LEADERSHIP, "leader")
        if body.Epoch and current is not None and body.Epoch < current.Index:
            raise Rejected(409, f"plan from an earlier leadership (epoch {body.Epoch}, "
                                f"current {current.Index}) refused")
        allocs.apply_plan(txn, body.JobID, body.JobVersion, body.Allocs or [],
                          body.Stops or [], body.Evals or [], body.Deployment,
                          body.DeploymentUpdates or (), body.Preemptions or (),
                          body.FollowupEvals or (), body.AllocFollowups or {})
        return {"AllocIndex": txn.index}

    def _alloc_client_update(self, txn: Txn, body: e.AllocClientUpdate) -> dict:
        allocs.client_update(txn, body.Updates)
        if body.Evals:
            allocs.upsert_evals(txn, body.Evals)
        return {}

    # --- deployments ------------------------------------------------------------------------

    def _deployment_status(self, txn: Txn, body: e.DeploymentStatusChange) -> dict:
        u = body.DeploymentUpdate
        d = deployments.set_status(txn, u.DeploymentID, u.Status, u.StatusDescription)
        return self._deployment_followup(txn, d, body.RevertToVersion, body.Eval,
                                         body.SubmitTime)

    def _deployment_promote(self, txn: Txn, body: e.DeploymentPromote) -> dict:
        d = deployments.promote(txn, body.DeploymentID, body.All, body.Groups, body.Now)
        return self._deployment_followup(txn, d, None, body.Eval, 0)

    def _deployment_alloc_health(self, txn: Txn, body: e.DeploymentAllocHealth) -> dict:
        d = deployments.set_alloc_health(txn, body.DeploymentID, body.HealthyAllocationIDs or [],
                                         body.UnhealthyAllocationIDs or [], body.Timestamp)
        u = body.DeploymentUpdate
        if u is not None:
            d = deployments.set_status(txn, u.DeploymentID, u.Status, u.StatusDescription)
        return self._deployment_followup(txn, d, body.RevertToVersion, body.Eval,
                                         body.SubmitTime)

    def _deployment_followup(self, txn: Txn, d, revert_to: int | None, ev,
                             submit_time: int) -> dict:
        """After a deployment change: register the stable version again (auto-revert),
        which carries the eval, or else just insert the eval. Answers Nomad's
        DeploymentUpdateResponse."""
        result = {"EvalID": "", "EvalCreateIndex": 0, "DeploymentModifyIndex": d.ModifyIndex,
                  "RevertedJobVersion": None}
        current = txn.get(t.JOBS, d.JobID)
        target = txn.get(t.JOB_VERSIONS, (d.JobID, revert_to)) if revert_to is not None else None
        if target is not None and current is not None:
            reg = self._register(txn, target, current, ev, submit_time)
            result.update(EvalID=reg["EvalID"], EvalCreateIndex=reg["EvalCreateIndex"],
                          RevertedJobVersion=revert_to)
        elif ev is not None and current is not None:
            ev = jobs.insert_eval(txn, replace(ev, JobModifyIndex=current.JobModifyIndex))
            jobs.refresh_status(txn, current.ID)
            result.update(EvalID=ev.ID, EvalCreateIndex=ev.CreateIndex)
        return result


def _enforce_index(existing, want: int) -> None:
    prefix = f"Enforcing job modify index {want}"
    if existing is None:
        if want != 0:
            raise Rejected(409, f"{prefix}: job does not exist")
    elif want == 0:
        raise Rejected(409, f"{prefix}: job already exists")
    elif existing.JobModifyIndex != want:
        raise Rejected(409, f"{prefix}: job exists with conflicting job modify index: "
                            f"{existing.JobModifyIndex}")
