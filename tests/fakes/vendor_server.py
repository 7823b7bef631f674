"""What every fake chat vendor shares: an aiohttp server on loopback, faults, windows.

A fake is written from the vendor's documentation, not from our adapter: it issues and
checks its own tokens, recomputes signatures with its own HMAC code (`hmac_sha256`,
from http_fake, builds RFC 2104 from hashlib, so a mistake in the adapter's use of
`hmac` cannot be mirrored here), and answers limits and errors with the vendor's codes. Each keeps
``received`` — what a person would have seen — for checkers, and ``faults`` to make the
next requests fail (HTTP 500), stall (``delay_s``) or both.
"""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

from aiohttp import web
from tests.fakes.http_fake import LoopbackServer, hmac_sha256

__all__ = ["FakeVendor", "Faults", "Received", "Window", "hmac_sha256"]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@dataclass(frozen=True)
class Received:
    """One message the vendor accepted for display."""

    kind: str  # channel kind, as in leadloop_notifier's Channel.kind
    address: str  # user id, robot key, hook id or channel the message went to
    subject: str  # title when the format has one, else ""
    text: str  # the displayed content
    at: float  # wall-clock time of acceptance


@dataclass
class Faults:
    """Programmable trouble, applied before the vendor logic runs."""

    fail_next: int = 0  # the next N requests answer `fail_status`
    fail_status: int = 500
    delay_s: float = 0.0  # every request waits this long first
    paths: tuple[str, ...] = ()  # only requests whose path starts with one of these; () = all


@dataclass
class Window:
    """A sliding window limit per key: at most ``limit`` events in ``seconds``."""

    limit: int
    seconds: float = 60.0
    clock: Callable[[], float] = time.monotonic
    _events: dict[str, deque[float]] = field(default_factory=lambda: defaultdict(deque))

    def allow(self, key: str) -> bool:
        now = self.clock()
        events = self._events[key]
        while events and events[0] <= now - self.seconds:
            events.popleft()
        if len(events) >= self.limit:
            return False
        events.append(now)
        return True

    def retry_after(self, key: str) -> float:
        events = self._events[key]
        return max(0.0, events[0] + self.seconds - self.clock()) if events else 0.0


class FakeVendor(LoopbackServer):
    """Base of the fakes: routes come from `routes`; start/stop on 127.0.0.1."""

    def __init__(self, wall_clock: Callable[[], float] = time.time) -> None:
        self.received: list[Received] = []
        self.faults = Faults()
        self.requests = 0
        self.wall_clock = wall_clock

    def routes(self) -> list[web.RouteDef]:
        raise NotImplementedError

    def record(self, kind: str, address: str, subject: str, text: str) -> None:
        self.received.append(Received(kind, address, subject, text, self.wall_clock()))

    @web.middleware
    async def _faults(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        applies = not self.faults.paths or request.path.startswith(self.faults.paths)
        if applies and self.faults.delay_s:
            await asyncio.sleep(self.faults.delay_s)
        if applies and self.faults.fail_next > 0:
            self.faults.fail_next -= 1
            return web.Response(status=self.faults.fail_status, text="injected fault")
        return await handler(request)

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._faults])
        app.add_routes(self.routes())
        return app
