"""The signed lead webhook, ``POST /v1/leads/{source}``, served by ingest's faust web server.

A channel posts one lead per request; the raw body goes onto ``leads.raw`` untouched and
the ingest agent validates it like any other record there. What the caller gets back:

| status | body ``error`` | when |
|---|---|---|
| 202 | (``{"status": "accepted"}``) | the record is on ``leads.raw``, acknowledged (acks=all) |
| 404 | ``unknown_source`` | the path names no configured channel |
| 413 | ``too_large`` | Content-Length or the bytes actually read exceed the limit |
| 408 | ``body_timeout`` | the body did not arrive in time |
| 401 | a ``signatures.Failure`` | missing, malformed, wrong or stale signature; no secret |
| 422 | a reason from ``prevalidate`` | the body can never become a lead (e.g. ``invalid_json``) |
| 429 | ``busy`` | too many requests already waiting on Kafka (``Retry-After``) |
| 503 | ``unavailable`` | Kafka did not acknowledge in time or failed (``Retry-After``) |

Never a 2xx before the broker acknowledged. A 503 after a timeout leaves the send
running, so the record may still arrive; the channel's retry is then a duplicate, which
ingest recognises by (``source``, ``source_lead_id``). That idempotency is also the
replay protection of the ``meta`` scheme, which has no timestamp.

Logs carry status codes, reason codes, configured source ids and sizes only: never a
body or a header value (bodies hold personal data, headers hold signatures).
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from aiohttp import web
from pydantic import SecretStr

from leadloop.clock import Clock
from leadloop.logging import get_logger
from leadloop_ingest.domain.signatures import DEFAULT_TOLERANCE_S, Failure, Scheme, verify

__all__ = [
    "PATH",
    "Prevalidate",
    "PublishRaw",
    "Reply",
    "Webhook",
    "record_key",
    "register_webhook",
]

log = get_logger(__name__)

PATH = "/v1/leads/{source}"

#: Sends one record (key, value, headers) to ``leads.raw``; returns once the broker
#: acknowledged it (acks=all) and raises if it could not be delivered.
PublishRaw = Callable[[bytes | None, bytes, list[tuple[str, bytes]]], Awaitable[None]]
#: (source, raw body) -> a reason code when the body can never become a lead, else None.
Prevalidate = Callable[[str, bytes], str | None]

#: Longest ``source_lead_id`` used in a record key (the contract's limit for the field).
MAX_KEY_ID = 128
RETRY_AFTER_BUSY_S = 1
RETRY_AFTER_UNAVAILABLE_S = 5
_WWW_AUTHENTICATE = 'HMAC-SHA256 realm="leadloop-webhook"'


@dataclass(frozen=True, slots=True)
class Reply:
    status: int
    body: dict[str, str]
    headers: dict[str, str] = field(default_factory=dict)


class _TooLarge(Exception):
    pass


class Webhook:
    """The webhook's decisions and its Kafka hand-off, independent of the web framework."""

    def __init__(
        self,
        *,
        publish_raw: PublishRaw,
        secrets: Mapping[str, SecretStr],
        schemes: Mapping[str, Scheme],
        sources: frozenset[str],
        prevalidate: Prevalidate,
        clock: Clock,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        max_body_bytes: int = 64 * 1024,
        max_in_flight: int = 1000,
        publish_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
    ) -> None:
        self._publish_raw = publish_raw
        self._secrets = {s: v.get_secret_value().encode() for s, v in secrets.items()}
        self._schemes = dict(schemes)
        self._sources = sources
        self._prevalidate = prevalidate
        self._clock = clock
        self._tolerance_s = tolerance_s
        self._max_body_bytes = max_body_bytes
        self._max_in_flight = max_in_flight
        self._publish_timeout_s = publish_timeout_s
        self._read_timeout_s = read_timeout_s
        # Sends not yet acknowledged, including those whose caller already got a 503;
        # asyncio keeps only weak references to tasks, so this set keeps them alive.
        self._pending: set[asyncio.Future[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def handle(
        self, source: str, headers: Mapping[str, str], chunks: AsyncIterator[bytes]
    ) -> Reply:
        if source not in self._sources:
            return self._refuse(404, "unknown_source", "other")
        declared = _content_length(headers)
        if declared is not None and declared > self._max_body_bytes:
            return self._refuse(413, "too_large", source, size=declared, close=True)
        secret = self._secrets.get(source)
        if secret is None:
            return self._unauthorized(Failure.UNKNOWN_SOURCE, source)
        try:
            async with asyncio.timeout(self._read_timeout_s):
                body = await self._read(chunks)
        except _TooLarge:
            return self._refuse(413, "too_large", source, size=self._max_body_bytes, close=True)
        except TimeoutError:
            return self._refuse(408, "body_timeout", source, close=True)
        verdict = verify(
            scheme=self._schemes.get(source, "leadloop"),
            secret=secret,
            body=body,
            headers=headers,
            now=self._clock.now(),
            tolerance_s=self._tolerance_s,
        )
        if verdict.reason is not None:
            return self._unauthorized(verdict.reason, source, size=len(body))
        reason = self._prevalidate(source, body)
        if reason is not None:
            return self._refuse(422, reason, source, size=len(body))
        return await self._publish(source, body)

    async def _read(self, chunks: AsyncIterator[bytes]) -> bytes:
        # Content-Length may be absent (chunked) or understated, so count what arrives.
        body = bytearray()
        async for chunk in chunks:
            body += chunk
            if len(body) > self._max_body_bytes:
                raise _TooLarge
        return bytes(body)

    async def _publish(self, source: str, body: bytes) -> Reply:
        if len(self._pending) >= self._max_in_flight:
            return self._refuse(429, "busy", source, size=len(body), retry_after=RETRY_AFTER_BUSY_S)
        headers = [
            ("leadloop-source", source.encode()),
            ("received-at", self._clock.now().isoformat().encode()),
        ]
        task = asyncio.ensure_future(self._publish_raw(record_key(source, body), body, headers))
        self._pending.add(task)
        task.add_done_callback(self._sent)
        try:
            # shield: a timeout answers the caller but does not cancel the send midway.
            await asyncio.wait_for(asyncio.shield(task), self._publish_timeout_s)
        except Exception as exc:  # broker down, timeout, producer not started: retryable
            log.warning(
                "webhook_publish_failed",
                source=source,
                error=type(exc).__name__,
                bytes=len(body),
                in_flight=len(self._pending),
            )
            return Reply(
                503,
                {"error": "unavailable"},
                {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)},
            )
        log.debug("webhook_accepted", source=source, bytes=len(body))
        return Reply(202, {"status": "accepted"})

    def _sent(self, task: asyncio.Future[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled():
            # A failure was answered with 503 (and logged) by ``_publish``; retrieving
            # it here keeps asyncio from reporting it again as never retrieved.
            task.exception()

    def _unauthorized(self, reason: Failure, source: str, *, size: int | None = None) -> Reply:
        reply = self._refuse(401, reason.value, source, size=size)
        reply.headers["WWW-Authenticate"] = _WWW_AUTHENTICATE
        return reply

    def _refuse(
        self,
        status: int,
        reason: str,
        source: str,
        *,
        size: int | None = None,
        retry_after: int | None = None,
        close: bool = False,
    ) -> Reply:
        log.info("webhook_refused", status=status, reason=reason, source=source, bytes=size)
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if close:
            # The unread rest of the body makes the connection unfit for another request.
            headers["Connection"] = "close"
        return Reply(status, {"error": reason}, headers)


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = headers.get("Content-Length", "").strip()
    # aiohttp already refuses a malformed Content-Length; this stays total regardless.
    return int(value) if value.isascii() and value.isdigit() else None


def record_key(source: str, body: bytes) -> bytes | None:
    """``<source>:<source_lead_id>`` when the body names its id, so that every delivery of
    one lead lands on one partition (in order, where ingest deduplicates it); else None."""
    try:
        decoded: Any = json.loads(body.decode("utf-8"))
    except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
        return None
    lead_id = decoded.get("source_lead_id") if isinstance(decoded, dict) else None
    if not isinstance(lead_id, str) or not 0 < len(lead_id) <= MAX_KEY_ID:
        return None
    return f"{source}:{lead_id}".encode()


def register_webhook(app: faust.App, hook: Webhook) -> None:
    """Serve ``POST /v1/leads/{source}`` on ``app``'s web server with ``hook``."""

    class LeadWebhook(faust.web.View):
        async def post(self, request: faust.web.Request, source: str) -> faust.web.Response:
            # faust's web driver is aiohttp; its request streams the body.
            req = cast(web.Request, request)
            reply = await hook.handle(source, req.headers, req.content.iter_any())
            return self.json(reply.body, status=reply.status, headers=dict(reply.headers))

    app.page(PATH, name="lead-webhook")(LeadWebhook)
