"""The ``caravan`` command. Flags are spelled the way Nomad spells them (``-dev``,
``-http-port``); ``--flag`` works too."""
from __future__ import annotations

import argparse
import asyncio
import logging
import secrets
import shutil
import signal
import sys
import tempfile

from server.config import ConfigError, dev_config, load
from server.journal import StorageDamaged


def _agent_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="caravan agent", description="Run a Caravan server.")
    p.add_argument("-dev", "--dev", action="store_true",
                   help="one server with a single-node raft and a temporary data dir")
    p.add_argument("-config", "--config", help="cluster file (see cluster.toml)")
    p.add_argument("-server", "--server", help="which [[servers]] entry of the file to run")
    p.add_argument("-http-port", "--http-port", type=int, default=4646)
    p.add_argument("-rpc-port", "--rpc-port", type=int, default=4647)
    p.add_argument("-raft-port", "--raft-port", type=int, default=4648)
    p.add_argument("-data-dir", "--data-dir", help="data directory (overrides the file's)")
    p.add_argument("-log-level", "--log-level", default="WARNING")
    p.add_argument("-repair-journal", "--repair-journal", action="store_true",
                   help="start even if the raft journal's tail is damaged, by cutting it at "
                        "the first damaged record (entries from there are fetched again "
                        "from the leader)")
    return p


def _run(coro) -> int:
    """Run the agent on uvloop when it is installed (uvicorn[standard] brings it):
    uvicorn's own loop choice does not apply to a server started inside a loop."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coro)
    return uvloop.run(coro)


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def agent_main(argv: list[str]) -> int:
    args = _agent_parser().parse_args(argv)
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Until the agent installs its own handlers, a stop request unwinds through the
    # finally below, so the dev agent's temporary data dir is removed.
    signal.signal(signal.SIGTERM, _interrupt)
    from server.agent import Agent  # heavy imports only once the flags are valid

    temp_dir = None
    try:
        if args.dev:
            data_dir = args.data_dir or (temp_dir := tempfile.mkdtemp(prefix="caravan-dev-"))
            config = dev_config(args.http_port, args.rpc_port, args.raft_port, data_dir,
                                secrets.token_urlsafe(24))
            me = config.servers[0]
        elif args.config:
            config = load(args.config)
            if not args.server:
                raise ConfigError(f"{args.config}: -server: missing server name (one of: "
                                  f"{', '.join(s.name for s in config.servers)})")
            me = config.server(args.server)
            data_dir = args.data_dir or config.data_dir_for(me.name)
            if not config.cluster.raft_secret:
                raise ConfigError(f"{args.config}: cluster.raft_secret: missing; the raft "
                                  f"port must not accept commands from strangers")
        else:
            print("caravan agent: give -dev, or -config FILE -server NAME", file=sys.stderr)
            return 2
        return _run(Agent(config, me, data_dir, repair_journal=args.repair_journal).run())
    except ConfigError as exc:
        print(f"caravan: config error: {exc}", file=sys.stderr)
        return 1
    except StorageDamaged as exc:
        print(f"caravan: damaged raft storage, not starting: {exc}\n"
              f"caravan: nothing was applied. If the other servers are healthy, either start "
              f"with -repair-journal (cuts the journal at the damage) or move this server's "
              f"data dir aside; it then catches up from the leader.", file=sys.stderr)
        return 65
    except KeyboardInterrupt:
        return 0
    finally:
        if temp_dir:
            shutil.rmtree(temp_dir, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help", "help"):
        print("usage: caravan agent [-dev | -config FILE -server NAME] [flags]\n"
              "       caravan nodesim -server HOST:PORT -count N [flags]\n"
              "       caravan agent -h / caravan nodesim -h   for their flags")
        return 0 if argv else 2
    if argv[0] == "agent":
        return agent_main(argv[1:])
    if argv[0] == "nodesim":
        from server.nodesim import main as nodesim_main
        return nodesim_main(argv[1:])
    print(f"caravan: unknown command {argv[0]!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
