"""The sending side of vendor CRM webhooks, written from the vendors' documentation and
independent of the service's code: signers for HubSpot and 简道云, a Salesforce Outbound
Message builder, and a fake of HubSpot's CRM objects API (the service reads the record
a subscription event names).

- HubSpot v3 (developers.hubspot.com/docs/api/webhooks/validating-requests):
  ``X-HubSpot-Signature-v3`` = base64(HMAC-SHA256(client secret, method + URI + body +
  timestamp)), ``X-HubSpot-Request-Timestamp`` in milliseconds.
- 简道云 (hc.jiandaoyun.com/open/11507): ``X-JDY-Signature`` = hex SHA-1 of
  ``nonce:payload:secret:timestamp``; nonce and timestamp in the query string.
- Salesforce (developer.salesforce.com/docs/atlas.en-us.api.meta/api/
  sforce_api_om_outboundmessaging_wsdl.htm): SOAP ``notifications`` in the namespace
  ``http://soap.sforce.com/2005/09/outbound``.
- HubSpot CRM v3 objects (developers.hubspot.com/docs/api/crm/understanding-the-crm):
  ``GET /crm/v3/objects/{type}/{id}?properties=…&associations=contacts`` with
  ``Authorization: Bearer <private-app token>``; 401 with HubSpot's error body for a
  wrong token, 404 for an unknown record; ``fail_next`` answers the next calls 500.
"""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import dataclass, field
from typing import Any
from xml.sax.saxutils import escape

from aiohttp import web
from tests.fakes.http_fake import LoopbackServer, hmac_sha256

__all__ = ["FakeHubSpotCrm", "hubspot_signed", "jdy_signed", "outbound_message"]


def hubspot_signed(
    secret: str, method: str, uri: str, body: bytes, timestamp_ms: int | None = None
) -> dict[str, str]:
    """The headers HubSpot adds to a webhook request (``uri`` as HubSpot calls it)."""
    ts = str(int(time.time() * 1000) if timestamp_ms is None else timestamp_ms)
    message = method.encode() + uri.encode() + body + ts.encode()
    signature = base64.b64encode(hmac_sha256(secret.encode(), message)).decode()
    return {"X-HubSpot-Signature-v3": signature, "X-HubSpot-Request-Timestamp": ts}


def jdy_signed(
    secret: str, body: bytes, nonce: str = "0f5ade", timestamp: int | None = None
) -> tuple[dict[str, str], dict[str, str]]:
    """(query, headers) of a 简道云 data push of ``body``."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    content = nonce.encode() + b":" + body + b":" + secret.encode() + b":" + ts.encode()
    digest = hashlib.sha1(content).hexdigest()
    return {"nonce": nonce, "timestamp": ts}, {"X-JDY-Signature": digest}


def outbound_message(
    org_id: str,
    notifications: list[tuple[str, dict[str, str | None]]],
    sobject_type: str = "Opportunity",
) -> bytes:
    """A Salesforce Outbound Message with ``(notification id, fields)`` items."""
    items = []
    for nid, fields in notifications:
        values = "".join(
            f'<sf:{k} xsi:nil="true"/>' if v is None else f"<sf:{k}>{escape(v)}</sf:{k}>"
            for k, v in fields.items()
        )
        items.append(
            f"<Notification><Id>{escape(nid)}</Id>"
            f'<sObject xsi:type="sf:{sobject_type}" '
            'xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
            f"{values}</sObject></Notification>"
        )
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsd="http://www.w3.org/2001/XMLSchema" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance">'
        "<soapenv:Body>"
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org_id}</OrganizationId>"
        "<ActionId>04k000000000001AAA</ActionId>"
        '<SessionId xsi:nil="true"/>'
        "<EnterpriseUrl>https://example.my.salesforce.com/services/Soap/c/60.0</EnterpriseUrl>"
        "<PartnerUrl>https://example.my.salesforce.com/services/Soap/u/60.0</PartnerUrl>"
        + "".join(items)
        + "</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


@dataclass
class FakeHubSpotCrm(LoopbackServer):
    """HubSpot's CRM objects API: records by (type, id), each with properties and the
    ids of associated contacts."""

    token: str
    records: dict[tuple[str, str], tuple[dict[str, Any], list[str]]] = field(default_factory=dict)
    requests: list[tuple[str, dict[str, str], str]] = field(default_factory=list)
    #: The next N calls answer HTTP 500 (HubSpot's error body), as an outage would.
    fail_next: int = 0

    def add(
        self,
        object_type: str,
        object_id: str,
        properties: dict[str, Any],
        contacts: tuple[str, ...] = (),
    ) -> None:
        self.records[(object_type, object_id)] = (properties, list(contacts))

    async def _get(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        self.requests.append((request.path, dict(request.query), auth))
        if self.fail_next > 0:
            self.fail_next -= 1
            failed = {
                "status": "error",
                "message": "internal error",
                "correlationId": "00000000-0000-0000-0000-000000000000",
                "category": "INTERNAL_ERROR",
            }
            return web.json_response(failed, status=500)
        if auth != f"Bearer {self.token}":
            denied = {
                "status": "error",
                "message": "Authentication credentials not found.",
                "correlationId": "00000000-0000-0000-0000-000000000000",
                "category": "INVALID_AUTHENTICATION",
            }
            return web.json_response(denied, status=401)
        key = (request.match_info["type"], request.match_info["id"])
        if key not in self.records:
            return web.json_response(
                {"status": "error", "message": "Object not found", "category": "OBJECT_NOT_FOUND"},
                status=404,
            )
        props, contacts = self.records[key]
        wanted = [p for p in request.query.get("properties", "").split(",") if p]
        body: dict[str, Any] = {
            "id": key[1],
            "properties": {p: props.get(p) for p in wanted},
            "createdAt": "2026-12-01T00:00:00Z",
            "updatedAt": "2026-12-01T00:00:00Z",
            "archived": False,
        }
        if "contacts" in request.query.get("associations", "") and contacts:
            body["associations"] = {
                "contacts": {"results": [{"id": c, "type": "call_to_contact"} for c in contacts]}
            }
        return web.Response(text=json.dumps(body), content_type="application/json")

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/crm/v3/objects/{type}/{id}", self._get)
        return app
