"""Days of business time in seconds: the real sla-monitor with an injected, accelerated
clock (LEADLOOP_TEST_TIME_SCALE / LEADLOOP_TEST_TIME_ORIGIN) and the shipped Chinese
calendar (config/calendars.yaml, team-cn: Asia/Shanghai, 09:00-12:00 and 13:00-18:00,
2025 holidays and make-up workdays).

Leads are assigned on Friday 2025-09-26 at 17:55; Sunday 2025-09-28 is a make-up
working day (it works as a Monday), so a 15-minute first-response limit runs out on
Sunday at 09:10. One lead is answered in time, one late, one never, and one is
reassigned before its limit: the escalations are exactly the expected set, each step
once, in order, with the due times the business calendar gives.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from tests.support.kafka import collect, send_json
from tests.support.processes import ServiceGroup
from tests.support.stack import sla_monitor

from leadloop.settings import KafkaSettings

pytestmark = pytest.mark.e2e

SHANGHAI = timezone(timedelta(hours=8))
ORIGIN = datetime(2025, 9, 26, 17, 50, tzinfo=SHANGHAI)  # a Friday
ASSIGNED = datetime(2025, 9, 26, 17, 55, tzinfo=SHANGHAI)
#: One real second is an hour of service time: Friday evening to Sunday afternoon in
#: about 45 seconds, with a tick (0.1 s) of six minutes.
SCALE = 3600
POLICY = """
policies:
  - policy_id: fr-cn
    kind: first_response
    limit_seconds: 900
    ladder:
      - {level: 1, after_seconds: 0, action: remind_owner}
      - {level: 2, after_seconds: 14400, action: notify_manager}
"""


def sun(h: int, m: int) -> datetime:
    return datetime(2025, 9, 28, h, m, tzinfo=SHANGHAI)


@pytest.fixture
def sla(database_url: str, kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[ServiceGroup]:
    with sla_monitor(
        database_url,
        kafka_settings,
        tmp_path,
        POLICY,
        LEADLOOP_TEST_TIME_SCALE=str(SCALE),
        LEADLOOP_TEST_TIME_ORIGIN=ORIGIN.isoformat(),
    ) as group:
        yield group


def assigned(lead: str, owner: str, at: datetime, kind: str = "initial") -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "occurred_at": at.isoformat(),
        "assignment_id": str(uuid.uuid4()),
        "lead_id": lead,
        "owner_id": owner,
        "team_id": "team-cn",
        "rule_id": "r1",
        "rule_version": "1",
        "strategy": "round_robin",
        "kind": kind,
        "reason": "test",
        "lead_occurred_at": ASSIGNED.isoformat(),
        "assigned_at": at.isoformat(),
        "priority": "warm",
    }


def touch(lead: str, at: datetime) -> dict[str, Any]:
    return {
        "event_id": str(uuid.uuid4()),
        "lead_id": lead,
        "rep_id": "rep-a",
        "kind": "call",
        "occurred_at": at.isoformat(),
    }


async def read(kafka: KafkaSettings) -> list[dict[str, Any]]:
    return [json.loads(r.value) for r in await collect(kafka, "sla.escalations", 0, within=0.5)]


async def test_days_of_business_time_in_seconds_give_exactly_the_expected_escalations(
    sla: ServiceGroup, producer: AIOKafkaProducer, kafka_settings: KafkaSettings
) -> None:
    for lead in ("never", "in-time", "late", "moved"):
        await send_json(
            producer, kafka_settings, "leads.assigned", assigned(lead, "rep-a", ASSIGNED)
        )
    await send_json(producer, kafka_settings, "crm.activities", touch("in-time", ASSIGNED))
    # Reassigned early on Sunday, before the first owner's limit ran out.
    moved_at = sun(8, 0)
    await send_json(
        producer,
        kafka_settings,
        "leads.assigned",
        assigned("moved", "rep-b", moved_at, kind="reassigned"),
    )

    # "late" breaches at Sunday 09:10; its owner calls right after the reminder.
    deadline = time.monotonic() + 120
    late_first: dict[str, Any] | None = None
    while late_first is None and time.monotonic() < deadline:
        late_first = next((e for e in await read(kafka_settings) if e["lead_id"] == "late"), None)
        await asyncio.sleep(0.1)
    assert late_first is not None, sla.log("sla-monitor")
    called = datetime.fromisoformat(late_first["breached_at"]) + timedelta(minutes=1)
    await send_json(producer, kafka_settings, "crm.activities", touch("late", called))

    want = 6
    while time.monotonic() < deadline:
        got = await read(kafka_settings)
        if len(got) >= want:
            break
        await asyncio.sleep(0.5)
    await asyncio.sleep(2)  # linger: more would be a duplicate
    got = await read(kafka_settings)

    seen = [
        (e["lead_id"], e["level"], e["status"], e["owner_id"], datetime.fromisoformat(e["due_at"]))
        for e in got
    ]
    expected = {
        ("never", 1, "firing", "rep-a", sun(9, 10)),
        ("never", 2, "firing", "rep-a", sun(14, 10)),  # 4 business hours, lunch excluded
        ("late", 1, "firing", "rep-a", sun(9, 10)),
        ("late", 1, "resolved", "rep-a", sun(9, 10)),
        ("moved", 1, "firing", "rep-b", sun(9, 15)),  # a fresh clock from 08:00 Sunday
        ("moved", 2, "firing", "rep-b", sun(14, 15)),
    }
    assert set(seen) == expected
    assert len(seen) == len(expected), "each step once"
    for lead in ("never", "moved"):
        levels = [e["level"] for e in got if e["lead_id"] == lead]
        assert levels == [1, 2], "in order"
    for e in got:
        if e["status"] == "firing":
            late_by = datetime.fromisoformat(e["breached_at"]) - datetime.fromisoformat(e["due_at"])
            # Never early; late by a few ticks of accelerated time at most.
            assert timedelta(0) <= late_by <= timedelta(minutes=30), e
