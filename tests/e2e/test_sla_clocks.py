"""Each SLA clock kind end to end: the real sla-monitor process on the real broker and
database, fed leads.accepted, leads.assigned, crm.reps, crm.activities and
crm.stage-changes by the test, observed on sla.escalations.

Limits are a few seconds of wall time (the calendar is round the clock), so every test
checks both that a step fires and that it does not fire before its due time.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import Collection, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from aiokafka import AIOKafkaProducer
from tests.support.kafka import collect
from tests.support.processes import ServiceGroup
from tests.support.stack import sla_monitor

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

pytestmark = pytest.mark.e2e

ALL_KINDS = frozenset({"first_response", "follow_up", "stage_stall", "reclaim_warning"})
FIRST = ("first_response",)

POLICY = """
policies:
  - policy_id: fr-ads
    kind: first_response
    when: {source: [lead_ads]}
    limit_seconds: 2
    ladder:
      - {level: 1, after_seconds: 0, action: remind_owner}
      - {level: 2, after_seconds: 2, action: notify_manager}
  - policy_id: fr-rest
    kind: first_response
    limit_seconds: 600
    ladder:
      - {level: 1, after_seconds: 0, action: remind_owner}
  - policy_id: fu
    kind: follow_up
    limit_seconds: 4
    ladder:
      - {level: 1, after_seconds: 0, action: remind_owner}
  - policy_id: stall
    kind: stage_stall
    when: {stage: [proposal]}
    limit_seconds: 3
    ladder:
      - {level: 1, after_seconds: 0, action: notify_manager}
      - {level: 2, after_seconds: 4, action: return_to_pool, warn_before_seconds: 2}
"""


@pytest.fixture
def sla(database_url: str, kafka_settings: KafkaSettings, tmp_path: Path) -> Iterator[ServiceGroup]:
    with sla_monitor(database_url, kafka_settings, tmp_path, POLICY) as group:
        yield group


class Crm:
    """Writes the sla-monitor's input topics as the other services and the CRM would."""

    def __init__(self, producer: AIOKafkaProducer, kafka: KafkaSettings) -> None:
        self._p = producer
        self._prefix = kafka.topic_prefix

    async def send(self, topic: str, key: str, body: dict[str, Any]) -> None:
        await self._p.send_and_wait(
            qualified(topic, self._prefix), json.dumps(body).encode(), key=key.encode()
        )

    async def rep(self, rep_id: str, manager: str) -> None:
        await self.send(
            "crm.reps",
            rep_id,
            {
                "rep_id": rep_id,
                "team_id": "north",
                "manager_id": manager,
                "updated_at": now().isoformat(),
            },
        )

    async def accepted(self, lead: str, source: str) -> None:
        await self.send(
            "leads.accepted",
            lead,
            {
                "event_id": str(uuid.uuid4()),
                "occurred_at": now().isoformat(),
                "lead_id": lead,
                "source": source,
                "source_lead_id": lead,
                "accepted_at": now().isoformat(),
                "score": 80,
                "priority": "hot",
            },
        )

    async def assigned(self, lead: str, owner: str | None, kind: str = "initial") -> datetime:
        when = now()
        await self.send(
            "leads.assigned",
            lead,
            {
                "event_id": str(uuid.uuid4()),
                "occurred_at": when.isoformat(),
                "assignment_id": str(uuid.uuid4()),
                "lead_id": lead,
                "owner_id": owner,
                "team_id": "north",
                "rule_id": "r1",
                "rule_version": "1",
                "strategy": "round_robin" if owner else "pool",
                "kind": kind,
                "reason": "test",
                "lead_occurred_at": when.isoformat(),
                "assigned_at": when.isoformat(),
                "priority": "hot",
            },
        )
        return when

    async def touch(self, lead: str, promise: datetime | None = None) -> datetime:
        when = now()
        body: dict[str, Any] = {
            "event_id": str(uuid.uuid4()),
            "lead_id": lead,
            "rep_id": "rep-a",
            "kind": "call",
            "occurred_at": when.isoformat(),
        }
        if promise is not None:
            body["next_followup_at"] = promise.isoformat()
        await self.send("crm.activities", lead, body)
        return when

    async def stage(self, lead: str, stage: str, **extra: Any) -> datetime:
        when = now()
        await self.send(
            "crm.stage-changes",
            lead,
            {
                "event_id": str(uuid.uuid4()),
                "lead_id": lead,
                "stage": stage,
                "occurred_at": when.isoformat(),
                "rep_id": "rep-a",
                **extra,
            },
        )
        return when


def now() -> datetime:
    return datetime.now(UTC)


@pytest.fixture
def crm(producer: AIOKafkaProducer, kafka_settings: KafkaSettings) -> Crm:
    return Crm(producer, kafka_settings)


async def escalations(
    kafka: KafkaSettings, want: int, within: float, kinds: Collection[str] = ALL_KINDS
) -> list[dict[str, Any]]:
    """Escalations of ``kinds`` in topic order, once ``want`` of them arrived (or time ran
    out), after lingering a little: more than expected would be a duplicate."""
    deadline = time.monotonic() + within
    while True:
        records = await collect(kafka, "sla.escalations", 0, within=0.5)
        got = [e for r in records if (e := json.loads(r.value))["kind"] in kinds]
        if len(got) >= want or time.monotonic() > deadline:
            break
    await asyncio.sleep(1)
    records = await collect(kafka, "sla.escalations", 0, within=0.5)
    return [e for r in records if (e := json.loads(r.value))["kind"] in kinds]


def seconds(a: str | datetime, b: str | datetime) -> float:
    def ts(x: str | datetime) -> datetime:
        return datetime.fromisoformat(x) if isinstance(x, str) else x

    return (ts(a) - ts(b)).total_seconds()


async def test_first_response_policy_by_source_manager_from_roster_and_a_new_cycle_on_reassignment(
    sla: ServiceGroup, crm: Crm, kafka_settings: KafkaSettings
) -> None:
    await crm.rep("rep-a", "mgr-1")
    await crm.rep("rep-b", "mgr-2")
    for lead, source in (("ads-1", "lead_ads"), ("web-1", "web"), ("ads-2", "lead_ads")):
        await crm.accepted(lead, source)
    started = {lead: await crm.assigned(lead, "rep-a") for lead in ("ads-1", "web-1", "ads-2")}
    await crm.touch("ads-2")  # answered in time: no escalation

    first = await escalations(kafka_settings, 2, within=30, kinds=FIRST)
    assert [(e["lead_id"], e["level"], e["status"]) for e in first] == [
        ("ads-1", 1, "firing"),
        ("ads-1", 2, "firing"),
    ], "only the lead_ads lead nobody answered breaches (web-1 has a 600 s policy)"
    for e in first:
        assert e["policy_id"] == "fr-ads"
        assert (e["owner_id"], e["manager_id"], e["team_id"]) == ("rep-a", "mgr-1", "north")
        assert e["kind"] == "first_response"
        assert seconds(e["due_at"], started["ads-1"]) == pytest.approx(2 + 2 * (e["level"] - 1))
        assert seconds(e["breached_at"], e["due_at"]) >= 0, "never before its due time"
        assert seconds(e["breached_at"], e["due_at"]) < 2, "within a tick or so"

    reassigned = await crm.assigned("ads-1", "rep-b", kind="reassigned")
    every = await escalations(kafka_settings, 6, within=30, kinds=FIRST)
    assert len(every) == 6, every
    resolved = [e for e in every if e["status"] == "resolved"]
    assert sorted(e["escalation_id"] for e in resolved) == sorted(e["escalation_id"] for e in first)
    fresh = [e for e in every[2:] if e["status"] == "firing"]
    assert [(e["owner_id"], e["manager_id"], e["level"]) for e in fresh] == [
        ("rep-b", "mgr-2", 1),
        ("rep-b", "mgr-2", 2),
    ]
    assert {e["escalation_id"] for e in fresh}.isdisjoint(e["escalation_id"] for e in first)
    assert seconds(fresh[0]["due_at"], reassigned) == pytest.approx(2)
    assert len({e["event_id"] for e in every}) == 6


async def test_follow_up_runs_to_the_promise_or_the_gap_and_a_late_touch_resolves(
    sla: ServiceGroup, crm: Crm, kafka_settings: KafkaSettings
) -> None:
    for lead in ("promise-1", "gap-1"):
        await crm.accepted(lead, "web")
        await crm.assigned(lead, "rep-a")
    promise = now() + timedelta(seconds=2)
    await crm.touch("promise-1", promise=promise)
    gap_touch = await crm.touch("gap-1")

    fired = await escalations(kafka_settings, 2, within=30, kinds=("follow_up",))
    by_lead = {e["lead_id"]: e for e in fired}
    assert set(by_lead) == {"promise-1", "gap-1"}
    assert all(e["kind"] == "follow_up" and e["status"] == "firing" for e in fired)
    assert seconds(by_lead["promise-1"]["due_at"], promise) == pytest.approx(0, abs=1e-3)
    assert seconds(by_lead["gap-1"]["due_at"], gap_touch) == pytest.approx(4)

    await crm.touch("gap-1")  # late: resolves, and starts the next gap
    every = await escalations(kafka_settings, 4, within=30, kinds=("follow_up",))
    gap = [(e["status"], e["escalation_id"]) for e in every if e["lead_id"] == "gap-1"]
    assert gap[:2] == [
        ("firing", by_lead["gap-1"]["escalation_id"]),
        ("resolved", by_lead["gap-1"]["escalation_id"]),
    ]
    assert gap[2][0] == "firing", "a fresh gap after the touch"
    assert gap[2][1] != gap[0][1]


async def test_stage_stall_with_a_reclaim_warning_ahead_of_the_return_to_pool(
    sla: ServiceGroup, crm: Crm, kafka_settings: KafkaSettings
) -> None:
    await crm.rep("rep-a", "mgr-1")
    for lead in ("stall-1", "moving-1"):
        await crm.accepted(lead, "web")
        await crm.assigned(lead, "rep-a")
    entered = await crm.stage("stall-1", "proposal")
    await crm.stage("moving-1", "proposal")
    await crm.stage("moving-1", "negotiation")  # left the stage at once: no stall

    stall_kinds = ("stage_stall", "reclaim_warning")
    stall = await escalations(kafka_settings, 3, within=30, kinds=stall_kinds)
    assert [(e["kind"], e["level"], e["action"]) for e in stall] == [
        ("stage_stall", 1, "notify_manager"),
        ("reclaim_warning", 2, "remind_owner"),
        ("stage_stall", 2, "return_to_pool"),
    ]
    assert [seconds(e["due_at"], entered) for e in stall] == pytest.approx([3, 5, 7])
    assert all(e["lead_id"] == "stall-1" and e["manager_id"] == "mgr-1" for e in stall)

    await crm.stage("stall-1", "won", amount=1000)
    every = await escalations(kafka_settings, 6, within=30, kinds=stall_kinds)
    mine = [e for e in every if e["lead_id"] == "stall-1"]
    assert sorted(e["status"] for e in mine) == ["firing"] * 3 + ["resolved"] * 3
    assert not [e for e in every if e["lead_id"] == "moving-1"]
