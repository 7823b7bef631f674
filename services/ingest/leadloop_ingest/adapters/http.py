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
| 409 | ``replayed`` | this signed request was delivered before (``domain.replays``) |
| 429 | ``busy`` | too many requests already waiting on Kafka (``Retry-After``) |
| 503 | ``unavailable`` | Kafka did not acknowledge in time or failed (``Retry-After``) |

Never a 2xx before the broker acknowledged. A 503 after a timeout leaves the send
running, so the record may still arrive; the channel's retry is then a duplicate, which
ingest recognises by (``source``, ``source_lead_id``); a 429 or 503 releases the
request's replay reservation first, so that retry is not taken for a replay. A second
delivery of a request that was accepted is refused (409) for as long as it could verify:
its signed timestamp + the tolerance, or the retention for the ``meta`` scheme, which has
no timestamp.

Logs carry status codes, reason codes, configured source ids and sizes only: never a
body or a header value (bodies hold personal data, headers hold signatures).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from typing import Any, Unpack

import faust
from pydantic import SecretStr

from leadloop.clock import Clock
from leadloop.logging import get_logger
from leadloop_ingest.adapters.intake_http import Intake, Limits, Replays, Reply, serve_post
from leadloop_ingest.domain.intake import SOURCE_HEADER
from leadloop_ingest.domain.signatures import Failure, Scheme

__all__ = [
    "PATH",
    "REALM",
    "Prevalidate",
    "PublishRaw",
    "Reply",
    "Webhook",
    "record_key",
    "register_webhook",
]

log = get_logger(__name__)

PATH = "/v1/leads/{source}"
#: ``WWW-Authenticate`` of every 401 on ``PATH``.
REALM = 'HMAC-SHA256 realm="leadloop-webhook"'

#: Sends one record (key, value, headers) to ``leads.raw``; returns once the broker
#: acknowledged it (acks=all) and raises if it could not be delivered.
PublishRaw = Callable[[bytes | None, bytes, list[tuple[str, bytes]]], Awaitable[None]]
#: (source, raw body) -> a reason code when the body can never become a lead, else None.
Prevalidate = Callable[[str, bytes], str | None]

#: Longest ``source_lead_id`` used in a record key (the contract's limit for the field).
MAX_KEY_ID = 128


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
        replays: Replays | None = None,
        **limits: Unpack[Limits],
    ) -> None:
        self._publish_raw = publish_raw
        self._secrets = {s: v.get_secret_value().encode() for s, v in secrets.items()}
        self._schemes = dict(schemes)
        self._sources = sources
        self._prevalidate = prevalidate
        self._clock = clock
        self._intake = Intake(
            refused="webhook_refused",
            publish_failed="webhook_publish_failed",
            realm=REALM,
            clock=clock,
            replays=replays,
            **limits,
        )

    @property
    def in_flight(self) -> int:
        return self._intake.in_flight

    async def handle(
        self, source: str, headers: Mapping[str, str], chunks: AsyncIterator[bytes]
    ) -> Reply:
        intake = self._intake
        if source not in self._sources:
            return intake.refuse(404, "unknown_source", {"source": "other"})
        context = {"source": source}
        if refused := intake.declared_too_large(headers, context):
            return refused
        secret = self._secrets.get(source)
        if secret is None:
            return intake.refuse(401, Failure.UNKNOWN_SOURCE.value, context)
        body = await intake.read(chunks, context)
        if isinstance(body, Reply):
            return body
        scheme = self._schemes.get(source, "leadloop")
        if refused := intake.verify(scheme, secret, body, headers, context):
            return refused
        reason = self._prevalidate(source, body)
        if reason is not None:
            return intake.refuse(422, reason, context, size=len(body))
        reserved = await intake.reserve(scheme, f"lead:{source}", headers, context)
        if isinstance(reserved, Reply):
            return reserved
        record_headers = [
            (SOURCE_HEADER, source.encode()),
            ("received-at", self._clock.now().isoformat().encode()),
        ]
        key = record_key(source, body)
        if refused := await intake.publish(
            lambda: self._publish_raw(key, body, record_headers),
            context,
            size=len(body),
            counts={"bytes": len(body)},
            reserved=reserved,
        ):
            return refused
        log.debug("webhook_accepted", source=source, bytes=len(body))
        return Reply(202, {"status": "accepted"})


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
    serve_post(app, PATH, "lead-webhook", hook.handle)
