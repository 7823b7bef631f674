"""A receiver of leadloop's generic signed CRM webhook (docs/crm-targets.md).

It verifies signatures with ingest's verifier (services/ingest/…/signatures.py, the
scheme the hand-off webhook promises to reuse), so a connector that drifts from the
documented scheme fails here. Shape rules: ``type`` is ``lead.assigned``,
``lead.pooled`` or ``lead.erased``; ``id`` is a non-empty string equal to the
``Idempotency-Key`` header; an assignment carries a ``lead`` object with the card's
keys, an erasure a ``lead_id``; any other top-level key is refused (400). Records are
kept per lead (the highest ``sequence`` wins); a repeated ``id`` is acknowledged again
without a second effect. Rate limit: 429 with ``Retry-After`` (seconds, configurable).
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from tests.fakes.http_fake import HttpFake, json_response, read_json

from leadloop_ingest.domain.signatures import verify

__all__ = ["WebhookFake"]

_LEAD_KEYS = frozenset({
    "lead_id", "assignment_id", "sequence", "kind", "owner_id", "owner_crm_id",
    "previous_owner_id", "team_id", "rule_id", "rule_version", "strategy", "reason", "score",
    "priority", "is_returning", "source", "source_lead_id", "occurred_at", "assigned_at",
    "contact", "routing", "attributes", "idempotency_key",
})  # fmt: skip


class WebhookFake(HttpFake):
    def __init__(
        self,
        secret: bytes,
        *,
        path: str = "/hook",
        rate_per_s: int | None = None,
        retry_after: str | None = "1",
    ) -> None:
        super().__init__(rate_per_s=rate_per_s)
        self.secret = secret
        self.path = path
        self.retry_after = retry_after
        self.records: dict[str, dict[str, Any]] = {}
        self.erased: set[str] = set()
        self._seen: set[str] = set()

    @property
    def endpoint(self) -> str:
        return f"{self.url}{self.path}"

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post(self.path, self._event)

    async def authorized(self, request: web.Request) -> bool:
        body = await request.read()
        verdict = verify(
            scheme="leadloop", secret=self.secret, body=body,
            headers=dict(request.headers), now=datetime.now(UTC),
        )  # fmt: skip
        return verdict.ok

    def unauthorized(self) -> web.Response:
        return json_response({"error": "bad_signature"}, 401)

    def rate_limited(self) -> web.Response:
        headers = {"Retry-After": self.retry_after} if self.retry_after is not None else None
        return json_response({"error": "rate_limited"}, 429, headers)

    def server_error(self, status: int) -> web.Response:
        return web.Response(status=status, text="upstream unavailable")

    def _bad(self, detail: str) -> web.Response:
        return self.reject(
            "schema", json_response({"error": "schema_violation", "detail": detail}, 400)
        )

    async def _event(self, request: web.Request) -> web.Response:
        try:
            event = await read_json(request)
        except ValueError:
            return self._bad("body is not JSON")
        if not isinstance(event, dict):
            return self._bad("body is not an object")
        kind, event_id = event.get("type"), event.get("id")
        if not isinstance(event_id, str) or not event_id:
            return self._bad("id must be a non-empty string")
        if request.headers.get("Idempotency-Key") != event_id:
            return self._bad("Idempotency-Key must equal id")
        if kind == "lead.erased":
            if set(event) != {"type", "id", "lead_id"} or not isinstance(event["lead_id"], str):
                return self._bad("lead.erased takes type, id, lead_id")
            return self._apply_erase(event_id, event["lead_id"])
        if kind not in ("lead.assigned", "lead.pooled"):
            return self._bad("unknown type")
        lead = event.get("lead")
        if set(event) != {"type", "id", "lead"} or not isinstance(lead, dict):
            return self._bad("an assignment takes type, id, lead")
        if set(lead) != _LEAD_KEYS:
            return self._bad("lead keys differ from the card's")
        if not isinstance(lead["sequence"], int) or lead["idempotency_key"] != event_id:
            return self._bad("sequence must be an integer and idempotency_key equal id")
        if (kind == "lead.pooled") != (lead["kind"] == "pooled"):
            return self._bad("type and lead.kind disagree")
        return self._apply_upsert(kind, event_id, lead)

    def _apply_upsert(self, kind: str, event_id: str, lead: dict[str, Any]) -> web.Response:
        if event_id not in self._seen:
            self._seen.add(event_id)
            held = self.records.get(lead["lead_id"])
            if held is None or held["sequence"] <= lead["sequence"]:
                self.records[lead["lead_id"]] = lead
            self.accept(kind, lead["lead_id"], event_id)
        return json_response({"ok": True})

    def _apply_erase(self, event_id: str, lead_id: str) -> web.Response:
        if event_id not in self._seen:
            self._seen.add(event_id)
            self.records.pop(lead_id, None)
            self.erased.add(lead_id)
            self.accept("lead.erased", lead_id, event_id)
        return json_response({"ok": True})
