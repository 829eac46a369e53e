#!/usr/bin/env python3
"""Scheduling throughput end to end, next to the in-process ceiling measured in the same run.

    python3 bench/schedule.py [--ports none|dynamic|spread|both|all] [--nodes 1000] [--jobs 100]
                              [--count 100] [--workers N] [--follower-workers N]
                              [--timeout 50] [--profile DIR] [--json out.json] [--keep]

About 85-90 s with the defaults (three variants: tasks without ports, with one dynamic
port, and without ports but with a spread and an affinity; each end-to-end run on a fresh
cluster; ``both`` runs the first two). In the ``spread`` variant the nodes are dealt
out over datacenters dc1 and dc2, and each job spreads evenly over the datacenters and
prefers nodes whose name ends in an even digit (weight 50): every placement is then
scored by the node-affinity and allocation-spread stages too, over at least 100 nodes
(Nomad's limit with affinities or spreads) instead of log2(n). For each variant:

1. In-process ceiling (a child process of this file, ``_ceiling`` mode): the same 1,000
   nodes (``client.nodesim.build_node`` + ``server.rpc.node_registration.prepare_node``, what the
   Register RPC commits) and the same 100 jobs (``convert`` + ``canonicalize`` +
   ``new_eval``, what ``POST /v1/jobs`` commits) go into a real ``fsm.apply.FSM`` as
   encoded NodeRegister and JobRegister entries. Then, timed: for each pending eval in
   CreateIndex order, what a worker and the plan applier do, synchronously:
   ``compute_plan`` (rng seeded from the eval ID), ``PlanApplier.check`` against the
   newest state, and one encoded PlanResults entry through ``FSM.apply``. No raft, no
   HTTP, no event loop, one thread. placements/s = placements / that loop's wall time.
2. End to end: a 3-server cluster (``tests/procs.py``), ``caravan nodesim`` registering
   1,000 simulated nodes (4,000 MHz, 8,192 MB, driver mock) against the leader, waiting
   until the leader lists them all ready. Then 100 ``POST /v1/jobs`` (service job, one
   group, Count 100, one mock task with CPU 100 / MemoryMB 64, and in the ``dynamic``
   variant one dynamic port) are sent at once to the leader over 100 connections.
   t0 = just before the first request is sent.

   On every server a watcher (a blocking query on ``/v1/job/<no such job>/allocations
   ?index=N``, ``?stale`` on followers: an empty body whose X-Nomad-Index is the
   allocations table's index) records when each new index became visible; a commit's
   time is the earliest sighting on any server (a follower applies an entry only after
   the leader counted it committed, so every sighting is an upper bound; the leader's
   own is often late because it plans on its event loop). Counters (blocking
   ``/v1/jobs?stale`` on each follower, summing every group's summary counts) say when
   10,000 allocations exist. Afterwards one ``GET /v1/allocations`` on the leader gives
   every allocation's CreateIndex: the allocations of one plan share one CreateIndex
   (one PlanResults entry). t_end = the first sighting of the 10,000th allocation's
   CreateIndex: committed, not "running" (nodesim reports them running in the
   background, which is leader load the run includes). placements/s = 10,000 / (t_end - t0).

   Plan figures (the applier's own ``latencies`` are not exposed over HTTP):
   - commit gap: wall time between consecutive plan commits as sighted (per distinct
     CreateIndex; two commits sighted in one wake-up count as 0).
   - plan latency: from the moment the worker started planning (the allocations'
     CreateTime is the ``now_ns`` handed to ``compute_plan``, leader wall clock) to the
     commit's sighting (this process's wall clock, same machine). It covers planning,
     the applier queue, the re-check, the raft round, the FSM apply and the sighting.
   - eval wait: the eval's first planning - its CreateTime (set at register).

Figures only: nothing is asserted. Only 127.0.0.1 is used, every process started is
stopped in a ``finally``. The last line is ``SUMMARY {json}``. With ``BENCH_DUMP=FILE``
the allocations and evals fetched after each variant are written to FILE, to look into
a run that printed a ``!!`` line.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import RawHTTP, clean_up, cpu_s, header, tree_state  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CLK_TCK = os.sysconf("SC_CLK_TCK")
TARGET_PLACEMENTS_S = 3750.0
NODE_CPU_MHZ, NODE_MEMORY_MB = 4000, 8192
SPREAD_DATACENTERS = ("dc1", "dc2")
TASK_CPU, TASK_MEMORY_MB = 100, 64
NODE_PREFIX = "bench"
JOB_PREFIX = "bench-"
WATCH_JOB = "bench-watch-no-such-job"


# ----------------------------------------------------------------------------------------
# the workload, shared by both paths
# ----------------------------------------------------------------------------------------

def job_raw(i: int, count: int, ports: str) -> dict:
    """A small service job: 1 group of ``count``, 1 mock task, CPU 100 / 64 MB, and in the
    ``dynamic`` variant one dynamic port (task-level network, as the jobs of Nomad's API documentation); in
    the ``spread`` variant an even spread over the datacenters and an affinity."""
    resources: dict = {"CPU": TASK_CPU, "MemoryMB": TASK_MEMORY_MB}
    if ports == "dynamic":
        resources["Networks"] = [{"MBits": 10, "DynamicPorts": [{"Label": "http"}]}]
    jid = f"{JOB_PREFIX}{i:03d}"
    job = {"ID": jid, "Name": jid, "Type": "service", "Datacenters": ["dc1"],
           "TaskGroups": [{"Name": "web", "Count": count,
                           "Tasks": [{"Name": "app", "Driver": "mock",
                                      "Config": {"run_for": "1h"}, "Resources": resources}]}]}
    if ports == "spread":
        job["Datacenters"] = list(SPREAD_DATACENTERS)
        job["Spreads"] = [{"Attribute": "${node.datacenter}", "Weight": 50}]
        job["Affinities"] = [{"LTarget": "${node.unique.name}", "RTarget": "[02468]$",
                              "Operand": "regexp", "Weight": 50}]
    return job


def nodesim_args(nodes: int, variant: str = "none") -> list[str]:
    datacenters = ",".join(SPREAD_DATACENTERS) if variant == "spread" else "dc1"
    return ["-count", str(nodes), "-cpu", str(NODE_CPU_MHZ), "-memory", str(NODE_MEMORY_MB),
            "-drivers", "mock", "-name-prefix", NODE_PREFIX, "-datacenter", datacenters]


def pct(vals, q: float):
    """Nearest-rank percentile of a list (None when empty)."""
    if not vals:
        return None
    s = sorted(vals)
    return s[min(len(s) - 1, max(0, int(round(q / 100.0 * len(s) + 0.5)) - 1))]


def r3(x):
    return None if x is None else round(x, 3)


# ----------------------------------------------------------------------------------------
# 1. the in-process ceiling (child process: a fresh interpreter, nothing else running in it)
# ----------------------------------------------------------------------------------------

def ceiling_main(argv) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--nodes", type=int, required=True)
    ap.add_argument("--jobs", type=int, required=True)
    ap.add_argument("--count", type=int, required=True)
    ap.add_argument("--ports", required=True)
    a = ap.parse_args(argv)

    from caravan.client.nodesim import _parser as nodesim_parser
    from caravan.client.nodesim import build_node
    from caravan.fsm import entries as e
    from caravan.fsm import schema as t
    from caravan.fsm.apply import FSM
    from caravan.fsm.structs import Job
    from caravan.scheduler.generic import compute_plan
    from caravan.scheduler.plan_apply import PlanApplier
    from caravan.scheduler.worker import eval_rng
    from caravan.server import ids
    from caravan.server.entries.jobs import new_eval
    from caravan.server.http.common import convert
    from caravan.server.jobspec.canonicalize import canonicalize
    from caravan.server.rpc.node_registration import prepare_node

    fsm = FSM()
    index = 0

    sizes: list[int] = []   # bytes of each PlanResults entry (what raft replicates)

    def apply(body) -> dict:
        nonlocal index
        index += 1
        body.RequestID = ids.request_id()
        blob = e.encode(body)
        if isinstance(body, e.PlanResults):
            sizes.append(len(blob))
        result = fsm.apply(index, blob)
        if "Error" in result:
            raise RuntimeError(f"entry {index} refused: {result}")
        return result

    t_setup = time.perf_counter()
    sim = nodesim_parser().parse_args(["-server", "127.0.0.1:1", *nodesim_args(a.nodes, a.ports)])
    for i in range(a.nodes):
        apply(e.NodeRegister(Node=prepare_node(build_node(i, sim), time.time())))
    for i in range(a.jobs):
        job = convert(job_raw(i, a.count, a.ports), Job, "Job")
        canonicalize(job, region="global")
        apply(e.JobRegister(Job=job, Eval=new_eval(job, "job-register"), SubmitTime=time.time_ns()))
    setup_s = time.perf_counter() - t_setup
    # as the agent does with its long-lived state: collected once, then frozen out of
    # the cyclic GC's passes (automatic collection stays on)
    gc.collect()
    gc.freeze()

    applier = PlanApplier(lambda: fsm.state, None)
    pending = sorted(fsm.state.by_index(t.EVALS, t.BY_STATUS, "pending"),
                     key=lambda x: (x.CreateIndex, x.ID))
    t_plan = t_check = t_apply = 0.0
    placed = plans = rejected_nodes = 0
    per_plan = []
    t0 = time.perf_counter()
    for ev in pending:
        rng = eval_rng(ev, fsm.state)   # as the worker seeds it
        for _attempt in range(5):
            p0 = time.perf_counter()
            plan = compute_plan(fsm.state, ev, rng, time.time_ns())
            p1 = time.perf_counter()
            if plan.is_noop():
                break
            accepted, rejected = applier.check(plan, fsm.state)
            p2 = time.perf_counter()
            allocs = [x for nid in sorted(accepted) for x in accepted[nid]]
            evals = plan.evals if not rejected else []
            if allocs or plan.stops or evals:
                apply(e.PlanResults(JobID=plan.job_id, JobVersion=plan.job_version,
                                    Allocs=allocs or None, Stops=plan.stops or None,
                                    Evals=evals or None))
            p3 = time.perf_counter()
            t_plan += p1 - p0
            t_check += p2 - p1
            t_apply += p3 - p2
            per_plan.append(p3 - p0)
            placed += len(allocs)
            plans += 1
            rejected_nodes += len(rejected)
            if not rejected:
                break
    wall = time.perf_counter() - t0
    live = sum(1 for al in fsm.state.rows(t.ALLOCS) if not al.terminal())
    print("CEILING " + json.dumps({
        "ports": a.ports, "nodes": a.nodes, "evals": len(pending), "plans": plans,
        "placements": placed, "allocs_in_state": live, "rejected_nodes": rejected_nodes,
        "wall_s": round(wall, 3), "placements_per_s": round(placed / wall, 1) if wall else None,
        "compute_plan_s": round(t_plan, 3), "check_s": round(t_check, 3),
        "fsm_apply_s": round(t_apply, 3),
        "per_plan_ms": {"p50": r3(pct(per_plan, 50) * 1e3), "p99": r3(pct(per_plan, 99) * 1e3)},
        "plan_entry_bytes": {"p50": pct(sizes, 50), "max": max(sizes, default=0),
                             "total": sum(sizes)},
        "setup_s": round(setup_s, 3)}), flush=True)


def run_ceiling(args, ports: str) -> dict:
    cmd = [sys.executable, __file__, "_ceiling", "--nodes", str(args.nodes), "--jobs",
           str(args.jobs), "--count", str(args.count), "--ports", ports]
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(5)
    for line in out.splitlines():
        if line.startswith("CEILING "):
            return json.loads(line[len("CEILING "):])
    raise RuntimeError(f"in-process ceiling failed (rc={proc.returncode}): {err[-2000:]}")


# ----------------------------------------------------------------------------------------
# 2. end to end
# ----------------------------------------------------------------------------------------

def machine_busy_s() -> float:
    """busy CPU seconds of the whole machine (all cores, softirq included, steal excluded)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK


def cpu_sample(pids: dict[str, int]):
    return {k: cpu_s(p) for k, p in pids.items()}, machine_busy_s(), time.perf_counter()


def cpu_diff(a, b) -> dict:
    (c0, m0, t0), (c1, m1, t1) = a, b
    wall = t1 - t0
    out = {k: round(100.0 * (c1[k] - c0[k]) / wall, 1) for k in c0}
    out["machine"] = round(100.0 * (m1 - m0) / wall, 1)
    return out


def start_profile(pid: int, out: Path) -> subprocess.Popen | None:
    """py-spy the leader without pausing it (``--native`` would pause it per sample: its
    heartbeats then lapse, nodes go down and the run schedules something else)."""
    if not shutil.which("py-spy"):
        print("  (py-spy not found: pip install py-spy; no profile)")
        return None
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--duration", "120",
                             "--rate", "200", "--format", "raw", "--threads", "--nonblocking",
                             "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)


def stop_profile(proc: subprocess.Popen | None) -> None:
    """py-spy writes its output when interrupted."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGINT)
    try:
        proc.wait(20)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait(5)


_PLUMBING = re.compile(r"threading\.py|runpy|runners\.py|base_events\.py|<module>|cli\.py|"
                       r"events\.py|\bmain \(|\brun \(.*(agent|uvloop)|_autoTickThread")


# what each leader sample was doing: the first rule whose pattern is in the stack wins
ACTIVITIES = [
    ("scheduler: compute_plan", "compute_plan ("),
    ("plan applier: check + submit", "PlanApplier."),
    ("raft: FSM apply", "FSM.apply ("),
    ("raft: send append-entries", "__sendAppendEntries"),
    ("raft: other tick work", "_autoTickThread"),
    ("gRPC node service (nodesim: watches, updates, heartbeats)", "NodeService."),
    ("gRPC poller thread", "_poll_wrapper"),
    ("HTTP (starlette/uvicorn)", "starlette/"),
    ("leader services: feed, unblock, heartbeats", "LeaderServices."),
]


def _activity(stack: str) -> str:
    for name, pattern in ACTIVITIES:
        if pattern in stack:
            return name
    if stack.split(";")[-1].startswith("Runner.run ("):
        return "event loop itself (C code under Runner.run: uvloop, grpc aio)"
    return "other"


def summarize_profile(path: Path, top: int = 14) -> dict:
    """py-spy collapsed stacks -> share of all samples per thread, and the top inclusive
    functions (event-loop and thread plumbing left out) and top self frames."""
    if not path.exists():
        return {}
    total = 0
    threads = collections.Counter()
    incl = collections.Counter()
    selfc = collections.Counter()
    activity = collections.Counter()
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        n = int(n)
        activity[_activity(stack)] += n
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1]
        names = [re.sub(r":\d+\)$", ")", re.sub(r"\(/\S*?/(site-packages|lib/python3\.\d+|main)/", "(", f))
                 for f in frames[1:]]
        total += n
        threads[thread] += n
        if names:
            selfc[names[-1]] += n
        for f in set(names):
            incl[f] += n
    if not total:
        return {}
    return {"samples": total,
            "threads": {t: round(n / total, 3) for t, n in threads.most_common()},
            "activity": {a: round(n / total, 3) for a, n in activity.most_common()},
            "inclusive": [(f, round(v / total, 3)) for f, v in incl.most_common(400)
                          if not _PLUMBING.search(f)][:top],
            "self": [(f, round(v / total, 3)) for f, v in selfc.most_common(top)]}


def wait_for(predicate, timeout: float, what: str, interval: float = 0.2):
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        try:
            got = predicate()
            if got:
                return got
        except Exception as exc:  # not yet
            last = exc
        time.sleep(interval)
    raise TimeoutError(f"timed out after {timeout:.0f}s waiting for {what} (last error: {last})")


def group_counts(summary: dict | None) -> int:
    if not summary:
        return 0
    return sum(sum(v for k, v in g.items() if k != "Queued" and isinstance(v, int))
               for g in (summary.get("Summary") or {}).values())


async def measure(leader_url: str, follower_urls: list[str], bodies: list[bytes],
                  expected: int, timeout: float, on_done) -> dict:
    """Register every job at once; watch the allocations index on every server and the
    followers' summaries until ``expected`` allocations exist (or ``timeout``). Plain
    keep-alive HTTP/1.1 (``common.RawHTTP``): an HTTP library's own CPU would be taken
    from the servers measured on the same 2 cores."""
    # per server: (perf_counter, wall ns, alloc index) each time its index moved
    obs: dict[str, list[tuple[float, int, int]]] = {}
    counts: list[tuple[float, int]] = []          # (perf_counter, allocations counted)
    done = asyncio.Event()
    stop = asyncio.Event()

    async def watcher(name, url, stale):
        conn, index = RawHTTP.of(url), 0
        seen = obs.setdefault(name, [])
        extra = "&stale" if stale else ""
        try:
            while not stop.is_set():
                try:
                    _, head, _ = await conn.request(
                        "GET", f"/v1/job/{WATCH_JOB}/allocations?wait=5s&index={index}{extra}")
                except (OSError, asyncio.IncompleteReadError):
                    await asyncio.sleep(0.01)
                    continue
                now, wall = time.perf_counter(), time.time_ns()
                i = int(header(head, "X-Nomad-Index") or 0)
                if i > index or not seen:   # the first answer is the baseline
                    seen.append((now, wall, i))
                # a table never written answers index 0, and ?index=0 does not block
                index = max(index, i, 1)
        finally:
            conn.close()

    async def counter(url):
        conn, index = RawHTTP.of(url), 0
        try:
            while not stop.is_set():
                try:
                    _, head, body = await conn.request(
                        "GET", f"/v1/jobs?stale&prefix={JOB_PREFIX}&index={index}&wait=5s")
                except (OSError, asyncio.IncompleteReadError):
                    await asyncio.sleep(0.05)
                    continue
                index = max(int(header(head, "X-Nomad-Index") or 0), 1)   # 0 would not block
                n = sum(group_counts(j.get("JobSummary")) for j in json.loads(body))
                counts.append((time.perf_counter(), n))
                if n >= expected:
                    if not done.is_set():
                        on_done()
                        done.set()
                    return
        finally:
            conn.close()

    reg_conns = [RawHTTP.of(leader_url) for _ in bodies]
    # open every connection first, so that t0 includes no TCP connects
    await asyncio.gather(*(c.request("GET", "/v1/agent/health") for c in reg_conns))
    servers = [("leader", leader_url, False)] + [
        (f"follower{k + 1}", u, True) for k, u in enumerate(follower_urls)]
    tasks = [asyncio.ensure_future(watcher(*s)) for s in servers]
    # a follower can fall behind (pysyncobj re-sends): count on both, first one wins
    tasks += [asyncio.ensure_future(counter(u)) for u in follower_urls]
    while len([o for o in obs.values() if o]) < len(servers):
        await asyncio.sleep(0.01)
    replies: list[tuple[float, int]] = []

    async def register(conn: RawHTTP, body: bytes):
        status, _, _ = await conn.request("POST", "/v1/jobs", body)
        replies.append((time.perf_counter(), status))

    t0, t0_wall = time.perf_counter(), time.time_ns()
    regs = [asyncio.ensure_future(register(c, b)) for c, b in zip(reg_conns, bodies)]
    try:
        await asyncio.wait_for(done.wait(), timeout)
    except TimeoutError:
        pass
    counted = done.is_set()
    if not counted:
        on_done()
    else:   # let every server's watcher report the last commit too (t_end is the earliest)
        await asyncio.sleep(0.5)
    stop.set()
    await asyncio.gather(*regs, return_exceptions=True)
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)
    for c in reg_conns:
        c.close()
    after = RawHTTP.of(leader_url)
    try:
        allocs = json.loads((await after.request("GET", "/v1/allocations?task_states=false"))[2])
        evals = json.loads((await after.request("GET", "/v1/evaluations"))[2])
    finally:
        after.close()
    if os.environ.get("BENCH_DUMP"):
        Path(os.environ["BENCH_DUMP"]).write_text(json.dumps({"allocs": allocs, "evals": evals}))
    return {"t0": t0, "t0_wall": t0_wall, "obs": obs, "counts": counts, "replies": replies,
            "counted": counted, "timeout": timeout, "allocs": allocs, "evals": evals}


def earliest(per_server: dict[str, list]) -> list[tuple[float, int, int, str]]:
    """Merge every server's sightings into: for each index some server reported, the
    earliest moment any server had it (a later sighting of a higher index implies the
    lower ones). Every sighting is an upper bound of the commit time: a follower applies
    an entry only once the leader has counted it committed."""
    merged = sorted(((*o, name) for name, seen in per_server.items() for o in seen),
                    key=lambda o: (o[2], o[0]))
    out: list[tuple[float, int, int, str]] = []
    for o in reversed(merged):      # from the highest index down, keep a running minimum
        if not out or o[0] < out[-1][0]:
            out.append(o)
    return list(reversed(out))


def analyse(m: dict, expected: int) -> dict:
    t0 = m["t0"]
    obs = earliest(m["obs"])
    allocs = [a for a in m["allocs"] if a["JobID"].startswith(JOB_PREFIX)]
    evals = [e for e in m["evals"] if e["JobID"].startswith(JOB_PREFIX)]
    plans: dict[int, list] = collections.defaultdict(list)
    for a in allocs:
        plans[a["CreateIndex"]].append(a)

    def seen(index, among=None):
        """The first sighting of ``index`` or later: (perf_counter, wall ns, server)."""
        import bisect
        o = obs if among is None else among
        k = bisect.bisect_left([x[2] for x in o], index)
        return (o[k][0], o[k][1], o[k][-1]) if k < len(o) else (None, None, None)

    committed = len(allocs)
    t_end = t_end_leader = None
    if committed >= expected:
        last_index = sorted(a["CreateIndex"] for a in allocs)[expected - 1]
        t_end = seen(last_index)[0]
        t_end_leader = seen(last_index, m["obs"]["leader"])[0]
    elapsed = (t_end - t0) if t_end is not None else None
    timed_out = elapsed is None or elapsed > m["timeout"]
    if timed_out:   # report what was committed by the deadline
        committed = sum(1 for a in allocs if (seen(a["CreateIndex"])[0] or 1e18) - t0 <= m["timeout"])
        elapsed = None
    # per plan (one PlanResults entry = one CreateIndex)
    commits, latencies, sizes = [], [], []
    first_by = collections.Counter()
    for ci in sorted(plans):
        perf, wall, who = seen(ci)
        sizes.append(len(plans[ci]))
        if perf is None:
            continue
        first_by[who] += 1
        commits.append(perf)
        started = min(a["CreateTime"] for a in plans[ci])
        latencies.append((wall - started) / 1e6)
    gaps = [(b - a) * 1e3 for a, b in zip(commits, commits[1:])]
    first_commit = (commits[0] - t0) if commits else None
    # how long evals waited between their registration and their (last) planning
    first_plan_start = {}
    for ci in sorted(plans):
        for a in plans[ci]:
            first_plan_start.setdefault(a["EvalID"], a["CreateTime"])
    queue_waits = [(first_plan_start[e["ID"]] - e["CreateTime"]) / 1e6 for e in evals
                   if e["ID"] in first_plan_start and e.get("CreateTime")]
    replies = m["replies"]
    reg_ok = sum(1 for _, s in replies if s == 200)
    last_reply = max((t for t, _ in replies), default=None)
    status = collections.Counter(e["Status"] for e in evals)
    # a correctness check, not a figure: each (job, alloc name) should be placed once
    names = collections.Counter((a["JobID"], a["Name"]) for a in allocs
                                if a["DesiredStatus"] == "run")
    return {
        "duplicate_allocs": sum(n - 1 for n in names.values() if n > 1),
        "distinct_names": len(names),
        "placements": committed, "expected": expected, "timed_out": timed_out,
        "counter_saw_all": m["counted"],
        "elapsed_s": r3(elapsed),
        "placements_per_s": round(expected / elapsed, 1) if elapsed else None,
        "registrations_ok": reg_ok, "registrations": len(replies),
        "last_register_reply_s": r3(last_reply - t0) if last_reply else None,
        "first_commit_s": r3(first_commit),
        "plans": len(plans), "allocs_per_plan": {"min": min(sizes, default=0),
                                                 "max": max(sizes, default=0)},
        "commit_gap_ms": {"p50": r3(pct(gaps, 50)), "p99": r3(pct(gaps, 99)),
                          "max": r3(max(gaps, default=None) if gaps else None),
                          "zero": sum(1 for g in gaps if g == 0)},
        "plan_latency_ms": {"p50": r3(pct(latencies, 50)), "p99": r3(pct(latencies, 99))},
        "eval_queue_wait_ms": {"p50": r3(pct(queue_waits, 50)), "p99": r3(pct(queue_waits, 99))},
        "evals": dict(status),
        "watcher_wakeups": {k: len(v) for k, v in m["obs"].items()},
        "plan_commit_first_seen_by": dict(first_by),
        "elapsed_leader_watcher_s": r3(t_end_leader - t0) if t_end_leader else None,
        "counter_done_after_s": r3(min((t for t, n in m["counts"] if n >= expected),
                                       default=t0 - 1) - t0) if m["counted"] else None,
        "partial_placements_per_s": round(committed / m["timeout"], 1) if timed_out else None,
    }


def run_e2e(args, ports: str, tmp: Path, cleanup: list) -> dict:
    import httpx

    from tests.procs import make_cluster

    vdir = tmp / ports
    vdir.mkdir()
    extra = (f"scheduler_workers = {args.workers}\n" if args.workers else "") + \
        (f"follower_scheduler_workers = {args.follower_workers}\n" if args.follower_workers else "")
    cluster = make_cluster(vdir, n=3, cluster_toml=extra)
    cleanup.append(cluster.stop)
    t_phase = time.monotonic()
    cluster.start()
    leader = cluster.leader()
    followers = [s for s in cluster.servers if s is not leader]
    sim_log = open(vdir / "nodesim.log", "wb")
    sim = subprocess.Popen([sys.executable, "-m", "caravan", "nodesim", "-server", leader.rpc,
                            *nodesim_args(args.nodes, ports)], cwd=ROOT, stdout=sim_log,
                           stderr=subprocess.STDOUT, start_new_session=True)
    sim_log.close()

    def stop_sim():
        if sim.poll() is None:
            os.killpg(sim.pid, signal.SIGTERM)
            try:
                sim.wait(10)
            except subprocess.TimeoutExpired:
                os.killpg(sim.pid, signal.SIGKILL)
                sim.wait(5)
    cleanup.append(stop_sim)

    def all_ready():
        if sim.poll() is not None:
            raise RuntimeError(f"nodesim exited: {(vdir / 'nodesim.log').read_text()[-2000:]}")
        nodes = httpx.get(leader.url + "/v1/nodes", timeout=10).json()
        return sum(1 for n in nodes if n["Status"] == "ready") >= args.nodes
    t_nodes = time.monotonic()
    wait_for(all_ready, 60, f"{args.nodes} ready nodes", interval=0.5)
    nodes_s = time.monotonic() - t_nodes
    time.sleep(1.0)   # let the registration burst's tail (replication, GC) settle

    bodies = [json.dumps({"Job": job_raw(i, args.count, ports)}).encode()
              for i in range(args.jobs)]
    pids = {"leader": leader.proc.pid, "follower1": followers[0].proc.pid,
            "follower2": followers[1].proc.pid, "nodesim": sim.pid, "bench": os.getpid()}
    # py-spy on the leader, and on one follower and nodesim, whose CPU comes out of
    # the same two cores
    profs: dict[str, tuple[subprocess.Popen | None, Path]] = {}
    if args.profile:
        for who in ("leader", "follower1", "nodesim"):
            path = Path(args.profile) / f"{who}-{ports}.txt"
            profs[who] = (start_profile(pids[who], path), path)
        time.sleep(0.5)
    cleanup.append(lambda: [stop_profile(p) for p, _ in profs.values()])
    window = {}

    def on_done():
        window["end"] = cpu_sample(pids)
        for p, _ in profs.values():
            stop_profile(p)

    window["start"] = cpu_sample(pids)
    m = asyncio.run(measure(leader.url, [f.url for f in followers], bodies,
                            args.jobs * args.count, args.timeout, on_done))
    res = analyse(m, args.jobs * args.count)
    res["cpu_pct"] = cpu_diff(window["start"], window["end"])
    res["nodes_ready_s"] = round(nodes_s, 1)
    res["timeout_s"] = args.timeout
    res["leader"] = leader.name
    for who, (_, path) in profs.items():
        res[f"profile_{who}"] = summarize_profile(path)
    leaders = set()
    for srv in cluster.servers:
        try:
            leaders.add(httpx.get(srv.url + "/v1/status/leader", params={"stale": ""},
                                  timeout=5).json())
        except Exception:  # reported as unknown
            leaders.add("?")
    res["leader_changed"] = leaders != {leader.rpc}
    res["truncations"] = sum((vdir / f"{s.name}.log").read_text(errors="replace")
                             .count("truncating already-applied") for s in cluster.servers)
    stop_sim()
    cluster.stop()
    res["phase_s"] = round(time.monotonic() - t_phase, 1)
    return res


# ----------------------------------------------------------------------------------------
# report
# ----------------------------------------------------------------------------------------

def fmt(x, spec=".0f"):
    return "-" if x is None else format(x, spec)


def print_variant(ports: str, ce: dict, e2e: dict) -> None:
    ratio = (e2e["placements_per_s"] / ce["placements_per_s"]
             if e2e.get("placements_per_s") and ce.get("placements_per_s") else None)
    cpu = e2e["cpu_pct"]
    print(f"\nvariant ports={ports}: {e2e['expected']} placements, {ce['nodes']} nodes")
    print(f"  end to end   {e2e['placements']:>6} committed in {fmt(e2e['elapsed_s'], '.2f')} s"
          f" -> {fmt(e2e['placements_per_s'])} placements/s"
          + (f"   (TIMED OUT after {e2e['timeout_s']:.0f} s: {e2e['placements']}"
             f" committed by then, {fmt(e2e['partial_placements_per_s'])}/s)" if e2e['timed_out'] else ""))
    print(f"  in-process   {ce['placements']:>6} placed in {ce['wall_s']:.2f} s"
          f" -> {ce['placements_per_s']:.0f} placements/s   (compute_plan {ce['compute_plan_s']:.2f} s,"
          f" check {ce['check_s']:.2f} s, FSM apply {ce['fsm_apply_s']:.2f} s;"
          f" per plan p50 {ce['per_plan_ms']['p50']:.1f} ms)")
    eb = ce["plan_entry_bytes"]
    print(f"  PlanResults entry: p50 {eb['p50'] / 1024:.0f} KiB, max {eb['max'] / 1024:.0f} KiB,"
          f" {eb['total'] / 2**20:.1f} MiB for all plans (in-process figures)")
    print(f"  ratio e2e/in-process {fmt(ratio, '.2f')}   target >= {TARGET_PLACEMENTS_S:.0f}/s:"
          f" {'met' if (e2e['placements_per_s'] or 0) >= TARGET_PLACEMENTS_S else 'MISSED'}")
    print(f"  registrations {e2e['registrations_ok']}/{e2e['registrations']} ok, last reply at"
          f" {fmt(e2e['last_register_reply_s'], '.2f')} s; first plan committed at"
          f" {fmt(e2e['first_commit_s'], '.2f')} s")
    print(f"  plans {e2e['plans']} (allocs/plan {e2e['allocs_per_plan']['min']}-"
          f"{e2e['allocs_per_plan']['max']}), evals {e2e['evals']}")
    g, lat, qw = e2e["commit_gap_ms"], e2e["plan_latency_ms"], e2e["eval_queue_wait_ms"]
    print(f"  commit gap ms p50 {fmt(g['p50'], '.1f')} p99 {fmt(g['p99'], '.1f')} max"
          f" {fmt(g['max'], '.1f')} ({g['zero']} gaps of 0: commits seen in one wake-up)")
    print(f"  plan latency ms (planning start -> commit seen) p50 {fmt(lat['p50'], '.1f')}"
          f" p99 {fmt(lat['p99'], '.1f')};  eval wait register -> planning p50"
          f" {fmt(qw['p50'], '.0f')} p99 {fmt(qw['p99'], '.0f')} ms")
    print("  CPU % over the window: " + ", ".join(f"{k} {v:.0f}" for k, v in cpu.items())
          + " (machine: of 200)")
    print(f"  commits first seen by {e2e['plan_commit_first_seen_by']}; end as seen by the leader"
          f" alone {fmt(e2e['elapsed_leader_watcher_s'], '.2f')} s; watcher wake-ups"
          f" {e2e['watcher_wakeups']}")
    print(f"  nodes ready after {e2e['nodes_ready_s']} s; pysyncobj truncations {e2e['truncations']};"
          f" leader changed: {e2e['leader_changed']}")
    others = {k: v for k, v in e2e["evals"].items() if k != "complete"}
    if not e2e["timed_out"] and (others or e2e["distinct_names"] < e2e["expected"]):
        print(f"  !! not a clean run: evals other than complete {others}, {e2e['distinct_names']}"
              f" distinct allocation names of {e2e['expected']} (nodes lost? see nodesim/server logs)")
    if e2e["duplicate_allocs"]:
        print(f"  !! {e2e['duplicate_allocs']} allocations share a job and name with another"
              f" ({e2e['distinct_names']} distinct names): some placements were made twice")
    for who in ("leader", "follower1", "nodesim"):
        prof = e2e.get(f"profile_{who}")
        if not prof:
            continue
        print(f"  {who} profile: {prof['samples']} samples; threads "
              + ", ".join(f"{t} {s:.0%}" for t, s in prof["threads"].items()))
        if who == "leader":
            for a, s in prof["activity"].items():
                print(f"    {s:6.1%}  {a}")
        for f, s in prof["inclusive"]:
            print(f"    incl {s:6.1%}  {f}")
        for f, s in prof["self"][:10]:
            print(f"    self {s:6.1%}  {f}")


def main():
    if len(sys.argv) > 1 and sys.argv[1] == "_ceiling":
        return ceiling_main(sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--ports", choices=("none", "dynamic", "spread", "both", "all"),
                    default="all",
                    help="tasks without ports, with one dynamic port, without ports but with a "
                         "spread and an affinity; both (the first two) or all (default)")
    ap.add_argument("--nodes", type=int, default=1000)
    ap.add_argument("--jobs", type=int, default=100)
    ap.add_argument("--count", type=int, default=100, help="allocations per job")
    ap.add_argument("--workers", type=int, default=0,
                    help="scheduler_workers on the servers (default: the config default)")
    ap.add_argument("--follower-workers", type=int, default=0,
                    help="follower_scheduler_workers: workers on each follower too, Nomad-style "
                         "(default 0, the config default)")
    ap.add_argument("--timeout", type=float, default=50.0,
                    help="seconds to wait for all placements per variant (default 50)")
    ap.add_argument("--profile", metavar="DIR", help="py-spy the leader, a follower and nodesim during scheduling; "
                    "sampling adds overhead, so such a run is not a headline run")
    ap.add_argument("--json", metavar="FILE", help="also write the SUMMARY object to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, journals)")
    args = ap.parse_args()
    variants = {"both": ["none", "dynamic"], "all": ["none", "dynamic", "spread"]}.get(
        args.ports, [args.ports])
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)

    def interrupted(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")
    # SIGTERM (and SIGINT, even if the shell started us with it ignored) unwinds through
    # the finally below, which stops every process this run started
    signal.signal(signal.SIGTERM, interrupted)
    signal.signal(signal.SIGINT, interrupted)

    t_start = time.monotonic()
    tmp = Path(tempfile.mkdtemp(prefix="caravan-bench-schedule-"))
    cleanup: list = []
    ceilings, e2e = {}, {}
    try:
        for ports in variants:   # first, while nothing else runs
            print(f"in-process ceiling, ports={ports} ...", flush=True)
            ceilings[ports] = run_ceiling(args, ports)
        for ports in variants:
            print(f"end to end, ports={ports}: 3 servers, {args.nodes} nodes, {args.jobs} jobs x "
                  f"{args.count} ...", flush=True)
            e2e[ports] = run_e2e(args, ports, tmp, cleanup)
    finally:
        clean_up(cleanup, tmp, args.keep)

    for ports in variants:
        print_variant(ports, ceilings[ports], e2e[ports])

    import platform
    from importlib.metadata import version
    out = {
        "command": "python3 " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
        "env": {"python": platform.python_version(), "pysyncobj": version("pysyncobj"),
                "cpus": os.cpu_count()},
        "nodes": args.nodes, "jobs": args.jobs, "count": args.count,
        "workers": args.workers or "default", "follower_workers": args.follower_workers, "profiled": bool(args.profile),
        "target_placements_per_s": TARGET_PLACEMENTS_S,
        "wall_s": round(time.monotonic() - t_start, 1), "tree": tree_state(),
        "variants": {p: {
            "e2e_placements_per_s": e2e[p]["placements_per_s"],
            "ceiling_placements_per_s": ceilings[p]["placements_per_s"],
            "ratio": round(e2e[p]["placements_per_s"] / ceilings[p]["placements_per_s"], 3)
            if e2e[p]["placements_per_s"] and ceilings[p]["placements_per_s"] else None,
            "target_met": (e2e[p]["placements_per_s"] or 0) >= TARGET_PLACEMENTS_S,
            "e2e": e2e[p], "ceiling": ceilings[p]} for p in variants},
    }
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    print("SUMMARY " + json.dumps(out, separators=(",", ":")), flush=True)


if __name__ == "__main__":
    try:
        main()
    except KeyboardInterrupt as exc:
        print(f"interrupted ({exc}); every process this run started was stopped", file=sys.stderr)
        sys.exit(130)
