"""The servers' gRPC port: ``caravan.v1.Status`` (leader, peers, health),
``caravan.v1.Node`` (registration, heartbeats, allocations; ``server/rpc/node.py``) and
``caravan.v1.Scheduling`` (followers' workers; ``server/rpc/scheduling.py``)."""
from __future__ import annotations

import grpc

from caravan.proto import status_pb2 as pb
from caravan.proto import status_pb2_grpc as pb_grpc
from caravan.server.rpc.node import register_node_service
from caravan.server.rpc.scheduling import register_scheduling_service


class StatusService(pb_grpc.StatusServicer):
    def __init__(self, agent):
        self._agent = agent

    async def Leader(self, request, context):
        return pb.Address(address=self._agent.leader_rpc())

    async def Peers(self, request, context):
        return pb.Addresses(addresses=self._agent.peer_rpcs())

    async def Ping(self, request, context):
        leader = self._agent.leader_rpc()
        return pb.Health(ok=bool(leader), leader=leader,
                         applied_index=self._agent.fsm.state.last_index)


async def start_server(agent, address: str) -> grpc.aio.Server:
    server = grpc.aio.server()
    pb_grpc.add_StatusServicer_to_server(StatusService(agent), server)
    register_node_service(server, agent)
    register_scheduling_service(server, agent)
    if server.add_insecure_port(address) == 0:
        raise OSError(f"cannot bind the RPC port {address}")
    await server.start()
    return server
