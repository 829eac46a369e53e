"""``server.context.ServiceContext``: the agent's part that the leader services, the
heartbeat tracker and the node RPC service use is declared once, and both the real
agent and the simulation's server implement it."""
from __future__ import annotations

import inspect

from caravan.server.agent import Agent
from caravan.server.config import dev_config
from caravan.server.context import ServiceContext
from caravan.server.heartbeats import HeartbeatTracker
from caravan.server.leader import LeaderServices
from caravan.server.rpc.node import NodeService
from tests.sim.world import SimServer, World


def test_the_agent_is_a_service_context(tmp_path):
    # built, not started: no port is bound and no raft node runs
    config = dev_config(1, 2, 3, str(tmp_path), "secret")
    agent = Agent(config, config.servers[0], str(tmp_path))
    assert isinstance(agent, ServiceContext)
    assert agent.leader_rpc() == ""
    first, second = agent.new_id(), agent.new_id()
    assert first != second and len(first) == 36 and first.count("-") == 4


def test_the_simulated_server_is_a_service_context():
    world = World(0)
    assert world.servers and all(isinstance(s, SimServer) for s in world.servers)
    assert all(isinstance(s, ServiceContext) for s in world.servers)


def test_the_services_are_given_a_service_context():
    for service in (LeaderServices, HeartbeatTracker, NodeService):
        first = list(inspect.signature(service.__init__).parameters.values())[1]
        assert first.annotation in ("ServiceContext", ServiceContext), service


def test_something_missing_a_member_is_not_a_service_context():
    class NoSubmit:
        fsm = raft = notifier = None

        def leader_rpc(self) -> str:
            return ""

    assert not isinstance(NoSubmit(), ServiceContext)
