"""``caravan server members``: the raft peers and which one leads."""
from __future__ import annotations

import click

from server.commands.client import Client
from server.commands.options import json_option, with_client
from server.commands.output import emit_json, table


@click.group(name="server")
def group():
    """Interact with the servers."""


@group.command()
@json_option
@with_client
def members(client: Client, as_json):
    """List the servers of the cluster (their RPC addresses) and the leader."""
    peers = client.get("/v1/status/peers")
    leader = client.get("/v1/status/leader")
    rows = []
    for peer in sorted(peers):
        host, _, port = peer.rpartition(":")
        rows.append({"Address": host, "Port": port, "Leader": peer == leader})
    if as_json:
        emit_json(rows)
        return 0
    table(["Address", "Port", "Leader"],
          [[r["Address"], r["Port"], str(r["Leader"]).lower()] for r in rows])
    return 0
