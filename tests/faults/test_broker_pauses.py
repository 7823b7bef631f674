"""The broker paused three times under load, as a long garbage-collection pause would.

The broker of the test's own (``tests/support/broker.py``) is frozen with SIGSTOP while
every service has work, longer than the services' consumer session timeout, woken,
left to work a few seconds, and frozen again, three times. Connections stay open and
nothing answers while it is frozen; when it wakes, the group coordinator finds every
member's session expired and rebalances. No worker may exit or be restarted, and the
independent checker (``tests/support/checker.py``) must find nothing lost or doubled
and every counter exact.

Length: ``LEADLOOP_BROKER_PAUSE_SECONDS`` per pause (default 12, past the 6 s session
timeout; ``make soak`` uses 30, the length a bad GC pause reaches), and
``LEADLOOP_FAULT_SCALE`` leads (default 5,000, as the pipeline fault file).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.faults.test_pipeline_faults import (
    SCALE,
    TIMEOUT_S,
    Pipeline,
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
from tests.support.broker import Broker, private_broker

from leadloop.kafka import create_topics
from leadloop.settings import KafkaSettings

PAUSE_S = float(os.environ.get("LEADLOOP_BROKER_PAUSE_SECONDS", "12"))
PAUSES = 3
#: Seconds the broker runs between two pauses: enough for the group to rejoin.
AWAKE_S = 8


@pytest.fixture
def paused_broker(tmp_path: Path) -> Iterator[Broker]:
    with private_broker(tmp_path / "broker-state") as b:
        try:
            yield b
        finally:
            # A test that fails mid-pause must not leave a frozen broker behind.
            with contextlib.suppress(ProcessLookupError, FileNotFoundError):
                os.kill(b.pid, signal.SIGCONT)


@pytest.mark.e2e
@pytest.mark.timeout(TIMEOUT_S + PAUSES * (PAUSE_S + AWAKE_S))
async def test_the_broker_paused_three_times_under_load_nothing_is_lost_or_doubled(
    paused_broker: Broker,
    pipelines: list[Pipeline],  # noqa: F811 - the imported fixture
    database_url: str,
    topic_prefix: str,
    tmp_path: Path,
) -> None:
    kafka = KafkaSettings(bootstrap_servers=paused_broker.bootstrap, topic_prefix=topic_prefix)
    await create_topics(kafka)
    p = await started_pipeline(database_url, kafka, tmp_path, pipelines)
    pids = pids_of(p)
    traffic = simulate(p, SCALE, seed=77)
    await at_least(p, "outcomes", outcomes(p), SCALE * 0.2)
    progress: list[int] = []
    for _ in range(PAUSES):
        progress.append(await count(database_url, "SELECT count(*) FROM ingest_outcomes"))
        os.kill(paused_broker.pid, signal.SIGSTOP)
        try:
            paused = time.monotonic()
            while time.monotonic() - paused < PAUSE_S:
                await p.supervise()
                await asyncio.sleep(0.5)
        finally:
            os.kill(paused_broker.pid, signal.SIGCONT)
        # Awake for a while before the next pause: long enough for the group to rejoin.
        awake = time.monotonic()
        while time.monotonic() - awake < AWAKE_S:
            await p.supervise()
            await asyncio.sleep(0.5)
    report = await finish(p, traffic)
    print(f"{PAUSES} pauses of {PAUSE_S} s at {progress} outcomes of {SCALE}")
    assert pids_of(p) == pids, "no restarts"
    assert progress[0] < SCALE, progress
    assert_clean(p, report, [])
