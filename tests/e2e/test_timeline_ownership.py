"""A lead's owner, kept by ingest from ``leads.assigned``, on the real PostgreSQL.

Ingest writes a run of assignment events in one statement. The end state must be the
one of applying them one at a time in their order: each event recorded once, and a
lead's owner that of its newest assignment (the later one on a tie), an older event
arriving late changing nothing. Random event streams (late, tied, redelivered events,
pool decisions without an owner), cut into random batches with stage changes between
them, are checked against that one-at-a-time model, written here on its own.
"""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from leadloop.db import create_pool
from leadloop.events import (
    AssignmentKind,
    LeadAssigned,
    Priority,
    Stage,
    StageChanged,
    Strategy,
)
from leadloop_ingest.adapters.timeline_store import TimelineStore
from leadloop_ingest.domain.intake import Position
from leadloop_ingest.domain.timeline import TimelineEvent

pytestmark = pytest.mark.integration

T0 = datetime(2026, 5, 4, 9, 0, tzinfo=UTC)
LEADS = [f"lead-{n}" for n in range(6)]
REPS = ["rep-a", "rep-b", "rep-c", None]


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    p = await create_pool(database_url)
    try:
        yield p
    finally:
        await p.close()


def assigned(rng: random.Random, n: int) -> LeadAssigned:
    owner = rng.choice(REPS)
    return LeadAssigned(
        event_id=f"as-{n}",
        occurred_at=T0,
        assignment_id=f"as-{n}",
        lead_id=rng.choice(LEADS),
        owner_id=owner,
        team_id="t1",
        rule_id="r1",
        rule_version="v1",
        strategy=Strategy.ROUND_ROBIN if owner else Strategy.POOL,
        kind=rng.choice(list(AssignmentKind)),
        reason="test",
        lead_occurred_at=T0,
        # Few distinct instants, so that ties and late events are common.
        assigned_at=T0 + timedelta(minutes=rng.randrange(5)),
        priority=Priority.WARM,
    )


def stage_changed(rng: random.Random, n: int) -> StageChanged:
    return StageChanged(
        event_id=f"st-{n}",
        occurred_at=T0 + timedelta(minutes=rng.randrange(5)),
        lead_id=rng.choice(LEADS),
        stage=rng.choice([Stage.QUALIFIED, Stage.NEW]),
        rep_id="rep-a",
    )


@dataclass
class OneAtATime:
    """What applying the events one by one leaves: the model the statement must match."""

    owner: dict[str, str | None] = field(default_factory=dict)
    stage: dict[str, str] = field(default_factory=lambda: dict.fromkeys(LEADS, "new"))
    stage_at: dict[str, datetime] = field(default_factory=dict)
    times: dict[str, list[datetime]] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)

    def apply(self, e: TimelineEvent) -> None:
        if e.event_id in self.seen:
            return
        self.seen.add(e.event_id)
        if isinstance(e, LeadAssigned):
            times = self.times.setdefault(e.lead_id, [])
            times.append(e.assigned_at)
            if all(t <= e.assigned_at for t in times):
                self.owner[e.lead_id] = e.owner_id
                if self.stage[e.lead_id] == "new":
                    self.stage[e.lead_id] = "assigned"
        elif isinstance(e, StageChanged):
            at = self.stage_at.get(e.lead_id)
            if at is None or at <= e.occurred_at:
                self.stage[e.lead_id] = e.stage.value
                self.stage_at[e.lead_id] = e.occurred_at


async def test_a_run_of_assignments_ends_as_if_applied_one_at_a_time(pool: asyncpg.Pool) -> None:
    store = TimelineStore(pool)
    checked = 0
    for seed in range(40):
        rng = random.Random(seed)
        async with pool.acquire() as conn:
            await conn.execute("TRUNCATE lead_ownership, lead_stage_changes, leads CASCADE")
            await conn.executemany(
                "INSERT INTO leads (lead_id, source, source_lead_id, score, priority, "
                "occurred_at, accepted_at, accepted_event_id, raw_partition, raw_offset) "
                "VALUES ($1, 'web_form', $1, 50, 'warm', $2, $2, $1, 0, $3)",
                [(lead, T0, n) for n, lead in enumerate(LEADS)],
            )
        fresh: list[TimelineEvent] = [
            stage_changed(rng, n) if rng.random() < 0.15 else assigned(rng, n) for n in range(60)
        ]
        # Redeliveries: some events come again, later in the stream.
        stream = fresh + [rng.choice(fresh) for _ in range(15)]
        rng.shuffle(stream)
        model = OneAtATime()
        start = 0
        while start < len(stream):
            end = start + rng.randint(1, 20)
            batch = stream[start:end]
            await store.apply(
                [(Position("leads.assigned", 0, start + k), e) for k, e in enumerate(batch)],
                [],
                T0,
            )
            for e in batch:
                model.apply(e)
            start = end
        rows = await pool.fetch("SELECT lead_id, owner_id, stage FROM leads ORDER BY lead_id")
        assert len(rows) == len(LEADS)
        got = {r["lead_id"]: (r["owner_id"], r["stage"]) for r in rows}
        want = {lead: (model.owner.get(lead), model.stage[lead]) for lead in LEADS}
        assert got == want, f"seed {seed}"
        recorded = await pool.fetchval("SELECT count(*) FROM lead_ownership")
        assert recorded == sum(1 for e in model.seen if e.startswith("as-"))
        checked += 1
    assert checked == 40
