"""A node's event history (Nomad's ``Node.Events``): Nomad's messages, and the append
that keeps only the newest ``MAX_NODE_EVENTS``. Timestamps come from the entry (the
time its submitter decided), never from a clock here."""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm.structs import Node, NodeEvent
from caravan.fsm.times import format_rfc3339

MAX_NODE_EVENTS = 10     # Nomad's maxNodeEvents

SUBSYSTEM_CLUSTER = "Cluster"
SUBSYSTEM_DRAIN = "Drain"

REGISTERED = "Node registered"
REREGISTERED = "Node re-registered"
HEARTBEAT_MISSED = "Node heartbeat missed"
HEARTBEAT_REREGISTERED = "Node reregistered by heartbeat"
DRAIN_SET = "Node drain strategy set"
DRAIN_UPDATED = "Node drain strategy updated"
DRAIN_DISABLED = "Node drain disabled"
DRAIN_COMPLETE = "Node drain complete"
DRAIN_DEADLINED = "deadline_reached"          # detail key of a drain forced at its deadline
ELIGIBLE = "Node marked as eligible for scheduling"
INELIGIBLE = "Node marked as ineligible for scheduling"


def event(message: str, subsystem: str, now_ns: int,
          details: dict[str, str] | None = None) -> NodeEvent:
    return NodeEvent(Message=message, Subsystem=subsystem, Details=details,
                     Timestamp=format_rfc3339(now_ns))


def append(node: Node, events: list[NodeEvent], index: int) -> Node:
    """The node with ``events`` added at ``index`` (Nomad's ``appendNodeEvents``)."""
    if not events:
        return node
    kept = list(node.Events or ()) + [replace(ev, CreateIndex=index) for ev in events]
    return replace(node, Events=kept[-MAX_NODE_EVENTS:])
