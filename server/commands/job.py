"""``caravan job ...``: run, plan, status, stop, history, revert, dispatch, periodic
force, inspect, validate, eval, scale."""
from __future__ import annotations

import base64
import sys

import click
from rich.text import Text

from caravan.server.commands.client import Client, CommandError, quote_id
from caravan.server.commands.diff_render import render_job_diff
from caravan.server.commands.jobfile import load_job, with_vars
from caravan.server.commands.monitor import monitor
from caravan.server.commands.options import json_option, verbose_option, with_client
from caravan.server.commands.output import emit_json, fmt_time, heading, kv, out, short, table
from caravan.server.commands.render import (
    alloc_rows,
    children_rows,
    deployment_block,
    failed_placements,
    print_lines,
    status_text,
    summary_rows,
)


@click.group(name="job")
def group():
    """Interact with jobs."""


detach_option = click.option("-detach", "--detach", "detach", is_flag=True,
                             help="return once the evaluation is created, without following it")


def _job_path(job_id: str, suffix: str = "") -> str:
    return f"/v1/job/{quote_id(job_id)}{suffix}"


def _after_write(client: Client, reply: dict, detach: bool, verbose: bool) -> int:
    eval_id = reply.get("EvalID")
    if not eval_id:
        return 0
    if detach:
        out.print(f"Evaluation ID: {eval_id}")
        return 0
    return monitor(client, eval_id, verbose)


# --- run / plan / validate -----------------------------------------------------------------


@group.command()
@click.argument("path", metavar="FILE")
@click.option("-check-index", "--check-index", "check_index", type=int,
              help="register only if the job's modify index is this (0: must be new)")
@detach_option
@verbose_option
@with_vars
@with_client
def run(client: Client, path, check_index, detach, verbose, var, var_file):
    """Register the job in FILE (HCL or JSON; - for stdin) and follow its placement."""
    job = load_job(client, path, var, var_file)
    body = {"Job": job}
    if check_index is not None:
        body.update(EnforceIndex=True, JobModifyIndex=check_index)
    reply = client.put("/v1/jobs", body)
    if reply.get("Warnings"):
        out.print(Text("Job Warnings:\n" + reply["Warnings"], style="yellow"))
    if job.get("Periodic") or job.get("ParameterizedJob"):
        out.print(Text("Job registration successful", style="green"))
        return 0
    return _after_write(client, reply, detach, verbose)


def _changes(annotations: dict | None) -> bool:
    updates = (annotations or {}).get("DesiredTGUpdates") or {}
    return any(u.get(k) for u in updates.values()
               for k in ("Place", "Stop", "Migrate", "DestructiveUpdate", "Canary"))


@group.command()
@click.argument("path", metavar="FILE")
@verbose_option
@with_vars
@with_client
def plan(client: Client, path, verbose, var, var_file):
    """Show what registering the job in FILE would change, without changing anything.

    Exit code 0: no allocations created or destroyed; 1: some would be; 255: error."""
    try:
        job = load_job(client, path, var, var_file)
        if not job.get("ID"):
            raise CommandError("Job ID hasn't been provided")
        reply = client.put(_job_path(job["ID"], "/plan"), {"Job": job, "Diff": True})
    except CommandError as exc:
        raise CommandError(exc.message, code=255) from None
    annotations = reply.get("Annotations") or {}
    if reply.get("Diff"):
        render_job_diff(reply["Diff"], annotations.get("DesiredTGUpdates"), verbose)
    out.print()
    out.print(Text("Scheduler dry-run:", style="bold"))
    if reply.get("FailedTGAllocs"):
        out.print(Text("- WARNING: Failed to place all allocations.", style="yellow"))
        print_lines(["  " + line for line in failed_placements(reply["FailedTGAllocs"])],
                    style="yellow")
    else:
        out.print(Text("- All tasks successfully allocated.", style="green"))
    if reply.get("NextPeriodicLaunch") and not reply["NextPeriodicLaunch"].startswith("0001"):
        out.print(f"- If submitted now, next periodic launch would be at "
                  f"{reply['NextPeriodicLaunch']}")
    if reply.get("Warnings"):
        out.print(Text("\nJob Warnings:\n" + reply["Warnings"], style="yellow"))
    index = reply.get("JobModifyIndex", 0)
    out.print()
    out.print(f"Job Modify Index: {index}")
    out.print("To submit the job with version verification run:")
    out.print()
    out.print(Text(f"caravan job run -check-index {index} {path}", style="bold"))
    out.print()
    out.print("When running the job with the check-index flag, the job will only be run if the\n"
              "job modify index given matches the server-side version. If the index has\n"
              "changed, another user has modified the job and the plan's results are\n"
              "potentially invalid.")
    return 1 if _changes(annotations) else 0


@group.command()
@click.argument("path", metavar="FILE")
@json_option
@with_vars
@with_client
def validate(client: Client, path, as_json, var, var_file):
    """Check the job in FILE for errors without registering it."""
    job = load_job(client, path, var, var_file)
    reply = client.put("/v1/validate/job", {"Job": job})
    if as_json:
        emit_json(reply)
        return 1 if reply.get("ValidationErrors") else 0
    if reply.get("ValidationErrors"):
        out.print(Text("Job validation errors:", style="red"))
        for e in reply["ValidationErrors"]:
            out.print(Text(f"  * {e}", style="red"))
        return 1
    if reply.get("Warnings"):
        out.print(Text("Job Warnings:\n" + reply["Warnings"], style="yellow"))
    out.print(Text("Job validation successful", style="green"))
    return 0


# --- status / inspect / history -----------------------------------------------------------------


def _find_job(client: Client, job_id: str) -> dict:
    """The job with this ID, or the one job whose ID starts with it (as Nomad does)."""
    try:
        return client.get(_job_path(job_id))
    except CommandError as exc:
        if exc.status != 404:
            raise
    matches = client.get("/v1/jobs", prefix=job_id)
    if len(matches) == 1:
        return client.get(_job_path(matches[0]["ID"]))
    if not matches:
        raise CommandError(f'No job(s) with prefix or ID "{job_id}" found')
    raise CommandError(f'Prefix matched multiple jobs: '
                       f'{", ".join(m["ID"] for m in matches)}')


@group.command()
@click.argument("job_id", metavar="[ID]", required=False)
@json_option
@verbose_option
@with_client
def status(client: Client, job_id, as_json, verbose):
    """List the jobs, or show one job: summary, latest deployment, allocations."""
    if not job_id:
        jobs = client.get("/v1/jobs")
        if as_json:
            emit_json(jobs)
            return 0
        table(["ID", "Type", "Priority", "Status", "Submit Date"],
              [[j["ID"], j.get("Type", ""), j.get("Priority", ""),
                status_text(j.get("Status", "")), fmt_time(j.get("SubmitTime"))]
               for j in sorted(jobs, key=lambda j: j["ID"])], empty="No running jobs")
        return 0
    job = _find_job(client, job_id)
    jid = job["ID"]
    summary = client.get(_job_path(jid, "/summary"))
    allocs = client.get(_job_path(jid, "/allocations"))
    deployment = client.get(_job_path(jid, "/deployment"))
    if as_json:
        emit_json({"Job": job, "Summary": summary, "Allocations": allocs,
                   "LatestDeployment": deployment})
        return 0
    periodic, parameterized = bool(job.get("Periodic")), bool(job.get("ParameterizedJob"))
    kv([("ID", jid), ("Name", job.get("Name", "")),
        ("Submit Date", fmt_time(job.get("SubmitTime"))),
        ("Type", job.get("Type", "")), ("Priority", job.get("Priority", "")),
        ("Datacenters", ",".join(job.get("Datacenters") or [])),
        ("Namespace", job.get("Namespace", "")), ("Node Pool", job.get("NodePool", "")),
        ("Status", job.get("Status", "")), ("Periodic", str(periodic).lower()),
        ("Parameterized", str(parameterized).lower())])
    if periodic or parameterized:
        heading("Children Job Summary")
        children_rows(summary)
        children = [j for j in client.get("/v1/jobs", prefix=jid + "/")
                    if j.get("ParentID") == jid]
        heading("Previously Launched Jobs" if periodic else "Dispatched Jobs")
        table(["ID", "Status"], [[c["ID"], status_text(c.get("Status", ""))] for c in children],
              empty="No instances of this job found")
        return 0
    heading("Summary")
    summary_rows(summary)
    if deployment:
        heading("Latest Deployment")
        deployment_block(deployment, verbose)
    heading("Allocations")
    alloc_rows(allocs, verbose)
    return 0


@group.command()
@click.argument("job_id", metavar="ID")
@click.option("-version", "--version", "version", type=int, help="a past version")
@with_client
def inspect(client: Client, job_id, version):
    """Print the job's specification as JSON (as registered)."""
    job = _find_job(client, job_id)
    if version is not None:
        versions = client.get(_job_path(job["ID"], "/versions"))["Versions"]
        match = [v for v in versions if v.get("Version") == version]
        if not match:
            raise CommandError(f'job "{job["ID"]}" has no version {version}')
        job = match[0]
    emit_json({"Job": job})
    return 0


@group.command()
@click.argument("job_id", metavar="ID")
@click.option("-p", "diffs", is_flag=True, help="show the changes of each version")
@click.option("-version", "--version", "version", type=int, help="only this version")
@json_option
@with_client
def history(client: Client, job_id, diffs, version, as_json):
    """List the job's versions, newest first."""
    job = _find_job(client, job_id)
    reply = client.get(_job_path(job["ID"], "/versions"), diffs="true")
    versions, all_diffs = reply.get("Versions") or [], reply.get("Diffs") or []
    if version is not None:
        keep = [i for i, v in enumerate(versions) if v.get("Version") == version]
        if not keep:
            raise CommandError(f'job "{job["ID"]}" has no version {version}')
        versions = [versions[keep[0]]]
        all_diffs = all_diffs[keep[0]:keep[0] + 1]
    if as_json:
        emit_json(versions)
        return 0
    for i, v in enumerate(versions):
        if i:
            out.print()
        kv([("Version", v.get("Version", 0)), ("Stable", str(v.get("Stable", False)).lower()),
            ("Submit Date", fmt_time(v.get("SubmitTime")))])
        if diffs and i < len(all_diffs) and all_diffs[i] and all_diffs[i].get("Type") != "None":
            out.print("Diff =")
            render_job_diff(all_diffs[i])
    return 0


# --- stop / revert / dispatch / periodic force / eval ------------------------------------------


@group.command()
@click.argument("job_id", metavar="ID")
@click.option("-purge", "--purge", "purge", is_flag=True,
              help="remove the job entirely instead of marking it stopped")
@click.option("-yes", "--yes", "yes", is_flag=True, help="(accepted for Nomad compatibility)")
@detach_option
@verbose_option
@with_client
def stop(client: Client, job_id, purge, yes, detach, verbose):
    """Stop a running job (and with -purge, forget it)."""
    job = _find_job(client, job_id)
    reply = client.delete(_job_path(job["ID"]), purge="true" if purge else "false")
    if not reply.get("EvalID"):
        out.print(f'Job "{job["ID"]}" {"purged" if purge else "stopped"}')
        return 0
    return _after_write(client, reply, detach, verbose)


@group.command()
@click.argument("job_id", metavar="ID")
@click.argument("version", type=int)
@detach_option
@verbose_option
@with_client
def revert(client: Client, job_id, version, detach, verbose):
    """Register VERSION of the job again, as a new version."""
    job = _find_job(client, job_id)
    reply = client.put(_job_path(job["ID"], "/revert"),
                       {"JobID": job["ID"], "JobVersion": version})
    return _after_write(client, reply, detach, verbose)


def _meta_pairs(pairs: tuple[str, ...]) -> dict[str, str]:
    meta = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise click.UsageError(f"-meta {pair!r}: expected KEY=VALUE")
        meta[key] = value
    return meta


@group.command()
@click.argument("job_id", metavar="ID")
@click.argument("payload", metavar="[PAYLOAD_FILE|-]", required=False)
@click.option("-meta", "--meta", "meta", multiple=True, metavar="KEY=VALUE",
              help="metadata of the dispatched job (repeatable)")
@click.option("-idempotency-token", "--idempotency-token", "token", default="",
              help="dispatch at most once per token")
@click.option("-id-prefix-template", "--id-prefix-template", "prefix", default="",
              help="a prefix for the dispatched job's ID")
@detach_option
@verbose_option
@with_client
def dispatch(client: Client, job_id, payload, meta, token, prefix, detach, verbose):
    """Start an instance of a parameterized job, with a payload from a file or stdin (-)."""
    body: dict = {"JobID": job_id, "Meta": _meta_pairs(meta) or None}
    if payload is not None:
        if payload == "-":
            data = sys.stdin.buffer.read()
        else:
            try:
                with open(payload, "rb") as f:
                    data = f.read()
            except OSError as exc:
                raise CommandError(f"Error reading payload file {payload}: {exc.strerror}") \
                    from None
        body["Payload"] = base64.b64encode(data).decode()
    if prefix:
        body["IdPrefixTemplate"] = prefix
    params = {"idempotency_token": token} if token else {}
    reply = client.put(_job_path(job_id, "/dispatch"), body, **params)
    kv([("Dispatched Job ID", reply.get("DispatchedJobID", "")),
        ("Evaluation ID", short(reply.get("EvalID"), verbose))])
    if detach or not reply.get("EvalID"):
        return 0
    out.print()
    return monitor(client, reply["EvalID"], verbose)


@group.group(name="periodic")
def periodic():
    """Interact with periodic jobs."""


@periodic.command(name="force")
@click.argument("job_id", metavar="ID")
@detach_option
@verbose_option
@with_client
def periodic_force(client: Client, job_id, detach, verbose):
    """Launch the periodic job now, regardless of its schedule."""
    reply = client.put(_job_path(job_id, "/periodic/force"))
    return _after_write(client, reply, detach, verbose)


@group.command(name="eval")
@click.argument("job_id", metavar="ID")
@click.option("-force-reschedule", "--force-reschedule", "force_reschedule", is_flag=True,
              help="Reschedule failed allocations now, even if their reschedule policy "
                   "says to wait or gives up.")
@detach_option
@verbose_option
@with_client
def evaluate(client: Client, job_id, force_reschedule, detach, verbose):
    """Create a new evaluation of the job (for example after a node change)."""
    body = {"JobID": job_id, "EvalOptions": {"ForceReschedule": force_reschedule}}
    reply = client.put(_job_path(job_id, "/evaluate"), body)
    return _after_write(client, reply, detach, verbose)


@group.command()
@click.argument("job_id", metavar="ID")
@click.argument("args", nargs=-1, required=True, metavar="[GROUP] COUNT")
@detach_option
@verbose_option
@with_client
def scale(client: Client, job_id, args, detach, verbose):
    """Set the count of one task group (GROUP may be left out when the job has one)."""
    if len(args) > 2:
        raise CommandError("This command takes one or two arguments after the job ID: "
                           "[<group>] <count>")
    job = _find_job(client, job_id)
    try:
        count = int(args[-1])
    except ValueError:
        raise CommandError(f'Failed to convert count string "{args[-1]}" to int') from None
    if len(args) == 2:
        group_name = args[0]
    elif len(job.get("TaskGroups") or ()) == 1:
        group_name = job["TaskGroups"][0]["Name"]
    else:
        raise CommandError("Group name required")
    reply = client.put(_job_path(job["ID"], "/scale"), {
        "Count": count, "Target": {"Job": job["ID"], "Group": group_name},
        "Message": "submitted using the caravan CLI"})
    if reply.get("Warnings"):
        out.print(Text("Job Warnings:\n" + reply["Warnings"], style="yellow"))
    return _after_write(client, reply, detach, verbose)
