"""The metrics store on the real PostgreSQL: facts applied once, per-lead state kept,
and reconcile finding nothing to report until something was tampered with.

Replays every batch twice (redelivery), in two different interleavings of the topics,
and checks the stored series against the pure fold of the unique facts.
"""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from leadloop.db import create_pool
from leadloop_metrics.adapters.postgres import MetricStore
from leadloop_metrics.domain.facts import (
    Accepted,
    Assigned,
    Escalated,
    Fact,
    Outcome,
    StageMoved,
    Touched,
)
from leadloop_metrics.domain.fold import step
from leadloop_metrics.domain.labels import LabelPolicy
from leadloop_metrics.handlers import apply_facts
from leadloop_metrics.reconcile import reconcile

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
POLICY = LabelPolicy(
    sources=frozenset({"web_form", "wechat"}), teams=frozenset({"team-a", "team-b"})
)


def lead_story(n: int, rng: random.Random) -> list[Fact]:
    lead = f"lead-{n}"
    t = T0 + timedelta(minutes=n)
    source = rng.choice(["web_form", "wechat", "partner"])
    team = rng.choice(["team-a", "team-b", "team-z"])
    facts: list[Fact] = [
        Outcome(f"o-{n}", source, "accepted", None),
        Accepted(f"a-{n}", lead, source, t, "hot"),
        Assigned(f"s-{n}", lead, team, n % 7 != 0, "round_robin", "initial", t, "hot"),
    ]
    if n % 3:
        facts.append(Touched(f"t-{n}", lead, True, t + timedelta(seconds=n * 37)))
    end = rng.choice(["qualified", "won", "lost", None])
    if end is not None:
        facts.append(StageMoved(f"q-{n}", lead, "qualified", t + timedelta(hours=1), 99.99, None))
    if end in ("won", "lost"):
        reason = "timing" if end == "lost" else None
        facts.append(StageMoved(f"e-{n}", lead, end, t + timedelta(hours=2), 150.01, reason))
    if n % 5 == 0:
        facts.append(Escalated(f"x-{n}", lead, f"esc-{n}", team, "p", "first_response", 1, True))
    return facts


async def test_redelivered_and_reordered_facts_count_once_and_reconcile(
    database_url: str,
) -> None:
    rng = random.Random(6)
    stories = [lead_story(n, rng) for n in range(300)]
    unique = [f for story in stories for f in story]
    # Out of order: every stage change before the acceptance and assignment it needs,
    # everything else shuffled.
    shuffled = list(unique)
    rng.shuffle(shuffled)
    shuffled.sort(key=lambda f: (type(f).__name__ != "StageMoved", 0))
    pool = await create_pool(database_url)
    try:
        store = MetricStore(pool)
        for i in range(0, len(shuffled), 97):
            batch = shuffled[i : i + 97]
            await apply_facts(store, batch, POLICY, T0)
            await apply_facts(store, batch + batch[:5], POLICY, T0)  # the whole batch again
        report = await reconcile(store, POLICY)
        assert report.ok, report.lines()
        assert report.facts == len(unique)
        assert report.leads == 300
        # The stored values equal the fold of the unique facts applied in that order.
        expected = {k: v for k, v in step({}, shuffled, POLICY).delta.items() if v}
        stored = {k: v for k, v in (await store.load()).items() if v}
        assert stored == {(m, tuple(sorted(lbl))): v for (m, lbl), v in expected.items()}
        assert not any(
            dict(labels).get(name) in ("team-z", "partner")
            for _, labels in stored
            for name in ("team", "source")
        )
        # Tampering with a counter or a lead's state is found.
        conn = await asyncpg.connect(database_url)
        try:
            await conn.execute(
                "UPDATE metric_values SET value = value + 1 "
                "WHERE metric = 'leadloop_funnel_entered_total' "
                'AND labels = \'{"stage": "new", "source": "web_form"}\'::jsonb'
            )
            await conn.execute(
                "UPDATE metric_leads SET state = jsonb_set(state, '{team}', '\"team-b\"') "
                "WHERE lead_id = 'lead-1'"
            )
        finally:
            await conn.close()
        report = await reconcile(store, POLICY)
        assert not report.ok
        text = "\n".join(report.differences)
        assert 'leadloop_funnel_entered_total{stage="new",source="web_form"}' in text
        assert "lead state lead-1" in text
    finally:
        await pool.close()
