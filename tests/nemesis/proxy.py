"""A fault-injecting TCP proxy for the raft links between servers.

pysyncobj keeps one TCP connection per pair of servers, dialed by the server whose own
raft address sorts higher, and the dialer names itself by its own raft address. So one
proxy per pair is enough: the dialer is told (``raft_peers`` in the generated cluster
file) to dial the pair's proxy instead of the peer, and the peer still recognizes the
dialer. Cutting a proxy cuts the link both ways: its live connections are aborted and
new ones are accepted and dropped at once, until it is healed.

All proxies run on one asyncio loop in a daemon thread of the test process.
"""
from __future__ import annotations

import asyncio
import threading
from itertools import combinations


class LinkProxy:
    def __init__(self, listen_port: int, target: str):
        self.listen_port = listen_port
        self.target = target
        self.up = True
        self._transports: set[asyncio.Transport] = set()
        self._server: asyncio.base_events.Server | None = None

    async def start(self) -> None:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.listen_port)

    async def close(self) -> None:
        self.cut()
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()

    def cut(self) -> None:
        self.up = False
        for tr in list(self._transports):
            tr.abort()
        self._transports.clear()

    def heal(self) -> None:
        self.up = True

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter):
        if not self.up:
            writer.transport.abort()
            return
        host, _, port = self.target.rpartition(":")
        try:
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
        except OSError:
            writer.transport.abort()
            return
        if not self.up:   # cut while dialing
            writer.transport.abort()
            up_writer.transport.abort()
            return
        pair = (writer.transport, up_writer.transport)
        self._transports.update(pair)
        await asyncio.gather(self._pump(reader, up_writer), self._pump(up_reader, writer))
        self._transports.difference_update(pair)

    @staticmethod
    async def _pump(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
        try:
            while data := await src.read(65536):
                dst.write(data)
                await dst.drain()
        except (OSError, asyncio.IncompleteReadError):
            pass
        finally:
            dst.transport.abort()


class RaftNet:
    """The proxies of a cluster, one per pair of server names, and its topology."""

    def __init__(self):
        self.links: dict[frozenset[str], LinkProxy] = {}
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="raft-proxies",
                                        daemon=True)
        self._thread.start()

    def _run(self, coro):
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)

    def add(self, a: str, b: str, listen_port: int, target: str) -> None:
        proxy = LinkProxy(listen_port, target)
        self._run(proxy.start())
        self.links[frozenset((a, b))] = proxy

    def connect_only(self, connected: set[frozenset[str]]) -> None:
        """Heal exactly the links in ``connected``; cut every other one."""
        def apply():
            for pair, proxy in self.links.items():
                if pair in connected:
                    proxy.heal()
                else:
                    proxy.cut()
        self._loop.call_soon_threadsafe(apply)
        self._run(asyncio.sleep(0))   # wait until applied

    def partition(self, *groups) -> None:
        """Servers talk only within their group (a server in no group is isolated)."""
        self.connect_only({frozenset(p) for g in groups for p in combinations(sorted(g), 2)})

    def heal_all(self) -> None:
        self.connect_only(set(self.links))

    def close(self) -> None:
        for proxy in self.links.values():
            self._run(proxy.close())
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)
