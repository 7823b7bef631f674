"""The pure parts of the CRM targets: field mappings, reply readings, Retry-After."""

from __future__ import annotations

import hashlib
import hmac
import json
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from multidict import CIMultiDict, CIMultiDictProxy

from leadloop_handoff.adapters.targets import hubspot, jiandaoyun, salesforce, webhook
from leadloop_handoff.adapters.targets._fields import crm_owner, split_name, truncate
from leadloop_handoff.adapters.targets._http import (
    Reply,
    first_error_code,
    generic_attempt,
    parse_retry_after,
    transport_attempt,
)
from leadloop_handoff.adapters.targets.config import (
    HubSpotConfig,
    HubSpotProperties,
    JiandaoyunConfig,
    SalesforceConfig,
    SalesforceCustomFields,
)
from leadloop_handoff.domain.cards import Attempt, LeadCard

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)


def card(**over: Any) -> LeadCard:
    values: dict[str, Any] = {
        "lead_id": "L-1",
        "assignment_id": "A-1",
        "sequence": 1,
        "kind": "initial",
        "owner_id": "rep-1",
        "owner_crm_id": None,
        "previous_owner_id": None,
        "team_id": "team-emea",
        "rule_id": "r-emea",
        "rule_version": "7",
        "strategy": "round_robin",
        "reason": "rule r-emea",
        "score": 72,
        "priority": "hot",
        "is_returning": False,
        "source": "web",
        "source_lead_id": "w-1",
        "occurred_at": NOW,
        "assigned_at": NOW,
        "name": "Jo van Dijk",
        "email": "jo@acme.io",
        "phone": "+31201234567",
        "company": "Acme",
        "title": "CTO",
        "message": "Call me",
        "country": "NL",
        "region": "NH",
        "city": "Amsterdam",
        "industry": "Software",
    }
    values.update(over)
    return LeadCard(**values)


SF = SalesforceConfig(
    name="sf", kind="salesforce", login_url="https://a.my.salesforce.com",
    instance_url="https://a.my.salesforce.com", client_id_env="ID", client_secret_env="SECRET",
    owner_ids={"rep-1": "005A"}, pool={"team-emea": "00GQ"},
)  # fmt: skip


def test_split_name() -> None:
    assert split_name("Jo van Dijk") == ("Jo van", "Dijk")
    assert split_name("张三") == (None, "张三")
    assert split_name("  ") == (None, None)
    assert split_name(None) == (None, None)
    assert truncate("abcdef", 3) == "abc"
    assert truncate(None, 3) is None


def test_crm_owner_prefers_the_card_then_the_map_and_pools_by_team() -> None:
    owners, pool = {"rep-1": "005A"}, {"team-emea": "00GQ"}
    assert crm_owner(card(owner_crm_id="005Z"), owners, pool) == "005Z"
    assert crm_owner(card(), owners, pool) == "005A"
    assert crm_owner(card(owner_id="rep-9"), owners, pool) is None
    pooled = card(kind="pooled", owner_id=None)
    assert crm_owner(pooled, owners, pool) == "00GQ"
    assert crm_owner(pooled, owners, {}) is None


def test_salesforce_lead_fields() -> None:
    assert salesforce.lead_fields(card(), SF) == {
        "FirstName": "Jo van",
        "LastName": "Dijk",
        "Company": "Acme",
        "Email": "jo@acme.io",
        "Phone": "+31201234567",
        "Title": "CTO",
        "Description": "Call me",
        "LeadSource": "web",
        "City": "Amsterdam",
        "State": "NH",
        "Country": "NL",
        "Industry": "Software",
        "OwnerId": "005A",
        "Leadloop_Priority__c": "hot",
        "Leadloop_Score__c": 72,
        "Leadloop_Rule__c": "r-emea",
        "Leadloop_Returning__c": False,
    }


def test_salesforce_placeholders_truncation_and_optional_custom_fields() -> None:
    no_custom = SalesforceCustomFields(priority=None, score=None, rule=None, returning=None)
    config = SF.model_copy(update={"custom_fields": no_custom})
    bare = card(name=None, company=None, email=None, phone=None, title=None, message=None,
                city="x" * 50, region=None, country=None, industry=None, kind="pooled",
                owner_id=None)  # fmt: skip
    assert salesforce.lead_fields(bare, config) == {
        "LastName": "(unknown)",
        "Company": "(none)",
        "LeadSource": "web",
        "City": "x" * 40,
        "OwnerId": "00GQ",
    }
    assert salesforce.anonymised_fields(SF)["LastName"] == "(erased)"
    assert salesforce.anonymised_fields(SF)["Email"] is None


def test_hubspot_contact_properties() -> None:
    config = HubSpotConfig(name="hs", kind="hubspot", token_env="T", owner_ids={"rep-1": "77"})
    assert hubspot.contact_properties(card(is_returning=True), config) == {
        "email": "jo@acme.io",
        "firstname": "Jo van",
        "lastname": "Dijk",
        "phone": "+31201234567",
        "company": "Acme",
        "jobtitle": "CTO",
        "city": "Amsterdam",
        "country": "NL",
        "state": "NH",
        "industry": "Software",
        "message": "Call me",
        "hubspot_owner_id": "77",
        "leadloop_priority": "hot",
        "leadloop_score": "72",
        "leadloop_team": "team-emea",
        "leadloop_rule": "r-emea",
        "leadloop_returning": "true",
    }
    quiet = config.model_copy(update={"properties": HubSpotProperties(team=None, rule=None)})
    props = hubspot.contact_properties(card(owner_id="rep-2", name="张三"), quiet)
    assert "leadloop_team" not in props
    assert "hubspot_owner_id" not in props
    assert (props["lastname"], "firstname" in props) == ("张三", False)
    assert all(isinstance(v, str) for v in props.values())


def test_jiandaoyun_entry_data() -> None:
    config = JiandaoyunConfig.model_validate({
        "name": "j", "kind": "jiandaoyun", "api_key_env": "K", "app_id": "a" * 24,
        "entry_id": "b" * 24, "owner_ids": {"rep-1": "zhang.san"},
        "fields": {"lead_id": "_widget_1", "name": "_widget_2", "score": "_widget_3",
                   "returning": "_widget_4", "owner": "_widget_5", "email": "_widget_6"},
    })  # fmt: skip
    assert jiandaoyun.entry_data(card(email=None), config) == {
        "_widget_1": {"value": "L-1"},
        "_widget_2": {"value": "Jo van Dijk"},
        "_widget_3": {"value": 72},
        "_widget_4": {"value": "否"},
        "_widget_5": {"value": "zhang.san"},
    }
    assert jiandaoyun.anonymised_data(config) == {
        "_widget_2": {"value": ""},
        "_widget_6": {"value": ""},
    }


def test_webhook_signature_and_body() -> None:
    headers = webhook.sign(b"k" * 16, b'{"a":1}', 1_700_000_000)
    mac = hmac.new(b"k" * 16, b'1700000000.{"a":1}', hashlib.sha256).hexdigest()
    assert headers == {
        "X-Leadloop-Timestamp": "1700000000",
        "X-Leadloop-Signature": f"sha256={mac}",
    }
    body = webhook.event_body(card(kind="pooled", owner_id=None))
    assert (body["type"], body["id"]) == ("lead.pooled", "L-1:A-1")
    assert body["lead"]["contact"]["email"] == "jo@acme.io"
    assert webhook.event_body(card())["type"] == "lead.assigned"


@pytest.mark.parametrize(
    ("header", "seconds"),
    [
        (None, None),
        ("", None),
        ("120", 120.0),
        ("soon", None),
        ("-5", None),
        (format_datetime(NOW + timedelta(seconds=30), usegmt=True), 30.0),
        (format_datetime(NOW - timedelta(seconds=30), usegmt=True), 0.0),
        ("99999999", 86400.0),
    ],
)
def test_parse_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header, NOW) == seconds


def reply(
    status: int, body: Any = None, headers: dict[str, str] | None = None, *, text: str = ""
) -> Reply:
    """A reply as ``send`` reads it: headers case-insensitive, as aiohttp gives them."""
    content = text.encode() if body is None else json.dumps(body).encode()
    return Reply(status, CIMultiDictProxy(CIMultiDict(headers or {})), content)


def test_generic_reading() -> None:
    assert generic_attempt(reply(204), NOW) == Attempt("delivered", 204, "ok")
    assert generic_attempt(reply(429, headers={"Retry-After": "3"}), NOW) == Attempt(
        "retry", 429, "http_429", 3.0
    )
    assert generic_attempt(reply(503), NOW) == Attempt("retry", 503, "http_503")
    assert generic_attempt(reply(422), NOW) == Attempt("failed", 422, "http_422")


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (TimeoutError(), "timeout"),
        (aiohttp.ServerTimeoutError("read timed out"), "timeout"),
        (aiohttp.ConnectionTimeoutError("connect timed out"), "timeout"),
        (aiohttp.ServerDisconnectedError(), "network_error"),
        (aiohttp.ClientPayloadError("truncated"), "network_error"),
        (aiohttp.ClientOSError(104, "reset by peer"), "network_error"),
    ],
)
def test_no_reply_codes(exc: BaseException, code: str) -> None:
    # connect_error (aiohttp.ClientConnectorError) is proven on a closed port in
    # tests/e2e/test_crm_targets.py.
    assert transport_attempt(exc) == Attempt("retry", None, code)


def test_error_codes_never_carry_free_text() -> None:
    assert first_error_code([{"errorCode": "NOT_FOUND"}], "errorCode") == "NOT_FOUND"
    assert first_error_code({"code": 8303}, "code") == "8303"
    assert first_error_code({"code": "jo@acme.io is invalid"}, "code") is None
    assert first_error_code({"code": True}, "code") is None
    assert first_error_code("<html>", "code") is None


@pytest.mark.parametrize(
    ("response", "erase", "expected"),
    [
        (reply(201, {"id": "00Q1", "success": True}), False,
         Attempt("delivered", 201, "ok", None, "00Q1")),
        (reply(204), False, Attempt("delivered", 204, "ok")),
        (reply(300, ["/a", "/b"]), False, Attempt("failed", 300, "duplicate_external_id")),
        (reply(403, [{"errorCode": "REQUEST_LIMIT_EXCEEDED", "message": "m"}]), False,
         Attempt("retry", 403, "REQUEST_LIMIT_EXCEEDED")),
        (reply(403, [{"errorCode": "INSUFFICIENT_ACCESS", "message": "m"}]), False,
         Attempt("failed", 403, "INSUFFICIENT_ACCESS")),
        (reply(400, [{"errorCode": "INVALID_FIELD", "message": "m"}]), False,
         Attempt("failed", 400, "INVALID_FIELD")),
        (reply(404, [{"errorCode": "NOT_FOUND", "message": "m"}]), False,
         Attempt("failed", 404, "NOT_FOUND")),
        (reply(404, [{"errorCode": "NOT_FOUND", "message": "m"}]), True,
         Attempt("delivered", 404, "not_found")),
        (reply(503, [{"errorCode": "SERVER_UNAVAILABLE", "message": "m"}]), False,
         Attempt("retry", 503, "http_503")),
        (reply(420), False, Attempt("retry", 420, "http_420")),
    ],
)  # fmt: skip
def test_salesforce_reading(response: Reply, erase: bool, expected: Attempt) -> None:
    assert salesforce.read_reply(response, erase=erase) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (reply(200, {"status": "COMPLETE", "results": [{"id": "51", "new": True}]}),
         Attempt("delivered", 200, "ok", None, "51")),
        (reply(207, {"status": "COMPLETE", "results": [], "numErrors": 1,
                     "errors": [{"category": "VALIDATION_ERROR", "message": "m"}]}),
         Attempt("failed", 207, "VALIDATION_ERROR")),
        (reply(429, {"errorType": "RATE_LIMIT", "policyName": "TEN_SECONDLY_ROLLING"}),
         Attempt("retry", 429, "RATE_LIMIT")),
        (reply(429, {"errorType": "RATE_LIMIT", "policyName": "DAILY"}, {"Retry-After": "60"}),
         Attempt("retry", 429, "RATE_LIMIT_DAILY", 60.0)),
        (reply(409, {"category": "CONFLICT", "message": "Contact already exists. Existing ID: 5"}),
         Attempt("failed", 409, "CONFLICT")),
        (reply(400, {"category": "VALIDATION_ERROR"}), Attempt("failed", 400, "VALIDATION_ERROR")),
        (reply(401, {"category": "INVALID_AUTHENTICATION"}),
         Attempt("failed", 401, "INVALID_AUTHENTICATION")),
        (reply(502), Attempt("retry", 502, "http_502")),
    ],
)  # fmt: skip
def test_hubspot_reading(response: Reply, expected: Attempt) -> None:
    assert hubspot.read_reply(response, NOW) == expected


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (reply(200, {"data": {"_id": "e1"}}), Attempt("delivered", 200, "ok", None, "e1")),
        (reply(200, {"status": "success"}), Attempt("delivered", 200, "ok")),
        (reply(400, {"code": 8303, "msg": "超出请求频率限制"}), Attempt("retry", 400, "8303")),
        (reply(400, {"code": 1, "msg": "bad"}), Attempt("failed", 400, "1")),
        (reply(429), Attempt("retry", 429, "http_429")),
        (reply(502, text="<html>Bad Gateway</html>"), Attempt("retry", 502, "http_502")),
    ],
)  # fmt: skip
def test_jiandaoyun_reading(response: Reply, expected: Attempt) -> None:
    assert jiandaoyun.read_reply(response) == expected
