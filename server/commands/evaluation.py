"""``caravan eval status ID``."""
from __future__ import annotations

import click

from caravan.server.commands.client import Client, find_by_prefix
from caravan.server.commands.options import json_option, verbose_option, with_client
from caravan.server.commands.output import emit_json, fmt_time, heading, kv, short
from caravan.server.commands.render import alloc_rows, failed_placements, print_lines


@click.group(name="eval")
def group():
    """Interact with evaluations."""


@group.command()
@click.argument("eval_id", metavar="ID")
@json_option
@verbose_option
@with_client
def status(client: Client, eval_id, as_json, verbose):
    """Show an evaluation: status, trigger, placement failures, allocations."""
    ev = find_by_prefix(client, "/v1/evaluations", "/v1/evaluation", eval_id, "evaluation")
    allocs = client.get(f"/v1/evaluation/{ev['ID']}/allocations")
    if as_json:
        emit_json(ev)
        return 0
    failed = bool(ev.get("FailedTGAllocs"))
    kv([("ID", short(ev["ID"], verbose)), ("Create Time", fmt_time(ev.get("CreateTime"))),
        ("Modify Time", fmt_time(ev.get("ModifyTime"))), ("Status", ev.get("Status", "")),
        ("Status Description", ev.get("StatusDescription") or "<none>"),
        ("Type", ev.get("Type", "")), ("TriggeredBy", ev.get("TriggeredBy", "")),
        ("Job ID", ev.get("JobID", "")), ("Priority", ev.get("Priority", "")),
        ("Placement Failures", str(failed).lower()),
        ("Previous Eval", short(ev.get("PreviousEval"), verbose) or "<none>"),
        ("Next Eval", short(ev.get("NextEval"), verbose) or "<none>"),
        ("Blocked Eval", short(ev.get("BlockedEval"), verbose) or "<none>")])
    if failed:
        heading("Failed Placements")
        print_lines(failed_placements(ev["FailedTGAllocs"]), style="red")
    if allocs:
        heading("Allocations")
        alloc_rows(allocs, verbose)
    return 0
