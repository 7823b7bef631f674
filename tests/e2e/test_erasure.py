"""Erasure of a person on the real stack: their data is gone, the lead's facts stay.

The four services run; a seeded person arrives twice (a lead and a merge) with a name,
company, message and attributes, next to someone else. A rep touches their lead with a
note that names them. Then `python -m leadloop_ingest.tools erase` runs as ingest's own
login (migration 0008's role): afterwards no table holds their email, phone, name or
anything else they sent, while the lead id, its assignment, owner, stage, outcomes and
every counter on /metrics are unchanged, and the other person is untouched. Running it
again changes nothing; a redelivered copy of their record does not bring them back.
A second test shows the tombstone path on a compacted topic keyed by lead_id.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.e2e.test_postgres_roles import create_logins, drop_logins
from tests.support.kafka import collect
from tests.support.processes import ROOT, ServiceGroup
from tests.support.stack import Stack, running, stack_env

from leadloop.kafka import create_topics
from leadloop.settings import KafkaSettings
from leadloop.topics import REGISTRY, TopicSpec, qualified
from leadloop_ingest.domain.erasure import subject_for
from leadloop_ingest.domain.identity import identity_key
from leadloop_ingest.tools import erase_person

pytestmark = pytest.mark.e2e

EMAIL = "Erase.Me.4417@Example.org"
EMAIL_NORMAL = "erase.me.4417@example.org"
PHONE_TYPED = "139-4417-2288"
PHONE_E164 = "+8613944172288"
NAME = "抹去测试"
COMPANY = "Quokka Erasable Trading 4417"
MESSAGE = "please call after 6pm, ask for 抹去测试"
NOTE = "spoke to 抹去测试 about pricing"
# Every form in which the person could still be found.
NEEDLES = (
    EMAIL_NORMAL,
    "erase.me.4417",
    "Erase.Me.4417",
    "13944172288",
    "4417-2288",
    NAME,
    COMPANY,
    "ask for",
    "about pricing",
    "wxid_4417",
)
OTHER_EMAIL = "keep.me.9021@example.com"


def record(source: str, source_lead_id: str, **fields: Any) -> tuple[bytes, bytes]:
    body = {"source": source, "source_lead_id": source_lead_id, **fields}
    return f"{source}:{source_lead_id}".encode(), json.dumps(body, ensure_ascii=False).encode()


PERSON = {
    "email": EMAIL,
    "phone": PHONE_TYPED,
    "name": NAME,
    "company": COMPANY,
    "title": "Head of Erasable Things",
    "message": MESSAGE,
    "country": "CN",
    "city": "Shanghai",
    "attributes": {"wechat_nick": "wxid_4417", "budget_band": "b"},
}
FIRST = record("web_form", "erase-1", **PERSON)
AGAIN = record("referral", "erase-2", **{**PERSON, "email": EMAIL.lower()})  # merged
OTHER = record("web_form", "keep-1", email=OTHER_EMAIL, name="Kept Person", country="US")


@pytest.fixture
def pepper() -> str:
    return "erasure-pepper-" + uuid.uuid4().hex


@pytest.fixture
def ingest_login(stack: Stack, database_url: str) -> Iterator[str]:
    urls = asyncio.run(create_logins(stack.admin_url, database_url))
    try:
        yield urls["ingest"]
    finally:
        asyncio.run(drop_logins(stack.admin_url, urls))


@pytest.fixture
def services(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path, pepper: str
) -> Iterator[ServiceGroup]:
    env = stack_env(database_url, kafka_settings, tmp_path, LEADLOOP_IDENTITY_PEPPER=pepper)
    with running(env, tmp_path, clean_exit=False) as group:
        yield group


def scrape(group: ServiceGroup) -> dict[str, float]:
    with urllib.request.urlopen(group.url("metrics", "/metrics"), timeout=5) as r:
        text = r.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line.startswith("leadloop_") and not line.startswith("#"):
            name, value = line.rsplit(" ", 1)
            out[name] = float(value)
    return out


async def dump(conn: asyncpg.Connection) -> dict[str, list[str]]:
    """Every row of every table in the database, as text."""
    tables = [
        r["relname"]
        for r in await conn.fetch(
            "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE n.nspname = 'public' AND c.relkind = 'r' ORDER BY 1"
        )
    ]
    assert "leads" in tables
    assert "erasures" in tables
    return {
        t: sorted(r["row"] for r in await conn.fetch(f"SELECT t::text AS row FROM {t} t"))
        for t in tables
    }


def found(rows: dict[str, list[str]]) -> list[tuple[str, str]]:
    return [
        (table, needle)
        for table, texts in rows.items()
        for text in texts
        for needle in NEEDLES
        if needle.lower() in text.lower()
    ]


def run_erase(env: dict[str, str], people: str) -> subprocess.CompletedProcess[str]:
    """``erase`` with ``people`` on stdin (never in argv)."""
    return subprocess.run(
        [sys.executable, "-m", "leadloop_ingest.tools", "erase"],
        input=people,
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


async def wait_for(conn: asyncpg.Connection, sql: str, want: int, within: float = 60) -> None:
    deadline = time.monotonic() + within
    while (got := await conn.fetchval(sql)) != want:
        assert time.monotonic() < deadline, f"{sql}: {got}, want {want}"
        await asyncio.sleep(0.3)


async def test_erasure_removes_the_person_and_keeps_the_facts(
    services: ServiceGroup,
    kafka_settings: KafkaSettings,
    database_url: str,
    ingest_login: str,
    pepper: str,
) -> None:
    prefix = kafka_settings.topic_prefix
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    await producer.start()
    conn = await asyncpg.connect(database_url)
    try:
        for key, value in (FIRST, OTHER):
            await producer.send_and_wait(qualified("leads.raw", prefix), value, key=key)
        await wait_for(conn, "SELECT count(*) FROM leads", 2)
        # After the first is stored: the second copy of the person is merged into it.
        await producer.send_and_wait(qualified("leads.raw", prefix), AGAIN[1], key=AGAIN[0])
        await wait_for(conn, "SELECT count(*) FROM lead_merges", 1)
        lead_id = await conn.fetchval("SELECT lead_id FROM leads WHERE source_lead_id = 'erase-1'")
        assigned = [json.loads(r.value) for r in await collect(kafka_settings, "leads.assigned", 2)]
        owner = next(a["owner_id"] for a in assigned if a["lead_id"] == lead_id)
        now = datetime.now(UTC).isoformat()
        touch = {
            "event_id": str(uuid.uuid4()),
            "lead_id": lead_id,
            "rep_id": owner,
            "kind": "call",
            "occurred_at": now,
            "outcome": NOTE,
        }
        await producer.send_and_wait(
            qualified("crm.activities", prefix), json.dumps(touch).encode(), key=lead_id.encode()
        )
        await wait_for(conn, "SELECT count(*) FROM lead_activities WHERE outcome IS NOT NULL", 1)
        await wait_for(conn, "SELECT count(*) FROM lead_ownership", 2)

        expected = {
            'leadloop_leads_received_total{source="web_form"}': 2.0,
            'leadloop_leads_received_total{source="referral"}': 1.0,
            'leadloop_leads_duplicate_total{source="referral"}': 1.0,
        }
        deadline = time.monotonic() + 30
        while not all(scrape(services).get(k) == v for k, v in expected.items()):
            assert time.monotonic() < deadline, "metrics did not count the seeded records"
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.5)  # let every service settle: nothing may change after this
        before = await dump(conn)
        metrics_before = scrape(services)
        assert found(before), "the person must be stored before the erasure"

        env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")} | {
            # As ingest's own login: the erasure needs nothing ingest does not have.
            "LEADLOOP_INGEST_DATABASE_URL": ingest_login,
            "LEADLOOP_IDENTITY_PEPPER": pepper,
            "LEADLOOP_KAFKA__BOOTSTRAP_SERVERS": kafka_settings.bootstrap_servers,
            "LEADLOOP_KAFKA__TOPIC_PREFIX": prefix,
        }
        # Typed differently from how it arrived: normalised the way ingest normalises.
        done = run_erase(env, f"email={EMAIL.upper()}, phone=139 4417 2288, region=cn\n")
        assert done.returncode == 0, done.stderr
        output = done.stdout + done.stderr
        assert not [n for n in NEEDLES if n.lower() in output.lower()], output
        assert re.search(r"leads anonymised\W+1\W", done.stdout), done.stdout

        after = await dump(conn)
        assert found(after) == [], "the person's data is still stored"

        # The other person is untouched.
        assert (
            await conn.fetchval(
                "SELECT count(*) FROM leads WHERE email = $1 AND name = 'Kept Person'", OTHER_EMAIL
            )
            == 1
        )
        # The lead's non-personal facts stay.
        lead = await conn.fetchrow("SELECT * FROM leads WHERE lead_id = $1", lead_id)
        assert lead is not None
        assert lead["erased_at"] is not None
        assert (lead["source"], lead["source_lead_id"], lead["owner_id"]) == (
            "web_form",
            "erase-1",
            owner,
        )
        assert (lead["country"], lead["city"], lead["stage"]) == ("CN", "Shanghai", "contacted")
        assert lead["email"] is lead["phone"] is lead["name"] is lead["email_key"] is None
        for table in (
            "assignments",
            "assignment_leads",
            "ingest_outcomes",
            "lead_ownership",
            "sla_clocks",
            "metric_values",
            "metric_applied_events",
            "metric_leads",
        ):
            assert after[table] == before[table], f"{table} changed"
        changed = {t for t in before if before[t] != after[t]}
        assert changed == {"leads", "lead_merges", "lead_activities", "erasures"}, changed
        assert len(after["lead_activities"]) == 1
        merge = await conn.fetchrow("SELECT lead_id, matched_on, payload FROM lead_merges")
        assert merge["lead_id"] == lead_id
        assert set(json.loads(merge["payload"])) <= {"occurred_at", "country", "city"}
        assert scrape(services) == metrics_before, "counters changed"

        record_ = await conn.fetchrow("SELECT * FROM erasures")
        assert record_["subject_email_key"] == identity_key(
            pepper.encode(), "erasure:email", EMAIL_NORMAL
        )
        assert record_["subject_phone_key"] == identity_key(
            pepper.encode(), "erasure:phone", PHONE_E164
        )
        assert record_["leads_erased"] == 1
        assert record_["tombstones"] == 0
        assert json.loads(record_["rows_erased"]) == {
            "leads": 1,
            "lead_merges": 1,
            "lead_activities": 1,
        }

        # Again: nothing more changes; the request itself is recorded.
        again = run_erase(env, f"phone={PHONE_E164}, email={EMAIL_NORMAL}\n")
        assert again.returncode == 0, again.stderr
        second = await dump(conn)
        assert {t: v for t, v in second.items() if t != "erasures"} == {
            t: v for t, v in after.items() if t != "erasures"
        }
        counts = await conn.fetch("SELECT leads_erased, rows_erased FROM erasures ORDER BY 1")
        assert [(r["leads_erased"], json.loads(r["rows_erased"])) for r in counts] == [
            (0, {"leads": 0, "lead_merges": 0, "lead_activities": 0}),
            (1, {"leads": 1, "lead_merges": 1, "lead_activities": 1}),
        ]

        # A redelivered copy of their record (leads.raw keeps it for its retention) is a
        # duplicate of the stored lead id: it does not bring the person back.
        await producer.send_and_wait(qualified("leads.raw", prefix), FIRST[1], key=FIRST[0])
        await wait_for(conn, "SELECT count(*) FROM ingest_outcomes", 4)
        assert found(await dump(conn)) == []
        assert (
            await conn.fetchval(
                "SELECT outcome FROM ingest_outcomes ORDER BY recorded_at DESC LIMIT 1"
            )
            == "duplicate"
        )
    finally:
        await conn.close()
        await producer.stop()

    for name in ("ingest", "assignment", "sla-monitor", "metrics"):
        assert services.alive(name), f"{name} died:\n{services.log(name)}"


@pytest.mark.integration
async def test_erasure_writes_tombstones_on_compacted_topics_keyed_by_lead(
    kafka_settings: KafkaSettings, database_url: str
) -> None:
    """No registered compacted topic is keyed by a lead today; when one is, the erasure
    writes a tombstone for each erased lead there before it commits."""
    spec = TopicSpec(
        name="people.profiles",
        key="lead_id",
        model=None,
        producers=("ingest",),
        consumers=("humans",),
        partitions=1,
        cleanup_policy="compact",
    )
    await create_topics(kafka_settings, [spec])
    pepper = b"tombstone-pepper"
    email = "tomb.stone@example.org"
    conn = await asyncpg.connect(database_url)
    try:
        now = datetime.now(UTC)
        await conn.execute(
            "INSERT INTO leads (lead_id, source, source_lead_id, email, email_key, score, "
            "priority, occurred_at, accepted_at, accepted_event_id, raw_partition, raw_offset) "
            "VALUES ('lead-t', 'web_form', 't-1', $1, $2, 10, 'cold', $3, $3, 'ev-t', 0, 0)",
            email,
            identity_key(pepper, "email", email),
            now,
        )
        counts = await erase_person(
            subject_for(email, None),
            database_url=database_url,
            pepper=pepper,
            kafka=kafka_settings,
            registry=[*REGISTRY, spec],
        )
        assert (counts.leads, counts.tombstones) == (1, 1)
        assert await conn.fetchval("SELECT tombstones FROM erasures") == 1
        assert await conn.fetchval("SELECT email FROM leads WHERE lead_id = 'lead-t'") is None
    finally:
        await conn.close()
    records = await collect(kafka_settings, spec.name, 1, within=20)
    assert [(r.key, r.value) for r in records] == [(b"lead-t", None)]
    # The project's own registry has no such topic: nothing to tombstone there.
    assert not [s for s in REGISTRY if s.cleanup_policy == "compact" and s.key == "lead_id"]
