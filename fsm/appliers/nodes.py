"""Appliers of node entries: register, status, drain, eligibility and deregister."""
from __future__ import annotations

from msgspec.structs import replace

from caravan.fsm import entries as e
from caravan.fsm import nodes
from caravan.fsm import schema as t
from caravan.fsm.appliers import Result
from caravan.fsm.evals import upsert_evals
from caravan.fsm.store import Txn
from caravan.fsm.structs import Evaluation, Node


def node_register(txn: Txn, body: e.NodeRegister) -> Result:
    node = nodes.register_node(txn, body.Node)
    if body.Evals:
        upsert_evals(txn, [replace(ev, NodeModifyIndex=node.ModifyIndex)
                                  for ev in body.Evals])
    return {"NodeModifyIndex": node.ModifyIndex,
            "EvalIDs": [ev.ID for ev in body.Evals or ()]}


def node_status(txn: Txn, body: e.NodeStatus) -> Result:
    node = nodes.set_node_status(txn, body.NodeID, body.Status, body.UpdatedAt)
    if body.Evals:
        upsert_evals(txn, [replace(ev, NodeModifyIndex=node.ModifyIndex)
                                  for ev in body.Evals])
    return {"NodeModifyIndex": node.ModifyIndex,
            "EvalIDs": [ev.ID for ev in body.Evals or ()]}


def node_drain(txn: Txn, body: e.NodeDrain) -> Result:
    node = nodes.update_drain(txn, body.NodeID, body.DrainStrategy, body.MarkEligible,
                              body.Meta, body.Now, body.Completed, body.StartedAt,
                              body.EventDetails)
    return _node_evals(txn, node, body.Evals)


def node_eligibility(txn: Txn, body: e.NodeEligibility) -> Result:
    before = txn.get(t.NODES, body.NodeID)
    node = nodes.update_eligibility(txn, body.NodeID, body.Eligibility, body.Now)
    # evals only for a node that became eligible (the submitter's view may be stale)
    becomes_eligible = before is not None and before.SchedulingEligibility != "eligible" \
        and node.SchedulingEligibility == "eligible"
    return _node_evals(txn, node, body.Evals if becomes_eligible else None)


def node_deregister(txn: Txn, body: e.NodeDeregister) -> Result:
    nodes.deregister(txn, body.NodeID)
    return _node_evals(txn, None, body.Evals)


def _node_evals(txn: Txn, node: Node | None, evals: list[Evaluation] | None) -> Result:
    """Nomad's node update answer: the node's new ModifyIndex and the evals made."""
    if evals:
        upsert_evals(txn, [replace(ev, NodeModifyIndex=txn.index) for ev in evals])
    return {"NodeModifyIndex": node.ModifyIndex if node is not None else txn.index,
            "EvalIDs": [ev.ID for ev in evals or ()],
            "EvalCreateIndex": txn.index if evals else 0}
