"""ingest on the real stack: person-level dedupe, returning leads, the lead timeline,
CRM dead letters, the broken-producer guard, and conservation under replayed input."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.support.kafka import collect
from tests.support.ports import free_ports
from tests.support.processes import ServiceGroup
from tests.support.stack import running, stack_env

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

pytestmark = pytest.mark.e2e

GUARD_LIMIT = 5
ADMIN_TOKEN = "lifecycle-admin-" + uuid.uuid4().hex
(ADMIN_PORT,) = free_ports(1)


@pytest.fixture
def ingest(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[ServiceGroup]:
    env = stack_env(
        database_url,
        kafka_settings,
        tmp_path,
        LEADLOOP_IDENTITY_PEPPER=uuid.uuid4().hex,
        LEADLOOP_CONSECUTIVE_INVALID_LIMIT=str(GUARD_LIMIT),
        LEADLOOP_ADMIN_TOKEN=ADMIN_TOKEN,
        LEADLOOP_ADMIN__PORT=str(ADMIN_PORT),
    )
    with running(env, tmp_path, "ingest") as group:
        yield group


async def send(
    producer: AIOKafkaProducer, kafka: KafkaSettings, topic: str, value: Any, key: str | None
) -> None:
    body = value if isinstance(value, bytes) else json.dumps(value).encode()
    await producer.send_and_wait(
        qualified(topic, kafka.topic_prefix), body, key=key.encode() if key else None
    )


async def wait_for(conn: asyncpg.Connection, query: str, *args: Any, within: float = 30) -> Any:
    deadline = time.monotonic() + within
    while True:
        value = await conn.fetchval(query, *args)
        if value or time.monotonic() > deadline:
            return value
        await asyncio.sleep(0.2)


def now() -> str:
    return datetime.now(UTC).isoformat()


async def test_same_person_merges_while_open_and_returns_after_close(
    ingest: ServiceGroup,
    kafka_settings: KafkaSettings,
    database_url: str,
    producer: AIOKafkaProducer,
) -> None:
    k = kafka_settings
    first = {
        "source": "web_form",
        "source_lead_id": "a1",
        "email": "Mei.Lin@Example.com",
        "name": "林梅",
        "country": "CN",
    }
    await send(producer, k, "leads.raw", first, "web_form:a1")
    conn = await asyncpg.connect(database_url)
    try:
        lead_id = await wait_for(conn, "SELECT lead_id FROM leads WHERE source_lead_id = 'a1'")
        assert lead_id

        # The same person, another channel, the email written differently: merged.
        again = {
            "source": "wechat",
            "source_lead_id": "w9",
            "email": "mei.lin@example.COM",
            "phone": "13800138000",
        }
        await send(producer, k, "leads.raw", again, "wechat:w9")
        merged = await wait_for(conn, "SELECT lead_id FROM lead_merges WHERE source_lead_id = 'w9'")
        assert merged == lead_id
        outcome = await conn.fetchrow(
            "SELECT outcome, reason, lead_id FROM ingest_outcomes WHERE lead_id = $1 "
            "AND outcome = 'duplicate'",
            lead_id,
        )
        assert dict(outcome) == {
            "outcome": "duplicate",
            "reason": "same_person",
            "lead_id": lead_id,
        }

        # The exact record again (a redelivery by the channel): nothing changes.
        await send(producer, k, "leads.raw", first, "web_form:a1")

        # The CRM: assigned to rep-7, touched, then lost with a reason.
        assigned = {
            "event_id": str(uuid.uuid4()),
            "schema_version": 1,
            "occurred_at": now(),
            "assignment_id": str(uuid.uuid4()),
            "lead_id": lead_id,
            "owner_id": "rep-7",
            "team_id": "team-cn",
            "rule_id": "r",
            "rule_version": "1",
            "strategy": "round_robin",
            "kind": "initial",
            "previous_owner_id": None,
            "reason": "test",
            "lead_occurred_at": now(),
            "assigned_at": now(),
            "priority": "warm",
        }
        await send(producer, k, "leads.assigned", assigned, lead_id)
        touch = {
            "event_id": str(uuid.uuid4()),
            "lead_id": lead_id,
            "rep_id": "rep-7",
            "kind": "call",
            "occurred_at": now(),
        }
        await send(producer, k, "crm.activities", touch, lead_id)
        assert await wait_for(
            conn, "SELECT stage = 'contacted' FROM leads WHERE lead_id = $1", lead_id
        )
        lost = {
            "event_id": str(uuid.uuid4()),
            "lead_id": lead_id,
            "stage": "lost",
            "occurred_at": now(),
            "rep_id": "rep-7",
            "loss_reason": "timing",
        }
        await send(producer, k, "crm.stage-changes", lost, lead_id)
        await send(producer, k, "crm.stage-changes", lost, lead_id)  # redelivered
        assert await wait_for(
            conn, "SELECT closed_at IS NOT NULL FROM leads WHERE lead_id = $1", lead_id
        )
        row = await conn.fetchrow("SELECT stage, owner_id FROM leads WHERE lead_id = $1", lead_id)
        assert dict(row) == {"stage": "lost", "owner_id": "rep-7"}
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM lead_stage_changes WHERE lead_id = $1", lead_id
            )
            == 1
        )
        assert (
            await conn.fetchval("SELECT count(*) FROM lead_activities WHERE lead_id = $1", lead_id)
            == 1
        )

        # Months later the person comes back: a new lead, routed back to rep-7.
        back = {"source": "referral", "source_lead_id": "r2", "phone": "+86 138 0013 8000"}
        await send(producer, k, "leads.raw", back, "referral:r2")
        returning = await wait_for(conn, "SELECT lead_id FROM leads WHERE source_lead_id = 'r2'")
        assert returning
        assert returning != lead_id
        accepted = {
            json.loads(r.value)["lead_id"]: json.loads(r.value)
            for r in await collect(k, "leads.accepted", 2)
        }
        assert accepted[returning]["is_returning"] is True
        assert accepted[returning]["previous_owner_id"] == "rep-7"
        assert accepted[lead_id]["is_returning"] is False
        # Their only earlier lead was lost: no repurchase if this one is won.
        assert accepted[returning]["customer_won_before"] is False

        # The returning lead is won; the person comes back again (r3, by the phone r2
        # was known by), and that lead is lost; then once more (r4). Both are repeat
        # business: a lead of theirs was won, for r4 the one before the latest.
        async def close(lead: str, stage: str) -> None:
            change = {
                "event_id": str(uuid.uuid4()),
                "lead_id": lead,
                "stage": stage,
                "occurred_at": now(),
                "rep_id": "rep-7",
                **({"loss_reason": "timing"} if stage == "lost" else {}),
            }
            await send(producer, k, "crm.stage-changes", change, lead)
            assert await wait_for(
                conn, "SELECT stage = $2 FROM leads WHERE lead_id = $1", lead, stage
            )

        await close(returning, "won")
        later: list[str] = []
        for n, stage in (("r3", "lost"), ("r4", None)):
            body = {"source": "referral", "source_lead_id": n, "phone": "+86 138 0013 8000"}
            await send(producer, k, "leads.raw", body, f"referral:{n}")
            lead = await wait_for(conn, "SELECT lead_id FROM leads WHERE source_lead_id = $1", n)
            assert lead
            later.append(lead)
            if stage is not None:
                await close(lead, stage)
        accepted = {
            json.loads(r.value)["lead_id"]: json.loads(r.value)
            for r in await collect(k, "leads.accepted", 4)
        }
        assert [accepted[lead]["customer_won_before"] for lead in later] == [True, True]
        assert [accepted[lead]["is_returning"] for lead in later] == [True, True]
        stored = dict(
            await conn.fetch(
                "SELECT lead_id, customer_won_before FROM leads WHERE lead_id = ANY($1::text[])",
                [lead_id, returning, *later],
            )
        )
        assert stored == {lead_id: False, returning: False, later[0]: True, later[1]: True}

        counts = dict(
            await conn.fetch("SELECT outcome, count(*) FROM ingest_outcomes GROUP BY outcome")
        )
        assert counts == {"accepted": 4, "duplicate": 2}, "received = accepted + duplicate"
    finally:
        await conn.close()


async def test_unusable_crm_events_are_dead_lettered_with_a_reason(
    ingest: ServiceGroup,
    kafka_settings: KafkaSettings,
    database_url: str,
    producer: AIOKafkaProducer,
) -> None:
    k = kafka_settings
    await send(
        producer,
        k,
        "leads.raw",
        {"source": "web_form", "source_lead_id": "c1", "email": "c1@example.com"},
        None,
    )
    conn = await asyncpg.connect(database_url)
    try:
        lead_id = await wait_for(conn, "SELECT lead_id FROM leads WHERE source_lead_id = 'c1'")
    finally:
        await conn.close()
    bad = [
        (
            "crm.stage-changes",
            {
                "event_id": "s1",
                "lead_id": lead_id,
                "stage": "lost",
                "occurred_at": now(),
                "rep_id": "rep-1",
            },
            "missing_loss_reason",
        ),
        (
            "crm.stage-changes",
            {
                "event_id": "s2",
                "lead_id": lead_id,
                "stage": "dreaming",
                "occurred_at": now(),
                "rep_id": "rep-1",
            },
            "unknown_stage",
        ),
        (
            "crm.activities",
            {
                "event_id": "a1",
                "lead_id": "no-such-lead",
                "rep_id": "rep-1",
                "kind": "call",
                "occurred_at": now(),
            },
            "unknown_lead",
        ),
        ("crm.activities", b"{broken", "invalid_json"),
    ]
    for topic, value, _ in bad:
        await send(producer, k, topic, value, lead_id)
    rejected = await collect(k, "crm.rejected", len(bad))
    reasons = sorted(dict(r.headers)["reject-reason"].decode() for r in rejected)
    assert reasons == sorted(reason for _, _, reason in bad)
    assert ingest.alive("ingest")


async def test_a_broken_producer_halts_ingest_until_resumed(
    ingest: ServiceGroup,
    kafka_settings: KafkaSettings,
    database_url: str,
    producer: AIOKafkaProducer,
) -> None:
    k = kafka_settings
    garbage = 3 * GUARD_LIMIT
    for i in range(garbage):
        # One key: one partition, in order — the run the guard counts.
        await send(producer, k, "leads.raw", f"<html>error {i}</html>".encode(), "broken")

    deadline = time.monotonic() + 30
    halted: dict[str, Any] = {}
    while time.monotonic() < deadline:
        try:
            await asyncio.to_thread(
                urllib.request.urlopen, ingest.url("ingest", "/readyz"), timeout=2
            )
        except urllib.error.HTTPError as exc:
            halted = json.loads(exc.read())
            if halted.get("halted"):
                break
        await asyncio.sleep(0.3)
    assert halted.get("halted") is True, "ingest reports itself halted, not ready"

    conn = await asyncpg.connect(database_url)
    try:
        await asyncio.sleep(1)
        assert await conn.fetchval("SELECT count(*) FROM ingest_outcomes") == GUARD_LIMIT
        assert ingest.alive("ingest")

        # The operator looked, and decides to dead-letter the rest. A resume lets the held
        # records through and starts the count afresh, so when the garbage reached ingest
        # in more than one batch the next run of rejects halts it again (by design: the
        # guard watches for a broken producer after a resume too); the operator resumes
        # each time.
        request = urllib.request.Request(
            f"http://127.0.0.1:{ADMIN_PORT}/v1/admin/resume",
            method="POST",
            headers={"Authorization": f"Bearer {ADMIN_TOKEN}"},
        )
        response = await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
        assert json.loads(response.read()) == {"status": "resumed"}
        resumes = 1
        all_rejected = "SELECT count(*) = $1 FROM ingest_outcomes WHERE outcome = 'rejected'"
        deadline = time.monotonic() + 60
        while not await wait_for(conn, all_rejected, garbage, within=2):
            assert time.monotonic() < deadline, "the garbage was not all dead-lettered"
            try:
                await asyncio.to_thread(urllib.request.urlopen, request, timeout=5)
            except urllib.error.HTTPError as exc:
                if exc.code != 409:  # 409: not halted at this moment, still working
                    raise
                continue
            resumes += 1
            assert resumes <= garbage // GUARD_LIMIT, "halted more often than runs of rejects"
    finally:
        await conn.close()
    rejected = await collect(k, "leads.rejected", garbage)
    assert len(rejected) == garbage
