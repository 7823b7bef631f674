"""The request plumbing that ingest's HTTP endpoints share, said once: the lead webhook
(``adapters.http``), CRM feedback (``adapters.feedback_http``), the vendor CRM webhooks
(``adapters.vendor_hooks``) and Meta lead ads (``adapters.meta``) each keep only their
own decisions (routes, secrets, what a body must be, what a success says).

- ``read_body``: the body within a byte limit (counted as it arrives, since
  Content-Length may be absent or understated) and, optionally, a read timeout.
- ``refusal``: a JSON ``{"error": reason}`` answer with ``Retry-After``,
  ``Connection: close`` (the unread rest of a body makes the connection unfit for another
  request) and ``WWW-Authenticate`` as asked, logged under the endpoint's event name.
- ``Sends``: a hand-off to Kafka that answers only after the broker acknowledged, with
  a cap on sends in flight and a timeout that answers the caller without cancelling the
  send midway (``asyncio.shield``).
- ``Replays``: the replay cache's use (``domain.replays``): reserve a verified request's
  key before anything is published, 409 ``replayed`` for a key already held, 503 when
  the cache cannot be reached, and release the key when the request then fails on our
  side (429/503), so that the sender's retry gets through.
- ``Intake``: the above plus the signature check, for a signed endpoint that publishes
  to Kafka, with the endpoint's own log event names; it logs status and reason codes,
  sizes and the fields the endpoint names, never a body or a header value.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypedDict, Unpack, cast

import faust
from aiohttp import web

from leadloop.clock import Clock
from leadloop.logging import get_logger
from leadloop_ingest.domain.replays import DEFAULT_RETENTION_S, REPLAYED, Reservation, reservation
from leadloop_ingest.domain.signatures import (
    DEFAULT_TOLERANCE_S,
    META_SIGNATURE,
    SIGNATURE,
    TIMESTAMP,
    Scheme,
    verify,
)
from leadloop_ingest.ports import ReplayCache

__all__ = [
    "RETRY_AFTER_BUSY_S",
    "RETRY_AFTER_UNAVAILABLE_S",
    "Handle",
    "Intake",
    "Limits",
    "Replays",
    "Reply",
    "Sends",
    "TooLarge",
    "content_length",
    "header",
    "read_body",
    "refusal",
    "reply_json",
    "serve_post",
    "signed_parts",
    "unavailable",
]

log = get_logger(__name__)

RETRY_AFTER_BUSY_S = 1
RETRY_AFTER_UNAVAILABLE_S = 5

#: Log fields that say whom a request concerns (a source, a topic and client, ...):
#: configured ids and codes only.
Context = Mapping[str, object]


@dataclass(frozen=True, slots=True)
class Reply:
    """A JSON answer: status, body and any headers beyond Content-Type."""

    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


#: (path parameter, request headers, body chunks) -> the answer.
Handle = Callable[[str, Mapping[str, str], AsyncIterator[bytes]], Awaitable[Reply]]


def refusal(
    status: int,
    reason: str,
    *,
    retry_after: int | None = None,
    close: bool = False,
    realm: str | None = None,
    log_as: str | None = None,
    **fields: object,
) -> Reply:
    """``{"error": reason}`` with the headers asked for; logged as ``log_as`` (if given)
    with status, reason and ``fields``: configured ids, codes and sizes only, never a body
    or a header value."""
    if log_as is not None:
        log.info(log_as, status=status, reason=reason, **fields)
    headers: dict[str, str] = {}
    if retry_after is not None:
        headers["Retry-After"] = str(retry_after)
    if close:
        # The unread rest of the body makes the connection unfit for another request.
        headers["Connection"] = "close"
    if realm is not None:
        headers["WWW-Authenticate"] = realm
    return Reply(status, {"error": reason}, headers)


def unavailable() -> Reply:
    """503: the broker did not acknowledge in time or failed; the caller retries."""
    return refusal(503, "unavailable", retry_after=RETRY_AFTER_UNAVAILABLE_S)


class TooLarge(Exception):
    """The body grew past the limit while it was read."""


async def read_body(
    chunks: AsyncIterator[bytes], *, max_bytes: int, timeout_s: float | None = None
) -> bytes:
    """The whole body; raises ``TooLarge`` past ``max_bytes`` and ``TimeoutError`` when it
    did not arrive within ``timeout_s`` (None: no limit)."""
    body = bytearray()
    async with asyncio.timeout(timeout_s):
        # Content-Length may be absent (chunked) or understated, so count what arrives.
        async for chunk in chunks:
            body += chunk
            if len(body) > max_bytes:
                raise TooLarge
    return bytes(body)


def header(headers: Mapping[str, str], name: str) -> str:
    """A header's value, stripped; "" when absent."""
    # aiohttp's headers are case-insensitive already; a plain dict (tests) may not be.
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), "")
    return value.strip()


def content_length(headers: Mapping[str, str]) -> int | None:
    value = header(headers, "Content-Length")
    # aiohttp already refuses a malformed Content-Length; this stays total regardless.
    return int(value) if value.isascii() and value.isdigit() else None


class Sends:
    """Acknowledged sends with a cap on those in flight and a timeout.

    ``send`` returns once the broker acknowledged and raises when the send failed or
    ``timeout_s`` passed first. A timeout leaves the send running (``asyncio.shield``), so
    the record may still arrive: callers answer retryably and rely on the consumers'
    idempotency. Sends not yet acknowledged count against ``max_in_flight`` until they end.
    """

    def __init__(self, *, max_in_flight: int, timeout_s: float) -> None:
        self._max_in_flight = max_in_flight
        self._timeout_s = timeout_s
        # Sends not yet acknowledged, including those whose caller already got a 503;
        # asyncio keeps only weak references to tasks, so this set keeps them alive.
        self._pending: set[asyncio.Future[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    @property
    def full(self) -> bool:
        return len(self._pending) >= self._max_in_flight

    async def send(self, sending: Awaitable[None]) -> None:
        task = asyncio.ensure_future(sending)
        self._pending.add(task)
        task.add_done_callback(self._sent)
        # shield: a timeout answers the caller but does not cancel the send midway.
        await asyncio.wait_for(asyncio.shield(task), self._timeout_s)

    def _sent(self, task: asyncio.Future[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled():
            # A failure was raised to (and answered by) the caller of ``send``; retrieving
            # it here keeps asyncio from reporting it again as never retrieved.
            task.exception()


class Replays:
    """Reserve each verified request in the replay cache before it is accepted.

    ``reserve`` returns the reservation, or the refusal: 409 ``replayed`` (another
    delivery of the same signed request holds the key; ``counted(endpoint)`` is called
    with the scope's kind, e.g. ``lead`` of ``lead:web_form``)
    or 503 ``unavailable`` (the cache cannot be reached: accepting unprotected would
    reopen the replay, and the sender retries). ``release`` frees a reservation whose
    request then failed on our side; a failure to release is logged, not raised (the
    key then only expires).
    """

    def __init__(
        self,
        cache: ReplayCache,
        clock: Clock,
        *,
        retention_s: int = DEFAULT_RETENTION_S,
        counted: Callable[[str], None] = lambda endpoint: None,
    ) -> None:
        self._cache = cache
        self._clock = clock
        self._retention_s = retention_s
        self._counted = counted

    async def reserve(
        self,
        *,
        scope: str,
        signature: str,
        signed_at: datetime | None,
        tolerance_s: int,
    ) -> Reservation | Reply:
        # The endpoint's kind (``lead``, ``crm``, ``meta``): a bounded metric label.
        endpoint = scope.partition(":")[0]
        held = reservation(
            scope=scope,
            signature=signature,
            signed_at=signed_at,
            now=self._clock.now(),
            tolerance_s=tolerance_s,
            retention_s=self._retention_s,
        )
        try:
            fresh = await self._cache.reserve(held)
        except Exception as exc:  # PostgreSQL down or slow: retryable, never unprotected
            log.warning("replay_cache_unavailable", endpoint=endpoint, error=type(exc).__name__)
            return unavailable()
        if not fresh:
            self._counted(endpoint)
            return refusal(409, REPLAYED)
        return held

    async def release(self, held: Reservation) -> None:
        try:
            await self._cache.release(held)
        except Exception as exc:  # the key then stays until it expires
            log.warning("replay_release_failed", scope=held.scope, error=type(exc).__name__)


def signed_parts(scheme: Scheme, headers: Mapping[str, str]) -> tuple[str, datetime | None]:
    """The signature header's value and the signed time of a request that verified."""
    if scheme == "meta":
        return header(headers, META_SIGNATURE), None
    return header(headers, SIGNATURE), datetime.fromtimestamp(int(header(headers, TIMESTAMP)), UTC)


class Limits(TypedDict, total=False):
    """What a signed endpoint may be told beyond its own decisions (defaults: ``Intake``)."""

    #: How far the signature's timestamp may be from the clock, either way.
    tolerance_s: int
    #: Largest body; more, declared or read, is a 413.
    max_body_bytes: int
    #: Sends waiting on the broker at once; more are answered 429.
    max_in_flight: int
    #: How long a request waits for the broker's acknowledgement before a 503.
    publish_timeout_s: float
    #: How long the body may take to arrive before a 408.
    read_timeout_s: float


class Intake:
    """A signed endpoint's plumbing up to the broker's acknowledgement: size limit, read
    timeout, signature check, in-flight cap and publish timeout, and its refusals, logged
    as ``refused`` (status, reason, the request's context, bytes) or ``publish_failed``.
    The endpoint decides the route, the secret, what the body must be and the success."""

    def __init__(
        self,
        *,
        refused: str,
        publish_failed: str,
        realm: str,
        clock: Clock,
        replays: Replays | None = None,
        **limits: Unpack[Limits],
    ) -> None:
        self._replays = replays
        self._refused = refused
        self._publish_failed = publish_failed
        self._realm = realm
        self._clock = clock
        self._tolerance_s = limits.get("tolerance_s", DEFAULT_TOLERANCE_S)
        self._max_body_bytes = limits.get("max_body_bytes", 64 * 1024)
        self._read_timeout_s = limits.get("read_timeout_s", 10.0)
        self._sends = Sends(
            max_in_flight=limits.get("max_in_flight", 1000),
            timeout_s=limits.get("publish_timeout_s", 10.0),
        )

    @property
    def in_flight(self) -> int:
        return self._sends.in_flight

    def refuse(
        self,
        status: int,
        reason: str,
        context: Context,
        *,
        size: int | None = None,
        retry_after: int | None = None,
        close: bool = False,
    ) -> Reply:
        """``{"error": reason}``, logged; a 401 names the realm (``WWW-Authenticate``)."""
        return refusal(
            status,
            reason,
            retry_after=retry_after,
            close=close,
            realm=self._realm if status == 401 else None,
            log_as=self._refused,
            **context,
            bytes=size,
        )

    def declared_too_large(self, headers: Mapping[str, str], context: Context) -> Reply | None:
        """413 when Content-Length already says the body is over the limit."""
        declared = content_length(headers)
        if declared is not None and declared > self._max_body_bytes:
            return self.refuse(413, "too_large", context, size=declared, close=True)
        return None

    async def read(self, chunks: AsyncIterator[bytes], context: Context) -> bytes | Reply:
        """The body, or its 413 (over the limit) or 408 (not in time)."""
        try:
            return await read_body(
                chunks, max_bytes=self._max_body_bytes, timeout_s=self._read_timeout_s
            )
        except TooLarge:
            size = self._max_body_bytes
            return self.refuse(413, "too_large", context, size=size, close=True)
        except TimeoutError:
            return self.refuse(408, "body_timeout", context, close=True)

    def verify(
        self,
        scheme: Scheme,
        secret: bytes,
        body: bytes,
        headers: Mapping[str, str],
        context: Context,
    ) -> Reply | None:
        """401 with a ``signatures.Failure`` unless ``body`` is signed with ``secret``."""
        verdict = verify(
            scheme=scheme,
            secret=secret,
            body=body,
            headers=headers,
            now=self._clock.now(),
            tolerance_s=self._tolerance_s,
        )
        if verdict.reason is None:
            return None
        return self.refuse(401, verdict.reason.value, context, size=len(body))

    async def reserve(
        self, scheme: Scheme, scope: str, headers: Mapping[str, str], context: Context
    ) -> Reservation | Reply | None:
        """Hold a verified request's replay key (``Replays``): the reservation, its 409 or
        503, or None when this endpoint keeps no replay cache."""
        if self._replays is None:
            return None
        signature, signed_at = signed_parts(scheme, headers)
        held = await self._replays.reserve(
            scope=scope,
            signature=signature,
            signed_at=signed_at,
            tolerance_s=self._tolerance_s,
        )
        if isinstance(held, Reply) and held.status == 409:
            log.info(self._refused, status=409, reason=REPLAYED, **context)
        return held

    async def publish(
        self,
        sending: Callable[[], Awaitable[None]],
        context: Context,
        *,
        size: int,
        counts: Mapping[str, int],
        reserved: Reservation | None = None,
    ) -> Reply | None:
        """None once the broker acknowledged what ``sending()`` sends; else 429 (too many
        in flight, nothing sent) or 503 (failed or timed out, maybe still arriving), after
        which ``reserved`` is released: the sender's retry is not a replay.
        ``size`` (bytes) goes into the 429's log line, ``counts`` into the 503's."""
        if self._sends.full:
            await self._release(reserved)
            return self.refuse(429, "busy", context, size=size, retry_after=RETRY_AFTER_BUSY_S)
        try:
            await self._sends.send(sending())
        except Exception as exc:  # broker down, timeout, producer not started: retryable
            log.warning(
                self._publish_failed,
                **context,
                error=type(exc).__name__,
                **counts,
                in_flight=self._sends.in_flight,
            )
            await self._release(reserved)
            return unavailable()
        return None

    async def _release(self, reserved: Reservation | None) -> None:
        if reserved is not None and self._replays is not None:
            await self._replays.release(reserved)


def reply_json(view: faust.web.View, reply: Reply) -> faust.web.Response:
    return view.json(reply.body, status=reply.status, headers=dict(reply.headers))


def serve_post(app: faust.App, path: str, name: str, handle: Handle) -> None:
    """Serve ``POST path`` (one path parameter) on ``app``'s web server with ``handle``."""

    class Post(faust.web.View):
        async def post(self, request: faust.web.Request, **params: str) -> faust.web.Response:
            # faust's web driver is aiohttp; its request streams the body.
            req = cast(web.Request, request)
            (param,) = params.values()
            return reply_json(self, await handle(param, req.headers, req.content.iter_any()))

    app.page(path, name=name)(Post)
