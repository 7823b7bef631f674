"""A canary person goes through the whole system, and the same traffic is sent twice.

Afterwards the canary's email, phone and name are nowhere but ingest's personal-data
tables and the PII topics (leads.raw, leads.rejected): not in any other table, not in any
service's log, not on /metrics, not in a reject header, not on any downstream topic.
And conservation holds per source, on /metrics and in PostgreSQL alike: received =
accepted + duplicate + rejected.
"""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.support.checker import read_topic
from tests.support.processes import ServiceGroup
from tests.support.stack import running, stack_env

from leadloop.settings import KafkaSettings
from leadloop.simulate import generate_leads
from leadloop.topics import REGISTRY, qualified

pytestmark = pytest.mark.e2e

CANARY_EMAIL = "zz.canary.7731@example.org"
CANARY_PHONE_E164 = "+8613987654321"
CANARY_PHONE_TYPED = "139-8765-4321"
CANARY_NAME = "雀鸟金丝"
# Every form in which the canary could leak.
NEEDLES = (CANARY_EMAIL, "zz.canary.7731", "13987654321", "139-8765-4321", CANARY_NAME)
SOURCES = ("web_form", "lead_ads", "wechat", "trade_show_csv", "referral")
#: The only tables that may hold personal data: ingest's record of leads and of records
#: merged into them (only ingest's database role can read them).
PERSONAL_TABLES = {"leads", "lead_merges"}


async def tables_holding(conn: asyncpg.Connection, needle: str) -> set[str]:
    """Every table with a text or json column containing ``needle``."""
    columns = await conn.fetch(
        "SELECT table_name, column_name FROM information_schema.columns "
        "WHERE table_schema = 'public' AND data_type IN ('text', 'jsonb', 'json', "
        "'character varying', 'ARRAY')"
    )
    found = set()
    for c in columns:
        hit = await conn.fetchval(
            # Names from the catalog, the needle as a parameter.
            f'SELECT EXISTS (SELECT 1 FROM "{c["table_name"]}" '
            f'WHERE "{c["column_name"]}"::text ILIKE $1)',
            f"%{needle}%",
        )
        if hit:
            found.add(c["table_name"])
    return found


@pytest.fixture
def services(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[ServiceGroup]:
    env = stack_env(database_url, kafka_settings, tmp_path, LEADLOOP_CONSECUTIVE_INVALID_LIMIT="0")
    with running(env, tmp_path, clean_exit=False) as group:
        yield group


def canary_records() -> list[tuple[bytes | None, bytes]]:
    person = {
        "email": CANARY_EMAIL.upper(),
        "phone": CANARY_PHONE_TYPED,
        "name": CANARY_NAME,
        "country": "CN",
    }
    records = [
        {"source": "web_form", "source_lead_id": "canary-1", **person},
        # The same person again: merged into the open lead.
        {"source": "referral", "source_lead_id": "canary-2", **person},
        # Invalid email carrying the canary: the reject detail must not echo it.
        {
            "source": "wechat",
            "source_lead_id": "canary-3",
            "email": f"{CANARY_NAME}@@x",
            "phone": CANARY_PHONE_TYPED,
        },
        # The canary as an attribute key and value.
        {
            "source": "web_form",
            "source_lead_id": "canary-4",
            "email": "other@example.com",
            "attributes": {CANARY_EMAIL: CANARY_NAME, "x" * 65: 1},
        },
    ]
    return [
        (f"{r['source']}:{r['source_lead_id']}".encode(), json.dumps(r).encode()) for r in records
    ]


def scrape(group: ServiceGroup) -> str:
    with urllib.request.urlopen(group.url("metrics", "/metrics"), timeout=5) as r:
        return str(r.read().decode())


def per_source(text: str) -> dict[str, Counter[str]]:
    counts: dict[str, Counter[str]] = defaultdict(Counter)
    for line in text.splitlines():
        if not line.startswith("leadloop_leads_") or "{" not in line:
            continue
        name, rest = line.split("{", 1)
        labels, value = rest.rsplit("} ", 1)
        pairs = dict(part.split("=", 1) for part in labels.split(",") if "=" in part)
        if "source" not in pairs:
            continue
        source = pairs["source"].strip('"')
        kind = name.removeprefix("leadloop_leads_").removesuffix("_total")
        counts[source][kind] += int(float(value))
    return counts


async def test_the_canary_stays_in_postgres_and_every_record_is_counted_once(
    services: ServiceGroup,
    kafka_settings: KafkaSettings,
    database_url: str,
) -> None:
    k = kafka_settings
    traffic = generate_leads(4242, 1500) + canary_records()
    producer = AIOKafkaProducer(
        bootstrap_servers=k.bootstrap_servers, acks="all", max_request_size=2_000_000
    )
    await producer.start()
    try:
        for _ in range(2):  # the same input twice: the second pass changes nothing
            futures = [
                await producer.send(qualified("leads.raw", k.topic_prefix), value, key=key)
                for key, value in traffic
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()
    sent = 2 * len(traffic)

    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + 180
        while await conn.fetchval("SELECT count(*) FROM ingest_outcomes") < sent:
            assert time.monotonic() < deadline, "ingest did not settle"
            await asyncio.sleep(0.5)
        rows = await conn.fetch(
            "SELECT source, outcome, count(*) AS n FROM ingest_outcomes GROUP BY 1, 2"
        )
        # canary-1 and canary-2 travel on different partitions: whichever came first is
        # the lead, the other is merged into it.
        stored = await conn.fetch(
            "SELECT email, phone, name FROM leads WHERE source_lead_id IN ('canary-1', 'canary-2')"
        )
        merged = await conn.fetchval(
            "SELECT count(*) FROM lead_merges WHERE source_lead_id IN ('canary-1', 'canary-2')"
        )
    finally:
        await conn.close()
    assert len(stored) == 1
    assert dict(stored[0]) == {
        "email": CANARY_EMAIL,
        "phone": CANARY_PHONE_E164,
        "name": CANARY_NAME,
    }
    assert merged == 1

    truth: dict[str, Counter[str]] = defaultdict(Counter)
    for r in rows:
        source = r["source"] if r["source"] in SOURCES else "other"
        truth[source][r["outcome"]] += r["n"]
        truth[source]["received"] += r["n"]
    assert sum(c["received"] for c in truth.values()) == sent
    assert sum(c["accepted"] for c in truth.values()) <= len(traffic), "second pass: no new lead"

    deadline = time.monotonic() + 60
    while True:
        served = per_source(await asyncio.to_thread(scrape, services))
        if served == truth or time.monotonic() > deadline:
            break
        await asyncio.sleep(1)
    assert served == truth, "/metrics equals PostgreSQL, per source and outcome"
    for source, c in served.items():
        assert c["received"] == c["accepted"] + c["duplicate"] + c["rejected"], source

    # Look everywhere once assignment has decided every stored lead (observed, not slept).
    conn = await asyncpg.connect(database_url)
    try:
        deadline = time.monotonic() + 120
        while await conn.fetchval(
            "SELECT count(*) FROM assignments WHERE kind IN ('initial', 'pooled')"
        ) < await conn.fetchval("SELECT count(*) FROM leads"):
            assert time.monotonic() < deadline, "assignment did not decide every lead"
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    metrics_text = await asyncio.to_thread(scrape, services)
    for needle in NEEDLES:
        assert needle not in metrics_text, f"canary on /metrics: {needle}"
        for name in ("ingest", "assignment", "sla-monitor", "metrics"):
            assert needle.lower() not in services.log(name, tail=None).lower(), (
                f"canary in {name}'s log: {needle}"
            )
    conn = await asyncpg.connect(database_url)
    try:
        for needle in NEEDLES:
            elsewhere = await tables_holding(conn, needle) - PERSONAL_TABLES
            assert elsewhere == set(), f"canary {needle!r} in tables {sorted(elsewhere)}"
        assert await tables_holding(conn, CANARY_EMAIL) == PERSONAL_TABLES
    finally:
        await conn.close()
    scanned: dict[str, int] = {}
    for spec in REGISTRY:
        # To the end offsets, the count held to what they say the topic holds.
        records = await read_topic(k, spec.name, within=60)
        scanned[spec.name] = len(records)
        for r in records:
            header_text = " ".join(v.decode(errors="replace") for _, v in r.headers)
            for needle in NEEDLES:
                assert needle not in header_text, f"canary in a header on {spec.name}"
                if not spec.contains_pii:
                    assert needle not in (r.value or b"").decode(errors="replace"), (
                        f"canary on {spec.name}"
                    )
    # The scan read what the traffic put there, not nothing.
    assert scanned["leads.raw"] == sent, scanned
    assert scanned["ingest.outcomes"] >= sent, scanned
    for name in ("leads.accepted", "leads.assigned", "leads.rejected"):
        assert scanned[name] > 0, scanned
