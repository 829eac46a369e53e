"""Reading a job file for ``run``, ``plan`` and ``validate``: JSON as it is (a bare
job or ``{"Job": ...}``), HCL through the agent's ``/v1/jobs/parse`` with the
``-var``/``-var-file`` values, so the CLI and the API read files the same way."""
from __future__ import annotations

import json
import sys

import click

from caravan.server.commands.client import Client, CommandError

PARSE_FAILED = "Failed to parse job file: "  # server/http/job_parse.py


def read_source(path: str) -> str:
    if path == "-":
        return sys.stdin.read()
    try:
        with open(path, encoding="utf-8") as f:
            return f.read()
    except OSError as exc:
        raise CommandError(f"Error reading job file {path}: {exc.strerror}") from None


def variables_text(pairs: tuple[str, ...], files: tuple[str, ...]) -> str:
    """Var-file text: the ``-var-file`` contents, then each ``-var name=value`` (a string
    value; the variable's declared type converts it), later ones winning."""
    chunks, given = [], {}
    for path in files:
        chunks.append(read_source(path))
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            raise click.UsageError(f"-var {pair!r}: expected NAME=VALUE")
        given[name.strip()] = value
    text = "\n".join(chunks)
    if given:
        # a name given on the command line replaces the same name from a file
        kept = [ln for ln in text.splitlines()
                if ln.split("=", 1)[0].strip() not in given]
        text = "\n".join(kept + [f"{k} = {json.dumps(v)}" for k, v in given.items()])
    return text


def load_job(client: Client, path: str, var: tuple[str, ...] = (),
             var_file: tuple[str, ...] = ()) -> dict:
    source = read_source(path)
    stripped = source.lstrip()
    if stripped.startswith("{"):
        try:
            data = json.loads(source)
        except json.JSONDecodeError as exc:
            raise CommandError(f"Error parsing job file {path} as JSON: {exc}") from None
        job = data.get("Job", data) if isinstance(data, dict) else None
        if not isinstance(job, dict):
            raise CommandError(f"Error parsing job file {path}: expected a JSON object")
        return job
    body = {"JobHCL": source, "Canonicalize": False,
            "Variables": variables_text(var, var_file)}
    try:
        return client.put("/v1/jobs/parse", body)
    except CommandError as exc:
        if exc.status == 400 and exc.body.startswith(PARSE_FAILED):
            # the server names the file input.hcl; show the user's path instead
            where = exc.body.removeprefix(PARSE_FAILED).replace("input.hcl", path, 1)
            raise CommandError(f"Error parsing job file {where}") from None
        raise


var_options = [
    click.option("-var", "var", multiple=True, metavar="NAME=VALUE",
                 help="set a variable of the job file"),
    click.option("-var-file", "var_file", multiple=True, metavar="FILE",
                 help="a file of NAME = VALUE lines"),
]


def with_vars(f):
    for option in reversed(var_options):
        f = option(f)
    return f
