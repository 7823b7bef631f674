"""ingest under faults: `kill -9` mid-stream and a PostgreSQL outage lose and duplicate
nothing. The real broker, the real database, ingest as a child process."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import subprocess
import time
from collections import Counter
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.support.kafka import collect, free_port_base
from tests.support.processes import ROOT, ServiceGroup
from tests.support.stack import stack_env

from leadloop.settings import KafkaSettings
from leadloop.simulate import generate_leads
from leadloop.topics import qualified

pytestmark = pytest.mark.e2e

LEADS = 50_000


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(
        bootstrap_servers=kafka_settings.bootstrap_servers,
        acks="all",
        linger_ms=20,
        max_batch_size=256 * 1024,
    )
    await p.start()
    yield p
    await p.stop()


def start_ingest(database_url: str, kafka: KafkaSettings, tmp_path: Path) -> ServiceGroup:
    env = stack_env(
        database_url,
        kafka,
        tmp_path,
        # The simulator's malformed share is spread out; the guard is tested elsewhere.
        LEADLOOP_CONSECUTIVE_INVALID_LIMIT="0",
    )
    group = ServiceGroup(env=env, port_base=free_port_base(), log_dir=tmp_path)
    group.start("ingest")
    group.wait_ready("ingest")
    return group


async def produce(
    producer: AIOKafkaProducer, kafka: KafkaSettings, records: list[tuple[bytes | None, bytes]]
) -> None:
    topic = qualified("leads.raw", kafka.topic_prefix)
    futures = [await producer.send(topic, value, key=key) for key, value in records]
    await asyncio.gather(*futures)


async def outcome_count(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM ingest_outcomes"))


async def wait_until_settled(
    conn: asyncpg.Connection, group: ServiceGroup, want: int, within: float
) -> int:
    deadline = time.monotonic() + within
    n = await outcome_count(conn)
    while n < want and time.monotonic() < deadline:
        assert group.alive("ingest"), f"ingest died:\n{group.log('ingest')}"
        await asyncio.sleep(0.5)
        n = await outcome_count(conn)
    await asyncio.sleep(2)  # anything beyond `want` would be a double effect
    return await outcome_count(conn)


async def check_exactly_once(conn: asyncpg.Connection, kafka: KafkaSettings, produced: int) -> None:
    """Every raw record has one outcome; every lead is stored once and published at
    least once with one stable event id."""
    assert await outcome_count(conn) == produced
    per_position = await conn.fetchval(
        "SELECT max(n) FROM (SELECT count(*) AS n FROM ingest_outcomes "
        "GROUP BY raw_topic, raw_partition, raw_offset) AS t"
    )
    assert per_position == 1
    leads = {
        r["lead_id"]: r["accepted_event_id"]
        for r in await conn.fetch("SELECT lead_id, accepted_event_id FROM leads")
    }
    accepted_outcomes = await conn.fetchval(
        "SELECT count(*) FROM ingest_outcomes WHERE outcome = 'accepted'"
    )
    assert len(leads) == accepted_outcomes
    published = await collect(kafka, "leads.accepted", len(leads), within=120)
    event_ids: dict[str, set[str]] = {}
    for r in published:
        body = json.loads(r.value)
        event_ids.setdefault(body["lead_id"], set()).add(body["event_id"])
    assert set(event_ids) == set(leads), "every stored lead is on leads.accepted"
    assert all(ids == {leads[lead]} for lead, ids in event_ids.items()), "stable event ids"
    outcomes = await collect(kafka, "ingest.outcomes", produced, within=120)
    assert len({json.loads(r.value)["event_id"] for r in outcomes}) == produced


async def test_kill_9_mid_stream_loses_and_duplicates_nothing(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path, producer: AIOKafkaProducer
) -> None:
    records = generate_leads(20261126, LEADS)
    group = start_ingest(database_url, kafka_settings, tmp_path)
    conn = await asyncpg.connect(database_url)
    try:
        await produce(producer, kafka_settings, records)
        killed_at = []
        for fraction in (0.3, 0.7):
            while await outcome_count(conn) < LEADS * fraction:
                assert group.alive("ingest"), f"ingest died:\n{group.log('ingest')}"
                await asyncio.sleep(0.05)
            group.signal("ingest", signal.SIGKILL)
            group.procs["ingest"].wait()
            killed_at.append(await outcome_count(conn))
            group.start("ingest")
            group.wait_ready("ingest", timeout=120)
        assert all(0 < n < LEADS for n in killed_at), killed_at
        settled = await wait_until_settled(conn, group, LEADS, within=240)
        assert settled == LEADS
        await check_exactly_once(conn, kafka_settings, LEADS)
    finally:
        await conn.close()
        group.stop()


def _private_cluster() -> bool:
    """The suite's PostgreSQL is the private cluster of deploy/postgres/pg.sh."""
    url = subprocess.run(
        [ROOT / "deploy/postgres/pg.sh", "url"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return bool(url) and os.environ.get("DATABASE_URL") == url


async def test_postgres_outage_pauses_ingest_which_resumes_by_itself(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path, producer: AIOKafkaProducer
) -> None:
    if not _private_cluster():
        pytest.skip(reason="stops PostgreSQL: only run against the private cluster of make test")
    total = 20_000
    records = generate_leads(777, total)
    group = start_ingest(database_url, kafka_settings, tmp_path)
    conn = await asyncpg.connect(database_url)
    pg = str(ROOT / "deploy/postgres/pg.sh")
    try:
        await produce(producer, kafka_settings, records[: total // 2])
        while await outcome_count(conn) < total // 4:
            assert group.alive("ingest"), f"ingest died:\n{group.log('ingest')}"
            await asyncio.sleep(0.05)
        await conn.close()
        await asyncio.to_thread(subprocess.run, [pg, "stop"], check=True, capture_output=True)
        try:
            # Records keep arriving while the database is down.
            await produce(producer, kafka_settings, records[total // 2 :])
            await asyncio.sleep(30)
            assert group.alive("ingest"), "an outage pauses ingest; it does not kill it"
        finally:
            await asyncio.to_thread(subprocess.run, [pg, "start"], check=True, capture_output=True)
        conn = await asyncpg.connect(database_url)
        settled = await wait_until_settled(conn, group, total, within=240)
        assert settled == total
        await check_exactly_once(conn, kafka_settings, total)
        kinds = Counter(
            json.loads(line).get("event")
            for line in group.log("ingest", tail=None).splitlines()
            if line.startswith("{")
        )
        assert kinds["postgres_retry"] > 0, "the outage was noticed and retried"
    finally:
        await conn.close()
        group.stop()
