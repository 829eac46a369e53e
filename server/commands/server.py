"""``caravan server members``: the servers, their status and which one leads."""
from __future__ import annotations

import click

from caravan.server.commands.client import Client
from caravan.server.commands.options import json_option, with_client
from caravan.server.commands.output import emit_json, table


@click.group(name="server")
def group():
    """Interact with the servers."""


@group.command()
@json_option
@with_client
def members(client: Client, as_json):
    """List the servers of the cluster, their status as the queried server sees it, and
    the leader."""
    reply = client.get("/v1/agent/members")
    rows = []
    for m in sorted(reply.get("Members") or [], key=lambda m: m["Name"]):
        tags = m.get("Tags") or {}
        rows.append({"Name": m["Name"], "Address": m["Addr"], "Port": m["Port"],
                     "Status": m["Status"], "Leader": tags.get("leader") == "true",
                     "RaftVersion": tags.get("raft_vsn", ""), "Build": tags.get("build", ""),
                     "Datacenter": tags.get("dc", ""), "Region": tags.get("region", "")})
    if as_json:
        emit_json(rows)
        return 0
    table(["Name", "Address", "Port", "Status", "Leader", "Raft Version", "Build",
           "Datacenter", "Region"],
          [[r["Name"], r["Address"], str(r["Port"]), r["Status"], str(r["Leader"]).lower(),
            r["RaftVersion"], r["Build"], r["Datacenter"], r["Region"]] for r in rows])
    return 0
