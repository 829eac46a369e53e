"""Options every command shares: ``-address`` (else ``CARAVAN_ADDR``, then
``NOMAD_ADDR``, then http://127.0.0.1:4646) and ``-json``."""
from __future__ import annotations

import functools

import click

from caravan.server.commands.client import Client, resolve_address


def with_client(f):
    """Adds ``-address`` and hands the command a ``Client`` as its first argument."""
    @click.option("-address", "--address", "address", metavar="ADDR",
                  help="HTTP address of the agent (env CARAVAN_ADDR; default "
                       "http://127.0.0.1:4646)")
    @click.pass_context
    @functools.wraps(f)
    def wrapper(ctx: click.Context, address: str | None, **kwargs):
        root = ctx.find_root().obj or {}
        client = Client(resolve_address(address or root.get("address")),
                        transport=root.get("transport"))
        return f(client, **kwargs)
    return wrapper


json_option = click.option("-json", "--json", "as_json", is_flag=True,
                           help="print the raw API response as JSON")

verbose_option = click.option("-verbose", "--verbose", "verbose", is_flag=True,
                              help="show full identifiers")
