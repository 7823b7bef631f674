"""The forecast job on the real PostgreSQL: snapshots at the fixed instants, the served
forecast of the current and the next month, and a closed month's accuracy per snapshot
age — checked against numbers worked out here from the scenario (P(won | stage) as
(won + 10 × table) / (closed + 10) over the team's closed leads that reached the
stage), not with the service's forecast code."""

from __future__ import annotations

import asyncio
import signal
import time
import urllib.request
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from tests.support.events import accepted
from tests.support.processes import ServiceGroup
from tests.support.stack import running, stack_env

from leadloop.clock import FixedClock
from leadloop.db import create_pool
from leadloop.events import (
    AssignmentKind,
    LeadAssigned,
    Priority,
    Stage,
    StageChanged,
    Strategy,
)
from leadloop.settings import KafkaSettings
from leadloop.topics import qualified
from leadloop_metrics.adapters.postgres import MetricStore
from leadloop_metrics.adapters.prometheus import SeriesView
from leadloop_metrics.domain.facts import Accepted, Assigned, Fact, StageMoved
from leadloop_metrics.domain.labels import LabelPolicy
from leadloop_metrics.handlers import MetricsHandler, apply_facts
from leadloop_metrics.reconcile import reconcile

pytestmark = pytest.mark.integration

POLICY = LabelPolicy(sources=frozenset({"web_form"}), teams=frozenset({"north", "south"}))
#: The published rule-of-thumb table the learned rates are smoothed toward.
TABLE = {"qualified": 0.25, "proposal": 0.40, "negotiation": 0.60}
OCT = datetime(2026, 10, 5, 9, tzinfo=UTC)


def at(day: int, month: int = 11) -> datetime:
    return datetime(2026, month, day, 9, tzinfo=UTC)


def lead(
    name: str, team: str, *moves: tuple[str, datetime, float | None, date | None]
) -> list[Fact]:
    out: list[Fact] = [
        Accepted(f"a-{name}", name, "web_form", OCT, "warm"),
        Assigned(f"g-{name}", name, team, True, "round_robin", "initial", OCT, "warm", "rep-1"),
    ]
    for n, (stage, when, amount, close) in enumerate(moves):
        reason = "price" if stage == "lost" else None
        out.append(StageMoved(f"s-{name}-{n}", name, stage, when, amount, reason, close))
    return out


def p(won: int, closed: int, stage: str) -> float:
    return (won + 10 * TABLE[stage]) / (closed + 10)


async def served(store: MetricStore) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    return {
        (name, tuple(sorted(labels))): value
        for (name, labels), value in (await store.load()).items()
        if name.startswith("leadloop_forecast_")
    }


def amount(team: str, month: str, kind: str) -> tuple[str, tuple[tuple[str, str], ...]]:
    return ("leadloop_forecast_amount", (("kind", kind), ("month", month), ("team", team)))


async def test_snapshots_forecast_and_accuracy_over_a_month(database_url: str) -> None:
    pool = await create_pool(database_url)
    try:
        store = MetricStore(pool)
        # History, closed in October: two wins through proposal, two losses at qualified.
        facts: list[Fact] = []
        for n in range(2):
            facts += lead(
                f"h-won-{n}",
                "north",
                ("qualified", OCT, 100.0, None),
                ("proposal", OCT, 100.0, None),
                ("won", OCT + timedelta(days=1), 100.0, None),
            )
            facts += lead(
                f"h-lost-{n}",
                "north",
                ("qualified", OCT, 100.0, None),
                ("lost", OCT + timedelta(days=1), None, None),
            )
        # Open on 2 November: A (proposal, 1,000, closes 20 Nov), B (negotiation, 500,
        # 25 Nov), C (qualified, 2,000, 10 Dec), D (no date); south's E (proposal, 300).
        facts += lead(
            "A",
            "north",
            ("qualified", at(1), 1000.0, None),
            ("proposal", at(1), None, date(2026, 11, 20)),
        )
        facts += lead(
            "B",
            "north",
            ("qualified", at(1), 500.0, date(2026, 11, 25)),
            ("proposal", at(1), None, None),
            ("negotiation", at(1), None, None),
        )
        facts += lead("C", "north", ("qualified", at(1), 2000.0, date(2026, 12, 10)))
        facts += lead("D", "north", ("proposal", at(1), 800.0, None))
        facts += lead("E", "south", ("proposal", at(1), 300.0, date(2026, 11, 15)))
        await apply_facts(store, facts, POLICY, at(1))

        def job(now: datetime) -> MetricsHandler:
            return MetricsHandler(
                store=store, view=SeriesView({}), labels=POLICY, clock=FixedClock(now)
            )

        # Monday 2 November 00:00 is due: the first snapshot (November and December).
        monday = datetime(2026, 11, 2, 0, 0, 30, tzinfo=UTC)
        assert await job(monday).forecast() == 4  # 2 teams × 2 months
        first = job(monday)
        assert await first.forecast() == 0, "nothing is due twice"
        assert first._forecast_set_at == monday, "the series were set after the start"
        nov_weighted = round((1000 * p(2, 2, "proposal") + 500 * TABLE["negotiation"]) * 100)
        assert nov_weighted == 80000
        dec_weighted = round(2000 * p(2, 4, "qualified") * 100)
        assert await served(store) == {
            amount("north", "current", "weighted"): nov_weighted,
            amount("north", "current", "commit"): 50000,
            amount("north", "current", "best_case"): 150000,
            amount("north", "next", "weighted"): dec_weighted,
            amount("north", "next", "commit"): 0,
            amount("north", "next", "best_case"): 200000,
            # south has no closed lead: the table's rate.
            amount("south", "current", "weighted"): round(300 * TABLE["proposal"] * 100),
            amount("south", "current", "commit"): 0,
            amount("south", "current", "best_case"): 30000,
            **{amount("south", "next", k): 0 for k in ("weighted", "commit", "best_case")},
        }

        # A is won on 5 November for 1,200; the 9 November snapshot knows it.
        await apply_facts(
            store, [StageMoved("w-A", "A", "won", at(5), 1200.0, None)], POLICY, at(5)
        )
        assert await job(datetime(2026, 11, 9, 1, tzinfo=UTC)).forecast() == 4
        nov9 = 120000 + round(500 * TABLE["negotiation"] * 100)  # A won, B in negotiation
        assert (await served(store))[amount("north", "current", "weighted")] == nov9
        # B is won on 20 November for 500: November's actual is 1,700.
        await apply_facts(
            store, [StageMoved("w-B", "B", "won", at(20), 500.0, None)], POLICY, at(20)
        )

        # 1 December, 00:10, after a worker was down since 10 November: of the instants
        # 16, 23, 30 November and 1 December only the last is taken.
        december = datetime(2026, 12, 1, 0, 10, tzinfo=UTC)
        assert await job(december).forecast() == 4
        async with pool.acquire() as conn:
            taken = [
                r[0]
                for r in await conn.fetch(
                    "SELECT DISTINCT taken_at FROM metric_forecasts ORDER BY 1"
                )
            ]
            rows = await conn.fetchval("SELECT count(*) FROM metric_forecasts")
        assert taken == [
            datetime(2026, 11, 2, tzinfo=UTC),
            datetime(2026, 11, 9, tzinfo=UTC),
            datetime(2026, 12, 1, tzinfo=UTC),
        ]
        assert rows == 12
        now = await served(store)
        actual = 170000
        # Ages: 2 Nov is 29 days before the month's end (4 whole weeks), 9 Nov 22 (3).
        assert now[("leadloop_forecast_accuracy_ratio", (("age", "4"), ("team", "north")))] == (
            pytest.approx(1 - abs(nov_weighted - actual) / actual)
        )
        assert now[("leadloop_forecast_accuracy_ratio", (("age", "3"), ("team", "north")))] == (
            pytest.approx(1 - abs(nov9 - actual) / actual)
        )
        assert not [k for k in now if k[0].endswith("ratio") and dict(k[1])["team"] == "south"], (
            "south won nothing in November: no accuracy"
        )
        # December: C alone, with qualified now closed 6 times (A and B won too), won 4.
        assert now[amount("north", "current", "weighted")] == round(
            2000 * p(4, 6, "qualified") * 100
        )
        assert now[amount("north", "current", "best_case")] == 200000
        assert now[amount("north", "next", "best_case")] == 0
        # The forecast series are the job's, not the facts': reconcile agrees.
        report = await reconcile(store, POLICY)
        assert report.ok, report.lines()
    finally:
        await pool.close()


# ------------------------------------------------------------ the worker, under kill -9


def latest_instant(now: datetime) -> datetime:
    """The latest 00:00 UTC of a 1st or a Monday up to ``now``."""
    day = now.date()
    while not (day.day == 1 or day.weekday() == 0):
        day -= timedelta(days=1)
    return datetime(day.year, day.month, day.day, tzinfo=UTC)


def forecast_samples(group: ServiceGroup) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(group.url("metrics", "/metrics"), timeout=10) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        if family.name.startswith("leadloop_forecast_")
        for s in family.samples
    }


async def wait_for(
    group: ServiceGroup, want: dict[tuple[str, tuple[tuple[str, str], ...]], float]
) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    deadline = time.monotonic() + 60
    while True:
        got = await asyncio.to_thread(forecast_samples, group)
        if all(got.get(k) == pytest.approx(v) for k, v in want.items()):
            return got
        assert group.alive("metrics"), group.log("metrics")
        assert time.monotonic() < deadline, (want, got)
        await asyncio.sleep(0.2)


@pytest.mark.e2e
async def test_the_worker_serves_the_forecast_and_keeps_it_through_kill_9(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    instant = latest_instant(datetime.now(UTC))
    month = instant.date().replace(day=1)
    following = (month + timedelta(days=32)).replace(day=1)
    before = instant - timedelta(days=3)
    won_at = instant - timedelta(hours=1)
    team, rep = "team-global", "rep-gl-01"  # of config/rules.yaml, the worker's roster
    events: list[tuple[str, str, BaseModel]] = []
    for n, lead_id in enumerate(("fc-1", "fc-2", "fc-3")):
        events.append(
            (
                "leads.accepted",
                lead_id,
                accepted(
                    lead_id,
                    before,
                    event_id=f"acc-{lead_id}",
                    source="web_form",
                    source_lead_id=f"s-{n}",
                    score=50,
                    priority=Priority.WARM,
                ),
            )
        )
        events.append(
            (
                "leads.assigned",
                lead_id,
                LeadAssigned(
                    event_id=f"asg-{lead_id}",
                    occurred_at=before,
                    assignment_id=f"asg-{lead_id}",
                    lead_id=lead_id,
                    owner_id=rep,
                    team_id=team,
                    rule_id="r",
                    rule_version="v",
                    strategy=Strategy.ROUND_ROBIN,
                    kind=AssignmentKind.INITIAL,
                    reason="test",
                    lead_occurred_at=before,
                    assigned_at=before,
                    priority=Priority.WARM,
                ),
            )
        )

    def stage(lead_id: str, n: int, name: Stage, at: datetime, **fields: object) -> None:
        change = StageChanged(
            event_id=f"stg-{lead_id}-{n}",
            lead_id=lead_id,
            stage=name,
            occurred_at=at,
            rep_id=rep,
            **fields,  # type: ignore[arg-type]
        )
        events.append(("crm.stage-changes", lead_id, change))

    # fc-1 qualified (1,000, closes this month); fc-2 in proposal (500, next month);
    # fc-3 qualified and won (300) an hour before the instant.
    stage("fc-1", 0, Stage.QUALIFIED, before, amount=1000.0, expected_close_date=month)
    stage("fc-2", 0, Stage.PROPOSAL, before, amount=500.0, expected_close_date=following)
    stage("fc-3", 0, Stage.QUALIFIED, before, amount=300.0)
    stage("fc-3", 1, Stage.WON, won_at, amount=300.0)

    # Worked out here: qualified was closed once and won once, proposal never closed,
    # smoothed toward the table with a weight of 10 leads.
    won_now = 30000 if won_at.date().replace(day=1) == month else 0
    current = round(won_now + 100000 * p(1, 1, "qualified")) / 100
    want = {
        (
            "leadloop_forecast_amount",
            (("kind", "weighted"), ("month", "current"), ("team", team)),
        ): current,
        (
            "leadloop_forecast_amount",
            (("kind", "best_case"), ("month", "current"), ("team", team)),
        ): won_now / 100 + 1000,
        (
            "leadloop_forecast_amount",
            (("kind", "commit"), ("month", "current"), ("team", team)),
        ): won_now / 100,
        (
            "leadloop_forecast_amount",
            (("kind", "weighted"), ("month", "next"), ("team", team)),
        ): round(50000 * TABLE["proposal"]) / 100,
        (
            "leadloop_forecast_amount",
            (("kind", "best_case"), ("month", "next"), ("team", team)),
        ): 500.0,
        ("leadloop_forecast_amount", (("kind", "commit"), ("month", "next"), ("team", team))): 0.0,
    }
    env = stack_env(database_url, kafka_settings, tmp_path, LEADLOOP_FORECAST_SECONDS="0.5")
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for topic, key, event in events:
            await producer.send_and_wait(
                qualified(topic, kafka_settings.topic_prefix),
                event.model_dump_json().encode(),
                key=key.encode(),
            )
    finally:
        await producer.stop()

    conn = await asyncpg.connect(database_url)
    try:
        with running(env, tmp_path, "metrics", clean_exit=False) as group:
            # The snapshot is taken once the events are applied: wait for both.
            deadline = time.monotonic() + 60
            while await conn.fetchval("SELECT count(*) FROM metric_applied_events") < len(events):
                assert time.monotonic() < deadline, group.log("metrics")
                await asyncio.sleep(0.1)
            # The worker may have taken the instant's snapshot before the last event was
            # applied (a snapshot is of the pipeline as it is, and is not retaken). Kill
            # it, drop what it stored, and the restarted worker takes it with every event.
            group.signal("metrics", signal.SIGKILL)
            group.procs["metrics"].wait(timeout=30)
            await conn.execute("DELETE FROM metric_forecasts")
            group.start("metrics")
            await asyncio.to_thread(group.wait_ready, "metrics", timeout=120)
            first = await wait_for(group, want)
            rows = await conn.fetch("SELECT team, month, taken_at FROM metric_forecasts")
            assert {r["taken_at"] for r in rows} == {instant}
            assert len(rows) == 2 * 3  # the roster's three teams, two months
            # kill -9 and restart: nothing is retaken, the same values are served.
            group.signal("metrics", signal.SIGKILL)
            group.procs["metrics"].wait(timeout=30)
            group.start("metrics")
            await asyncio.to_thread(group.wait_ready, "metrics", timeout=120)
            again = await wait_for(group, want)
            assert again == first
            assert await conn.fetchval("SELECT count(*) FROM metric_forecasts") == len(rows)
    finally:
        await conn.close()
