"""The black-hole proxy against a tiny echo server on loopback: forwarding, a partition
(bytes dropped both ways, connections neither closed nor reset, new ones accepted and
not answered), and healing (new and held connections forward, cut ones stay dead, a
close swallowed by the partition delivered afterwards)."""

from __future__ import annotations

import socket
import socketserver
import threading
import time
from collections.abc import Callable, Iterator

import pytest
from tests.support.blackhole import BlackHole, Mode, blackhole_proxy

#: How long a read waits before the test calls it unanswered.
SILENCE_S = 0.3


class _Echo(socketserver.BaseRequestHandler):
    server: EchoServer

    def handle(self) -> None:
        self.server.opened += 1
        while data := self.request.recv(4096):
            self.request.sendall(data)
        self.server.closed += 1


class EchoServer(socketserver.ThreadingTCPServer):
    daemon_threads = True
    allow_reuse_address = True
    opened = 0
    closed = 0


@pytest.fixture
def echo() -> Iterator[EchoServer]:
    server = EchoServer(("127.0.0.1", 0), _Echo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.shutdown()
    server.server_close()


@pytest.fixture
def proxy(echo: EchoServer) -> Iterator[BlackHole]:
    with blackhole_proxy("127.0.0.1", echo.server_address[1]) as p:
        yield p


def connect(proxy: BlackHole) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", proxy.port), timeout=5)
    s.settimeout(SILENCE_S)
    return s


def echoed(s: socket.socket, data: bytes) -> bytes:
    s.sendall(data)
    got = b""
    deadline = time.monotonic() + 5
    while len(got) < len(data) and time.monotonic() < deadline:
        got += s.recv(4096)
    return got


def unanswered(s: socket.socket, data: bytes) -> bool:
    """Nothing comes back — and the connection is neither closed (recv would return b"")
    nor reset (recv would raise ConnectionResetError)."""
    s.sendall(data)
    try:
        s.recv(4096)
    except TimeoutError:
        return True
    return False


def until(check: Callable[[], bool], within: float = 5) -> bool:
    deadline = time.monotonic() + within
    while not check():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def test_forwards_both_ways(proxy: BlackHole, echo: EchoServer) -> None:
    with connect(proxy) as s:
        assert echoed(s, b"ping") == b"ping"
        assert echoed(s, b"x" * 200_000) == b"x" * 200_000
    assert until(lambda: echo.closed == 1), "a close is passed on while forwarding"
    assert proxy.forwarded == 2 * (4 + 200_000)
    assert proxy.dropped == 0


def test_black_hole_drops_bytes_without_closing_or_resetting(
    proxy: BlackHole, echo: EchoServer
) -> None:
    with connect(proxy) as s:
        assert echoed(s, b"before") == b"before"
        proxy.black_hole()
        assert proxy.mode is Mode.BLACK_HOLE
        assert unanswered(s, b"during")
        assert unanswered(s, b"again")
        assert until(lambda: proxy.dropped == len(b"during") + len(b"again"))
        assert echo.closed == 0, "the server side is not closed either"


def test_new_connections_in_a_black_hole_are_held_unanswered_until_healed(
    proxy: BlackHole, echo: EchoServer
) -> None:
    proxy.black_hole()
    with connect(proxy) as s:
        assert unanswered(s, b"hello?")
        assert proxy.accepted_in_black_hole == 1
        assert echo.opened == 0, "the target does not hear of it meanwhile"
        proxy.heal()
        got = b""
        while len(got) < len(b"hello?"):
            got += s.recv(4096)
        assert got == b"hello?", "what it sent went through intact after the heal"
    assert proxy.dropped == 0


def test_heal_forwards_new_connections_and_cut_ones_stay_dead(
    proxy: BlackHole, echo: EchoServer
) -> None:
    with connect(proxy) as old:
        assert echoed(old, b"a") == b"a"
        proxy.black_hole()
        assert unanswered(old, b"lost")
        proxy.heal()
        assert proxy.mode is Mode.FORWARD
        with connect(proxy) as new:
            assert echoed(new, b"back") == b"back"
        assert unanswered(old, b"still cut off")


def test_a_close_during_the_partition_reaches_the_server_only_after_heal(
    proxy: BlackHole, echo: EchoServer
) -> None:
    s = connect(proxy)
    assert echoed(s, b"a") == b"a"
    proxy.black_hole()
    s.close()
    assert until(lambda: proxy.open_links == 1 and echo.closed == 0)
    time.sleep(SILENCE_S)
    assert echo.closed == 0, "the FIN was swallowed"
    proxy.heal()
    assert until(lambda: echo.closed == 1), "and delivered once healed"
    assert until(lambda: proxy.open_links == 0)
