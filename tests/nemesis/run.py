"""One nemesis run: start a cluster, run the workload under the seeded faults, heal,
check, and summarize in one line.

    python -m tests.nemesis.run --seconds 60 --seed 7 --servers 5

(``bench/nemesis.py`` is the same entry point.) The history is kept in the run's
folder as ``history.jsonl``, beside each process' log.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from tests.nemesis import checkers
from tests.nemesis.archive import Archiver
from tests.nemesis.cluster import NemesisCluster
from tests.nemesis.history import History, load
from tests.nemesis.nemesis import FAULTS, Nemesis
from tests.nemesis.workload import PARENT, Workload, parent_job
from tests.procs import wait_until

CONVERGE_BOUND = 60.0     # seconds after healing within which all servers must agree


@dataclass
class Result:
    seed: int
    servers: int
    seconds: float
    ops: int = 0
    ok: int = 0
    failed: int = 0
    unknown: int = 0
    faults: int = 0
    acked_writes: int = 0
    lost_writes: int = 0
    lin_violations: int = 0
    problems: list[str] = field(default_factory=list)
    converged_s: float | None = None
    elections: list[float] = field(default_factory=list)
    elections_missed: int = 0
    first_write: list[float] = field(default_factory=list)
    first_write_after_kill: list[float] = field(default_factory=list)
    archived: int = 0     # jobs the archiver stopped and recorded (archive.py)
    # disk use per server while the run went on: [seconds, {server: {"journal": bytes,
    # "snapshot": bytes}}], every ``disk_every`` seconds, and once after the checks
    disk: list = field(default_factory=list)
    history: Path | None = None

    @property
    def passed(self) -> bool:
        return not self.problems and self.converged_s is not None

    def summary(self) -> str:
        return (f"nemesis seed={self.seed} servers={self.servers} seconds={self.seconds:g}: "
                f"ops={self.ops} (ok {self.ok}, fail {self.failed}, unknown {self.unknown}) "
                f"faults={self.faults} acked_writes={self.acked_writes} "
                f"lost_writes={self.lost_writes} lin_violations={self.lin_violations} "
                f"other_problems={len(self.problems) - self.lost_writes - self.lin_violations} "
                f"converged_in={_s(self.converged_s)} "
                f"election p50/max={_pm(self.elections)} (missed {self.elections_missed}) "
                f"first_write_after_fault p50/max={_pm(self.first_write)} "
                f"first_write_after_kill p50/max={_pm(self.first_write_after_kill)} "
                f"archived_jobs={self.archived}" + _disk(self.disk))


def _disk(samples: list) -> str:
    """The last disk sample, per server: journal + snapshot in MB."""
    if not samples:
        return ""
    _, sizes = samples[-1]
    return " disk=" + ",".join(f"{name}:{v['journal'] / 1e6:.1f}+{v['snapshot'] / 1e6:.1f}MB"
                               for name, v in sorted(sizes.items()))


def _s(x: float | None) -> str:
    return "never" if x is None else f"{x:.2f}s"


def _pm(xs: list[float]) -> str:
    return f"{statistics.median(xs):.2f}/{max(xs):.2f}s" if xs else "-"


def run(tmp: Path, seconds: float, seed: int, servers: int = 3, clients: int = 2,
        workers: int = 4, faults: tuple[str, ...] = FAULTS,
        disk_every: float = 0.0) -> Result:
    result = Result(seed, servers, seconds, history=tmp / "history.jsonl")
    cluster = NemesisCluster(tmp, n=servers, clients=clients, seed=seed)
    sampler = _DiskSampler(cluster, result, disk_every) if disk_every > 0 else None
    try:
        cluster.start()
        leader = cluster.by_name(cluster.wait_leader())
        httpx.post(leader.url + "/v1/jobs", json=parent_job(), timeout=10).raise_for_status()
        history = History(result.history)
        urls = [(s.name, s.url) for s in cluster.servers]
        workload = Workload(history, urls, seed, workers=workers)
        archiver = Archiver(history, urls, workload.keys, workload.key_every, seed=seed)
        nemesis = Nemesis(cluster, history, seed, faults)
        if sampler is not None:
            sampler.start()
        workload.start()
        archiver.start()
        try:
            try:
                nemesis.run(seconds)
            finally:
                workload.stop()
            result.faults = nemesis.injected
            _heal(cluster)
            archived_all = archiver.finish()
        finally:
            archiver.close()
            history.close()
        result.archived = archiver.archived
        result.converged_s = _converge(cluster)
        _check(cluster, result)
        if not archived_all:
            result.problems.append("the archiver could not record every finished job's "
                                   "versions within 60 s of healing")
        if sampler is not None:
            sampler.sample()
    finally:
        if sampler is not None:
            sampler.stop()
        cluster.stop()
    return result


class _DiskSampler:
    """Every ``every`` seconds: each server's raft journal and snapshot sizes."""

    def __init__(self, cluster: NemesisCluster, result: Result, every: float):
        self.cluster, self.result, self.every = cluster, result, every
        self.t0 = time.monotonic()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="disk")

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(10)

    def _run(self) -> None:
        while not self._stop.wait(self.every):
            self.sample()

    def sample(self) -> None:
        sizes = {}
        for s in self.cluster.servers:
            raft = self.cluster.tmp / "data" / s.name / "raft"
            sizes[s.name] = {"journal": _size(raft / "raft.wal"),
                             "snapshot": _size(raft / "raft.snapshot")}
        self.result.disk.append([round(time.monotonic() - self.t0, 1), sizes])


def _size(path: Path) -> int:
    try:
        return path.stat().st_size
    except OSError:
        return 0


def _heal(cluster: NemesisCluster) -> None:
    cluster.net.heal_all()
    for name in list(cluster.paused):
        cluster.resume(name)
    for p in cluster.servers + cluster.clients:
        if not p.alive():
            p.start()
    for p in cluster.servers + cluster.clients:
        p.wait_healthy(60)


def _converge(cluster: NemesisCluster) -> float | None:
    """Seconds until every server reports the same applied index and state hash."""
    start = time.monotonic()
    try:
        wait_until(lambda: len(set(cluster.digests().values())) == 1, CONVERGE_BOUND,
                   "the servers to converge", interval=0.2)
    except TimeoutError:
        return None
    return round(time.monotonic() - start, 2)


def _check(cluster: NemesisCluster, result: Result) -> None:
    loaded = load(result.history)
    ops = loaded.ops
    result.ops = len(ops)
    result.ok = sum(o.result == "ok" for o in ops)
    result.failed = sum(o.result == "fail" for o in ops)
    result.unknown = sum(o.result == "unknown" for o in ops)
    result.acked_writes = sum(o.result == "ok" and o.f != "read" for o in ops)
    http = httpx.Client(base_url=cluster.by_name(cluster.wait_leader()).url, timeout=30)
    with http:
        keys = sorted({o.key for o in ops if o.f in ("register", "stop")})
        final = {}
        for key in keys:
            r = http.get(f"/v1/job/{key}/versions")
            if r.status_code != 404:   # never registered: no versions
                r.raise_for_status()
            final[key] = r.json()["Versions"] if r.status_code == 200 else []
        versions = checkers.merge_versions(loaded.versions, final)
        children = loaded.children | {
            j["ID"] for j in http.get("/v1/jobs", params={"prefix": PARENT + "/"}).json()}
        nodes = [http.get(f"/v1/node/{n['ID']}").json() for n in http.get("/v1/nodes").json()]
        allocs = {n["ID"]: http.get(f"/v1/node/{n['ID']}/allocations").json() for n in nodes}
    lin = checkers.check_linearizable(ops, versions)
    version_problems, lost = checkers.check_versions(ops, versions)
    dispatch_problems, lost_children = checkers.check_dispatches(ops, children)
    result.lin_violations = len(lin)
    result.lost_writes = lost + lost_children
    result.problems = lin + version_problems + dispatch_problems + \
        checkers.check_no_overcommit(nodes, allocs)
    if result.converged_s is None:
        result.problems.append(f"servers did not converge within {CONVERGE_BOUND:g}s: "
                               f"{cluster.digests()}")
    _recovery_times(loaded, result)


def _recovery_times(loaded, result: Result) -> None:
    """Per fault: the election time the nemesis measured (when the fault took the
    leader away) and the time from the fault to the first acknowledged write invoked
    after it."""
    writes = sorted((o for o in loaded.ops if o.f != "read" and o.result == "ok"),
                    key=lambda o: o.complete)
    starts = [f for f in loaded.faults if f["phase"] == "start"]
    healed = [f for f in loaded.faults if f["phase"] == "healed"]
    for start, heal in zip(starts, healed):
        if heal.get("took_leader"):
            if heal.get("election") is None:
                result.elections_missed += 1
            else:
                result.elections.append(heal["election"])
        first = next((o.complete - start["time"] for o in writes
                      if o.invoke >= start["time"]), None)
        if first is not None:
            result.first_write.append(round(first, 3))
            if start["name"] in ("kill-leader", "kill-follower"):
                result.first_write_after_kill.append(round(first, 3))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=60.0, help="how long faults are injected")
    p.add_argument("--seed", type=int, default=int(time.time()) % 100000)
    p.add_argument("--servers", type=int, default=3)
    p.add_argument("--clients", type=int, default=2)
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--faults", default=",".join(FAULTS),
                   help=f"comma-separated, from: {', '.join(FAULTS)}")
    p.add_argument("--dir", help="keep the logs and history here (default: a temp folder)")
    args = p.parse_args(argv)
    tmp = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="nemesis-"))
    tmp.mkdir(parents=True, exist_ok=True)
    result = run(tmp, args.seconds, args.seed, args.servers, args.clients, args.workers,
                 tuple(f for f in args.faults.split(",") if f))
    for problem in result.problems[:50]:
        print("  " + problem)
    print(result.summary())
    print(f"history: {result.history}")
    return 0 if result.passed else 1


if __name__ == "__main__":
    raise SystemExit(main())
