"""The archiver: keeps the checkers' evidence of jobs before the garbage collector may
delete them, so the state stays bounded during a soak while the checkers keep their
strength.

The workload writes one generation of job IDs at a time (``job-<g>-<k>``, a new
generation every ``key_every`` seconds) and keeps every version of each
(``job_tracked_versions`` is unbounded in the nemesis cluster), so a job has only the
versions of its few seconds. Once a generation is over and no worker can still be
waiting on one of its operations (``retire_after`` > the clients' timeout), the
archiver, for each of its jobs:

1. stops it (an ordinary ``stop`` operation in the history, checked like any other):
   the job turns dead, and its new stop evaluation restarts its garbage-collection age,
   so the job outlives the next step by at least ``job_gc_threshold``;
2. reads all its versions and writes them to the history (``"type": "versions"``).

Workers read only the current generation, so no read can observe a collection.
The dispatch parent's children are listed every pass and their IDs written too
(``"type": "children"``); a finished child lives ``job_gc_threshold`` after it dies.
At the end, ``finish()`` archives every generation left. The final check takes each
job's versions from the final state if it is still there, else from the archive
(``checkers.merge_versions``), and the children ever listed or still present.
"""
from __future__ import annotations

import random
import threading

import httpx

from tests.nemesis.history import History
from tests.nemesis.workload import PARENT, TIMEOUT, classify


class Archiver:
    def __init__(self, history: History, servers: list[tuple[str, str]], keys: int,
                 key_every: float, retire_after: float = 7.0, poll: float = 2.0,
                 seed: int = 0):
        self.history = history
        self.servers = servers
        self.keys = keys
        self.key_every = key_every
        self.retire_after = retire_after
        self.poll = poll
        self.rng = random.Random(f"{seed}-archiver")
        self.next_generation = 0      # the first generation not archived yet
        self.archived = 0             # jobs archived
        self._seen: set[str] = set()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name="archiver")
        self._clients = {name: httpx.Client(base_url=url, timeout=TIMEOUT)
                         for name, url in servers}

    def start(self) -> None:
        self._thread.start()

    def finish(self, timeout: float = 60.0) -> bool:
        """Stop the background passes and archive every generation left, retrying for
        up to ``timeout`` seconds (call it once the cluster is healed). True when all
        were archived."""
        self._halt()
        last = int(self.history.now() // self.key_every)
        deadline = self.history.now() + timeout
        while self.history.now() < deadline:
            if self._pass(upto=last):
                return True
        return False

    def close(self) -> None:
        """Stop the background passes (if still running) and close the connections."""
        self._halt()
        for c in self._clients.values():
            c.close()

    def _halt(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(30)

    def _run(self) -> None:
        while not self._stop.is_set():
            over = int((self.history.now() - self.retire_after) // self.key_every) - 1
            self._pass(upto=over)
            self._stop.wait(self.poll)

    def _pass(self, upto: int) -> bool:
        """Archive generations up to ``upto``; False if one could not be done now."""
        try:
            self._children()
            while self.next_generation <= upto:
                g = self.next_generation
                for k in range(self.keys):
                    if not self._archive(f"job-{g}-{k}"):
                        return False
                self.next_generation = g + 1
        except httpx.HTTPError:
            return False
        return True

    def _client(self) -> tuple[str, httpx.Client]:
        name = self.rng.choice(sorted(self._clients))
        return name, self._clients[name]

    def _children(self) -> None:
        name, http = self._client()
        r = http.get("/v1/jobs", params={"prefix": PARENT + "/"})
        if r.status_code == 200:
            new = sorted({j["ID"] for j in r.json()} - self._seen)
            if new:
                self._seen.update(new)
                self.history.evidence("children", ids=new)

    def _archive(self, key: str) -> bool:
        """Stop the job, then record its versions; False to try again later."""
        h = self.history
        name, http = self._client()
        op = h.invoke("archiver", "stop", key, None, name)
        try:
            r = http.delete(f"/v1/job/{key}")
        except (httpx.ConnectError, httpx.ConnectTimeout) as exc:
            h.complete(op, "fail", error=f"connect: {exc}")
            return False
        except httpx.HTTPError as exc:
            h.complete(op, "unknown", error=f"{type(exc).__name__}: {exc}")
            return False
        out = r.json().get("JobModifyIndex") if r.status_code == 200 else None
        h.complete(op, classify(r), out, "" if r.status_code < 300 else
                   f"{r.status_code} {r.text[:200]}")
        if r.status_code != 200:
            return False
        r = http.get(f"/v1/job/{key}/versions")
        if r.status_code not in (200, 404):
            return False
        h.evidence("versions", key=key, versions=r.json()["Versions"]
                   if r.status_code == 200 else [])
        self.archived += 1
        return True
