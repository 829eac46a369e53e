"""The operation history: one JSON object per line, appended as operations happen.

An operation is written twice: ``{"type": "invoke", ...}`` when it starts and, when
it ends, the same ``id`` with ``type`` one of ``ok`` (it happened), ``fail`` (it
certainly did not) or ``unknown`` (it may have happened, now or later). Times are
seconds since the run started (monotonic). Faults are recorded as ``type": "fault"``,
and the archiver's evidence as ``"type": "versions"`` / ``"children"``.
"""
from __future__ import annotations

import json
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path


class History:
    def __init__(self, path: Path):
        self.path = path
        self._file = open(path, "w")
        self._lock = threading.Lock()
        self._next = 0
        self.t0 = time.monotonic()

    def now(self) -> float:
        return round(time.monotonic() - self.t0, 4)

    def _write(self, record: dict) -> None:
        with self._lock:
            self._file.write(json.dumps(record, sort_keys=True) + "\n")

    def invoke(self, process: str, f: str, key: str, value=None, server: str = "") -> int:
        with self._lock:
            op_id, self._next = self._next, self._next + 1
        self._write({"type": "invoke", "id": op_id, "process": process, "f": f, "key": key,
                     "value": value, "server": server, "time": self.now()})
        return op_id

    def complete(self, op_id: int, kind: str, value=None, error: str = "") -> None:
        assert kind in ("ok", "fail", "unknown"), kind
        self._write({"type": kind, "id": op_id, "value": value, "error": error,
                     "time": self.now()})

    def evidence(self, kind: str, **info) -> None:
        """What the archiver saw before the garbage collector may delete it:
        ``versions`` of a retired job, ``children`` of the dispatch parent."""
        self._write({"type": kind, "time": self.now(), **info})

    def fault(self, name: str, phase: str, **info) -> None:
        self._write({"type": "fault", "name": name, "phase": phase, "time": self.now(),
                     **info})

    def close(self) -> None:
        with self._lock:
            self._file.close()


@dataclass
class Op:
    id: int
    process: str
    f: str
    key: str
    value: object
    server: str
    invoke: float
    result: str = "unknown"        # ok | fail | unknown (also: never completed)
    out: object = None
    complete: float = float("inf")
    error: str = ""


@dataclass
class Loaded:
    ops: list[Op] = field(default_factory=list)
    faults: list[dict] = field(default_factory=list)
    versions: dict[str, list[dict]] = field(default_factory=dict)   # archived, by job ID
    children: set[str] = field(default_factory=set)                 # ever listed


def load(path: Path) -> Loaded:
    ops: dict[int, Op] = {}
    faults = []
    loaded = Loaded()
    with open(path) as f:
        for line in f:
            r = json.loads(line)
            if r["type"] == "versions":
                loaded.versions[r["key"]] = r["versions"]
            elif r["type"] == "children":
                loaded.children.update(r["ids"])
            elif r["type"] == "invoke":
                ops[r["id"]] = Op(r["id"], r["process"], r["f"], r["key"], r["value"],
                                  r["server"], r["time"])
            elif r["type"] == "fault":
                faults.append(r)
            else:
                op = ops[r["id"]]
                op.result, op.out, op.error = r["type"], r["value"], r["error"]
                if r["type"] != "unknown":
                    op.complete = r["time"]
    loaded.ops, loaded.faults = sorted(ops.values(), key=lambda o: o.id), faults
    return loaded
