"""The seeded fault schedule: one fault at a time, held for a while, then healed.

Faults: SIGKILL and restart of the leader or of a follower; SIGSTOP/SIGCONT of the
leader or a follower for longer than the raft election timeout (1.4 s at most);
raft-link partitions (a minority of followers cut off, a random majority/minority
split, the leader isolated, a bridge where two halves only share one server); SIGKILL
and restart of a client agent.
Each fault is written to the history when it starts and when it is healed, with the
time the cluster took to follow a leader again (``election``).
"""
from __future__ import annotations

import random
import threading
import time
from functools import partial

from tests.nemesis.cluster import NemesisCluster
from tests.nemesis.history import History

FAULTS = ("kill-leader", "kill-follower", "pause-leader", "pause-follower",
          "partition-followers", "partition-random", "isolate-leader", "bridge", "kill-client")


class Nemesis:
    def __init__(self, cluster: NemesisCluster, history: History, seed: int,
                 faults: tuple[str, ...] = FAULTS, hold: tuple[float, float] = (2.0, 3.5),
                 calm: tuple[float, float] = (1.0, 2.5)):
        unknown = set(faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {sorted(unknown)}; known: {', '.join(FAULTS)}")
        self.faults = tuple(faults)
        self.cluster = cluster
        self.history = history
        self.rng = random.Random(f"nemesis-{seed}")
        self.hold = hold            # seconds a fault lasts (pauses outlast the election timeout)
        self.calm = calm            # seconds of healthy cluster between faults
        self.injected = 0

    def run(self, seconds: float, stop: threading.Event | None = None) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end and not (stop and stop.is_set()):
            time.sleep(self.rng.uniform(*self.calm))
            if time.monotonic() >= end:
                break
            self.one(self.rng.choice(self.faults))

    def one(self, fault: str) -> None:
        c, h = self.cluster, self.history
        names = [s.name for s in c.servers]
        leader = c.wait_leader(60)
        followers = [n for n in names if n != leader]
        hold = self.rng.uniform(*self.hold)
        lost_leader = ""              # the leader this fault takes away, if any
        if fault in ("kill-leader", "kill-follower", "pause-leader", "pause-follower"):
            victim = leader if fault.endswith("leader") else self.rng.choice(followers)
            lost_leader = leader if victim == leader else ""
            h.fault(fault, "start", target=victim, leader=leader)
            (c.kill if fault.startswith("kill") else c.pause)(victim)
            heal = partial(c.restart if fault.startswith("kill") else c.resume, victim)
        elif fault == "kill-client":
            victim = self.rng.choice([p.name for p in c.clients])
            h.fault(fault, "start", target=victim, leader=leader)
            c.kill(victim)
            heal = partial(c.restart, victim)
        else:
            groups = self._groups(fault, names, leader)
            if fault == "bridge":
                c.net.connect_only(groups)
            else:
                c.net.partition(*groups)
            majority = max(groups, key=len) if fault != "bridge" else set(names)
            lost_leader = leader if leader not in majority else ""
            h.fault(fault, "start", groups=[sorted(g) for g in groups], leader=leader)
            heal = c.net.heal_all
        self.injected += 1
        election = self._watch_election(lost_leader, hold)
        heal()
        h.fault(fault, "healed", election=election, took_leader=bool(lost_leader))
        c.wait_leader(60)
        for p in c.servers + c.clients:
            p.wait_healthy(60)

    def _groups(self, fault: str, names: list[str], leader: str):
        """Partition groups; for the bridge, the set of links left up."""
        others = [n for n in names if n != leader]
        self.rng.shuffle(others)
        if fault == "isolate-leader":
            return [{leader}, set(others)]
        if fault == "partition-followers":   # a minority of followers cut off
            k = self.rng.randint(1, (len(names) - 1) // 2)
            return [set(others[:k]), set(others[k:]) | {leader}]
        if fault == "partition-random":
            shuffled = names[:]
            self.rng.shuffle(shuffled)
            k = self.rng.randint(1, (len(names) - 1) // 2)
            return [set(shuffled[:k]), set(shuffled[k:])]
        # bridge: two halves that only share one server
        bridge, rest = others[0], [leader] + others[1:]
        self.rng.shuffle(rest)
        half = len(rest) // 2
        left, right = set(rest[:half]) | {bridge}, set(rest[half:]) | {bridge}
        return {frozenset((a, b)) for g in (left, right) for a in g for b in g if a < b}

    def _watch_election(self, lost_leader: str, hold: float) -> float | None:
        """Hold the fault for ``hold`` seconds; meanwhile, if it took the leader away,
        time how long until a majority follows a new one (None if not within hold)."""
        start = time.monotonic()
        end = start + hold
        elected = None
        while time.monotonic() < end:
            if lost_leader and elected is None and \
                    self.cluster.majority_leader(exclude=lost_leader):
                elected = round(time.monotonic() - start, 3)
            time.sleep(0.05)
        return elected
