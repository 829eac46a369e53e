"""The reconciler: what must change so that a job's allocations match its spec.

Pure (style item 8): a function of (job, allocations, tainted nodes, now) that reads no
store or clock, draws no random numbers and mutates no input. It says *what* to place,
stop and update; the placement stack says *where*, and the worker makes the plan.
Follows Nomad 1.x ``scheduler/reconcile.go``; the deployment rules (create, cancel,
canaries, pacing by health, success) live in ``reconcile_deploy``, the reschedule
policy arithmetic in ``fsm.reschedule``, the result types in ``reconcile_results``, the
in-place/destructive choice in ``task_updates`` and system jobs in ``reconcile_system``.
Per task group:

- terminal allocs are dropped, except completed batch allocs, which keep their name
  and count toward ``Count`` (never re-run), and failed allocs still meant to run and
  not yet replaced (``filterByRescheduleable``): one due now (its next reschedule time
  within a second of ``now_ns``, its follow-up eval running, or forced) is replaced
  under its name (``reschedule``, its node penalized) and stopped
  (``ALLOC_RESCHEDULED``); one due later keeps its name and gets a follow-up eval at
  that time (``followups``, batched per 5 s); one whose policy is exhausted keeps its
  name and stays failed. Inside an active deployment a failed alloc waits until the
  deployment allows its replacement (``DesiredTransition.Reschedule``);
- allocs on a down or deleted node are **lost**: stopped with ClientStatus ``lost`` and
  replaced under their own name (``previous_alloc_id``), up to ``Count``;
- allocs marked ``DesiredTransition.Migrate`` (by the node drainer, or ``alloc
  stop``) are **migrated**: stopped and replaced, all at once (the drainer paces
  them); unmarked ones on a draining node stay;
- beyond ``Count``, the highest indexes are stopped; the rest are compared with the job:
  ignore, in-place update or destructive update.

``Update.MaxParallel`` paces destructive updates, placements using up the
same budget; under a deployment, allocations of it not yet healthy use it up too, and
nothing is replaced while it is paused, failed or waiting for promotion. The rest is
reported as Ignore and ``followup`` asks for another pass.
``desired_tg_updates`` are the plan annotations: a destructive update counts only as
DestructiveUpdate, a migration only as Migrate, a lost alloc as a Stop plus a Place.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from caravan.fsm import reschedule as rs
from caravan.fsm.structs import Allocation, Deployment, Job, Node, TaskGroup
from caravan.scheduler import reconcile_deploy as rd
from caravan.scheduler.names import NameIndex, by_index, removal_order
from caravan.scheduler.reconcile_results import (
    ALLOC_LOST,
    ALLOC_MIGRATING,
    ALLOC_NOT_NEEDED,
    ALLOC_RESCHEDULED,
    DesiredUpdates,
    Followup,
    PlaceRequest,
    ReconcileResult,
    StopRequest,
    UpdateRequest,
)
from caravan.scheduler.task_updates import DESTRUCTIVE, IGNORE, INPLACE, classify_update, group_of

RESCHEDULE_WINDOW_NS = 1_000_000_000          # due within this: rescheduled now
FOLLOWUP_BATCH_WINDOW_NS = 5_000_000_000      # failures this close share a follow-up eval


def node_lost(node_id: str, tainted: dict[str, Node | None]) -> bool:
    """Lost: the node is gone (None) or down. Other tainted nodes are being drained."""
    if node_id not in tainted:
        return False
    node = tainted[node_id]
    return node is None or node.Status == "down"


def _migrating(alloc: Allocation, tainted: dict[str, Node | None]) -> bool:
    """Marked for migration by the drainer (Nomad's filterByTainted: a marked alloc
    migrates wherever it runs, unless its node is lost)."""
    return alloc.should_migrate() and not node_lost(alloc.NodeID, tainted)


def lost_stops(existing: list[Allocation], tainted: dict[str, Node | None]) -> list[StopRequest]:
    """Allocs already told to stop, whose down node can no longer report them finished."""
    return [StopRequest(a, ALLOC_LOST, "lost") for a in sorted(existing, key=by_index)
            if a.DesiredStatus in ("stop", "evict") and a.ClientStatus in ("pending", "running")
            and node_lost(a.NodeID, tainted)]


def stop_alloc(result: ReconcileResult, alloc: Allocation, tainted: dict[str, Node | None],
          description: str = ALLOC_NOT_NEEDED) -> None:
    """Stop an alloc; one on a down node is lost whatever the reason for stopping it."""
    lost = node_lost(alloc.NodeID, tainted)
    result.stop.append(StopRequest(alloc, ALLOC_LOST, "lost") if lost else StopRequest(alloc, description))


def group_names(job: Job | None, existing: list[Allocation]) -> list[str]:
    """The job's groups in job order (reported even when empty, as Nomad's alloc
    matrix does), then groups only old allocations still belong to."""
    names = [tg.Name or "" for tg in (job.TaskGroups or [])] if job is not None else []
    return names + sorted({a.TaskGroup for a in existing} - set(names))


def classify_existing(result: ReconcileResult, updates: DesiredUpdates, job: Job, group: str,
              allocs: list[Allocation]) -> list[Allocation]:
    """Record ignored and in-place allocs; return the destructive ones, in name order."""
    buckets: dict[str, list[Allocation]] = {IGNORE: [], INPLACE: [], DESTRUCTIVE: []}
    for alloc in allocs:
        buckets[classify_update(alloc, job, group)].append(alloc)
    result.ignore.extend(buckets[IGNORE])
    result.inplace_update.extend(UpdateRequest(a) for a in buckets[INPLACE])
    updates.Ignore += len(buckets[IGNORE])
    updates.InPlaceUpdate += len(buckets[INPLACE])
    return buckets[DESTRUCTIVE]


def pace_updates(result: ReconcileResult, updates: DesiredUpdates, tg: TaskGroup, placed: int,
          destructive: list[Allocation], migrate: list[Allocation],
          limit: int | None = None) -> None:
    """Do every destructive update, unless ``Update.MaxParallel`` is set: then
    ``limit`` (what the deployment allows this pass) is used by placements first, then
    destructive updates. Every marked migration goes now, whatever the deployment's
    state (Nomad's computeMigrations: the drainer paces them by the group's
    ``Migrate.MaxParallel``). The rest waits and is reported as Ignore."""
    max_parallel = (tg.Update.MaxParallel or 0) if tg.Update is not None else 0
    if max_parallel > 0 and destructive:
        limit = max_parallel if limit is None else limit
        now = destructive[:max(0, limit - placed)]
    else:
        now = destructive
    later = destructive[len(now):]
    moving, waiting = migrate, list[Allocation]()
    result.destructive_update.extend(UpdateRequest(a) for a in now)
    for alloc in moving:
        result.stop.append(StopRequest(alloc, ALLOC_MIGRATING))
        result.place.append(PlaceRequest(alloc.Name, tg.Name or "", alloc.ID))
    updates.DestructiveUpdate += len(now)
    updates.Migrate += len(moving)
    updates.Ignore += len(later) + len(waiting)
    if later or waiting:
        result.ignore.extend(later + waiting)
        result.followup = True
        stagger = (tg.Update.Stagger or 0) if tg.Update is not None else 0
        result.followup_wait_ns = max(result.followup_wait_ns, stagger)


def reconcile(job: Job | None, job_id: str, existing: list[Allocation],
              tainted_nodes: dict[str, Node | None], now_ns: int,
              deployment: Deployment | None = None,
              new_deployment_id: str = "", eval_id: str = "") -> ReconcileResult:
    """Reconcile a service or batch job (None if purged) with its allocations.
    ``deployment`` is the job's latest deployment; a deployment this pass creates gets
    ``new_deployment_id``. ``now_ns`` and ``eval_id`` (the eval being processed)
    decide which failed allocs are rescheduled now."""
    result = ReconcileResult(all_at_once=bool(job is not None and job.AllAtOnce),
                             mark_lost=lost_stops(existing, tainted_nodes))
    ctx = rd.cancel_unneeded(job, deployment, new_deployment_id, result.deployment_updates)
    running = job is not None and not job.Stop
    batch = job is not None and job.Type == "batch"
    complete = True
    for group in group_names(job, existing):
        updates = result.desired_tg_updates[group] = DesiredUpdates()
        allocs = [a for a in existing if a.TaskGroup == group]
        tg = group_of(job, group) if job is not None and running else None
        if tg is None or job is None:   # job stopped or purged, or group removed
            live = sorted((a for a in allocs if not a.terminal()), key=by_index)
            for alloc in live:
                stop_alloc(result, alloc, tainted_nodes)
            updates.Stop = len(live)
        else:
            complete &= _reconcile_group(result, updates, job, job_id, tg, allocs,
                                         tainted_nodes, batch, ctx,
                                         _Clock(now_ns, eval_id))
    if running:
        rd.finish(ctx, complete, result.deployment_updates)
        result.deployment = ctx.created
        if ctx.current is not None and ctx.current.active():
            result.deployment_id = ctx.current.ID
    return result


@dataclass(frozen=True)
class _Clock:
    now_ns: int
    eval_id: str


def _reconcile_group(result: ReconcileResult, updates: DesiredUpdates, job: Job, job_id: str,
                     tg: TaskGroup, allocs: list[Allocation],
                     tainted: dict[str, Node | None], batch: bool,
                     ctx: rd.DeploymentContext, clock: _Clock) -> bool:
    """One group of a running job, in Nomad's order: stop stale canaries, lost and
    surplus allocs, classify the rest against the job, place canaries or what is
    missing, then pace the updates. Returns whether the group's deployment is done."""
    group, count = tg.Name or "", tg.Count or 0
    state = ctx.group_state(group)
    existing_state = state is not None
    if state is None:
        state = rd.initial_state(tg)
    live = sorted((a for a in allocs if not a.terminal()), key=by_index)

    # canaries of a replaced or failed deployment go; the current ones on bad nodes too
    stale = rd.stale_canaries(ctx)
    for alloc in (a for a in live if a.ID in stale):
        stop_alloc(result, alloc, tainted)
        updates.Stop += 1
    current = rd.current_canaries(ctx)

    def moved(a: Allocation) -> bool:
        return node_lost(a.NodeID, tainted) or _migrating(a, tainted)

    for alloc in (a for a in live if a.ID in current and moved(a)):
        on_lost_node = node_lost(alloc.NodeID, tainted)
        result.stop.append(StopRequest(alloc, ALLOC_LOST if on_lost_node else ALLOC_MIGRATING,
                                       "lost" if on_lost_node else None))
    live = [a for a in live if a.ID not in stale and not (a.ID in current and moved(a))]
    canaries = [a for a in live if a.ID in current]

    lost = [a for a in live if node_lost(a.NodeID, tainted)]
    migrate = [a for a in live if _migrating(a, tainted)]
    untainted = [a for a in live if not moved(a)]
    kept, failed = _kept_terminal(allocs, batch)
    now, later, held = _by_reschedulable(failed, clock, ctx.current)
    # Lost and rescheduled names stay taken: their replacements reuse them.
    names = NameIndex(job_id, group, count, [a.Name for a in untainted + kept + held + now
                                             + migrate + lost])

    canarying = state.DesiredCanaries != 0 and not state.Promoted
    for alloc in lost:
        result.stop.append(StopRequest(alloc, ALLOC_LOST, "lost"))
    surplus = _surplus(count, untainted, kept, migrate, canaries, canarying, held + now)
    for alloc in surplus:
        result.stop.append(StopRequest(alloc, ALLOC_NOT_NEEDED))
    updates.Stop += len(lost) + len(surplus)
    stopped = {a.ID for a in surplus}
    migrate = [a for a in migrate if a.ID not in stopped]
    untainted = [a for a in untainted if a.ID not in stopped]
    held = [a for a in held if a.ID not in stopped]
    now = [a for a in now if a.ID not in stopped]
    _followups(result, group, [(t, a) for t, a in later if a.ID not in stopped])
    kept = sorted(kept + held, key=by_index)

    inplace_before = len(result.inplace_update)
    destructive = classify_existing(result, updates, job, group, sorted(untainted + kept, key=by_index))
    inplace = len(result.inplace_update) - inplace_before
    if not existing_state:
        state.DesiredTotal += len(destructive) + inplace
    if canarying:
        untainted = [a for a in untainted if a.ID not in current]

    wanted_canaries = (tg.Update.Canary or 0) if tg.Update is not None else 0
    needs_canaries = bool(destructive) and len(canaries) < wanted_canaries and not state.Promoted
    if needs_canaries:
        if not existing_state:
            state.DesiredCanaries = wanted_canaries
        if not ctx.paused and not ctx.failed:
            n = wanted_canaries - len(canaries)
            updates.Canary += n
            result.place.extend(PlaceRequest(name, group, canary=True)
                                for name in rd.next_canaries(names, n, canaries, destructive))
    canarying = state.DesiredCanaries != 0 and not state.Promoted

    budget = rd.under_provisioned_by(tg, ctx, untainted, len(destructive), len(migrate), canarying)
    place = _placements(group, count, names, len(untainted) + len(kept) + len(migrate), lost,
                        now)
    if not existing_state:
        state.DesiredTotal += len(place)
    pending = bool(destructive or inplace or place or migrate or needs_canaries)
    updating_spec = bool(destructive) or bool(result.inplace_update)
    if not ctx.paused and not ctx.failed and not canarying:
        result.place.extend(place)
        updates.Place += len(place)
        _stop_rescheduled(result, updates, place, now)
        pace_updates(result, updates, tg, len(place), destructive, migrate, budget)
    else:   # the rollout waits: only lost and failed allocations are replaced
        # ...except failed ones of the deployment that failed (Nomad's computeReplacements)
        failed_deployment = ctx.current.ID if ctx.failed and ctx.current is not None else None
        replacing = [p for p in place if p.reschedule and (
            failed_deployment is None or _deployment_of(now, p) != failed_deployment)]
        replacing += [p for p in place if not p.reschedule][:len(lost)]
        result.place.extend(replacing)
        updates.Place += len(replacing)
        _stop_rescheduled(result, updates, replacing, now)
        result.ignore.extend(destructive)
        updates.Ignore += len(destructive)
        pace_updates(result, updates, tg, len(replacing), [], migrate, budget)

    had_running = any(a.Job is not None and a.Job.Version == job.Version and
                      a.Job.CreateIndex == job.CreateIndex for a in allocs)
    rd.attach_group(ctx, job, group, state, existing_state, had_running, updating_spec)
    return rd.group_complete(ctx, group, pending)


def _kept_terminal(allocs: list[Allocation],
                   batch: bool) -> tuple[list[Allocation], list[Allocation]]:
    """Terminal allocs that still hold their name, none replaced yet (``NextAllocation``
    empty): completed batch allocs (never re-run), and failed allocs still meant to
    run, which may be rescheduled. Only the newest per name
    counts, and none whose name a live alloc already holds. Returns (completed,
    failed), each in name order."""
    live_names = {a.Name for a in allocs if not a.terminal()}
    newest: dict[str, Allocation] = {}
    for a in sorted(allocs, key=lambda a: (a.CreateIndex, a.ID)):
        # a terminal alloc that was replaced already is history (Nomad's
        # filterByRescheduleable), whatever became of its replacement
        done = not a.NextAllocation and (
            (batch and a.ClientStatus == "complete") or _failed_unreplaced(a))
        if a.terminal() and done and a.Name not in live_names:
            newest[a.Name] = a
    held = sorted(newest.values(), key=by_index)
    return ([a for a in held if a.ClientStatus != "failed"],
            [a for a in held if a.ClientStatus == "failed"])


def _failed_unreplaced(alloc: Allocation) -> bool:
    return alloc.ClientStatus == "failed" and alloc.DesiredStatus == "run" \
        and not alloc.NextAllocation


def reschedule_decision(alloc: Allocation, now_ns: int, eval_id: str,
                        deployment: Deployment | None) -> tuple[bool, bool, int]:
    """(now, later, when) for a failed alloc (Nomad's ``updateByReschedulable``): inside
    an active deployment only once it allows the replacement; forced ones now; else
    now when due within ``RESCHEDULE_WINDOW_NS`` or when this is its follow-up eval,
    later (at ``when``) when it has no follow-up eval yet; neither when its policy is
    exhausted or a follow-up eval is already waiting."""
    if deployment is not None and alloc.DeploymentID == deployment.ID and \
            deployment.active() and not alloc.should_reschedule():
        return False, False, 0
    forced = alloc.should_force_reschedule()
    when, eligible = rs.next_reschedule_time(alloc)
    if eligible and ((alloc.FollowupEvalID and alloc.FollowupEvalID == eval_id)
                     or when - now_ns <= RESCHEDULE_WINDOW_NS):
        return True, False, when
    return forced, eligible and not forced and not alloc.FollowupEvalID, when


def _by_reschedulable(failed: list[Allocation], clock: _Clock, deployment: Deployment | None,
                      ) -> tuple[list[Allocation], list[tuple[int, Allocation]], list[Allocation]]:
    """Split failed allocs into (due now, [(when, alloc)] due later, held): the later
    ones are held too; held ones keep their names and count toward ``Count``."""
    now: list[Allocation] = []
    later: list[tuple[int, Allocation]] = []
    held: list[Allocation] = []
    for alloc in failed:
        is_now, is_later, when = reschedule_decision(alloc, clock.now_ns, clock.eval_id,
                                                     deployment)
        if is_now:
            now.append(alloc)
            continue
        held.append(alloc)
        if is_later:
            later.append((when, alloc))
    return now, later, held


def _followups(result: ReconcileResult, group: str, later: list[tuple[int, Allocation]]) -> None:
    """One follow-up eval per batch of failures due within 5 s of the batch's first
    (``createRescheduleLaterEvals``)."""
    batch: list[Allocation] = []
    start = 0
    for when, alloc in sorted(later, key=lambda x: (x[0], x[1].ID)):
        if batch and when - start >= FOLLOWUP_BATCH_WINDOW_NS:
            result.followups.append(Followup(group, start, tuple(a.ID for a in batch)))
            batch = []
        if not batch:
            start = when
        batch.append(alloc)
    if batch:
        result.followups.append(Followup(group, start, tuple(a.ID for a in batch)))


def _deployment_of(now: list[Allocation], place: PlaceRequest) -> str:
    prev = next((a for a in now if a.ID == place.previous_alloc_id), None)
    return prev.DeploymentID if prev is not None else ""


def _stop_rescheduled(result: ReconcileResult, updates: DesiredUpdates,
                      placed: list[PlaceRequest], now: list[Allocation]) -> None:
    """A failed alloc whose replacement is placed is stopped, atomically with it."""
    replaced = {p.previous_alloc_id for p in placed if p.reschedule}
    for alloc in now:
        if alloc.ID in replaced:
            result.stop.append(StopRequest(alloc, ALLOC_RESCHEDULED))
            updates.Stop += 1


def _surplus(count: int, untainted: list[Allocation], kept: list[Allocation],
             migrate: list[Allocation], canaries: list[Allocation],
             canarying: bool, failed: Sequence[Allocation] = ()) -> list[Allocation]:
    """Allocs beyond ``count``: failed ones waiting to be rescheduled first (they run
    nothing); once canaries are promoted, the old allocs that share a canary's name;
    then migrating ones before healthy ones, each highest index first. Canaries
    awaiting promotion do not count, and completed batch allocs count toward
    ``count`` but are never stopped."""
    canary_ids = {a.ID for a in canaries}
    pool = [a for a in untainted if not (canarying and a.ID in canary_ids)]
    excess = max(0, len(pool) + len(kept) + len(migrate) + len(failed) - count)
    if not excess:
        return []
    order = removal_order(failed)
    if not canarying and canaries:
        canary_names = {a.Name for a in canaries}
        order += [a for a in sorted(pool, key=by_index)
                  if a.ID not in canary_ids and a.Name in canary_names]
    taken = {a.ID for a in order}
    order += [a for a in removal_order(migrate) + removal_order(pool) if a.ID not in taken]
    return order[:excess]


def _placements(group: str, count: int, names: NameIndex, existing: int,
                lost: list[Allocation], now: Sequence[Allocation] = ()) -> list[PlaceRequest]:
    """Replace failed allocs due now and lost allocs under their own names, then fill
    up to ``count`` with the lowest free names. Lost allocs beyond ``count`` (a
    scale-down) are not replaced."""
    place = []
    for alloc in now:
        canary = alloc.DeploymentStatus is not None and alloc.DeploymentStatus.Canary
        place.append(PlaceRequest(alloc.Name, group, alloc.ID, canary=canary, reschedule=True))
        existing += 1
    for alloc in lost:
        if existing >= count:
            break
        canary = alloc.DeploymentStatus is not None and alloc.DeploymentStatus.Canary
        place.append(PlaceRequest(alloc.Name, group, alloc.ID, canary=canary))
        existing += 1
    place.extend(PlaceRequest(name, group) for name in names.next(max(0, count - existing)))
    return place
