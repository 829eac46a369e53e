"""What the server's services are given: ``ServiceContext``, the part of an agent
that the leader's services (``server.leader.LeaderServices``), the heartbeat tracker
(``server.heartbeats``) and the node RPC service (``server.rpc.node``) use, declared.

``server.agent.Agent`` implements it (ids from ``server.ids``), and so does the simulation's server
(``tests/sim/world.SimServer``); neither inherits from it. A service asks nothing else
of the agent: a new need is added here first, where both implementations are held to
it (``tests/unit/test_service_context.py``).
"""
from __future__ import annotations

from typing import Protocol, runtime_checkable

from caravan.fsm.store import State
from caravan.fsm.submit import Submit
from caravan.scheduler.background import AnyCommits, WriteListener


class Replica(Protocol):
    """This server's copy of the state machine."""

    @property
    def state(self) -> State:
        """The current snapshot (a new object after each applied entry)."""
        ...

    @property
    def write_listeners(self) -> list[WriteListener]:
        """Hooks told the keys each applied entry wrote (``FSM.write_listeners``)."""
        ...


class Leadership(Protocol):
    @property
    def is_leader(self) -> bool: ...


@runtime_checkable
class ServiceContext(Protocol):
    fsm: Replica                      # the state and its write hooks
    raft: Leadership                  # whether this server leads
    submit: Submit                    # every write (``caravan.fsm.submit``)
    notifier: AnyCommits | None       # commit notifications (None before start-up)

    def leader_rpc(self) -> str:
        """The leader's RPC address ("" when none is known)."""
        ...

    def new_id(self) -> str:
        """A fresh id (Nomad's UUID form) for an eval the service creates, decided
        before the entry that carries it is submitted."""
        ...
