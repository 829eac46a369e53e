"""The tables of the state store and the indexes their queries need, declared as data.

A table is a set of rows keyed by a primary key; each secondary index maps a key
computed from a row to the set of primary keys that have it (a key of ``None`` keeps
the row out of that index). Prefix queries (``?prefix=``) are served from the sorted
primary keys, so they need no index of their own.
"""
from __future__ import annotations

from collections.abc import Callable, Hashable
from dataclasses import dataclass, field
from typing import Any

from caravan.fsm import structs as s


@dataclass(frozen=True)
class Index:
    """``rows``: the index maps each key to {primary key: row} instead of to the bare
    primary keys, and a key's map is replaced whenever any of its rows changes, so
    holding on to it tells a reader, by identity alone, whether anything under that key
    changed since (the scheduler caches each node's allocations and usage that way)."""
    name: str
    key: Callable[[Any], Hashable | None]
    rows: bool = False


@dataclass(frozen=True)
class Total:
    """A running sum per key: ``value(row)`` (a tuple of ints, or None for a row that
    counts for nothing) added up over the rows with the same ``key(row)``, kept as each
    row is written. It answers "how much is used under this key" without visiting the
    rows (the scheduler's node usage). Keys whose sum is all zeros are dropped.
    ``nested``: the key is a pair (outer, inner), and the sums are kept per inner key
    in one map per outer key, so all of an outer key's sums are read at once (a job's
    counts per incarnation and group)."""
    name: str
    key: Callable[[Any], Hashable | None]
    value: Callable[[Any], tuple[int, ...] | None]
    nested: bool = False


@dataclass(frozen=True)
class Table:
    name: str
    row_type: type
    primary: Callable[[Any], Hashable]
    indexes: tuple[Index, ...] = field(default=())
    totals: tuple[Total, ...] = field(default=())


def _declare(*tables: Table) -> dict[str, Table]:
    by_name: dict[str, Table] = {}
    for table in tables:
        if table.name in by_name:
            raise ValueError(f"duplicate table {table.name!r} in schema")
        names = [ix.name for ix in table.indexes] + [tot.name for tot in table.totals]
        if len(set(names)) != len(names):
            raise ValueError(f"duplicate index or total name in table {table.name!r}: {names}")
        by_name[table.name] = table
    return by_name


# The job summary's counters, by the client status an allocation counts under.
SUMMARY_BUCKETS = {"pending": "Starting", "running": "Running", "complete": "Complete",
                   "failed": "Failed", "lost": "Lost", "unknown": "Unknown"}
_BUCKET_AT = {status: 2 + i for i, status in enumerate(SUMMARY_BUCKETS)}


def _job_alloc_counts(a: s.Allocation) -> tuple[int, ...]:
    """What one allocation adds to its job's counts: (allocations, live ones, then one
    per summary bucket in ``SUMMARY_BUCKETS`` order)."""
    out = [1, 0 if a.terminal() else 1, 0, 0, 0, 0, 0, 0]
    at = _BUCKET_AT.get(a.ClientStatus)
    if at is not None:
        out[at] = 1
    return tuple(out)


JOBS = "jobs"
JOB_VERSIONS = "job_versions"
JOB_SUMMARIES = "job_summaries"
EVALS = "evals"
ALLOCS = "allocs"
DEPLOYMENTS = "deployments"
PERIODIC_LAUNCHES = "periodic_launches"
NODES = "nodes"
REQUESTS = "requests"
LEADERSHIP = "leadership"
COLLECTED_ALLOCS = "collected_allocs"
GC_WITNESS = "gc_witness"
SCALING_POLICIES = "scaling_policies"
SCALING_EVENTS = "scaling_events"

# Secondary index and total names: what ``State.by_index``, ``State.index_members``,
# ``State.index_size``, ``State.total`` and ``State.totals`` take as ``index``/``total``.
BY_JOB = "job"                  # jobs' versions, evals, allocs, deployments, scaling policies
BY_PARENT = "parent"            # jobs: a dispatched or periodic child's parent
PERIODIC = "periodic"           # jobs: True for an active periodic parent
BY_STATUS = "status"            # evals
BY_NODE = "node"                # allocs (holds the rows: an entry is new when one changes)
BY_EVAL = "eval"                # allocs
BY_DEPLOYMENT = "deployment"    # allocs
TERMINAL = "terminal"           # allocs: True for a terminal one
ACTIVE = "active"               # deployments: True for a running or paused one
BY_CLASS = "class"              # nodes: computed class
DRAINING = "draining"           # nodes: True while a drain strategy is set
NODE_USAGE = "node_usage"       # allocs total: node id -> (CPU MHz, MemoryMB, DiskMB) in use
JOB_COUNTS = "job_counts"       # allocs total: job id -> (CreateIndex, group) -> counts

SCHEMA: dict[str, Table] = _declare(
    Table(JOBS, s.Job, primary=lambda j: j.ID,
          indexes=(Index(BY_PARENT, lambda j: j.ParentID or None),
                   # the parents the periodic dispatcher launches children of
                   Index(PERIODIC, lambda j: True if j.is_periodic_active() else None))),
    Table(JOB_VERSIONS, s.Job, primary=lambda j: (j.ID, j.Version),
          indexes=(Index(BY_JOB, lambda j: j.ID),)),
    Table(JOB_SUMMARIES, s.JobSummary, primary=lambda x: x.JobID),
    Table(EVALS, s.Evaluation, primary=lambda e: e.ID,
          indexes=(Index(BY_JOB, lambda e: e.JobID),
                   Index(BY_STATUS, lambda e: e.Status))),
    Table(ALLOCS, s.Allocation, primary=lambda a: a.ID,
          indexes=(Index(BY_JOB, lambda a: a.JobID),
                   Index(BY_NODE, lambda a: a.NodeID or None, rows=True),
                   Index(BY_EVAL, lambda a: a.EvalID or None),
                   Index(BY_DEPLOYMENT, lambda a: a.DeploymentID or None),
                   # the terminal ones: their count grows when capacity frees up
                   Index(TERMINAL, lambda a: True if a.terminal() else None)),
          # what the live allocations on each node reserve: (CPU MHz, MemoryMB, DiskMB)
          totals=(Total(NODE_USAGE, lambda a: a.NodeID or None,
                        lambda a: None if a.terminal() else a.usage()),
                  # job ID -> (the incarnation's CreateIndex or None, group) -> counts:
                  # job summaries and status without visiting the job's allocations
                  Total(JOB_COUNTS, lambda a: (a.JobID, (
                      a.Job.CreateIndex if a.Job is not None else None, a.TaskGroup)),
                      _job_alloc_counts, nested=True))),
    Table(DEPLOYMENTS, s.Deployment, primary=lambda d: d.ID,
          indexes=(Index(BY_JOB, lambda d: d.JobID),
                   # running or paused: what the deployment watcher looks after
                   Index(ACTIVE, lambda d: True if d.active() else None))),
    Table(PERIODIC_LAUNCHES, s.PeriodicLaunch, primary=lambda p: p.ID),
    Table(NODES, s.Node, primary=lambda n: n.ID,
          indexes=(Index(BY_CLASS, lambda n: n.ComputedClass or None),
                   # what the leader's drainer looks after
                   Index(DRAINING, lambda n: True if n.DrainStrategy is not None else None))),
    # Answers of recently applied requests, by request id: a retried submission whose
    # first attempt was applied after all gets the first answer (exactly-once writes).
    Table(REQUESTS, s.RequestResult, primary=lambda r: r.RequestID),
    # One row: where the current leader's epoch began (fences plans of deposed leaders).
    Table(LEADERSHIP, s.LeaderEpoch, primary=lambda r: r.ID),
    # What garbage-collected allocations of live jobs still count in their summaries.
    Table(COLLECTED_ALLOCS, s.CollectedAllocs, primary=lambda r: r.JobID),
    # One row: when log indexes were applied (the garbage collector's time table).
    Table(GC_WITNESS, s.GCWitness, primary=lambda r: r.ID),
    # The scaling blocks of current jobs, one per target (``fsm.scaling``).
    Table(SCALING_POLICIES, s.ScalingPolicy, primary=lambda p: p.ID,
          indexes=(Index(BY_JOB, lambda p: (p.Target or {}).get("Job") or None),)),
    # Each job's recent scaling events, per group.
    Table(SCALING_EVENTS, s.JobScalingEvents, primary=lambda r: r.JobID),
)
