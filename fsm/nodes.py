"""Nodes inside a write transaction: a node's own registration and status, and the
operator's changes: drain, eligibility, purge (Nomad's ``UpdateNodeDrain``,
``UpdateNodeEligibility``, ``DeleteNode``).

What Nomad's RPC decides from a snapshot (the node event's message, the drain's
start) is decided here from the state at apply time instead, so a request that raced
another change still records what actually happened; every time comes from the entry.
"""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import node_events as ev_
from caravan.fsm import schema as t
from caravan.fsm.jobs import Rejected
from caravan.fsm.store import Txn
from caravan.fsm.structs import DrainMetadata, DrainStrategy, Node
from caravan.fsm.times import ZERO_TIME, format_rfc3339

ELIGIBLE, INELIGIBLE = "eligible", "ineligible"
DRAIN_DRAINING, DRAIN_COMPLETE, DRAIN_CANCELED = "draining", "complete", "canceled"


def register_node(txn: Txn, node: Node) -> Node:
    existing = txn.get(t.NODES, node.ID)
    at = node.StatusUpdatedAt * 1_000_000_000
    if existing is None:
        node = replace(node, CreateIndex=txn.index, ModifyIndex=txn.index, Events=None)
        events = [ev_.event(ev_.REGISTERED, ev_.SUBSYSTEM_CLUSTER, at)]
    else:
        # drain and eligibility belong to operators, not to the node's own registration
        node = replace(node, CreateIndex=existing.CreateIndex, ModifyIndex=txn.index,
                       Drain=existing.Drain, DrainStrategy=existing.DrainStrategy,
                       LastDrain=existing.LastDrain, Events=existing.Events,
                       SchedulingEligibility=existing.SchedulingEligibility)
        events = [ev_.event(ev_.REREGISTERED, ev_.SUBSYSTEM_CLUSTER, at)] \
            if existing.Status == "down" and node.Status != "down" else []
    node = ev_.append(node, events, txn.index)
    txn.put(t.NODES, node)
    return node


def set_node_status(txn: Txn, node_id: str, status: str, updated_at: int) -> Node:
    node = txn.get(t.NODES, node_id)
    if node is None:
        raise Rejected(404, "node not found")
    if status not in ("initializing", "ready", "down"):
        raise Rejected(400, "invalid status for node")
    events = []
    if status == "down" and node.Status != "down":
        events.append(ev_.event(ev_.HEARTBEAT_MISSED, ev_.SUBSYSTEM_CLUSTER,
                                updated_at * 1_000_000_000))
    elif node.Status == "down" and status != "down":
        events.append(ev_.event(ev_.HEARTBEAT_REREGISTERED, ev_.SUBSYSTEM_CLUSTER,
                                updated_at * 1_000_000_000))
    node = ev_.append(replace(node, Status=status, StatusUpdatedAt=updated_at,
                              ModifyIndex=txn.index), events, txn.index)
    txn.put(t.NODES, node)
    return node


def _node(txn: Txn, node_id: str) -> Node:
    node: Node | None = txn.get(t.NODES, node_id)
    if node is None:
        raise Rejected(404, "node not found")
    return node


def start_strategy(spec: DrainStrategy, current: DrainStrategy | None, now_ns: int) -> DrainStrategy:
    """The strategy as stored: StartedAt kept from a drain already under way, else now;
    ForceDeadline now + Deadline when the deadline is positive (Nomad's UpdateDrain)."""
    started = current.StartedAt if current is not None else format_rfc3339(now_ns)
    force = format_rfc3339(now_ns + spec.Deadline) if spec.Deadline > 0 else ZERO_TIME
    return replace(spec, StartedAt=started, ForceDeadline=force)


def update_drain(txn: Txn, node_id: str, strategy: DrainStrategy | None, mark_eligible: bool,
                 meta: dict[str, str] | None, now_ns: int, completed: bool = False,
                 started_at: str = "", details: dict[str, str] | None = None) -> Node:
    node = _node(txn, node_id)
    if completed and (node.DrainStrategy is None or
                      (started_at and node.DrainStrategy.StartedAt != started_at)):
        raise Rejected(409, f"node {node_id} is not draining (the drain it finished is over)")
    if strategy is not None:
        strategy = start_strategy(strategy, node.DrainStrategy, now_ns)
    eligibility = node.SchedulingEligibility
    if strategy is not None:
        eligibility = INELIGIBLE
    elif mark_eligible:
        eligibility = ELIGIBLE
    seconds = format_rfc3339(now_ns // 1_000_000_000 * 1_000_000_000)
    last = node.LastDrain
    if node.DrainStrategy is not None or strategy is not None:
        if node.DrainStrategy is None:
            last = DrainMetadata(StartedAt=seconds, Meta=meta)
        elif last is None:
            last = DrainMetadata(StartedAt=node.DrainStrategy.StartedAt, Meta=meta)
        status = DRAIN_DRAINING if strategy is not None else \
            DRAIN_COMPLETE if completed else DRAIN_CANCELED
        last = replace(last, UpdatedAt=seconds, Status=status, Meta=meta or last.Meta)
    if completed:
        message = ev_.DRAIN_COMPLETE
    elif node.DrainStrategy is None and strategy is not None:
        message = ev_.DRAIN_SET
    elif node.DrainStrategy is not None and strategy is not None:
        message = ev_.DRAIN_UPDATED
    elif node.DrainStrategy is not None:
        message = ev_.DRAIN_DISABLED
    else:
        message = ""
    events = [ev_.event(message, ev_.SUBSYSTEM_DRAIN, now_ns, details)] if message else []
    node = replace(node, DrainStrategy=strategy, Drain=strategy is not None, LastDrain=last,
                   SchedulingEligibility=eligibility, ModifyIndex=txn.index)
    node = ev_.append(node, events, txn.index)
    txn.put(t.NODES, node)
    return node


def update_eligibility(txn: Txn, node_id: str, eligibility: str, now_ns: int) -> Node:
    if eligibility not in (ELIGIBLE, INELIGIBLE):
        raise Rejected(400, f'invalid scheduling eligibility "{eligibility}"')
    node = _node(txn, node_id)
    if node.DrainStrategy is not None and eligibility == ELIGIBLE:
        raise Rejected(400, "can not set node's scheduling eligibility to eligible while it "
                            "is draining")
    if node.SchedulingEligibility == eligibility:
        return node
    message = ev_.ELIGIBLE if eligibility == ELIGIBLE else ev_.INELIGIBLE
    node = replace(node, SchedulingEligibility=eligibility, ModifyIndex=txn.index)
    node = ev_.append(node, [ev_.event(message, ev_.SUBSYSTEM_CLUSTER, now_ns)], txn.index)
    txn.put(t.NODES, node)
    return node


def deregister(txn: Txn, node_id: str) -> None:
    _node(txn, node_id)
    txn.delete(t.NODES, node_id)
