"""How the API's objects read in a terminal, shared by several commands:
allocation lists, group summaries, deployments and placement failures in words."""
from __future__ import annotations

from typing import Any

from rich.text import Text

from caravan.server.commands.output import age, kv, out, short, table

STATUS_STYLE = {"running": "green", "complete": "green", "successful": "green",
                "failed": "red", "lost": "red", "blocked": "yellow", "pending": "yellow",
                "cancelled": "yellow", "dead": "dim"}


def status_text(status: str) -> Text:
    return Text(status, style=STATUS_STYLE.get(status, ""))


def alloc_rows(allocs: list[dict], verbose: bool = False, job: bool = False) -> None:
    headers = ["ID", "Node ID", "Task Group", "Version", "Desired", "Status", "Created",
               "Modified"]
    if job:
        headers.insert(1, "Job ID")
    rows = []
    for a in sorted(allocs, key=lambda a: a.get("CreateIndex", 0), reverse=True):
        row = [short(a["ID"], verbose), short(a.get("NodeID"), verbose), a.get("TaskGroup", ""),
               a.get("JobVersion", 0), a.get("DesiredStatus", ""),
               status_text(a.get("ClientStatus", "")), age(a.get("CreateTime")),
               age(a.get("ModifyTime"))]
        if job:
            row.insert(1, a.get("JobID", ""))
        rows.append(row)
    table(headers, rows, empty="No allocations placed")


def summary_rows(summary: dict) -> None:
    groups = (summary or {}).get("Summary") or {}
    table(["Task Group", "Queued", "Starting", "Running", "Failed", "Complete", "Lost",
           "Unknown"],
          [[name, s.get("Queued", 0), s.get("Starting", 0), s.get("Running", 0),
            s.get("Failed", 0), s.get("Complete", 0), s.get("Lost", 0), s.get("Unknown", 0)]
           for name, s in sorted(groups.items())])


def children_rows(summary: dict) -> None:
    c = (summary or {}).get("Children") or {}
    table(["Pending", "Running", "Dead"],
          [[c.get("Pending", 0), c.get("Running", 0), c.get("Dead", 0)]])


def deployment_block(d: dict, verbose: bool = False) -> None:
    kv([("ID", short(d["ID"], verbose)), ("Job ID", d.get("JobID", "")),
        ("Job Version", d.get("JobVersion", 0)), ("Status", d.get("Status", "")),
        ("Description", d.get("StatusDescription", ""))])


def deployment_groups(d: dict) -> None:
    groups = d.get("TaskGroups") or {}
    canaries = any(g.get("DesiredCanaries") for g in groups.values())
    headers = ["Task Group"] + (["Promoted"] if canaries else []) + \
        ["Desired"] + (["Canaries"] if canaries else []) + \
        ["Placed", "Healthy", "Unhealthy", "Progress Deadline"]
    rows = []
    for name, g in sorted(groups.items()):
        row = [name] + ([str(g.get("Promoted", False)).lower()] if canaries else []) + \
            [g.get("DesiredTotal", 0)] + ([g.get("DesiredCanaries", 0)] if canaries else []) + \
            [g.get("PlacedAllocs", 0), g.get("HealthyAllocs", 0), g.get("UnhealthyAllocs", 0),
             g.get("RequireProgressBy", "")]
        rows.append(row)
    table(headers, rows)


def failed_placements(failed: dict[str, Any] | None) -> list[str]:
    """Nomad's words for ``FailedTGAllocs``: why each group could not be placed."""
    lines = []
    for group, m in sorted((failed or {}).items()):
        n = (m.get("CoalescedFailures") or 0) + 1
        lines.append(f'Task Group "{group}" (failed to place {n} '
                     f'allocation{"s" if n != 1 else ""}):')
        lines.extend("  * " + reason for reason in metric_reasons(m))
    return lines


def metric_reasons(m: dict) -> list[str]:
    reasons = []
    if not m.get("NodesEvaluated"):
        reasons.append("No nodes were eligible for evaluation")
    for dc, avail in sorted((m.get("NodesAvailable") or {}).items()):
        if not avail:
            reasons.append(f'No nodes are available in datacenter "{dc}"')
    for cls, n in sorted((m.get("ClassFiltered") or {}).items()):
        reasons.append(f'Class "{cls}": {n} nodes excluded by filter')
    for cons, n in sorted((m.get("ConstraintFiltered") or {}).items()):
        reasons.append(f'Constraint "{cons}": {n} nodes excluded by filter')
    if m.get("NodesExhausted"):
        reasons.append(f"Resources exhausted on {m['NodesExhausted']} nodes")
    for cls, n in sorted((m.get("ClassExhausted") or {}).items()):
        reasons.append(f'Class "{cls}" exhausted on {n} nodes')
    for dim, n in sorted((m.get("DimensionExhausted") or {}).items()):
        reasons.append(f'Dimension "{dim}" exhausted on {n} nodes')
    return reasons


def print_lines(lines: list[str], style: str = "") -> None:
    for line in lines:
        out.print(Text(line, style=style))
