"""CRM feedback over signed HTTP, ``POST /v1/crm/{activities,stage-changes,reps}``, served
by ingest's faust web server.

The body is one event or a JSON array of 1..500; ``domain.feedback.judge`` decides on
all of it before anything is sent. All-or-nothing: either every item is valid and the
whole batch is published (acks=all) and the reply is 202 ``{"accepted": n}``, or nothing
is published. What the caller gets back:

| status | body | when |
|---|---|---|
| 202 | ``{"accepted": n}`` | all ``n`` items are on the topic, acknowledged (acks=all) |
| 404 | ``{"error": "unknown_feedback"}`` | the path names no feedback topic |
| 401 | ``{"error": ...}`` | ``unknown_client`` (X-Leadloop-Client absent or unknown), or |
| | | a ``signatures.Failure``: missing, malformed, wrong or stale signature |
| 413 | ``{"error": "too_large" / "too_many_items"}`` | body over the byte limit / over 500 items |
| 408 | ``{"error": "body_timeout"}`` | the body did not arrive in time |
| 422 | ``{"error": ..., "detail": ...}`` | the body is not JSON, not events, or an empty array |
| 422 | ``{"errors": [{"index", "reason", "detail"}]}`` | one entry per invalid item |
| 429 | ``{"error": "busy"}`` | too many requests already waiting on Kafka (``Retry-After``) |
| 503 | ``{"error": "unavailable"}`` | Kafka did not acknowledge in time (``Retry-After``) |

Signatures are the lead webhook's ``leadloop`` scheme (timestamp window included) with the
secret of the client named by ``X-Leadloop-Client``. A batch is sent as one produce
batch but Kafka does not make it atomic: after a 503 some items may have arrived. The
client's retry sends them again, which consumers recognise by ``event_id`` (activities,
stage changes) or, on the compacted roster, simply overwrite (reps).

Logs carry status and reason codes, configured client ids, counts and sizes only: never
a body or a header value.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, cast

import faust
from aiohttp import web
from pydantic import SecretStr

from leadloop.clock import Clock
from leadloop.logging import get_logger
from leadloop.messaging import OutMessage
from leadloop_ingest.domain.feedback import FEEDBACK_TOPICS, MAX_ITEMS, Refusal, judge
from leadloop_ingest.domain.signatures import DEFAULT_TOLERANCE_S, verify

__all__ = ["CLIENT", "CLIENT_HEADER", "PATH", "Feedback", "FeedbackReply", "register_feedback"]

log = get_logger(__name__)

PATH = "/v1/crm/{kind}"
#: Names the CRM client whose secret signed the request.
CLIENT = "X-Leadloop-Client"
#: The Kafka header that tells consumers and humans which client sent a record.
CLIENT_HEADER = "leadloop-client"

#: Sends every message and returns once the broker acknowledged all of them (acks=all);
#: raises if any could not be delivered (``leadloop.messaging.Publisher.publish``).
Publish = Callable[[Sequence[OutMessage]], Awaitable[None]]

RETRY_AFTER_BUSY_S = 1
RETRY_AFTER_UNAVAILABLE_S = 5
_WWW_AUTHENTICATE = 'HMAC-SHA256 realm="leadloop-crm"'


@dataclass(frozen=True, slots=True)
class FeedbackReply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class _TooLarge(Exception):
    pass


class Feedback:
    """The feedback endpoints' decisions and their Kafka hand-off, independent of the web
    framework (like ``adapters.http.Webhook``)."""

    def __init__(
        self,
        *,
        publish: Publish,
        secrets: Mapping[str, SecretStr],
        clock: Clock,
        tolerance_s: int = DEFAULT_TOLERANCE_S,
        max_body_bytes: int = 1024 * 1024,
        max_items: int = MAX_ITEMS,
        max_in_flight: int = 1000,
        publish_timeout_s: float = 10.0,
        read_timeout_s: float = 10.0,
    ) -> None:
        self._publish = publish
        self._secrets = {c: v.get_secret_value().encode() for c, v in secrets.items()}
        self._clock = clock
        self._tolerance_s = tolerance_s
        self._max_body_bytes = max_body_bytes
        self._max_items = max_items
        self._max_in_flight = max_in_flight
        self._publish_timeout_s = publish_timeout_s
        self._read_timeout_s = read_timeout_s
        # Batches not yet acknowledged, including those whose caller already got a 503;
        # asyncio keeps only weak references to tasks, so this set keeps them alive.
        self._pending: set[asyncio.Future[None]] = set()

    @property
    def in_flight(self) -> int:
        return len(self._pending)

    async def handle(
        self, kind: str, headers: Mapping[str, str], chunks: AsyncIterator[bytes]
    ) -> FeedbackReply:
        topic = FEEDBACK_TOPICS.get(kind)
        if topic is None:
            return self._refuse(404, "unknown_feedback", "other", "other")
        declared = _content_length(headers)
        if declared is not None and declared > self._max_body_bytes:
            return self._refuse(413, "too_large", topic, "?", size=declared, close=True)
        client = _header(headers, CLIENT)
        secret = self._secrets.get(client)
        if secret is None:
            # An unconfigured id is logged as "other": header values are never logged.
            return self._unauthorized("unknown_client", topic, "other")
        try:
            async with asyncio.timeout(self._read_timeout_s):
                body = await self._read(chunks)
        except _TooLarge:
            size = self._max_body_bytes
            return self._refuse(413, "too_large", topic, client, size=size, close=True)
        except TimeoutError:
            return self._refuse(408, "body_timeout", topic, client, close=True)
        verdict = verify(
            scheme="leadloop",
            secret=secret,
            body=body,
            headers=headers,
            now=self._clock.now(),
            tolerance_s=self._tolerance_s,
        )
        if verdict.reason is not None:
            return self._unauthorized(verdict.reason.value, topic, client, size=len(body))
        decision = judge(topic, body, max_items=self._max_items)
        if isinstance(decision, Refusal):
            log.info(
                "crm_feedback_refused",
                status=decision.status,
                reason=decision.code,
                invalid_items=len(decision.errors),
                topic=topic,
                client=client,
                bytes=len(body),
            )
            return FeedbackReply(decision.status, decision.body())
        messages = [
            OutMessage(topic=topic, key=item.key, value=item.value, headers=self._headers(client))
            for item in decision.items
        ]
        return await self._send(topic, client, messages, len(body))

    def _headers(self, client: str) -> tuple[tuple[str, bytes], ...]:
        return (
            (CLIENT_HEADER, client.encode()),
            ("received-at", self._clock.now().isoformat().encode()),
        )

    async def _read(self, chunks: AsyncIterator[bytes]) -> bytes:
        # Content-Length may be absent (chunked) or understated, so count what arrives.
        body = bytearray()
        async for chunk in chunks:
            body += chunk
            if len(body) > self._max_body_bytes:
                raise _TooLarge
        return bytes(body)

    async def _send(
        self, topic: str, client: str, messages: list[OutMessage], size: int
    ) -> FeedbackReply:
        if len(self._pending) >= self._max_in_flight:
            return self._refuse(
                429, "busy", topic, client, size=size, retry_after=RETRY_AFTER_BUSY_S
            )
        task = asyncio.ensure_future(self._publish(messages))
        self._pending.add(task)
        task.add_done_callback(self._sent)
        try:
            # shield: a timeout answers the caller but does not cancel the send midway.
            await asyncio.wait_for(asyncio.shield(task), self._publish_timeout_s)
        except Exception as exc:  # broker down, timeout, producer not started: retryable
            log.warning(
                "crm_feedback_publish_failed",
                topic=topic,
                client=client,
                error=type(exc).__name__,
                items=len(messages),
                in_flight=len(self._pending),
            )
            return FeedbackReply(
                503, {"error": "unavailable"}, {"Retry-After": str(RETRY_AFTER_UNAVAILABLE_S)}
            )
        log.debug("crm_feedback_accepted", topic=topic, client=client, items=len(messages))
        return FeedbackReply(202, {"accepted": len(messages)})

    def _sent(self, task: asyncio.Future[None]) -> None:
        self._pending.discard(task)
        if not task.cancelled():
            # A failure was answered with 503 (and logged) by ``_send``; retrieving it
            # here keeps asyncio from reporting it again as never retrieved.
            task.exception()

    def _unauthorized(
        self, reason: str, topic: str, client: str, *, size: int | None = None
    ) -> FeedbackReply:
        reply = self._refuse(401, reason, topic, client, size=size)
        reply.headers["WWW-Authenticate"] = _WWW_AUTHENTICATE
        return reply

    def _refuse(
        self,
        status: int,
        reason: str,
        topic: str,
        client: str,
        *,
        size: int | None = None,
        retry_after: int | None = None,
        close: bool = False,
    ) -> FeedbackReply:
        log.info(
            "crm_feedback_refused",
            status=status,
            reason=reason,
            topic=topic,
            client=client,
            bytes=size,
        )
        headers: dict[str, str] = {}
        if retry_after is not None:
            headers["Retry-After"] = str(retry_after)
        if close:
            # The unread rest of the body makes the connection unfit for another request.
            headers["Connection"] = "close"
        return FeedbackReply(status, {"error": reason}, headers)


def _header(headers: Mapping[str, str], name: str) -> str:
    # aiohttp's headers are case-insensitive already; a plain dict (tests) may not be.
    value = headers.get(name)
    if value is None:
        value = next((v for k, v in headers.items() if k.lower() == name.lower()), "")
    return value.strip()


def _content_length(headers: Mapping[str, str]) -> int | None:
    value = _header(headers, "Content-Length")
    # aiohttp already refuses a malformed Content-Length; this stays total regardless.
    return int(value) if value.isascii() and value.isdigit() else None


def register_feedback(app: faust.App, hook: Feedback) -> None:
    """Serve ``POST /v1/crm/{activities,stage-changes,reps}`` on ``app``'s web server."""

    class CrmFeedback(faust.web.View):
        async def post(self, request: faust.web.Request, kind: str) -> faust.web.Response:
            # faust's web driver is aiohttp; its request streams the body.
            req = cast(web.Request, request)
            reply = await hook.handle(kind, req.headers, req.content.iter_any())
            return self.json(reply.body, status=reply.status, headers=dict(reply.headers))

    app.page(PATH, name="crm-feedback")(CrmFeedback)
