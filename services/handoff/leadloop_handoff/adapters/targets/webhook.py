"""The generic signed webhook: any CRM or middleware that can verify an HMAC.

Wire format (docs/crm-targets.md): ``POST {url}`` with a compact UTF-8 JSON body

- ``{"type": "lead.assigned" | "lead.pooled", "id": <idempotency key>, "lead": {...}}``
  where ``lead`` is ``LeadCard.payload()``;
- ``{"type": "lead.erased", "id": "<lead_id>:erased", "lead_id": ...}`` on erasure;

and headers ``X-Leadloop-Timestamp: <unix seconds>``,
``X-Leadloop-Signature: sha256=<hex HMAC-SHA256(secret, b"<timestamp>." + body)>`` and
``Idempotency-Key: <id>``. This is the scheme ingest verifies on its lead webhook
(services/ingest/leadloop_ingest/domain/signatures.py); it is reimplemented here because
services do not import each other. The receiver deduplicates on ``id``.

Replies: 2xx delivered; 429, 5xx, timeouts and connection errors retry (``Retry-After``
in seconds or as an HTTP date is passed on); any other 4xx failed.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from typing import Any

import aiohttp

from leadloop.clock import Clock
from leadloop_handoff.adapters.targets._http import HttpTarget, SessionFactory, generic_attempt
from leadloop_handoff.adapters.targets.config import WebhookConfig
from leadloop_handoff.domain.cards import Attempt, LeadCard

__all__ = ["SIGNATURE", "TIMESTAMP", "WebhookTarget", "event_body", "sign"]

TIMESTAMP = "X-Leadloop-Timestamp"
SIGNATURE = "X-Leadloop-Signature"


def sign(secret: bytes, body: bytes, timestamp: int) -> dict[str, str]:
    """The signature headers for ``body`` sent at ``timestamp`` (unix seconds)."""
    mac = hmac.new(secret, f"{timestamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {TIMESTAMP: str(timestamp), SIGNATURE: f"sha256={mac}"}


def event_body(card: LeadCard) -> dict[str, Any]:
    """The JSON object sent for one assignment (pure)."""
    kind = "lead.pooled" if card.kind == "pooled" else "lead.assigned"
    return {"type": kind, "id": card.idempotency_key, "lead": card.payload()}


def _encode(body: dict[str, Any]) -> bytes:
    # Compact and UTF-8 as is: the MAC covers exactly these bytes.
    return json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()


class WebhookTarget(HttpTarget[WebhookConfig]):
    """A ``Target`` posting signed events to one URL."""

    def __init__(
        self,
        config: WebhookConfig,
        secret: bytes,
        client: aiohttp.ClientSession | SessionFactory,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(config, client, clock)
        self._secret = secret

    @property
    def supports_pool(self) -> bool:
        return True  # the receiver decides what a pooled lead means

    async def upsert(self, card: LeadCard) -> Attempt:
        return await self._post(event_body(card))

    async def _delete(self, lead_id: str) -> Attempt:
        return await self._post(
            {"type": "lead.erased", "id": f"{lead_id}:erased", "lead_id": lead_id}
        )

    async def _post(self, body: dict[str, Any]) -> Attempt:
        raw = _encode(body)
        now = self._clock.now()
        headers = {
            "Content-Type": "application/json; charset=utf-8",
            "Idempotency-Key": str(body["id"]),
            **sign(self._secret, raw, int(now.timestamp())),
        }
        reply = await self._send("POST", self.config.url, content=raw, headers=headers)
        if isinstance(reply, Attempt):
            return reply
        return generic_attempt(reply, self._clock.now())
