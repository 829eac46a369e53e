"""Child processes for tasks and script checks, started without ``fork()``.

gRPC's C core registers fork handlers, and a process that forks while gRPC threads run
can see the child crash before it execs (observed here: the child dies of SIGSEGV in
gRPC's event-engine thread, so a task "exits" with signal 11 at random). asyncio's and
uvloop's subprocess support fork; CPython's ``subprocess.Popen`` uses ``vfork()`` when
no ``preexec_fn`` is given, which runs no fork handlers. So children are started with
``Popen`` and watched from the event loop: the exit through a pidfd, the output through
the loop's pipe transports.
"""
from __future__ import annotations

import asyncio
import os
import subprocess


class Child:
    def __init__(self, popen: subprocess.Popen, stdout: asyncio.StreamReader | None,
                 stderr: asyncio.StreamReader | None):
        self.popen = popen
        self.pid = popen.pid
        self.stdout = stdout
        self.stderr = stderr
        self._exit: asyncio.Future | None = None

    @property
    def returncode(self) -> int | None:
        return self.popen.returncode

    async def wait(self) -> int:
        """The exit status (negative: killed by that signal)."""
        if self.popen.returncode is not None:
            return self.popen.returncode
        loop = asyncio.get_running_loop()
        if self._exit is None:
            try:
                fd = os.pidfd_open(self.pid)
            except (AttributeError, OSError):   # no pidfds (before Linux 5.3): a thread
                self._exit = asyncio.ensure_future(asyncio.to_thread(self.popen.wait))
                return await asyncio.shield(self._exit)
            self._exit = loop.create_future()

            def exited() -> None:
                loop.remove_reader(fd)
                os.close(fd)
                if not self._exit.done():
                    self._exit.set_result(self.popen.wait())
            loop.add_reader(fd, exited)
        return await asyncio.shield(self._exit)


async def _reader(loop, pipe) -> asyncio.StreamReader:
    reader = asyncio.StreamReader(limit=1 << 20)
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), pipe)
    return reader


async def spawn(argv: list[str], *, cwd: str, env: dict[str, str], merge_stderr: bool = False
                ) -> Child:
    """Start ``argv`` in its own session (so its process group can be signalled), stdin
    from /dev/null, stdout and stderr piped (stderr into stdout when ``merge_stderr``).
    Raises OSError when it cannot be started."""
    popen = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
                             stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
                             start_new_session=True, close_fds=True)
    loop = asyncio.get_running_loop()
    stdout = await _reader(loop, popen.stdout)
    stderr = None if merge_stderr else await _reader(loop, popen.stderr)
    return Child(popen, stdout, stderr)
