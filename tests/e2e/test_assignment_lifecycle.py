"""What assignment does after the first decision, on the real broker and database.

The assignment service runs as a process with its own rules and calendars files. The
test plays the CRM (crm.stage-changes, crm.reps) and the SLA monitor (sla.escalations)
and follows one small team through a day:

- two reps with room for one lead each: the third lead waits in the pool;
- a lead is won: its owner's capacity frees and the pooled lead goes to them at once;
- a rep joins through the roster; another leaves: the leaver's open lead is reassigned
  by the rules (kind reassigned, previous owner recorded);
- an escalation ``reassign`` whose only other candidate is full: the lead is reclaimed
  into the pool; raising a rep's capacity through the roster lets the pool give it to
  them, never back to the rep cooling down;
- ``return_to_pool``: reclaimed, then straight to the other eligible rep; a redelivered
  escalation moves nothing again;
- a team outside its working hours pools every lead with the reason ``off_hours``.

Afterwards every rep's open-lead count in PostgreSQL equals the open leads they own.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.support.events import accepted, escalation
from tests.support.kafka import collect
from tests.support.processes import ServiceGroup
from tests.support.stack import running, stack_env

from leadloop.events import (
    EscalationAction,
    Priority,
    RepStatus,
    RepUpdated,
    Stage,
    StageChanged,
)
from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

pytestmark = pytest.mark.e2e

RULES = """
version: "life-1"
reassign_cooldown_seconds: 3600
teams:
  - team_id: team-a
    manager_id: mgr-a
    reps:
      - {rep_id: a-1, capacity: 1}
      - {rep_id: a-2, capacity: 1}
  - team_id: team-h
    manager_id: mgr-h
    working_hours: true
    reps:
      - {rep_id: h-1}
rules:
  - rule_id: after-hours
    when:
      campaign: {equals: hours}
    team: team-h
  - rule_id: everyone
    team: team-a
"""


def calendars(closed: list[str]) -> str:
    """team-h works around the clock except on the given dates (today and tomorrow)."""
    days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]
    weekly = "\n".join(f'      {d}: ["00:00-24:00"]' for d in days)
    holidays = "\n".join(f"      - {d}" for d in closed)
    return f"""
default: always
teams:
  team-h: closed-now
calendars:
  always:
    timezone: UTC
    weekly:
{weekly}
  closed-now:
    timezone: UTC
    weekly:
{weekly}
    holidays:
{holidays}
"""


@pytest.fixture
def assignment(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[ServiceGroup]:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES)
    cal = tmp_path / "calendars.yaml"
    today = datetime.now(UTC).date()
    cal.write_text(calendars([str(today), str(today + timedelta(days=1))]))
    env = stack_env(
        database_url,
        kafka_settings,
        tmp_path,
        LEADLOOP_RULES_FILE=str(rules),
        LEADLOOP_CALENDARS_FILE=str(cal),
        LEADLOOP_POOL_CHECK_SECONDS="0.5",
    )
    with running(env, tmp_path, "assignment") as group:
        yield group


class Crm:
    """Produces what the CRM, HR and the SLA monitor would, and reads leads.assigned."""

    def __init__(self, producer: AIOKafkaProducer, kafka: KafkaSettings) -> None:
        self.producer = producer
        self.kafka = kafka
        self.seen = 0

    async def send(self, topic: str, key: str, value: bytes) -> None:
        await self.producer.send_and_wait(
            qualified(topic, self.kafka.topic_prefix), value, key=key.encode()
        )

    async def lead(self, lead_id: str, **fields: Any) -> None:
        lead = accepted(
            lead_id,
            datetime.now(UTC),
            event_id=f"ev-{lead_id}",
            source="web_form",
            source_lead_id=lead_id,
            score=50,
            priority=Priority.WARM,
            **fields,
        )
        await self.send("leads.accepted", lead_id, lead.model_dump_json().encode())

    async def won(self, lead_id: str, rep_id: str) -> None:
        change = StageChanged(
            event_id=f"won-{lead_id}",
            lead_id=lead_id,
            stage=Stage.WON,
            occurred_at=datetime.now(UTC),
            rep_id=rep_id,
            amount=1000.0,
        )
        await self.send("crm.stage-changes", lead_id, change.model_dump_json().encode())

    async def rep(self, rep_id: str, status: RepStatus, capacity: int) -> None:
        entry = RepUpdated(
            event_id=str(uuid.uuid4()),
            rep_id=rep_id,
            team_id="team-a",
            manager_id="mgr-a",
            status=status,
            capacity=capacity,
            updated_at=datetime.now(UTC),
        )
        await self.send("crm.reps", rep_id, entry.model_dump_json().encode())

    async def escalate(self, lead_id: str, owner: str, action: EscalationAction) -> bytes:
        step = escalation(
            lead_id,
            owner,
            "team-a",
            datetime.now(UTC),
            event_id=f"esc-{lead_id}-{action.value}",
            escalation_id=f"esc-{lead_id}-{action.value}",
            level=3,
            action=action,
            manager="mgr-a",
        )
        value = step.model_dump_json().encode()
        await self.send("sla.escalations", lead_id, value)
        return value

    async def assigned(self, more: int) -> list[dict[str, Any]]:
        """The next ``more`` leads.assigned events (and checks no extra one follows)."""
        records = await collect(self.kafka, "leads.assigned", self.seen + more)
        # Time orders events across partitions; a lead's moves of one pass share a time,
        # and its partition's offsets order them.
        records.sort(key=lambda r: (json.loads(r.value)["assigned_at"], r.partition, r.offset))
        events = [json.loads(r.value) for r in records]
        assert len(events) == self.seen + more, [
            (e["lead_id"], e["kind"], e["owner_id"]) for e in events
        ]
        new = events[self.seen :]
        self.seen += more
        return new


@pytest.fixture
def crm(producer: AIOKafkaProducer, kafka_settings: KafkaSettings) -> Crm:
    return Crm(producer, kafka_settings)


def moves(events: list[dict[str, Any]]) -> list[tuple[str, str, str | None, str | None]]:
    return [(e["lead_id"], e["kind"], e["owner_id"], e["previous_owner_id"]) for e in events]


async def test_a_day_of_moves(assignment: ServiceGroup, crm: Crm, database_url: str) -> None:
    # Room for two: the third lead waits in the pool.
    for lead_id in ("l1", "l2", "l3"):
        await crm.lead(lead_id)
    first = await crm.assigned(3)
    owners = {e["lead_id"]: e["owner_id"] for e in first}
    assert sorted(e["kind"] for e in first) == ["initial", "initial", "pooled"]
    [waiting] = [lead for lead, owner in owners.items() if owner is None]
    [(won, winner)] = [(lead, o) for lead, o in owners.items() if o == "a-1"]
    [kept] = [lead for lead, o in owners.items() if o == "a-2"]

    # A won lead frees a-1: the pooled lead goes to them straight away.
    await crm.won(won, winner)
    assert moves(await crm.assigned(1)) == [(waiting, "reassigned", "a-1", None)]

    # a-3 joins; a-2 leaves: a-2's open lead is decided again and goes to a-3.
    await crm.rep("a-3", RepStatus.ACTIVE, capacity=1)
    await crm.rep("a-2", RepStatus.LEFT, capacity=1)
    [left] = await crm.assigned(1)
    assert moves([left]) == [(kept, "reassigned", "a-3", "a-2")]
    assert "a-2 left" in left["reason"]

    # Reassign a-3's lead: a-1 is full, a-3 cools down: reclaimed into the pool.
    await crm.escalate(kept, "a-3", EscalationAction.REASSIGN)
    assert moves(await crm.assigned(1)) == [(kept, "reclaimed", None, "a-3")]
    # More room for a-1 (roster): the pool gives the lead to a-1, not back to a-3.
    await crm.rep("a-1", RepStatus.ACTIVE, capacity=5)
    assert moves(await crm.assigned(1)) == [(kept, "reassigned", "a-1", None)]

    # return_to_pool from a-1: reclaimed, then to a-3 (a-1 cools down); redelivered: no-op.
    value = await crm.escalate(waiting, "a-1", EscalationAction.RETURN_TO_POOL)
    assert moves(await crm.assigned(2)) == [
        (waiting, "reclaimed", None, "a-1"),
        (waiting, "reassigned", "a-3", None),
    ]
    await crm.send("sla.escalations", waiting, value)

    # Outside working hours: pooled, and the decision says why.
    await crm.lead("night", campaign="hours")
    [night] = await crm.assigned(1)
    assert (night["kind"], night["owner_id"], night["team_id"]) == ("pooled", None, "team-h")
    assert "h-1 (off_hours)" in night["reason"]

    conn = await asyncpg.connect(database_url)
    try:
        load = {r["rep_id"]: r["open_leads"] for r in await conn.fetch("SELECT * FROM rep_load")}
        owned = {
            r["owner_id"]: r["n"]
            for r in await conn.fetch(
                "SELECT owner_id, count(*) AS n FROM assignment_leads "
                "WHERE closed_at IS NULL AND owner_id IS NOT NULL GROUP BY owner_id"
            )
        }
        assert {rep: n for rep, n in load.items() if n} == owned == {"a-1": 1, "a-3": 1}
        unpublished = await conn.fetchval(
            "SELECT count(*) FROM assignments WHERE published_at IS NULL"
        )
        assert unpublished == 0
        firsts = await conn.fetchval(
            "SELECT count(*) FROM assignments WHERE kind IN ('initial', 'pooled')"
        )
        assert firsts == 4
    finally:
        await conn.close()
    assert assignment.alive("assignment")
