"""What must hold after every step of a simulation, each violation an explicit
exception that says what and where.

``StateChecks.check(state)`` runs after every applied entry (once per log index: the
replicas that apply the same index are held identical by ``SameStateHashes``):

- no allocation points at an unknown job or node;
- every allocation's CreateIndex <= ModifyIndex <= its table's index;
- no node is overcommitted: the CPU, memory and disk of its non-terminal allocations
  fit what it offers, and no two of them (nor the node's reserved ports) hold the same
  port on the same IP;
- the store's running totals equal a recount from the allocation rows: each node's
  usage (``node_usage``, what the scheduler and the plan applier read) and each job's
  counts per incarnation and group (``job_counts``, what summaries and job status are
  computed from, so the summary check below rests on rows through this one);
- every live allocation's node offers the host volumes its group requests (a read-only
  one only to read-only requests);
- an allocation's group network (``SharedResources.Networks``, the ports its tasks
  are told) is among the networks it holds on the node (those the collision checks
  count), with each port label once;
- every job summary equals a recomputation from the allocations (``fsm.summaries``; the
  garbage collector's baseline of collected allocations included);
- an allocation never changes node, job, group or name once created;
- the scaling policies are exactly the scaling blocks of the current jobs (same ID,
  target and bounds, disabled while the job is stopped), and scaling events belong to
  existing jobs, at most ``fsm.scaling.TRACKED_EVENTS`` per group, newest first;
- a node's drain is consistent: ``Drain`` exactly when it has a ``DrainStrategy``, a
  draining node is ineligible, ``LastDrain`` says ``draining`` exactly while it drains,
  and it keeps at most ``MAX_NODE_EVENTS`` events;
- an allocation is replaced at most once: no two allocations name the same
  ``PreviousAllocation``, whose ``NextAllocation`` names its replacement, and a
  rescheduled replacement's tracker ends with the allocation it replaces.

Table indexes are checked monotonic per replica by ``tests.sim.memlog``.
"""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import schema as t
from caravan.fsm.node_events import MAX_NODE_EVENTS
from caravan.fsm.scaling import TRACKED_EVENTS
from caravan.fsm.store import State, Txn, state_hash
from caravan.fsm.summaries import summarize
from caravan.scheduler.fit import alloc_usage, node_capacity
from caravan.scheduler.ports import alloc_networks
from caravan.server.rpc.node_registration import parse_port_ranges
from tests.sim.memlog import InvariantViolation


class StateChecks:
    """Skips the parts whose input tables did not change since the last check, and
    recomputes only the summaries of jobs whose allocations, evals or summary row
    changed (every job on the first check)."""

    def __init__(self) -> None:
        self._seen_allocs: tuple | None = None
        self._seen_scaling: tuple | None = None
        self._seen: State | None = None
        self.checked = 0

    def check(self, state: State) -> None:
        self.checked += 1
        allocs_in = tuple(state.tables[n].rows for n in (t.ALLOCS, t.NODES, t.JOBS))
        if self._seen_allocs is None or \
                any(a is not b for a, b in zip(allocs_in, self._seen_allocs)):
            _check_allocs(state)
            self._seen_allocs = allocs_in
        scaling_in = tuple(state.tables[n].rows
                           for n in (t.JOBS, t.SCALING_POLICIES, t.SCALING_EVENTS))
        if self._seen_scaling is None or \
                any(a is not b for a, b in zip(scaling_in, self._seen_scaling)):
            _check_scaling(state)
            self._seen_scaling = scaling_in
        if self._seen is None or state.tables[t.NODES].rows is not self._seen.tables[t.NODES].rows:
            _check_nodes(state)
        if self._seen is not None:
            _check_allocs_keep_identity(self._seen, state)
        _check_summaries(state, None if self._seen is None else _jobs_changed(self._seen, state))
        self._seen = state


def _check_scaling(state: State) -> None:
    at = state.last_index
    wanted = {}
    for job in state.rows(t.JOBS):
        for tg in job.TaskGroups or ():
            if tg.Scaling is None:
                continue
            p = tg.Scaling
            if not p.ID or p.ID in wanted:
                raise InvariantViolation(f"index {at}: job {job.ID} group {tg.Name}: scaling "
                                         f"policy id {p.ID!r} missing or shared")
            if p.Target != {"Namespace": job.Namespace, "Job": job.ID, "Group": tg.Name}:
                raise InvariantViolation(f"index {at}: job {job.ID}: policy {p.ID} targets "
                                         f"{p.Target}")
            wanted[p.ID] = replace(p, Enabled=bool(p.Enabled) and not job.Stop,
                                   CreateIndex=0, ModifyIndex=0)
    rows = {p.ID: p for p in state.rows(t.SCALING_POLICIES)}
    if set(rows) != set(wanted):
        raise InvariantViolation(f"index {at}: scaling policies {sorted(set(rows) ^ set(wanted))} "
                                 f"do not match the jobs' scaling blocks")
    for pid, p in rows.items():
        if replace(p, CreateIndex=0, ModifyIndex=0) != wanted[pid] or \
                not 0 < p.CreateIndex <= p.ModifyIndex <= at:
            raise InvariantViolation(f"index {at}: scaling policy {pid} is {p}, its job's block "
                                     f"says {wanted[pid]}")
    for row in state.rows(t.SCALING_EVENTS):
        if state.get(t.JOBS, row.JobID) is None:
            raise InvariantViolation(f"index {at}: scaling events of unknown job {row.JobID}")
        for group, events in row.ScalingEvents.items():
            order = [ev.CreateIndex for ev in events]
            if len(events) > TRACKED_EVENTS or order != sorted(order, reverse=True):
                raise InvariantViolation(f"index {at}: job {row.JobID} group {group}: "
                                         f"{len(events)} events, indexes {order}")
def _check_nodes(state: State) -> None:
    for node in state.rows(t.NODES):
        draining = node.DrainStrategy is not None
        where = f"index {state.last_index}: node {node.ID}"
        if node.Drain != draining:
            raise InvariantViolation(f"{where}: Drain {node.Drain} but DrainStrategy {node.DrainStrategy}")
        if draining and node.SchedulingEligibility != "ineligible":
            raise InvariantViolation(f"{where}: draining but {node.SchedulingEligibility}")
        if draining != (node.LastDrain is not None and node.LastDrain.Status == "draining"):
            raise InvariantViolation(f"{where}: draining {draining}, LastDrain {node.LastDrain}")
        if len(node.Events or ()) > MAX_NODE_EVENTS:
            raise InvariantViolation(f"{where}: {len(node.Events)} events")
def _check_replacements(state: State) -> None:
    at = state.last_index
    rows = state.tables[t.ALLOCS].rows
    replaced: dict[str, str] = {}
    for alloc in rows.values():
        prev_id = alloc.PreviousAllocation
        if not prev_id:
            continue
        if prev_id in replaced:
            raise InvariantViolation(f"index {at}: alloc {prev_id} replaced twice, by "
                                     f"{replaced[prev_id]} and {alloc.ID}")
        replaced[prev_id] = alloc.ID
        prev = rows.get(prev_id)
        if prev is not None and prev.NextAllocation != alloc.ID:
            raise InvariantViolation(f"index {at}: alloc {prev_id} replaced by {alloc.ID} "
                                     f"has NextAllocation {prev.NextAllocation!r}")
        tracker = alloc.RescheduleTracker
        if tracker is not None and tracker.Events and tracker.Events[-1].PrevAllocID != prev_id:
            raise InvariantViolation(f"index {at}: alloc {alloc.ID} replaces {prev_id} but its "
                                     f"tracker ends with {tracker.Events[-1].PrevAllocID}")


def _check_allocs_keep_identity(old: State, new: State) -> None:
    """An allocation, once created, stays the same placement of the same job: its node,
    job, group and name never change (a scheduler that reuses an alloc id would move a
    running allocation to another node behind its client's back)."""
    before, after = old.tables[t.ALLOCS].rows, new.tables[t.ALLOCS].rows
    if before is after:
        return
    for key, row in after.items():
        prev = before.get(key)
        if prev is None or prev is row:
            continue
        for name in ("NodeID", "JobID", "TaskGroup", "Name", "CreateIndex"):
            if getattr(prev, name) != getattr(row, name):
                raise InvariantViolation(
                    f"index {new.last_index}: alloc {key} changed {name} from "
                    f"{getattr(prev, name)!r} to {getattr(row, name)!r}")


def _jobs_changed(old: State, new: State) -> set[str]:
    jobs: set[str] = set()
    for table in (t.ALLOCS, t.EVALS, t.JOB_SUMMARIES, t.COLLECTED_ALLOCS):
        before, after = old.tables[table].rows, new.tables[table].rows
        if before is after:
            continue
        for key, row in after.items():
            if before.get(key) is not row:
                jobs.add(row.JobID)
        for key, row in before.items():
            if key not in after:
                jobs.add(row.JobID)
    return jobs


def _check_allocs(state: State) -> None:
    at = state.last_index
    nodes = state.tables[t.NODES].rows
    jobs = state.tables[t.JOBS].rows
    table_index = state.tables[t.ALLOCS].index
    live: dict[str, list] = {}
    for alloc in state.tables[t.ALLOCS].rows.values():
        if alloc.NodeID not in nodes:
            raise InvariantViolation(f"index {at}: alloc {alloc.ID} is on unknown node "
                                     f"{alloc.NodeID!r}")
        if alloc.JobID not in jobs:
            raise InvariantViolation(f"index {at}: alloc {alloc.ID} belongs to unknown job "
                                     f"{alloc.JobID!r}")
        if not alloc.CreateIndex <= alloc.ModifyIndex <= table_index:
            raise InvariantViolation(
                f"index {at}: alloc {alloc.ID} has CreateIndex {alloc.CreateIndex}, "
                f"ModifyIndex {alloc.ModifyIndex}, table index {table_index}")
        if not alloc.terminal():
            live.setdefault(alloc.NodeID, []).append(alloc)
        if alloc.PreemptedByAllocation:
            _check_preempted(state, at, alloc)
    _check_replacements(state)
    for node_id in sorted(live):
        _check_node(at, nodes[node_id], sorted(live[node_id], key=lambda a: a.ID))
        _check_host_volumes(at, nodes[node_id], live[node_id])
    _check_totals(state, live)


def _check_preempted(state: State, at: int, alloc) -> None:
    """An evicted allocation is terminal, and its preemptor (unless collected) is on
    the same node, of a job at least 10 priorities higher, and lists it."""
    if not alloc.terminal():
        raise InvariantViolation(f"index {at}: alloc {alloc.ID} was preempted but is live")
    by = state.get(t.ALLOCS, alloc.PreemptedByAllocation)
    if by is None:
        return
    if by.NodeID != alloc.NodeID or alloc.ID not in (by.PreemptedAllocations or ()):
        raise InvariantViolation(f"index {at}: alloc {alloc.ID} preempted by {by.ID}, "
                                 f"which is on {by.NodeID} and lists "
                                 f"{by.PreemptedAllocations}")
    if by.Job is not None and alloc.Job is not None and \
            (by.Job.Priority or 0) - (alloc.Job.Priority or 0) < 10:
        raise InvariantViolation(f"index {at}: alloc {alloc.ID} (priority "
                                 f"{alloc.Job.Priority}) preempted by {by.ID} (priority "
                                 f"{by.Job.Priority})")


def _check_host_volumes(at: int, node, allocs: list) -> None:
    """Every host volume a live allocation's group requests is offered by its node, and
    a read-only one only to read-only requests."""
    offered = node.HostVolumes or {}
    for alloc in allocs:
        tg = next((g for g in (alloc.Job.TaskGroups or ()) if g.Name == alloc.TaskGroup),
                  None) if alloc.Job is not None else None
        for req in ((tg.Volumes or {}).values() if tg is not None else ()):
            have = offered.get(req.Source)
            if req.Type == "host" and (have is None or (have.ReadOnly and not req.ReadOnly)):
                raise InvariantViolation(
                    f"index {at}: alloc {alloc.ID} on node {node.Name} needs host volume "
                    f"{req.Source!r} (read_only={req.ReadOnly}); the node offers "
                    f"{sorted(offered)}")


def recount_totals(state: State) -> tuple[dict, dict]:
    """(node ID -> usage of its live allocations, job ID -> {(incarnation, group):
    counts}), recounted from the rows the way ``fsm.schema`` defines the totals."""
    usage: dict = {}
    counts: dict = {}
    spec = next(x for x in t.SCHEMA[t.ALLOCS].totals if x.name == "job_counts")
    for a in state.tables[t.ALLOCS].rows.values():
        if not a.terminal():
            usage[a.NodeID] = tuple(map(sum, zip(usage.get(a.NodeID, (0, 0, 0)), a.usage())))
        job_id, inner = spec.key(a)
        per_job = counts.setdefault(job_id, {})
        per_job[inner] = tuple(map(sum, zip(per_job.get(inner, (0,) * 8), spec.value(a))))
    return {k: v for k, v in usage.items() if any(v)}, counts


def _check_totals(state: State, live: dict) -> None:
    at = state.last_index
    usage, counts = recount_totals(state)
    kept_usage = dict(state.totals(t.ALLOCS, t.NODE_USAGE).items())
    for node_id in sorted({*usage, *kept_usage}):
        if kept_usage.get(node_id) != usage.get(node_id):
            raise InvariantViolation(
                f"index {at}: node {node_id} usage total {kept_usage.get(node_id)} but its "
                f"live allocations use {usage.get(node_id)}")
    kept_counts = {job: dict(m.items())
                   for job, m in state.totals(t.ALLOCS, t.JOB_COUNTS).items()}
    for job_id in sorted({*counts, *kept_counts}):
        if kept_counts.get(job_id) != counts.get(job_id):
            raise InvariantViolation(
                f"index {at}: job {job_id} allocation counts {kept_counts.get(job_id)} but its "
                f"allocations give {counts.get(job_id)}")


def _check_node(at: int, node, allocs: list) -> None:
    cap = node_capacity(node)
    used = [0, 0, 0]
    for alloc in allocs:
        for i, v in enumerate(alloc_usage(alloc)):
            used[i] += v
    for dim, have, want in zip(("cpu", "memory", "disk"), cap, used):
        if want > have:
            raise InvariantViolation(
                f"index {at}: node {node.Name} ({node.ID}) overcommitted on {dim}: "
                f"{want} used of {have} by {[a.ID for a in allocs]}")
    holders: dict[tuple[str, int], str] = {}
    rsv = node.ReservedResources
    if rsv is not None and rsv.Networks.ReservedHostPorts:
        for net in (node.NodeResources.Networks or ()) if node.NodeResources else ():
            for port in parse_port_ranges(rsv.Networks.ReservedHostPorts):
                holders[(net.IP, port)] = "the node's reserved ports"
    for alloc in allocs:
        _check_shared_networks(at, alloc)
        for net in alloc_networks(alloc):
            for port in [*(net.ReservedPorts or ()), *(net.DynamicPorts or ())]:
                key = (net.IP, port.Value)
                if key in holders:
                    raise InvariantViolation(
                        f"index {at}: node {node.Name} port {net.IP}:{port.Value} held by "
                        f"alloc {alloc.ID} and by {holders[key]}")
                holders[key] = f"alloc {alloc.ID}"


def _check_shared_networks(at: int, alloc) -> None:
    shared = alloc.SharedResources.Networks if alloc.SharedResources is not None else None
    if not shared:
        return
    held = alloc_networks(alloc)
    for net in shared:
        if net not in held:
            raise InvariantViolation(
                f"index {at}: alloc {alloc.ID} group network {net.IP} "
                f"{[p.Value for p in alloc.shared_ports()]} is not among the networks it "
                f"holds on its node")
    labels = [p.Label for p in alloc.shared_ports()]
    if len(set(labels)) != len(labels):
        raise InvariantViolation(f"index {at}: alloc {alloc.ID} group ports {labels} repeat "
                                 f"a label")


def _check_summaries(state: State, jobs: set[str] | None) -> None:
    """The summaries of ``jobs`` (all when None) equal a recomputation."""
    txn = Txn(state, state.last_index)   # read-only: summarize() only looks things up
    summaries = state.tables[t.JOB_SUMMARIES].rows
    rows = summaries.values() if jobs is None else \
        [summaries[j] for j in sorted(jobs) if j in summaries]
    for summary in rows:
        expected = summarize(txn, summary.JobID, summary)
        if expected != summary.Summary:
            raise InvariantViolation(
                f"index {state.last_index}: job {summary.JobID} summary {summary.Summary} "
                f"differs from the recomputation {expected}")


class SameStateHashes:
    """Replicas that applied the same prefix hold the same state. The first replica to
    reach an index leaves its (immutable) state there; a later replica that reaches the
    same index compares hashes (computed lazily, once per index)."""

    def __init__(self) -> None:
        self._states: dict[int, tuple[str, State]] = {}
        self._hashes: dict[int, str] = {}
        self.compared = 0

    def observe(self, replica: str, state: State) -> None:
        index = state.last_index
        first = self._states.get(index)
        if first is None:
            self._states[index] = (replica, state)
            return
        if first[1] is state:
            return
        if index not in self._hashes:
            self._hashes[index] = state_hash(first[1])
        mine = state_hash(state)
        self.compared += 1
        if mine != self._hashes[index]:
            raise InvariantViolation(f"index {index}: {replica} state hash {mine[:12]} differs "
                                     f"from {first[0]}'s {self._hashes[index][:12]}")
