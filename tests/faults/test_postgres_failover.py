"""PostgreSQL failover under a running service: a private primary with a synchronous
streaming standby (deploy/postgres/pg.sh), ingest given both as one multi-host
``DATABASE_URL`` with ``target_session_attrs=read-write``. The primary's postmaster is
killed with SIGKILL mid-stream and the standby promoted a few seconds later; ingest, never
restarted, reconnects to the promoted server by itself, and the independent checker
(``compare_ingest``: the topics against the promoted database) finds every raw record
with exactly one stored and published outcome and every accepted lead stored — nothing
acknowledged before the kill is missing, nothing is doubled. Then the old primary comes
back (``pg.sh standby rejoin``: pg_rewind, standby.signal) read-only: it refuses writes
and the multi-host URL never picks it.

Size: ``LEADLOOP_FAULT_SCALE`` leads (default 5,000, as the other fault files).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import tempfile
import time
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from tests.support.checker import compare_ingest, read_ingest
from tests.support.ports import free_port_base
from tests.support.processes import ServiceGroup
from tests.support.replicated import Replicated, replicated
from tests.support.stack import stack_env

from leadloop.db import apply_migrations
from leadloop.settings import KafkaSettings
from leadloop.simulate import generate_leads
from leadloop.topics import qualified

pytestmark = pytest.mark.e2e

LEADS = int(os.environ.get("LEADLOOP_FAULT_SCALE", "5000"))
#: Seconds between the kill and the promotion: ingest meanwhile finds no read-write server.
DOWN_S = 4


@pytest.fixture
def cluster() -> Iterator[Replicated]:
    # Not under tmp_path: each pytest session makes /tmp/pytest-of-<user> private again,
    # and the servers run as the postgres user, who must reach their data directories.
    state = Path(tempfile.mkdtemp(prefix="leadloop-failover-"))
    try:
        with replicated(state, "sync") as pg:
            yield pg
    finally:
        shutil.rmtree(state, ignore_errors=True)


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    p = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    await p.start()
    yield p
    await p.stop()


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
        done = {tp: max(committed[tp].offset, 0) if tp in committed else 0 for tp in tps}
        return sum(ends[tp] - done[tp] for tp in tps)
    finally:
        await consumer.stop()
        await admin.close()


async def outcomes_at(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM ingest_outcomes"))
    finally:
        await conn.close()


@pytest.mark.timeout(240 + LEADS // 100)
async def test_primary_killed_standby_promoted_ingest_goes_on_and_loses_nothing(
    cluster: Replicated, kafka_settings: KafkaSettings, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    await apply_migrations(cluster.primary_url)
    url = cluster.url
    env = stack_env(url, kafka_settings, tmp_path, LEADLOOP_CONSECUTIVE_INVALID_LIMIT="0")
    group = ServiceGroup(env=env, port_base=free_port_base(), log_dir=tmp_path)
    group.start("ingest")
    try:
        await asyncio.to_thread(group.wait_ready, "ingest")
        pid = group.procs["ingest"].pid
        topic = qualified("leads.raw", kafka_settings.topic_prefix)
        sent = [
            await producer.send(topic, value, key=key)
            for key, value in generate_leads(20261207, LEADS)
        ]
        await asyncio.gather(*sent)

        # Mid-stream: a third stored, the rest still to come.
        while (killed_at := await outcomes_at(cluster.primary_url)) < LEADS // 3:
            assert group.alive("ingest"), f"ingest died:\n{group.log('ingest')}"
            await asyncio.sleep(0.05)
        await asyncio.to_thread(cluster.kill_primary)
        await asyncio.sleep(DOWN_S)
        assert group.alive("ingest"), "no read-write server pauses ingest; it does not kill it"
        await asyncio.to_thread(cluster.run, "standby", "promote")
        promoted = time.monotonic()

        # Settled: every outcome stored on the promoted server and all of leads.raw
        # committed, so nothing is left to redeliver.
        deadline = promoted + 120 + LEADS / 200
        while (n := await outcomes_at(url)) < LEADS or await raw_lag(kafka_settings) > 0:
            assert group.alive("ingest"), f"ingest died:\n{group.log('ingest')}"
            assert time.monotonic() < deadline, f"{n} of {LEADS} outcomes after the failover"
            await asyncio.sleep(0.5)
        caught_up = time.monotonic() - promoted
        assert group.procs["ingest"].pid == pid, "ingest was never restarted"

        # A new connection of the multi-host URL is the promoted server's.
        conn = await asyncpg.connect(url)
        try:
            assert await conn.fetchval("SELECT inet_server_port()") == cluster.standby_port
        finally:
            await conn.close()
        report = compare_ingest(*await read_ingest(kafka_settings, url))
        assert report.problems == {}, report.problems
        assert report.raw == LEADS, report.raw
        events = Counter(
            json.loads(line).get("event")
            for line in group.log("ingest", tail=None).splitlines()
            if line.startswith("{")
        )
        print(
            f"primary killed at {killed_at} of {LEADS} outcomes, promoted after {DOWN_S} s; "
            f"caught up {caught_up:.1f} s later; {events['postgres_retry']} retries"
        )
        assert 0 < killed_at < LEADS, killed_at
        assert events["postgres_retry"] > 0, "the failover was noticed and retried"

        # The fence: the old primary comes back rewound and read-only, never as a
        # second primary the multi-host URL could pick.
        await asyncio.to_thread(cluster.run, "standby", "rejoin")
        old = await asyncpg.connect(cluster.url_of(cluster.primary_port))
        try:
            assert await old.fetchval("SELECT pg_is_in_recovery()")
            with pytest.raises(asyncpg.exceptions.ReadOnlySQLTransactionError):
                await old.execute("DELETE FROM ingest_outcomes")
        finally:
            await old.close()
        for _ in range(3):
            conn = await asyncpg.connect(url)
            try:
                assert await conn.fetchval("SELECT inet_server_port()") == cluster.standby_port
            finally:
                await conn.close()
    finally:
        codes = group.stop()
    assert codes == {"ingest": 0}, f"unclean shutdown: {codes}\n{group.log('ingest')}"
