"""CRM feedback over signed HTTP, ``POST /v1/crm/{activities,stage-changes,satisfaction,reps}``,
served by ingest's faust web server.

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
| 409 | ``{"error": "replayed"}`` | this signed request was delivered before |
| 429 | ``{"error": "busy"}`` | too many requests already waiting on Kafka (``Retry-After``) |
| 503 | ``{"error": "unavailable"}`` | Kafka did not acknowledge in time (``Retry-After``) |

Signatures are the lead webhook's ``leadloop`` scheme (timestamp window included) with the
secret of the client named by ``X-Leadloop-Client``. A batch is sent as one produce
batch but Kafka does not make it atomic: after a 503 some items may have arrived. The
client's retry sends them again, which consumers recognise by ``event_id`` (activities,
stage changes, satisfaction scores) or, on the compacted roster, simply overwrite (reps).

Logs carry status and reason codes, configured client ids, counts and sizes only: never
a body or a header value.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from typing import Unpack

import faust
from pydantic import SecretStr

from leadloop.clock import Clock
from leadloop.logging import get_logger
from leadloop.messaging import OutMessage
from leadloop_ingest.adapters.intake_http import (
    Intake,
    Limits,
    Replays,
    Reply,
    header,
    serve_post,
)
from leadloop_ingest.domain.feedback import FEEDBACK_TOPICS, MAX_ITEMS, Refusal, judge

__all__ = ["CLIENT", "CLIENT_HEADER", "PATH", "Feedback", "register_feedback"]

log = get_logger(__name__)

PATH = "/v1/crm/{kind}"
#: Names the CRM client whose secret signed the request.
CLIENT = "X-Leadloop-Client"
#: The Kafka header that tells consumers and humans which client sent a record.
CLIENT_HEADER = "leadloop-client"

#: Sends every message and returns once the broker acknowledged all of them (acks=all);
#: raises if any could not be delivered (``leadloop.messaging.Publisher.publish``).
Publish = Callable[[Sequence[OutMessage]], Awaitable[None]]


class Feedback:
    """The feedback endpoints' decisions and their Kafka hand-off, independent of the web
    framework (like ``adapters.http.Webhook``)."""

    def __init__(
        self,
        *,
        publish: Publish,
        secrets: Mapping[str, SecretStr],
        clock: Clock,
        max_items: int = MAX_ITEMS,
        replays: Replays | None = None,
        **limits: Unpack[Limits],
    ) -> None:
        self._publish = publish
        self._secrets = {c: v.get_secret_value().encode() for c, v in secrets.items()}
        self._clock = clock
        self._max_items = max_items
        limits.setdefault("max_body_bytes", 1024 * 1024)  # a batch of up to 500 events
        self._intake = Intake(
            refused="crm_feedback_refused",
            publish_failed="crm_feedback_publish_failed",
            realm='HMAC-SHA256 realm="leadloop-crm"',
            clock=clock,
            replays=replays,
            **limits,
        )

    @property
    def in_flight(self) -> int:
        return self._intake.in_flight

    async def handle(
        self, kind: str, headers: Mapping[str, str], chunks: AsyncIterator[bytes]
    ) -> Reply:
        intake = self._intake
        topic = FEEDBACK_TOPICS.get(kind)
        if topic is None:
            return intake.refuse(404, "unknown_feedback", {"topic": "other", "client": "other"})
        if refused := intake.declared_too_large(headers, {"topic": topic, "client": "?"}):
            return refused
        client = header(headers, CLIENT)
        secret = self._secrets.get(client)
        if secret is None:
            # An unconfigured id is logged as "other": header values are never logged.
            return intake.refuse(401, "unknown_client", {"topic": topic, "client": "other"})
        context = {"topic": topic, "client": client}
        body = await intake.read(chunks, context)
        if isinstance(body, Reply):
            return body
        if refused := intake.verify("leadloop", secret, body, headers, context):
            return refused
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
            return Reply(decision.status, decision.body())
        reserved = await intake.reserve("leadloop", f"crm:{client}", headers, context)
        if isinstance(reserved, Reply):
            return reserved
        received = (
            (CLIENT_HEADER, client.encode()),
            ("received-at", self._clock.now().isoformat().encode()),
        )
        messages = [
            OutMessage(topic=topic, key=item.key, value=item.value, headers=received)
            for item in decision.items
        ]
        if refused := await intake.publish(
            lambda: self._publish(messages),
            context,
            size=len(body),
            counts={"items": len(messages)},
            reserved=reserved,
        ):
            return refused
        log.debug("crm_feedback_accepted", topic=topic, client=client, items=len(messages))
        return Reply(202, {"accepted": len(messages)})


def register_feedback(app: faust.App, hook: Feedback) -> None:
    """Serve ``POST /v1/crm/{activities,stage-changes,satisfaction,reps}`` on ``app``'s web
    server."""
    serve_post(app, PATH, "crm-feedback", hook.handle)
