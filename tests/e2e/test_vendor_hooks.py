"""Vendor CRM webhooks and Meta lead ads on a real ingest process, the real broker and
PostgreSQL, with fakes of HubSpot's CRM API and Meta's Graph API on loopback.

- HubSpot (v3-signed array: a deal stage change and a call's creation) and 简道云
  (signed data push) land on ``crm.stage-changes`` / ``crm.activities`` as contract
  events keyed by lead id; a bad signature is 401 and publishes nothing; an unmapped
  loss reason is one record on ``crm.rejected`` carrying no submitted value.
- Replays: the same signed HubSpot request, and the same signed 简道云 push, again is
  refused 409 (``fail`` for 简道云), published once and counted (endpoint ``crm-hook``);
  a request that failed on our side (HubSpot's API answered 500: 503) is taken on retry.
- A Salesforce Outbound Message is answered ``<Ack>true</Ack>``; its redelivery is
  acked again and published once; another org's message is 403.
- Meta: the GET handshake echoes the challenge only for our verify token; a signed
  leadgen envelope makes ingest read each lead from the fake Graph API (whose request
  log shows the page token and appsecret_proof) and the leads reach ``leads.accepted``
  with ``source_lead_id`` = leadgen_id; a Graph 500 is answered non-2xx and leaves
  nothing on ``leads.raw``.

Signatures are computed by tests/fakes/vendor_webhooks.py from the vendors' docs, not by
ingest's code.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import aiohttp
import asyncpg
import pytest
import yaml
from tests.fakes.meta_graph import FakeGraph
from tests.fakes.vendor_webhooks import (
    FakeHubSpotCrm,
    hubspot_signed,
    jdy_signed,
    outbound_message,
)
from tests.support.kafka import collect
from tests.support.processes import ServiceGroup
from tests.support.stack import running, stack_env

from leadloop.events import ActivityRecorded, StageChanged

pytestmark = pytest.mark.e2e

HS_SECRET = "hs-" + uuid.uuid4().hex
HS_TOKEN = "pat-" + uuid.uuid4().hex
JDY_SECRET = "jdy-" + uuid.uuid4().hex
APP_SECRET = "app-" + uuid.uuid4().hex
PAGE_TOKEN = "EAAB" + uuid.uuid4().hex
VERIFY_TOKEN = "verify-" + uuid.uuid4().hex
ORG = "00D000000000001AAA"


def inbound(hubspot_api: str) -> dict[str, Any]:
    return {
        "targets": {
            "hs": {
                "kind": "hubspot",
                "secret_env": "T_HS_SECRET",
                "api_token_env": "T_HS_TOKEN",
                "api_url": hubspot_api,
                "fields": {"lead_id": "leadloop_lead_id", "rep_id": "hubspot_owner_id"},
                "stages": {"closedwon": "won"},
                "activity_kinds": {"calls": "call"},
            },
            "jdy": {
                "kind": "jiandaoyun",
                "secret_env": "T_JDY_SECRET",
                "emits": "stage_change",
                "fields": {
                    "lead_id": "_widget_1",
                    "rep_id": "_widget_2",
                    "stage": "_widget_3",
                    "loss_reason": "_widget_4",
                },
                "stages": {"赢单": "won", "输单": "lost"},
                "loss_reasons": {"无预算": "no_budget"},
            },
            "sf": {
                "kind": "salesforce",
                "organization_id": ORG,
                "emits": "stage_change",
                "fields": {
                    "lead_id": "Leadloop_Lead_Id__c",
                    "rep_id": "OwnerId",
                    "stage": "StageName",
                },
                "stages": {"Closed Won": "won"},
            },
        }
    }


@pytest.fixture
async def graph() -> AsyncIterator[FakeGraph]:
    fake = await FakeGraph(access_token=PAGE_TOKEN, app_secret=APP_SECRET).start()
    yield fake
    await fake.stop()


@pytest.fixture
async def hubspot() -> AsyncIterator[FakeHubSpotCrm]:
    fake = await FakeHubSpotCrm(token=HS_TOKEN).start()
    yield fake
    await fake.stop()


@pytest.fixture
def ingest(
    database_url: str,
    kafka_settings: Any,
    tmp_path: Path,
    graph: FakeGraph,
    hubspot: FakeHubSpotCrm,
) -> Iterator[ServiceGroup]:
    path = tmp_path / "crm-inbound.yaml"
    path.write_text(yaml.safe_dump(inbound(hubspot.base_url), allow_unicode=True))
    env = stack_env(
        database_url,
        kafka_settings,
        tmp_path,
        LEADLOOP_WEBHOOK_SECRETS=json.dumps({"lead_ads": APP_SECRET}),
        LEADLOOP_CRM_INBOUND_FILE=str(path),
        T_HS_SECRET=HS_SECRET,
        T_HS_TOKEN=HS_TOKEN,
        T_JDY_SECRET=JDY_SECRET,
        LEADLOOP_META_VERIFY_TOKEN=VERIFY_TOKEN,
        LEADLOOP_META_ACCESS_TOKEN=PAGE_TOKEN,
        LEADLOOP_META_GRAPH_URL=graph.base_url,
    )
    with running(env, tmp_path, "ingest") as group:
        yield group


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


async def post(
    http: aiohttp.ClientSession,
    url: str,
    body: bytes,
    headers: dict[str, str],
    params: dict[str, str] | None = None,
) -> tuple[int, bytes]:
    async with http.post(url, data=body, headers=headers, params=params) as response:
        return response.status, await response.read()


async def test_vendor_webhooks_publish_contract_events(
    ingest: ServiceGroup,
    hubspot: FakeHubSpotCrm,
    kafka_settings: Any,
    http: aiohttp.ClientSession,
) -> None:
    # --- HubSpot: a deal stage change and a call, both read back from the CRM API ------
    hubspot.add("deals", "1001", {"leadloop_lead_id": "lead-hs", "hubspot_owner_id": "rep-1"})
    hubspot.add("calls", "2001", {"hubspot_owner_id": "rep-1"}, contacts=("3001",))
    hubspot.add("contacts", "3001", {"leadloop_lead_id": "lead-hs"})
    events = [
        {
            "objectId": 1001,
            "propertyName": "dealstage",
            "propertyValue": "closedwon",
            "eventId": 1,
            "subscriptionId": 25,
            "portalId": 33,
            "occurredAt": 1765000000000,
            "subscriptionType": "deal.propertyChange",
            "attemptNumber": 0,
        },
        {
            "objectId": 2001,
            "objectTypeId": "0-48",
            "eventId": 2,
            "subscriptionId": 26,
            "portalId": 33,
            "occurredAt": 1765000001000,
            "subscriptionType": "object.creation",
            "attemptNumber": 0,
        },
    ]
    body = json.dumps(events).encode()
    url = ingest.url("ingest", "/v1/crm/hooks/hubspot/hs")
    headers = {"Content-Type": "application/json", **hubspot_signed(HS_SECRET, "POST", url, body)}
    status, reply = await post(http, url, body, headers)
    assert status == 200, reply
    forged = hubspot_signed("not-the-secret-0123", "POST", url, body)
    assert (await post(http, url, body, forged))[0] == 401
    assert all(auth == f"Bearer {HS_TOKEN}" for _, _, auth in hubspot.requests)

    # --- 简道云: a won record, a lost record whose reason is not mapped, a forgery ------
    jdy_url = ingest.url("ingest", "/v1/crm/hooks/jiandaoyun/jdy")
    won = {
        "op": "data_update",
        "data": {
            "_id": "r1",
            "_widget_1": "lead-jdy",
            "_widget_2": {"username": "zhangsan"},
            "_widget_3": "赢单",
        },
    }
    lost = {
        "op": "data_update",
        "data": {
            "_id": "r2",
            "_widget_1": "lead-jdy2",
            "_widget_2": {"username": "lisi"},
            "_widget_3": "输单",
            "_widget_4": "客户王五说太贵",
            "_widget_9": "13912345678",
        },
    }
    for i, record in enumerate((won, lost)):
        payload = json.dumps(record, ensure_ascii=False).encode()
        query, sig = jdy_signed(JDY_SECRET, payload)
        headers = {"Content-Type": "application/json", "X-JDY-DeliverId": f"dv-{i}", **sig}
        assert await post(http, jdy_url, payload, headers, query) == (200, b"success")
    payload = json.dumps(won).encode()
    query, _ = jdy_signed(JDY_SECRET, payload)
    bad = {"X-JDY-Signature": hashlib.sha1(b"forged").hexdigest()}
    assert await post(http, jdy_url, payload, bad, query) == (401, b"fail")

    # --- Salesforce: acked after publishing, redelivery acked and not re-sent ----------
    sf_url = ingest.url("ingest", "/v1/crm/hooks/salesforce/sf")
    message = outbound_message(
        ORG,
        [
            (
                "04l000000000001AAA",
                {
                    "Id": "006000000000001AAA",
                    "Leadloop_Lead_Id__c": "lead-sf",
                    "OwnerId": "005000000000001AAA",
                    "StageName": "Closed Won",
                },
            )
        ],
    )
    soap = {"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'}
    for _ in range(2):
        status, ack = await post(http, sf_url, message, soap)
        assert status == 200
        assert b"<Ack>true</Ack>" in ack
    other_org = outbound_message("00D000000000009AAA", [("04l000000000002AAA", {})])
    assert (await post(http, sf_url, other_org, soap))[0] == 403
    bomb = b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaa">]><x>&a;</x>'
    assert (await post(http, sf_url, bomb, soap))[0] == 400

    # --- what reached the topics --------------------------------------------------------
    stages = await collect(kafka_settings, "crm.stage-changes", 3, linger_ms=2000)
    changes = [StageChanged.model_validate_json(r.value) for r in stages]
    assert sorted((c.lead_id, c.stage.value) for c in changes) == [
        ("lead-hs", "won"),
        ("lead-jdy", "won"),
        ("lead-sf", "won"),
    ], "each stage change once: the forgery and the redelivery add nothing"
    assert all(r.key == c.lead_id.encode() for r, c in zip(stages, changes, strict=True))
    activities = await collect(kafka_settings, "crm.activities", 1, linger_ms=1000)
    (call,) = [ActivityRecorded.model_validate_json(r.value) for r in activities]
    assert (call.lead_id, call.kind.value, call.rep_id) == ("lead-hs", "call", "rep-1")
    rejected = await collect(kafka_settings, "crm.rejected", 1, linger_ms=2000)
    mine = [r for r in rejected if "source-endpoint" in dict(r.headers)]
    assert len(mine) == 1
    headers_of = dict(mine[0].headers)
    assert headers_of["reject-reason"] == b"unmapped_value"
    assert b"_widget_4" in headers_of["reject-detail"]
    text = mine[0].value.decode()
    assert "王五" not in text
    assert "13912345678" not in text


async def test_meta_lead_ads_end_to_end(
    ingest: ServiceGroup,
    graph: FakeGraph,
    kafka_settings: Any,
    http: aiohttp.ClientSession,
) -> None:
    url = ingest.url("ingest", "/v1/leads/lead_ads")
    hello = {
        "hub.mode": "subscribe",
        "hub.challenge": "1158201444",
        "hub.verify_token": VERIFY_TOKEN,
    }
    async with http.get(url, params=hello) as response:
        assert (response.status, await response.text()) == (200, "1158201444")
    async with http.get(url, params={**hello, "hub.verify_token": "guess"}) as response:
        assert response.status == 403

    graph.add_lead("900000000000001", {"email": "ann@example.com", "full_name": "Ann Lee"})
    graph.add_lead("900000000000002", {"phone_number": "+8613912345678", "full_name": "张伟"})
    envelope: dict[str, Any] = {
        "object": "page",
        "entry": [
            {
                "id": "153125381133",
                "time": 1438292065,
                "changes": [
                    {
                        "field": "leadgen",
                        "value": {
                            "leadgen_id": 900000000000001,
                            "page_id": 123,
                            "form_id": 456,
                            "ad_id": 789,
                            "created_time": 1440120384,
                        },
                    },
                    {
                        "field": "leadgen",
                        "value": {
                            "leadgen_id": "900000000000002",
                            "page_id": "123",
                            "form_id": "456",
                            "created_time": 1440120385,
                        },
                    },
                ],
            }
        ],
    }

    def signed(body: bytes, secret: str = APP_SECRET) -> dict[str, str]:
        mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
        return {"Content-Type": "application/json", "X-Hub-Signature-256": f"sha256={mac}"}

    body = json.dumps(envelope).encode()
    status, reply = await post(http, url, body, signed(body))
    assert status == 200, reply
    assert len(graph.requests) == 2
    for request in graph.requests:
        assert request.query["access_token"] == PAGE_TOKEN
        assert "appsecret_proof" in request.query  # checked by the fake against the app secret

    accepted = await collect(kafka_settings, "leads.accepted", 2, linger_ms=1500)
    leads = sorted(json.loads(r.value)["source_lead_id"] for r in accepted)
    assert leads == ["900000000000001", "900000000000002"]
    assert not any("张伟" in r.value.decode() for r in accepted)

    # --- Graph trouble: non-2xx, nothing published --------------------------------------
    graph.add_lead("900000000000003", {"email": "bo@example.com"})
    envelope["entry"][0]["changes"] = [
        {"field": "leadgen", "value": {"leadgen_id": "900000000000003", "page_id": "123"}}
    ]
    body = json.dumps(envelope).encode()
    graph.fail_next = 1
    status, _ = await post(http, url, body, signed(body))
    assert status >= 500
    assert (await post(http, url, body, signed(body, "not-the-app-secret")))[0] == 401
    raw = await collect(kafka_settings, "leads.raw", 3, within=5, linger_ms=1000)
    assert len(raw) == 2, "a failed Graph read publishes nothing"


async def test_vendor_webhook_replays_are_refused_and_our_failures_released(
    ingest: ServiceGroup,
    hubspot: FakeHubSpotCrm,
    kafka_settings: Any,
    database_url: str,
    http: aiohttp.ClientSession,
) -> None:
    hubspot.add("deals", "1101", {"leadloop_lead_id": "lead-r1", "hubspot_owner_id": "rep-1"})
    hubspot.add("deals", "1102", {"leadloop_lead_id": "lead-r2", "hubspot_owner_id": "rep-1"})

    def deal(object_id: int, event_id: int) -> bytes:
        change = {
            "objectId": object_id,
            "propertyName": "dealstage",
            "propertyValue": "closedwon",
            "eventId": event_id,
            "subscriptionId": 25,
            "portalId": 33,
            "occurredAt": 1765000000000 + event_id,
            "subscriptionType": "deal.propertyChange",
            "attemptNumber": 0,
        }
        return json.dumps([change]).encode()

    # --- HubSpot: the same signed request again is refused ------------------------------
    url = ingest.url("ingest", "/v1/crm/hooks/hubspot/hs")
    body = deal(1101, 11)
    headers = {"Content-Type": "application/json", **hubspot_signed(HS_SECRET, "POST", url, body)}
    assert (await post(http, url, body, headers))[0] == 200
    assert await post(http, url, body, headers) == (409, b'{"error": "replayed"}')

    # --- HubSpot's API fails on our side: 503, then HubSpot's retry is taken ------------
    body = deal(1102, 12)
    headers = {"Content-Type": "application/json", **hubspot_signed(HS_SECRET, "POST", url, body)}
    hubspot.fail_next = 1
    assert (await post(http, url, body, headers))[0] == 503
    assert (await post(http, url, body, headers))[0] == 200
    assert (await post(http, url, body, headers))[0] == 409

    # --- 简道云: the same signed push again is refused with ``fail`` -------------------
    jdy_url = ingest.url("ingest", "/v1/crm/hooks/jiandaoyun/jdy")
    won = {
        "op": "data_update",
        "data": {
            "_id": "r9",
            "_widget_1": "lead-r3",
            "_widget_2": {"username": "zs"},
            "_widget_3": "赢单",
        },
    }
    payload = json.dumps(won, ensure_ascii=False).encode()
    query, sig = jdy_signed(JDY_SECRET, payload)
    jdy_headers = {"Content-Type": "application/json", "X-JDY-DeliverId": "dv-r", **sig}
    assert await post(http, jdy_url, payload, jdy_headers, query) == (200, b"success")
    assert await post(http, jdy_url, payload, jdy_headers, query) == (409, b"fail")

    # --- each stage change once; the replays counted, the keys in PostgreSQL ------------
    stages = await collect(kafka_settings, "crm.stage-changes", 3, linger_ms=2000)
    leads = sorted(StageChanged.model_validate_json(r.value).lead_id for r in stages)
    assert leads == ["lead-r1", "lead-r2", "lead-r3"]
    async with http.get(ingest.url("ingest", "/metrics")) as response:
        metrics = await response.text()
    assert 'leadloop_ingest_webhook_replays_total{endpoint="crm-hook"} 3.0' in metrics
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT scope, expires_at - reserved_at AS kept FROM webhook_replays ORDER BY scope"
        )
    finally:
        await conn.close()
    assert [r["scope"] for r in rows] == [
        "crm-hook:hubspot:hs",
        "crm-hook:hubspot:hs",
        "crm-hook:jiandaoyun:jdy",
    ]
    # HubSpot's keys last its 5-minute window; 简道云's (no window) the retention.
    assert all(r["kept"].total_seconds() <= 302 for r in rows[:2])
    assert rows[2]["kept"].total_seconds() >= 7 * 24 * 3600
