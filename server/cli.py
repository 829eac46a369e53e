"""The ``caravan`` command. Flags are spelled the way Nomad spells them (``-dev``,
``-http-port``); ``--flag`` works too."""
from __future__ import annotations

import argparse
import asyncio
import logging
import os
import secrets
import shutil
import signal
import sys
import tempfile

from caravan.client.volumes import HostVolumeFlagError, parse_host_volume_flag
from caravan.server.config import ConfigError, dev_config, dial_address, load
from caravan.server.journal import StorageDamaged


def _agent_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="caravan agent",
                                description="Run a Caravan server or client agent.")
    p.add_argument("-dev", "--dev", action="store_true",
                   help="one server with a single-node raft and a temporary data dir, and "
                        "a client agent (mock and raw_exec drivers) in the same process")
    p.add_argument("-no-client", "--no-client", action="store_true",
                   help="with -dev: run the server only, with no client agent (no nodes)")
    p.add_argument("-config", "--config", help="cluster file (see cluster.toml)")
    p.add_argument("-server", "--server", help="which [[servers]] entry of the file to run")
    p.add_argument("-client", "--client", help="which [[clients]] entry of the file to run")
    p.add_argument("-http-port", "--http-port", type=int, default=4646)
    p.add_argument("-rpc-port", "--rpc-port", type=int, default=4647)
    p.add_argument("-raft-port", "--raft-port", type=int, default=4648)
    p.add_argument("-data-dir", "--data-dir", help="data directory (overrides the file's)")
    p.add_argument("-node", "--node", dest="node_name",
                   help="the client's node name (default: the host name)")
    p.add_argument("-bind", "--bind", help="with -dev: the IP address HTTP, RPC and raft "
                                           "listen on (default 127.0.0.1)")
    p.add_argument("-region", "--region", help="the region (default: the file's, or global)")
    p.add_argument("-dc", "--dc", dest="datacenter",
                   help="the datacenter (default: the file's, or dc1)")
    p.add_argument("-acl-enabled", "--acl-enabled", action="store_true",
                   help="enable ACLs (not supported yet: refused)")
    p.add_argument("-log-level", "--log-level", default="WARNING")
    p.add_argument("-host-volume", "--host-volume", action="append", default=[],
                   metavar="NAME=PATH[:ro]",
                   help="with -dev or -client: offer the directory PATH to tasks as host "
                        "volume NAME (read-only with :ro); repeatable. Adds to the "
                        "client's host_volume tables of the file")
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


def host_volume_flags(flags: list[str], base: dict | None = None) -> dict:
    """A client's host volumes: its file's ``host_volume`` tables and then the
    ``-host-volume`` flags; each path must be an existing directory (as in Nomad, a
    client with a missing host volume does not start)."""
    volumes = dict(base or {})
    for text in flags:
        try:
            name, volume = parse_host_volume_flag(text)
        except HostVolumeFlagError as exc:
            raise ConfigError(str(exc)) from None
        volumes[name] = volume
    for name, volume in volumes.items():
        if not os.path.isdir(volume["path"]):
            raise ConfigError(f'host_volume "{name}": path {volume["path"]!r} is not an '
                              f"existing directory")
    return volumes


def client_settings(config, c, data_dir_flag: str | None, node_name: str | None = None,
                    host_volumes: list[str] = ()):
    from caravan.client.agent import ClientSettings
    return ClientSettings(
        name=node_name or c.name, servers=config.client_servers(c),
        data_dir=os.path.abspath(data_dir_flag or config.client_data_dir(c)),
        http_addr=c.http, region=config.cluster.region,
        datacenter=c.datacenter or config.cluster.datacenter, node_class=c.node_class,
        meta=dict(c.meta), raw_exec=c.raw_exec, reserved=dict(c.reserved),
        cpu_total_compute=c.cpu_total_compute, memory_total_mb=c.memory_total_mb,
        network_mbits=c.network_mbits,
        host_volumes=host_volume_flags(list(host_volumes), c.host_volumes))


def _override_cluster(config, region: str | None, datacenter: str | None):
    """``-region``/``-dc`` over the cluster file's."""
    from dataclasses import replace
    changes = {k: v for k, v in (("region", region), ("datacenter", datacenter)) if v}
    for key, value in changes.items():
        if any(c.isspace() for c in value):
            raise ConfigError(f"-{'dc' if key == 'datacenter' else key}: bad name {value!r}: "
                              f"must be non-empty, without spaces")
    return replace(config, cluster=replace(config.cluster, **changes)) if changes else config


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def agent_main(argv: list[str]) -> int:
    args = _agent_parser().parse_args(argv)
    if args.acl_enabled:
        print("caravan: -acl-enabled: ACLs are not supported yet; start without it",
              file=sys.stderr)
        return 1
    logging.basicConfig(level=args.log_level.upper(),
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    # Until the agent installs its own handlers, a stop request unwinds through the
    # finally below, so the dev agent's temporary data dir is removed.
    signal.signal(signal.SIGTERM, _interrupt)
    # heavy imports only once the flags are valid
    from caravan.client.agent import ClientSettings, default_name
    from caravan.client.process import run_client
    from caravan.server.agent import Agent

    temp_dir = None
    try:
        if args.node_name is not None and not args.node_name.strip():
            raise ConfigError("-node: the node name must not be empty")
        if args.dev:
            data_dir = args.data_dir or (temp_dir := tempfile.mkdtemp(prefix="caravan-dev-"))
            config = dev_config(args.http_port, args.rpc_port, args.raft_port, data_dir,
                                secrets.token_urlsafe(24), bind=args.bind or "127.0.0.1",
                                region=args.region or "global",
                                datacenter=args.datacenter or "dc1")
            me = config.servers[0]
            if args.no_client:
                return _run(Agent(config, me, data_dir).run())
            client = ClientSettings(
                name=args.node_name or default_name(), servers=[dial_address(me.rpc)],
                data_dir=os.path.join(data_dir, "client"), http_addr=me.http,
                region=config.cluster.region, datacenter=config.cluster.datacenter,
                raw_exec=True, host_volumes=host_volume_flags(args.host_volume))
            return _run(Agent(config, me, data_dir, client_settings=client).run())
        elif args.config:
            if args.bind is not None:
                raise ConfigError("-bind: only with -dev; the cluster file gives each "
                                  "server's and client's addresses")
            config = _override_cluster(load(args.config), args.region, args.datacenter)
            if args.client and args.server:
                raise ConfigError(f"{args.config}: give -server or -client, not both")
            if args.client:
                return _run(run_client(client_settings(config, config.client(args.client),
                                                       args.data_dir, args.node_name,
                                                       args.host_volume)))
            if args.node_name is not None:
                raise ConfigError("-node: names a client's node; give it with -dev or "
                                  "-client")
            if not args.server:
                raise ConfigError(f"{args.config}: -server: missing server name (one of: "
                                  f"{', '.join(s.name for s in config.servers)})")
            me = config.server(args.server)
            data_dir = args.data_dir or config.data_dir_for(me.name)
            if not config.cluster.raft_secret:
                raise ConfigError(f"{args.config}: cluster.raft_secret: missing; the raft "
                                  f"port must not accept commands from strangers")
        else:
            print("caravan agent: give -dev, or -config FILE with -server NAME or -client NAME",
                  file=sys.stderr)
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
        print("usage: caravan agent [-dev | -config FILE (-server NAME | -client NAME)] [flags]\n"
              "       caravan nodesim -server HOST:PORT -count N [flags]\n"
              "       caravan job|node|alloc|eval|deployment|server|scaling ...  (-h for each)\n"
              "       caravan agent -h / caravan nodesim -h   for their flags")
        return 0 if argv else 2
    if argv[0] == "agent":
        return agent_main(argv[1:])
    if argv[0] == "nodesim":
        from caravan.client.nodesim import main as nodesim_main
        return nodesim_main(argv[1:])
    from caravan.server.commands import NOUNS
    if argv[0] in NOUNS:
        from caravan.server.commands import main as commands_main
        return commands_main(argv)
    print(f"caravan: unknown command {argv[0]!r}", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
