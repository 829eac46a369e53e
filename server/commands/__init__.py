"""``caravan job|node|alloc|eval|deployment|server|scaling ...``: an HTTP client of the API,
spelled like Nomad's CLI (single-dash flags, ``-address``/``CARAVAN_ADDR``, ``-json``).

Exit codes follow Nomad's: 0 success, 1 an error (usage, connection, a refusal from the
server), 2 for ``job run`` when allocations could not be placed; ``job plan`` uses 0 (no
changes), 1 (allocations would change) and 255 (error). Errors print the message alone.

One module per noun (``job.py``, ``node.py``, ...); ``client.py`` holds the HTTP client,
``output.py`` the tables and ``options.py`` the shared flags.
"""
from __future__ import annotations

NOUNS = ("job", "node", "alloc", "eval", "deployment", "server", "scaling")


def main(argv: list[str], transport=None) -> int:
    import click

    from caravan.server.commands.client import CommandError
    from caravan.server.commands.output import err
    from caravan.server.commands.root import cli

    try:
        rv = cli.main(args=argv, prog_name="caravan", standalone_mode=False,
                      obj={"transport": transport})
    except CommandError as exc:
        text = exc.message if exc.message.startswith("Error") else f"Error: {exc.message}"
        err.print(text, markup=False)
        return exc.code
    except click.exceptions.Exit as exc:
        return exc.exit_code
    except click.UsageError as exc:
        exc.show()
        return 1
    except (click.Abort, KeyboardInterrupt):
        return 1
    return rv if isinstance(rv, int) else 0
