"""简道云 (Jiandaoyun): one form entry per lead, found by a lead-id widget.

Verified against the vendor's documentation (searched; see also
/work/shared/vendors-crm.md §3):

- All calls ``POST https://api.jiandaoyun.com/api/v5/app/entry/data/<verb>`` with a
  UTF-8 JSON body and ``Authorization: Bearer <API key>`` (hc.jiandaoyun.com
  ``open/11261``).
- ``data/list`` (30 req/s): ``{app_id, entry_id, fields, filter: {rel: "and", cond:
  [{field, type, method: "eq", value: [..]}]}, limit}`` (``open/14220``).
- ``data/create`` (20 req/s): ``{app_id, entry_id, data: {<widget>: {"value": ..}},
  data_creator?, is_start_workflow?, is_start_trigger?}`` (``open/14222``); the reply's
  ``{"data": {"_id": ..}}`` shape is that of ``data/get`` (``open/14221``) and is
  unconfirmed for create, so a missing ``_id`` is tolerated.
- ``data/update`` (20 req/s): ``{app_id, entry_id, data_id, data, is_start_trigger?}``
  (``open/14224``); ``data/delete`` (20 req/s): ``{app_id, entry_id, data_id}`` →
  ``{"status": "success"}`` (``open/14226``).
- Idempotency: there is no upsert. ``transaction_id`` prevents duplicate creation on
  retry only for ``data/batch_create`` (``open/14223``); on single create it only binds
  uploaded files. So every upsert looks the lead up first (``list`` with ``eq`` on the
  lead-id widget) and then creates or updates: a create whose reply was lost is found
  by the retry and updated, not created twice. The hand-off worker delivers one card
  per lead at a time, so two creates for one lead never race.
- Errors: HTTP 400 with ``{"code": 8303, "msg": …}`` is the rate limit (no
  ``Retry-After``; the official demo sleeps 5 s); 429 is the concurrency limit. Other
  codes (the full table is on ``open/11261``, not reachable here) are failures reported
  by their number.

Mapping: 2xx delivered; code 8303, HTTP 429 and 5xx retry (``8303`` / ``http_<status>``);
any other error failed with the body's ``code`` (or ``http_<status>``); two entries
with the same lead id failed ``duplicate_external_id``. Erase of an absent entry is
delivered ``not_found``.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import aiohttp

from leadloop_handoff.adapters.targets._fields import crm_owner
from leadloop_handoff.adapters.targets._http import (
    HttpTarget,
    Reply,
    SessionFactory,
    delivered,
    first_error_code,
    json_body,
    refused,
)
from leadloop_handoff.adapters.targets.config import JiandaoyunConfig
from leadloop_handoff.domain.cards import Attempt, LeadCard

__all__ = ["RATE_LIMITED", "JiandaoyunTarget", "anonymised_data", "entry_data", "read_reply"]

#: The body code of the rate-limit reply.
RATE_LIMITED = "8303"


def entry_data(card: LeadCard, config: JiandaoyunConfig) -> dict[str, dict[str, Any]]:
    """The entry's ``data`` for ``card`` (pure): ``{widget: {"value": ...}}`` for each
    configured widget; absent values are left out."""
    f = config.fields
    values: dict[str | None, Any] = {
        f.lead_id: card.lead_id,
        f.name: card.name,
        f.email: card.email,
        f.phone: card.phone,
        f.company: card.company,
        f.title: card.title,
        f.message: card.message,
        f.country: card.country,
        f.region: card.region,
        f.city: card.city,
        f.industry: card.industry,
        f.source: card.source,
        f.owner: crm_owner(card, config.owner_ids, config.pool),
        f.team: card.team_id,
        f.priority: card.priority,
        f.score: card.score,
        f.rule: card.rule_id,
        f.returning: "是" if card.is_returning else "否",
    }
    return {k: {"value": v} for k, v in values.items() if k is not None and v is not None}


def anonymised_data(config: JiandaoyunConfig) -> dict[str, dict[str, Any]]:
    """Empty values for every personal-data widget (``on_erase: anonymise``)."""
    f = config.fields
    personal = (f.name, f.email, f.phone, f.company, f.title, f.message, f.city)
    return {w: {"value": ""} for w in personal if w is not None}


def read_reply(response: Reply) -> Attempt:
    """One reply as an Attempt (pure)."""
    status = response.status_code
    body = json_body(response)
    code = first_error_code(body, "code")
    if 200 <= status < 300 and code is None:
        data = body.get("data") if isinstance(body, dict) else None
        return delivered(status, data.get("_id") if isinstance(data, dict) else None)
    if code == RATE_LIMITED:
        return Attempt("retry", status, RATE_LIMITED)
    if status == 429 or status >= 500:
        return Attempt("retry", status, f"http_{status}")
    return refused(status, code)


class JiandaoyunTarget(HttpTarget[JiandaoyunConfig]):
    """A ``Target`` on one 简道云 form."""

    def __init__(
        self, config: JiandaoyunConfig, api_key: str, client: aiohttp.ClientSession | SessionFactory
    ) -> None:
        super().__init__(config, client)
        self._api_key = api_key

    async def upsert(self, card: LeadCard) -> Attempt:
        found = await self._find(card.lead_id)
        if isinstance(found, Attempt):
            return found
        data = entry_data(card, self.config)
        if found is None:
            body: dict[str, Any] = {
                **self._form(),
                "data": data,
                "is_start_workflow": False,
                "is_start_trigger": False,
            }
            if self.config.data_creator is not None:
                body["data_creator"] = self.config.data_creator
            return await self._post("create", body)
        attempt = await self._post("update", {**self._form(), "data_id": found, "data": data})
        return (
            attempt
            if attempt.crm_id or attempt.outcome != "delivered"
            else replace(attempt, crm_id=found)
        )

    async def _delete(self, lead_id: str) -> Attempt:
        return await self._on_entry(lead_id, "delete", {})

    async def _anonymise(self, lead_id: str) -> Attempt:
        return await self._on_entry(lead_id, "update", {"data": anonymised_data(self.config)})

    async def _on_entry(self, lead_id: str, verb: str, extra: dict[str, Any]) -> Attempt:
        """``verb`` on the lead's entry; an absent entry is delivered ``not_found``."""
        found = await self._find(lead_id)
        if isinstance(found, Attempt):
            return found
        if found is None:
            return Attempt("delivered", None, "not_found")
        attempt = await self._post(verb, {**self._form(), "data_id": found, **extra})
        return attempt if attempt.outcome != "delivered" else replace(attempt, crm_id=found)

    def _form(self) -> dict[str, str]:
        return {"app_id": self.config.app_id, "entry_id": self.config.entry_id}

    async def _find(self, lead_id: str) -> str | Attempt | None:
        """The entry's ``_id`` for ``lead_id``; None when absent; an Attempt on error."""
        widget = self.config.fields.lead_id
        body = {
            **self._form(),
            "fields": [widget],
            "filter": {
                "rel": "and",
                "cond": [{"field": widget, "type": "text", "method": "eq", "value": [lead_id]}],
            },
            "limit": 2,
        }
        reply = await self._request("list", body)
        if isinstance(reply, Attempt):
            return reply
        attempt = read_reply(reply)
        if attempt.outcome != "delivered":
            return attempt
        payload = json_body(reply)
        rows = payload.get("data") if isinstance(payload, dict) else None
        if not isinstance(rows, list):
            return Attempt("failed", reply.status_code, "unexpected_reply")
        ids = [r["_id"] for r in rows if isinstance(r, dict) and isinstance(r.get("_id"), str)]
        if len(ids) > 1:
            return Attempt("failed", reply.status_code, "duplicate_external_id")
        return ids[0] if ids else None

    async def _post(self, verb: str, body: dict[str, Any]) -> Attempt:
        reply = await self._request(verb, body)
        return reply if isinstance(reply, Attempt) else read_reply(reply)

    async def _request(self, verb: str, body: dict[str, Any]) -> Reply | Attempt:
        return await self._send(
            "POST",
            f"{self.config.base_url}/api/v5/app/entry/data/{verb}",
            json=body,
            headers={"Authorization": f"Bearer {self._api_key}"},
        )
