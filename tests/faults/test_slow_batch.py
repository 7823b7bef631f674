"""A batch slower than the consumer's poll interval and session timeout causes no
rebalance: the worker stays in its group with the same member id, then finishes the
batch and the rest, each record once.

ingest runs with a poll interval of 10 s and a session timeout of 6 s
(``BROKER_MAX_POLL_INTERVAL``, ``BROKER_SESSION_TIMEOUT``, which faust reads from the
environment). The test holds an exclusive lock on ``ingest_outcomes`` for 25 s while
records arrive, so ingest's batch waits inside its transaction (below the 30 s command
timeout: slow, not failed). faust fetches and heartbeats in a thread of its own, so
the group must see a live member throughout: the broker's description of the group is
sampled every half second and must show the one same member, ``Stable``, every time.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.faults.test_ingest_faults import (
    check_exactly_once,
    outcome_count,
    produce,
    producer,  # noqa: F401 - the fixture, used by name
    wait_until_settled,
)
from tests.support.kafka import free_port_base, group_members
from tests.support.processes import ServiceGroup
from tests.support.stack import stack_env

from leadloop.settings import KafkaSettings
from leadloop.simulate import generate_leads

pytestmark = pytest.mark.e2e

#: Fixed, not ``LEADLOOP_FAULT_SCALE``: the size is not what the scenario is about.
LEADS = 5000
POLL_INTERVAL_S = 10
SESSION_TIMEOUT_S = 6
#: Longer than both, shorter than the services' 30 s command timeout.
HOLD_S = 25


async def test_a_batch_slower_than_the_poll_interval_causes_no_rebalance(
    database_url: str,
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    producer: AIOKafkaProducer,  # noqa: F811 - the imported fixture
) -> None:
    env = stack_env(
        database_url,
        kafka_settings,
        tmp_path,
        LEADLOOP_CONSECUTIVE_INVALID_LIMIT="0",
        BROKER_MAX_POLL_INTERVAL=str(POLL_INTERVAL_S),
        BROKER_SESSION_TIMEOUT=str(SESSION_TIMEOUT_S),
        BROKER_HEARTBEAT_INTERVAL="1",
    )
    group = ServiceGroup(env=env, port_base=free_port_base(), log_dir=tmp_path)
    group.start("ingest")
    group.wait_ready("ingest")
    group_id = f"{kafka_settings.topic_prefix}leadloop-ingest"
    records = generate_leads(913, LEADS)
    conn = await asyncpg.connect(database_url)
    locker = await asyncpg.connect(database_url)
    try:
        await produce(producer, kafka_settings, records[: LEADS // 2])
        while await outcome_count(conn) < LEADS // 4:
            assert group.alive("ingest"), f"ingest died:\n{group.log('ingest')}"
            await asyncio.sleep(0.05)
        state, members = await group_members(kafka_settings, group_id)
        assert (state, len(members)) == ("Stable", 1)

        held_at = await outcome_count(conn)
        # The databases end a transaction idle for 20 s (migration 0004); this one is
        # idle on purpose.
        await locker.execute("SET idle_in_transaction_session_timeout = 0")
        tx = locker.transaction()
        await tx.start()
        await locker.execute("LOCK TABLE ingest_outcomes IN ACCESS EXCLUSIVE MODE")
        await produce(producer, kafka_settings, records[LEADS // 2 :])
        samples = 0
        started = time.monotonic()
        try:
            while time.monotonic() - started < HOLD_S:
                assert await group_members(kafka_settings, group_id) == ("Stable", members)
                assert group.alive("ingest"), f"ingest died:\n{group.log('ingest')}"
                samples += 1
                await asyncio.sleep(0.5)
            # The batch really was held: ingest waited on the lock all along.
            waiting = await conn.fetchval(
                "SELECT count(*) FROM pg_stat_activity WHERE datname = current_database() "
                "AND wait_event_type = 'Lock'"
            )
            assert waiting >= 1, "ingest was not waiting on the lock"
        finally:
            await tx.rollback()
        assert samples >= HOLD_S // 5, samples  # sampled all along, not once

        settled = await wait_until_settled(conn, group, kafka_settings, LEADS, within=240)
        assert settled == LEADS
        assert await group_members(kafka_settings, group_id) == ("Stable", members)
        await check_exactly_once(database_url, kafka_settings, LEADS)
        print(f"held {HOLD_S} s at {held_at} outcomes; {samples} samples, one member")
    finally:
        await locker.close()
        await conn.close()
        group.stop()
