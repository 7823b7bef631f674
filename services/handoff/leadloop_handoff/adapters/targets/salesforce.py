"""Salesforce: a Lead upserted by an external-id field that holds the leadloop lead id.

Verified against the vendor's documentation (searched; see also
/work/shared/vendors-crm.md §1):

- Token: OAuth 2.0 client credentials, ``POST {login_url}/services/oauth2/token`` with a
  form body ``grant_type=client_credentials&client_id=…&client_secret=…``; the reply
  carries ``access_token`` and ``instance_url`` (help.salesforce.com
  ``xcloud.remoteaccess_oauth_client_credentials_flow.htm``). No refresh token is
  issued, so a 401 ``INVALID_SESSION_ID`` means: fetch a new token, retry once.
  The token-error body ``{"error", "error_description"}`` is the OAuth 2.0 (RFC 6749
  §5.2) shape; Salesforce's own page does not show it (unconfirmed).
- Upsert: ``PATCH /services/data/vXX.X/sobjects/Lead/{field}/{value}`` — 201 created,
  200 updated (v46+; 204 with no body before), 300 when the external id matches
  several records and nothing is written; the body must not contain ``Id`` or the
  external-id field (developer.salesforce.com ``api_rest`` ``dome_upsert.htm``,
  ``resources_sobject_upsert_patch.htm``).
- Delete: the same "sObject Rows by External ID" resource accepts ``DELETE``
  (``resources_sobject_upsert.htm``: "HEAD, GET, PATCH, DELETE"); 204 deleted; 404 is
  treated as delivered (already gone).
- Errors: a JSON array ``[{"message", "errorCode", "fields"?}]``; 403
  ``REQUEST_LIMIT_EXCEEDED`` is the org's API limit, with no ``Retry-After`` documented
  (``errorcodes.htm``), so ``retry_after_s`` stays None and the retry policy decides.

Status mapping: 200/201/204 delivered (``crm_id`` from the body's ``id``); 300 failed
``duplicate_external_id``; 401 after one refresh failed; 403 REQUEST_LIMIT_EXCEEDED
retry; 400/403/404/409/412/414/428/431 failed with the ``errorCode``; 420, 429 and 5xx
retry ``http_<status>``.
"""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import quote

import aiohttp

from leadloop.clock import Clock
from leadloop_handoff.adapters.targets._fields import crm_owner, split_name, truncate
from leadloop_handoff.adapters.targets._http import (
    HttpTarget,
    Reply,
    SessionFactory,
    delivered,
    first_error_code,
    json_body,
    refused,
)
from leadloop_handoff.adapters.targets.config import SalesforceConfig
from leadloop_handoff.domain.cards import Attempt, LeadCard

__all__ = ["SalesforceTarget", "anonymised_fields", "lead_fields", "read_reply"]

UNKNOWN_NAME = "(unknown)"
NO_COMPANY = "(none)"
ERASED = "(erased)"

# Standard Lead field lengths (Salesforce Object Reference, Lead): a longer value makes
# the whole upsert fail with STRING_TOO_LONG.
_LIMITS = {
    "FirstName": 40,
    "LastName": 80,
    "Company": 255,
    "Email": 80,
    "Phone": 40,
    "Title": 128,
    "Description": 32000,
    "LeadSource": 40,
    "City": 40,
    "State": 80,
    "Country": 80,
    "Industry": 40,
}


def lead_fields(card: LeadCard, config: SalesforceConfig) -> dict[str, Any]:
    """The Lead's fields for ``card`` (pure). Absent values are left out, so an update
    never clears what a rep typed in Salesforce; LastName and Company, required on
    create, get placeholders."""
    first, last = split_name(card.name)
    values: dict[str, Any] = {
        "FirstName": first,
        "LastName": last or UNKNOWN_NAME,
        "Company": card.company or NO_COMPANY,
        "Email": card.email,
        "Phone": card.phone,
        "Title": card.title,
        "Description": card.message,
        "LeadSource": card.source,
        "City": card.city,
        "State": card.region,
        "Country": card.country,
        "Industry": card.industry,
        "OwnerId": crm_owner(card, config.owner_ids, config.pool),
    }
    fields = {
        k: truncate(v, _LIMITS[k]) if k in _LIMITS else v
        for k, v in values.items()
        if v is not None
    }
    custom = config.custom_fields
    routing: dict[str | None, Any] = {
        custom.priority: card.priority,
        custom.score: card.score,
        custom.rule: card.rule_id,
        custom.returning: card.is_returning,
    }
    fields.update({k: v for k, v in routing.items() if k is not None})
    return fields


def anonymised_fields(config: SalesforceConfig) -> dict[str, Any]:
    """The fields that overwrite a lead's personal data (``on_erase: anonymise``)."""
    return {
        "FirstName": None,
        "LastName": ERASED,
        "Company": ERASED,
        "Email": None,
        "Phone": None,
        "Title": None,
        "Description": None,
        "City": None,
        "State": None,
        "Country": None,
    }


def read_reply(response: Reply, *, erase: bool = False) -> Attempt:
    """One reply of the REST API as an Attempt (pure; see the module's status table)."""
    status = response.status_code
    body = json_body(response)
    if status in (200, 201, 204):
        return delivered(status, body.get("id") if isinstance(body, dict) else None)
    if erase and status == 404:
        return Attempt("delivered", status, "not_found")
    if status == 300:
        return Attempt("failed", status, "duplicate_external_id")
    code = first_error_code(body, "errorCode")
    if status == 403 and code == "REQUEST_LIMIT_EXCEEDED":
        return Attempt("retry", status, code)
    if status in (420, 429) or status >= 500:
        return Attempt("retry", status, f"http_{status}")
    return refused(status, code)


def _token_attempt(response: Reply) -> Attempt:
    status = response.status_code
    if status == 429 or status >= 500:
        return Attempt("retry", status, f"oauth_http_{status}")
    error = first_error_code(json_body(response), "error")
    return Attempt("failed", status, f"oauth_{error}" if error else f"oauth_http_{status}")


class SalesforceTarget(HttpTarget[SalesforceConfig]):
    """A ``Target`` on one Salesforce org, with its cached OAuth token."""

    def __init__(
        self,
        config: SalesforceConfig,
        client_id: str,
        client_secret: str,
        client: aiohttp.ClientSession | SessionFactory,
        clock: Clock | None = None,
    ) -> None:
        super().__init__(config, client, clock)
        self._client_id = client_id
        self._client_secret = client_secret
        self._token: str | None = None
        # One token fetch at a time: concurrent deliveries that all see a 401 share it.
        self._token_lock = asyncio.Lock()

    def record_url(self, lead_id: str) -> str:
        c = self.config
        return (
            f"{c.instance_url}/services/data/{c.api_version}/sobjects/Lead/"
            f"{c.external_id_field}/{quote(lead_id, safe='')}"
        )

    async def upsert(self, card: LeadCard) -> Attempt:
        return await self._call("PATCH", card.lead_id, lead_fields(card, self.config))

    async def _delete(self, lead_id: str) -> Attempt:
        return await self._call("DELETE", lead_id, None)

    async def _anonymise(self, lead_id: str) -> Attempt:
        return await self._call("PATCH", lead_id, anonymised_fields(self.config))

    async def aclose(self) -> None:
        """Forget the token and close the session this target made."""
        self._token = None
        await super().aclose()

    async def _call(self, method: str, lead_id: str, fields: dict[str, Any] | None) -> Attempt:
        token = await self._current_token(stale=None)
        if isinstance(token, Attempt):
            return token
        reply = await self._record(method, lead_id, fields, token)
        if isinstance(reply, Reply) and reply.status_code == 401:
            token = await self._current_token(stale=token)
            if isinstance(token, Attempt):
                return token
            reply = await self._record(method, lead_id, fields, token)
        if isinstance(reply, Attempt):
            return reply
        return read_reply(reply, erase=method == "DELETE")

    async def _record(
        self, method: str, lead_id: str, fields: dict[str, Any] | None, token: str
    ) -> Reply | Attempt:
        return await self._send(
            method,
            self.record_url(lead_id),
            json=fields,
            headers={"Authorization": f"Bearer {token}"},
        )

    async def _current_token(self, stale: str | None) -> str | Attempt:
        """The cached token, or a new one when there is none or ``stale`` was refused."""
        async with self._token_lock:
            if self._token is not None and self._token != stale:
                return self._token
            self._token = None
            reply = await self._send(
                "POST",
                f"{self.config.login_url}/services/oauth2/token",
                form={
                    "grant_type": "client_credentials",
                    "client_id": self._client_id,
                    "client_secret": self._client_secret,
                },
            )
            if isinstance(reply, Attempt):
                return reply
            body = json_body(reply)
            token = body.get("access_token") if isinstance(body, dict) else None
            if reply.status_code != 200 or not isinstance(token, str) or not token:
                return _token_attempt(reply)
            self._token = token
            return token
