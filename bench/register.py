#!/usr/bin/env python3
"""Caravan write/read throughput next to baselines measured in the same run.

    python3 bench/register.py [--duration 5] [--read-duration S] [--clients 1,16,64]
                              [--conns 64] [--no-pin] [--raw-payload body|entry]
                              [--profile DIR] [--json out.json] [--keep]

About 65 s with the defaults (3 write points + 4 read points + 3 baseline points of 5 s).

What it does, in this order (all on 127.0.0.1, every child process killed at the end):

1. Caravan: starts a 3-server cluster (``tests/procs.py``), then for each client count
   registers jobs (``POST /v1/jobs`` to the leader, ~2 KB JSON, a distinct job ID per
   request) for ``--duration`` seconds. The load generator is a separate process (this
   file, ``_loadgen`` mode: raw HTTP/1.1 over asyncio streams on uvloop, keep-alive, N
   connections each with one request in flight). Reported: registrations/s, p50/p99
   latency, and CPU seconds per registration = CPU time of the three server processes over
   the measured window / registrations completed in it.
2. Caravan reads: ``GET /v1/job/<id>?stale`` and ``GET /v1/job/<id>`` on the leader with
   wrk (``--conns`` connections, 1 thread).
3. Bare HTTP floor: a starlette app with one route returning the bytes (and X-Nomad-*
   headers) that Caravan returned for that job, served by uvicorn with 1 worker and
   httptools, once on uvloop (what ``uvicorn[standard]`` runs by default: the reference
   for the targets) and once on the stdlib asyncio loop (what ``caravan agent`` runs,
   because it calls ``uvicorn.Server.serve()`` inside ``asyncio.run``). Same wrk settings.
4. Raw pysyncobj: three node processes (this file, ``_node`` mode) with Caravan's
   SyncObjConf (journal + full dump file with a custom serializer, password, bindAddress,
   appendEntriesUseBatch=False, leaderFallbackTimeout=3, connectionRetryTime=1,
   commandsQueueSize=10000, logCompactionMinEntries=20000) and one replicated method taking
   bytes. On the leader, N asyncio callers each submit the same kind of ~2 KB payload (the
   registration body, distinct job ID per commit) with ``callback=`` bridged to the loop via
   ``call_soon_threadsafe`` and wait for their own commit: Caravan's submit path without
   HTTP, validation or the FSM.

Reads (2, 3) pin the serving process to CPU 0 and wrk to CPU 1 (``--no-pin`` disables);
writes (1, 4) run unpinned, and the table reports how the CPU was shared.
Figures only: nothing is asserted. The last line is ``SUMMARY {json}``.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import json
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from common import clean_up, cpu_s, read_response, tree_state  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
PASSWORD = "bench-secret"
CLK_TCK = os.sysconf("SC_CLK_TCK")

# Targets of the issue, as ratios measured in one run.
TARGETS = {
    "reg64_vs_raw": (">=", 0.4),
    "seq_p50_ms": ("<=", 5.0),
    "stale_vs_bare": (">=", 0.6),
    "default_vs_bare": (">=", 0.3),
}

# ----------------------------------------------------------------------------------------
# the payload: a realistic ~2 KB service job; the job ID has a fixed width so that every
# request body has the same size and is made by one bytes.replace
# ----------------------------------------------------------------------------------------

ID_WIDTH = 24
PLACEHOLDER = "J" * ID_WIDTH


def job_id(tag: str, client: int, seq: int) -> str:
    jid = f"bench-{tag}-{client:03d}-{seq:08d}"
    assert len(jid) <= ID_WIDTH, jid
    return jid.ljust(ID_WIDTH, "x")


def job_body(jid: str = PLACEHOLDER) -> bytes:
    def task(name, image, port):
        return {"Name": name, "Driver": "docker",
                "Config": {"image": image, "ports": [port],
                           "args": ["--listen", ":8080", "--log-format", "json"]},
                "Env": {"APP_ENV": "production", "LOG_LEVEL": "info", "REGION": "global",
                        "FEATURE_FLAGS": "checkout,search,recs"},
                "Services": [{"Name": f"{jid}-{name}", "PortLabel": port, "Tags": ["urlprefix-/", "v1"],
                              "Checks": [{"Name": "alive", "Type": "http", "Path": "/health",
                                          "Interval": 10_000_000_000, "Timeout": 2_000_000_000}]}],
                "Resources": {"CPU": 500, "MemoryMB": 256},
                "Meta": {"team": "payments"}}
    groups = [
        {"Name": "web", "Count": 3,
         "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "http", "To": 8080}]}],
         "Tasks": [task("frontend", "registry.example.internal/web/frontend:2.14.1", "http"),
                   task("sidecar", "registry.example.internal/infra/envoy:1.29.0", "http")],
         "RestartPolicy": {"Attempts": 2, "Interval": 1_800_000_000_000, "Delay": 15_000_000_000,
                           "Mode": "fail"}},
        {"Name": "worker", "Count": 2,
         "Networks": [{"Mode": "host", "DynamicPorts": [{"Label": "metrics"}]}],
         "Tasks": [task("consumer", "registry.example.internal/web/worker:2.14.1", "metrics")]},
    ]
    job = {"ID": jid, "Name": jid, "Type": "service", "Priority": 50, "Datacenters": ["dc1"],
           "Meta": {"owner": "team-payments", "git_sha": "3f9c2a1e7b", "ticket": "OPS-1234"},
           "TaskGroups": groups}
    return json.dumps({"Job": job}, separators=(",", ":")).encode()


class Bodies:
    def __init__(self):
        self.template = job_body()
        self.ph = PLACEHOLDER.encode()

    def make(self, jid: str) -> bytes:
        return self.template.replace(self.ph, jid.encode())


def pct(sorted_vals, q):
    if not sorted_vals:
        return None
    return sorted_vals[min(len(sorted_vals) - 1, int(q * len(sorted_vals)))]


# ----------------------------------------------------------------------------------------
# child mode: load generator (POST /v1/jobs)
# ----------------------------------------------------------------------------------------

def loadgen_main(argv):
    # argv[0]: "host:port[,host:port...]"; connection i goes to target i mod n
    targets = [a.rsplit(":", 1) for a in argv[0].split(",")]
    conc, duration, tag = int(argv[1]), float(argv[2]), argv[3]
    try:
        import uvloop
        uvloop.install()
    except ImportError:
        pass
    bodies = Bodies()
    heads = [(f"POST /v1/jobs HTTP/1.1\r\nHost: {h}:{p}\r\nContent-Type: application/json\r\n"
              f"Content-Length: {len(bodies.template)}\r\n\r\n").encode() for h, p in targets]

    async def run():
        conns = [await asyncio.open_connection(*targets[i % len(targets)]) for i in range(conc)]
        done = []                      # (finish time, latency, status)
        errors = collections.Counter()
        t0 = time.perf_counter()
        end = t0 + duration
        r0 = os.times()

        async def client(i, reader, writer):
            seq = 0
            while time.perf_counter() < end:
                jid = job_id(tag, i, seq)
                seq += 1
                t = time.perf_counter()
                writer.write(heads[i % len(heads)] + bodies.make(jid))
                try:
                    status, _, body = await read_response(reader)
                except (asyncio.IncompleteReadError, ConnectionError) as exc:
                    errors[type(exc).__name__] += 1
                    return
                t2 = time.perf_counter()
                done.append((t2, t2 - t, status))
                if status != 200 and len(errors) < 5:
                    errors[f"{status} {body[:80]!r}"] += 1

        async def marker():
            print("START", flush=True)
            await asyncio.sleep(max(0.0, end - time.perf_counter()))
            r1 = os.times()
            print("END", flush=True)
            return r1

        tasks = [asyncio.ensure_future(client(i, r, w)) for i, (r, w) in enumerate(conns)]
        r1 = await marker()
        await asyncio.wait(tasks, timeout=30)
        for _, w in conns:
            w.close()
        inwin = [x for x in done if x[0] <= end]
        ok = sorted(lat for _, lat, st in inwin if st == 200)
        return {"clients": conc, "duration_s": duration, "ok": len(ok),
                "non_200": sum(1 for x in inwin if x[2] != 200), "errors": dict(errors),
                "total_incl_drain": len(done),
                "ops_per_s": len(ok) / duration,
                "p50_ms": 1000 * pct(ok, 0.50) if ok else None,
                "p99_ms": 1000 * pct(ok, 0.99) if ok else None,
                "p90_ms": 1000 * pct(ok, 0.90) if ok else None,
                "mean_ms": 1000 * sum(ok) / len(ok) if ok else None,
                "max_ms": 1000 * ok[-1] if ok else None,
                "client_cpu_s": (r1.user - r0.user) + (r1.system - r0.system)}

    res = asyncio.run(run())          # uvloop's policy when installed above
    print("RESULT " + json.dumps(res), flush=True)


# ----------------------------------------------------------------------------------------
# child mode: raw pysyncobj node (Caravan's settings, one replicated method taking bytes)
# ----------------------------------------------------------------------------------------

def caravan_entries(n: int) -> list[bytes]:
    """n JobRegister log entries exactly as Caravan's register handler builds them from the
    benchmark body (canonicalized job + eval), for --raw-payload entry."""
    import uuid

    import msgspec
    sys.path.insert(0, str(ROOT))
    from caravan.fsm import entries as e
    from caravan.fsm.structs import Job
    from caravan.server.entries.jobs import new_eval
    from caravan.server.jobspec.canonicalize import canonicalize
    bodies, out = Bodies(), []
    for i in range(n):
        job = msgspec.convert(msgspec.json.decode(bodies.make(job_id("e", 0, i)))["Job"], Job)
        canonicalize(job, region="global")
        out.append(e.encode(e.JobRegister(Job=job, Eval=new_eval(job, "job-register"),
                                          SubmitTime=time.time_ns(), RequestID=str(uuid.uuid4()))))
    return out


def node_main(argv):
    self_addr, peers, data_dir, payload = argv[0], [p for p in argv[1].split(",") if p], argv[2], argv[3]
    import pickle
    import struct

    import msgpack
    from pysyncobj import SyncObj, SyncObjConf, SyncObjConsumer, replicated
    from pysyncobj.config import FAIL_REASON

    slots = 16384

    class Bare(SyncObjConsumer):
        def __init__(self):
            super().__init__()
            self.data = {}
            self.count = 0

        @replicated
        def apply_entry(self, blob: bytes):
            idx = self._syncObj.raftLastApplied + 1
            self.count += 1
            self.data[self.count % slots] = blob
            return idx

    bare = Bare()

    def write_snapshot(path, raft_data):       # same shape as server/raft.py's
        state = msgpack.packb({"count": bare.count, "data": bare.data})
        raft = pickle.dumps(raft_data, protocol=4)
        with open(path, "wb") as f:
            f.write(b"BENCHSNP")
            f.write(struct.pack(">QQ", len(state), len(raft)))
            f.write(state)
            f.write(raft)
            f.flush()
            os.fsync(f.fileno())

    def read_snapshot(path):
        with open(path, "rb") as f:
            data = f.read()
        n_state, n_raft = struct.unpack(">QQ", data[8:24])
        st = msgpack.unpackb(data[24:24 + n_state], strict_map_key=False)
        bare.count, bare.data = st["count"], st["data"]
        return pickle.loads(data[24 + n_state:24 + n_state + n_raft])

    os.makedirs(data_dir, exist_ok=True)
    conf = SyncObjConf(
        journalFile=os.path.join(data_dir, "raft.journal"),
        fullDumpFile=os.path.join(data_dir, "raft.snapshot"),
        serializer=write_snapshot, deserializer=read_snapshot,
        appendEntriesUseBatch=False, leaderFallbackTimeout=3.0, connectionRetryTime=1.0,
        commandsQueueSize=10000, logCompactionMinEntries=20000, password=PASSWORD,
        bindAddress=self_addr, dynamicMembershipChange=False)
    obj = SyncObj(self_addr, peers, conf=conf, consumers=[bare])
    bodies = Bodies()
    entries = caravan_entries(2048) if payload == "entry" else None

    def blob_for(tag, i, seq):
        if entries is not None:
            return entries[(i * 7919 + seq) % len(entries)]
        return bodies.make(job_id(tag, i, seq))

    async def drive(conc, duration, tag):
        loop = asyncio.get_running_loop()
        lat, errs = [], collections.Counter()
        t0 = time.perf_counter()
        end = t0 + duration

        def resolve(fut, result, error):
            if not fut.done():
                fut.set_result((result, error))

        async def submit(blob):                 # server/raft.py RaftNode.submit, minus retries
            fut = loop.create_future()

            def done(result, error, fut=fut):
                loop.call_soon_threadsafe(resolve, fut, result, error)

            bare.apply_entry(blob, callback=done)
            return await asyncio.wait_for(fut, 10.0)

        async def caller(i):
            seq = 0
            while time.perf_counter() < end:
                blob = blob_for(tag, i, seq)
                seq += 1
                t = time.perf_counter()
                try:
                    _, err = await submit(blob)
                except TimeoutError:
                    errs["timeout"] += 1
                    continue
                t2 = time.perf_counter()
                if err == FAIL_REASON.SUCCESS:
                    if t2 <= end:
                        lat.append(t2 - t)
                else:
                    errs[str(err)] += 1

        async def marker():
            print("START", flush=True)
            await asyncio.sleep(duration)
            print("END", flush=True)

        tasks = [asyncio.ensure_future(caller(i)) for i in range(conc)]
        await marker()
        await asyncio.wait(tasks, timeout=30)
        lat.sort()
        return {"clients": conc, "duration_s": duration, "ok": len(lat), "errors": dict(errs),
                "ops_per_s": len(lat) / duration,
                "p50_ms": 1000 * pct(lat, 0.5) if lat else None,
                "p99_ms": 1000 * pct(lat, 0.99) if lat else None}

    print(f"UP {os.getpid()}", flush=True)
    for line in sys.stdin:
        cmd = line.split()
        if not cmd:
            continue
        if cmd[0] == "status":
            st = obj.getStatus()
            print("STATUS " + json.dumps({
                "self": self_addr, "ready": obj.isReady(),
                "leader": str(st["leader"]) if st.get("leader") is not None else None,
                "leader_is_self": obj._isLeader(), "log_len": st.get("log_len"),
                "applied": bare.count}), flush=True)
        elif cmd[0] == "run":
            res = asyncio.run(drive(int(cmd[1]), float(cmd[2]), cmd[3]))
            print("RESULT " + json.dumps(res), flush=True)
        elif cmd[0] == "exit":
            break
    obj.destroy()
    os._exit(0)


# ----------------------------------------------------------------------------------------
# child mode: bare starlette + uvicorn endpoint returning constant bytes
# ----------------------------------------------------------------------------------------

def bare_main(argv):
    port, body_file, loop = int(argv[0]), argv[1], argv[2]
    import uvicorn
    from starlette.applications import Starlette
    from starlette.responses import Response
    from starlette.routing import Route

    spec = json.loads(Path(body_file).read_text())
    body = spec["body"].encode("latin-1")
    headers = spec["headers"]

    async def job(request):
        return Response(body, media_type="application/json", headers=headers)

    app = Starlette(routes=[Route("/v1/job/{job_id}", job, methods=["GET"])])
    uvicorn.run(app, host="127.0.0.1", port=port, loop=loop, http="httptools", workers=1,
                log_level="warning", access_log=False, lifespan="off")


# ----------------------------------------------------------------------------------------
# harness helpers
# ----------------------------------------------------------------------------------------

def machine_cpu_s() -> tuple[float, float]:
    """(busy, softirq) CPU seconds of the whole machine (all cores), from /proc/stat. Busy
    includes softirq (loopback TCP is processed there, charged to no process) and excludes
    steal (time the hypervisor gave to other guests)."""
    with open("/proc/stat") as f:
        v = [int(x) for x in f.readline().split()[1:]]
    # user nice system idle iowait irq softirq steal
    return (v[0] + v[1] + v[2] + v[5] + v[6]) / CLK_TCK, v[6] / CLK_TCK


def count_truncations(paths) -> int:
    """pysyncobj's CRITICAL 'truncating already-applied log entries' lines (pysyncobj
    drops a follower's suffix without comparing terms): a follower dropped entries it had
    applied; the leader re-sends them."""
    n = 0
    for p in paths:
        try:
            n += Path(p).read_text(errors="replace").count("truncating already-applied")
        except OSError:
            pass
    return n


class Child:
    """A child process of this script whose stdout lines are read by a thread."""

    def __init__(self, args, log_path, stdin=False, pin=None):
        cmd = [sys.executable, __file__, *args]
        if pin is not None:
            cmd = ["taskset", "-c", str(pin), *cmd]
        self.log = open(log_path, "ab")
        self.proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=self.log,
                                     stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
                                     text=True, bufsize=1, start_new_session=True)
        self.lines: queue.Queue = queue.Queue()
        threading.Thread(target=self._pump, daemon=True).start()

    def _pump(self):
        for line in self.proc.stdout:
            self.lines.put(line.rstrip("\n"))
        self.lines.put(None)

    def expect(self, prefix: str, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self.lines.get(timeout=max(0.01, deadline - time.monotonic()))
            except queue.Empty:
                raise TimeoutError(f"child {self.proc.args[-4:]} did not print {prefix!r}") from None
            if line is None:
                raise RuntimeError(f"child {self.proc.args[-4:]} exited (rc={self.proc.poll()})")
            if line.startswith(prefix):
                return line[len(prefix):].strip()

    def send(self, line: str):
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def kill(self):
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                pass
        self.log.close()


class Window:
    """CPU accounting between a child's START and END lines."""

    def __init__(self, pids: dict[str, int], extra_pid: int | None = None):
        self.pids, self.extra_pid = pids, extra_pid

    def sample(self):
        return ({k: cpu_s(p) for k, p in self.pids.items()}, machine_cpu_s(), time.perf_counter())

    @staticmethod
    def diff(a, b):
        """-> per-process CPU s, (machine busy s, softirq s), wall s"""
        (c0, m0, t0), (c1, m1, t1) = a, b
        per = {k: c1[k] - c0[k] for k in c0}
        return per, (m1[0] - m0[0], m1[1] - m0[1]), t1 - t0


def start_profile(pid: int, duration: float, out: Path) -> subprocess.Popen | None:
    if not shutil.which("py-spy"):
        print("  (py-spy not found: pip install py-spy; no profile)")
        return None
    return subprocess.Popen(["py-spy", "record", "--pid", str(pid), "--duration", str(int(duration)),
                             "--rate", "250", "--format", "raw", "--threads", "--nonblocking",
                             "--output", str(out)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)


_BOILERPLATE = re.compile(r"threading\.py|runpy|runners\.py|base_events\.py|<module>|cli\.py|"
                         r"_autoTickThread|_onTick|events\.py|starlette/|uvicorn/middleware|run_asgi|"
                         r"register\.py\)$|\bmain \(")


def summarize_profile(path: Path, top: int = 12) -> dict:
    """py-spy collapsed stacks (--threads) -> share of samples per thread, and per thread the
    top self frames and top inclusive frames (framework plumbing left out of the latter)."""
    if not path.exists():
        return {}
    total = 0
    threads = collections.Counter()
    selfc = collections.defaultdict(collections.Counter)
    incl = collections.defaultdict(collections.Counter)
    for line in path.read_text().splitlines():
        stack, _, n = line.rpartition(" ")
        if not stack or not n.isdigit():
            continue
        n = int(n)
        frames = stack.split(";")
        thread = frames[0].split(": ", 1)[-1]
        names = [re.sub(r":\d+\)$", ")", re.sub(r"\(/\S*?/(site-packages|lib/python3\.\d+|main)/", "(", f))
                 for f in frames[1:]]
        total += n
        threads[thread] += n
        if names:
            selfc[thread][names[-1]] += n
        for f in set(names):
            incl[thread][f] += n
    out = {"samples": total, "threads": {}}
    for t, n in threads.most_common():
        out["threads"][t] = {
            "share": round(n / total, 3),
            "self": [(f, round(v / total, 3)) for f, v in selfc[t].most_common(top)],
            "inclusive": [(f, round(v / total, 3)) for f, v in incl[t].most_common(200)
                          if not _BOILERPLATE.search(f)][:top + 6]}
    return out


def run_wrk(url: str, conns: int, duration: float, pin: int | None, on_start=None) -> dict:
    base = ["taskset", "-c", str(pin)] if pin is not None else []
    subprocess.run(base + ["wrk", "-t1", f"-c{conns}", "-d1s", url], capture_output=True, timeout=30)
    if on_start:
        on_start()
    t0 = os.times()
    p = subprocess.run(base + ["wrk", "-t1", f"-c{conns}", f"-d{int(duration)}s", "--latency", url],
                       capture_output=True, text=True, timeout=duration + 30)
    t1 = os.times()
    out = p.stdout

    def ms(s):
        v, u = re.match(r"([\d.]+)(us|ms|s)", s).groups()
        return float(v) / 1000 if u == "us" else float(v) * 1000 if u == "s" else float(v)

    m = re.search(r"Requests/sec:\s+([\d.]+)", out)
    if not m:
        raise RuntimeError(f"wrk failed: {out} {p.stderr}")
    errs = 0
    m2 = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errs += int(m2.group(1)) if m2 else 0
    m3 = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out)
    errs += sum(map(int, m3.groups())) if m3 else 0
    return {"req_per_s": float(m.group(1)),
            "p50_ms": ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1)),
            "p99_ms": ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1)),
            "errors": errs, "wrk_cpu_s": (t1.children_user - t0.children_user) +
                                        (t1.children_system - t0.children_system)}


def read_point(name, url, pid, args, pin_srv, pin_wrk, profile=None):
    w = Window({"srv": pid})
    a, prof = [], []

    def start():
        a.append(w.sample())
        if profile:
            prof.append(start_profile(pid, args.read_duration, profile))
    r = run_wrk(url, args.conns, args.read_duration, pin_wrk, on_start=start)
    per, (busy, sirq), wall = Window.diff(a[0], w.sample())
    if prof and prof[0]:
        prof[0].wait(args.read_duration + 30)
    r["server_cpu_pct"] = round(100 * per["srv"] / wall, 1)
    r["wrk_cpu_pct"] = round(100 * r["wrk_cpu_s"] / wall, 1)
    r["softirq_pct"] = round(100 * sirq / wall, 1)
    r["machine_busy_pct"] = round(100 * busy / wall, 1)
    r["name"] = name
    print(f"  {name:<26} {r['req_per_s']:>8.0f} req/s  p50 {r['p50_ms']:5.2f} ms  "
          f"p99 {r['p99_ms']:6.2f} ms  [server {r['server_cpu_pct']:3.0f}%  wrk {r['wrk_cpu_pct']:3.0f}%; "
          f"machine {r['machine_busy_pct']:3.0f}% incl. softirq {r['softirq_pct']:3.0f}%]  errors {r['errors']}",
          flush=True)
    return r


def pin_all_threads(pid: int, cpu: int | None):
    if cpu is not None:
        subprocess.run(["taskset", "-a", "-p", "-c", str(cpu), str(pid)], capture_output=True)


def write_line(kind, r, per, names, mach, wall, client_cpu, truncations):
    busy, sirq = mach
    srv = sum(per.values())
    r["truncations"] = truncations
    r["server_cpu_s"] = srv
    r["cpu_s_per_op"] = srv / r["ok"] if r["ok"] else None
    r["cpu_pct"] = {k: round(100 * v / wall, 1) for k, v in per.items()}
    r["client_cpu_pct"] = round(100 * client_cpu / wall, 1) if client_cpu is not None else None
    r["machine_busy_pct"] = round(100 * busy / wall, 1)
    r["softirq_pct"] = round(100 * sirq / wall, 1)
    shares = " ".join(f"{names.get(k, k)} {100 * v / wall:4.0f}%" for k, v in per.items())
    cl = f" client {r['client_cpu_pct']:3.0f}%" if client_cpu is not None else ""
    print(f"  {kind:<9} c={r['clients']:<3} {r['ops_per_s']:>8.0f} ops/s  p50 {r['p50_ms'] or 0:6.2f} ms  "
          f"p99 {r['p99_ms'] or 0:7.2f} ms  CPU {1000 * (r['cpu_s_per_op'] or 0):5.2f} ms/op  "
          f"[{shares}{cl}; machine {r['machine_busy_pct']:.0f}% of {100 * (os.cpu_count() or 1)}% "
          f"incl. softirq {r['softirq_pct']:.0f}%] trunc {truncations}"
          + (f"  ERR {r.get('errors')} non200={r.get('non_200', 0)}" if r.get("errors") or r.get("non_200") else ""),
          flush=True)
    if r.get("mean_ms") is not None:
        print(f"  {'':<9} latency mean {r['mean_ms']:.2f} ms, p90 {r['p90_ms']:.2f} ms, "
              f"max {r['max_ms']:.2f} ms", flush=True)
    return r


# ----------------------------------------------------------------------------------------
# phases
# ----------------------------------------------------------------------------------------

def caravan_phase(args, tmp: Path, cleanup: list, res: dict):
    sys.path.insert(0, str(ROOT))
    import httpx

    from tests.procs import make_cluster

    print("== Caravan: 3-server cluster ==", flush=True)
    (tmp / "caravan").mkdir()
    cluster = make_cluster(tmp / "caravan", n=3)
    cleanup.append(cluster.stop)
    cluster.start()
    leader = cluster.leader()
    targets = leader.http if args.write_to == "leader" else ",".join(s.http for s in cluster.servers)
    res["write_to"] = args.write_to
    pids = {s.name: s.proc.pid for s in cluster.servers}
    names = {s.name: (f"{s.name}(L)" if s is leader else s.name) for s in cluster.servers}
    res["caravan_leader"] = leader.name

    def load(conc, tag, duration, profile=None):
        lg = Child(["_loadgen", targets, str(conc), str(duration), tag], tmp / f"loadgen-{tag}.log")
        cleanup.append(lg.kill)
        w = Window(pids)
        lg.expect("START", 60)
        a = w.sample()
        prof = start_profile(leader.proc.pid, duration, profile) if profile else None
        lg.expect("END", duration + 30)
        b = w.sample()
        r = json.loads(lg.expect("RESULT", 60))
        lg.proc.wait(10)
        lg.kill()
        if prof:
            prof.wait(duration + 30)
        return r, Window.diff(a, b)

    def quiesce(label):
        """Wait until the leader's scheduler has processed every eval (each registration
        creates one; with no nodes each ends complete + a blocked eval), so that every
        point starts from a quiet cluster. Returns (seconds, evals drained)."""
        start, first = time.monotonic(), None
        while time.monotonic() - start < 300:
            pending = httpx.get(f"{leader.url}/v1/evaluations", params={"status": "pending"},
                                timeout=30).json()
            first = len(pending) if first is None else first
            if not pending:
                break
            time.sleep(0.2)
        took = time.monotonic() - start
        res.setdefault("scheduler_drain", []).append(
            {"before": label, "seconds": round(took, 2), "pending_evals": first})
        if first:
            print(f"  (scheduler drained {first} pending evals in {took:.1f} s before {label})",
                  flush=True)

    load(16, "w00", 1.0)                     # warm-up (imports, first allocations, JIT-less caches)
    res["caravan_writes"] = []
    for c in args.clients:
        quiesce(f"writes c={c}")
        prof = Path(args.profile) / f"caravan-leader-c{c}.txt" if args.profile and c == max(args.clients) else None
        t0 = count_truncations(s.log_path for s in cluster.servers)
        r, (per, mach, wall) = load(c, f"c{c:02d}", args.duration, prof)
        time.sleep(0.2)
        trunc = count_truncations(s.log_path for s in cluster.servers) - t0
        res["caravan_writes"].append(write_line("caravan", r, per, names, mach, wall, r["client_cpu_s"], trunc))
        if prof:
            res["profile_caravan_leader"] = summarize_profile(prof)

    # ---- reads, once the scheduler has caught up with the registrations
    quiesce("reads")
    jid = job_id(f"c{args.clients[0]:02d}", 0, 0)
    g = httpx.get(f"{leader.url}/v1/job/{jid}", params={"stale": ""}, timeout=5)
    assert g.status_code == 200, g.text
    res["job_json_bytes"] = len(g.content)
    res["job_request_bytes"] = len(job_body())
    spec = {"body": g.content.decode("latin-1"),
            "headers": {k: v for k, v in g.headers.items() if k.lower().startswith("x-nomad-")}}
    (tmp / "job.json").write_text(json.dumps(spec))
    res["jobs_registered"] = sum(r["total_incl_drain"] for r in res["caravan_writes"])
    pin_srv, pin_wrk = (None, None) if args.no_pin else (0, 1)
    pin_all_threads(leader.proc.pid, pin_srv)
    print(f"== reads: GET /v1/job/:id ({len(g.content)} B), wrk -t1 -c{args.conns}"
          f"{'' if args.no_pin else ', server on CPU 0, wrk on CPU 1'} ==", flush=True)
    url = f"http://{leader.http}/v1/job/{jid}"
    prof = Path(args.profile) / "caravan-leader-stale-read.txt" if args.profile else None
    prof_d = Path(args.profile) / "caravan-leader-default-read.txt" if args.profile else None
    res["reads"] = {"caravan_stale": read_point("caravan ?stale", url + "?stale", leader.proc.pid,
                                                args, pin_srv, pin_wrk, prof),
                    "caravan_default": read_point("caravan default", url, leader.proc.pid,
                                                  args, pin_srv, pin_wrk, prof_d)}
    if prof:
        res["profile_caravan_stale_read"] = summarize_profile(prof)
        res["profile_caravan_default_read"] = summarize_profile(prof_d)
    cluster.stop()
    return jid


def bare_phase(args, tmp: Path, cleanup: list, res: dict, jid: str):
    sys.path.insert(0, str(ROOT))
    from tests.procs import free_ports, wait_until
    pin_srv, pin_wrk = (None, None) if args.no_pin else (0, 1)
    for loop, key in (("uvloop", "bare_uvloop"), ("asyncio", "bare_asyncio")):
        port = free_ports(1)[0]
        ch = Child(["_bare", str(port), str(tmp / "job.json"), loop], tmp / f"bare-{loop}.log", pin=pin_srv)
        cleanup.append(ch.kill)

        def up(port=port):
            socket.create_connection(("127.0.0.1", port), 0.2).close()
            return True
        wait_until(up, 20, "bare endpoint")
        res["reads"][key] = read_point(f"bare starlette ({loop})", f"http://127.0.0.1:{port}/v1/job/{jid}",
                                       ch.proc.pid, args, pin_srv, pin_wrk)
        ch.kill()


def raw_phase(args, tmp: Path, cleanup: list, res: dict):
    sys.path.insert(0, str(ROOT))
    from tests.procs import free_ports
    what = ("Caravan's JobRegister entries" if args.raw_payload == "entry"
            else f"the {len(job_body())} B registration body")
    print(f"== raw pysyncobj: 3 processes, Caravan's SyncObjConf, one replicated method(bytes), "
          f"committing {what} ==", flush=True)
    addrs = [f"127.0.0.1:{p}" for p in free_ports(3)]
    nodes = {}
    for i, a in enumerate(addrs):
        peers = ",".join(x for x in addrs if x != a)
        ch = Child(["_node", a, peers, str(tmp / "raw" / f"n{i + 1}"), args.raw_payload],
                   tmp / f"raw-n{i + 1}.log", stdin=True)
        cleanup.append(ch.kill)
        nodes[a] = ch
    for ch in nodes.values():
        ch.expect("UP", 30)
    deadline = time.monotonic() + 30
    leader = None
    while time.monotonic() < deadline and leader is None:
        sts = {}
        for a, ch in nodes.items():
            ch.send("status")
            sts[a] = json.loads(ch.expect("STATUS", 10))
        ls = [a for a, s in sts.items() if s["leader_is_self"]]
        if len(ls) == 1 and all(s["ready"] and s["leader"] == ls[0] for s in sts.values()):
            leader = ls[0]
        else:
            time.sleep(0.1)
    if leader is None:
        raise RuntimeError("raw pysyncobj cluster elected no leader in 30 s")
    pids = {f"n{i + 1}": nodes[a].proc.pid for i, a in enumerate(addrs)}
    names = {f"n{i + 1}": (f"n{i + 1}(L)" if a == leader else f"n{i + 1}") for i, a in enumerate(addrs)}
    lch = nodes[leader]

    def run(conc, tag, duration, profile=None):
        w = Window(pids)
        lch.send(f"run {conc} {duration} {tag}")
        lch.expect("START", 30)
        a = w.sample()
        prof = start_profile(lch.proc.pid, duration, profile) if profile else None
        lch.expect("END", duration + 30)
        b = w.sample()
        r = json.loads(lch.expect("RESULT", 60))
        if prof:
            prof.wait(duration + 30)
        return r, Window.diff(a, b)

    run(16, "w00", 1.0)
    res["raw_writes"] = []
    for c in args.clients:
        prof = Path(args.profile) / f"raw-leader-c{c}.txt" if args.profile and c == max(args.clients) else None
        logs = [tmp / f"raw-n{i + 1}.log" for i in range(3)]
        t0 = count_truncations(logs)
        r, (per, mach, wall) = run(c, f"c{c:02d}", args.duration, prof)
        time.sleep(0.2)
        trunc = count_truncations(logs) - t0
        res["raw_writes"].append(write_line("raw", r, per, names, mach, wall, None, trunc))
        if prof:
            res["profile_raw_leader"] = summarize_profile(prof)
    for ch in nodes.values():
        try:
            ch.send("exit")
        except OSError:
            pass
    for ch in nodes.values():
        try:
            ch.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        ch.kill()


def report(args, res: dict) -> dict:
    cw = {r["clients"]: r for r in res["caravan_writes"]}
    rw = {r["clients"]: r for r in res["raw_writes"]}
    rd = res["reads"]
    print()
    print(f"{'writes':<8} {'clients':>7} | {'caravan reg/s':>13} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/reg':>10} |"
          f" {'raw commits/s':>13} {'p50 ms':>7} {'p99 ms':>7} {'CPU ms/op':>9} | {'reg/raw':>7}")
    for c in args.clients:
        a, b = cw[c], rw[c]
        print(f"{'':<8} {c:>7} | {a['ops_per_s']:>13.0f} {a['p50_ms']:>7.2f} {a['p99_ms']:>7.2f} "
              f"{1000 * a['cpu_s_per_op']:>10.2f} | {b['ops_per_s']:>13.0f} {b['p50_ms']:>7.2f} "
              f"{b['p99_ms']:>7.2f} {1000 * b['cpu_s_per_op']:>9.2f} | {a['ops_per_s'] / b['ops_per_s']:>7.2f}")
    bare = rd["bare_uvloop"]["req_per_s"]
    print(f"\n{'reads':<8} {'':>7} | {'req/s':>13} {'p50 ms':>7} {'p99 ms':>7} {'vs bare':>10}")
    for k in ("caravan_stale", "caravan_default", "bare_uvloop", "bare_asyncio"):
        r = rd[k]
        print(f"{'':<8} {'':>7} | {r['req_per_s']:>13.0f} {r['p50_ms']:>7.2f} {r['p99_ms']:>7.2f} "
              f"{r['req_per_s'] / bare:>10.2f}   {r['name']}")
    cmax = max(args.clients)
    values = {
        "reg64_vs_raw": cw[cmax]["ops_per_s"] / rw[cmax]["ops_per_s"],
        "seq_p50_ms": cw[min(args.clients)]["p50_ms"],
        "stale_vs_bare": rd["caravan_stale"]["req_per_s"] / bare,
        "default_vs_bare": rd["caravan_default"]["req_per_s"] / bare,
    }
    targets = {}
    print("\ntargets (one run):")
    for k, (op, t) in TARGETS.items():
        v = values[k]
        met = v >= t if op == ">=" else v <= t
        targets[k] = {"value": round(v, 3), "target": f"{op} {t}", "met": met}
        print(f"  {k:<16} {v:8.3f}  target {op} {t:<4}  {'MET' if met else 'MISSED'}")
    extra = {"stale_vs_bare_asyncio": round(rd["caravan_stale"]["req_per_s"] / rd["bare_asyncio"]["req_per_s"], 3),
             "default_vs_bare_asyncio": round(rd["caravan_default"]["req_per_s"] / rd["bare_asyncio"]["req_per_s"], 3)}
    for c in args.clients:
        extra[f"reg_vs_raw_c{c}"] = round(cw[c]["ops_per_s"] / rw[c]["ops_per_s"], 3)
        extra[f"cpu_per_reg_vs_raw_c{c}"] = round(cw[c]["cpu_s_per_op"] / rw[c]["cpu_s_per_op"], 2)
    return {"targets": targets, "extra_ratios": extra}


def main():
    if len(sys.argv) > 1 and sys.argv[1] in ("_loadgen", "_node", "_bare"):
        return {"_loadgen": loadgen_main, "_node": node_main, "_bare": bare_main}[sys.argv[1]](sys.argv[2:])
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--duration", type=float, default=5.0, help="seconds per write point (default 5)")
    ap.add_argument("--read-duration", type=float, default=None, help="seconds per read point (default: --duration)")
    ap.add_argument("--clients", default="1,16,64", help="concurrent writers per point (default 1,16,64)")
    ap.add_argument("--conns", type=int, default=64, help="wrk connections for reads (default 64)")
    ap.add_argument("--raw-payload", choices=("body", "entry"), default="body",
                    help="what the raw pysyncobj baseline commits: the ~2 KB registration body (default, "
                         "the issue's baseline) or Caravan's own JobRegister entry bytes (diagnostic: "
                         "separates the cost of Caravan's bigger entry from the rest)")
    ap.add_argument("--write-to", choices=("leader", "all"), default="leader",
                    help="where Caravan's writers send: all to the leader (default), or connection i "
                         "to server i mod 3, as clients behind a load balancer would (followers "
                         "forward to the leader, their waiting writes grouped into one command)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin servers/wrk to CPUs for reads")
    ap.add_argument("--profile", metavar="DIR", help="py-spy the leader at the largest client count "
                    "(Caravan and raw); adds sampling overhead, so figures of such a run are not the headline")
    ap.add_argument("--json", metavar="FILE", help="also write the SUMMARY object to FILE")
    ap.add_argument("--keep", action="store_true", help="keep the temp dir (logs, journals)")
    args = ap.parse_args()
    args.clients = sorted(int(x) for x in args.clients.split(","))
    args.read_duration = args.read_duration or args.duration
    if args.read_duration < 1:
        args.read_duration = 1.0
    if not shutil.which("wrk"):
        sys.exit("wrk missing: apt-get install -y wrk")
    if args.profile:
        os.makedirs(args.profile, exist_ok=True)

    whatif = os.environ.get("CARAVAN_WHATIF", "") if "whatif" in os.environ.get("PYTHONPATH", "") else ""
    if whatif:
        print(f"** what-if run: CARAVAN_WHATIF={whatif} (bench/whatif/sitecustomize.py): not a headline figure **")
    tmp = Path(tempfile.mkdtemp(prefix="caravan-bench-"))
    cleanup: list = []
    res: dict = {}
    t_start = time.monotonic()
    try:
        jid = caravan_phase(args, tmp, cleanup, res)
        bare_phase(args, tmp, cleanup, res, jid)
        raw_phase(args, tmp, cleanup, res)
        summary = report(args, res)
    finally:
        clean_up(cleanup, tmp, args.keep)

    import platform
    from importlib.metadata import version

    import starlette
    import uvicorn
    out = {
        "command": "python3 " + " ".join([os.path.relpath(__file__, ROOT)] + sys.argv[1:]),
        "env": {"python": platform.python_version(), "pysyncobj": version("pysyncobj"),
                "starlette": starlette.__version__, "uvicorn": uvicorn.__version__,
                "cpus": os.cpu_count()},
        "duration_s": args.duration, "read_duration_s": args.read_duration, "clients": args.clients,
        "wrk_connections": args.conns, "raw_payload": args.raw_payload,
        "raw_payload_bytes": (len(job_body()) if args.raw_payload == "body"
                              else len(caravan_entries(1)[0])),
        "pinned_reads": not args.no_pin,
        "job_request_bytes": res.get("job_request_bytes"), "job_json_bytes": res.get("job_json_bytes"),
        "wall_s": round(time.monotonic() - t_start, 1), "tree": tree_state(),
        "whatif": whatif or None,
        **summary,
        "caravan_writes": res["caravan_writes"], "raw_writes": res["raw_writes"], "reads": res["reads"],
    }
    for k in ("profile_caravan_leader", "profile_raw_leader", "profile_caravan_stale_read",
              "profile_caravan_default_read"):
        if k in res:
            out[k] = res[k]
            print(f"\nprofile {k}: {res[k].get('samples')} samples, shares of all samples")
            for t, d in res[k].get("threads", {}).items():
                print(f"  thread {t}: {d['share']:.1%}")
                for f, share in d["inclusive"]:
                    print(f"    incl {share:6.1%}  {f}")
                for f, share in d["self"][:8]:
                    print(f"    self {share:6.1%}  {f}")
    line = json.dumps(out, separators=(",", ":"))
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    print("SUMMARY " + line, flush=True)


if __name__ == "__main__":
    main()
