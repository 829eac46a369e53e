"""``caravan alloc status ID``, ``caravan alloc logs [-f] [-stderr] ID [TASK]`` and
``caravan alloc stop ID``."""
from __future__ import annotations

import sys

import click
from rich.text import Text

from caravan.server.commands.client import Client, CommandError, find_by_prefix
from caravan.server.commands.monitor import monitor
from caravan.server.commands.options import json_option, verbose_option, with_client
from caravan.server.commands.output import age, emit_json, fmt_time, heading, kv, out, short, table
from caravan.server.commands.render import status_text


@click.group(name="alloc")
def group():
    """Interact with allocations."""


def find_alloc(client: Client, alloc_id: str) -> dict:
    return find_by_prefix(client, "/v1/allocations", "/v1/allocation", alloc_id, "allocation")


@group.command()
@click.argument("alloc_id", metavar="ID")
@json_option
@verbose_option
@with_client
def status(client: Client, alloc_id, as_json, verbose):
    """Show an allocation: where it runs, its status and each task's events."""
    a = find_alloc(client, alloc_id)
    if as_json:
        emit_json(a)
        return 0
    rows = [("ID", a["ID"]), ("Eval ID", short(a.get("EvalID"), verbose)),
            ("Name", a.get("Name", "")), ("Node ID", short(a.get("NodeID"), verbose)),
            ("Node Name", a.get("NodeName", "")), ("Job ID", a.get("JobID", "")),
            ("Job Version", a.get("JobVersion", 0)), ("Client Status", a.get("ClientStatus", "")),
            ("Client Description", a.get("ClientDescription") or "<none>"),
            ("Desired Status", a.get("DesiredStatus", "")),
            ("Desired Description", a.get("DesiredDescription") or "<none>"),
            ("Created", age(a.get("CreateTime"))), ("Modified", age(a.get("ModifyTime")))]
    if a.get("DeploymentID"):
        health = (a.get("DeploymentStatus") or {}).get("Healthy")
        rows += [("Deployment ID", short(a["DeploymentID"], verbose)),
                 ("Deployment Health", "unset" if health is None
                  else "healthy" if health else "unhealthy")]
    kv(rows)
    _addresses(a)
    if verbose:
        _placement_metrics(a.get("Metrics") or {})
    lifecycles = task_lifecycles(a)
    for name in sorted_task_names(a.get("TaskStates") or {}, lifecycles):
        state = a["TaskStates"][name]
        hook = lifecycles.get(name)
        shown = f" ({hook['Hook']}{' sidecar' if hook.get('Sidecar') else ''})" if hook else ""
        heading(f'Task "{name}"{shown} is "{state.get("State", "")}"')
        kv([("Started At", fmt_time(state.get("StartedAt"))),
            ("Finished At", fmt_time(state.get("FinishedAt"))),
            ("Total Restarts", state.get("Restarts", 0)),
            ("Failed", str(state.get("Failed", False)).lower())])
        events = state.get("Events") or []
        if events:
            out.print()
            table(["Time", "Type", "Description"],
                  [[fmt_time(e.get("Time")), e.get("Type", ""),
                    e.get("DisplayMessage") or e.get("Message") or ""]
                   for e in reversed(events)])
    if not a.get("TaskStates"):
        out.print()
        out.print(Text("Allocation status: ", style="bold")
                  + status_text(a.get("ClientStatus", "")))
    return 0


def _placement_metrics(metrics: dict) -> None:
    """Nomad's ``formatAllocMetrics`` score table: each retained node's score per
    scorer (sorted by name; 0 where a scorer did not score it) and its final score."""
    metas = metrics.get("ScoreMetaData") or []
    if not metas:
        return
    names = sorted(set().union(*((m.get("Scores") or {}) for m in metas)))
    heading("Placement Metrics")
    table(["Node", *names, "final score"],
          [[m.get("NodeID", ""), *(f"{(m.get('Scores') or {}).get(n, 0):.3g}" for n in names),
            f"{m.get('NormScore', 0):.3g}"] for m in metas])


def _addresses(a: dict) -> None:
    """Nomad's "Allocation Addresses" (``formatAllocNetworkInfo``): the group network's
    ports, ``*label`` from ``Shared.Ports``, the port inside after ``->`` when mapped."""
    shared = (a.get("AllocatedResources") or {}).get("Shared") or {}
    nets = shared.get("Networks") or []
    if not nets or not (nets[0].get("DynamicPorts") or nets[0].get("ReservedPorts")):
        return
    net = nets[0]

    def row(label, port, host_ip):
        to = port.get("To") or 0
        address = f"{host_ip}:{port.get('Value', 0)}" + (f" -> {to}" if to > 0 else "")
        return [label, "yes", address]
    if shared.get("Ports"):
        rows = [row("*" + p.get("Label", ""), p, p.get("HostIP", "")) for p in shared["Ports"]]
    else:
        rows = [row(p.get("Label", ""), p, net.get("IP", ""))
                for p in (net.get("DynamicPorts") or []) + (net.get("ReservedPorts") or [])]
    mode = f' (mode = "{net["Mode"]}")' if net.get("Mode") else ""
    heading(f"Allocation Addresses{mode}:")
    table(["Label", "Dynamic", "Address"], rows)


def _task_of(a: dict, task: str | None) -> str:
    job = a.get("Job") or {}
    group_ = next((g for g in job.get("TaskGroups") or [] if g.get("Name") == a.get("TaskGroup")),
                  {})
    names = [t.get("Name") for t in group_.get("Tasks") or []]
    if task:
        if names and task not in names:
            raise CommandError(f'Could not find task named: {task}; the allocation has: '
                               f'{", ".join(names)}')
        return task
    if len(names) == 1:
        return names[0]
    raise CommandError("Allocation has more than one task, specify one: " + ", ".join(names))


@group.command()
@click.argument("alloc_id", metavar="ID")
@click.argument("task", metavar="[TASK]", required=False)
@click.option("-f", "follow", is_flag=True, help="keep printing new output as it arrives")
@click.option("-stderr", "--stderr", "stderr", is_flag=True, help="show stderr instead of stdout")
@with_client
def logs(client: Client, alloc_id, task, follow, stderr):
    """Print a task's stdout (or stderr) of an allocation."""
    a = find_alloc(client, alloc_id)
    params = {"task": _task_of(a, task), "type": "stderr" if stderr else "stdout",
              "plain": "true"}
    if follow:
        params["follow"] = "true"
    sink = sys.stdout.buffer
    with client.stream(f"/v1/client/fs/logs/{a['ID']}", params) as response:
        for chunk in response.iter_bytes():
            sink.write(chunk)
            sink.flush()
    return 0


@group.command()
@click.argument("alloc_id", metavar="ID")
@click.option("-detach", "--detach", "detach", is_flag=True,
              help="return once the evaluation is created, without following it")
@click.option("-no-shutdown-delay", "--no-shutdown-delay", "no_shutdown_delay", is_flag=True,
              help="ignore the group's and tasks' shutdown delays")
@verbose_option
@with_client
def stop(client: Client, alloc_id, detach, no_shutdown_delay, verbose):
    """Stop an allocation; the scheduler places a replacement."""
    alloc = find_alloc(client, alloc_id)
    params = {"no_shutdown_delay": "true"} if no_shutdown_delay else {}
    reply = client.put(f"/v1/allocation/{alloc['ID']}/stop", **params)
    if detach:
        out.print(reply["EvalID"])
        return 0
    return monitor(client, reply["EvalID"], verbose)


def task_lifecycles(alloc: dict) -> dict[str, dict]:
    """Task name -> its Lifecycle block (tasks with a hook only), from the alloc's job."""
    for tg in ((alloc.get("Job") or {}).get("TaskGroups") or ()):
        if tg.get("Name") == alloc.get("TaskGroup"):
            return {t["Name"]: t["Lifecycle"] for t in tg.get("Tasks") or ()
                    if (t.get("Lifecycle") or {}).get("Hook")}
    return {}


def sorted_task_names(states: dict, lifecycles: dict[str, dict]) -> list[str]:
    """Nomad's ``sortedTaskStateIterator``: by name, lifecycle tasks before main ones
    and, among them, non-sidecars first."""
    def rank(name: str) -> int:
        hook = lifecycles.get(name)
        return 2 if hook is None else 1 if hook.get("Sidecar") else 0
    return sorted(sorted(states), key=rank)
