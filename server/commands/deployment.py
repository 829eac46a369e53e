"""``caravan deployment status ID``."""
from __future__ import annotations

import click

from caravan.server.commands.client import Client, find_by_prefix
from caravan.server.commands.options import json_option, verbose_option, with_client
from caravan.server.commands.output import emit_json, heading
from caravan.server.commands.render import deployment_block, deployment_groups


@click.group(name="deployment")
def group():
    """Interact with deployments."""


@group.command()
@click.argument("deployment_id", metavar="ID")
@json_option
@verbose_option
@with_client
def status(client: Client, deployment_id, as_json, verbose):
    """Show a deployment and the progress of each task group."""
    d = find_by_prefix(client, "/v1/deployments", "/v1/deployment", deployment_id, "deployment")
    if as_json:
        emit_json(d)
        return 0
    deployment_block(d, verbose)
    heading("Deployed")
    deployment_groups(d)
    return 0
