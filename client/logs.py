"""Task output on disk, as Nomad lays it out: ``alloc/logs/<task>.<stdout|stderr>.N``.

``RotatingLog`` appends to the file with the highest N and starts N+1 once the file
reaches ``MaxFileSizeMB``; only the newest ``MaxFiles`` files are kept. ``LogFiles``
reads them back as one stream (the logs endpoint), optionally following new output.
"""
from __future__ import annotations

import asyncio
import os
import re

MB = 1024 * 1024


class RotatingLog:
    def __init__(self, log_dir: str, task: str, kind: str, max_files: int = 10,
                 max_file_mb: int = 10):
        self.dir = log_dir
        self.prefix = f"{task}.{kind}."
        self.max_files = max(1, max_files)
        self.max_bytes = max(1, max_file_mb) * MB
        indexes = file_indexes(log_dir, self.prefix)
        self.index = indexes[-1] if indexes else 0
        self._file = None
        self._size = 0

    def _path(self, index: int) -> str:
        return os.path.join(self.dir, f"{self.prefix}{index}")

    def _open(self) -> None:
        self._file = open(self._path(self.index), "ab", buffering=0)
        self._size = self._file.tell()

    def write(self, data: bytes) -> None:
        while data:
            if self._file is None:
                self._open()
            room = self.max_bytes - self._size
            if room <= 0:
                self._rotate()
                continue
            chunk, data = data[:room], data[room:]
            self._file.write(chunk)
            self._size += len(chunk)

    def _rotate(self) -> None:
        self._file.close()
        self.index += 1
        self._open()
        for old in file_indexes(self.dir, self.prefix)[:-self.max_files]:
            try:
                os.unlink(self._path(old))
            except FileNotFoundError:
                pass

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


def file_indexes(log_dir: str, prefix: str) -> list[int]:
    pattern = re.compile(re.escape(prefix) + r"(\d+)$")
    try:
        names = os.listdir(log_dir)
    except FileNotFoundError:
        return []
    return sorted(int(m.group(1)) for n in names if (m := pattern.match(n)))


async def pump(reader: asyncio.StreamReader, sink: RotatingLog) -> None:
    """Copy a child's pipe into its log until the pipe closes."""
    while True:
        data = await reader.read(64 * 1024)
        if not data:
            return
        sink.write(data)


class LogFiles:
    """The rotated files of one task's stdout or stderr, read as one stream."""

    def __init__(self, log_dir: str, task: str, kind: str):
        self.dir = log_dir
        self.prefix = f"{task}.{kind}."

    def path(self, index: int) -> str:
        return os.path.join(self.dir, f"{self.prefix}{index}")

    def indexes(self) -> list[int]:
        return file_indexes(self.dir, self.prefix)

    def start(self, origin: str, offset: int) -> tuple[int, int]:
        """(file index, byte offset) where reading begins: ``offset`` bytes from the
        start of the oldest kept file, or back from the end of the newest."""
        indexes = self.indexes()
        if not indexes:
            return 0, 0
        if origin == "end":
            remaining = offset
            for idx in reversed(indexes):
                size = os.path.getsize(self.path(idx))
                if remaining <= size:
                    return idx, size - remaining
                remaining -= size
            return indexes[0], 0
        remaining = offset
        for idx in indexes:
            size = os.path.getsize(self.path(idx))
            if remaining < size or idx == indexes[-1]:
                return idx, min(remaining, size)
            remaining -= size
        return indexes[-1], 0

    async def stream(self, origin: str, offset: int, follow: bool, done=lambda: True,
                     poll: float = 0.1, chunk: int = 64 * 1024):
        """Yield ``(file name, offset, bytes)``; when ``follow``, keep waiting for more
        output until ``done()`` says the task has stopped writing and all is read."""
        index, pos = self.start(origin, offset)
        finishing = False
        while True:
            progressed = False
            try:
                with open(self.path(index), "rb") as f:
                    f.seek(pos)
                    while True:
                        data = f.read(chunk)
                        if not data:
                            break
                        yield os.path.basename(self.path(index)), pos, data
                        pos += len(data)
                        progressed = True
            except FileNotFoundError:
                pass
            newer = [i for i in self.indexes() if i > index]
            if newer:   # rotated: the rest of this file was read; go on with the next
                index, pos = newer[0], 0
                continue
            if not follow:
                return
            if not progressed:
                if finishing:
                    return
                if done():
                    finishing = True   # one more pass: output written just before it ended
                    continue
                await asyncio.sleep(poll)
