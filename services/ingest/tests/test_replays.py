"""Replay protection of the signed endpoints: the pure reservation (``domain.replays``)
and its use by the lead webhook, the CRM feedback, Meta's envelope and the vendor CRM
webhooks (HubSpot, 简道云; Salesforce signs nothing and keeps no key), with an in-memory
cache that behaves as the PostgreSQL one (first insert wins, an expired key is taken
over, a release frees only its own reservation)."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta

import httpx
from hypothesis import given
from hypothesis import strategies as st
from pydantic import SecretStr
from structlog.testing import capture_logs

from leadloop.clock import FixedClock
from leadloop.messaging import OutMessage
from leadloop_ingest.adapters.feedback_http import Feedback
from leadloop_ingest.adapters.http import Webhook
from leadloop_ingest.adapters.intake_http import Replays
from leadloop_ingest.adapters.vendor_hooks import VendorHooks
from leadloop_ingest.domain.replays import DEFAULT_RETENTION_S, Reservation, reservation
from leadloop_ingest.domain.vendor_signatures import hubspot_replay_parts
from leadloop_ingest.domain.vendors.targets import Inbound

NOW = datetime(2025, 3, 14, 9, 26, 53, tzinfo=UTC)
SECRET = "webhook-secret-0123456789"
LEAD = json.dumps({"source": "web", "source_lead_id": "w-1"}).encode()


class MemoryCache:
    """The replay cache's contract (``ports.ReplayCache``) in a dict."""

    def __init__(self, *, down: bool = False) -> None:
        self.rows: dict[bytes, Reservation] = {}
        self.down = down

    async def reserve(self, reservation: Reservation) -> bool:
        if self.down:
            raise ConnectionRefusedError
        held = self.rows.get(reservation.key)
        if held is not None and held.expires_at > reservation.reserved_at:
            return False
        self.rows[reservation.key] = reservation
        return True

    async def release(self, reservation: Reservation) -> None:
        if self.rows.get(reservation.key) == reservation:
            del self.rows[reservation.key]

    async def purge(self, now: datetime) -> int:
        expired = [k for k, r in self.rows.items() if r.expires_at <= now]
        for k in expired:
            del self.rows[k]
        return len(expired)


class Raw:
    def __init__(self) -> None:
        self.sent: list[bytes] = []
        self.fail = False

    async def __call__(
        self, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> None:
        if self.fail:
            raise ConnectionError
        self.sent.append(value)


def signed(body: bytes, *, ts: datetime = NOW) -> dict[str, str]:
    stamp = int(ts.timestamp())
    mac = hmac.new(SECRET.encode(), f"{stamp}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Leadloop-Timestamp": str(stamp), "X-Leadloop-Signature": f"sha256={mac}"}


async def once(body: bytes) -> AsyncIterator[bytes]:
    yield body


def webhook(raw: Raw, cache: MemoryCache, clock: FixedClock, counted: list[str]) -> Webhook:
    return Webhook(
        publish_raw=raw,
        secrets={"web": SecretStr(SECRET)},
        schemes={"web": "leadloop"},
        sources=frozenset({"web"}),
        prevalidate=lambda source, body: None,
        clock=clock,
        replays=Replays(cache, clock, counted=counted.append),
        tolerance_s=300,
    )


# --- the pure part -------------------------------------------------------------------


def test_a_timestamped_request_is_kept_until_it_could_no_longer_verify() -> None:
    past = NOW - timedelta(seconds=100)
    r = reservation(
        scope="lead:web", signature="sha256=AB", signed_at=past, now=NOW, tolerance_s=300
    )
    assert r.expires_at == past + timedelta(seconds=301)
    assert r.reserved_at == NOW
    future = NOW + timedelta(seconds=200)
    ahead = reservation(
        scope="lead:web", signature="sha256=AB", signed_at=future, now=NOW, tolerance_s=300
    )
    assert ahead.expires_at == future + timedelta(seconds=301)


def test_an_untimestamped_request_is_kept_for_the_retention() -> None:
    r = reservation(scope="meta:ads", signature="x", signed_at=None, now=NOW, tolerance_s=0)
    assert r.expires_at == NOW + timedelta(seconds=DEFAULT_RETENTION_S)
    short = reservation(
        scope="meta:ads", signature="x", signed_at=None, now=NOW, tolerance_s=0, retention_s=60
    )
    assert short.expires_at == NOW + timedelta(seconds=60)


@given(
    st.from_regex(r"sha256=[0-9a-f]{64}", fullmatch=True),
    st.text(min_size=1, max_size=20),
    st.text(min_size=1, max_size=20),
)
def test_the_key_is_per_scope_and_ignores_hex_case_and_spaces(sig: str, a: str, b: str) -> None:
    def key(scope: str, signature: str) -> bytes:
        return reservation(
            scope=scope, signature=signature, signed_at=None, now=NOW, tolerance_s=0
        ).key

    assert len(key(a, sig)) == 32
    assert key(a, f"  {sig.upper()} ") == key(a, sig)
    if a != b:
        assert key(a, sig) != key(b, sig)


# --- the lead webhook ------------------------------------------------------------------


async def test_a_second_delivery_is_409_replayed_counted_and_not_published() -> None:
    raw, cache, clock = Raw(), MemoryCache(), FixedClock(NOW)
    counted: list[str] = []
    hook = webhook(raw, cache, clock, counted)
    headers = signed(LEAD)
    assert (await hook.handle("web", headers, once(LEAD))).status == 202
    with capture_logs() as logs:
        reply = await hook.handle("web", headers, once(LEAD))
    assert (reply.status, reply.body) == (409, {"error": "replayed"})
    assert raw.sent == [LEAD]
    assert counted == ["lead"]
    assert {"event": "webhook_refused", "status": 409, "reason": "replayed"}.items() <= logs[
        -1
    ].items()
    # The same lead signed at another second is another request (a sender's own resend).
    later = signed(LEAD, ts=NOW + timedelta(seconds=1))
    assert (await hook.handle("web", later, once(LEAD))).status == 202


async def test_a_reservation_expires_with_the_window_and_is_purged() -> None:
    raw, cache, clock = Raw(), MemoryCache(), FixedClock(NOW)
    counted: list[str] = []
    hook = webhook(raw, cache, clock, counted)
    assert (await hook.handle("web", signed(LEAD), once(LEAD))).status == 202
    assert await cache.purge(NOW + timedelta(seconds=300)) == 0
    assert await cache.purge(NOW + timedelta(seconds=301)) == 1


async def test_our_failure_releases_the_reservation_so_the_retry_gets_through() -> None:
    raw, cache, clock = Raw(), MemoryCache(), FixedClock(NOW)
    counted: list[str] = []
    hook = webhook(raw, cache, clock, counted)
    headers = signed(LEAD)
    raw.fail = True
    assert (await hook.handle("web", headers, once(LEAD))).status == 503
    assert cache.rows == {}
    raw.fail = False
    assert (await hook.handle("web", headers, once(LEAD))).status == 202
    assert (await hook.handle("web", headers, once(LEAD))).status == 409


async def test_refused_requests_reserve_nothing() -> None:
    raw, cache, clock = Raw(), MemoryCache(), FixedClock(NOW)
    counted: list[str] = []
    hook = webhook(raw, cache, clock, counted)
    bad = {**signed(LEAD), "X-Leadloop-Signature": "sha256=" + "0" * 64}
    assert (await hook.handle("web", bad, once(LEAD))).status == 401
    assert cache.rows == {}


async def test_an_unreachable_cache_is_503_not_an_unprotected_accept() -> None:
    raw, cache, clock = Raw(), MemoryCache(down=True), FixedClock(NOW)
    counted: list[str] = []
    hook = webhook(raw, cache, clock, counted)
    reply = await hook.handle("web", signed(LEAD), once(LEAD))
    assert (reply.status, reply.headers.get("Retry-After")) == (503, "5")
    assert raw.sent == []


# --- CRM feedback ------------------------------------------------------------------------


async def test_crm_feedback_replays_are_refused_per_client() -> None:
    published: list[object] = []

    async def publish(messages: Sequence[OutMessage]) -> None:
        published.append(messages)

    cache, clock = MemoryCache(), FixedClock(NOW)
    counted: list[str] = []
    feedback = Feedback(
        publish=publish,
        secrets={"crm-a": SecretStr(SECRET)},
        clock=clock,
        replays=Replays(cache, clock, counted=counted.append),
    )
    body = json.dumps(
        {
            "event_id": "a-1",
            "lead_id": "lead-1",
            "rep_id": "rep-1",
            "kind": "call",
            "occurred_at": NOW.isoformat(),
        }
    ).encode()
    headers = {**signed(body), "X-Leadloop-Client": "crm-a"}
    first = await feedback.handle("activities", headers, once(body))
    assert first.status == 202, first.body
    assert (await feedback.handle("activities", headers, once(body))).status == 409
    assert counted == ["crm"]
    assert len(published) == 1


# --- the vendor CRM webhooks -------------------------------------------------------------

HS_SECRET = "hs-client-secret-0123456789"
JDY_SECRET = "jdy-push-secret-0123456789"
HS_URI = "http://127.0.0.1/v1/crm/hooks/hubspot/hs"
INBOUND = Inbound.model_validate(
    {
        "targets": {
            "hs": {
                "kind": "hubspot",
                "secret_env": "HS_SECRET",
                "api_token_env": "HS_TOKEN",
                "fields": {"lead_id": "leadloop_lead_id", "rep_id": "hubspot_owner_id"},
                "stages": {"closedwon": "won"},
                "activity_kinds": {"calls": "call"},
            },
            "jdy": {
                "kind": "jiandaoyun",
                "secret_env": "JDY_SECRET",
                "emits": "stage_change",
                "fields": {"lead_id": "_widget_1", "rep_id": "_widget_2", "stage": "_widget_3"},
                "stages": {"赢单": "won"},
            },
            "sf": {
                "kind": "salesforce",
                "organization_id": "00D000000000001AAA",
                "emits": "stage_change",
                "fields": {"lead_id": "L__c", "rep_id": "OwnerId", "stage": "StageName"},
                "stages": {"Closed Won": "won"},
            },
        }
    }
)
DEAL = json.dumps(
    [
        {
            "objectId": 1246965,
            "propertyName": "dealstage",
            "propertyValue": "closedwon",
            "eventId": 3816279340,
            "subscriptionId": 25,
            "portalId": 33,
            "occurredAt": 1462216307945,
            "subscriptionType": "deal.propertyChange",
            "attemptNumber": 0,
        }
    ]
).encode()
PUSH = json.dumps(
    {
        "op": "data_update",
        "data": {"_id": "r1", "_widget_1": "lead-9", "_widget_2": {"username": "zs"}},
    }
).encode()


class CrmApi:
    """HubSpot's CRM objects API: the deal, or a 500 while ``down``."""

    def __init__(self) -> None:
        self.down = False

    def __call__(self, request: httpx.Request) -> httpx.Response:
        if self.down:
            return httpx.Response(500)
        props = {"leadloop_lead_id": "lead-1", "hubspot_owner_id": "rep-1"}
        return httpx.Response(200, json={"id": "1246965", "properties": props})


class Broker:
    def __init__(self) -> None:
        self.sent: list[OutMessage] = []
        self.down = False

    async def publish(self, messages: Sequence[OutMessage]) -> None:
        if self.down:
            raise ConnectionError
        self.sent.extend(messages)


def vendor_hooks(
    broker: Broker, cache: MemoryCache, counted: list[str], api: CrmApi | None = None
) -> VendorHooks:
    clock = FixedClock(NOW)
    return VendorHooks(
        inbound=INBOUND,
        secrets={"hs": HS_SECRET.encode(), "jdy": JDY_SECRET.encode()},
        api_tokens={"hs": "pat-token-0123456789"},
        publisher=broker,
        clock=clock,
        http=httpx.AsyncClient(transport=httpx.MockTransport(api or CrmApi())),
        replays=Replays(cache, clock, counted=counted.append),
    )


def hs_signed(body: bytes, ts: datetime = NOW) -> dict[str, str]:
    stamp = str(int(ts.timestamp() * 1000))
    mac = hmac.new(HS_SECRET.encode(), b"POST" + HS_URI.encode() + body + stamp.encode(), "sha256")
    return {
        "X-HubSpot-Signature-v3": base64.b64encode(mac.digest()).decode(),
        "X-HubSpot-Request-Timestamp": stamp,
    }


def jdy_signed(body: bytes, nonce: str = "0f5ade") -> tuple[dict[str, str], dict[str, str]]:
    stamp = str(int(NOW.timestamp()))
    content = b":".join([nonce.encode(), body, JDY_SECRET.encode(), stamp.encode()])
    signature = hashlib.sha1(content).hexdigest()
    return {"nonce": nonce, "timestamp": stamp}, {"X-JDY-Signature": signature}


async def hook(
    h: VendorHooks,
    vendor: str,
    body: bytes,
    headers: dict[str, str],
    query: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    name = {"hubspot": "hs", "jiandaoyun": "jdy", "salesforce": "sf"}[vendor]
    reply = await h.handle(
        vendor,
        name,
        method="POST",
        uri=f"http://127.0.0.1/v1/crm/hooks/{vendor}/{name}",
        query=query or {},
        headers=headers,
        chunks=once(body),
    )
    return reply.status, reply.body


async def test_a_replayed_hubspot_request_is_409_counted_and_not_published() -> None:
    broker, cache, counted = Broker(), MemoryCache(), list[str]()
    h = vendor_hooks(broker, cache, counted)
    headers = hs_signed(DEAL, ts=NOW - timedelta(seconds=10))
    assert (await hook(h, "hubspot", DEAL, headers))[0] == 200
    with capture_logs() as logs:
        replayed = await hook(h, "hubspot", DEAL, headers)
    assert replayed == (409, b'{"error": "replayed"}')
    assert [m.topic for m in broker.sent] == ["crm.stage-changes"]
    assert counted == ["crm-hook"]
    assert {"event": "vendor_hook_refused", "status": 409, "target": "hs"}.items() <= logs[
        -1
    ].items()
    # Kept while the signed timestamp could still verify (HubSpot: 5 minutes).
    (held,) = cache.rows.values()
    assert held.scope == "crm-hook:hubspot:hs"
    assert held.expires_at == NOW - timedelta(seconds=10) + timedelta(seconds=301)


async def test_a_hubspot_signature_re_spelled_in_base64_is_the_same_request() -> None:
    broker, cache, counted = Broker(), MemoryCache(), list[str]()
    h = vendor_hooks(broker, cache, counted)
    headers = hs_signed(DEAL)
    assert (await hook(h, "hubspot", DEAL, headers))[0] == 200
    # The last character's two spare bits: another spelling of the same digest verifies.
    sig = headers["X-HubSpot-Signature-v3"]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    spare = alphabet[alphabet.index(sig[-2]) ^ 1]
    respelled = {**headers, "X-HubSpot-Signature-v3": sig[:-2] + spare + "="}
    assert hubspot_replay_parts(respelled) == hubspot_replay_parts(headers)
    assert (await hook(h, "hubspot", DEAL, respelled))[0] == 409
    assert len(broker.sent) == 1


async def test_hubspot_api_failure_releases_so_hubspots_retry_is_taken() -> None:
    broker, cache, counted, api = Broker(), MemoryCache(), list[str](), CrmApi()
    h = vendor_hooks(broker, cache, counted, api)
    headers = hs_signed(DEAL)
    api.down = True
    assert (await hook(h, "hubspot", DEAL, headers))[0] == 503
    assert cache.rows == {}
    api.down = False
    assert (await hook(h, "hubspot", DEAL, headers))[0] == 200
    assert (await hook(h, "hubspot", DEAL, headers))[0] == 409
    assert len(broker.sent) == 1
    assert counted == ["crm-hook"]


async def test_a_replayed_jiandaoyun_push_is_409_fail_and_a_broker_failure_releases() -> None:
    broker, cache, counted = Broker(), MemoryCache(), list[str]()
    h = vendor_hooks(broker, cache, counted)
    query, headers = jdy_signed(PUSH)
    broker.down = True
    assert (await hook(h, "jiandaoyun", PUSH, headers, query))[0] == 503
    assert cache.rows == {}
    broker.down = False
    assert await hook(h, "jiandaoyun", PUSH, headers, query) == (200, b"success")
    assert await hook(h, "jiandaoyun", PUSH, headers, query) == (409, b"fail")
    assert len(broker.sent) == 1
    assert counted == ["crm-hook"]
    # 简道云's timestamp has no window, so the key is kept for the retention.
    (held,) = cache.rows.values()
    assert held.expires_at == NOW + timedelta(seconds=DEFAULT_RETENTION_S)
    # Another push (a new nonce) of the same record is not a replay.
    query2, headers2 = jdy_signed(PUSH, nonce="a1b2c3")
    assert await hook(h, "jiandaoyun", PUSH, headers2, query2) == (200, b"success")


async def test_vendor_hooks_reserve_nothing_for_forgeries_or_salesforce() -> None:
    broker, cache, counted = Broker(), MemoryCache(), list[str]()
    h = vendor_hooks(broker, cache, counted)
    forged = {**hs_signed(DEAL), "X-HubSpot-Signature-v3": base64.b64encode(b"x" * 32).decode()}
    assert (await hook(h, "hubspot", DEAL, forged))[0] == 401
    query, _ = jdy_signed(PUSH)
    assert (await hook(h, "jiandaoyun", PUSH, {"X-JDY-Signature": "0" * 40}, query))[0] == 401
    assert cache.rows == {}
    soap = (
        b'<?xml version="1.0" encoding="UTF-8"?>'
        b'<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/">'
        b'<soapenv:Body><notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        b"<OrganizationId>00D000000000001AAA</OrganizationId><Notification><Id>04l1</Id>"
        b'<sObject xmlns:sf="urn:sobject.enterprise.soap.sforce.com"><sf:L__c>lead-5</sf:L__c>'
        b"<sf:OwnerId>005a</sf:OwnerId><sf:StageName>Closed Won</sf:StageName></sObject>"
        b"</Notification></notifications></soapenv:Body></soapenv:Envelope>"
    )
    assert (await hook(h, "salesforce", soap, {}))[0] == 200
    assert (await hook(h, "salesforce", soap, {}))[0] == 200
    assert cache.rows == {}


async def test_an_unreachable_cache_is_503_for_the_vendor_hooks_too() -> None:
    broker, cache, counted = Broker(), MemoryCache(down=True), list[str]()
    h = vendor_hooks(broker, cache, counted)
    assert (await hook(h, "hubspot", DEAL, hs_signed(DEAL)))[0] == 503
    query, headers = jdy_signed(PUSH)
    assert (await hook(h, "jiandaoyun", PUSH, headers, query))[0] == 503
    assert broker.sent == []
