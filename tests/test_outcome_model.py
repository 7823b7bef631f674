"""The outcome experiment's pure parts: the rep model and the figures (bench/outcome)."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

from bench.outcome import model
from bench.outcome.figures import interval, run_figures
from hypothesis import given
from hypothesis import strategies as st

T0 = datetime(2026, 1, 5, 9, tzinfo=UTC)


def test_a_rep_is_the_same_rep_in_every_run_of_the_seed() -> None:
    assert model.rep_profile(3, "rep-a") == model.rep_profile(3, "rep-a")
    tiers = {model.rep_profile(3, f"rep-{i}").tier for i in range(60)}
    assert tiers == {"fast", "steady", "slow"}


@given(st.floats(min_value=0, max_value=1e7), st.floats(min_value=0, max_value=1e7))
def test_odds_never_rise_with_the_wait(a: float, b: float) -> None:
    early, late = min(a, b), max(a, b)
    assert 0 < model.contact_odds(late) <= model.contact_odds(early) <= 1
    assert 0 < model.qualify_odds(late) <= model.qualify_odds(early) <= 1


def test_a_backlog_slows_the_rep_and_only_prompts_prompt() -> None:
    rep = model.RepProfile("r", "steady", 3600.0, drop_share=0.0, reminder_uptake=1.0)
    idle = model.first_touch_delay(1, "a-1", rep, backlog=0)
    busy = model.first_touch_delay(1, "a-1", rep, backlog=model.CAPACITY)
    assert idle is not None
    assert busy == 2 * idle
    assert model.prompted_delay(1, "e-1", rep, "remind_owner") is not None
    assert model.prompted_delay(1, "e-1", rep, "reassign") is None


def test_figures_of_a_run() -> None:
    def at(minutes: float) -> str:
        return (T0 + timedelta(minutes=minutes)).isoformat()

    assigned = [{"lead_id": x, "assigned_at": at(0)} for x in ("won", "lost", "silent", "open")]
    activities = [
        {"lead_id": "won", "occurred_at": at(1)},
        {"lead_id": "lost", "occurred_at": at(3)},
        {"lead_id": "open", "occurred_at": at(59)},
    ]
    changes = [
        {"lead_id": "won", "stage": "won", "occurred_at": at(10)},
        {"lead_id": "lost", "stage": "lost", "occurred_at": at(10)},
    ]
    escalations = [{"action": "remind_owner", "status": "firing"}]
    # Scale 1: an hour observed; silent after 30 quiet minutes.
    f = run_figures(
        assigned, activities, changes, escalations,
        horizon=T0 + timedelta(hours=1), scale=1, silent_after_s=1800,
    )  # fmt: skip
    assert (f["won"], f["lost"], f["silent"], f["open"]) == (1, 1, 1, 1)
    assert f["never_touched"] == 0.25
    assert f["first_touch_p50_min"] == 3
    assert f["loss_rate"] == 2 / 3
    assert f["conversion"] == 0.25
    assert f["escalations"] == {"remind_owner": 1}


def test_interval() -> None:
    s = interval([1.0, 2.0, 3.0])
    assert s["mean"] == 2.0
    assert math.isclose(s["high"] - 2.0, 4.303 / math.sqrt(3))
    assert math.isnan(interval([1.0])["low"])
