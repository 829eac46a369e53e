"""``caravan node status [ID]``, ``node drain``, ``node eligibility``."""
from __future__ import annotations

import click

from caravan.fsm.durations import parse_go_duration
from caravan.server.commands.client import Client, CommandError, find_by_prefix
from caravan.server.commands.options import json_option, verbose_option, with_client
from caravan.server.commands.output import emit_json, fmt_time, heading, kv, short, table
from caravan.server.commands.render import alloc_rows, status_text


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


def _one_of(enable: bool, disable: bool) -> bool:
    if enable == disable:
        raise click.UsageError("Either the '-enable' or '-disable' flag must be set")
    return enable


def _meta(message: str | None, pairs: tuple[str, ...]) -> dict[str, str] | None:
    meta = {"message": message} if message else {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"-meta {pair!r}: expected KEY=VALUE")
        meta[key] = value
    return meta or None


@group.command()
@click.argument("node_id", metavar="ID")
@click.option("-enable", "--enable", "enable", is_flag=True, help="start draining the node")
@click.option("-disable", "--disable", "disable", is_flag=True, help="stop draining the node")
@click.option("-deadline", "--deadline", "deadline", default="1h", metavar="DURATION",
              help="force what is left off the node after this long (default 1h)")
@click.option("-no-deadline", "--no-deadline", "no_deadline", is_flag=True,
              help="no deadline: wait for every allocation to move")
@click.option("-force", "--force", "force", is_flag=True, help="force everything off at once")
@click.option("-ignore-system", "--ignore-system", "ignore_system", is_flag=True,
              help="leave the system jobs' allocations on the node")
@click.option("-keep-ineligible", "--keep-ineligible", "keep_ineligible", is_flag=True,
              help="with -disable: leave the node ineligible for scheduling")
@click.option("-m", "message", default=None, help="a message kept in the drain's metadata")
@click.option("-meta", "--meta", "meta", multiple=True, metavar="KEY=VALUE",
              help="drain metadata (repeatable)")
@click.option("-detach", "--detach", "detach", is_flag=True,
              help="return at once instead of following the drain until it completes")
@click.option("-yes", "--yes", "yes", is_flag=True, help="(accepted for Nomad compatibility)")
@with_client
def drain(client: Client, node_id, enable, disable, deadline, no_deadline, force,
          ignore_system, keep_ineligible, message, meta, detach, yes):
    """Set or cancel a node's drain (Nomad's ``node drain``)."""
    enabling = _one_of(enable, disable)
    node = find_by_prefix(client, "/v1/nodes", "/v1/node", node_id, "node")
    body = {"NodeID": node["ID"], "Meta": _meta(message, meta)}
    if enabling:
        if force:
            ns = -1
        elif no_deadline:
            ns = 0
        else:
            try:
                ns = parse_go_duration(deadline)
            except ValueError:
                raise click.UsageError(f"-deadline {deadline!r}: not a duration") from None
        body["DrainSpec"] = {"Deadline": ns, "IgnoreSystemJobs": ignore_system}
    else:
        body.update(DrainSpec=None, MarkEligible=not keep_ineligible)
    client.put(f"/v1/node/{node['ID']}/drain", body)
    click.echo(f'Node "{node["ID"]}" drain strategy {"set" if enabling else "unset"}')
    if not enabling or detach:
        return 0
    index = 0
    while True:   # a blocking query on the node until the drain is over
        r = client.request("GET", f"/v1/node/{node['ID']}", params={"index": index,
                                                                    "wait": "30s"})
        index = int(r.headers.get("x-nomad-index", index))
        current = r.json()
        status = (current.get("LastDrain") or {}).get("Status")
        if status == "complete":
            click.echo(f'Drain complete for node "{node["ID"]}"')
            return 0
        if status != "draining":
            raise CommandError(f'Drain for node "{node["ID"]}" was {status or "cancelled"}')


@group.command()
@click.argument("node_id", metavar="ID")
@click.option("-enable", "--enable", "enable", is_flag=True, help="make the node eligible")
@click.option("-disable", "--disable", "disable", is_flag=True, help="make it ineligible")
@with_client
def eligibility(client: Client, node_id, enable, disable):
    """Toggle whether new allocations may be placed on a node."""
    value = "eligible" if _one_of(enable, disable) else "ineligible"
    node = find_by_prefix(client, "/v1/nodes", "/v1/node", node_id, "node")
    client.put(f"/v1/node/{node['ID']}/eligibility", {"NodeID": node["ID"], "Eligibility": value})
    click.echo(f'Node "{node["ID"]}" scheduling eligibility set: {value} for scheduling')
    return 0
