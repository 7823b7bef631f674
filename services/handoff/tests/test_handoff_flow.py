"""The hand-off's use cases over the real PostgreSQL server, with a scripted target:
exactly one row per (target, assignment), per-lead order, superseded moves, retries
and dead letters, a struggling target's batch held back, leases after a crash, and
erasure (pending cancelled, the erasure queued for targets that hold the lead)."""

from __future__ import annotations

import json
import os
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest
from tests.conftest import create_database, drop_database

from leadloop.clock import FixedClock
from leadloop.events import AssignmentKind, LeadAssigned, Priority, RepUpdated, Strategy
from leadloop_handoff.adapters import postgres
from leadloop_handoff.adapters.metrics import HandoffMetrics
from leadloop_handoff.adapters.postgres import HandoffStore
from leadloop_handoff.domain.cards import Attempt, LeadCard
from leadloop_handoff.domain.deliveries import LEAD_COLUMNS, TargetPlan
from leadloop_handoff.domain.pacing import TokenBucket
from leadloop_handoff.domain.retry import RetryPolicy
from leadloop_handoff.handlers import HandoffHandler, Lane

pytestmark = pytest.mark.integration

T0 = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


@dataclass
class ScriptedTarget:
    """Answers from a script (then "delivered"), recording every card it was sent."""

    name: str
    script: list[Attempt] = field(default_factory=list)
    supports_pool: bool = False
    supports_erase: bool = True
    cards: list[LeadCard] = field(default_factory=list)
    erased: list[str] = field(default_factory=list)

    async def upsert(self, card: LeadCard) -> Attempt:
        self.cards.append(card)
        return self.script.pop(0) if self.script else Attempt("delivered", 200, "ok")

    async def erase(self, lead_id: str) -> Attempt:
        self.erased.append(lead_id)
        return Attempt("delivered", 204, "ok")

    async def aclose(self) -> None:
        return None


@pytest.fixture
async def pool() -> AsyncIterator[asyncpg.Pool]:
    admin = os.environ.get("DATABASE_URL")
    if not admin:
        pytest.fail("DATABASE_URL is not set: these tests need the real PostgreSQL server")
    url = await create_database(admin)
    p = await asyncpg.create_pool(url, min_size=1, max_size=4)
    try:
        yield p
    finally:
        await p.close()
        await drop_database(admin, url)


async def _lead(pool: asyncpg.Pool, lead_id: str) -> None:
    await pool.execute(
        "INSERT INTO leads (lead_id, source, source_lead_id, email, name, company, score, "
        "priority, occurred_at, accepted_at, accepted_event_id, raw_partition, raw_offset) "
        "VALUES ($1, 'web_form', $1, $1 || '@example.com', 'Li Lei', 'Acme', 70, 'warm', "
        "$2, $2, 'acc-' || $1, 0, 0)",
        lead_id,
        T0,
    )


def _assigned(lead_id: str, seq: int, owner: str | None = "rep-1", kind: str = "initial") -> bytes:
    return (
        LeadAssigned(
            event_id=f"{lead_id}-e{seq}",
            occurred_at=T0,
            assignment_id=f"{lead_id}-a{seq}",
            lead_id=lead_id,
            owner_id=owner,
            team_id="team-cn",
            rule_id="cn",
            rule_version="v1",
            strategy=Strategy.POOL if owner is None else Strategy.ROUND_ROBIN,
            kind=AssignmentKind(kind),
            reason="test",
            lead_occurred_at=T0,
            assigned_at=T0 + timedelta(seconds=seq),
            priority=Priority.WARM,
            sequence=seq,
        )
        .model_dump_json()
        .encode()
    )


def _handler(
    pool: asyncpg.Pool, clock: FixedClock, *targets: ScriptedTarget, max_attempts: int = 3
) -> HandoffHandler:
    lanes = {
        t.name: Lane(
            plan=TargetPlan(t.name, t.supports_pool, t.supports_erase, owner_ids={"rep-1": "U1"}),
            target=t,
            policy=RetryPolicy(base_s=1, cap_s=10, max_attempts=max_attempts),
            max_in_flight=2,
            bucket=TokenBucket(rate=1000, burst=100, now=0),
        )
        for t in targets
    }
    return HandoffHandler(
        store=HandoffStore(pool),
        lanes=lanes,
        clock=clock,
        metrics=HandoffMetrics(lanes),
        lease=timedelta(seconds=30),
        jitter=lambda: 0.0,
    )


async def _rows(pool: asyncpg.Pool, target: str) -> list[tuple[str, str, int, str]]:
    rows = await pool.fetch(
        "SELECT lead_id, assignment_id, attempts, status FROM handoff_deliveries "
        "WHERE target = $1 ORDER BY lead_id, sequence",
        target,
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


def test_the_claim_reads_exactly_the_card_columns() -> None:
    selected = postgres._CLAIM.split("AS lead_found,")[1].split("coalesce")[0]
    assert [c.strip().removeprefix("l.") for c in selected.split(",") if c.strip()] == list(
        LEAD_COLUMNS
    )


async def test_one_row_per_assignment_and_target_and_order_per_lead(pool: asyncpg.Pool) -> None:
    clock = FixedClock(T0)
    crm, hook = ScriptedTarget("crm"), ScriptedTarget("hook")
    h = _handler(pool, clock, crm, hook)
    await _lead(pool, "L1")
    batch = [("leads.assigned", _assigned("L1", 0)), ("leads.assigned", _assigned("L1", 1))]
    assert await h.handle(batch) == 4
    assert await h.handle(batch) == 0  # redelivered: nothing new
    # Only the first move is claimable until it is finished.
    assert await h.deliver("crm") == 1
    assert [c.assignment_id for c in crm.cards] == ["L1-a0"]
    assert crm.cards[0].owner_crm_id == "U1"
    assert crm.cards[0].email == "L1@example.com"
    assert await h.deliver("crm") == 1
    assert [c.assignment_id for c in crm.cards] == ["L1-a0", "L1-a1"]
    assert await _rows(pool, "crm") == [
        ("L1", "L1-a0", 1, "delivered"),
        ("L1", "L1-a1", 1, "delivered"),
    ]


async def test_an_older_move_after_a_newer_one_is_superseded(pool: asyncpg.Pool) -> None:
    clock = FixedClock(T0)
    crm = ScriptedTarget("crm")
    h = _handler(pool, clock, crm)
    await _lead(pool, "L1")
    await h.handle([("leads.assigned", _assigned("L1", 2, kind="reassigned"))])
    await h.handle([("leads.assigned", _assigned("L1", 1))])
    await h.deliver("crm")
    assert [c.sequence for c in crm.cards] == [2]
    assert await _rows(pool, "crm") == [
        ("L1", "L1-a1", 0, "superseded"),
        ("L1", "L1-a2", 1, "delivered"),
    ]


async def test_pooled_only_where_supported_and_roster_ids_win(pool: asyncpg.Pool) -> None:
    clock = FixedClock(T0)
    crm, hook = ScriptedTarget("crm", supports_pool=True), ScriptedTarget("hook")
    h = _handler(pool, clock, crm, hook)
    await _lead(pool, "L1")
    await _lead(pool, "L2")
    rep = RepUpdated(
        rep_id="rep-1", team_id="team-cn", updated_at=T0, external_ids={"crm": "ROSTER-1"}
    )
    await h.handle(
        [
            ("crm.reps", rep.model_dump_json().encode()),
            ("leads.assigned", _assigned("L1", 0, owner=None, kind="pooled")),
            ("leads.assigned", _assigned("L2", 0)),
        ]
    )
    await h.deliver("crm")
    await h.deliver("hook")
    assert sorted((c.lead_id, c.owner_crm_id) for c in crm.cards) == [
        ("L1", None),
        ("L2", "ROSTER-1"),
    ]
    assert [c.lead_id for c in hook.cards] == ["L2"]


async def test_retries_back_off_then_dead_letter_and_hold_the_batch(pool: asyncpg.Pool) -> None:
    clock = FixedClock(T0)
    failing = Attempt("retry", 503, "http_503")
    crm = ScriptedTarget("crm", script=[failing] * 10)
    h = _handler(pool, clock, crm, max_attempts=3)
    for n in range(5):
        await _lead(pool, f"L{n}")
        await h.handle([("leads.assigned", _assigned(f"L{n}", 0))])
    # What was in flight (two at most) fails: the rest is held back unsent, uncounted.
    assert await h.deliver("crm") == 5
    sent = len(crm.cards)
    assert 1 <= sent <= 2
    rows = await _rows(pool, "crm")
    assert sorted(r[2] for r in rows) == [0] * (5 - sent) + [1] * sent
    assert await h.deliver("crm") == 0  # nothing is due before the backoff
    for _ in range(6):
        clock.advance(timedelta(seconds=20))
        await h.deliver("crm")
    dead = await pool.fetch(
        "SELECT last_status, last_code FROM handoff_deliveries WHERE status = 'dead'"
    )
    assert {(r["last_status"], r["last_code"]) for r in dead} == {
        (503, "attempts_exhausted:http_503")
    }
    assert len(crm.cards) >= 6


async def test_a_permanent_failure_is_a_dead_letter_at_once(pool: asyncpg.Pool) -> None:
    clock = FixedClock(T0)
    crm = ScriptedTarget("crm", script=[Attempt("failed", 400, "INVALID_FIELD")])
    h = _handler(pool, clock, crm)
    await _lead(pool, "L1")
    await h.handle([("leads.assigned", _assigned("L1", 0))])
    await h.deliver("crm")
    assert await _rows(pool, "crm") == [("L1", "L1-a0", 1, "dead")]
    assert [r["last_code"] for r in await h.store.dead_letters(None, 10)] == ["INVALID_FIELD"]
    assert await h.store.replay("crm", "OTHER_CODE", None, T0) == 0
    assert await h.store.replay("crm", "INVALID_FIELD", None, T0) == 1
    await h.deliver("crm")
    assert await _rows(pool, "crm") == [("L1", "L1-a0", 1, "delivered")]


async def test_a_lease_outlives_a_dead_worker(pool: asyncpg.Pool) -> None:
    clock = FixedClock(T0)
    crm = ScriptedTarget("crm")
    h = _handler(pool, clock, crm)
    await _lead(pool, "L1")
    await h.handle([("leads.assigned", _assigned("L1", 0))])
    claimed = await h.store.claim("crm", T0, 10, timedelta(seconds=30))
    assert len(claimed) == 1  # a worker claimed it and died before finishing
    assert await h.deliver("crm") == 0
    clock.advance(timedelta(seconds=31))
    assert await h.deliver("crm") == 1
    assert await _rows(pool, "crm") == [("L1", "L1-a0", 1, "delivered")]


async def test_erasure_cancels_pending_and_erases_where_the_lead_went(pool: asyncpg.Pool) -> None:
    clock = FixedClock(T0)
    crm, later = ScriptedTarget("crm"), ScriptedTarget("later")
    h = _handler(pool, clock, crm, later)
    await _lead(pool, "L1")
    await h.handle([("leads.assigned", _assigned("L1", 0))])
    await h.deliver("crm")  # the CRM has the lead; "later" has not sent yet
    await pool.execute(
        "UPDATE leads SET email = NULL, name = NULL, erased_at = $1 WHERE lead_id = 'L1'", T0
    )
    assert await h.scan_erasures() == 1
    assert await h.scan_erasures() == 1  # re-reading the window changes nothing
    await h.deliver("later")
    assert later.cards == []
    clock.advance(timedelta(seconds=31))  # the erasure waits out any lease
    await h.deliver("crm")
    assert crm.erased == ["L1"]
    assert await _rows(pool, "crm") == [
        ("L1", "L1-a0", 1, "delivered"),
        ("L1", "erase", 1, "delivered"),
    ]
    statuses = await pool.fetch(
        "SELECT status, last_code FROM handoff_deliveries WHERE target = 'later'"
    )
    assert [tuple(r) for r in statuses] == [("cancelled", "erased")]
    # A card that arrives after the erasure is cancelled too, and sends nothing.
    await h.handle([("leads.assigned", _assigned("L1", 5, kind="reassigned"))])
    clock.advance(timedelta(seconds=1))
    await h.deliver("later")
    assert later.cards == []
    counted = json.loads(json.dumps(await _rows(pool, "later")))
    assert [r[3] for r in counted] == ["cancelled", "cancelled"]


async def test_a_target_down_for_ten_minutes_loses_nothing_and_catches_up(
    pool: asyncpg.Pool,
) -> None:
    """The shipped defaults: backoff from 1 s doubling to 300 s, 20 attempts, a CRM that
    answers 503 for ten minutes, whatever the jitter."""
    from leadloop_handoff.adapters.targets.config import WebhookConfig

    attempts = WebhookConfig.model_fields["max_attempts"].default
    clock = FixedClock(T0)
    crm = ScriptedTarget("crm")
    h = _handler(pool, clock, crm, max_attempts=attempts)
    h.lanes["crm"].policy = RetryPolicy(base_s=1.0, cap_s=300.0, max_attempts=attempts)
    for jitter in (0.0, 0.999):
        h.jitter = lambda j=jitter: j
        lead = f"L-{jitter}"
        await _lead(pool, lead)
        await h.handle([("leads.assigned", _assigned(lead, 0))])
        up_at = clock.now() + timedelta(minutes=10)
        while clock.now() < up_at:
            crm.script = [Attempt("retry", 503, "http_503")]
            await h.deliver("crm")
            clock.advance(timedelta(seconds=5))
        crm.script = []
        for _ in range(80):  # the longest wait is the cap: 300 s
            await h.deliver("crm")
            clock.advance(timedelta(seconds=5))
        rows = [r for r in await _rows(pool, "crm") if r[0] == lead]
        assert [r[3] for r in rows] == ["delivered"], rows
        assert rows[0][2] < attempts


async def test_an_erasure_reaches_a_target_sent_to_by_a_worker_killed_before_storing(
    pool: asyncpg.Pool,
) -> None:
    """The request reached the CRM, the worker died before it stored the reply: no attempt
    is counted, the lease ran out, and the person is erased before the row is claimed
    again. The CRM holds the lead, so it must get the erasure."""
    clock = FixedClock(T0)
    crm = ScriptedTarget("crm")
    h = _handler(pool, clock, crm)
    await _lead(pool, "L1")
    await h.handle([("leads.assigned", _assigned("L1", 0))])
    claimed = await h.store.claim("crm", T0, 10, timedelta(seconds=30))
    assert [d.lead_id for d in claimed] == ["L1"]  # sent, then the worker died
    clock.advance(timedelta(seconds=31))
    await pool.execute("UPDATE leads SET name = NULL, erased_at = $1 WHERE lead_id = 'L1'", T0)
    assert await h.scan_erasures() == 1
    clock.advance(timedelta(seconds=31))
    await h.deliver("crm")
    assert crm.cards == []  # the pending upsert is cancelled, not sent again
    assert crm.erased == ["L1"]
    assert await _rows(pool, "crm") == [
        ("L1", "L1-a0", 0, "cancelled"),
        ("L1", "erase", 1, "delivered"),
    ]
