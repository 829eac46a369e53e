"""The command tree: one group per noun, each defined in its own module."""
from __future__ import annotations

import click

from caravan.server.commands import alloc, deployment, evaluation, job, node, scaling, server


@click.group(context_settings={"help_option_names": ["-h", "-help", "--help"]})
@click.option("-address", "--address", "address", metavar="ADDR",
              help="HTTP address of the agent (env CARAVAN_ADDR)")
@click.pass_context
def cli(ctx: click.Context, address: str | None):
    """Drive a Caravan cluster: jobs, nodes, allocations, evaluations."""
    ctx.obj = {**(ctx.obj or {}), "address": address}


cli.add_command(job.group)
cli.add_command(node.group)
cli.add_command(alloc.group)
cli.add_command(evaluation.group)
cli.add_command(deployment.group)
cli.add_command(server.group)
cli.add_command(scaling.group)
