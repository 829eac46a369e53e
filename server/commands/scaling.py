"""``caravan scaling policy list [-job ID] [-type TYPE]`` and ``caravan scaling policy
info ID``: the scaling policies of the jobs' ``scaling`` blocks."""
from __future__ import annotations

import json

import click
from rich.text import Text

from caravan.server.commands.client import Client, find_by_prefix
from caravan.server.commands.options import json_option, verbose_option, with_client
from caravan.server.commands.output import emit_json, heading, kv, out, short, table


@click.group(name="scaling")
def group():
    """Interact with scaling policies."""


@group.group(name="policy")
def policy():
    """Scaling policies: list them, show one."""


def _target(target: dict | None) -> str:
    """Nomad's rendering: ``Namespace:default,Job:web,Group:cache``."""
    order = ("Namespace", "Job", "Group", "Task")
    keys = sorted(target or {}, key=lambda k: (order.index(k) if k in order else len(order), k))
    return ",".join(f"{k}:{target[k]}" for k in keys)


@policy.command(name="list")
@click.option("-job", "--job", "job_id", default="", help="only the policies of this job")
@click.option("-type", "--type", "kind", default="", help="only policies of this type")
@json_option
@verbose_option
@with_client
def list_policies(client: Client, job_id, kind, as_json, verbose):
    """List the scaling policies."""
    policies = client.get("/v1/scaling/policies", job=job_id, type=kind)
    if as_json:
        emit_json(policies)
        return 0
    table(["ID", "Enabled", "Type", "Target"],
          [[short(p["ID"], verbose), str(p.get("Enabled")).lower(), p.get("Type", ""),
            _target(p.get("Target"))] for p in policies],
          empty="No policies found")
    return 0


@policy.command()
@click.argument("policy_id", metavar="ID")
@json_option
@verbose_option
@with_client
def info(client: Client, policy_id, as_json, verbose):
    """Show one scaling policy: its target, bounds and policy document."""
    p = find_by_prefix(client, "/v1/scaling/policies", "/v1/scaling/policy", policy_id,
                       "scaling policy")
    if as_json:
        emit_json(p)
        return 0
    kv([("ID", p["ID"]), ("Enabled", str(p.get("Enabled")).lower()),
        ("Target", _target(p.get("Target"))), ("Min", p.get("Min")), ("Max", p.get("Max"))])
    heading("Policy")
    out.print(Text(json.dumps(p.get("Policy") or {}, indent=4, sort_keys=True)))
    return 0
