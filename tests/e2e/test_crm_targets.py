"""Each CRM connector against a fake of its vendor that enforces the published format.

The fakes (tests/fakes) are written from the vendors' documentation; these tests prove
what a connector's Attempt says for each documented reply, and count effects through the
fakes' own records, not through the connector.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.utils import format_datetime
from typing import Any

import aiohttp
import pytest
from tests.fakes.crm_webhook import WebhookFake
from tests.fakes.hubspot import HubSpotFake
from tests.fakes.jiandaoyun import JiandaoyunFake
from tests.fakes.salesforce import SalesforceFake
from tests.support.ports import free_ports

from leadloop_handoff.adapters.targets import SessionFactory, build_target
from leadloop_handoff.adapters.targets.config import (
    HubSpotConfig,
    HubSpotProperties,
    JiandaoyunConfig,
    SalesforceConfig,
    SalesforceCustomFields,
    WebhookConfig,
)
from leadloop_handoff.domain.cards import Attempt, LeadCard, Target

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 2, 9, 30, tzinfo=UTC)
SECRET = "whsec-" + "0123456789abcdef" * 2
SF_ID, SF_SECRET = "3MVG9-client-id-000001", "sf-client-secret-0000000001"
HS_TOKEN = "pat-eu1-00000000-0000-0000-0000-000000000001"
JDY_KEY = "jdy-api-key-0000000000000001"
APP_ID, ENTRY_ID = "59264073a2a60c0c08e20bfb", "59264073a2a60c0c08e20bfd"
W_LEAD, W_NAME, W_SCORE, W_OWNER, W_EMAIL = (f"_widget_14327286514{n:02d}" for n in range(5))
ENV = {
    "HOOK_SECRET": SECRET,
    "SF_CLIENT_ID": SF_ID,
    "SF_CLIENT_SECRET": SF_SECRET,
    "HS_TOKEN": HS_TOKEN,
    "JDY_KEY": JDY_KEY,
}


def card(sequence: int = 1, **over: Any) -> LeadCard:
    values: dict[str, Any] = {
        "lead_id": "L-100",
        "assignment_id": f"A-{sequence}",
        "sequence": sequence,
        "kind": "initial" if sequence == 1 else "reassigned",
        "owner_id": f"rep-{sequence}",
        "owner_crm_id": f"005{sequence:015d}",
        "previous_owner_id": None if sequence == 1 else f"rep-{sequence - 1}",
        "team_id": "team-emea",
        "rule_id": "r-emea",
        "rule_version": "3",
        "strategy": "round_robin",
        "reason": "rule r-emea: round robin",
        "score": 64,
        "priority": "warm",
        "is_returning": False,
        "source": "web",
        "source_lead_id": "w-100",
        "occurred_at": NOW,
        "assigned_at": NOW + timedelta(seconds=sequence),
        "name": "Zhang San",
        "email": "zhang.san@example.cn",
        "phone": "+8613800138000",
        "company": "Example Ltd",
        "title": "采购经理",
        "message": "需要报价",
        "country": "CN",
        "region": "SH",
        "city": "上海",
        "industry": "Manufacturing",
    }
    values.update(over)
    return LeadCard(**values)


@pytest.fixture
async def client() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as c:
        yield c


# -- generic webhook ----------------------------------------------------------------


@pytest.fixture
async def hook() -> AsyncIterator[WebhookFake]:
    async with WebhookFake(SECRET.encode()) as fake:
        yield fake


def webhook_target(
    fake: WebhookFake, client: aiohttp.ClientSession | SessionFactory, **over: Any
) -> Target:
    cfg = WebhookConfig(name="hook", kind="webhook", url=fake.endpoint, secret_env="HOOK_SECRET",
                        **over)  # fmt: skip
    return build_target(cfg, ENV, client)


async def test_webhook_creates_then_updates_one_record(
    hook: WebhookFake, client: aiohttp.ClientSession
) -> None:
    target = webhook_target(hook, client)
    assert await target.upsert(card(1)) == Attempt("delivered", 200, "ok")
    assert await target.upsert(card(2)) == Attempt("delivered", 200, "ok")
    assert await target.upsert(card(2)) == Attempt("delivered", 200, "ok")  # a redelivery
    assert list(hook.records) == ["L-100"]
    held = hook.records["L-100"]
    assert (held["sequence"], held["owner_id"], held["routing"]["city"]) == (2, "rep-2", "上海")
    assert held["contact"]["title"] == "采购经理"
    assert [(r.op, r.key) for r in hook.received] == [
        ("lead.assigned", "L-100:A-1"),
        ("lead.assigned", "L-100:A-2"),
    ]
    assert hook.rejected == {}


async def test_webhook_pooled_and_erased(hook: WebhookFake, client: aiohttp.ClientSession) -> None:
    target = webhook_target(hook, client)
    pooled = card(1, kind="pooled", owner_id=None, owner_crm_id=None)
    assert (await target.upsert(pooled)).outcome == "delivered"
    assert hook.received[-1].op == "lead.pooled"
    assert await target.erase("L-100") == Attempt("delivered", 200, "ok")
    assert (hook.records, hook.erased) == ({}, {"L-100"})
    off = webhook_target(hook, client, on_erase="none")
    assert (off.supports_erase, await off.erase("L-100")) == (
        False,
        Attempt("delivered", None, "erase_disabled"),
    )


async def test_webhook_wrong_secret_fails_401(
    hook: WebhookFake, client: aiohttp.ClientSession
) -> None:
    cfg = WebhookConfig(name="hook", kind="webhook", url=hook.endpoint, secret_env="OTHER")
    target = build_target(cfg, {"OTHER": "not-the-shared-secret-0000"}, client)
    assert await target.upsert(card()) == Attempt("failed", 401, "http_401")
    assert (hook.rejected["auth"], hook.records) == (1, {})


async def test_webhook_rate_limit_passes_retry_after_seconds_and_dates(
    client: aiohttp.ClientSession,
) -> None:
    async with WebhookFake(SECRET.encode(), rate_per_s=1, retry_after="7") as fake:
        target = webhook_target(fake, client)
        assert (await target.upsert(card(1))).outcome == "delivered"
        assert await target.upsert(card(2)) == Attempt("retry", 429, "http_429", 7.0)
    date = format_datetime(datetime.now(UTC) + timedelta(seconds=120), usegmt=True)
    async with WebhookFake(SECRET.encode(), retry_after=date) as fake:
        fake.faults.throttle_for(5)
        attempt = await webhook_target(fake, client).upsert(card())
        assert (attempt.outcome, attempt.status, attempt.code) == ("retry", 429, "http_429")
        assert attempt.retry_after_s is not None
        assert 110 <= attempt.retry_after_s <= 120
        assert fake.rejected["rate_limit"] == 1


async def test_webhook_5xx_other_4xx_timeout_and_refused_connection(
    hook: WebhookFake, client: aiohttp.ClientSession
) -> None:
    target = webhook_target(hook, client, timeout_s=0.3)
    hook.faults.fail_next(1, 503)
    assert await target.upsert(card()) == Attempt("retry", 503, "http_503")
    hook.faults.fail_next(1, 410)
    assert await target.upsert(card()) == Attempt("failed", 410, "http_410")
    hook.faults.delay_next(1.0)
    assert await target.upsert(card()) == Attempt("retry", None, "timeout")
    assert await target.upsert(card()) == Attempt("delivered", 200, "ok")
    await asyncio.sleep(0.8)  # the timed-out request lands late: still one effect
    assert len(hook.effects("L-100")) == 1
    closed = WebhookConfig(name="closed", kind="webhook", secret_env="HOOK_SECRET",
                           url=f"http://127.0.0.1:{free_ports(1)[0]}/hook")  # fmt: skip
    refused = await build_target(closed, ENV, client).upsert(card())
    assert refused == Attempt("retry", None, "connect_error")


async def test_a_target_makes_its_own_session_on_first_send_and_closes_it(
    hook: WebhookFake, client: aiohttp.ClientSession
) -> None:
    made: list[aiohttp.ClientSession] = []

    def make() -> aiohttp.ClientSession:
        made.append(aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=2)))
        return made[-1]

    own = webhook_target(hook, make)
    assert made == []  # nothing made outside the running loop's first send
    assert await own.upsert(card(1)) == Attempt("delivered", 200, "ok")
    assert await own.upsert(card(2)) == Attempt("delivered", 200, "ok")
    assert len(made) == 1
    await own.aclose()
    assert made[0].closed
    lent = webhook_target(hook, client)
    assert (await lent.upsert(card(3))).outcome == "delivered"
    await lent.aclose()  # a session handed in is its owner's to close
    assert not client.closed


# -- Salesforce ------------------------------------------------------------------------


@pytest.fixture
async def sf() -> AsyncIterator[SalesforceFake]:
    async with SalesforceFake(SF_ID, SF_SECRET) as fake:
        yield fake


def sf_target(fake: SalesforceFake, client: aiohttp.ClientSession, **over: Any) -> Target:
    cfg = SalesforceConfig(
        name="sf", kind="salesforce", login_url=fake.url, instance_url=fake.url,
        client_id_env="SF_CLIENT_ID", client_secret_env="SF_CLIENT_SECRET",
        pool={"team-emea": "00G000000000001AAA"}, **over,
    )  # fmt: skip
    return build_target(cfg, ENV, client)


async def test_salesforce_creates_then_updates_one_lead(
    sf: SalesforceFake, client: aiohttp.ClientSession
) -> None:
    target = sf_target(sf, client)
    created = await target.upsert(card(1))
    assert (created.outcome, created.status, created.code) == ("delivered", 201, "ok")
    assert created.crm_id is not None
    assert created.crm_id.startswith("00Q")
    updated = await target.upsert(card(2, company=None))
    assert updated == Attempt("delivered", 200, "ok", None, created.crm_id)
    assert list(sf.records) == ["L-100"]
    lead = sf.records["L-100"]
    assert (lead["OwnerId"], lead["LastName"], lead["Company"]) == (
        "005000000000000002",
        "San",
        "(none)",
    )
    assert (lead["Leadloop_Score__c"], lead["State"]) == (64, "SH")
    assert sf.token_requests == 1  # cached
    pooled = await target.upsert(card(3, kind="pooled", owner_id=None, owner_crm_id=None))
    assert pooled.outcome == "delivered"
    assert sf.records["L-100"]["OwnerId"] == "00G000000000001AAA"


async def test_salesforce_refreshes_a_revoked_token_once(
    sf: SalesforceFake, client: aiohttp.ClientSession
) -> None:
    target = sf_target(sf, client)
    assert (await target.upsert(card(1))).status == 201
    sf.revoke_tokens()
    assert (await target.upsert(card(2))).status == 200
    assert (sf.token_requests, sf.rejected["auth"]) == (2, 1)
    assert [r.op for r in sf.received] == ["upsert", "upsert"]


async def test_salesforce_refreshes_once_for_concurrent_deliveries(
    sf: SalesforceFake, client: aiohttp.ClientSession
) -> None:
    target = sf_target(sf, client)
    assert (await target.upsert(card(1))).status == 201
    sf.revoke_tokens()
    cards = [card(1, lead_id=f"L-{n}") for n in range(4)]
    attempts = await asyncio.gather(*(target.upsert(c) for c in cards))
    assert [a.status for a in attempts] == [201, 201, 201, 201]
    assert sf.token_requests == 2  # one shared refresh, not one per delivery


async def test_salesforce_a_refused_fresh_token_fails_after_one_retry(
    sf: SalesforceFake, client: aiohttp.ClientSession
) -> None:
    sf.refuse_sessions = True
    target = sf_target(sf, client)
    assert await target.upsert(card()) == Attempt("failed", 401, "INVALID_SESSION_ID")
    assert (sf.token_requests, sf.rejected["auth"], sf.records) == (2, 2, {})


async def test_salesforce_bad_client_secret_fails_at_the_token(
    sf: SalesforceFake, client: aiohttp.ClientSession
) -> None:
    cfg = SalesforceConfig(name="sf", kind="salesforce", login_url=sf.url, instance_url=sf.url,
                           client_id_env="SF_CLIENT_ID", client_secret_env="WRONG")  # fmt: skip
    target = build_target(cfg, {**ENV, "WRONG": "not-the-client-secret-000"}, client)
    assert await target.upsert(card()) == Attempt("failed", 400, "oauth_invalid_client")
    assert sf.records == {}


async def test_salesforce_legacy_version_answers_204(
    sf: SalesforceFake, client: aiohttp.ClientSession
) -> None:
    target = sf_target(sf, client, api_version="v45.0")
    assert (await target.upsert(card(1))).status == 201
    assert await target.upsert(card(2)) == Attempt("delivered", 204, "ok")


async def test_salesforce_error_classes(sf: SalesforceFake, client: aiohttp.ClientSession) -> None:
    target = sf_target(sf, client, timeout_s=0.3)
    assert (await target.upsert(card(1))).outcome == "delivered"  # token cached first
    sf.faults.throttle_for(5)
    assert await target.upsert(card(2)) == Attempt("retry", 403, "REQUEST_LIMIT_EXCEEDED")
    sf.faults.throttle_for(0)
    sf.faults.fail_next(1, 503)
    assert await target.upsert(card(2)) == Attempt("retry", 503, "http_503")
    sf.faults.fail_next(1, 500)
    assert await target.upsert(card(2)) == Attempt("retry", 500, "http_500")
    sf.faults.delay_next(1.0)
    assert await target.upsert(card(2)) == Attempt("retry", None, "timeout")
    sf.faults.duplicate("L-200")
    assert await target.upsert(card(1, lead_id="L-200")) == Attempt(
        "failed", 300, "duplicate_external_id"
    )
    assert "L-200" not in sf.records
    await asyncio.sleep(0.8)
    assert list(sf.records) == ["L-100"]


async def test_salesforce_rate_window(client: aiohttp.ClientSession) -> None:
    async with SalesforceFake(SF_ID, SF_SECRET, rate_per_s=2) as fake:
        target = sf_target(fake, client)
        results = [await target.upsert(card(n)) for n in (1, 2, 3)]
    assert [a.status for a in results] == [201, 200, 403]
    assert results[2] == Attempt("retry", 403, "REQUEST_LIMIT_EXCEEDED")


async def test_salesforce_field_and_path_errors(
    sf: SalesforceFake, client: aiohttp.ClientSession
) -> None:
    unknown = SalesforceCustomFields(score="Lead_Score__c")
    target = sf_target(sf, client, custom_fields=unknown)
    assert await target.upsert(card()) == Attempt("failed", 400, "INVALID_FIELD")
    wrong_key = sf_target(sf, client, external_id_field="Other_Id__c")
    assert await wrong_key.upsert(card()) == Attempt("failed", 404, "NOT_FOUND")
    assert sf.records == {}
    assert sf.rejected["schema"] == 1
    assert sf.rejected["not_found"] == 1


async def test_salesforce_erase_delete_and_anonymise(
    sf: SalesforceFake, client: aiohttp.ClientSession
) -> None:
    target = sf_target(sf, client)
    await target.upsert(card(1))
    await target.upsert(card(1, lead_id="L-101"))
    assert await target.erase("L-100") == Attempt("delivered", 204, "ok")
    assert await target.erase("L-100") == Attempt("delivered", 404, "not_found")
    assert list(sf.records) == ["L-101"]
    anonymise = sf_target(sf, client, on_erase="anonymise")
    assert (await anonymise.erase("L-101")).status == 200
    lead = sf.records["L-101"]
    assert (lead["LastName"], lead["Email"], lead["Phone"], lead["City"]) == (
        "(erased)",
        None,
        None,
        None,
    )


# -- HubSpot ---------------------------------------------------------------------------


@pytest.fixture
async def hs() -> AsyncIterator[HubSpotFake]:
    async with HubSpotFake(HS_TOKEN) as fake:
        yield fake


def hs_target(fake: HubSpotFake, client: aiohttp.ClientSession, **over: Any) -> Target:
    cfg = HubSpotConfig(name="hs", kind="hubspot", base_url=fake.url, token_env="HS_TOKEN", **over)
    return build_target(cfg, ENV, client)


async def test_hubspot_creates_then_updates_one_contact(
    hs: HubSpotFake, client: aiohttp.ClientSession
) -> None:
    target = hs_target(hs, client)
    created = await target.upsert(card(1))
    assert created == Attempt("delivered", 200, "ok", None, "1")
    assert await target.upsert(card(2, owner_crm_id="88")) == Attempt(
        "delivered", 200, "ok", None, "1"
    )
    assert list(hs.contacts) == ["L-100"]
    props = hs.contacts["L-100"]["properties"]
    assert (props["hubspot_owner_id"], props["firstname"], props["lastname"]) == (
        "88",
        "Zhang",
        "San",
    )
    assert (props["leadloop_score"], props["leadloop_returning"]) == ("64", "false")
    assert [r.op for r in hs.received] == ["upsert", "upsert"]


async def test_hubspot_error_classes(hs: HubSpotFake, client: aiohttp.ClientSession) -> None:
    target = hs_target(hs, client, timeout_s=0.3)
    bad = HubSpotConfig(name="hs", kind="hubspot", base_url=hs.url, token_env="X")
    unauthorised = build_target(bad, {"X": "pat-eu1-not-the-token-000"}, client)
    assert await unauthorised.upsert(card()) == Attempt("failed", 401, "INVALID_AUTHENTICATION")
    hs.faults.throttle_for(5)
    assert await target.upsert(card()) == Attempt("retry", 429, "RATE_LIMIT")
    hs.faults.throttle_for(0)
    hs.faults.fail_next(1, 502)
    assert await target.upsert(card()) == Attempt("retry", 502, "http_502")
    hs.faults.delay_next(1.0)
    assert await target.upsert(card()) == Attempt("retry", None, "timeout")
    hs.faults.duplicate("L-300")
    assert await target.upsert(card(lead_id="L-300")) == Attempt("failed", 409, "CONFLICT")
    unknown = hs_target(hs, client, properties=HubSpotProperties(team="leadloop_squad"))
    assert await unknown.upsert(card(lead_id="L-301")) == Attempt("failed", 400, "VALIDATION_ERROR")
    await asyncio.sleep(0.8)  # the timed-out upsert landed after its caller gave up
    assert list(hs.contacts) == ["L-100"]
    assert await target.upsert(card()) == Attempt("delivered", 200, "ok", None, "1")
    assert list(hs.contacts) == ["L-100"]
    assert (hs.rejected["auth"], hs.rejected["schema"], hs.rejected["duplicate"]) == (1, 1, 1)


async def test_hubspot_rate_limits(client: aiohttp.ClientSession) -> None:
    async with HubSpotFake(HS_TOKEN, rate_per_s=2) as fake:
        target = hs_target(fake, client)
        results = [await target.upsert(card(n)) for n in (1, 2, 3)]
    assert [a.code for a in results] == ["ok", "ok", "RATE_LIMIT"]
    assert results[2].retry_after_s is None  # HubSpot documents no Retry-After
    async with HubSpotFake(HS_TOKEN, policy="DAILY", retry_after="30") as fake:
        fake.faults.throttle_for(5)
        assert await hs_target(fake, client).upsert(card()) == Attempt(
            "retry", 429, "RATE_LIMIT_DAILY", 30.0
        )


async def test_hubspot_erase(hs: HubSpotFake, client: aiohttp.ClientSession) -> None:
    target = hs_target(hs, client)
    await target.upsert(card())
    await target.upsert(card(lead_id="L-101"))
    assert await target.erase("L-100") == Attempt("delivered", 204, "ok")
    assert await target.erase("L-100") == Attempt("delivered", 404, "not_found")
    assert list(hs.contacts) == ["L-101"]
    anonymise = hs_target(hs, client, on_erase="anonymise")
    assert (await anonymise.erase("L-101")).outcome == "delivered"
    props = hs.contacts["L-101"]["properties"]
    assert (props["email"], props["phone"], props["lastname"]) == ("", "", "")


# -- 简道云 -------------------------------------------------------------------------------

WIDGETS = {W_LEAD: str, W_NAME: str, W_SCORE: int, W_OWNER: str, W_EMAIL: str}
FIELDS = {"lead_id": W_LEAD, "name": W_NAME, "score": W_SCORE, "owner": W_OWNER, "email": W_EMAIL}


@pytest.fixture
async def jdy() -> AsyncIterator[JiandaoyunFake]:
    async with JiandaoyunFake(JDY_KEY, APP_ID, ENTRY_ID, WIDGETS, lead_widget=W_LEAD) as fake:
        yield fake


def jdy_target(fake: JiandaoyunFake, client: aiohttp.ClientSession, **over: Any) -> Target:
    values: dict[str, Any] = {
        "name": "jdy", "kind": "jiandaoyun", "base_url": fake.url, "api_key_env": "JDY_KEY",
        "app_id": APP_ID, "entry_id": ENTRY_ID, "fields": FIELDS, **over,
    }  # fmt: skip
    return build_target(JiandaoyunConfig.model_validate(values), ENV, client)


async def test_jiandaoyun_creates_then_updates_one_entry(
    jdy: JiandaoyunFake, client: aiohttp.ClientSession
) -> None:
    target = jdy_target(jdy, client)
    created = await target.upsert(card(1))
    assert (created.outcome, created.status) == ("delivered", 200)
    entry_id = created.crm_id
    assert entry_id in jdy.entries
    assert await target.upsert(card(2)) == Attempt("delivered", 200, "ok", None, entry_id)
    assert jdy.by_lead("L-100") == [
        {
            "_id": entry_id,
            W_LEAD: "L-100",
            W_NAME: "Zhang San",
            W_SCORE: 64,
            W_OWNER: "005000000000000002",
            W_EMAIL: "zhang.san@example.cn",
        }
    ]
    assert [r.op for r in jdy.received] == ["create", "update"]


async def test_jiandaoyun_error_classes(jdy: JiandaoyunFake, client: aiohttp.ClientSession) -> None:
    target = jdy_target(jdy, client, timeout_s=0.3)
    wrong = build_target(
        JiandaoyunConfig.model_validate({
            "name": "jdy", "kind": "jiandaoyun", "base_url": jdy.url, "api_key_env": "OTHER",
            "app_id": APP_ID, "entry_id": ENTRY_ID, "fields": FIELDS,
        }),
        {"OTHER": "not-the-api-key-0000000"},
        client,
    )  # fmt: skip
    assert await wrong.upsert(card()) == Attempt("failed", 401, "8304")
    jdy.faults.throttle_for(5)
    assert await target.upsert(card()) == Attempt("retry", 400, "8303")
    jdy.faults.throttle_for(0)
    jdy.faults.fail_next(1, 502)
    assert await target.upsert(card()) == Attempt("retry", 502, "http_502")
    jdy.faults.delay_next(1.0)
    assert await target.upsert(card()) == Attempt("retry", None, "timeout")
    jdy.seed_duplicate("L-400")
    assert await target.upsert(card(lead_id="L-400")) == Attempt(
        "failed", 200, "duplicate_external_id"
    )
    unknown = jdy_target(jdy, client, fields={**FIELDS, "city": "_widget_9"})
    assert await unknown.upsert(card(lead_id="L-401")) == Attempt("failed", 400, "1")
    assert jdy.by_lead("L-100") == []  # every failure above left no entry
    assert jdy.rejected["auth"] == 1


async def test_jiandaoyun_rate_window_counts_each_request(client: aiohttp.ClientSession) -> None:
    async with JiandaoyunFake(
        JDY_KEY, APP_ID, ENTRY_ID, WIDGETS, lead_widget=W_LEAD, rate_per_s=1
    ) as fake:
        # An upsert is a lookup and a write: the write is the second request in the second.
        assert await jdy_target(fake, client).upsert(card()) == Attempt("retry", 400, "8303")
        assert fake.entries == {}


async def test_jiandaoyun_erase(jdy: JiandaoyunFake, client: aiohttp.ClientSession) -> None:
    target = jdy_target(jdy, client)
    first = await target.upsert(card())
    await target.upsert(card(lead_id="L-101"))
    assert await target.erase("L-100") == Attempt("delivered", 200, "ok", None, first.crm_id)
    assert await target.erase("L-100") == Attempt("delivered", None, "not_found")
    assert jdy.by_lead("L-100") == []
    anonymise = jdy_target(jdy, client, on_erase="anonymise")
    assert (await anonymise.erase("L-101")).outcome == "delivered"
    (entry,) = jdy.by_lead("L-101")
    assert (entry[W_NAME], entry[W_EMAIL], entry[W_SCORE]) == ("", "", 64)
