"""Log entry types and their envelope: one type byte followed by a msgpack body.

The enum is append-only: a number, once used, keeps its meaning forever, because old
entries sit in journals and snapshots. Bodies are typed structs; every value that is
not a function of the state (ids, wall-clock times, the eval to create) is decided by
the server that builds the entry and carried in it, so every replica applies the same
thing.
"""
from __future__ import annotations

from enum import IntEnum

import msgspec

from caravan.fsm.structs import (
    Allocation,
    AllocDeploymentStatus,
    Deployment,
    DesiredTransition,
    DrainStrategy,
    Evaluation,
    Job,
    Node,
    ScalingEvent,
    TaskState,
)
from caravan.fsm.wire import to_compact


class EntryType(IntEnum):
    NOOP = 0              # read barrier: changes nothing, proves the log reached here
    JOB_REGISTER = 1
    JOB_DEREGISTER = 2
    JOB_STABILITY = 3
    JOB_REVERT = 4
    JOB_DISPATCH = 5
    PERIODIC_FORCE = 6
    JOB_EVALUATE = 7
    NODE_REGISTER = 8
    NODE_STATUS = 9
    EVAL_UPDATE = 10
    PLAN_RESULTS = 11
    ALLOC_CLIENT_UPDATE = 12
    DEPLOYMENT_STATUS_UPDATE = 13
    DEPLOYMENT_PROMOTE = 14
    DEPLOYMENT_ALLOC_HEALTH = 15
    # 16 was never used
    PERIODIC_LAUNCH = 17  # the leader's periodic dispatcher launching one scheduled slot
    BATCH = 18            # several entries committed by one raft round (group commit)
    LEADER_EPOCH = 19     # a new leader's first entry, before its scheduler starts
    CORE_GC = 20          # the core garbage collector: dead evals, allocs, jobs, ...
    JOB_SCALE = 21        # a group's count and/or a scaling event (/v1/job/:id/scale)
    ALLOC_DESIRED_TRANSITION = 22   # e.g. alloc stop: migrate an allocation, with its eval
    NODE_DRAIN = 23       # an operator sets, changes or cancels a drain; the drainer ends one
    NODE_ELIGIBILITY = 24
    NODE_DEREGISTER = 25  # a node purged: its allocations are lost and replaced


class Request(msgspec.Struct, kw_only=True):
    # A unique id chosen by the submitting server; resubmitting the same bytes after an
    # unknown outcome is answered from the first application instead of applying twice.
    RequestID: str = ""


class Noop(Request):
    pass


class JobRegister(Request):
    Job: Job
    Eval: Evaluation | None = None
    EnforceIndex: bool = False
    JobModifyIndex: int = 0
    PreserveCounts: bool = False
    SubmitTime: int = 0


class JobDeregister(Request):
    JobID: str
    Purge: bool = False
    Eval: Evaluation | None = None
    SubmitTime: int = 0


class JobStability(Request):
    JobID: str
    JobVersion: int
    Stable: bool


class JobRevert(Request):
    JobID: str
    JobVersion: int
    EnforcePriorVersion: int | None = None
    Eval: Evaluation | None = None
    SubmitTime: int = 0


class JobDispatch(Request):
    ParentID: str
    DispatchedJobID: str
    Meta: dict[str, str] | None = None
    Payload: bytes | None = None
    IdempotencyToken: str = ""
    Eval: Evaluation | None = None
    SubmitTime: int = 0


class PeriodicForce(Request):
    ParentID: str
    LaunchTime: int  # unix nanoseconds
    Eval: Evaluation | None = None


class PeriodicLaunch(Request):
    """One scheduled launch of a periodic parent. ``LaunchTime`` is the cron slot (unix
    nanoseconds), not the moment of submission, so any leader launching the same slot
    builds the same child; the FSM refuses a slot at or before the recorded last launch,
    which makes the entry idempotent across leader changes."""
    ParentID: str
    LaunchTime: int
    Eval: Evaluation | None = None   # for the child (JobID = the child's id)
    SubmitTime: int = 0


class JobEvaluate(Request):
    JobID: str
    Eval: Evaluation
    # ``EvalOptions.ForceReschedule``: failed allocations not yet replaced, of groups
    # with a reschedule policy, get ``DesiredTransition.ForceReschedule``
    ForceReschedule: bool = False


class NodeRegister(Request):
    Node: Node
    # node-update evals the registration creates (system jobs owe the node an alloc)
    Evals: list[Evaluation] | None = None


class NodeStatus(Request):
    NodeID: str
    Status: str
    UpdatedAt: int            # unix seconds
    # evals for every job with allocations on the node (created by the same entry)
    Evals: list[Evaluation] | None = None


class NodeDrain(Request):
    """Nomad's NodeUpdateDrainRequest. ``DrainStrategy`` None cancels the drain (and
    with ``MarkEligible`` makes the node eligible again); ``Completed``: the drainer
    ends the drain (LastDrain ``complete``; refused if the node is not draining, or
    drains since another ``StartedAt`` than ``StartedAt``). ``Now`` (unix ns) is when the
    request was made: StartedAt, ForceDeadline, LastDrain and the node event derive
    from it. ``Event`` adds details to the event (the drainer's ``deadline_reached``)."""
    NodeID: str
    DrainStrategy: DrainStrategy | None = None
    MarkEligible: bool = False
    Meta: dict[str, str] | None = None
    Completed: bool = False
    StartedAt: str = ""
    EventDetails: dict[str, str] | None = None
    Now: int = 0
    Evals: list[Evaluation] | None = None


class NodeEligibility(Request):
    NodeID: str
    Eligibility: str
    Now: int = 0
    Evals: list[Evaluation] | None = None


class NodeDeregister(Request):
    NodeID: str
    Evals: list[Evaluation] | None = None


class EvalUpdate(Request):
    Evals: list[Evaluation]


class AllocStop(msgspec.Struct, kw_only=True):
    AllocID: str
    DesiredDescription: str = ""
    ClientStatus: str = ""    # "lost" when its node is down


class AllocPreempt(msgspec.Struct, kw_only=True):
    """Evict an allocation so a higher-priority one fits on its node."""
    AllocID: str
    PreemptedByAllocation: str


class DeploymentStatusUpdate(msgspec.Struct, kw_only=True):
    DeploymentID: str
    Status: str
    StatusDescription: str = ""


class PlanResults(Request):
    """What the plan applier committed of one plan: new and updated allocations
    (their job is looked up as JobID at JobVersion), stops, the eval's new state, the
    deployment the plan created (whole) and status changes of existing deployments."""
    JobID: str
    JobVersion: int = 0
    Allocs: list[Allocation] | None = None
    Stops: list[AllocStop] | None = None
    Evals: list[Evaluation] | None = None
    Deployment: Deployment | None = None
    DeploymentUpdates: list[DeploymentStatusUpdate] | None = None
    # allocations evicted for the plan's placements (DesiredStatus evict), with the
    # evaluations of their jobs among ``Evals``, so they are placed again elsewhere
    Preemptions: list[AllocPreempt] | None = None
    # Follow-up evals for failed allocations to reschedule later, and alloc ID -> the
    # follow-up eval it waits for (its FollowupEvalID); committed whatever else fits.
    FollowupEvals: list[Evaluation] | None = None
    AllocFollowups: dict[str, str] | None = None
    # The leadership epoch (LEADER_EPOCH index) of the leader whose applier checked
    # the plan; refused if a later leader has begun since. 0: not fenced.
    Epoch: int = 0


class AllocClientState(msgspec.Struct, kw_only=True):
    AllocID: str
    ClientStatus: str
    ClientDescription: str = ""
    TaskStates: dict[str, TaskState] | None = None
    DeploymentStatus: AllocDeploymentStatus | None = None
    ModifyTime: int = 0


class AllocClientUpdate(Request):
    Updates: list[AllocClientState]
    # ``alloc-failure`` evals for failed allocations that may be rescheduled, decided
    # by the server that received the reports
    Evals: list[Evaluation] | None = None


class DeploymentStatusChange(Request):
    """Pause, resume or fail a deployment (operator or deployment watcher). With
    ``RevertToVersion`` the job's stable version is registered again as a new version
    in the same entry (auto-revert); ``Eval`` lets the scheduler act on the change."""
    DeploymentUpdate: DeploymentStatusUpdate
    RevertToVersion: int | None = None
    Eval: Evaluation | None = None
    SubmitTime: int = 0


class DeploymentPromote(Request):
    DeploymentID: str
    All: bool = False
    Groups: list[str] | None = None
    Eval: Evaluation | None = None
    Now: int = 0              # unix ns: the progress deadline restarts from here


class DeploymentAllocHealth(Request):
    """Operator-set health of a deployment's allocations; an unhealthy one fails the
    deployment (``DeploymentUpdate``, with the revert as above)."""
    DeploymentID: str
    HealthyAllocationIDs: list[str] | None = None
    UnhealthyAllocationIDs: list[str] | None = None
    Timestamp: str = ""
    DeploymentUpdate: DeploymentStatusUpdate | None = None
    RevertToVersion: int | None = None
    Eval: Evaluation | None = None
    SubmitTime: int = 0


class LeaderEpochStart(Request):
    """Committed by a new leader before it starts its leader-only services; its index
    is the epoch that leader's plans carry."""


class CoreGC(Request):
    """What the garbage collector chose to delete, each object by ID with the
    ModifyIndex it had when chosen (its age was judged on that version). The FSM
    deletes an object only if it is unchanged and still eligible (``fsm.gc``), so a
    stale choice never deletes anything live."""
    Jobs: dict[str, int] | None = None
    Evals: dict[str, int] | None = None
    Allocs: dict[str, int] | None = None
    Deployments: dict[str, int] | None = None
    Nodes: dict[str, int] | None = None
    # The collector's clock (unix ns) and the index it had applied when it read it:
    # every entry up to Applied was applied by Now. Recorded (``GCWitness``), so any
    # leader can tell how old an index is (deployments carry no time of their own).
    Now: int = 0
    Applied: int = 0


class JobScale(Request):
    """Scale one group (``Count``, with the eval that acts on it) and/or record a
    scaling event. ``Event`` carries the caller's message, error flag, meta and time;
    the FSM fills in the previous count and the eval. ``JobModifyIndex`` > 0 is a
    check-and-set on the job."""
    JobID: str
    Group: str
    Event: ScalingEvent
    Count: int | None = None
    Eval: Evaluation | None = None
    JobModifyIndex: int = 0
    SubmitTime: int = 0


class AllocDesiredTransition(Request):
    """Merge these transitions into the allocations (unknown ones are skipped, as
    Nomad does) and create the evals that act on them."""
    Allocs: dict[str, DesiredTransition]
    Evals: list[Evaluation] | None = None


class Batch(Request):
    """Entries that reached the leader together, replicated as one raft entry and
    applied one after the other at its index, each answered as if it were alone (its
    own request id, its own result). A batch never holds a batch."""
    Entries: list[bytes]


BODY_TYPES: dict[EntryType, type[Request]] = {
    EntryType.NOOP: Noop,
    EntryType.JOB_REGISTER: JobRegister,
    EntryType.JOB_DEREGISTER: JobDeregister,
    EntryType.JOB_STABILITY: JobStability,
    EntryType.JOB_REVERT: JobRevert,
    EntryType.JOB_DISPATCH: JobDispatch,
    EntryType.PERIODIC_FORCE: PeriodicForce,
    EntryType.JOB_EVALUATE: JobEvaluate,
    EntryType.NODE_REGISTER: NodeRegister,
    EntryType.NODE_STATUS: NodeStatus,
    EntryType.EVAL_UPDATE: EvalUpdate,
    EntryType.PLAN_RESULTS: PlanResults,
    EntryType.ALLOC_CLIENT_UPDATE: AllocClientUpdate,
    EntryType.DEPLOYMENT_STATUS_UPDATE: DeploymentStatusChange,
    EntryType.DEPLOYMENT_PROMOTE: DeploymentPromote,
    EntryType.DEPLOYMENT_ALLOC_HEALTH: DeploymentAllocHealth,
    EntryType.PERIODIC_LAUNCH: PeriodicLaunch,
    EntryType.BATCH: Batch,
    EntryType.LEADER_EPOCH: LeaderEpochStart,
    EntryType.CORE_GC: CoreGC,
    EntryType.JOB_SCALE: JobScale,
    EntryType.NODE_DRAIN: NodeDrain,
    EntryType.NODE_ELIGIBILITY: NodeEligibility,
    EntryType.NODE_DEREGISTER: NodeDeregister,
    EntryType.ALLOC_DESIRED_TRANSITION: AllocDesiredTransition,
}
_TYPE_OF = {body: t for t, body in BODY_TYPES.items()}
_decoders = {t: msgspec.msgpack.Decoder(body) for t, body in BODY_TYPES.items()}
_encoder = msgspec.msgpack.Encoder()


class UnknownEntryType(Exception):
    pass


def entry_type(body: Request) -> EntryType:
    return _TYPE_OF[type(body)]


def encode(body: Request) -> bytes:
    return bytes([_TYPE_OF[type(body)]]) + _encoder.encode(to_compact(body))


def decode(blob: bytes) -> tuple[EntryType, Request]:
    if not blob:
        raise UnknownEntryType("empty entry")
    try:
        etype = EntryType(blob[0])
    except ValueError:
        raise UnknownEntryType(f"unknown log entry type {blob[0]}") from None
    return etype, _decoders[etype].decode(blob[1:])
