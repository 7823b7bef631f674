"""A fake of Meta's Graph API for lead retrieval, written from Meta's documentation.

- ``GET /{version}/{leadgen_id}?access_token=…[&appsecret_proof=…][&fields=…]``
  returns the lead: ``{"id", "created_time", "ad_id", "form_id", "field_data":
  [{"name", "values": [...]}]}`` (developers.facebook.com/docs/marketing-api/guides/
  lead-ads/retrieving).
- Errors use the documented body ``{"error": {"message", "type", "code",
  "error_subcode", "fbtrace_id"}}`` (…/docs/graph-api/guides/error-handling): a missing
  or wrong token is code 190 (``OAuthException``, HTTP 400); a wrong
  ``appsecret_proof`` code 100 (…/docs/graph-api/guides/secure-requests, "Invalid
  appsecret_proof provided in the API argument"); an unknown id code 100 with subcode
  33; the throttle code 4 ("Application request limit reached"), or whichever rate
  limit code the test sets. HTTP statuses per code are unconfirmed in Meta's docs;
  the fake answers 400 for client errors and 500 for an injected server error.

``requests`` logs every call (path and query, token included) so a test can check what
was sent; ``fail_next`` / ``throttle_next`` inject trouble. The appsecret_proof is
recomputed here with its own HMAC (RFC 2104 from hashlib), not with the service's code.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from tests.fakes.http_fake import LoopbackServer, hmac_sha256

__all__ = ["FakeGraph", "GraphRequest"]


@dataclass(frozen=True)
class GraphRequest:
    path: str
    query: dict[str, str]


@dataclass
class FakeGraph(LoopbackServer):
    access_token: str
    #: When set, every call must carry the matching appsecret_proof.
    app_secret: str | None = None
    leads: dict[str, dict[str, Any]] = field(default_factory=dict)
    requests: list[GraphRequest] = field(default_factory=list)
    #: The next N calls answer HTTP 500 with a transient error (code 2).
    fail_next: int = 0
    #: The next N calls answer a rate limit error with ``throttle_code``.
    throttle_next: int = 0
    throttle_code: int = 4

    def add_lead(self, leadgen_id: str, field_data: dict[str, str], **extra: Any) -> None:
        self.leads[leadgen_id] = {
            "id": leadgen_id,
            "created_time": "2026-12-01T08:49:14+0000",
            "field_data": [{"name": k, "values": [v]} for k, v in field_data.items()],
            **extra,
        }

    @staticmethod
    def _error(
        status: int,
        message: str,
        code: int,
        subcode: int | None = None,
        kind: str = "OAuthException",
    ) -> web.Response:
        error: dict[str, Any] = {
            "message": message,
            "type": kind,
            "code": code,
            "fbtrace_id": "AfakeTrace" + str(code),
        }
        if subcode is not None:
            error["error_subcode"] = subcode
        return web.Response(
            status=status, text=json.dumps({"error": error}), content_type="application/json"
        )

    async def _lead(self, request: web.Request) -> web.Response:
        query = dict(request.query)
        self.requests.append(GraphRequest(request.path, query))
        if self.fail_next > 0:
            self.fail_next -= 1
            return self._error(500, "An unexpected error has occurred.", 2, kind="OAuthException")
        token = query.get("access_token")
        if token != self.access_token:
            return self._error(400, "Invalid OAuth access token - Cannot parse access token", 190)
        if self.app_secret is not None:
            proof = hmac_sha256(self.app_secret.encode(), token.encode()).hex()
            if query.get("appsecret_proof") != proof:
                return self._error(400, "Invalid appsecret_proof provided in the API argument", 100)
        if self.throttle_next > 0:
            self.throttle_next -= 1
            return self._error(400, "Application request limit reached", self.throttle_code)
        lead = self.leads.get(request.match_info["leadgen_id"])
        if lead is None:
            return self._error(
                400,
                "Unsupported get request. Object does not exist",
                100,
                33,
                "GraphMethodException",
            )
        return web.Response(text=json.dumps(lead), content_type="application/json")

    def application(self) -> web.Application:
        app = web.Application()
        app.router.add_get(r"/{version:v[0-9.]+}/{leadgen_id:[0-9]+}", self._lead)
        return app
