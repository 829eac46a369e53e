"""What the reconciler answers (``ReconcileResult``: placements, stops, updates, follow-ups
and the plan's ``desired_tg_updates``) and the descriptions Nomad gives its stops."""
from __future__ import annotations

from dataclasses import asdict, dataclass, field

from caravan.fsm.entries import DeploymentStatusUpdate
from caravan.fsm.structs import Allocation, Deployment

ALLOC_NOT_NEEDED = "alloc not needed due to job update"
ALLOC_LOST = "alloc is lost since its node is down"
ALLOC_UPDATING = "alloc is being updated due to job update"
ALLOC_MIGRATING = "alloc is being migrated"
ALLOC_NODE_TAINTED = "alloc not needed as node is tainted"
ALLOC_RESCHEDULED = "alloc was rescheduled because it failed"


@dataclass
class DesiredUpdates:
    """Per-group counters, exactly ``Annotations.DesiredTGUpdates[group]`` of a plan."""
    Ignore: int = 0
    Place: int = 0
    Migrate: int = 0
    Stop: int = 0
    InPlaceUpdate: int = 0
    DestructiveUpdate: int = 0
    Canary: int = 0
    Preemptions: int = 0

    def as_dict(self) -> dict[str, int]:
        return asdict(self)


@dataclass(frozen=True)
class PlaceRequest:
    """A new allocation to place. ``node_id`` is set only by the system reconciler."""
    name: str
    task_group: str
    previous_alloc_id: str | None = None
    canary: bool = False
    node_id: str | None = None
    reschedule: bool = False        # replaces a failed alloc: tracker, node penalty


@dataclass(frozen=True)
class StopRequest:
    """Set ``alloc`` to DesiredStatus stop, with this description (and ClientStatus)."""
    alloc: Allocation
    description: str
    client_status: str | None = None


@dataclass(frozen=True)
class UpdateRequest:
    """An alloc to update. In-place: the worker re-checks the fit on the alloc's node
    and falls back to a destructive update if it no longer fits. Destructive: stop it
    (``ALLOC_UPDATING``) and place ``alloc.Name`` anew, atomically, with it as previous."""
    alloc: Allocation


@dataclass(frozen=True)
class Followup:
    """A follow-up eval to create for failed allocs that may be rescheduled at
    ``wait_until_ns`` (they get its id as ``FollowupEvalID``)."""
    task_group: str
    wait_until_ns: int
    alloc_ids: tuple[str, ...]


@dataclass
class ReconcileResult:
    place: list[PlaceRequest] = field(default_factory=list)
    stop: list[StopRequest] = field(default_factory=list)
    inplace_update: list[UpdateRequest] = field(default_factory=list)
    destructive_update: list[UpdateRequest] = field(default_factory=list)
    ignore: list[Allocation] = field(default_factory=list)
    # Desired-stop allocs still running on a down node: ClientStatus becomes lost. Not
    # part of the annotations (Nomad's scheduler does this beside the reconciler).
    mark_lost: list[StopRequest] = field(default_factory=list)
    desired_tg_updates: dict[str, DesiredUpdates] = field(default_factory=dict)
    # a deployment this pass creates (whole), status changes of existing ones, and the
    # deployment new and replacement allocations join ("" for none)
    deployment: Deployment | None = None
    deployment_updates: list[DeploymentStatusUpdate] = field(default_factory=list)
    deployment_id: str = ""
    all_at_once: bool = False       # the plan must be committed whole or not at all
    followup: bool = False          # MaxParallel held work back: evaluate again later
    followup_wait_ns: int = 0       # the largest Update.Stagger among those groups
    followups: list[Followup] = field(default_factory=list)
