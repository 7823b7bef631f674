"""The broker's disk fills up under load: the broker stops, the services wait for it
without exiting, and once space is freed and the broker started again nothing is lost
or doubled.

The broker of the test's own (``tests/support/broker.py``) keeps its log directory on a
small tmpfs of its own (its logs and configuration stay on the ordinary disk, so what
it says can be read). While every service has work the test fills that file system.
Kafka takes a log directory it cannot write to offline, and a broker whose every log
directory is offline halts: it stops rather than acknowledging writes it cannot keep.
That is the behaviour to rely on, so the test waits for the halt and its reason, frees
the space, starts the broker on the same data, and lets the pipeline finish: the same
worker processes as at the start, and the independent checker
(``tests/support/checker.py``) finds nothing lost or doubled and every counter exact.

An operator learns of it from the broker's own halt and from every service's
``/readyz`` and consumer lag (``LeadloopConsumerStalled``); alerting on disk use before
it fills is the production setting (docs/reliability.md).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.faults.test_pipeline_faults import (
    SCALE,
    TIMEOUT_S,
    Pipeline,
    alive,
    assert_clean,
    at_least,
    count,
    finish,
    outcomes,
    pids_of,
    pipelines,  # noqa: F401 - the fixture, used by name
    simulate,
    started_pipeline,
)
from tests.support.broker import private_broker
from tests.support.small_disk import fill, small_disk

from leadloop.kafka import create_topics
from leadloop.settings import KafkaSettings

#: Room for the topics' first records, far from all of a run's (a soak's run is larger).
TMPFS_MB = max(256, SCALE // 100)
HALTED = "all log dirs"


@pytest.fixture
def broker_disk() -> Iterator[Path]:
    if os.geteuid() != 0:
        pytest.skip(reason="mounting a small tmpfs for the broker's log directory needs root")
    with small_disk(TMPFS_MB, "leadloop-kafka-disk-") as mount:
        yield mount


@pytest.mark.e2e
@pytest.mark.timeout(TIMEOUT_S + 180)
async def test_kafka_out_of_disk_halts_the_broker_and_the_pipeline_resumes_after(
    broker_disk: Path,
    pipelines: list[Pipeline],  # noqa: F811 - the imported fixture
    database_url: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    state = tmp_path / "broker-state"
    (state / "kafka").mkdir(parents=True)
    (broker_disk / "data").mkdir()
    (state / "kafka" / "data").symlink_to(broker_disk / "data")
    with private_broker(state) as broker:
        kafka = KafkaSettings(bootstrap_servers=broker.bootstrap, topic_prefix=topic_prefix)
        await create_topics(kafka)
        p = await started_pipeline(database_url, kafka, tmp_path, pipelines)
        pids = pids_of(p)
        traffic = simulate(p, SCALE, seed=79)
        await at_least(p, "outcomes", outcomes(p), SCALE * 0.3)
        filled_at = await count(database_url, "SELECT count(*) FROM ingest_outcomes")
        pid = broker.pid
        filler = await asyncio.to_thread(fill, broker_disk)

        # The broker halts by itself, and says why.
        server_log = state / "kafka" / "server.log"
        deadline = time.monotonic() + 120
        while alive(pid):
            assert time.monotonic() < deadline, "the broker kept running on a full disk"
            await p.supervise()
            await asyncio.sleep(0.5)
        reason = [x for x in server_log.read_text(errors="replace").splitlines() if HALTED in x]
        assert reason, "the broker's log does not say it halted for its log directories"

        # Services wait for it; none exits. Then space is freed and the broker started.
        await asyncio.sleep(5)
        await p.supervise()
        filler.unlink()
        await asyncio.to_thread(broker.run, "start")
        report = await finish(p, traffic)
    print(f"disk filled at {filled_at} outcomes of {SCALE}; broker: {reason[-1][:160]}")
    assert pids_of(p) == pids, "no restarts"
    assert 0 < filled_at < SCALE, filled_at
    assert_clean(p, report, [])
