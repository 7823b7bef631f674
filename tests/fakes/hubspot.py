"""A HubSpot account for the contact upsert path, from HubSpot's CRM v3 documentation.

Implements (developers.hubspot.com/docs/):

- ``Authorization: Bearer <private app token>``; anything else → 401 with the error
  body and category ``INVALID_AUTHENTICATION`` (``api-reference/error-handling``).
- ``POST /crm/v3/objects/contacts/batch/upsert`` — ``{"inputs": [{"idProperty", "id",
  "properties"}]}`` (1–100 inputs; ``idProperty`` must be a unique-value property)
  → 200 ``{"status": "COMPLETE", "results": [{"id", "properties", "createdAt",
  "updatedAt", "archived", "new"}], "startedAt", "completedAt"}``
  (``api-reference/legacy/crm/objects/contacts/batch/upsert-contacts``). Unknown
  properties or non-string values → 400 ``VALIDATION_ERROR``; the ``duplicate`` fault
  → 409 ``CONFLICT`` "Contact already exists. Existing ID: …".
- ``POST /crm/v3/objects/contacts/gdpr-delete`` — ``{"objectId", "idProperty"?}`` →
  204 without a body (``api-reference/crm-contacts-v3/basic/
  post-crm-v3-objects-contacts-gdpr-delete``); an unknown contact → 404.
- Rate limit → 429 ``{"status": "error", "message", "errorType": "RATE_LIMIT",
  "correlationId", "policyName"}`` with ``X-HubSpot-RateLimit-Interval-Milliseconds``,
  ``-Max`` and ``-Remaining`` (``developer-tooling/platform/usage-guidelines``);
  ``Retry-After`` only when configured (not documented).
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Any

from aiohttp import web
from tests.fakes.http_fake import HttpFake, json_response, read_json

__all__ = ["DEFAULT_PROPERTIES", "HubSpotFake"]

DEFAULT_PROPERTIES = frozenset({
    "email", "firstname", "lastname", "phone", "company", "jobtitle", "city", "country",
    "state", "industry", "message", "hubspot_owner_id", "leadloop_lead_id",
    "leadloop_priority", "leadloop_score", "leadloop_team", "leadloop_rule",
    "leadloop_returning",
})  # fmt: skip


def _error(status: int, category: str, message: str, **extra: Any) -> web.Response:
    body = {"status": "error", "message": message, "correlationId": str(uuid.uuid4()),
            "category": category, **extra}  # fmt: skip
    return json_response(body, status)


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class HubSpotFake(HttpFake):
    def __init__(
        self,
        token: str,
        *,
        id_property: str = "leadloop_lead_id",
        properties: frozenset[str] = DEFAULT_PROPERTIES,
        rate_per_s: int | None = None,
        policy: str = "TEN_SECONDLY_ROLLING",
        retry_after: str | None = None,
    ) -> None:
        super().__init__(rate_per_s=rate_per_s)
        self.token = token
        self.id_property = id_property
        self.properties = properties
        self.policy = policy
        self.retry_after = retry_after
        self.contacts: dict[str, dict[str, Any]] = {}  # id_property value -> contact

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/crm/v3/objects/contacts/batch/upsert", self._upsert)
        app.router.add_post("/crm/v3/objects/contacts/gdpr-delete", self._gdpr_delete)

    async def authorized(self, request: web.Request) -> bool:
        return request.headers.get("Authorization") == f"Bearer {self.token}"

    def unauthorized(self) -> web.Response:
        message = (
            "Authentication credentials not found. This API supports OAuth 2.0 "
            "authentication and you can find more details at https://developers.hubspot.com/docs/"
        )
        return _error(401, "INVALID_AUTHENTICATION", message)

    def rate_limited(self) -> web.Response:
        daily = self.policy == "DAILY"
        body = {
            "status": "error",
            "message": "You have reached your daily limit."
            if daily
            else "You have reached your ten_secondly_rolling limit.",
            "errorType": "RATE_LIMIT",
            "correlationId": str(uuid.uuid4()),
            "policyName": self.policy,
        }
        headers = {
            "X-HubSpot-RateLimit-Interval-Milliseconds": "10000",
            "X-HubSpot-RateLimit-Max": str(self.rate.per_s or 190),
            "X-HubSpot-RateLimit-Remaining": "0",
        }
        if self.retry_after is not None:
            headers["Retry-After"] = self.retry_after
        return json_response(body, 429, headers)

    def server_error(self, status: int) -> web.Response:
        return _error(status, "INTERNAL_ERROR", "internal error")

    def _invalid(self, message: str, *errors: dict[str, Any]) -> web.Response:
        return self.reject("schema", _error(400, "VALIDATION_ERROR", message, errors=list(errors)))

    def _check_input(self, item: Any) -> web.Response | None:
        if not isinstance(item, dict) or not set(item) <= {
            "idProperty",
            "id",
            "properties",
            "objectWriteTraceId",
        }:
            return self._invalid("Invalid input JSON: unknown field in input")
        if item.get("idProperty") != self.id_property:
            return self._invalid(f"{item.get('idProperty')!r} is not a unique-value property")
        if not isinstance(item.get("id"), str) or not item["id"]:
            return self._invalid("id must be a non-empty string")
        props = item.get("properties")
        if not isinstance(props, dict):
            return self._invalid("properties must be an object")
        unknown = sorted(set(props) - self.properties)
        if unknown:
            errors = [{"message": f'Property "{p}" does not exist', "code": "PROPERTY_DOESNT_EXIST",
                       "context": {"propertyName": [p]}} for p in unknown]  # fmt: skip
            return self._invalid("Property values were not valid", *errors)
        if not all(isinstance(v, str) for v in props.values()):
            return self._invalid("Property values must be strings")
        if self.id_property in props:
            return self._invalid(f"{self.id_property} is the idProperty and cannot be set")
        return None

    async def _upsert(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request)
        except ValueError:
            return self._invalid("Invalid input JSON")
        inputs = body.get("inputs") if isinstance(body, dict) else None
        if not isinstance(body, dict) or set(body) != {"inputs"} or not isinstance(inputs, list):
            return self._invalid('Invalid input JSON: expected {"inputs": [...]}')
        if not 1 <= len(inputs) <= 100:
            return self._invalid("inputs must hold 1 to 100 items")
        for item in inputs:
            refused = self._check_input(item)
            if refused is not None:
                return refused
        for item in inputs:
            if item["id"] in self.faults.duplicates:
                return self.reject(
                    "duplicate", _error(409, "CONFLICT", "Contact already exists. Existing ID: 501")
                )
        started, results = _now(), []
        for item in inputs:
            held = self.contacts.get(item["id"])
            new = held is None
            if held is None:
                held = self.contacts[item["id"]] = {
                    "id": str(self.next_id()), "createdAt": _now(),
                    "properties": {self.id_property: item["id"]},
                }  # fmt: skip
            held["properties"].update(item["properties"])
            held["updatedAt"] = _now()
            self.accept("upsert", item["id"])
            results.append({**held, "archived": False, "new": new})
        return json_response({"status": "COMPLETE", "results": results, "startedAt": started,
                              "completedAt": _now()})  # fmt: skip

    async def _gdpr_delete(self, request: web.Request) -> web.Response:
        try:
            body = await read_json(request)
        except ValueError:
            return self._invalid("Invalid input JSON")
        if not isinstance(body, dict) or not set(body) <= {"objectId", "idProperty"}:
            return self._invalid("Invalid input JSON: expected objectId and idProperty")
        object_id, id_property = body.get("objectId"), body.get("idProperty")
        if not isinstance(object_id, str) or not object_id:
            return self._invalid("objectId must be a non-empty string")
        if id_property is None:
            key = next((k for k, c in self.contacts.items() if c["id"] == object_id), None)
        elif id_property == self.id_property:
            key = object_id if object_id in self.contacts else None
        else:
            return self._invalid(f"{id_property!r} is not a unique-value property")
        if key is None:
            return self.reject("not_found", _error(404, "OBJECT_NOT_FOUND", "resource not found"))
        del self.contacts[key]
        self.accept("delete", key)
        return web.Response(status=204)
