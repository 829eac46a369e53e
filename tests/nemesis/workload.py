"""Concurrent clients: register, update, stop, dispatch and read jobs through every
server, each operation recorded in the history with what came back.

A register writes a job whose ``Meta.w`` names the write, so a read shows which write
it saw; with the job's Version and Stop flag that is the value of a register per job
ID that the linearizability checker models (checkers.py).
"""
from __future__ import annotations

import random
import threading

import httpx

from tests.nemesis.history import History

PARENT = "nemesis-dispatch"
TIMEOUT = httpx.Timeout(6.0, connect=1.0)


def service_job(job_id: str, marker: str, rng: random.Random) -> dict:
    return {"Job": {
        "ID": job_id, "Type": "service", "Datacenters": ["dc1"], "Meta": {"w": marker},
        "TaskGroups": [{"Name": "g", "Count": rng.randint(1, 2), "Tasks": [{
            "Name": "t", "Driver": "mock", "Config": {"run_for": "1h"},
            "Resources": {"CPU": rng.choice([100, 200, 300]),
                          "MemoryMB": rng.choice([64, 128, 256])}}]}]}}


def parent_job() -> dict:
    return {"Job": {
        "ID": PARENT, "Type": "batch", "Datacenters": ["dc1"],
        "ParameterizedJob": {"MetaOptional": ["n"]},
        "TaskGroups": [{"Name": "g", "Count": 1, "Tasks": [{
            "Name": "t", "Driver": "mock", "Config": {"run_for": "100ms"},
            "Resources": {"CPU": 50, "MemoryMB": 32}}]}]}}


def classify(r: httpx.Response) -> str:
    """2xx happened; 4xx was refused (changed nothing); 5xx may have happened."""
    if r.status_code < 300:
        return "ok"
    return "fail" if r.status_code < 500 else "unknown"


class Workload:
    """``workers`` threads, each with its own seeded choices, until ``stop()``."""

    def __init__(self, history: History, servers: list[tuple[str, str]], seed: int,
                 workers: int = 4, keys: int = 4, key_every: float = 8.0,
                 think: float = 0.02):
        self.history = history
        self.servers = servers            # (name, base url)
        self.seed = seed
        self.keys = keys
        self.key_every = key_every        # seconds before moving on to fresh job IDs
        self.think = think                # seconds a worker waits between operations
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True,
                                          name=f"worker-{i}") for i in range(workers)]

    def start(self) -> None:
        for t in self._threads:
            t.start()

    def stop(self) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(30)

    def _key(self, rng: random.Random) -> str:
        generation = int(self.history.now() // self.key_every)
        return f"job-{generation}-{rng.randrange(self.keys)}"

    def _run(self, worker: int) -> None:
        rng = random.Random(f"{self.seed}-{worker}")
        process = f"w{worker}"
        clients = {name: httpx.Client(base_url=url, timeout=TIMEOUT)
                   for name, url in self.servers}
        n = 0
        try:
            while not self._stop.is_set():
                name = rng.choice(sorted(clients))
                f = rng.choices(["read", "register", "stop", "dispatch"], [45, 35, 14, 6])[0]
                n += 1
                self._one(clients[name], name, process, f, rng, f"{process}:{n}")
                self._stop.wait(rng.uniform(0, 2 * self.think))
        finally:
            for c in clients.values():
                c.close()

    def _one(self, http: httpx.Client, server: str, process: str, f: str,
             rng: random.Random, marker: str) -> None:
        h = self.history
        key = PARENT if f == "dispatch" else self._key(rng)
        value = marker if f == "register" else None
        op = h.invoke(process, f, key, value, server)
        try:
            if f == "read":
                r = http.get(f"/v1/job/{key}")
                if r.status_code == 404:
                    h.complete(op, "ok", None)
                elif r.status_code == 200:
                    job = r.json()
                    h.complete(op, "ok", [job["Version"], (job.get("Meta") or {}).get("w"),
                                          bool(job.get("Stop"))])
                else:
                    h.complete(op, "fail", error=f"{r.status_code} {r.text[:200]}")
                return
            if f == "register":
                r = http.post("/v1/jobs", json=service_job(key, marker, rng))
                out = r.json().get("JobModifyIndex") if r.status_code == 200 else None
            elif f == "stop":
                r = http.delete(f"/v1/job/{key}")
                out = r.json().get("JobModifyIndex") if r.status_code == 200 else None
            else:
                r = http.post(f"/v1/job/{key}/dispatch", json={"Meta": {"n": marker}})
                out = r.json().get("DispatchedJobID") if r.status_code == 200 else None
            h.complete(op, classify(r), out, "" if r.status_code < 300 else
                       f"{r.status_code} {r.text[:200]}")
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:   # never reached it
            h.complete(op, "fail", error=f"connect: {exc}")
        except httpx.HTTPError as exc:        # sent; the answer was lost
            h.complete(op, "fail" if f == "read" else "unknown",
                       error=f"{type(exc).__name__}: {exc}")
