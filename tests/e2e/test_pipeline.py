"""The whole loop on the real broker and database, with the four services as processes.

Leads go onto ``leads.raw``; the test observes ``leads.accepted``, ``leads.assigned``,
rows in PostgreSQL, first-response escalations for the leads nobody touched (and none
for the one that was touched), dead letters with reason headers, and the counters on
``/metrics`` — then stops the services with SIGTERM and expects clean exits.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.support.checker import read_topic
from tests.support.kafka import collect
from tests.support.processes import ServiceGroup
from tests.support.stack import metric_totals, running, stack_env

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

pytestmark = pytest.mark.e2e

FIRST_RESPONSE_LIMIT_S = 6
SLA_POLICY = f"""
policies:
  - policy_id: first-response-test
    kind: first_response
    limit_seconds: {FIRST_RESPONSE_LIMIT_S}
    ladder:
      - {{level: 1, after_seconds: 0, action: remind_owner}}
      - {{level: 2, after_seconds: 2, action: notify_manager}}
"""

# Personal data the test seeds and then looks for downstream.
CANARY_EMAIL = "Canary.Person@Example.COM"
CANARY_PHONE = "+86 139 1234 5678"
CANARY_NAME = "金丝雀测试"


@pytest.fixture
def services(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[ServiceGroup]:
    policy = tmp_path / "sla.yaml"
    policy.write_text(SLA_POLICY)
    # Every second counts: the shipped team calendars would make the breaches depend on
    # the hour the suite runs at.
    days = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
    calendars = tmp_path / "calendars.yaml"
    calendars.write_text(
        "default: always\ncalendars:\n  always:\n    timezone: UTC\n    weekly:\n"
        + "".join(f'      {day}: ["00:00-24:00"]\n' for day in days)
    )
    env = stack_env(
        database_url,
        kafka_settings,
        tmp_path,
        LEADLOOP_IDENTITY_PEPPER=uuid.uuid4().hex,
        LEADLOOP_POLICIES_FILE=str(policy),
        LEADLOOP_CALENDARS_FILE=str(calendars),
        LEADLOOP_TICK_SECONDS="0.2",
    )
    with running(env, tmp_path) as group:
        yield group


def lead(source_lead_id: str, **fields: object) -> bytes:
    return json.dumps({"source": "web_form", "source_lead_id": source_lead_id, **fields}).encode()


async def test_leads_flow_through_the_whole_loop(
    services: ServiceGroup,
    kafka_settings: KafkaSettings,
    database_url: str,
    producer: AIOKafkaProducer,
) -> None:
    raw = qualified("leads.raw", kafka_settings.topic_prefix)
    records = [
        lead("cn-1", email=CANARY_EMAIL, phone=CANARY_PHONE, name=CANARY_NAME, country="CN"),
        lead("us-1", email="ann@example.com", country="US"),
        lead("us-2", phone="+1 415 555 0100", country="US"),
        lead("cn-1", email=CANARY_EMAIL),  # same idempotency key: a duplicate
        b'{"source": "web_form", "source_lead_id": ',  # broken producer: invalid JSON
        lead("no-contact", name="Nobody"),  # neither email nor phone
    ]
    # Keyed by the idempotency key, as the webhook does: the duplicate of cn-1 lands on
    # the same partition after the original, so the original is the one accepted.
    for value in records:
        try:
            body = json.loads(value)
            key = f"{body['source']}:{body['source_lead_id']}".encode()
        except (ValueError, KeyError):
            key = None
        await producer.send_and_wait(raw, value, key=key)

    accepted = await collect(kafka_settings, "leads.accepted", 3)
    assert len({json.loads(r.value)["lead_id"] for r in accepted}) == 3
    ids = {json.loads(r.value)["source_lead_id"]: json.loads(r.value)["lead_id"] for r in accepted}
    assert set(ids) == {"cn-1", "us-1", "us-2"}

    assigned = await collect(kafka_settings, "leads.assigned", 3)
    decisions = {json.loads(r.value)["lead_id"]: json.loads(r.value) for r in assigned}
    assert len(assigned) == 3, "exactly one initial assignment per lead"
    assert decisions[ids["cn-1"]]["team_id"] == "team-cn"
    assert {decisions[ids[k]]["team_id"] for k in ("us-1", "us-2")} == {"team-global"}
    # Round-robin: two leads for one team go to two different reps.
    assert decisions[ids["us-1"]]["owner_id"] != decisions[ids["us-2"]]["owner_id"]
    assert all(d["kind"] == "initial" and d["rule_version"] for d in decisions.values())

    # The owner of cn-1 answers at once; nobody answers us-1 and us-2.
    touch = {
        "event_id": str(uuid.uuid4()),
        "lead_id": ids["cn-1"],
        "rep_id": decisions[ids["cn-1"]]["owner_id"],
        "kind": "call",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    await producer.send_and_wait(
        qualified("crm.activities", kafka_settings.topic_prefix),
        json.dumps(touch).encode(),
        key=ids["cn-1"].encode(),
    )

    escalations = await collect(
        kafka_settings, "sla.escalations", 4, within=FIRST_RESPONSE_LIMIT_S + 60
    )
    steps = [json.loads(r.value) for r in escalations]
    fired = {(s["lead_id"], s["level"]) for s in steps if s["status"] == "firing"}
    assert fired == {(ids[k], level) for k in ("us-1", "us-2") for level in (1, 2)}
    assert len(steps) == 4, "each ladder step is emitted once"
    assert {s["action"] for s in steps} == {"remind_owner", "notify_manager"}
    for s in steps:
        decision = decisions[s["lead_id"]]
        assert s["owner_id"] == decision["owner_id"]
        breach_delay = (
            datetime.fromisoformat(s["breached_at"])
            - datetime.fromisoformat(decision["assigned_at"])
        ).total_seconds()
        assert breach_delay >= FIRST_RESPONSE_LIMIT_S, "no step fires before its due time"

    rejected = await collect(kafka_settings, "leads.rejected", 2)
    reasons = {dict(r.headers)["reject-reason"].decode(): r for r in rejected}
    assert set(reasons) == {"invalid_json", "missing_contact"}
    assert reasons["invalid_json"].value == records[4], "the original bytes are kept"
    for r in rejected:
        headers = dict(r.headers)
        assert {
            "reject-detail",
            "source-topic",
            "source-partition",
            "source-offset",
            "rejected-at",
        } <= set(headers)
        assert headers["source-topic"].decode() == raw

    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SELECT count(*) FROM leads") == 3
        outcomes = dict(
            await conn.fetch("SELECT outcome, count(*) FROM ingest_outcomes GROUP BY outcome")
        )
        assert outcomes == {"accepted": 3, "duplicate": 1, "rejected": 2}
        stored = await conn.fetchrow(
            "SELECT email, phone, name FROM leads WHERE source_lead_id = 'cn-1'"
        )
        assert dict(stored) == {
            "email": "canary.person@example.com",
            "phone": "+8613912345678",
            "name": CANARY_NAME,
        }
        assert await conn.fetchval("SELECT count(*) FROM assignments") == 3
        assert await conn.fetchval("SELECT count(*) FROM escalations WHERE status = 'firing'") == 4
    finally:
        await conn.close()

    # Downstream topics carry no personal data.
    for topic in ("leads.accepted", "leads.assigned", "sla.escalations", "ingest.outcomes"):
        # To the end offsets (the count held to them): a scan that read nothing fails.
        scanned = await read_topic(kafka_settings, topic, within=60)
        assert scanned, f"nothing on {topic} to scan"
        for record in scanned:
            text = record.value.decode()
            for secret in (
                "canary.person",
                "Canary.Person",
                "13912345678",
                "139 1234",
                CANARY_NAME,
            ):
                assert secret not in text, f"personal data on {topic}"

    deadline = time.monotonic() + 30
    while True:
        totals = metric_totals(services)
        expected = {
            "leadloop_leads_received_total": 6,
            "leadloop_leads_accepted_total": 3,
            "leadloop_leads_duplicate_total": 1,
            "leadloop_leads_rejected_total": 2,
            "leadloop_leads_assigned_total": 3,
            "leadloop_sla_breaches_total": 4,
        }
        if all(totals.get(k) == v for k, v in expected.items()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert {k: totals.get(k) for k in expected} == expected

    for name in ("ingest", "assignment", "sla-monitor", "metrics"):
        assert services.alive(name), f"{name} died:\n{services.log(name)}"
        for secret in ("canary.person", "Canary.Person", "13912345678", CANARY_NAME):
            assert secret not in services.log(name), f"personal data in {name}'s log"
