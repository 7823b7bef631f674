"""What the fakes share: an aiohttp server on loopback (``LoopbackServer``, the base of
the chat fakes' ``FakeVendor`` too) and an HMAC of their own; and what the CRM fakes
share on top (``HttpFake``): a fault schedule, a rate window, an authentication gate.

A CRM fake is written from the vendor's documentation, not from our connector: it
issues and checks its own credentials, validates request shapes the way the vendor
documents them and answers with the vendor's status codes and error bodies. Each one
keeps ``received`` (the writes it accepted, for an independent checker to count
effects) and ``rejected`` (refused requests by reason).

Order of checks on every request, as a real API gateway does it: injected delay (the
request still takes effect after its caller gave up), then
an injected failure, then authentication, then the rate limit, then the vendor logic.
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import json
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, Self

from aiohttp import web
from tests.support.ports import free_ports

__all__ = [
    "Faults",
    "HttpFake",
    "LoopbackServer",
    "RateWindow",
    "Received",
    "hmac_sha256",
    "json_response",
    "read_json",
]

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def hmac_sha256(key: bytes, message: bytes) -> bytes:
    """HMAC-SHA256 per RFC 2104, written out from hashlib so that a fake cannot share a
    mistake with the service's use of the ``hmac`` module."""
    block = 64
    if len(key) > block:
        key = hashlib.sha256(key).digest()
    key = key.ljust(block, b"\x00")
    inner = hashlib.sha256(bytes(b ^ 0x36 for b in key) + message).digest()
    return hashlib.sha256(bytes(b ^ 0x5C for b in key) + inner).digest()


class LoopbackServer:
    """An aiohttp application served on a free port of 127.0.0.1: ``await start()`` and
    ``await stop()``, or ``async with``. A subclass builds the app in ``application``."""

    #: Seconds a stop waits for requests in flight (aiohttp's default).
    shutdown_timeout: float = 60.0
    port: int = 0
    _runner: web.AppRunner | None = None

    @property
    def base_url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def application(self) -> web.Application:
        raise NotImplementedError

    async def start(self) -> Self:
        self._runner = web.AppRunner(
            self.application(), shutdown_timeout=self.shutdown_timeout, access_log=None
        )
        await self._runner.setup()
        for attempt in range(5):  # a free port can be taken before we bind it
            self.port = free_ports(1)[0]
            try:
                await web.TCPSite(self._runner, "127.0.0.1", self.port).start()
                return self
            except OSError:
                if attempt == 4:
                    raise
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


@dataclass(frozen=True)
class Received:
    """One write the fake accepted."""

    op: str  # "upsert", "create", "update", "delete", "lead.assigned", …
    lead_id: str
    key: str | None  # the idempotency key or sequence the request carried, if any
    at: float  # wall-clock time of acceptance


@dataclass
class Faults:
    """A programmable schedule of trouble, consumed request by request."""

    _fail: deque[int] = field(default_factory=deque)
    _delay: deque[float] = field(default_factory=deque)
    _throttle_until: float = 0.0
    #: Queued to start once the throttle is over (``after_throttle``).
    _fail_after: deque[int] = field(default_factory=deque)
    _delay_after: deque[float] = field(default_factory=deque)
    duplicates: set[str] = field(default_factory=set)

    def fail_next(self, n: int, status: int = 500, *, after_throttle: bool = False) -> None:
        """The next ``n`` requests answer ``status`` with the vendor's error body; with
        ``after_throttle`` the first ``n`` after the throttle ends (a test scheduling
        them by its own clock could miss requests sent in between)."""
        (self._fail_after if after_throttle else self._fail).extend([status] * n)

    def delay_next(self, seconds: float, n: int = 1, *, after_throttle: bool = False) -> None:
        """The next ``n`` requests wait ``seconds`` before being handled (timeouts);
        ``after_throttle`` as in ``fail_next``."""
        (self._delay_after if after_throttle else self._delay).extend([seconds] * n)

    def throttle_for(self, seconds: float) -> None:
        """Every request answers the vendor's rate-limit reply for ``seconds``."""
        self._throttle_until = time.monotonic() + seconds

    def duplicate(self, lead_id: str) -> None:
        """Writes for ``lead_id`` answer the vendor's duplicate-external-id reply."""
        self.duplicates.add(lead_id)

    def take_delay(self) -> float:
        if self._delay:
            return self._delay.popleft()
        if self._delay_after and not self.throttled():
            return self._delay_after.popleft()
        return 0.0

    def take_failure(self) -> int | None:
        if self._fail:
            return self._fail.popleft()
        if self._fail_after and not self.throttled():
            return self._fail_after.popleft()
        return None

    def throttled(self) -> bool:
        return time.monotonic() < self._throttle_until


class RateWindow:
    """At most ``per_s`` requests in any sliding second; None: unlimited."""

    def __init__(self, per_s: int | None) -> None:
        self.per_s = per_s
        self._times: deque[float] = deque()

    def admit(self) -> bool:
        if self.per_s is None:
            return True
        now = time.monotonic()
        while self._times and now - self._times[0] >= 1.0:
            self._times.popleft()
        if len(self._times) >= self.per_s:
            return False
        self._times.append(now)
        return True


def json_response(
    body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> web.Response:
    return web.Response(
        status=status,
        body=json.dumps(body, ensure_ascii=False).encode(),
        content_type="application/json",
        headers=headers,
    )


async def read_json(request: web.Request) -> Any:
    """The request's JSON value; raises ValueError when the body is not JSON."""
    raw = await request.read()
    return json.loads(raw.decode("utf-8"))


class HttpFake(LoopbackServer):
    """Base of every CRM fake; an async context manager that serves on 127.0.0.1.

    Subclasses add their routes and say how the vendor answers: ``authorized``,
    ``unauthorized``, ``rate_limited``, ``server_error``; ``public`` paths (a token
    endpoint) skip authentication and the rate limit.
    """

    public_paths: tuple[str, ...] = ()
    shutdown_timeout = 0.5

    def __init__(self, *, rate_per_s: int | None = None) -> None:
        self.faults = Faults()
        self.rate = RateWindow(rate_per_s)
        self.received: list[Received] = []
        self.rejected: Counter[str] = Counter()
        self.requests = 0
        self._ids = itertools.count(1)

    @property
    def url(self) -> str:
        return self.base_url

    # -- what a subclass provides -------------------------------------------------
    def add_routes(self, app: web.Application) -> None:
        raise NotImplementedError

    async def authorized(self, request: web.Request) -> bool:
        raise NotImplementedError

    def unauthorized(self) -> web.Response:
        raise NotImplementedError

    def rate_limited(self) -> web.Response:
        raise NotImplementedError

    def server_error(self, status: int) -> web.Response:
        return json_response({"error": "injected"}, status)

    # -- shared plumbing ----------------------------------------------------------
    def next_id(self) -> int:
        return next(self._ids)

    def accept(self, op: str, lead_id: str, key: str | None = None) -> None:
        self.received.append(Received(op, lead_id, key, time.time()))

    def reject(self, reason: str, response: web.Response) -> web.Response:
        self.rejected[reason] += 1
        return response

    def effects(self, lead_id: str) -> list[Received]:
        return [r for r in self.received if r.lead_id == lead_id]

    @web.middleware
    async def _gate(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        self.requests += 1
        delay = self.faults.take_delay()
        if delay:
            # The body is read first, so a write whose caller timed out still lands late:
            # the reply is lost, the effect is not (the case idempotency must cover).
            await request.read()
            await asyncio.sleep(delay)
        status = self.faults.take_failure()
        if status is not None:
            return self.reject(f"injected_{status}", self.server_error(status))
        if not (self.public_paths and request.path.startswith(self.public_paths)):
            if not await self.authorized(request):
                return self.reject("auth", self.unauthorized())
            if self.faults.throttled() or not self.rate.admit():
                return self.reject("rate_limit", self.rate_limited())
        return await handler(request)

    def application(self) -> web.Application:
        app = web.Application(middlewares=[self._gate])
        self.add_routes(app)
        return app
