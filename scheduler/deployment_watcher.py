"""The deployment watcher: the leader's eye on running deployments.

Pure decisions first (``decide``), then the leader-only service that acts on them.
For each active deployment, from the state alone:

- an unhealthy allocation fails it (``Failed due to unhealthy allocations``) when its
  group has no progress deadline or its reschedule policy cannot replace it
  (Nomad's ``shouldFailEarly``); otherwise the deployment allows its replacement
  (``DesiredTransition.Reschedule``, with an eval) and waits for progress. A group
  that made no progress by its ``RequireProgressBy`` fails it too; with
  ``AutoRevert`` the same entry registers the newest stable job version again, as a
  new version;
- with ``AutoPromote`` on every canary group, it is promoted once all its canaries are
  placed and healthy;
- an allocation whose health changed after the job's latest evaluation gets a new
  evaluation, so the scheduler places the next ``MaxParallel`` batch, or marks the
  deployment successful when all are healthy.

The service keeps nothing the state lacks (per-deployment caches only save work), so a
new leader takes over where the old one stopped: it looks at every active deployment
when it starts.
"""
from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass

from caravan.fsm import deployments as dep
from caravan.fsm import entries as e
from caravan.fsm import jobs
from caravan.fsm import reschedule as rs
from caravan.fsm import schema as t
from caravan.fsm.store import State, TableState
from caravan.fsm.structs import Deployment, DeploymentState, DesiredTransition, Evaluation, Job
from caravan.fsm.submit import EntryRejected, Submit
from caravan.fsm.times import parse_rfc3339
from caravan.scheduler.background import AnyCommits, LeaderLoop, WriteListener, WrittenKeys, run_passes

log = logging.getLogger("caravan.deployments")

TRIGGER = "deployment-watcher"
MIN_PASS_INTERVAL = 0.05     # seconds: coalesce bursts of health reports into one pass
SCAN_BACKOFF = 20            # and wait at least this many times what the last scan took
MAX_PASS_INTERVAL = 1.0      # look again at least this often (progress deadlines)
_NO_CUTOFF = 2 ** 63


@dataclass(frozen=True)
class Action:
    kind: str                       # "fail", "promote", "eval" or "allow"
    description: str = ""
    revert_to: int | None = None
    allocs: tuple[str, ...] = ()    # "allow": failed allocs that may be replaced


# --- decisions (pure) ------------------------------------------------------------------------


def failure(state: State, d: Deployment, base: str, groups: list[str]) -> tuple[str, int | None]:
    """The failed deployment's description and the job version to revert to (None:
    no revert). Only groups with AutoRevert revert; the target is the newest stable
    version, unless the current job already has its specification."""
    states = d.TaskGroups or {}
    if not any(states[g].AutoRevert for g in groups if g in states):
        return base, None
    stable = max((v for v in state.by_index(t.JOB_VERSIONS, t.BY_JOB, d.JobID) if v.Stable),
                 key=lambda v: v.Version, default=None)
    if stable is None:
        return dep.desc_no_rollback_target(base), None
    current = state.get(t.JOBS, d.JobID)
    if current is not None and not jobs.spec_changed(current, stable):
        return dep.desc_rollback_noop(base, stable.Version), None
    return dep.desc_rollback(base, stable.Version), stable.Version


def _group_done(state: DeploymentState) -> bool:
    return not (state.DesiredCanaries > 0 and not state.Promoted) and \
        state.HealthyAllocs >= state.DesiredTotal


def progress_cutoff(d: Deployment) -> int:
    """The earliest RequireProgressBy (unix ns) of a group still in progress; 0: none."""
    cutoffs = [parse_rfc3339(s.RequireProgressBy) for s in (d.TaskGroups or {}).values()
               if not _group_done(s)]
    return min((c for c in cutoffs if c > 0), default=0)


def _healthy(state: State, alloc_id: str) -> bool:
    alloc = state.get(t.ALLOCS, alloc_id)
    return alloc is not None and alloc.DeploymentStatus is not None and \
        alloc.DeploymentStatus.Healthy is True


def ready_to_auto_promote(state: State, d: Deployment) -> bool:
    if not d.requires_promotion() or not d.has_auto_promote():
        return False
    for s in (d.TaskGroups or {}).values():
        if s.DesiredCanaries > 0 and not s.Promoted:
            placed = s.PlacedCanaries or []
            if len(placed) != s.DesiredCanaries or not all(_healthy(state, a) for a in placed):
                return False
    return True


def latest_eval_index(state: State, job_id: str) -> int:
    """What the scheduler last looked at for the job (Nomad's ``latestEvalIndex``)."""
    return max((ev.SnapshotIndex or ev.CreateIndex
                for ev in state.by_index(t.EVALS, t.BY_JOB, job_id)), default=0)


def health_changed_since_eval(state: State, d: Deployment) -> bool:
    since = latest_eval_index(state, d.JobID)
    return any(a.DeploymentStatus is not None and a.DeploymentStatus.ModifyIndex > since
               for a in state.by_index(t.ALLOCS, t.BY_DEPLOYMENT, d.ID))


def unhealthy_allocs(state: State, d: Deployment, now_ns: int) -> tuple[list[str], list[str]]:
    """(groups that fail the deployment, unhealthy allocs whose replacement it allows):
    an unhealthy alloc fails its group when the group has no progress deadline or its
    reschedule policy cannot replace it; else it may be replaced, once."""
    job = state.get(t.JOBS, d.JobID)
    groups = {tg.Name: tg for tg in (job.TaskGroups or ())} if job is not None else {}
    failing, allow = set(), []
    for alloc in sorted(state.by_index(t.ALLOCS, t.BY_DEPLOYMENT, d.ID), key=lambda a: a.ID):
        status = alloc.DeploymentStatus
        dstate = (d.TaskGroups or {}).get(alloc.TaskGroup)
        if status is None or status.Healthy is not False or dstate is None:
            continue
        policy = rs.group_policy(groups.get(alloc.TaskGroup))
        if not dstate.ProgressDeadline or not rs.eligible(alloc, policy, now_ns):
            failing.add(alloc.TaskGroup)
        elif not alloc.should_reschedule():
            allow.append(alloc.ID)
    return sorted(failing), allow


def decide(state: State, d: Deployment, now_ns: int) -> Action | None:
    if not d.active():
        return None
    if any(s.UnhealthyAllocs > 0 for s in (d.TaskGroups or {}).values()):
        failing, allow = unhealthy_allocs(state, d, now_ns)
        if failing:
            return Action("fail", *failure(state, d, dep.DESC_FAILED_ALLOCS, failing))
        if allow:
            return Action("allow", allocs=tuple(allow))
    if d.Status != "running":
        return None
    cutoff = progress_cutoff(d)
    if cutoff and now_ns > cutoff:
        return Action("fail", *failure(state, d, dep.DESC_PROGRESS_DEADLINE,
                                       sorted(d.TaskGroups or {})))
    if ready_to_auto_promote(state, d):
        return Action("promote")
    if health_changed_since_eval(state, d):
        return Action("eval")
    return None


def deployment_eval(job: Job | None, d: Deployment, eval_id: str, now_ns: int) -> Evaluation:
    """The evaluation a deployment change asks the scheduler for."""
    return Evaluation(ID=eval_id, Namespace=d.Namespace, Priority=(job.Priority if job else 0) or 50,
                      Type=(job.Type if job else "") or "service", TriggeredBy=TRIGGER,
                      JobID=d.JobID, DeploymentID=d.ID, Status="pending",
                      CreateTime=now_ns, ModifyTime=now_ns)


def entry_for(state: State, d: Deployment, action: Action, eval_id: str, now_ns: int
              ) -> e.Request:
    ev = deployment_eval(state.get(t.JOBS, d.JobID), d, eval_id, now_ns)
    if action.kind == "fail":
        return e.DeploymentStatusChange(
            DeploymentUpdate=e.DeploymentStatusUpdate(
                DeploymentID=d.ID, Status="failed", StatusDescription=action.description),
            RevertToVersion=action.revert_to, Eval=ev, SubmitTime=now_ns)
    if action.kind == "allow":
        return e.AllocDesiredTransition(
            Evals=[ev],
            Allocs={a: DesiredTransition(Reschedule=True) for a in action.allocs})
    if action.kind == "promote":
        return e.DeploymentPromote(DeploymentID=d.ID, All=True, Eval=ev,
                                   Now=now_ns)
    return e.EvalUpdate(Evals=[ev])


# --- the leader-only service ---------------------------------------------------------------------


class DeploymentWatcher(LeaderLoop):
    """Started and stopped with leadership (``LeaderServices.add``)."""

    def __init__(self, state: Callable[[], State], submit: Submit,
                 notifier: Callable[[], AnyCommits], now_ns: Callable[[], int],
                 new_id: Callable[[], str], write_listeners: list[WriteListener]):
        self._state = state
        # after the first pass, a pass looks only at the deployments written since the
        # last one (``FSM.write_listeners``); after a restore, at every active one
        self._listeners = write_listeners
        self._written: WrittenKeys[str] | None = None
        self._submit = submit
        self._notifier = notifier
        self._now_ns = now_ns
        self._new_id = new_id
        # deployment id -> (ModifyIndex looked at, its progress cutoff then)
        self._seen: dict[str, tuple[int, int]] = {}
        # the deployments table as of the last full look, and the earliest progress
        # cutoff then pending: while both still hold, a pass has nothing to look at
        self._looked_at: TableState | None = None
        self._next_cutoff = 0
        self._scan_s = 0.0           # how long the last scan of the active ones took
        self.actions = 0

    def _reset(self) -> None:
        self._seen.clear()
        self._looked_at = None

    async def _run(self) -> None:
        # A full pass looks at every active deployment; with thousands of them (each
        # new service job has one) passes are rationed.
        with WrittenKeys[str](self._listeners, t.DEPLOYMENTS) as self._written:
            await run_passes(self._notifier, (t.DEPLOYMENTS, t.EVALS), self.run_once, log=log,
                             what="deployment watcher", max_interval=MAX_PASS_INTERVAL,
                             pause=lambda: max(MIN_PASS_INTERVAL, SCAN_BACKOFF * self._scan_s))

    async def run_once(self) -> None:
        """Look at every active deployment that changed since the last look, or whose
        progress deadline has passed, and act on what ``decide`` says."""
        assert self._written is not None, "a pass runs inside _run"
        written = self._written.take()   # before the state: it has every one they name
        state = self._state()
        now = self._now_ns()
        table = state.table_version(t.DEPLOYMENTS)
        if not written and table is self._looked_at and now <= self._next_cutoff:
            return   # no deployment changed and no deadline passed (a table is immutable)
        looked_at: TableState | None = table
        started = self._now_ns()   # the injected clock: virtual in the simulation
        active = state.index_members(t.DEPLOYMENTS, t.ACTIVE, True)
        changed, next_cutoff = [], _NO_CUTOFF
        if self._looked_at is None or None in written or now > self._next_cutoff:
            # everything: the first pass, after a restore, or when a deadline passed
            if len(self._seen) > len(active):
                for gone in [k for k in self._seen if k not in active]:
                    del self._seen[gone]
            for pk in active:   # unordered (cheap); what changed is handled in ID order below
                d = table.rows[pk]
                seen = self._seen.get(pk)
                if seen is None or seen[0] != d.ModifyIndex or (seen[1] and now > seen[1]):
                    changed.append(d)
                elif seen[1]:
                    next_cutoff = min(next_cutoff, seen[1])
        else:
            # only what was written since the last pass; the earliest deadline stands
            # (one that no longer applies costs a full pass when it comes, no more)
            next_cutoff = self._next_cutoff
            for pk in dict.fromkeys(k for k in written if k is not None):   # (no None here)
                if pk not in active:
                    self._seen.pop(pk, None)
                    continue
                d = table.rows[pk]
                seen = self._seen.get(pk)
                if seen is None or seen[0] != d.ModifyIndex:
                    changed.append(d)
        self._scan_s = max(0, self._now_ns() - started) / 1e9
        for d in sorted(changed, key=lambda d: d.ID):
            action = decide(state, d, now)
            cutoff = progress_cutoff(d) if d.Status == "running" else 0
            self._seen[d.ID] = (d.ModifyIndex, cutoff)
            if cutoff:
                next_cutoff = min(next_cutoff, cutoff)
            if action is None:
                continue
            body = entry_for(state, d, action, self._new_id(), now)
            try:
                await self._submit(body)
            except EntryRejected as rej:   # e.g. an operator finished it meanwhile
                self.actions += 1
                log.info("deployment %s: %s refused: %s", d.ID, action.kind, rej.message)
                self._seen.pop(d.ID, None)
                looked_at = None   # look at it again next pass
            else:
                self.actions += 1
                log.info("deployment %s: %s %s", d.ID, action.kind, action.description)
        self._looked_at, self._next_cutoff = looked_at, next_cutoff
