"""PostgreSQL out of disk while ingest has work: ingest pauses and says so, and resumes by
itself when space is freed, with nothing lost or doubled.

The test's database lives in a tablespace on a small tmpfs of its own, so that filling
that file system fails only this database's writes, with the server's real error
(``could not extend file``: SQLSTATE 53100, disk full), while the server itself, its
write-ahead log and every other test's database go on. A disk-full error is an outage,
not a bad record: ingest retries the batch (``postgres_retry`` in its log,
``leadloop_postgres_retrying_seconds{what="ingest_batch"}`` on its ``/metrics``, which
``PostgresRetryStalled`` alerts on) and parks nothing. The independent checker
(``compare_ingest``) then finds exactly one outcome per raw record.

Kafka out of disk is not here: a broker whose only log directory fails goes offline,
which ``test_pipeline_faults.py`` covers as a broker killed and restarted.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import urllib.request
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.faults.test_ingest_faults import (
    check_exactly_once,
    outcome_count,
    produce,
    producer,  # noqa: F401 - the fixture, used by name
    start_ingest,
    wait_until_settled,
)
from tests.support.small_disk import fill, small_disk
from tests.support.stack import Stack

from leadloop.db import apply_migrations
from leadloop.settings import KafkaSettings
from leadloop.simulate import generate_leads

pytestmark = pytest.mark.e2e

#: Fixed, not ``LEADLOOP_FAULT_SCALE``: the tablespace is sized for it, and the size is
#: not what the scenario is about.
LEADS = 5000
#: Room for the migrated schema and the first part of the run, not for all of it.
TMPFS_MB = 48


@pytest.fixture
async def small_disk_database(stack: Stack) -> AsyncIterator[tuple[str, Path]]:
    """A migrated database whose tables are on a tmpfs of ``TMPFS_MB``; its URL and the
    mount point (where the test puts its filler file)."""
    if os.geteuid() != 0:
        pytest.skip(reason="mounting a small tmpfs for the tablespace needs root")
    with small_disk(TMPFS_MB, "leadloop-small-disk-") as mount:
        space = mount / "tablespace"
        space.mkdir()
        async with tablespace_database(stack, space) as url:
            yield url, mount


@contextlib.asynccontextmanager
async def tablespace_database(stack: Stack, space: Path) -> AsyncIterator[str]:
    """A migrated database whose tables live in ``space``; dropped with it afterwards."""
    name = f"small_{uuid.uuid4().hex[:10]}"
    admin = await asyncpg.connect(stack.admin_url)
    try:
        # The server's own OS user must own a tablespace's directory.
        data = Path(await admin.fetchval("SHOW data_directory"))
        owner = await asyncio.to_thread(data.stat)
        os.chown(space, owner.st_uid, owner.st_gid)
        await admin.execute(f"CREATE TABLESPACE {name} LOCATION '{space}'")
        await admin.execute(f'CREATE DATABASE "{name}" TABLESPACE {name}')
        url = stack.admin_url.rsplit("/", 1)[0] + f"/{name}"
        await apply_migrations(url)
        yield url
    finally:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        await admin.execute(f"DROP TABLESPACE IF EXISTS {name}")
        await admin.close()


async def test_postgres_out_of_disk_pauses_ingest_which_resumes_when_space_is_freed(
    small_disk_database: tuple[str, Path],
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    producer: AIOKafkaProducer,  # noqa: F811 - the imported fixture
) -> None:
    url, mount = small_disk_database
    records = generate_leads(531, LEADS)
    group = start_ingest(url, kafka_settings, tmp_path)
    conn = await asyncpg.connect(url)
    try:
        await produce(producer, kafka_settings, records[: LEADS // 2])
        while await outcome_count(conn) < LEADS // 4:
            assert group.alive("ingest"), f"ingest died:\n{group.log('ingest')}"
            await asyncio.sleep(0.05)
        filler = fill(mount)
        await produce(producer, kafka_settings, records[LEADS // 2 :])

        # Ingest notices, keeps retrying, says so on /metrics, and stays up.
        def retried_disk_full() -> bool:
            return any(
                '"postgres_retry"' in line and "DiskFullError" in line
                for line in group.log("ingest", tail=None).splitlines()
            )

        async with asyncio.timeout(120):
            while not retried_disk_full():
                assert group.alive("ingest"), f"ingest died:\n{group.log('ingest')}"
                await asyncio.sleep(0.2)
        metrics = await asyncio.to_thread(_get, group.url("ingest", "/metrics"))
        assert 'leadloop_postgres_retrying_seconds{what="ingest_batch"}' in metrics
        stuck_at = await outcome_count(conn)
        assert stuck_at < LEADS, "the disk filled before the run ended"

        filler.unlink()
        settled = await wait_until_settled(conn, group, kafka_settings, LEADS, within=240)
        assert settled == LEADS
        assert group.alive("ingest"), "a full disk pauses ingest; it does not kill it"
        await check_exactly_once(url, kafka_settings, LEADS)
        log = group.log("ingest", tail=None)
        parked = [line for line in log.splitlines() if '"dead_lettered"' in line]
        assert parked == [], "a full disk is not the records' fault"
        print(f"disk full at {stuck_at} of {LEADS} outcomes; resumed and settled")
    finally:
        await conn.close()
        group.stop()


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())
