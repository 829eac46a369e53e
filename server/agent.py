"""One server process: the FSM, its raft node, the HTTP gateway and the RPC port.

Start-up order matters: the notifier and the FSM's commit hook exist before the raft
node is built (pysyncobj may replay the journal at once), the raft node is built on
the main thread (its tick thread dies with the thread that built it), and only then
do the listeners open.
"""
from __future__ import annotations

import asyncio
import gc
import logging
import os
import signal
import sys
import time

import uvicorn

from caravan.fsm.apply import FSM
from caravan.fsm.submit import Submitter
from caravan.scheduler.core_gc import CoreGarbageCollector, Thresholds
from caravan.scheduler.deployment_watcher import DeploymentWatcher
from caravan.scheduler.drainer import NodeDrainer
from caravan.scheduler.periodic import PeriodicDispatcher
from caravan.server import ids
from caravan.server.config import Config, ServerConfig
from caravan.server.heartbeats import HeartbeatTracker
from caravan.server.http.app import build_app
from caravan.server.jobspec.periodic import launch_due
from caravan.server.leader import ClientWrites, LeaderServices, begin_leadership
from caravan.server.metrics import count_collected
from caravan.server.notify import Notifier
from caravan.server.raft import RaftNode, RaftSettings
from caravan.server.rpc.scheduling import FollowerWorkers
from caravan.server.rpc.status import start_server as start_rpc

log = logging.getLogger("caravan.agent")


def staggered_threshold(config: Config, me: ServerConfig) -> int:
    """This server's log-compaction threshold: ``snapshot_threshold`` spread by up to half
    again over the servers (in name order). Every server applies the same log, so equal
    thresholds made all of them serialize the whole state at the same moment: on a small
    machine, three snapshots of a 10k-job state (~0.35 s of CPU each) at once."""
    base = config.cluster.snapshot_threshold
    names = sorted(s.name for s in config.servers)
    return base + base * names.index(me.name) // (2 * len(names))


class Agent:
    def __init__(self, config: Config, me: ServerConfig, data_dir: str, *,
                 client_settings=None, repair_journal: bool = False):
        self.config = config
        self.client_settings = client_settings   # -dev: a client agent in this process
        self.client = None
        self.me = me
        self.data_dir = data_dir
        self.fsm = FSM(tracked_versions=config.cluster.job_tracked_versions)
        self.raft = RaftNode(RaftSettings(
            self_addr=me.raft,
            peers=config.raft_dial_addresses(me),
            data_dir=os.path.join(data_dir, "raft"),
            password=config.cluster.raft_secret,
            compaction_entries=staggered_threshold(config, me),
            leader_hold=config.cluster.duration_ns("rpc_hold_timeout") / 1e9,
            # CARAVAN_RAFT_FSYNC=0 exists for bench/durability.py's baseline only: an
            # acknowledged write could then be lost to a power failure
            fsync=os.environ.get("CARAVAN_RAFT_FSYNC", "1").strip() != "0",
            repair_journal=repair_journal), self.fsm)
        # every write of this server's services: request id, replication, typed answer
        self.submit = Submitter(self.raft.submit, ids.request_id)
        self.notifier: Notifier | None = None
        n = config.cluster.scheduler_workers
        # With follower_scheduler_workers, every server schedules, as in Nomad: the
        # followers take evals from the leader's broker (server/rpc/scheduling.py), and
        # the leader pauses 3/4 of its own workers to keep its CPU for the log and the
        # plan applier. CARAVAN_LEADER_WORKERS overrides the leader's count (tests).
        followers = config.cluster.follower_scheduler_workers if len(config.servers) > 1 else 0
        own = n - (3 * n) // 4 if followers else n
        own = int(os.environ.get("CARAVAN_LEADER_WORKERS", own))
        self.client_writes = ClientWrites()   # HTTP writes under way (server/leader.py)
        self.leader_services = LeaderServices(self, workers=own,
                                              client_writes=self.client_writes)
        self.follower_workers = FollowerWorkers(self, followers) if followers else None
        self.heartbeats = HeartbeatTracker(self)   # TTLs from CARAVAN_HEARTBEAT_* if set
        self.leader_services.add(self.heartbeats)
        self.deployment_watcher = DeploymentWatcher(
            lambda: self.fsm.state, self.submit, lambda: self.notifier, time.time_ns,
            ids.uuid4_str, write_listeners=self.fsm.write_listeners)
        self.leader_services.add(self.deployment_watcher)
        self.drainer = NodeDrainer(lambda: self.fsm.state, self.submit,
                                   lambda: self.notifier, time.time_ns, ids.uuid4_str)
        self.leader_services.add(self.drainer)
        self.periodic = PeriodicDispatcher(
            state=lambda: self.fsm.state, submit=self.submit,
            notifier=lambda: self.notifier, due=launch_due, now=time.time_ns,
            new_id=ids.uuid4_str)
        self.leader_services.add(self.periodic)
        cc = config.cluster
        self.core_gc = CoreGarbageCollector(
            lambda: self.fsm.state, self.submit, time.time_ns,
            interval=cc.duration_ns("gc_interval") / 1e9,
            thresholds=Thresholds(eval_ns=cc.duration_ns("eval_gc_threshold"),
                                  job_ns=cc.duration_ns("job_gc_threshold"),
                                  deployment_ns=cc.duration_ns("deployment_gc_threshold"),
                                  node_ns=cc.duration_ns("node_gc_threshold")),
            count=count_collected)
        self.leader_services.add(self.core_gc)
        self._leadership_task: asyncio.Task | None = None
        self.raft.on_leadership = self._on_leadership

    def _on_leadership(self, leading: bool) -> None:
        previous = self._leadership_task
        self._leadership_task = asyncio.ensure_future(self._switch_leadership(leading, previous))

    async def _switch_leadership(self, leading: bool, previous) -> None:
        """Start the leader-only services once this leader has applied everything
        committed before its term: its first entry, LEADER_EPOCH, is that barrier, and
        its index fences the plans of earlier leaders. Stop them on losing it."""
        if previous is not None:
            try:
                await previous
            except Exception:
                pass
        if leading:
            await begin_leadership(self.raft, self.submit, self.leader_services)
        else:
            await self.leader_services.stop()

    def new_id(self) -> str:
        return ids.uuid4_str()

    def leader_rpc(self) -> str:
        """The leader's RPC address (what ``/v1/status/leader`` answers), or ""."""
        raft_addr = self.raft.leader()
        server = self.config.server_by_raft(raft_addr, self.me) if raft_addr else None
        return server.rpc if server else ""

    def peer_rpcs(self) -> list[str]:
        return [s.rpc for s in self.config.servers]

    async def run(self) -> int:
        loop = asyncio.get_running_loop()
        self.notifier = Notifier(loop)
        self.fsm.on_commit = self.notifier.notify_threadsafe
        self.raft.start(loop)
        rpc = await start_rpc(self, self.me.rpc)
        if self.follower_workers is not None:
            self.follower_workers.start()
        host, _, port = self.me.http.rpartition(":")
        server = uvicorn.Server(uvicorn.Config(
            build_app(self), host=host.strip("[]"), port=int(port), log_level="warning",
            access_log=False, lifespan="off", timeout_graceful_shutdown=2))
        self._own_signals(server)
        client_start = None
        if self.client_settings is not None:
            from caravan.client.agent import ClientAgent
            self.client = ClientAgent(self.client_settings)
            client_start = asyncio.ensure_future(self.client.start())
        gc_task = asyncio.ensure_future(_manage_gc())
        watchdog = asyncio.ensure_future(self._watch_fatal(server))
        announce = asyncio.ensure_future(self._announce(server))
        try:
            await server.serve()
        finally:
            watchdog.cancel()
            announce.cancel()
            gc_task.cancel()
            if self.client is not None:
                client_start.cancel()
                await self.client.stop()
            await self.leader_services.stop()
            if self.follower_workers is not None:
                await self.follower_workers.stop()
            await rpc.stop(grace=0.5)
            self.raft.stop()
        if not server.started and not self._stopping:
            print(f"caravan: could not listen on {self.me.http}", file=sys.stderr)
            return 1
        return 70 if self.fsm.fatal else 0

    def _own_signals(self, server: uvicorn.Server) -> None:
        """SIGTERM/SIGINT stop the agent cleanly at any moment, also before uvicorn has
        installed its own handlers (uvicorn re-raises the signal it caught after its
        shutdown; it lands here again and is ignored)."""
        def stop(signum, frame):
            self._stopping = True
            server.should_exit = True
        self._stopping = False
        signal.signal(signal.SIGTERM, stop)
        signal.signal(signal.SIGINT, stop)

    async def _announce(self, server: uvicorn.Server) -> None:
        while not server.started:
            await asyncio.sleep(0.02)
        print(f"caravan: server {self.me.name!r}: HTTP http://{self.me.http}, "
              f"RPC {self.me.rpc}, raft {self.me.raft}, data {self.data_dir}", flush=True)

    async def _watch_fatal(self, server: uvicorn.Server) -> None:
        """An entry this binary cannot apply stops the server loudly (exit 70)."""
        while not self.fsm.fatal:
            await asyncio.sleep(0.5)
        log.critical("stopping: %s", self.fsm.fatal)
        server.should_exit = True


# The state is a large, long-lived, acyclic object graph. Python's cyclic collector
# would walk all of it on every full pass (measured: half of a registration's CPU at
# 10k jobs), and what survives between freezes is walked too: at 64 writers, automatic
# full passes stalled the leader for 100-150 ms every ~350 ms. So automatic collections
# stop at the middle generation; every few seconds the young generations are collected
# and everything alive is frozen out of future passes; every ten minutes everything is
# unfrozen and collected once, so that a cycle frozen while still in use (a parked
# query's frames) is not kept forever.
GC_FREEZE_EVERY = 5.0
GC_FULL_EVERY = 600.0
_NO_AUTOMATIC_FULL_PASS = 10 ** 9


async def _manage_gc() -> None:
    young, middle, _ = gc.get_threshold()
    gc.set_threshold(young, middle, _NO_AUTOMATIC_FULL_PASS)
    loop = asyncio.get_running_loop()
    last_full = loop.time()
    while True:
        await asyncio.sleep(GC_FREEZE_EVERY)
        if loop.time() - last_full >= GC_FULL_EVERY:
            gc.unfreeze()
            gc.collect()
            last_full = loop.time()
        else:
            gc.collect(1)   # the young generations only: cheap, and catches young cycles
        gc.freeze()
