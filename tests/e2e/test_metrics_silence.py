"""The silence sweep on the real PostgreSQL: an owned, open lead nobody moved for N
working days of its team's calendar becomes `silent` in the leak ledger once, a move
ends the silence, and reconcile (which replays the stored facts) agrees throughout."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadloop.calendar import CalendarSet
from leadloop.clock import FixedClock
from leadloop.db import create_pool
from leadloop_metrics import handlers
from leadloop_metrics.adapters.postgres import MetricStore
from leadloop_metrics.adapters.prometheus import SeriesView
from leadloop_metrics.domain.facts import Accepted, Assigned, Fact, StageMoved, Touched
from leadloop_metrics.domain.labels import LabelPolicy
from leadloop_metrics.domain.silence import Silence
from leadloop_metrics.handlers import MetricsHandler, apply_facts
from leadloop_metrics.reconcile import reconcile

pytestmark = pytest.mark.integration

#: Monday 2 March 2026, 10:00 UTC.
T0 = datetime(2026, 3, 2, 10, 0, tzinfo=UTC)
POLICY = LabelPolicy(sources=frozenset({"web_form"}), teams=frozenset({"north", "south"}))
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday")
CALENDARS = CalendarSet.model_validate(
    {
        "default": "office",
        "teams": {"south": "seven_days"},
        "calendars": {
            "office": {"timezone": "UTC", "weekly": {d: ["09:00-17:00"] for d in WEEKDAYS}},
            "seven_days": {
                "timezone": "UTC",
                "weekly": {d: ["09:00-17:00"] for d in (*WEEKDAYS, "saturday", "sunday")},
            },
        },
    }
)


def lead(n: int, team: str, owned: bool = True) -> list[Fact]:
    name = f"lead-{n}"
    return [
        Accepted(f"a-{n}", name, "web_form", T0, "warm"),
        Assigned(f"s-{n}", name, team, owned, "round_robin", "initial", T0, "warm", "rep-1"),
    ]


async def ledger(store: MetricStore) -> dict[tuple[str, str], float]:
    return {
        (dict(labels)["state"], dict(labels)["team"]): v
        for (name, labels), v in (await store.load()).items()
        if name == "leadloop_leads_by_state" and v
    }


async def test_a_lead_nobody_moves_falls_silent_once_and_a_move_ends_it(
    database_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of two candidates: five leads take three pages.
    monkeypatch.setattr(handlers, "SWEEP_PAGE", 2)
    pool = await create_pool(database_url)
    try:
        store = MetricStore(pool)
        facts: list[Fact] = [
            *lead(1, "north"),
            *lead(2, "north"),
            *lead(3, "north"),
            *lead(4, "south"),
            *lead(5, "north", owned=False),  # pooled: never silent
            *lead(6, "north"),
        ]
        # Lead 2 was touched on Wednesday; lead 3 was won; lead 6 moved on Friday.
        facts += [
            Touched("t-2", "lead-2", True, T0 + timedelta(days=2)),
            StageMoved("w-3", "lead-3", "won", T0 + timedelta(hours=1), 10.0, None),
            StageMoved("q-6", "lead-6", "qualified", T0 + timedelta(days=4), None, None),
        ]
        await apply_facts(store, facts, POLICY, T0)

        def sweeper(now: datetime) -> MetricsHandler:
            return MetricsHandler(
                store=store,
                view=SeriesView({}),
                labels=POLICY,
                clock=FixedClock(now),
                silence=Silence(2, CALENDARS),
            )

        # Wednesday 08:00: two working days after Monday begin on Wednesday 09:00.
        assert await sweeper(T0 + timedelta(days=2, hours=-2)).sweep() == 0
        # Wednesday 09:00: leads 1 (office) and 4 (seven days).
        assert await sweeper(T0 + timedelta(days=2, hours=-1)).sweep() == 2
        assert await ledger(store) == {
            ("silent", "north"): 1,
            ("silent", "south"): 1,
            ("owned_within_sla", "north"): 2,  # leads 2 and 6 moved since
            ("won", "north"): 1,
            ("pooled", "north"): 1,
        }
        # Saturday: lead 2, touched Wednesday, went silent on Friday 09:00; lead 6,
        # moved on Friday, is due on Tuesday (the weekend is not working time).
        saturday = T0 + timedelta(days=5)
        assert await sweeper(saturday).sweep() == 1
        assert await sweeper(saturday).sweep() == 0, "a silent lead is not a candidate"
        # A touch on Saturday ends lead 1's silence, and it becomes a candidate again.
        await apply_facts(store, [Touched("t-1", "lead-1", True, saturday)], POLICY, saturday)
        states = await ledger(store)
        assert states == {
            ("silent", "north"): 1,  # lead 2
            ("silent", "south"): 1,  # lead 4
            ("owned_within_sla", "north"): 2,  # leads 1 and 6
            ("won", "north"): 1,
            ("pooled", "north"): 1,
        }
        assert sum(states.values()) == 6, "every accepted lead in exactly one state"
        # Lead 1 can fall silent again: Saturday + 2 office working days = Tuesday.
        assert await sweeper(saturday + timedelta(days=3)).sweep() == 2  # leads 1 and 6
        report = await reconcile(store, POLICY)
        assert report.ok, report.lines()
        assert report.leads == 6
    finally:
        await pool.close()
