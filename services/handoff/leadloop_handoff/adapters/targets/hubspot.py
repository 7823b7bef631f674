"""HubSpot: a contact upserted by a unique-value property that holds the leadloop lead id.

Verified against the vendor's documentation (searched; see also
/work/shared/vendors-crm.md §2):

- Auth: a private app's access token as ``Authorization: Bearer <token>``
  (developers.hubspot.com ``developer-tooling/platform/usage-guidelines``).
- Upsert: ``POST /crm/v3/objects/contacts/batch/upsert`` with
  ``{"inputs": [{"idProperty", "id", "properties"}]}``; ``idProperty`` must be a
  property with unique values; the reply is ``{"status": "COMPLETE", "results":
  [{"id", "properties", …, "new"}]}`` and adds ``errors`` / ``numErrors`` on partial
  failure (``api-reference/legacy/crm/objects/contacts/batch/upsert-contacts``; SDK
  model ``SimplePublicObjectBatchInputUpsert``). Property values are sent as strings,
  as the SDK models type them.
- Erase: ``POST /crm/v3/objects/contacts/gdpr-delete`` with ``{"objectId",
  "idProperty"}`` — ``idProperty`` is "the name of a property whose values are unique
  for this object"; the reply has no body (``api-reference/crm-contacts-v3/basic/
  post-crm-v3-objects-contacts-gdpr-delete``). The docs match the brief.
- Errors: ``{"status": "error", "message", "correlationId", "category", "errors"?}``
  (``api-reference/error-handling``); 429 adds ``"errorType": "RATE_LIMIT"`` and
  ``policyName`` (``DAILY`` or the ten-second policy; its exact name,
  ``TEN_SECONDLY_ROLLING``, is unconfirmed) with ``X-HubSpot-RateLimit-*`` headers;
  ``Retry-After`` is not documented, so it is used only when present.

Status mapping: 200/201 delivered (``crm_id`` = the result's ``id``); 207 or a body with
``errors`` failed with the first error's ``category``; 429 retry ``RATE_LIMIT`` (or
``RATE_LIMIT_DAILY`` for the daily policy); 409 failed ``CONFLICT`` (another contact
holds a unique value such as the email); 400/401/403 failed with the ``category``; 5xx
retry ``http_<status>``. On erase 204/200 delivered and 404 delivered ``not_found``.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import aiohttp

from leadloop.clock import Clock
from leadloop_handoff.adapters.targets._fields import crm_owner, split_name
from leadloop_handoff.adapters.targets._http import (
    HttpTarget,
    Reply,
    SessionFactory,
    delivered,
    first_error_code,
    json_body,
    parse_retry_after,
    refused,
)
from leadloop_handoff.adapters.targets.config import HubSpotConfig
from leadloop_handoff.domain.cards import Attempt, LeadCard

__all__ = ["HubSpotTarget", "anonymised_properties", "contact_properties", "read_reply"]

_ERASABLE = (
    "email", "firstname", "lastname", "phone", "company", "jobtitle", "city", "country",
    "state", "message",
)  # fmt: skip


def contact_properties(card: LeadCard, config: HubSpotConfig) -> dict[str, str]:
    """The contact's properties for ``card`` (pure); absent values are left out."""
    first, last = split_name(card.name)
    values: dict[str, str | None] = {
        "email": card.email,
        "firstname": first,
        "lastname": last,
        "phone": card.phone,
        "company": card.company,
        "jobtitle": card.title,
        "city": card.city,
        "country": card.country,
        "state": card.region,
        "industry": card.industry,
        "message": card.message,
        "hubspot_owner_id": crm_owner(card, config.owner_ids, config.pool),
    }
    p = config.properties
    routing: dict[str | None, str] = {
        p.priority: card.priority,
        p.score: str(card.score),
        p.team: card.team_id,
        p.rule: card.rule_id,
        p.returning: "true" if card.is_returning else "false",
    }
    values.update({k: v for k, v in routing.items() if k is not None})
    return {k: v for k, v in values.items() if v is not None}


def anonymised_properties() -> dict[str, str]:
    """Empty strings: HubSpot clears a property set to ""."""
    return dict.fromkeys(_ERASABLE, "")


def _category(body: Any) -> str | None:
    return first_error_code(body, "category")


def read_reply(response: Reply, now: datetime, *, erase: bool = False) -> Attempt:
    """One reply as an Attempt (pure but for the ``now`` it is given)."""
    status = response.status_code
    body = json_body(response)
    if erase and status == 404:
        return Attempt("delivered", status, "not_found")
    if status in (200, 201, 204) and not (isinstance(body, dict) and body.get("errors")):
        return delivered(status, _result_id(body))
    if 200 <= status < 300:  # 207 or errors in a 200: the one input failed
        errors = body.get("errors") if isinstance(body, dict) else None
        return Attempt("failed", status, _category(errors) or "partial_failure")
    if status == 429:
        policy = body.get("policyName") if isinstance(body, dict) else None
        code = "RATE_LIMIT_DAILY" if policy == "DAILY" else "RATE_LIMIT"
        return Attempt(
            "retry", status, code, parse_retry_after(response.headers.get("Retry-After"), now)
        )
    if status >= 500:
        return Attempt("retry", status, f"http_{status}")
    return refused(status, _category(body))


def _result_id(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("results"), list) and body["results"]:
        first = body["results"][0]
        if isinstance(first, dict) and isinstance(first.get("id"), str):
            return str(first["id"])
    return None


class HubSpotTarget(HttpTarget[HubSpotConfig]):
    """A ``Target`` on one HubSpot account (private app token)."""

    def __init__(
        self,
        config: HubSpotConfig,
        token: str,
        client: aiohttp.ClientSession | SessionFactory,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(config, client, clock)
        self._token = token

    async def upsert(self, card: LeadCard) -> Attempt:
        return await self._upsert(card.lead_id, contact_properties(card, self.config))

    async def _delete(self, lead_id: str) -> Attempt:
        body = {"objectId": lead_id, "idProperty": self.config.id_property}
        return await self._post("/crm/v3/objects/contacts/gdpr-delete", body, erase=True)

    async def _anonymise(self, lead_id: str) -> Attempt:
        return await self._upsert(lead_id, anonymised_properties())

    async def _upsert(self, lead_id: str, properties: dict[str, str]) -> Attempt:
        body = {
            "inputs": [
                {"idProperty": self.config.id_property, "id": lead_id, "properties": properties}
            ]
        }
        return await self._post("/crm/v3/objects/contacts/batch/upsert", body, erase=False)

    async def _post(self, path: str, body: dict[str, Any], *, erase: bool) -> Attempt:
        reply = await self._send(
            "POST",
            f"{self.config.base_url}{path}",
            json=body,
            headers={"Authorization": f"Bearer {self._token}"},
        )
        if isinstance(reply, Attempt):
            return reply
        return read_reply(reply, self._clock.now(), erase=erase)
