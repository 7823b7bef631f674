"""Vendor CRM webhooks: signatures, mapping onto the contract, visible rejects, SOAP, and
the endpoints' decisions (publish before the 2xx / the Ack, dedupe, 401/403/503).

Expected signatures are computed here with ``hmac``/``hashlib``/``base64`` directly from
the vendors' documented algorithms, not with the service's code.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st

from leadloop.clock import FixedClock
from leadloop.events import ActivityRecorded, StageChanged, deterministic_id
from leadloop.messaging import OutMessage, RecordingPublisher
from leadloop_ingest.adapters.vendor_hooks import VendorHooks
from leadloop_ingest.domain.signatures import Failure
from leadloop_ingest.domain.vendor_signatures import (
    hubspot_uri,
    verify_hubspot_v3,
    verify_jiandaoyun,
)
from leadloop_ingest.domain.vendors.hubspot import HubSpotRecord, hubspot_lookup, map_hubspot
from leadloop_ingest.domain.vendors.jiandaoyun import map_jiandaoyun
from leadloop_ingest.domain.vendors.mapping import Emit, Ignore, Reject
from leadloop_ingest.domain.vendors.salesforce import map_salesforce, parse_outbound, soap_ack
from leadloop_ingest.domain.vendors.targets import Inbound, Target

NOW = datetime(2026, 12, 7, 1, 0, tzinfo=UTC)
SECRET = "hs-client-secret-0123456789"
JDY_SECRET = "jdy-push-secret-0123456789"
ORG = "00D000000000001AAA"

HUBSPOT = {
    "kind": "hubspot",
    "secret_env": "HS_SECRET",
    "api_token_env": "HS_TOKEN",
    "fields": {
        "lead_id": "leadloop_lead_id",
        "rep_id": "hubspot_owner_id",
        "loss_reason": "closed_lost_reason",
        "amount": "amount",
    },
    "stages": {"closedwon": "won", "closedlost": "lost", "salesqualifiedlead": "qualified"},
    "loss_reasons": {"Budget": "no_budget"},
    "activity_kinds": {"calls": "call", "meetings": "meeting"},
}
JDY = {
    "kind": "jiandaoyun",
    "secret_env": "JDY_SECRET",
    "emits": "stage_change",
    "fields": {
        "lead_id": "_widget_1",
        "rep_id": "_widget_2",
        "stage": "_widget_3",
        "loss_reason": "_widget_4",
        "amount": "_widget_5",
    },
    "stages": {"赢单": "won", "输单": "lost", "方案报价": "proposal"},
    "loss_reasons": {"无预算": "no_budget"},
}
JDY_ACT = {
    "kind": "jiandaoyun",
    "secret_env": "JDY_SECRET2",
    "emits": "activity",
    "fields": {
        "lead_id": "_widget_1",
        "rep_id": "_widget_2",
        "activity_kind": "_widget_3",
        "occurred_at": "_widget_4",
    },
    "activity_kinds": {"电话": "call"},
}
SALESFORCE = {
    "kind": "salesforce",
    "organization_id": ORG,
    "emits": "stage_change",
    "fields": {
        "lead_id": "Leadloop_Lead_Id__c",
        "rep_id": "OwnerId",
        "stage": "StageName",
        "loss_reason": "Loss_Reason__c",
        "amount": "Amount",
        "close_date": "CloseDate",
        "occurred_at": "LastModifiedDate",
    },
    "stages": {"Closed Won": "won", "Closed Lost": "lost"},
    "loss_reasons": {"No Budget": "no_budget"},
}
INBOUND = Inbound.model_validate(
    {"targets": {"hs": HUBSPOT, "jdy": JDY, "jdyact": JDY_ACT, "sf": SALESFORCE}}
)


def target(name: str) -> Target:
    return INBOUND.targets[name]


# ---------------------------------------------------------------------------- signatures


def hs_sign(method: str, uri: str, body: bytes, ts: str, secret: str = SECRET) -> str:
    message = (method + uri).encode() + body + ts.encode()
    return base64.b64encode(hmac.new(secret.encode(), message, hashlib.sha256).digest()).decode()


def test_hubspot_v3_known_good_and_tampered() -> None:
    uri = "https://leadloop.example.com/v1/crm/hooks/hubspot/hs?x=1"
    body = b'[{"objectId":1,"subscriptionType":"deal.propertyChange"}]'
    ts = str(int(NOW.timestamp() * 1000) - 60_000)
    headers = {"x-hubspot-signature-v3": hs_sign("POST", uri, body, ts)}
    headers["X-HubSpot-Request-Timestamp"] = ts

    def check(**kw: Any) -> Failure | None:
        args: dict[str, Any] = {"secret": SECRET.encode(), "method": "POST", "uri": uri}
        return verify_hubspot_v3(**{**args, "body": body, "headers": headers, "now": NOW, **kw})

    assert check() is None
    assert check(body=body + b" ") is Failure.BAD_SIGNATURE
    assert check(method="PUT") is Failure.BAD_SIGNATURE
    assert check(uri=uri + "&y=2") is Failure.BAD_SIGNATURE
    assert check(secret=b"another-secret-0123456") is Failure.BAD_SIGNATURE
    assert check(now=NOW + timedelta(minutes=6)) is Failure.STALE_TIMESTAMP
    assert check(headers={}) is Failure.MISSING_SIGNATURE
    assert check(headers={**headers, "X-HubSpot-Request-Timestamp": "12a"}) is (
        Failure.BAD_SIGNATURE
    )


def test_hubspot_uri_decodes_the_documented_escapes_only() -> None:
    # HubSpot signs the URI with these characters decoded (validating-requests, v3).
    raw = "https://h.example/p?a=%3A%2F%3F%40%21%24%27%28%29%2A%2C%3B&b=%20%26"
    assert hubspot_uri(raw) == "https://h.example/p?a=:/?@!$'()*,;&b=%20%26"
    ts = str(int(NOW.timestamp() * 1000))
    signed = hs_sign("POST", "https://h.example/p?a=:/?@!$'()*,;&b=%20%26", b"[]", ts)
    headers = {"X-HubSpot-Signature-v3": signed, "X-HubSpot-Request-Timestamp": ts}
    assert (
        verify_hubspot_v3(
            secret=SECRET.encode(), method="POST", uri=raw, body=b"[]", headers=headers, now=NOW
        )
        is None
    )


def test_jiandaoyun_known_good_vector() -> None:
    body = '{"op":"data_update","data":{"_id":"r1","_widget_3":"赢单"}}'.encode()
    content = f"0f5ade:{body.decode()}:{JDY_SECRET}:1498586609".encode()
    good = hashlib.sha1(content).hexdigest()
    args: dict[str, Any] = {"secret": JDY_SECRET.encode(), "body": body}
    assert (
        verify_jiandaoyun(
            **args, nonce="0f5ade", timestamp="1498586609", headers={"X-JDY-Signature": good}
        )
        is None
    )
    for nonce, ts, sig in [
        ("0f5adf", "1498586609", good),
        ("0f5ade", "1498586610", good),
        ("0f5ade", "1498586609", "sha1=" + good),
        ("0f5ade", "1498586609", "0" * 40),
    ]:
        got = verify_jiandaoyun(**args, nonce=nonce, timestamp=ts, headers={"X-JDY-Signature": sig})
        assert got is Failure.BAD_SIGNATURE
    missing = verify_jiandaoyun(
        **args, nonce=None, timestamp="1", headers={"X-JDY-Signature": good}
    )
    assert missing is Failure.MISSING_SIGNATURE


@given(st.binary(max_size=300), st.dictionaries(st.text(max_size=30), st.text(max_size=80)))
def test_signature_checks_never_raise(body: bytes, headers: dict[str, str]) -> None:
    verify_hubspot_v3(
        secret=b"s" * 20, method="POST", uri="http://x/\ud800", body=body, headers=headers, now=NOW
    )
    verify_jiandaoyun(secret=b"s" * 20, body=body, nonce="\ud800", timestamp="1", headers=headers)


# ------------------------------------------------------------------------------ HubSpot


def deal_change(value: str, **extra: Any) -> dict[str, Any]:
    return {
        "objectId": 1246965,
        "propertyName": "dealstage",
        "propertyValue": value,
        "eventId": 3816279340,
        "subscriptionId": 25,
        "portalId": 33,
        "occurredAt": 1462216307945,
        "subscriptionType": "deal.propertyChange",
        "attemptNumber": 0,
        **extra,
    }


RECORD = HubSpotRecord({"hubspot_owner_id": "rep-7", "amount": "1200.5"}, "lead-1")


def test_hubspot_deal_stage_change_maps_to_stage_changed() -> None:
    lookup = hubspot_lookup(deal_change("closedwon"), target("hs"))
    assert not isinstance(lookup, Ignore)
    assert (lookup.object_type, lookup.object_id) == ("deals", "1246965")
    assert "leadloop_lead_id" in lookup.properties
    assert "hubspot_owner_id" in lookup.properties
    out = map_hubspot(deal_change("closedwon"), RECORD, target("hs"), "hs", NOW)
    assert isinstance(out, Emit)
    assert isinstance(out.event, StageChanged)
    e = out.event
    assert (e.lead_id, e.stage, e.rep_id, e.amount) == ("lead-1", "won", "rep-7", 1200.5)
    assert e.occurred_at == datetime.fromtimestamp(1462216307.945, UTC)
    again = map_hubspot(deal_change("closedwon"), RECORD, target("hs"), "hs", NOW)
    assert isinstance(again, Emit)
    assert again.event.event_id == e.event_id


def test_hubspot_lost_needs_a_mapped_reason_and_unmapped_values_are_rejected() -> None:
    lost = HubSpotRecord({**RECORD.properties, "closed_lost_reason": "Budget"}, "lead-1")
    out = map_hubspot(deal_change("closedlost"), lost, target("hs"), "hs", NOW)
    assert isinstance(out, Emit)
    assert isinstance(out.event, StageChanged)
    assert out.event.loss_reason == "no_budget"
    no_reason = map_hubspot(deal_change("closedlost"), RECORD, target("hs"), "hs", NOW)
    assert isinstance(no_reason, Reject)
    assert no_reason.reason == "missing_loss_reason"
    odd = HubSpotRecord({**RECORD.properties, "closed_lost_reason": "Jane Doe said no"}, "lead-1")
    unmapped = map_hubspot(deal_change("closedlost"), odd, target("hs"), "hs", NOW)
    assert isinstance(unmapped, Reject)
    assert unmapped.reason == "unmapped_value"
    assert "closed_lost_reason" in unmapped.detail
    assert "Jane" not in unmapped.detail
    stage = map_hubspot(deal_change("somecustomstage"), RECORD, target("hs"), "hs", NOW)
    assert isinstance(stage, Reject)
    assert stage.reason == "unmapped_value"
    assert "dealstage" in stage.detail
    assert "somecustomstage" not in stage.detail
    assert stage.reference["object_id"] == "1246965"
    nolead = map_hubspot(deal_change("closedwon"), HubSpotRecord({}, None), target("hs"), "hs", NOW)
    assert isinstance(nolead, Reject)
    assert nolead.reason == "missing_lead_id"


def test_hubspot_call_creation_maps_to_activity_and_others_are_ignored() -> None:
    call = {
        "objectId": 99,
        "objectTypeId": "0-48",
        "subscriptionType": "object.creation",
        "eventId": 5,
        "occurredAt": 1462216307945,
    }
    out = map_hubspot(call, RECORD, target("hs"), "hs", NOW)
    assert isinstance(out, Emit)
    assert isinstance(out.event, ActivityRecorded)
    assert (out.event.kind, out.event.lead_id, out.event.rep_id) == ("call", "lead-1", "rep-7")
    email = {**call, "objectTypeId": "0-49"}  # emails are not in this target's kinds
    assert isinstance(hubspot_lookup(email, target("hs")), Ignore)
    other = deal_change("x", propertyName="amount")
    assert isinstance(hubspot_lookup(other, target("hs")), Ignore)
    assert isinstance(hubspot_lookup({"subscriptionType": 3}, target("hs")), Ignore)


# ------------------------------------------------------------------------------ 简道云


def jdy_body(op: str = "data_update", **data: Any) -> bytes:
    record = {"_id": "5c6b9a", "_widget_1": "lead-9", "_widget_2": {"username": "zhangsan"}}
    return json.dumps({"op": op, "data": {**record, **data}}, ensure_ascii=False).encode()


def test_jiandaoyun_stage_change_and_rejects() -> None:
    out = map_jiandaoyun(
        jdy_body(_widget_3="赢单", _widget_5=8800), "d1", target("jdy"), "jdy", NOW
    )
    assert isinstance(out, Emit)
    assert isinstance(out.event, StageChanged)
    assert (out.event.lead_id, out.event.stage, out.event.rep_id) == ("lead-9", "won", "zhangsan")
    assert out.event.amount == 8800
    # A later edit of the same record that leaves the stage is the same event.
    later = map_jiandaoyun(jdy_body(_widget_3="赢单", _widget_5=9), "d2", target("jdy"), "jdy", NOW)
    assert isinstance(later, Emit)
    assert later.event.event_id == out.event.event_id
    lost = map_jiandaoyun(
        jdy_body(_widget_3="输单", _widget_4="无预算"), "d3", target("jdy"), "jdy", NOW
    )
    assert isinstance(lost, Emit)
    assert isinstance(lost.event, StageChanged)
    assert lost.event.loss_reason == "no_budget"
    odd = map_jiandaoyun(
        jdy_body(_widget_3="输单", _widget_4="张三不要了"), "d4", target("jdy"), "jdy", NOW
    )
    assert isinstance(odd, Reject)
    assert odd.reason == "unmapped_value"
    assert "_widget_4" in odd.detail
    assert "张三" not in odd.detail
    assert odd.reference == {
        "vendor": "jiandaoyun",
        "target": "jdy",
        "deliver_id": "d4",
        "record_id": "5c6b9a",
    }
    assert isinstance(
        map_jiandaoyun(jdy_body("data_remove"), "d5", target("jdy"), "jdy", NOW), Ignore
    )
    missing = map_jiandaoyun(
        jdy_body(_widget_1="", _widget_3="赢单"), "d6", target("jdy"), "jdy", NOW
    )
    assert isinstance(missing, Reject)
    assert missing.reason == "missing_lead_id"
    garbage = map_jiandaoyun(b"[1,2]", "d7", target("jdy"), "jdy", NOW)
    assert isinstance(garbage, Reject)
    assert garbage.reason == "schema_violation"


def test_jiandaoyun_activity() -> None:
    body = jdy_body("data_create", _widget_3="电话", _widget_4="2026-12-06T09:30:00.000Z")
    out = map_jiandaoyun(body, "d1", target("jdyact"), "jdyact", NOW)
    assert isinstance(out, Emit)
    assert isinstance(out.event, ActivityRecorded)
    assert out.event.kind == "call"
    assert out.event.occurred_at == datetime(2026, 12, 6, 9, 30, tzinfo=UTC)
    visit = map_jiandaoyun(
        jdy_body("data_create", _widget_3="拜访"), "d", target("jdyact"), "jdyact", NOW
    )
    assert isinstance(visit, Reject)
    assert visit.reason == "unmapped_value"


# ---------------------------------------------------------------------------- Salesforce


def envelope(notifications: str, org: str = ORG) -> bytes:
    return (
        '<?xml version="1.0" encoding="UTF-8"?>'
        '<soapenv:Envelope xmlns:soapenv="http://schemas.xmlsoap.org/soap/envelope/" '
        'xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"><soapenv:Body>'
        '<notifications xmlns="http://soap.sforce.com/2005/09/outbound">'
        f"<OrganizationId>{org}</OrganizationId><ActionId>04k000000000001AAA</ActionId>"
        '<SessionId xsi:nil="true"/>'
        f"{notifications}</notifications></soapenv:Body></soapenv:Envelope>"
    ).encode()


def notification(nid: str, stage: str, reason: str | None = None) -> str:
    loss = (
        '<sf:Loss_Reason__c xsi:nil="true"/>'
        if reason is None
        else f"<sf:Loss_Reason__c>{reason}</sf:Loss_Reason__c>"
    )
    return (
        f"<Notification><Id>{nid}</Id>"
        '<sObject xsi:type="sf:Opportunity" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        "<sf:Id>006000000000001AAA</sf:Id><sf:Leadloop_Lead_Id__c>lead-5</sf:Leadloop_Lead_Id__c>"
        f"<sf:OwnerId>005000000000001AAA</sf:OwnerId><sf:StageName>{stage}</sf:StageName>"
        f"{loss}<sf:Amount>25000.0</sf:Amount><sf:CloseDate>2026-12-31</sf:CloseDate>"
        "<sf:LastModifiedDate>2026-12-06T10:00:00.000Z</sf:LastModifiedDate>"
        "</sObject></Notification>"
    )


def test_salesforce_outbound_message_parses_and_maps() -> None:
    body = envelope(
        notification("04l000000000001AAA", "Closed Won")
        + notification("04l000000000002AAA", "Closed Lost", "No Budget")
        + notification("04l000000000003AAA", "Prospecting")
    )
    message = parse_outbound(body)
    assert not isinstance(message, Reject)
    assert message.organization_id == ORG
    assert len(message.notifications) == 3
    assert message.notifications[0].sobject_type == "Opportunity"
    assert message.notifications[0].fields["Loss_Reason__c"] is None
    won, lost, odd = (map_salesforce(n, target("sf"), "sf", NOW) for n in message.notifications)
    assert isinstance(won, Emit)
    assert isinstance(won.event, StageChanged)
    assert won.event.event_id == deterministic_id("salesforce", "sf", "04l000000000001AAA")
    assert (won.event.stage, won.event.amount) == ("won", 25000.0)
    assert won.event.expected_close_date == date(2026, 12, 31)
    assert won.event.occurred_at == datetime(2026, 12, 6, 10, tzinfo=UTC)
    assert isinstance(lost, Emit)
    assert isinstance(lost.event, StageChanged)
    assert lost.event.loss_reason == "no_budget"
    assert isinstance(odd, Reject)
    assert odd.reason == "unmapped_value"
    assert odd.reference["notification_id"] == "04l000000000003AAA"


def test_salesforce_refuses_dtds_entities_and_non_soap() -> None:
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE lolz [<!ENTITY lol "lol">'
        b'<!ENTITY lol2 "&lol;&lol;&lol;">]><lolz>&lol2;</lolz>'
    )
    assert parse_outbound(bomb) == Reject("forbidden_xml", "DTDs and entities are not accepted")
    external = b'<!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><x>&e;</x>'
    assert isinstance(parse_outbound(external), Reject)
    assert parse_outbound(b"<a>").reason == "invalid_xml"  # type: ignore[union-attr]
    assert parse_outbound(b"<a/>").reason == "schema_violation"  # type: ignore[union-attr]
    assert parse_outbound(b"\xff\xfe<").reason == "invalid_xml"  # type: ignore[union-attr]


def test_soap_ack_is_the_documented_response() -> None:
    ack = soap_ack().decode()
    assert '<notificationsResponse xmlns="http://soap.sforce.com/2005/09/outbound">' in ack
    assert "<Ack>true</Ack>" in ack


@given(st.binary(max_size=500))
def test_parsers_and_mappers_never_raise_on_arbitrary_bytes(body: bytes) -> None:
    parse_outbound(body)
    map_jiandaoyun(body, None, target("jdy"), "jdy", NOW)
    map_jiandaoyun(body, "x", target("jdyact"), "jdyact", NOW)


@given(
    st.recursive(
        st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
        lambda inner: (
            st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4)
        ),
        max_leaves=20,
    )
)
def test_hubspot_mapping_never_raises_on_arbitrary_json(value: Any) -> None:
    for event in (value, deal_change("closedwon", propertyValue=value), {"occurredAt": value}):
        if isinstance(event, dict):
            hubspot_lookup(event, target("hs"))
            map_hubspot(
                event, HubSpotRecord({"hubspot_owner_id": value}, "l"), target("hs"), "hs", NOW
            )
    body = json.dumps({"op": "data_update", "data": {"_widget_1": value, "_widget_3": value}})
    map_jiandaoyun(body.encode(), "d", target("jdy"), "jdy", NOW)


def test_config_is_validated() -> None:
    with pytest.raises(ValueError, match="organization_id"):
        Target.model_validate({**SALESFORCE, "organization_id": None})
    with pytest.raises(ValueError, match="only leadloop sets"):
        Target.model_validate({**JDY, "stages": {"x": "assigned"}})
    with pytest.raises(ValueError, match="secret_env"):
        Target.model_validate({**JDY, "secret_env": None})
    with pytest.raises(ValueError, match="secret_env"):
        Target.model_validate({**SALESFORCE, "secret_env": "SOME_SECRET"})
    with pytest.raises(ValueError, match="should match pattern"):
        Target.model_validate({**JDY, "secret_env": "the-secret-itself!"})


# ------------------------------------------------------------------------- the endpoints


class FailingPublisher:
    async def publish(self, messages: Sequence[OutMessage]) -> None:
        raise ConnectionError("broker down")


async def chunks(body: bytes) -> AsyncIterator[bytes]:
    yield body


def hooks(publisher: Any, handler: Any = None) -> VendorHooks:
    transport = httpx.MockTransport(handler or (lambda r: httpx.Response(500)))
    return VendorHooks(
        inbound=INBOUND,
        secrets={"hs": SECRET.encode(), "jdy": JDY_SECRET.encode(), "jdyact": b"x" * 20},
        api_tokens={"hs": "pat-token-0123456789"},
        publisher=publisher,
        clock=FixedClock(NOW),
        http=httpx.AsyncClient(transport=transport),
    )


async def post(h: VendorHooks, vendor: str, name: str, body: bytes, **kw: Any) -> Any:
    return await h.handle(
        vendor,
        name,
        method="POST",
        uri=kw.pop("uri", f"http://127.0.0.1/v1/crm/hooks/{vendor}/{name}"),
        query=kw.pop("query", {}),
        headers=kw.pop("headers", {}),
        chunks=chunks(body),
    )


async def test_salesforce_acks_only_after_publishing_and_dedupes() -> None:
    recorder = RecordingPublisher()
    h = hooks(recorder)
    body = envelope(notification("04l000000000001AAA", "Closed Won"))
    first = await post(h, "salesforce", "sf", body)
    assert first.status == 200
    assert b"<Ack>true</Ack>" in first.body
    assert [m.topic for m in recorder.messages] == ["crm.stage-changes"]
    assert recorder.messages[0].key == b"lead-5"
    again = await post(h, "salesforce", "sf", body)
    assert again.status == 200
    assert len(recorder.messages) == 1, "a redelivery is acked but not sent again"
    down = await post(hooks(FailingPublisher()), "salesforce", "sf", body)
    assert down.status == 503
    assert b"Ack" not in down.body
    wrong = await post(
        h, "salesforce", "sf", envelope(notification("04lx", "Closed Won"), "00D000000000009AAA")
    )
    assert wrong.status == 403
    assert (await post(h, "salesforce", "nope", body)).status == 404
    assert (await post(h, "hubspot", "sf", body)).status == 404


async def test_unmapped_values_go_to_crm_rejected_without_the_body() -> None:
    recorder = RecordingPublisher()
    h = hooks(recorder)
    body = jdy_body(_widget_3="输单", _widget_4="张三不要了", _widget_9="13912345678")
    query = {"nonce": "abc", "timestamp": "1700000000"}
    content = b"abc:" + body + b":" + JDY_SECRET.encode() + b":1700000000"
    headers = {"X-JDY-Signature": hashlib.sha1(content).hexdigest(), "X-JDY-DeliverId": "dv-1"}
    reply = await post(h, "jiandaoyun", "jdy", body, query=query, headers=headers)
    assert (reply.status, reply.body) == (200, b"success")
    (message,) = recorder.messages
    assert message.topic == "crm.rejected"
    assert dict(message.headers)["reject-reason"] == b"unmapped_value"
    assert "139" not in message.value.decode()
    assert "张三" not in message.value.decode()
    bad = await post(
        h, "jiandaoyun", "jdy", body, query=query, headers={"X-JDY-Signature": "0" * 40}
    )
    assert (bad.status, bad.body) == (401, b"fail")


async def test_hubspot_reads_the_record_and_its_contact() -> None:
    seen: list[httpx.Request] = []

    def api(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if request.url.path == "/crm/v3/objects/deals/1246965":
            return httpx.Response(
                200,
                json={
                    "id": "1246965",
                    "properties": {"hubspot_owner_id": "rep-7"},
                    "associations": {"contacts": {"results": [{"id": "501"}]}},
                },
            )
        if request.url.path == "/crm/v3/objects/contacts/501":
            return httpx.Response(
                200, json={"id": "501", "properties": {"leadloop_lead_id": "L-1"}}
            )
        return httpx.Response(404)

    recorder = RecordingPublisher()
    h = hooks(recorder, api)
    body = json.dumps([deal_change("closedwon")]).encode()
    uri = "http://127.0.0.1/v1/crm/hooks/hubspot/hs"
    ts = str(int(NOW.timestamp() * 1000))
    headers = {"X-HubSpot-Signature-v3": hs_sign("POST", uri, body, ts)}
    headers["X-HubSpot-Request-Timestamp"] = ts
    reply = await post(h, "hubspot", "hs", body, uri=uri, headers=headers)
    assert reply.status == 200, reply.body
    assert seen[0].headers["Authorization"] == "Bearer pat-token-0123456789"
    (message,) = recorder.messages
    event = StageChanged.model_validate_json(message.value)
    assert (event.lead_id, event.stage, event.rep_id) == ("L-1", "won", "rep-7")
    # HubSpot's API down: 503 and nothing published, so HubSpot retries the batch.
    down = hooks(RecordingPublisher())
    assert (await post(down, "hubspot", "hs", body, uri=uri, headers=headers)).status == 503
    forged = {**headers, "X-HubSpot-Signature-v3": hs_sign("POST", uri, body, ts, "wrong-secret")}
    assert (await post(h, "hubspot", "hs", body, uri=uri, headers=forged)).status == 401


def test_the_inbound_file_is_checked_at_start_naming_file_and_field(tmp_path: Any) -> None:
    from pathlib import Path

    from leadloop.config_file import ConfigFileError
    from leadloop_ingest.adapters.vendor_hooks import load_inbound

    shipped = Path(__file__).resolve().parents[3] / "config" / "crm-inbound.yaml"
    env = {
        name: "x" * 20
        for name in (
            "LEADLOOP_HUBSPOT_CLIENT_SECRET",
            "LEADLOOP_HUBSPOT_API_TOKEN",
            "LEADLOOP_JDY_PUSH_SECRET",
            "LEADLOOP_JDY_FOLLOWUP_SECRET",
        )
    }
    assert set(load_inbound(shipped, env).inbound.targets) >= {
        "hubspot",
        "salesforce_opportunities",
    }
    with pytest.raises(
        ConfigFileError,
        match=r"targets\.jiandaoyun_opportunities\.secret_env: .*LEADLOOP_JDY_PUSH_SECRET",
    ):
        load_inbound(shipped, {**env, "LEADLOOP_JDY_PUSH_SECRET": "short"})
    bad = tmp_path / "inbound.yaml"
    bad.write_text(
        "targets:\n  sf:\n    kind: salesforce\n    emits: stage_change\n"
        "    fields: {lead_id: X, stage: S}\n    stages: {Won: won}\n"
    )
    with pytest.raises(ConfigFileError, match=r"inbound\.yaml: targets\.sf.*organization_id"):
        load_inbound(bad, {})
    bad.write_text(
        "targets:\n  jdy:\n"
        + "\n".join(
            f"    {line}"
            for line in [
                "kind: jiandaoyun",
                "secret_env: JDY_S",
                "emits: stage_change",
                "fields: {lead_id: a, stage: b}",
                "stages: {x: closed}",
            ]
        )
        + "\n"
    )
    with pytest.raises(ConfigFileError, match=r"targets\.jdy\.stages\.x"):
        load_inbound(bad, {"JDY_S": "y" * 20})
