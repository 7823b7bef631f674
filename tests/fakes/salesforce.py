"""A Salesforce org for the Lead upsert path, from the REST API documentation.

Implements (developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/):

- ``POST /services/oauth2/token`` — OAuth 2.0 client credentials, form body
  (help.salesforce.com ``xcloud.remoteaccess_oauth_client_credentials_flow.htm``);
  reply ``{access_token, signature, scope, instance_url, id, token_type, issued_at}``.
  Bad credentials: 400 ``{"error": "invalid_client", "error_description"}`` (the
  RFC 6749 shape; Salesforce's exact body is unconfirmed).
- ``PATCH /services/data/vXX.X/sobjects/Lead/{extIdField}/{value}`` — upsert
  (``dome_upsert.htm``, ``resources_sobject_upsert_patch.htm``): 201 created; 200
  updated with ``created: false`` from v46, 204 before; 300 when the external id matches
  several records (the ``duplicate`` fault); the body must not name ``Id`` or the
  external-id field; LastName and Company are required on create.
- ``DELETE`` on the same resource: 204, or 404 NOT_FOUND when no record matches.
- Errors are JSON arrays ``[{"message", "errorCode", "fields"?}]`` (``errorcodes.htm``):
  a revoked or unknown token → 401 ``INVALID_SESSION_ID``; over the rate limit → 403
  ``REQUEST_LIMIT_EXCEEDED``; unknown field → 400 ``INVALID_FIELD``; wrong JSON type →
  400 ``JSON_PARSER_ERROR``; too long → 400 ``STRING_TOO_LONG``.
- Every reply carries ``Sforce-Limit-Info: api-usage=n/100000`` (``headers_api_usage.htm``).
"""

from __future__ import annotations

import re
import secrets
from typing import Any

from aiohttp import web
from tests.fakes.http_fake import HttpFake, json_response, read_json

__all__ = ["SalesforceFake"]

#: Standard Lead fields the fake knows, with their lengths (Object Reference, Lead).
STANDARD_FIELDS = {
    "FirstName": 40, "LastName": 80, "Company": 255, "Email": 80, "Phone": 40, "Title": 128,
    "Description": 32000, "LeadSource": 40, "City": 40, "State": 80, "Country": 80,
    "Industry": 40, "OwnerId": 18,
}  # fmt: skip
_VERSION = re.compile(r"^v([0-9]{2,3})\.0$")


def _error(status: int, code: str, message: str, fields: list[str] | None = None) -> web.Response:
    item: dict[str, Any] = {"message": message, "errorCode": code}
    if fields is not None:
        item["fields"] = fields
    return json_response([item], status)


class SalesforceFake(HttpFake):
    public_paths = ("/services/oauth2/token",)

    def __init__(
        self,
        client_id: str,
        client_secret: str,
        *,
        external_id_field: str = "Leadloop_Lead_Id__c",
        custom_fields: dict[str, type] | None = None,
        rate_per_s: int | None = None,
    ) -> None:
        super().__init__(rate_per_s=rate_per_s)
        self.client_id = client_id
        self.client_secret = client_secret
        self.external_id_field = external_id_field
        #: custom field name -> the JSON type it accepts (str, int or bool).
        self.custom_fields = custom_fields or {
            "Leadloop_Priority__c": str,
            "Leadloop_Score__c": int,
            "Leadloop_Rule__c": str,
            "Leadloop_Returning__c": bool,
        }
        self.tokens: set[str] = set()
        #: When True every session is refused, fresh ones too (integration user locked).
        self.refuse_sessions = False
        self.token_requests = 0
        self.records: dict[str, dict[str, Any]] = {}  # external id -> fields with "Id"

    def revoke_tokens(self) -> None:
        """Every issued token now answers 401 INVALID_SESSION_ID (expiry, logout)."""
        self.tokens.clear()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/services/oauth2/token", self._token)
        path = "/services/data/{version}/sobjects/{sobject}/{field}/{value}"
        app.router.add_patch(path, self._upsert)
        app.router.add_delete(path, self._delete)
        app.on_response_prepare.append(self._limit_info)

    async def _limit_info(self, request: web.Request, response: web.StreamResponse) -> None:
        response.headers["Sforce-Limit-Info"] = f"api-usage={self.requests}/100000"

    async def authorized(self, request: web.Request) -> bool:
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        return scheme == "Bearer" and token in self.tokens and not self.refuse_sessions

    def unauthorized(self) -> web.Response:
        return _error(401, "INVALID_SESSION_ID", "Session expired or invalid")

    def rate_limited(self) -> web.Response:
        return _error(403, "REQUEST_LIMIT_EXCEEDED", "TotalRequests Limit exceeded.")

    def server_error(self, status: int) -> web.Response:
        code = "SERVER_UNAVAILABLE" if status == 503 else "UNKNOWN_EXCEPTION"
        return _error(status, code, "An unexpected error occurred.")

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        form = await request.post()
        if form.get("grant_type") != "client_credentials":
            body = {
                "error": "unsupported_grant_type",
                "error_description": "grant type not supported",
            }
            return self.reject("token", json_response(body, 400))
        if (
            form.get("client_id") != self.client_id
            or form.get("client_secret") != self.client_secret
        ):
            body = {"error": "invalid_client", "error_description": "invalid client credentials"}
            return self.reject("token", json_response(body, 400))
        token = f"00D000000000001!{secrets.token_urlsafe(24)}"
        self.tokens.add(token)
        return json_response({
            "access_token": token, "signature": secrets.token_urlsafe(16), "scope": "api",
            "instance_url": self.url, "id": f"{self.url}/id/00D000000000001/005000000000001",
            "token_type": "Bearer", "issued_at": "1700000000000",
        })  # fmt: skip

    def _resource(self, request: web.Request) -> tuple[int, str] | web.Response:
        """(api version, external id value) or the vendor's 404."""
        version = _VERSION.match(request.match_info["version"])
        sobject, field = request.match_info["sobject"], request.match_info["field"]
        if version is None or sobject != "Lead":
            return self.reject(
                "not_found", _error(404, "NOT_FOUND", "The requested resource does not exist")
            )
        if field != self.external_id_field:
            message = f"Provided external ID field does not exist or is not accessible: {field}"
            return self.reject("not_found", _error(404, "NOT_FOUND", message))
        return int(version.group(1)), request.match_info["value"]

    def _check_fields(self, fields: dict[str, Any]) -> web.Response | None:
        for name, value in fields.items():
            if name in ("Id", self.external_id_field):
                message = f"Unable to create/update fields: {name}."
                return _error(400, "INVALID_FIELD_FOR_INSERT_UPDATE", message, [name])
            if name in STANDARD_FIELDS:
                if value is not None and not isinstance(value, str):
                    return _error(
                        400, "JSON_PARSER_ERROR", f"Cannot deserialize instance of string: {name}"
                    )
                if isinstance(value, str) and len(value) > STANDARD_FIELDS[name]:
                    return _error(400, "STRING_TOO_LONG", f"{name}: data value too large", [name])
            elif name in self.custom_fields:
                kind = self.custom_fields[name]
                ok = value is None or (
                    isinstance(value, kind) and (kind is bool or not isinstance(value, bool))
                )
                if not ok:
                    return _error(400, "JSON_PARSER_ERROR", f"Cannot deserialize value of {name}")
            else:
                return _error(
                    400, "INVALID_FIELD", f"No such column '{name}' on sobject of type Lead"
                )
        return None

    async def _upsert(self, request: web.Request) -> web.Response:
        where = self._resource(request)
        if isinstance(where, web.Response):
            return where
        version, value = where
        try:
            fields = await read_json(request)
        except ValueError:
            return self.reject("schema", _error(400, "JSON_PARSER_ERROR", "Unexpected character"))
        if not isinstance(fields, dict):
            return self.reject("schema", _error(400, "JSON_PARSER_ERROR", "Expected an object"))
        refused = self._check_fields(fields)
        if refused is not None:
            return self.reject("schema", refused)
        if value in self.faults.duplicates:
            matches = [
                f"/services/data/v{version}.0/sobjects/Lead/00Q00000000000{i}" for i in (1, 2)
            ]
            return self.reject("duplicate", json_response(matches, 300))
        held = self.records.get(value)
        if held is None:
            missing = [f for f in ("LastName", "Company") if not fields.get(f)]
            if missing:
                message = f"Required fields are missing: [{', '.join(missing)}]"
                return self.reject(
                    "schema", _error(400, "REQUIRED_FIELD_MISSING", message, missing)
                )
            held = self.records[value] = {"Id": f"00Q{self.next_id():015d}"}
            created = True
        else:
            created = False
        held.update(fields)
        self.accept("upsert", value)
        if version < 46 and not created:
            return web.Response(status=204)
        body: dict[str, Any] = {"id": held["Id"], "success": True, "errors": []}
        if version >= 46:
            body["created"] = created
        return json_response(body, 201 if created else 200)

    async def _delete(self, request: web.Request) -> web.Response:
        where = self._resource(request)
        if isinstance(where, web.Response):
            return where
        _, value = where
        if self.records.pop(value, None) is None:
            return self.reject(
                "not_found", _error(404, "NOT_FOUND", "The requested resource does not exist")
            )
        self.accept("delete", value)
        return web.Response(status=204)
