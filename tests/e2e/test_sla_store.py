"""sla-monitor's use cases over its PostgreSQL unit of work, on the real database:
policies with conditions, every clock kind, reclaim warnings, manager ids from the
roster, the on-call outbox, and time that jumps forward and back. Time is passed in,
so days of business time take milliseconds.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

import asyncpg
import pytest
from tests.support.sla_events import (
    ALWAYS,
    DAY,
    FIRST_RESPONSE,
    T0,
    H,
    accepted,
    assigned,
    at,
    rep,
    stage,
    touch,
)

from leadloop.clock import FixedClock
from leadloop.events import (
    EscalationAction,
    EscalationRaised,
)
from leadloop.messaging import OutMessage, RecordingPublisher
from leadloop_sla_monitor.adapters.postgres import PostgresUnitOfWork
from leadloop_sla_monitor.domain.alerts import DeliveryFailed
from leadloop_sla_monitor.domain.firing import Escalator
from leadloop_sla_monitor.domain.ladder import PolicySet
from leadloop_sla_monitor.domain.lifecycle import Lifecycle
from leadloop_sla_monitor.handlers import SlaHandler

pytestmark = pytest.mark.integration


POLICIES = PolicySet.model_validate(
    {
        "policies": [
            *FIRST_RESPONSE,
            {
                "policy_id": "fu",
                "kind": "follow_up",
                "limit_seconds": DAY,
                "ladder": [
                    {"level": 1, "after_seconds": 0, "action": "remind_owner"},
                    {"level": 2, "after_seconds": H, "action": "notify_manager"},
                ],
            },
            {
                "policy_id": "stall-proposal",
                "kind": "stage_stall",
                "when": {"stage": ["proposal"]},
                "limit_seconds": 3 * DAY,
                "ladder": [{"level": 1, "after_seconds": 0, "action": "notify_manager"}],
            },
        ],
        "alerting": {"actions": ["page_oncall"], "retry_base_seconds": 10},
    }
)


@dataclass(frozen=True)
class Broker:
    """A publisher that hands the escalations to ``take`` (it may hang, or fail)."""

    take: Callable[[list[EscalationRaised]], Awaitable[None]]

    async def publish(self, messages: Sequence[OutMessage]) -> None:
        await self.take([EscalationRaised.model_validate_json(m.value) for m in messages])


@pytest.fixture
async def db(database_url: str) -> AsyncIterator[tuple[SlaHandler, asyncpg.Pool]]:
    pool = await asyncpg.create_pool(database_url, min_size=1, max_size=2)
    assert pool is not None
    sla = SlaHandler(
        uow=PostgresUnitOfWork(pool),
        lifecycle=Lifecycle(POLICIES, ALWAYS),
        escalator=Escalator(POLICIES, ALWAYS),
        publisher=RecordingPublisher(),
        clock=FixedClock(T0),
        alerting=POLICIES.alerting,
        alert_actions=frozenset({EscalationAction.PAGE_ONCALL}),
    )
    yield sla, pool
    await pool.close()


async def steps(pool: asyncpg.Pool, lead: str) -> list[tuple[str, str, int, str, str]]:
    rows = await pool.fetch(
        "SELECT status, kind, level, action, policy_id FROM escalations WHERE lead_id = $1 "
        "ORDER BY status, due_at, level, kind",
        lead,
    )
    return [tuple(r) for r in rows]  # type: ignore[misc]


async def test_the_first_policy_that_covers_the_lead_wins_and_is_redecided_when_the_source_arrives(
    db: tuple[SlaHandler, asyncpg.Pool],
) -> None:
    sla, pool = db
    await sla.apply([rep("rep-a", "mgr-1"), assigned("l1", "rep-a", T0)], T0)
    # The source is not known yet: only the catch-all policy covers the lead.
    assert await pool.fetchval("SELECT policy_id FROM sla_clocks WHERE lead_id = 'l1'") == (
        "fr-default"
    )
    await sla.apply([accepted("l1", "lead_ads")], at(1))
    row = await pool.fetchrow("SELECT policy_id, due_at FROM sla_clocks WHERE lead_id = 'l1'")
    assert (row["policy_id"], row["due_at"]) == ("fr-hot-ads", at(300))
    assert await sla.fire_due(at(299)) == 0
    assert await sla.fire_due(at(300)) == 1
    fired = await pool.fetchrow("SELECT * FROM escalations WHERE lead_id = 'l1'")
    assert (fired["policy_id"], fired["level"], fired["manager_id"]) == ("fr-hot-ads", 1, "mgr-1")
    # The roster changes the manager; the next step carries the new one.
    await sla.apply([rep("rep-a", "mgr-2", at(400))], at(400))
    await sla.apply([rep("rep-a", "mgr-old", at(-5))], at(401))  # an older entry loses
    assert await sla.fire_due(at(900)) == 1
    assert await pool.fetchval(
        "SELECT manager_id FROM escalations WHERE lead_id = 'l1' AND level = 2"
    ) == ("mgr-2")
    # A redelivered input changes nothing.
    event = accepted("l9", "web")
    assert await sla.apply([event], at(1)) == 1
    assert await sla.apply([event], at(2)) == 0


async def test_a_reclaim_warning_fires_ahead_of_the_return_to_pool_and_a_touch_resolves_all(
    db: tuple[SlaHandler, asyncpg.Pool],
) -> None:
    sla, pool = db
    await sla.apply([accepted("l2", "web", "warm"), assigned("l2", "rep-a", T0)], T0)
    fired = []
    for t in (H, H + 1800, 2 * H, 3 * H):
        fired.append(await sla.fire_due(at(t)))
    assert fired == [1, 1, 1, 1]
    rows = await pool.fetch(
        "SELECT kind, level, action, due_at FROM escalations WHERE lead_id = 'l2' ORDER BY due_at"
    )
    assert [tuple(r) for r in rows] == [
        ("first_response", 1, "remind_owner", at(H)),
        ("reclaim_warning", 2, "remind_owner", at(H + 1800)),
        ("first_response", 2, "return_to_pool", at(2 * H)),
        ("first_response", 3, "page_oncall", at(3 * H)),
    ]
    # The page waits in the on-call outbox; Alertmanager is down: retried with backoff.
    sent: list[list[dict[str, Any]]] = []

    async def down(alerts: list[dict[str, Any]]) -> None:
        raise DeliveryFailed("ClientConnectorError")

    async def up(alerts: list[dict[str, Any]]) -> None:
        sent.append(alerts)

    assert await sla.deliver_due(down, at(3 * H)) == (0, 1)
    assert await sla.deliver_due(up, at(3 * H + 5)) == (0, 0)
    assert await sla.deliver_due(down, at(3 * H + 10)) == (0, 1)
    # Second failure: twice the delay.
    assert await sla.deliver_due(up, at(3 * H + 29)) == (0, 0)
    assert await sla.deliver_due(up, at(3 * H + 30)) == (1, 0)
    assert await sla.deliver_due(up, at(3 * H + 99)) == (0, 0)
    (page,) = sent[0]
    assert page["labels"]["action"] == "page_oncall"
    assert page["labels"]["lead_id"] == "l2"
    assert datetime.fromisoformat(page["startsAt"]) == at(3 * H)

    await sla.apply([touch("l2", at(4 * H))], at(4 * H))
    resolved = await pool.fetch(
        "SELECT kind, level FROM escalations WHERE lead_id = 'l2' AND status = 'resolved'"
    )
    assert len(resolved) == 4
    assert await sla.deliver_due(up, at(4 * H)) == (1, 0)
    (resolve,) = sent[1]
    assert resolve["labels"] == page["labels"]
    assert datetime.fromisoformat(resolve["endsAt"]) == at(4 * H)
    # The touch started a follow-up clock.
    assert await pool.fetchval(
        "SELECT due_at FROM sla_clocks WHERE lead_id = 'l2' AND kind = 'follow_up'"
    ) == at(4 * H + DAY)


async def test_follow_up_runs_to_the_reps_promise_or_to_the_longest_gap(
    db: tuple[SlaHandler, asyncpg.Pool],
) -> None:
    sla, pool = db
    await sla.apply([assigned("l3", "rep-a", T0)], T0)
    await sla.apply([touch("l3", at(60), promise=at(2 * H))], at(60))
    assert await sla.fire_due(at(2 * H - 1)) == 0
    assert await sla.fire_due(at(2 * H)) == 1
    assert await steps(pool, "l3") == [("firing", "follow_up", 1, "remind_owner", "fu")]
    # A touch after the missed promise resolves it and starts a fresh gap clock.
    await sla.apply([touch("l3", at(3 * H))], at(3 * H))
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM escalations WHERE lead_id = 'l3' AND status = 'resolved'"
        )
        == 1
    )
    assert await sla.fire_due(at(3 * H + DAY - 1)) == 0
    assert await sla.fire_due(at(3 * H + DAY + H)) == 2
    # An older touch arriving late stops nothing and starts nothing.
    await sla.apply([touch("l3", at(H))], at(3 * H + DAY + H))
    open_clocks = await pool.fetchval(
        "SELECT count(*) FROM sla_clocks WHERE lead_id = 'l3' AND stopped_at IS NULL"
    )
    assert open_clocks == 1


async def test_stage_stall_counts_time_in_a_stage_and_closing_stops_everything(
    db: tuple[SlaHandler, asyncpg.Pool],
) -> None:
    sla, pool = db
    await sla.apply([assigned("l4", "rep-a", T0), assigned("l5", "rep-a", T0)], T0)
    await sla.apply([stage("l4", "proposal", at(60)), stage("l5", "proposal", at(60))], at(60))
    await sla.apply([stage("l4", "negotiation", at(DAY))], at(DAY))
    # l5: the stall and both follow-up steps; l4: both follow-up steps, no stall.
    assert await sla.fire_due(at(60 + 3 * DAY)) == 5
    kinds = sorted((r[1], r[2]) for r in await steps(pool, "l5"))
    assert kinds == [("follow_up", 1), ("follow_up", 2), ("stage_stall", 1)]
    assert not [s for s in await steps(pool, "l4") if s[1] == "stage_stall"]
    await sla.apply([stage("l5", "lost", at(4 * DAY))], at(4 * DAY))
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM sla_clocks WHERE lead_id = 'l5' AND stopped_at IS NULL"
        )
        == 0
    )
    statuses = [s[0] for s in await steps(pool, "l5")]
    assert statuses.count("firing") == statuses.count("resolved") == 3


async def test_reassignment_starts_a_new_cycle_and_pooling_stops_the_clocks(
    db: tuple[SlaHandler, asyncpg.Pool],
) -> None:
    sla, pool = db
    await sla.apply([assigned("l7", "rep-a", T0)], T0)
    assert await sla.fire_due(at(H)) == 1
    await sla.apply([assigned("l7", "rep-b", at(H + 60), kind="reassigned")], at(H + 60))
    rows = await pool.fetch(
        "SELECT owner_id, stopped_at IS NULL AS open FROM sla_clocks WHERE lead_id = 'l7' "
        "ORDER BY started_at"
    )
    assert [tuple(r) for r in rows] == [("rep-a", False), ("rep-b", True)]
    assert [s[0] for s in await steps(pool, "l7")] == ["firing", "resolved"]
    await sla.apply([assigned("l7", None, at(H + 120), kind="pooled")], at(H + 120))
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM sla_clocks WHERE lead_id = 'l7' AND stopped_at IS NULL"
        )
        == 0
    )
    assert await sla.fire_due(at(30 * DAY)) == 0


async def test_the_clock_jumping_forward_and_back_neither_loses_nor_repeats_a_step(
    db: tuple[SlaHandler, asyncpg.Pool],
) -> None:
    sla, pool = db
    await sla.apply([assigned("l8", "rep-a", T0)], T0)
    assert await sla.fire_due(at(H + 1)) == 1
    # Back by a day (an NTP correction, a VM restored from a snapshot): nothing fires.
    assert await sla.fire_due(at(-DAY)) == 0
    # Forward by ten days: every remaining slot fires once, in order.
    assert await sla.fire_due(at(10 * DAY)) == 3
    assert await sla.fire_due(at(H)) == 0
    assert await sla.fire_due(at(11 * DAY)) == 0
    rows = await pool.fetch(
        "SELECT kind, level FROM escalations WHERE lead_id = 'l8' ORDER BY due_at"
    )
    assert [tuple(r) for r in rows] == [
        ("first_response", 1),
        ("reclaim_warning", 2),
        ("first_response", 2),
        ("first_response", 3),
    ]


async def test_steps_are_stored_before_the_broker_sees_them_and_wait_for_it_in_the_outbox(
    db: tuple[SlaHandler, asyncpg.Pool],
) -> None:
    """A step is on sla.escalations only if PostgreSQL holds it: while the broker is
    away the fired steps are committed (the clock advanced, no transaction held open),
    and the outbox sends them once it answers."""
    sla, pool = db
    await sla.apply([rep("rep-a", "mgr-1"), assigned("l7", "rep-a", T0)], T0)
    seen_stored: list[int] = []

    async def down(events: list[EscalationRaised]) -> None:
        seen_stored.append(
            await pool.fetchval(
                "SELECT count(*) FROM escalations WHERE escalation_id = ANY($1::text[])",
                [e.escalation_id for e in events],
            )
        )
        raise ConnectionError("broker down")

    with pytest.raises(ConnectionError):
        await replace(sla, publisher=Broker(down)).fire_due(at(H))
    rows = await pool.fetch(
        "SELECT escalation_id, published_at FROM escalations WHERE lead_id = 'l7' "
        "ORDER BY escalation_id"
    )
    assert len(rows) >= 1
    assert seen_stored == [len(rows)], "committed before the publish was tried"
    assert [r["published_at"] for r in rows] == [None] * len(rows), "stored, unpublished"
    assert await replace(sla, publisher=Broker(down)).fire_due(at(H)) == 0, "clock advanced"
    drained: list[str] = []

    async def up(events: list[EscalationRaised]) -> None:
        drained.extend(e.escalation_id for e in events)

    assert await replace(sla, publisher=Broker(up)).drain() == len(rows)
    assert sorted(drained) == [r["escalation_id"] for r in rows]
    assert (
        await pool.fetchval(
            "SELECT count(*) FROM escalations WHERE lead_id = 'l7' AND published_at IS NULL"
        )
        == 0
    )


async def test_a_drain_beside_the_ticker_never_publishes_a_step_the_ticker_is_publishing(
    db: tuple[SlaHandler, asyncpg.Pool],
) -> None:
    """An input batch drains the outbox while the ticker publishes the steps it just
    fired: the ticker holds them while the broker answers, so the drain skips them and
    each step reaches the topic once."""
    sla, pool = db
    await sla.apply([rep("rep-a", "mgr-1"), assigned("l8", "rep-a", T0)], T0)
    in_flight = asyncio.Event()
    answer = asyncio.Event()
    ticker_sent: list[str] = []

    async def slow(events: list[EscalationRaised]) -> None:
        in_flight.set()
        await answer.wait()
        ticker_sent.extend(e.escalation_id for e in events)

    firing = asyncio.create_task(replace(sla, publisher=Broker(slow)).fire_due(at(H)))
    await asyncio.wait_for(in_flight.wait(), 10)
    drained: list[str] = []

    async def record(events: list[EscalationRaised]) -> None:
        drained.extend(e.escalation_id for e in events)

    assert await replace(sla, publisher=Broker(record)).drain() == 0
    answer.set()
    fired = await asyncio.wait_for(firing, 10)
    assert fired >= 1
    assert drained == []
    rows = await pool.fetch(
        "SELECT escalation_id FROM escalations WHERE lead_id = 'l8' AND published_at IS NOT NULL"
    )
    assert sorted(ticker_sent) == sorted(r["escalation_id"] for r in rows)
    assert len(rows) == fired
