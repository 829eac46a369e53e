"""``caravan node status [ID]``."""
from __future__ import annotations

import click

from server.commands.client import Client, find_by_prefix
from server.commands.options import json_option, verbose_option, with_client
from server.commands.output import emit_json, fmt_time, heading, kv, short, table
from server.commands.render import alloc_rows, status_text


@click.group(name="node")
def group():
    """Interact with nodes."""


@group.command()
@click.argument("node_id", metavar="[ID]", required=False)
@json_option
@verbose_option
@with_client
def status(client: Client, node_id, as_json, verbose):
    """List the nodes, or show one node with its allocations."""
    if not node_id:
        nodes = client.get("/v1/nodes")
        if as_json:
            emit_json(nodes)
            return 0
        table(["ID", "Node Pool", "DC", "Name", "Class", "Drain", "Eligibility", "Status"],
              [[short(n["ID"], verbose), n.get("NodePool", ""), n.get("Datacenter", ""),
                n.get("Name", ""), n.get("NodeClass") or "<none>",
                str(n.get("Drain", False)).lower(), n.get("SchedulingEligibility", ""),
                status_text(n.get("Status", ""))]
               for n in sorted(nodes, key=lambda n: n.get("Name", ""))],
              empty="No nodes registered")
        return 0
    node = find_by_prefix(client, "/v1/nodes", "/v1/node", node_id, "node")
    allocs = client.get(f"/v1/node/{node['ID']}/allocations")
    if as_json:
        emit_json({"Node": node, "Allocations": allocs})
        return 0
    drivers = sorted(name for name, d in (node.get("Drivers") or {}).items()
                     if d.get("Detected") and d.get("Healthy"))
    res = node.get("NodeResources") or {}
    kv([("ID", node["ID"]), ("Name", node.get("Name", "")),
        ("Node Pool", node.get("NodePool", "")), ("Class", node.get("NodeClass") or "<none>"),
        ("DC", node.get("Datacenter", "")), ("Drain", str(node.get("Drain", False)).lower()),
        ("Eligibility", node.get("SchedulingEligibility", "")),
        ("Status", node.get("Status", "")),
        ("Status Updated", fmt_time((node.get("StatusUpdatedAt") or 0) * 1_000_000_000)),
        ("Drivers", ",".join(drivers)),
        ("CPU", f"{(res.get('Cpu') or {}).get('CpuShares', 0)} MHz"),
        ("Memory", f"{(res.get('Memory') or {}).get('MemoryMB', 0)} MiB"),
        ("Disk", f"{(res.get('Disk') or {}).get('DiskMB', 0)} MiB")])
    heading("Allocations")
    alloc_rows([a for a in allocs if a.get("ClientStatus") in ("pending", "running")] if not verbose
               else allocs, verbose, job=True)
    return 0
