"""A TCP proxy that can black-hole its traffic: a network partition on one host.

A service process started by a test connects to PostgreSQL or Kafka through the proxy
instead of directly. ``forward`` copies bytes both ways. ``black_hole()`` is what a
partition does: every byte of every open connection is dropped, both ways, and the
connections stay open — no FIN, no RST, so neither end learns anything until its own
timeouts fire. A connection opened during the black hole is accepted and never answered
while it lasts (the proxy does not even connect to the target, and reads nothing of it):
a client's connect "works" and its first request hangs, much as behind a SYN that is
never answered. ``heal()`` forwards again: connections opened from then on, and the ones
held meanwhile, whose unread bytes then go through intact (a retransmitted SYN finally
answered). The connections cut off mid-stream stay dead (their dropped bytes are gone,
the stream can never be resumed), so clients must notice and reconnect, as they must
after a real partition.

One thing of TCP is kept when healing: a side that closed its end during the
partition has that close delivered to the other side (its FIN is retransmitted until
it gets through), so a client that gave up on a connection frees its server session
once the network is back, and not before.

The proxy runs on an event loop of its own thread (``tests.support.threaded``), so it
keeps answering while the test blocks; ``black_hole()`` and ``heal()`` are called from
the test's thread. The counters are read from there too (single int reads).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import TracebackType

from tests.support.threaded import in_thread

__all__ = ["BlackHole", "Mode", "blackhole_proxy"]

_CHUNK = 64 * 1024


class Mode(enum.Enum):
    FORWARD = "forward"
    BLACK_HOLE = "black_hole"


@dataclass(eq=False)
class _Link:
    """One client connection and, when it was opened while forwarding, its upstream."""

    client: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    #: Cut off by a black hole: nothing crosses it ever again.
    dead: bool = False
    #: Sides that closed their end while the link was dead (delivered on heal).
    closed: set[str] = field(default_factory=set)


class BlackHole:
    """The proxy: listens on ``listen_host:listen_port`` (0: any free port, read it from
    ``port`` once started) and forwards to ``target_host:target_port``. An async
    context manager; use it through ``blackhole_proxy`` to run it on a thread."""

    def __init__(
        self,
        target_host: str,
        target_port: int,
        *,
        listen_host: str = "127.0.0.1",
        listen_port: int = 0,
    ) -> None:
        self.target = (target_host, target_port)
        self.listen = (listen_host, listen_port)
        self.mode = Mode.FORWARD
        self.port = 0
        #: Connections accepted, in either mode.
        self.accepted = 0
        #: Connections accepted during a black hole (never answered).
        self.accepted_in_black_hole = 0
        #: Bytes copied to the other side, and bytes dropped, both directions summed.
        self.forwarded = 0
        self.dropped = 0
        self._links: set[_Link] = set()
        #: Clients that connected during a black hole, waiting for the heal.
        self._held: set[asyncio.StreamWriter] = set()
        self._closing = False
        self._healed = asyncio.Event()
        self._healed.set()
        self._server: asyncio.Server | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    @property
    def address(self) -> str:
        """``host:port`` clients connect to."""
        return f"{self.listen[0]}:{self.port}"

    @property
    def open_links(self) -> int:
        return len(self._links)

    # --- control, from any thread ---------------------------------------------------------

    def black_hole(self) -> None:
        """Drop everything from now on: open connections go dead, new ones are held."""
        self._run(self._cut_all)

    def heal(self) -> None:
        """Forward again: held connections go through, new ones are forwarded, and the
        closes the partition swallowed are delivered."""
        self._run(self._heal)

    def _run(self, fn: Callable[[], None]) -> None:
        """Run ``fn`` on the proxy's loop and wait for it: when a control returns, every
        chunk from then on is handled under the new mode."""
        assert self._loop is not None, "the proxy is not running"

        async def call() -> None:
            fn()

        asyncio.run_coroutine_threadsafe(call(), self._loop).result(10)

    # --- the loop's side --------------------------------------------------------------------

    async def __aenter__(self) -> BlackHole:
        self._loop = asyncio.get_running_loop()
        self._server = await asyncio.start_server(self._accept, *self.listen)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        assert self._server is not None
        self._server.close()
        self._closing = True
        self._healed.set()
        for w in list(self._held):
            w.transport.abort()
        # Aborting the transports ends every pump (its reader sees the connection lost);
        # cancelling the connection's task instead would be logged by asyncio's streams.
        for link in list(self._links):
            for w in (link.client, link.upstream):
                if w is not None:
                    w.transport.abort()
        await self._server.wait_closed()

    def _cut_all(self) -> None:
        self.mode = Mode.BLACK_HOLE
        self._healed.clear()
        for link in self._links:
            link.dead = True

    def _heal(self) -> None:
        self.mode = Mode.FORWARD
        self._healed.set()
        for link in list(self._links):
            if link.dead and link.closed:
                for w in (link.client, link.upstream):
                    if w is not None:
                        w.close()
                self._links.discard(link)

    async def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.accepted += 1
        if self.mode is Mode.BLACK_HOLE:
            # Like a SYN nobody answers: the client waits, what it sent stays unread;
            # once healed it goes through intact (a retransmitted SYN got answered).
            self.accepted_in_black_hole += 1
            self._held.add(writer)
            await self._healed.wait()
            self._held.discard(writer)
            if self._closing:
                return
        link = _Link(client=writer)
        self._links.add(link)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            self._links.discard(link)
            writer.transport.abort()
            return
        link.upstream = up_writer
        down = asyncio.create_task(self._pump(link, up_reader, writer, "upstream"))
        await self._pump(link, reader, up_writer, "client")
        await down
        if not link.dead:  # both ends closed while forwarding: done
            for w in (writer, up_writer):
                w.close()
            self._links.discard(link)

    async def _pump(
        self,
        link: _Link,
        reader: asyncio.StreamReader,
        to: asyncio.StreamWriter | None,
        side: str,
    ) -> None:
        """Copy ``reader`` to ``to`` while the link lives; swallow it once dead."""
        try:
            while chunk := await reader.read(_CHUNK):
                if link.dead or self.mode is Mode.BLACK_HOLE or to is None:
                    link.dead = True
                    self.dropped += len(chunk)
                    continue
                to.write(chunk)
                self.forwarded += len(chunk)
                await to.drain()
        except (ConnectionError, OSError):
            pass
        # This side closed its end (or broke).
        if link.dead or self.mode is Mode.BLACK_HOLE:
            link.dead = True
            link.closed.add(side)  # swallowed until heal
            return
        # Forwarding: pass the half-close on; the other direction may still be talking.
        if to is not None and not to.is_closing():
            with contextlib.suppress(OSError, RuntimeError):
                to.write_eof()


@contextmanager
def blackhole_proxy(
    target_host: str, target_port: int, listen_port: int = 0
) -> Iterator[BlackHole]:
    """A running ``BlackHole`` on a thread of its own, forwarding; closed on leaving
    (every connection aborted)."""
    with in_thread(BlackHole(target_host, target_port, listen_port=listen_port)) as proxy:
        yield proxy
