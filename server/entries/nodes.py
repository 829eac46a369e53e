"""The log entries of the Nodes API's drain and eligibility writes (Nomad's
``Node.UpdateDrain`` and ``Node.UpdateEligibility``), shared by the gateway
(``server.http.node_writes``) and the simulation; every time and id is decided here."""
from __future__ import annotations

import msgspec

from caravan.fsm import entries as e
from caravan.fsm import nodes
from caravan.fsm.store import State
from caravan.fsm.structs import DrainStrategy, Node
from caravan.scheduler.api import node_update_evals
from caravan.server import ids
from caravan.server.errors import ApiError


class DrainSpec(msgspec.Struct, forbid_unknown_fields=False):
    Deadline: int = 0               # ns; 0: no deadline, negative: force at once
    IgnoreSystemJobs: bool = False


def drain_entry(state: State, node: Node, spec: DrainSpec | None, mark_eligible: bool,
                meta: dict[str, str] | None, now_ns: int) -> e.NodeDrain:
    """Nomad's UpdateDrain: a node made eligible again (drain cancelled with
    MarkEligible) gets evals for its jobs and the system jobs."""
    strategy = DrainStrategy(Deadline=spec.Deadline, IgnoreSystemJobs=spec.IgnoreSystemJobs) \
        if spec is not None else None
    evals = None
    if node.SchedulingEligibility == nodes.INELIGIBLE and mark_eligible and strategy is None:
        evals = node_update_evals(state, node.ID, now_ns, ids.uuid4_str, system_jobs=True) or None
    return e.NodeDrain(NodeID=node.ID, DrainStrategy=strategy, MarkEligible=mark_eligible,
                       Meta=meta, Now=now_ns, Evals=evals)


def eligibility_entry(state: State, node: Node, eligibility: str,
                      now_ns: int) -> e.NodeEligibility:
    evals = None
    if node.SchedulingEligibility == nodes.INELIGIBLE and eligibility == nodes.ELIGIBLE:
        evals = node_update_evals(state, node.ID, now_ns, ids.uuid4_str, system_jobs=True) or None
    return e.NodeEligibility(NodeID=node.ID, Eligibility=eligibility, Now=now_ns, Evals=evals)


def check_eligibility(node: Node, eligibility: str) -> None:
    if eligibility not in (nodes.ELIGIBLE, nodes.INELIGIBLE):
        raise ApiError(400, f'invalid scheduling eligibility "{eligibility}"')
    if node.DrainStrategy is not None and eligibility == nodes.ELIGIBLE:
        raise ApiError(400, "can not set node's scheduling eligibility to eligible while it "
                            "is draining")
