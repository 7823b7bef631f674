"""The read API, ``GET /v1/leads/{lead_id}``, against real PostgreSQL as the hand-off's role.

The reader runs on a LOGIN in ``leadloop_handoff`` (migration 0009's grants, nothing
more), so these tests also prove that the column-level grants on ``leads`` and
``sla_clocks`` suffice. The lead, its timeline and its clocks are written by the owner
as ingest and sla-monitor would. The endpoint is mounted by ``register_read_api`` on a
faust app whose web application (aiohttp, faust's web driver) is served here without
starting the app's Kafka side.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any, cast

import asyncpg
import faust
import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer
from faust.web.drivers.aiohttp import Web as AiohttpWeb
from structlog.testing import capture_logs
from tests.e2e.test_postgres_roles import login_roles
from tests.support.stack import Stack

from leadloop.clock import FixedClock
from leadloop_handoff.adapters.lead_reader import LeadReader
from leadloop_handoff.adapters.read_api import ReadApi, register_read_api
from leadloop_handoff.domain.access import CONTACT, SUMMARY, ClientEntry, Clients, token_digest

pytestmark = pytest.mark.integration

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
NOW = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)
SUMMARY_TOKEN = "summary-token-for-read-api-tests-0001"
CONTACT_TOKEN = "contact-token-for-read-api-tests-0002"
IDLE_TOKEN = "idle-token-for-read-api-tests-0003"
LIMITED_TOKEN = "limited-token-for-read-api-tests-0004"
EMAIL = "li.na.7731@example.org"
PHONE = "+8613977310000"
NAME = "李娜"
NOTE = "spoke to 李娜 about pricing"  # an activity outcome: free text, never shown


@dataclass
class Served:
    http: TestClient[web.Request, web.Application]
    owner: asyncpg.Connection
    pool: asyncpg.Pool
    ticks: list[float]

    async def get(self, lead_id: str, token: str | None) -> tuple[int, dict[str, Any], Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        resp = await self.http.get(f"/v1/leads/{lead_id}", headers=headers)
        return resp.status, await resp.json(), resp.headers

    async def audit_rows(self) -> list[tuple[str, str, str]]:
        rows = await self.owner.fetch(
            "SELECT client_id, lead_id, scope FROM lead_reads ORDER BY read_id"
        )
        return [(r["client_id"], r["lead_id"], r["scope"]) for r in rows]


def _clients() -> Clients:
    def entry(client_id: str, scopes: tuple[str, ...], token: str, **kw: int) -> ClientEntry:
        return ClientEntry(
            client_id=client_id, scopes=scopes, token_sha256=token_digest(token), **kw
        )

    return Clients(
        [
            entry("dashboard", (SUMMARY,), SUMMARY_TOKEN),
            entry("crm-widget", (SUMMARY, CONTACT), CONTACT_TOKEN),
            entry("suspended", (), IDLE_TOKEN),
            entry("limited", (SUMMARY,), LIMITED_TOKEN, rate_per_minute=6, burst=2),
        ]
    )


@pytest.fixture
async def served(stack: Stack, database_url: str) -> AsyncIterator[Served]:
    async with login_roles(stack.admin_url, database_url) as urls:
        pool = await asyncpg.create_pool(urls["handoff"], min_size=1, max_size=2)
        owner = await asyncpg.connect(database_url)
        ticks = [1000.0]
        api = ReadApi(
            store=LeadReader(pool),
            clients=_clients(),
            clock=FixedClock(NOW),
            monotonic=lambda: ticks[0],
        )

        app = faust.App("read-api-test", broker=f"kafka://{stack.bootstrap}")
        register_read_api(app, api)
        web_app = cast(AiohttpWeb, app.web).web_app  # faust's web driver is aiohttp
        client = TestClient(TestServer(web_app))
        await client.start_server()
        try:
            await _seed(owner)
            yield Served(client, owner, pool, ticks)
        finally:
            await client.close()
            await owner.close()
            await pool.close()


async def _seed(owner: asyncpg.Connection) -> None:
    """Lead L-1 with a timeline inserted out of order and three clocks (one stopped)."""
    await owner.execute(
        "INSERT INTO leads (lead_id, source, source_lead_id, email, phone, name, company, "
        "title, country, city, industry, product, company_size, budget, campaign, message, "
        "attributes, score, priority, occurred_at, accepted_at, accepted_event_id, "
        "raw_partition, raw_offset) VALUES ('L-1', 'web_form', 'wf-1', $1, $2, $3, "
        "'Acme 7731', 'CTO', 'CN', 'Shanghai', 'saas', 'crm', 120, 50000, 'spring', "
        "'call me', '{\"wechat\": \"ln7731\"}', 88, 'hot', $4, $4, 'acc-1', 0, 0)",
        EMAIL,
        PHONE,
        NAME,
        T0,
    )
    for event_id, owner_id, kind, minutes in [
        ("own-2", "rep-b", "reassigned", 10),
        ("own-1", "rep-a", "initial", 0),
    ]:
        await owner.execute(
            "INSERT INTO lead_ownership (event_id, lead_id, owner_id, kind, assigned_at) "
            "VALUES ($1, 'L-1', $2, $3, $4)",
            event_id,
            owner_id,
            kind,
            T0 + timedelta(minutes=minutes),
        )
    for event_id, rep, kind, minutes, outcome in [
        ("act-2", "rep-b", "note", 15, None),
        ("act-1", "rep-a", "call", 3, NOTE),
    ]:
        await owner.execute(
            "INSERT INTO lead_activities (event_id, lead_id, rep_id, kind, occurred_at, "
            "outcome, recorded_at) VALUES ($1, 'L-1', $2, $3, $4, $5, $4)",
            event_id,
            rep,
            kind,
            T0 + timedelta(minutes=minutes),
            outcome,
        )
    for event_id, rep, stage, minutes in [
        ("stg-2", "rep-b", "qualified", 20),
        ("stg-1", "rep-a", "contacted", 3),
    ]:
        await owner.execute(
            "INSERT INTO lead_stage_changes (event_id, lead_id, stage, occurred_at, rep_id, "
            "recorded_at) VALUES ($1, 'L-1', $2, $3, $4, $3)",
            event_id,
            stage,
            T0 + timedelta(minutes=minutes),
            rep,
        )
    for kind, due, stopped in [
        ("first_response", T0 + timedelta(minutes=5), T0 + timedelta(minutes=3)),
        ("follow_up", T0 + timedelta(hours=26), None),
        ("stage_stall", None, None),  # ladder exhausted: due 'infinity'
    ]:
        await owner.execute(
            "INSERT INTO sla_clocks (lead_id, kind, cycle, policy_id, owner_id, team_id, "
            "started_at, due_at, next_level, stopped_at) VALUES ('L-1', $1, 'c1', $2, "
            "'rep-b', 'team-east', $3, COALESCE($4, 'infinity'::timestamptz), 2, $5)",
            kind,
            f"policy-{kind}",
            T0 + timedelta(minutes=20),
            due,
            stopped,
        )


async def test_refusals(served: Served) -> None:
    status, body, headers = await served.get("L-1", None)
    assert (status, body) == (401, {"error": "missing_token"})
    assert headers["WWW-Authenticate"] == 'Bearer realm="leadloop"'
    status, body, headers = await served.get("L-1", "not-a-known-token")
    assert (status, body) == (401, {"error": "invalid_token"})
    assert 'error="invalid_token"' in headers["WWW-Authenticate"]
    with capture_logs() as logs:
        status, body, _ = await served.get("L-1", IDLE_TOKEN)
    assert (status, body) == (403, {"error": "insufficient_scope"})
    assert [(e["client"], e["status"], e["code"]) for e in logs] == [
        ("suspended", 403, "insufficient_scope")
    ]
    for lead_id in ("L-404", "x" * 129, "%00", "L-1%00"):
        status, body, _ = await served.get(lead_id, CONTACT_TOKEN)
        assert (status, body) == (404, {"error": "not_found"}), lead_id
    status, _, _ = await served.get("x" * 128, SUMMARY_TOKEN)
    assert status == 404  # a valid id that names no lead
    assert await served.audit_rows() == []


async def test_rate_limit_per_client(served: Served) -> None:
    assert [(await served.get("L-1", LIMITED_TOKEN))[0] for _ in range(3)] == [200, 200, 429]
    status, body, headers = await served.get("L-1", LIMITED_TOKEN)
    assert (status, body, headers["Retry-After"]) == (429, {"error": "rate_limited"}, "10")
    assert (await served.get("L-1", SUMMARY_TOKEN))[0] == 200  # another client's own bucket
    served.ticks[0] += 10  # six a minute: one more after ten seconds
    assert [(await served.get("L-1", LIMITED_TOKEN))[0] for _ in range(2)] == [200, 429]


async def test_summary_view_has_no_contact_and_is_not_audited(served: Served) -> None:
    with capture_logs() as logs:
        status, body, headers = await served.get("L-1", SUMMARY_TOKEN)
    assert status == 200
    assert headers["Cache-Control"] == "no-store"
    assert "contact" not in body
    text = json.dumps(body, ensure_ascii=False)
    for needle in (EMAIL, PHONE, NAME, NOTE, "Acme 7731", "ln7731", "call me"):
        assert needle not in text
    assert body["lead_id"] == "L-1"
    assert (body["owner_id"], body["stage"], body["score"], body["priority"]) == (
        "rep-b",
        "qualified",
        88,
        "hot",
    )
    assert body["routing"] == {
        "country": "CN",
        "region": None,
        "city": "Shanghai",
        "industry": "saas",
        "product": "crm",
        "company_size": 120,
        "budget": 50000.0,
        "campaign": "spring",
    }
    assert [(e["kind"], e["detail"], e["rep"]) for e in body["timeline"]] == [
        ("ownership", "initial", "rep-a"),
        ("activity", "call", "rep-a"),
        ("stage", "contacted", "rep-a"),
        ("ownership", "reassigned", "rep-b"),
        ("activity", "note", "rep-b"),
        ("stage", "qualified", "rep-b"),
    ]
    at = [datetime.fromisoformat(e["at"]) for e in body["timeline"]]
    assert at == sorted(at)
    assert at[0] == T0
    assert [(c["kind"], c["due_at"], c["next_level"]) for c in body["open_clocks"]] == [
        ("follow_up", (T0 + timedelta(hours=26)).isoformat(), 2),
        ("stage_stall", None, 2),
    ]
    assert await served.audit_rows() == []
    assert [(e["client"], e["status"], e["code"]) for e in logs] == [("dashboard", 200, "ok")]


async def test_contact_view_is_audited_once_per_read(served: Served) -> None:
    with capture_logs() as logs:
        status, body, _ = await served.get("L-1", CONTACT_TOKEN)
    assert status == 200
    assert body["contact"] == {
        "name": NAME,
        "email": EMAIL,
        "phone": PHONE,
        "company": "Acme 7731",
        "title": "CTO",
        "message": "call me",
        "attributes": {"wechat": "ln7731"},
    }
    assert NOTE not in json.dumps(body, ensure_ascii=False)
    assert await served.audit_rows() == [("crm-widget", "L-1", CONTACT)]
    read_at = await served.owner.fetchval("SELECT read_at FROM lead_reads")
    assert read_at == NOW
    assert (await served.get("L-1", CONTACT_TOKEN))[0] == 200
    assert (await served.get("L-1", SUMMARY_TOKEN))[0] == 200
    assert await served.audit_rows() == [("crm-widget", "L-1", CONTACT)] * 2
    logged = repr(logs)
    for needle in (CONTACT_TOKEN, EMAIL, PHONE, NAME):
        assert needle not in logged


async def test_no_contact_leaves_without_its_audit_row(served: Served) -> None:
    # The audit insert fails: the read's transaction fails with it and nothing is shown.
    await served.owner.execute("REVOKE INSERT ON lead_reads FROM leadloop_handoff")
    with capture_logs() as logs:
        status, body, _ = await served.get("L-1", CONTACT_TOKEN)
    assert (status, body) == (500, {"error": "internal_error"})
    assert logs[0]["error"] == "InsufficientPrivilegeError"
    assert await served.audit_rows() == []
    assert (await served.get("L-1", SUMMARY_TOKEN))[0] == 200


async def test_an_erased_lead_is_gone_for_readers(served: Served) -> None:
    await served.owner.execute(
        "UPDATE leads SET email = NULL, phone = NULL, name = NULL, company = NULL, "
        "title = NULL, message = NULL, attributes = '{}'::jsonb, erased_at = $1 "
        "WHERE lead_id = 'L-1'",
        NOW,
    )
    for token in (CONTACT_TOKEN, SUMMARY_TOKEN):
        status, body, _ = await served.get("L-1", token)
        assert (status, body) == (404, {"error": "not_found"})
    assert await served.audit_rows() == []


async def test_database_unreachable_is_503(served: Served) -> None:
    await served.pool.close()  # every acquire now fails as if PostgreSQL were gone
    status, body, headers = await served.get("L-1", CONTACT_TOKEN)
    assert (status, body, headers["Retry-After"]) == (503, {"error": "unavailable"}, "5")
    assert await served.audit_rows() == []
