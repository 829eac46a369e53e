"""The reconciler of system and sysbatch jobs: one allocation of each group per eligible
node (Nomad's ``scheduler/util.go`` ``diffSystemAllocs``), with the shared rules of
``reconcile`` for lost, migrating and updated allocations."""
from __future__ import annotations

from caravan.fsm.structs import Allocation, Job, Node
from caravan.scheduler.names import alloc_name, by_index
from caravan.scheduler.reconcile import classify_existing, group_names, lost_stops, node_lost, pace_updates, stop_alloc
from caravan.scheduler.reconcile_results import (
    ALLOC_MIGRATING,
    ALLOC_NODE_TAINTED,
    ALLOC_NOT_NEEDED,
    DesiredUpdates,
    PlaceRequest,
    ReconcileResult,
    StopRequest,
)


def reconcile_system(job: Job | None, job_id: str, existing: list[Allocation],
                     eligible_nodes: list[Node], tainted_nodes: dict[str, Node | None],
                     now_ns: int, not_ready: frozenset[str] = frozenset()) -> ReconcileResult:
    """One alloc of each group on every eligible node (Nomad's diffSystemAllocs).

    The caller has already filtered ``eligible_nodes`` for readiness, datacenter and
    feasibility. Names are ``<job name>.<group>[i]`` for i < Count (1 for system jobs),
    the same on every node, as Nomad names them. Allocs on a down node are stopped as
    lost and not replaced (the node is gone); marked for migration by the drainer, they
    are stopped; on a node that is not ready (``not_ready``: ineligible, or draining)
    they are left alone; on any other node no longer eligible they are stopped; missing
    ones are placed with ``node_id`` set. Updates follow the generic rules, paced per
    group by ``Update.MaxParallel``."""
    result = ReconcileResult(all_at_once=bool(job is not None and job.AllAtOnce),
                             mark_lost=lost_stops(existing, tainted_nodes))
    groups = {tg.Name or "": tg for tg in (job.TaskGroups or [])} \
        if job is not None and not job.Stop else {}
    prefix = (job.Name or job_id) if job is not None else job_id
    required = {alloc_name(prefix, g, i): g for g, tg in groups.items() for i in range(tg.Count or 0)}
    for group in group_names(job, existing):
        result.desired_tg_updates[group] = DesiredUpdates()

    kept = _system_keep(result, existing, required, {n.ID for n in eligible_nodes}, tainted_nodes,
                        not_ready)
    _system_placements(result, required, eligible_nodes, tainted_nodes, kept, existing)
    ready = {n.ID for n in eligible_nodes}
    if job is None:   # (then there are no groups)
        return result
    for group, tg in groups.items():
        updates = result.desired_tg_updates[group]
        mine = [a for a in kept.values() if a.TaskGroup == group]
        # on a node not ready, an alloc is left as it is (Nomad: IGNORE), never updated
        idle = [a for a in mine if a.NodeID not in ready]
        result.ignore.extend(idle)
        updates.Ignore += len(idle)
        mine = [a for a in mine if a.NodeID in ready]
        destructive = classify_existing(result, updates, job, group, mine)
        pace_updates(result, updates, tg, 0, destructive, [])
    return result


def _system_keep(result: ReconcileResult, existing: list[Allocation], required: dict[str, str],
                 eligible: set[str], tainted: dict[str, Node | None],
                 not_ready: frozenset[str] = frozenset(),
                 ) -> dict[tuple[str, str], Allocation]:
    """Stop every live alloc that no longer belongs where it runs (name not required,
    duplicate on its node, lost node, marked for migration, node no longer eligible
    but ready); return the rest by (node, name), those on nodes not ready included."""
    kept: dict[tuple[str, str], Allocation] = {}
    live = [a for a in existing if not a.terminal()]
    for alloc in sorted(live, key=lambda a: (a.NodeID, by_index(a))):
        key = (alloc.NodeID, alloc.Name)
        belongs = required.get(alloc.Name) == alloc.TaskGroup and key not in kept \
            and not node_lost(alloc.NodeID, tainted)
        ready_here = alloc.NodeID in eligible and alloc.NodeID not in tainted
        # on a node not ready (ineligible, or draining and not yet marked) it stays
        idle_here = alloc.NodeID in not_ready or alloc.NodeID in tainted
        if belongs and (ready_here or idle_here) and not alloc.should_migrate():
            kept[key] = alloc
            continue
        if belongs and alloc.should_migrate():
            # marked to migrate (alloc stop, or the drainer): stopped, and placed again
            # there only if its node is still eligible
            result.stop.append(StopRequest(alloc, ALLOC_MIGRATING))
            result.desired_tg_updates[alloc.TaskGroup].Migrate += 1
            continue
        reason = ALLOC_NODE_TAINTED if alloc.NodeID in tainted else ALLOC_NOT_NEEDED
        stop_alloc(result, alloc, tainted, reason)
        result.desired_tg_updates[alloc.TaskGroup].Stop += 1
    return kept


def _system_placements(result: ReconcileResult, required: dict[str, str], nodes: list[Node],
                       tainted: dict[str, Node | None], kept: dict[tuple[str, str], Allocation],
                       existing: list[Allocation]) -> None:
    """Place every required name missing on an eligible node, linking the newest
    terminal (or now stopped) alloc of that name on that node as the previous one."""
    previous: dict[tuple[str, str], Allocation] = {}
    stopping = {s.alloc.ID for s in result.stop}
    for alloc in sorted(existing, key=lambda a: (a.CreateIndex, a.ID)):
        if (alloc.terminal() or alloc.ID in stopping) and not alloc.NextAllocation:
            previous[(alloc.NodeID, alloc.Name)] = alloc
    for node in sorted(nodes, key=lambda n: n.ID):
        for name, group in required.items():
            if node.ID in tainted or (node.ID, name) in kept:
                continue
            prev = previous.get((node.ID, name))
            result.place.append(PlaceRequest(name, group, prev.ID if prev else None, node_id=node.ID))
            if prev is None or prev.ID not in stopping:   # a migration counts as Migrate
                result.desired_tg_updates[group].Place += 1
