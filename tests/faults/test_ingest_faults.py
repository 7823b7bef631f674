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
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from tests.support.checker import compare_ingest, read_ingest
from tests.support.kafka import free_port_base
from tests.support.processes import ROOT, ServiceGroup
from tests.support.stack import stack_env

from leadloop.settings import KafkaSettings
from leadloop.simulate import generate_leads
from leadloop.topics import qualified

pytestmark = pytest.mark.e2e

#: Raw records of the `kill -9` run (``make soak`` raises it with the other files).
LEADS = int(os.environ.get("LEADLOOP_FAULT_SCALE", "20000"))


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
    conn: asyncpg.Connection, group: ServiceGroup, kafka: KafkaSettings, want: int, within: float
) -> int:
    """Poll the outcomes until ``want`` are stored and ingest's group has committed all
    of ``leads.raw``: nothing is left to redeliver, so the count is final."""
    deadline = time.monotonic() + within
    n = await outcome_count(conn)
    while n < want or await raw_lag(kafka) > 0:
        assert group.alive("ingest"), f"ingest died:\n{group.log('ingest')}"
        if time.monotonic() > deadline:
            raise AssertionError(f"{n} of {want} outcomes, not caught up within {within}s")
        await asyncio.sleep(0.5)
        n = await outcome_count(conn)
    return n


async def raw_lag(kafka: KafkaSettings) -> int:
    """Records of ``leads.raw`` that ingest's consumer group has not committed."""
    topic = qualified("leads.raw", kafka.topic_prefix)
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    consumer = AIOKafkaConsumer(**kafka.client_kwargs(), enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        (described,) = await admin.describe_topics([topic])
        tps = [TopicPartition(topic, p["partition"]) for p in described["partitions"]]
        group = f"{kafka.topic_prefix}leadloop-ingest"
        committed = await admin.list_consumer_group_offsets(group, partitions=tps)
        ends = await consumer.end_offsets(tps)
        # An empty partition may come back as committed at -1.
        done = {tp: max(committed[tp].offset, 0) if tp in committed else 0 for tp in tps}
        return sum(ends[tp] - done[tp] for tp in tps)
    finally:
        await consumer.stop()
        await admin.close()


async def check_exactly_once(database_url: str, kafka: KafkaSettings, produced: int) -> None:
    """The independent checker's conservation (``compare_ingest``): every raw record has
    one outcome, stored and on ``ingest.outcomes`` alike; every reject on
    ``leads.rejected``; every stored lead on ``leads.accepted`` with its one event id."""
    report = compare_ingest(*await read_ingest(kafka, database_url))
    assert report.problems == {}, report.problems
    assert report.raw == produced, report.raw
    assert sum(s["received"] for s in report.per_source.values()) == produced


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
        settled = await wait_until_settled(
            conn, group, kafka_settings, LEADS, within=240 + LEADS / 500
        )
        assert settled == LEADS
        await check_exactly_once(database_url, kafka_settings, LEADS)
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
        settled = await wait_until_settled(conn, group, kafka_settings, total, within=240)
        assert settled == total
        await check_exactly_once(database_url, kafka_settings, total)
        kinds = Counter(
            json.loads(line).get("event")
            for line in group.log("ingest", tail=None).splitlines()
            if line.startswith("{")
        )
        assert kinds["postgres_retry"] > 0, "the outage was noticed and retried"
    finally:
        await conn.close()
        group.stop()
