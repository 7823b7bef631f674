"""Meta Lead Ads end to end on the lead webhook's own URL, ``/v1/leads/{source}``, for
the channels configured as Meta lead ads (adapter ``lead_ads``, signature ``meta``).

- ``GET``: Meta's subscription handshake. ``hub.mode=subscribe`` with our verify token
  is answered 200 with ``hub.challenge`` as plain text; anything else 403.
- ``POST`` of Meta's envelope (``{"object": "page", "entry": [{"changes": [{"field":
  "leadgen", "value": {"leadgen_id", …}}]}]}``), signed ``X-Hub-Signature-256`` with the
  app secret (the source's webhook secret): the webhook carries only ids, so each lead
  is read from the Graph API (``GET {graph}/{version}/{leadgen_id}`` with the page
  token and ``appsecret_proof``), then Meta's lead JSON goes onto ``leads.raw`` keyed
  ``<source>:<leadgen_id>`` with the ``leadloop-source`` header, exactly as the
  webhook publishes: the ``lead_ads`` channel adapter maps ``field_data`` and the agent
  validates and deduplicates (``source_lead_id`` = ``leadgen_id``). 200 only after
  every lead of the batch is acknowledged (acks=all).
- A Graph failure fails the whole batch before anything is published: 503 (with
  ``Retry-After`` when throttled) or 502, so that Meta delivers it again; Meta retries a
  failed delivery for up to 36 hours and then drops it. Leads already published by an
  earlier attempt are duplicates by (``source``, ``source_lead_id``).
- Meta signs no timestamp, so a captured envelope verifies forever: each signed envelope
  is reserved in the replay cache (``Replays``) before the Graph is read, and a second
  delivery is refused 409 ``replayed`` for the retention (seven days by default, beyond
  Meta's 36 hours of retries). A 502/503 of ours releases it: Meta's retry gets through.
- Any other POST body (a lead in the contract shape) is the ordinary webhook's.

Logs carry Graph error codes, the problem class and Meta's trace id; never a token, a
URL with its query, a message text or any answer of the lead form.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Mapping
from typing import Any, cast

import faust
import httpx
from aiohttp import web
from pydantic import SecretStr

from leadloop.clock import Clock
from leadloop.logging import get_logger
from leadloop_ingest.adapters.http import PATH, REALM, PublishRaw, Webhook
from leadloop_ingest.adapters.intake_http import (
    Replays,
    Reply,
    TooLarge,
    read_body,
    refusal,
    reply_json,
    signed_parts,
    unavailable,
)
from leadloop_ingest.domain.intake import SOURCE_HEADER
from leadloop_ingest.domain.leadgen import (
    GraphFailure,
    GraphProblem,
    LeadgenChange,
    challenge,
    classify_graph_error,
    graph_lead_url,
    is_envelope,
    lead_record,
    leadgen_changes,
)
from leadloop_ingest.domain.replays import REPLAYED
from leadloop_ingest.domain.signatures import verify

__all__ = ["MetaLeadAds", "register_lead_webhooks"]

log = get_logger(__name__)

#: Meta sends up to 1,000 changes per delivery; well below a megabyte.
MAX_ENVELOPE_BYTES = 1024 * 1024
RETRY_AFTER_THROTTLED_S = 60
#: The log event of every refused envelope (status, reason, source).
REFUSED = "meta_webhook_refused"


class MetaLeadAds:
    """The Meta side of ``/v1/leads/{source}``; other requests go to ``webhook``."""

    def __init__(
        self,
        *,
        webhook: Webhook,
        sources: frozenset[str],
        app_secrets: Mapping[str, SecretStr],
        verify_token: SecretStr,
        access_token: SecretStr,
        graph_url: str,
        graph_version: str,
        http: httpx.AsyncClient,
        publish_raw: PublishRaw,
        clock: Clock,
        publish_timeout_s: float = 10.0,
        max_concurrent_fetches: int = 8,
        replays: Replays | None = None,
    ) -> None:
        self._replays = replays
        self._webhook = webhook
        self._sources = sources
        self._secrets = {s: v.get_secret_value().encode() for s, v in app_secrets.items()}
        self._verify_token = verify_token.get_secret_value()
        self._token = access_token.get_secret_value()
        self._graph_url = graph_url
        self._version = graph_version
        self._http = http
        self._publish_raw = publish_raw
        self._clock = clock
        self._publish_timeout_s = publish_timeout_s
        self._gate = asyncio.Semaphore(max_concurrent_fetches)

    def handshake(self, source: str, params: Mapping[str, str]) -> tuple[int, str]:
        if source not in self._sources:
            return 404, "unknown_source"
        echo = challenge(params, self._verify_token)
        if echo is None:
            log.info("meta_handshake_refused", source=source)
            return 403, "forbidden"
        log.info("meta_handshake_ok", source=source)
        return 200, echo

    async def post(
        self, source: str, headers: Mapping[str, str], chunks: AsyncIterator[bytes]
    ) -> Reply:
        if source not in self._sources:
            return await self._webhook.handle(source, headers, chunks)
        try:
            body = await read_body(chunks, max_bytes=MAX_ENVELOPE_BYTES)
        except TooLarge:
            return refusal(413, "too_large", log_as=REFUSED, source=source)
        decoded: Any
        try:
            decoded = json.loads(body.decode("utf-8"))
        except (ValueError, RecursionError):
            decoded = None
        if not is_envelope(decoded):
            return await self._webhook.handle(source, headers, _once(body))
        verdict = verify(
            scheme="meta",
            secret=self._secrets.get(source),
            body=body,
            headers=headers,
            now=self._clock.now(),
        )
        if verdict.reason is not None:
            return refusal(401, verdict.reason.value, log_as=REFUSED, source=source, realm=REALM)
        changes = leadgen_changes(decoded)
        if changes is None:
            return refusal(400, "invalid_envelope", log_as=REFUSED, source=source)
        if self._replays is None:
            return await self._deliver(source, changes)
        signature, _ = signed_parts("meta", headers)
        reserved = await self._replays.reserve(
            scope=f"meta:{source}", signature=signature, signed_at=None, tolerance_s=0
        )
        if isinstance(reserved, Reply):
            if reserved.status == 409:
                log.info(REFUSED, status=409, reason=REPLAYED, source=source)
            return reserved
        reply = await self._deliver(source, changes)
        if reply.status >= 300:
            # Our failure (Graph or broker): Meta delivers again, which is no replay.
            await self._replays.release(reserved)
        return reply

    async def _deliver(self, source: str, changes: list[LeadgenChange]) -> Reply:
        fetched = await asyncio.gather(*(self._fetch(source, c) for c in changes))
        failures = [f for f in fetched if isinstance(f, GraphFailure)]
        if failures:
            throttled = any(f.problem is GraphProblem.RATE_LIMIT for f in failures)
            transient = {GraphProblem.RATE_LIMIT, GraphProblem.TRANSIENT, GraphProblem.UNAVAILABLE}
            status = 503 if all(f.problem in transient for f in failures) else 502
            retry_after = RETRY_AFTER_THROTTLED_S if throttled else None
            problem = failures[0].problem.value
            return refusal(status, problem, log_as=REFUSED, source=source, retry_after=retry_after)
        received_at = self._clock.now().isoformat().encode()
        sends = [
            self._publish_raw(
                f"{source}:{change.leadgen_id}".encode(),
                cast(bytes, record),
                [(SOURCE_HEADER, source.encode()), ("received-at", received_at)],
            )
            for change, record in zip(changes, fetched, strict=True)
        ]
        try:
            await asyncio.wait_for(asyncio.gather(*sends), self._publish_timeout_s)
        except Exception as exc:  # broker down or slow: Meta delivers again
            log.warning("meta_publish_failed", source=source, error=type(exc).__name__)
            return unavailable()
        log.info("meta_leads_published", source=source, leads=len(changes))
        return Reply(200, {"status": "accepted", "leads": str(len(changes))})

    async def _fetch(self, source: str, change: LeadgenChange) -> bytes | GraphFailure:
        url = graph_lead_url(
            self._graph_url,
            self._version,
            change.leadgen_id,
            self._token,
            self._secrets.get(source),
        )
        async with self._gate:
            try:
                response = await self._http.get(url)
            except httpx.HTTPError as exc:
                failure = GraphFailure(GraphProblem.UNAVAILABLE, None)
                log.warning("meta_graph_unreachable", source=source, error=type(exc).__name__)
                return failure
        if response.status_code != 200:
            failure = classify_graph_error(response.status_code, response.content)
        else:
            result = lead_record(response.content, change.leadgen_id)
            if isinstance(result, bytes):
                return result
            failure = result
        log.warning(
            "meta_graph_error",
            source=source,
            problem=failure.problem.value,
            status=failure.status,
            code=failure.code,
            subcode=failure.subcode,
            fbtrace_id=failure.fbtrace_id,
        )
        return failure


async def _once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def register_lead_webhooks(app: faust.App, webhook: Webhook, meta: MetaLeadAds) -> None:
    """Serve ``GET`` and ``POST /v1/leads/{source}``: Meta's handshake and envelopes for
    its sources, the ordinary webhook for every other request. Used instead of
    ``register_webhook`` when Meta lead ads are configured."""

    class LeadWebhook(faust.web.View):
        async def get(self, request: faust.web.Request, source: str) -> faust.web.Response:
            req = cast(web.Request, request)
            status, text = meta.handshake(source, req.query)
            return self.text(text, content_type="text/plain", status=status)

        async def post(self, request: faust.web.Request, source: str) -> faust.web.Response:
            req = cast(web.Request, request)
            return reply_json(self, await meta.post(source, req.headers, req.content.iter_any()))

    app.page(PATH, name="lead-webhook")(LeadWebhook)
