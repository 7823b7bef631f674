"""sla-monitor under `kill -9` while thousands of clocks are due: after the restart every
due ladder step is emitted exactly once — PostgreSQL holds one row per step, and
sla.escalations carries every step, repeats only as identical redeliveries (same
event_id, which consumers dedupe on).

The real broker and database, the sla-monitor as a child process. ``LEADLOOP_FAULT_SCALE``
clocks (default 4,000 in ``make test``; 10,000, the size issue 5 names, and more in
``make soak``) come due at the same instant, each with
a three-step ladder; the worker is killed once the first steps are committed and
before the last are.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import time
import uuid
from collections import defaultdict
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.support.checker import read_topic
from tests.support.processes import ServiceGroup
from tests.support.stack import sla_monitor

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

pytestmark = pytest.mark.e2e

SCALE = int(os.environ.get("LEADLOOP_FAULT_SCALE", "4000"))
LEVELS = 3
#: Time to apply every assignment before the clocks come due (two cores, shared).
LIMIT_S = 30 + SCALE // 200
TIMEOUT_S = 300 + SCALE // 50


def policy() -> str:
    steps = "\n".join(
        f"      - {{level: {n}, after_seconds: 0, action: {a}}}"
        for n, a in zip(
            range(1, LEVELS + 1), ("remind_owner", "notify_manager", "reassign"), strict=True
        )
    )
    return (
        "policies:\n  - policy_id: fr-faults\n    kind: first_response\n"
        f"    limit_seconds: {LIMIT_S}\n    ladder:\n{steps}\n"
    )


@pytest.fixture
def sla(database_url: str, kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[ServiceGroup]:
    with sla_monitor(
        database_url,
        kafka_settings,
        tmp_path,
        policy(),
        tick="0.2",
        ready_timeout=120,
        # A killed member leaves the group after 10 s instead of 60 s.
        BROKER_SESSION_TIMEOUT="10",
    ) as group:
        yield group


async def produce_assignments(kafka: KafkaSettings, leads: list[str]) -> datetime:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all", linger_ms=50)
    await producer.start()
    now = datetime.now(UTC)
    try:
        topic = qualified("leads.assigned", kafka.topic_prefix)
        futures = []
        for i, lead in enumerate(leads):
            body = {
                "event_id": f"assigned-{lead}",
                "occurred_at": now.isoformat(),
                "assignment_id": f"a-{lead}",
                "lead_id": lead,
                "owner_id": f"rep-{i % 50:02d}",
                "team_id": f"team-{i % 5}",
                "rule_id": "r1",
                "rule_version": "1",
                "strategy": "round_robin",
                "kind": "initial",
                "reason": "faults",
                "lead_occurred_at": now.isoformat(),
                "assigned_at": now.isoformat(),
                "priority": "warm",
            }
            futures.append(await producer.send(topic, json.dumps(body).encode(), key=lead.encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return now


async def poll(conn: asyncpg.Connection, sql: str, until: int, within: float) -> int:
    deadline = time.monotonic() + within
    value = 0
    while time.monotonic() < deadline:
        value = await conn.fetchval(sql)
        if value >= until:
            return int(value)
        await asyncio.sleep(0.5)
    return int(value)


@pytest.mark.timeout(TIMEOUT_S)
async def test_kill_9_while_clocks_are_due_emits_every_step_exactly_once(
    sla: ServiceGroup, kafka_settings: KafkaSettings, database_url: str
) -> None:
    run = uuid.uuid4().hex[:6]
    leads = [f"lead-{run}-{i:06d}" for i in range(SCALE)]
    started = await produce_assignments(kafka_settings, leads)
    total = SCALE * LEVELS

    conn = await asyncpg.connect(database_url)
    try:
        clocks = await poll(conn, "SELECT count(*) FROM sla_clocks", SCALE, within=LIMIT_S * 3)
        assert clocks == SCALE, f"only {clocks} clocks after {LIMIT_S * 3}s"
        elapsed = (datetime.now(UTC) - started).total_seconds()
        assert elapsed < LIMIT_S, f"clocks applied after they were due ({elapsed:.0f}s)"
        assert await conn.fetchval("SELECT count(*) FROM escalations") == 0

        # Kill as soon as some steps are committed, while most are still due.
        deadline = time.monotonic() + LIMIT_S + 60
        fired = 0
        while time.monotonic() < deadline:
            fired = await conn.fetchval("SELECT count(*) FROM escalations")
            if fired > 0:
                break
            await asyncio.sleep(0.02)
        sla.signal("sla-monitor", signal.SIGKILL)
        sla.procs["sla-monitor"].wait()
        at_kill = await conn.fetchval("SELECT count(*) FROM escalations")
        assert 0 < at_kill < total, f"kill came too late to matter: {at_kill} of {total}"

        sla.start("sla-monitor")
        sla.wait_ready("sla-monitor", timeout=120)
        stored = await poll(
            conn,
            "SELECT count(*) FROM escalations WHERE published_at IS NOT NULL",
            total,
            within=TIMEOUT_S / 2,
        )
        assert stored == total, f"{stored} of {total} steps published after the restart"
        await asyncio.sleep(2)  # anything more would be a duplicate
        rows = await conn.fetch("SELECT escalation_id, lead_id, level, event_id FROM escalations")
    finally:
        await conn.close()

    assert len(rows) == total == len({r["escalation_id"] for r in rows}), "one row per step"
    per_lead: dict[str, list[int]] = defaultdict(list)
    for r in rows:
        per_lead[r["lead_id"]].append(r["level"])
    assert set(per_lead) == set(leads)
    assert all(sorted(levels) == list(range(1, LEVELS + 1)) for levels in per_lead.values())

    stored_ids = {r["escalation_id"]: r["event_id"] for r in rows}
    published: dict[str, set[tuple[str, int, str, str]]] = defaultdict(set)
    records = await read_topic(kafka_settings, "sla.escalations")
    for record in records:
        e = json.loads(record.value)
        published[e["escalation_id"]].add((e["event_id"], e["level"], e["due_at"], e["status"]))
    assert set(published) == set(stored_ids), "every step on the topic, nothing unknown"
    conflicting = [k for k, v in published.items() if len(v) > 1]
    assert not conflicting, f"a step published with different contents: {conflicting[:5]}"
    assert all(next(iter(v))[0] == stored_ids[k] for k, v in published.items())
    redelivered = len(records) - total
    print(f"kill -9 at {at_kill}/{total} steps; {redelivered} identical redeliveries")
