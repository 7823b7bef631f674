"""Meta lead ads: the handshake, the leadgen envelope, the Graph request and its errors,
and the endpoint's decisions (Graph first, publish all, 200 only after acks; any Graph
failure is a 5xx with nothing published).

``appsecret_proof`` and ``X-Hub-Signature-256`` are computed here with ``hmac`` directly.
"""

from __future__ import annotations

import hashlib
import hmac
import json
from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr

from leadloop.clock import FixedClock
from leadloop_ingest.adapters.http import Reply
from leadloop_ingest.adapters.meta import MetaLeadAds
from leadloop_ingest.domain.leadgen import (
    GraphProblem,
    challenge,
    classify_graph_error,
    graph_lead_url,
    lead_record,
    leadgen_changes,
)

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
APP_SECRET = "meta-app-secret-0123456789"
TOKEN = "EAAB-page-token-0123456789"
VERIFY = "verify-token-0123456789"


def envelope(*leadgen_ids: Any) -> dict[str, Any]:
    return {
        "object": "page",
        "entry": [
            {
                "id": 153125381133,
                "time": 1438292065,
                "changes": [
                    {
                        "field": "leadgen",
                        "value": {
                            "leadgen_id": lid,
                            "page_id": 123123123,
                            "form_id": "12312312312",
                            "adgroup_id": 12312312312,
                            "ad_id": 12312312312,
                            "created_time": 1440120384,
                        },
                    }
                    for lid in leadgen_ids
                ],
            }
        ],
    }


def test_handshake() -> None:
    ok = {"hub.mode": "subscribe", "hub.challenge": "1158201444", "hub.verify_token": VERIFY}
    assert challenge(ok, VERIFY) == "1158201444"
    assert challenge({**ok, "hub.verify_token": "nope"}, VERIFY) is None
    assert challenge({**ok, "hub.mode": "unsubscribe"}, VERIFY) is None
    assert challenge({"hub.mode": "subscribe", "hub.verify_token": VERIFY}, VERIFY) is None
    assert challenge(ok, "") is None


def test_envelope_ids_as_numbers_or_strings_once_each() -> None:
    changes = leadgen_changes(envelope(123123123123, "444", 123123123123))
    assert changes is not None
    assert [c.leadgen_id for c in changes] == ["123123123123", "444"]
    assert changes[0].page_id == "123123123"
    assert changes[0].form_id == "12312312312"
    other = {"object": "page", "entry": [{"changes": [{"field": "feed", "value": {}}]}]}
    assert leadgen_changes(other) == []
    assert leadgen_changes(envelope("12a")) is None
    assert leadgen_changes({"object": "page", "entry": 3}) is None
    assert leadgen_changes({"source": "lead_ads"}) is None


def test_graph_url_carries_token_and_proof() -> None:
    url = graph_lead_url("https://graph.facebook.com/", "v25.0", "444", TOKEN, APP_SECRET.encode())
    parts = urlsplit(url)
    assert parts.path == "/v25.0/444"
    query = parse_qs(parts.query)
    assert query["access_token"] == [TOKEN]
    expected = hmac.new(APP_SECRET.encode(), TOKEN.encode(), hashlib.sha256).hexdigest()
    assert query["appsecret_proof"] == [expected]
    assert "field_data" in query["fields"][0]


def graph_error(code: int, subcode: int | None = None) -> bytes:
    error: dict[str, Any] = {"message": "m", "type": "OAuthException", "code": code}
    error["fbtrace_id"] = "AbCd"
    if subcode is not None:
        error["error_subcode"] = subcode
    return json.dumps({"error": error}).encode()


def test_graph_errors_as_codes() -> None:
    token = classify_graph_error(400, graph_error(190, 460))
    assert (token.problem, token.code, token.subcode, token.fbtrace_id) == (
        GraphProblem.AUTH,
        190,
        460,
        "AbCd",
    )
    for code in (4, 17, 32, 613):
        assert classify_graph_error(400, graph_error(code)).problem is GraphProblem.RATE_LIMIT
    assert classify_graph_error(400, graph_error(10)).problem is GraphProblem.PERMISSION
    assert classify_graph_error(500, graph_error(2)).problem is GraphProblem.TRANSIENT
    assert classify_graph_error(400, graph_error(100, 33)).problem is GraphProblem.NOT_FOUND
    assert classify_graph_error(502, b"<html>").problem is GraphProblem.TRANSIENT


def test_lead_record_must_be_the_lead_asked_for() -> None:
    body = json.dumps({"id": "444", "field_data": []}).encode()
    assert lead_record(body, "444") == body
    assert not isinstance(lead_record(body, "445"), bytes)
    assert not isinstance(lead_record(b"[]", "444"), bytes)


@given(st.binary(max_size=400), st.integers(min_value=100, max_value=599))
def test_pure_parts_never_raise(body: bytes, status: int) -> None:
    classify_graph_error(status, body)
    lead_record(body, "1")
    try:
        decoded = json.loads(body)
    except ValueError:
        decoded = None
    leadgen_changes(decoded)


@given(st.dictionaries(st.text(max_size=20), st.text(max_size=40)))
def test_handshake_never_raises(params: dict[str, str]) -> None:
    challenge(params, VERIFY)


# --------------------------------------------------------------------------- the endpoint


class Raw:
    def __init__(self, fail: bool = False) -> None:
        self.sent: list[tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = []
        self.fail = fail

    async def __call__(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        if self.fail:
            raise ConnectionError("broker down")
        self.sent.append((key, value, headers))


class FallbackWebhook:
    """Stands in for the ordinary webhook: records that it was asked."""

    def __init__(self) -> None:
        self.calls = 0

    async def handle(self, source: str, headers: Any, chunks: AsyncIterator[bytes]) -> Reply:
        self.calls += 1
        return Reply(202, {"status": "accepted"})


def meta(raw: Raw, graph: Any, fallback: FallbackWebhook | None = None) -> MetaLeadAds:
    return MetaLeadAds(
        webhook=fallback or FallbackWebhook(),  # type: ignore[arg-type]
        sources=frozenset({"lead_ads"}),
        app_secrets={"lead_ads": SecretStr(APP_SECRET)},
        verify_token=SecretStr(VERIFY),
        access_token=SecretStr(TOKEN),
        graph_url="https://graph.example",
        graph_version="v25.0",
        http=httpx.AsyncClient(transport=httpx.MockTransport(graph)),
        publish_raw=raw,
        clock=FixedClock(NOW),
    )


async def once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def signed(body: bytes) -> dict[str, str]:
    mac = hmac.new(APP_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={mac}"}


def lead_graph(request: httpx.Request) -> httpx.Response:
    if request.url.params.get("access_token") != TOKEN:
        return httpx.Response(400, content=graph_error(190))
    lead_id = request.url.path.rsplit("/", 1)[1]
    fields = [{"name": "email", "values": [f"p{lead_id}@example.com"]}]
    return httpx.Response(200, json={"id": lead_id, "field_data": fields})


async def test_envelope_is_fetched_then_published_keyed_by_leadgen_id() -> None:
    raw = Raw()
    m = meta(raw, lead_graph)
    body = json.dumps(envelope(111, "222")).encode()
    reply = await m.post("lead_ads", signed(body), once(body))
    assert reply.status == 200
    assert [k for k, _, _ in raw.sent] == [b"lead_ads:111", b"lead_ads:222"]
    assert json.loads(raw.sent[0][1])["field_data"][0]["name"] == "email"
    assert ("leadloop-source", b"lead_ads") in raw.sent[0][2]


async def test_graph_failure_publishes_nothing_and_asks_meta_to_retry() -> None:
    def flaky(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/222"):
            return httpx.Response(500, content=graph_error(2))
        return lead_graph(request)

    raw = Raw()
    body = json.dumps(envelope(111, 222)).encode()
    reply = await meta(raw, flaky).post("lead_ads", signed(body), once(body))
    assert reply.status == 503
    assert raw.sent == []
    throttled = await meta(raw, lambda r: httpx.Response(400, content=graph_error(613))).post(
        "lead_ads", signed(body), once(body)
    )
    assert throttled.status == 503
    assert "Retry-After" in throttled.headers
    expired = await meta(raw, lambda r: httpx.Response(400, content=graph_error(190))).post(
        "lead_ads", signed(body), once(body)
    )
    assert (expired.status, expired.body) == (502, {"error": "graph_auth"})
    assert raw.sent == []
    down = await meta(Raw(fail=True), lead_graph).post("lead_ads", signed(body), once(body))
    assert down.status == 503


async def test_signature_handshake_and_fallback() -> None:
    fallback = FallbackWebhook()
    m = meta(Raw(), lead_graph, fallback)
    body = json.dumps(envelope(111)).encode()
    assert (
        await m.post("lead_ads", {"X-Hub-Signature-256": "sha256=" + "0" * 64}, once(body))
    ).status == 401
    assert (await m.post("lead_ads", {}, once(body))).status == 401
    contract = json.dumps({"source": "lead_ads", "source_lead_id": "x", "email": "a@b.c"}).encode()
    assert (await m.post("lead_ads", signed(contract), once(contract))).status == 202
    assert (await m.post("web_form", {}, once(contract))).status == 202
    assert fallback.calls == 2
    params = {"hub.mode": "subscribe", "hub.challenge": "42", "hub.verify_token": VERIFY}
    assert m.handshake("lead_ads", params) == (200, "42")
    assert m.handshake("lead_ads", {**params, "hub.verify_token": "x"})[0] == 403
    assert m.handshake("web_form", params)[0] == 404
