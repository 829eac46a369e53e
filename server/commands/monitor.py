"""Following an evaluation and then its deployment, as ``nomad job run`` does:
status changes and placements as they happen, placement failures in words, and a
live table of the deployment's groups until it finishes."""
from __future__ import annotations

import time

from rich.live import Live
from rich.table import Table
from rich.text import Text

from caravan.server.commands.client import Client
from caravan.server.commands.output import out, short
from caravan.server.commands.render import failed_placements, print_lines

TERMINAL_EVAL = ("complete", "failed", "canceled", "cancelled")
WAIT = "10s"


def _stamp() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S%z")


def monitor(client: Client, eval_id: str, verbose: bool = False) -> int:
    """0 when everything was placed (and any deployment succeeded), 2 when placement
    failed, 1 when the evaluation or the deployment failed."""
    out.print(Text(f'==> {_stamp()}: Monitoring evaluation "{short(eval_id, verbose)}"',
                   style="bold"))
    index, status, seen_allocs, ev = 0, None, set(), None
    while True:
        ev = client.get(f"/v1/evaluation/{eval_id}", index=index, wait=WAIT)
        if status is None:
            out.print(f"    Evaluation triggered by job \"{ev.get('JobID', '')}\"")
        index = max(index, ev.get("ModifyIndex", 0))
        for a in client.get(f"/v1/evaluation/{eval_id}/allocations"):
            if a["ID"] not in seen_allocs:
                seen_allocs.add(a["ID"])
                out.print(f'    Allocation "{short(a["ID"], verbose)}" created: node '
                          f'"{short(a.get("NodeID"), verbose)}", group "{a.get("TaskGroup")}"')
        if ev["Status"] != status:
            if status is not None:
                out.print(f'    Evaluation status changed: "{status}" -> "{ev["Status"]}"')
            status = ev["Status"]
        if status in TERMINAL_EVAL:
            break
    out.print(Text(f'==> {_stamp()}: Evaluation "{short(eval_id, verbose)}" finished with '
                   f'status "{status}"', style="bold"))
    if ev.get("FailedTGAllocs"):
        out.print(Text(f"==> {_stamp()}: Evaluation \"{short(eval_id, verbose)}\" "
                       "finished with placement failures", style="bold red"))
        print_lines(["    " + line for line in failed_placements(ev["FailedTGAllocs"])],
                    style="red")
        if ev.get("BlockedEval"):
            out.print(f'    Evaluation "{short(ev["BlockedEval"], verbose)}" waiting for '
                      f"additional capacity to place remainder")
        return 2
    if status != "complete":
        if ev.get("StatusDescription"):
            out.print(f"    {ev['StatusDescription']}")
        return 1
    if ev.get("DeploymentID"):
        return monitor_deployment(client, ev["DeploymentID"], verbose)
    return 0


def _deployment_table(d: dict) -> Table:
    t = Table(box=None, pad_edge=False, padding=(0, 2, 0, 0), header_style="bold")
    for h in ("Task Group", "Desired", "Placed", "Healthy", "Unhealthy", "Progress Deadline"):
        t.add_column(h, no_wrap=True)
    for name, g in sorted((d.get("TaskGroups") or {}).items()):
        t.add_row(name, str(g.get("DesiredTotal", 0)), str(g.get("PlacedAllocs", 0)),
                  Text(str(g.get("HealthyAllocs", 0)), style="green"),
                  Text(str(g.get("UnhealthyAllocs", 0)),
                       style="red" if g.get("UnhealthyAllocs") else ""),
                  g.get("RequireProgressBy", ""))
    return t


def monitor_deployment(client: Client, deployment_id: str, verbose: bool = False) -> int:
    out.print(Text(f'==> {_stamp()}: Monitoring deployment "{short(deployment_id, verbose)}"',
                   style="bold"))
    index, d = 0, None
    with Live(console=out, auto_refresh=False) as live:
        while True:
            d = client.get(f"/v1/deployment/{deployment_id}", index=index, wait=WAIT)
            index = max(index, d.get("ModifyIndex", 0))
            live.update(_deployment_table(d), refresh=True)
            if d.get("Status") not in ("running", "pending", "paused", "blocked",
                                       "unblocking", "initializing"):
                break
    out.print(Text(f'    Deployment "{short(deployment_id, verbose)}" {d.get("Status")}',
                   style="green" if d.get("Status") == "successful" else "red"))
    if d.get("StatusDescription"):
        out.print(f"    {d['StatusDescription']}")
    return 0 if d.get("Status") == "successful" else 1
