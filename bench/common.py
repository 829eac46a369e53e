"""What the benchmark scripts share: process CPU from /proc, which code was measured,
and cleaning up every process and temp dir a run started."""
from __future__ import annotations

import asyncio
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
CLK_TCK = os.sysconf("SC_CLK_TCK")


def cpu_s(pid: int) -> float:
    """user+system CPU seconds of a process (all threads), from /proc."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / CLK_TCK
    except (OSError, IndexError, ValueError):
        return 0.0


def tree_state() -> dict:
    """Which code was measured: HEAD and the uncommitted paths (read-only git)."""
    def git(*a):
        try:
            return subprocess.run(["git", *a], cwd=ROOT, capture_output=True, text=True,
                                  timeout=10).stdout
        except (OSError, subprocess.SubprocessError):
            return ""
    dirty = [ln[3:] for ln in git("status", "--porcelain", "--", "server", "fsm",
                                  "scheduler").splitlines()]
    return {"head": git("rev-parse", "--short", "HEAD").strip(), "uncommitted": dirty}


def clean_up(cleanup: list, tmp: Path, keep: bool) -> None:
    """Run every cleanup step (newest first, each even if another failed), then remove
    the temp dir unless asked to keep it."""
    for fn in reversed(cleanup):
        try:
            fn()
        except Exception as exc:  # keep cleaning
            print(f"cleanup: {exc}", file=sys.stderr)
    if keep:
        print(f"kept {tmp}")
    else:
        shutil.rmtree(tmp, ignore_errors=True)


# --- a minimal HTTP/1.1 keep-alive client --------------------------------------------------
# The load generators measure the server, not an HTTP library: httpx spends ~10 ms of
# CPU per request once 100 connections are pooled, which on 2 cores is taken from the
# servers being measured.

_LENGTH = re.compile(rb"(?i)\r\ncontent-length:\s*(\d+)")
_HEADER = re.compile(rb"(?i)\r\n([a-z0-9-]+):[ \t]*([^\r]*)")


async def read_response(reader: asyncio.StreamReader) -> tuple[int, bytes, bytes]:
    """(status, raw head, body) of one response with a Content-Length."""
    head = await reader.readuntil(b"\r\n\r\n")
    m = _LENGTH.search(head)
    body = await reader.readexactly(int(m.group(1))) if m else b""
    return int(head[9:12]), head, body


def header(head: bytes, name: str) -> str | None:
    """One header's value from a raw response head (case-insensitive)."""
    want = name.lower().encode()
    for k, v in _HEADER.findall(head):
        if k.lower() == want:
            return v.decode()
    return None


class RawHTTP:
    """One keep-alive connection to ``host:port``, one request at a time."""

    def __init__(self, host: str, port: int):
        self.host, self.port = host, int(port)
        self._conn: tuple[asyncio.StreamReader, asyncio.StreamWriter] | None = None

    @classmethod
    def of(cls, url: str) -> RawHTTP:
        host, port = url.split("://", 1)[-1].rstrip("/").rsplit(":", 1)
        return cls(host, int(port))

    async def request(self, method: str, target: str, body: bytes = b"") -> tuple[int, bytes, bytes]:
        if self._conn is None:
            self._conn = await asyncio.open_connection(self.host, self.port)
        reader, writer = self._conn
        head = (f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(body)}\r\n\r\n")
        try:
            writer.write(head.encode() + body)
            return await read_response(reader)
        except BaseException:
            self.close()    # a half-read connection is useless; reconnect next time
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn[1].close()
            self._conn = None
