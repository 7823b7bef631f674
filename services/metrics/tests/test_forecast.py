"""The forecast: learned probabilities, the month's forecast, accuracy, the snapshot
schedule and ages, and a reduced backtest that the learned rates must win."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from leadloop.events import Stage, StageChanged
from leadloop_metrics.domain.facts import Accepted, Assigned, StageMoved, fact_of
from leadloop_metrics.domain.forecast import (
    FIXED_TABLE,
    FORECAST_STAGES,
    MAX_AGE,
    ClosedLead,
    Forecast,
    OpenLead,
    Probabilities,
    WonLead,
    accuracy,
    accuracy_by_age,
    accuracy_gauges,
    closed_lead,
    forecast,
    forecast_gauges,
    learned_probabilities,
    month_end,
    next_month,
    open_lead,
    previous_month,
    snapshot_age,
    snapshot_due,
    take_snapshot,
    won_in_month,
    won_lead,
)
from leadloop_metrics.domain.leads import LeadState, apply
from leadloop_metrics.forecast_backtest import TEAMS, backtest, true_probabilities

DEC = date(2026, 12, 1)
MON = datetime(2026, 12, 7, tzinfo=UTC)  # a Monday


def closed(team: str, upto: str, won: bool) -> ClosedLead:
    reached = frozenset(FORECAST_STAGES[: FORECAST_STAGES.index(upto) + 1])
    return ClosedLead(team, reached, won)


# ------------------------------------------------------------------ probabilities


def test_no_history_is_the_fixed_table() -> None:
    p = learned_probabilities([])
    assert p.table("north") == dict(FIXED_TABLE)


def test_smoothing_is_the_beta_posterior_mean() -> None:
    history = [closed("north", "negotiation", True)] * 3 + [closed("north", "negotiation", False)]
    history += [closed("north", "qualified", False)] * 4
    p = learned_probabilities(history, strength=10)
    # negotiation: 3 won of 4 closed; qualified: 3 won of 8 (all eight reached it).
    assert p.p("north", "negotiation") == pytest.approx((3 + 10 * 0.6) / (4 + 10))
    assert p.p("north", "qualified") == pytest.approx((3 + 10 * 0.25) / (8 + 10))
    assert p.p("north", "proposal") == pytest.approx((3 + 10 * 0.4) / (4 + 10))
    # Another team is not learned from north's leads.
    assert p.p("south", "negotiation") == FIXED_TABLE["negotiation"]


def test_many_leads_outweigh_the_prior() -> None:
    history = [closed("east", "proposal", True)] * 900 + [closed("east", "proposal", False)] * 100
    assert learned_probabilities(history).p("east", "proposal") == pytest.approx(0.9, abs=0.01)


def test_strength_must_be_positive() -> None:
    with pytest.raises(ValueError, match="strength"):
        learned_probabilities([], strength=0)


histories = st.lists(
    st.builds(
        closed,
        st.sampled_from(["north", "south"]),
        st.sampled_from(FORECAST_STAGES),
        st.booleans(),
    ),
    max_size=40,
)


@given(histories, st.floats(0.1, 1000))
@settings(max_examples=200)
def test_probabilities_are_probabilities(history: list[ClosedLead], strength: float) -> None:
    p = learned_probabilities(history, strength=strength)
    for team in ("north", "south"):
        for stage in FORECAST_STAGES:
            assert 0.0 < p.p(team, stage) < 1.0


# ------------------------------------------------------------------ forecast

open_leads = st.lists(
    st.builds(
        OpenLead,
        st.sampled_from(["north", "south"]),
        st.sampled_from(FORECAST_STAGES),
        st.integers(0, 10**9),
        st.none() | st.dates(date(2026, 10, 1), date(2027, 2, 28)),
    ),
    max_size=30,
)
wins = st.lists(
    st.builds(
        WonLead,
        st.sampled_from(["north", "south"]),
        st.datetimes(datetime(2026, 11, 1), datetime(2027, 1, 31), timezones=st.just(UTC)),
        st.integers(0, 10**9),
    ),
    max_size=10,
)


def test_forecast_of_a_month() -> None:
    leads = [
        OpenLead("north", "negotiation", 100_00, date(2026, 12, 15)),
        OpenLead("north", "qualified", 200_00, date(2026, 12, 31)),
        OpenLead("north", "proposal", 400_00, date(2027, 1, 3)),  # next month
        OpenLead("north", "negotiation", 800_00, None),  # not dated: in no month
        OpenLead("south", "contacted", 50_00, date(2026, 12, 1)),
    ]
    won = [
        WonLead("north", datetime(2026, 12, 2, tzinfo=UTC), 30_00),
        WonLead("north", datetime(2026, 11, 30, tzinfo=UTC), 999_00),  # last month
    ]
    got = forecast(leads, Probabilities(), DEC, won)
    assert got["north"] == Forecast(
        weighted_cents=30_00 + 60_00 + 50_00, commit_cents=130_00, best_case_cents=330_00
    )
    assert got["south"] == Forecast(6_00, 0, 50_00)


@given(open_leads, wins, histories)
@settings(max_examples=200)
def test_forecast_bounds_and_order(
    leads: list[OpenLead], won: list[WonLead], history: list[ClosedLead]
) -> None:
    p = learned_probabilities(history)
    got = forecast(leads, p, DEC, won)
    assert forecast(list(reversed(leads)), p, DEC, list(reversed(won))) == got
    won_dec = won_in_month(won, DEC)
    for team, f in got.items():
        base = won_dec.get(team, 0)
        assert base <= f.commit_cents <= f.best_case_cents
        assert base <= f.weighted_cents <= f.best_case_cents
    dated = sum(lead.amount_cents for lead in leads if lead.expected_close is not None)
    months = (date(2026, 10, 1), date(2026, 11, 1), DEC, date(2027, 1, 1), date(2027, 2, 1))
    best = sum(f.best_case_cents for m in months for f in forecast(leads, p, m).values())
    assert best == dated  # every dated lead is in exactly one month, undated in none


def test_accuracy() -> None:
    assert accuracy(90, 100) == pytest.approx(0.9)
    assert accuracy(110, 100) == pytest.approx(0.9)
    assert accuracy(250, 100) == pytest.approx(-0.5)
    assert accuracy(0, 100) == 0
    assert accuracy(10, 0) is None


# ------------------------------------------------------------------ snapshots


def test_snapshot_instants() -> None:
    # Sunday 29 Nov → Tuesday 8 Dec: Monday 30 Nov, Tuesday 1 Dec, Monday 7 Dec.
    got = snapshot_due(datetime(2026, 12, 8, 12, tzinfo=UTC), datetime(2026, 11, 29, tzinfo=UTC))
    assert got == [
        datetime(2026, 11, 30, tzinfo=UTC),
        datetime(2026, 12, 1, tzinfo=UTC),
        datetime(2026, 12, 7, tzinfo=UTC),
    ]
    assert snapshot_due(MON, MON) == []
    assert snapshot_due(MON, None) == [MON]
    assert snapshot_due(MON + timedelta(days=3), None) == [MON]


@given(
    st.datetimes(datetime(2025, 1, 1), datetime(2028, 1, 1), timezones=st.just(UTC)),
    st.none() | st.timedeltas(timedelta(0), timedelta(days=90)),
)
@settings(max_examples=300)
def test_snapshot_due_properties(now: datetime, back: timedelta | None) -> None:
    last = None if back is None else now - back
    due = snapshot_due(now, last)
    # Brute force: every midnight of a 1st or a Monday in (last, now], or the latest one.
    midnights = (
        datetime.combine(now.date() - timedelta(days=n), datetime.min.time(), UTC)
        for n in range(100)
    )
    instants = sorted(t for t in midnights if t <= now and (t.day == 1 or t.weekday() == 0))
    if last is None:
        assert due == instants[-1:]
        assert now - due[0] < timedelta(days=7)
    else:
        assert due == [t for t in instants if t > last]


@given(st.datetimes(datetime(2025, 1, 1), datetime(2028, 1, 1), timezones=st.just(UTC)))
def test_ages_are_bounded(taken_at: datetime) -> None:
    snaps = take_snapshot(taken_at, [OpenLead("north", "new", 1, None)], Probabilities())
    assert {s.month for s in snaps} == {
        taken_at.date().replace(day=1),
        next_month(taken_at.date().replace(day=1)),
    }
    for s in snaps:
        assert 0 <= s.age <= MAX_AGE
        assert s.age == (month_end(s.month) - taken_at) // timedelta(days=7)


def test_age_examples() -> None:
    assert snapshot_age(datetime(2026, 12, 1, tzinfo=UTC), DEC) == 4
    assert snapshot_age(datetime(2026, 12, 28, tzinfo=UTC), DEC) == 0
    assert snapshot_age(datetime(2026, 12, 1, tzinfo=UTC), date(2027, 1, 1)) == 8


def test_accuracy_by_age_takes_the_earliest_snapshot_of_an_age() -> None:
    lead = OpenLead("north", "negotiation", 100_00, date(2026, 12, 20))
    late = OpenLead("north", "negotiation", 300_00, date(2026, 12, 20))
    first = take_snapshot(datetime(2026, 12, 1, tzinfo=UTC), [lead], Probabilities())
    # Thursday 3 Dec is not a snapshot instant, but both are 4 weeks before the end.
    second = take_snapshot(datetime(2026, 12, 3, tzinfo=UTC), [late], Probabilities())
    got = accuracy_by_age(first + second, {"north": 60_00}, DEC)
    assert got == {"north": {4: 1.0}}
    assert accuracy_by_age(first, {}, DEC) == {"north": {4: None}}


def test_wins_after_the_snapshot_are_not_known() -> None:
    later = WonLead("north", datetime(2026, 12, 9, tzinfo=UTC), 500_00)
    snaps = take_snapshot(MON, [], Probabilities(), [later], teams=["north"])
    assert len(snaps) == 2
    assert {s.forecast for s in snaps} == {Forecast()}


# ------------------------------------------------------------------ backtest


def test_learned_rates_beat_the_fixed_table_when_the_teams_differ_from_it() -> None:
    teams = {team: TEAMS[team] for team in ("north", "south")}
    result = backtest(seed=7, year=2026, months=6, teams=teams, leads_per_day=3.0)
    learned, fixed = result.overall("learned"), result.overall("fixed")
    assert learned >= fixed, (learned, fixed)
    # The learned rates found the simulated ones (south's true negotiation rate 0.35).
    truth = true_probabilities(teams)
    for team in teams:
        for stage in ("qualified", "proposal", "negotiation"):
            assert result.learned_end[team][stage] == pytest.approx(truth[team][stage], abs=0.08)


def test_with_the_tables_own_rates_the_two_models_agree() -> None:
    # The control: when the teams convert as the fixed table says, learning gains
    # nothing, so the test above measures the difference in rates, not the setup.
    rates = {
        "new": 0.05 / 0.08,
        "assigned": 0.08 / 0.12,
        "contacted": 0.12 / 0.25,
        "qualified": 0.25 / 0.40,
        "proposal": 0.40 / 0.60,
        "negotiation": 0.60,
    }
    assert true_probabilities({"t": rates})["t"] == pytest.approx(dict(FIXED_TABLE))
    result = backtest(seed=7, year=2026, months=6, teams={"t": rates}, leads_per_day=3.0)
    assert result.overall("learned") == pytest.approx(result.overall("fixed"), abs=0.05)


# ------------------------------------------------------------------ served values


def test_previous_and_next_month() -> None:
    assert previous_month(date(2027, 1, 1)) == DEC
    assert previous_month(DEC) == date(2026, 11, 1)
    assert next_month(DEC) == date(2027, 1, 1)


@given(st.dates(date(2000, 1, 1), date(2100, 1, 1)))
def test_previous_is_the_inverse_of_next(d: date) -> None:
    month = d.replace(day=1)
    assert previous_month(next_month(month)) == month


def test_forecast_gauges_are_the_latest_snapshots_of_this_and_next_month() -> None:
    dec = OpenLead("north", "negotiation", 100_00, date(2026, 12, 20))
    jan = OpenLead("north", "proposal", 200_00, date(2027, 1, 10))
    nov = datetime(2026, 11, 30, tzinfo=UTC)  # Monday: December is "next"
    snaps = take_snapshot(nov, [dec], Probabilities())
    snaps += take_snapshot(MON, [dec, jan], Probabilities())
    snaps += take_snapshot(MON + timedelta(days=7), [], Probabilities(), teams=["north"])
    on_first = forecast_gauges(snaps, datetime(2026, 12, 1, tzinfo=UTC))
    assert on_first == {
        ("north", "current", "weighted"): 60_00,
        ("north", "current", "commit"): 100_00,
        ("north", "current", "best_case"): 100_00,
    }
    got = forecast_gauges(snaps, MON + timedelta(hours=1))
    assert got[("north", "current", "weighted")] == 60_00
    assert got[("north", "next", "weighted")] == 80_00
    assert got[("north", "next", "commit")] == 0
    assert got[("north", "next", "best_case")] == 200_00
    assert len(got) == 6


def test_accuracy_gauges_are_the_last_closed_months() -> None:
    lead = OpenLead("north", "negotiation", 100_00, date(2026, 12, 20))
    snaps = take_snapshot(MON, [lead], Probabilities(), teams=["south"])
    jan = datetime(2027, 1, 4, tzinfo=UTC)
    assert accuracy_gauges(snaps, {"north": 50_00}, jan) == {("north", 3): 0.8}
    assert accuracy_gauges(snaps, {"north": 50_00}, MON) == {}  # December is not closed


# ------------------------------------------------------------------ from the lead's state


def test_the_stage_fact_keeps_the_expected_close_date() -> None:
    event = StageChanged(
        event_id="e1",
        lead_id="l1",
        stage=Stage.PROPOSAL,
        occurred_at=MON,
        rep_id="r1",
        amount=120.5,
        expected_close_date=date(2026, 12, 18),
    )
    fact = fact_of(event)
    assert isinstance(fact, StageMoved)
    assert fact.expected_close == date(2026, 12, 18)


def lead(*stages: tuple[str, int, date | None]) -> LeadState:
    s = LeadState("l1")
    s = apply(s, Accepted("a", "l1", "web_form", MON, "hot"))
    s = apply(s, Assigned("g", "l1", "north", True, "round_robin", "initial", MON, "hot", "r1"))
    for n, (stage, day, close) in enumerate(stages):
        when = MON + timedelta(days=day)
        s = apply(s, StageMoved(f"s{n}", "l1", stage, when, 250.0, None, close))
    return s


def test_an_open_lead_is_forecast_from_its_state() -> None:
    s = lead(("qualified", 1, date(2026, 12, 20)), ("proposal", 2, None))
    assert open_lead(s) == OpenLead("north", "proposal", 250_00, date(2026, 12, 20))
    assert closed_lead(s) is None
    assert won_lead(s) is None
    assert open_lead(LeadState("l2")) is None  # no team yet


def test_a_won_lead_is_history_and_actual() -> None:
    s = lead(("qualified", 1, date(2026, 12, 20)), ("won", 3, None))
    assert open_lead(s) is None
    assert closed_lead(s) == ClosedLead(
        "north", frozenset({"new", "assigned", "qualified"}), won=True
    )
    assert won_lead(s) == WonLead("north", MON + timedelta(days=3), 250_00)


def test_a_lost_lead_is_history_only() -> None:
    s = apply(lead(("proposal", 1, None)), StageMoved("x", "l1", "lost", MON, None, "price"))
    assert closed_lead(s) == ClosedLead("north", frozenset({"new", "assigned", "proposal"}), False)
    assert won_lead(s) is None
