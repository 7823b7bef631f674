"""The sections from folded records: hand-checked numbers and hypothesis properties
(parts sum to their totals, a team's report is its share of the all-teams one)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from services.review.tests.facts import (
    accepted,
    assigned,
    escalated,
    rated,
    silenced,
    stage,
    touched,
)

from leadloop_review.domain.build import ForecastSnapshot, build_report
from leadloop_review.domain.period import parse_period
from leadloop_review.domain.record import fold_lead
from leadloop_review.domain.tally import Tally

NOV = parse_period("2026-11")
UNTIL = datetime(2026, 12, 7, tzinfo=UTC)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SOURCES = ("web_form", "wechat", "referral")
TEAMS = ("north", "south")
REPS = ("a", "b", "c")
REASONS = ("no_response", "no_budget", "timing")


@st.composite
def a_lead(draw: st.DrawFn, n: int) -> list[dict[str, Any]]:
    lead = f"l{n}"
    at = T0 + timedelta(days=draw(st.integers(-40, 27)), minutes=draw(st.integers(0, 600)))
    facts = [
        accepted(
            lead,
            at,
            draw(st.sampled_from(SOURCES)),
            product=draw(st.sampled_from(("crm", "erp", None))),
            customer_won_before=draw(st.booleans()),
        )
    ]
    if draw(st.booleans()):
        owner = draw(st.sampled_from((*REPS, None)))
        facts.append(assigned(lead, at + timedelta(minutes=1), draw(st.sampled_from(TEAMS)), owner))
        if draw(st.booleans()):
            facts.append(touched(lead, at + timedelta(minutes=draw(st.integers(2, 900)))))
        if draw(st.booleans()):
            facts.append(
                escalated(lead, at + timedelta(minutes=10), owner, draw(st.integers(1, 3)))
            )
        end = draw(st.sampled_from((None, "qualified", "won", "lost")))
        if end in ("qualified", "won", "lost"):
            facts.append(stage(lead, at + timedelta(hours=5), "qualified"))
        if end == "won":
            facts.append(
                stage(lead, at + timedelta(hours=9), "won", amount=draw(st.integers(0, 999)))
            )
        if end == "lost":
            facts.append(
                stage(lead, at + timedelta(hours=9), "lost", reason=draw(st.sampled_from(REASONS)))
            )
        if end is None and draw(st.booleans()):
            facts.append(silenced(lead, at + timedelta(days=1)))
        if draw(st.booleans()):
            facts.append(rated(lead, at + timedelta(days=2), draw(st.integers(1, 5)), owner))
    return facts


def tally_of(leads: list[list[dict[str, Any]]]) -> Tally:
    tally = Tally(NOV)
    for facts in leads:
        record = fold_lead(facts[0]["lead_id"], facts, UNTIL)
        assert record is not None
        tally.add(record)
        tally.add_win(record)
    return tally


leads_strategy = st.integers(0, 60).flatmap(lambda k: st.tuples(*(a_lead(i) for i in range(k))))


@settings(max_examples=60, deadline=None)
@given(leads_strategy)
def test_parts_sum_to_their_totals(leads: tuple[list[dict[str, Any]], ...]) -> None:
    tally = tally_of(list(leads))
    r = build_report(tally, UNTIL)
    f = r.funnel
    assert sum(x.leads for x in f.by_source) == f.total.leads == r.leads
    assert sum(x.leads for x in f.by_campaign) == f.total.leads
    assert sum(x.leads for x in f.by_team_source) == f.total.leads
    assert f.total.won + f.total.lost + f.total.open == f.total.leads
    assert sum(x.lost for x in r.losses.rows) == r.losses.lost == f.total.lost
    assert sum(c.lost for c in r.losses.by_stage_reason) == r.losses.lost
    assert sum(s.lost_at for s in r.bottlenecks.stages) == r.losses.lost
    for a in r.accountability.rows:
        assert a.owed == a.within_sla + a.late + a.missed
        assert sum(a.breaches_by_level.values()) == a.breaches
    assert [a.rank for a in r.accountability.rows] == list(range(1, len(r.accountability.rows) + 1))
    assert sum(x.silent for x in r.silent.rows) == r.silent.silent <= r.silent.open_owned
    assert sum(x.won for x in r.repurchase.rows) == f.total.won
    for dim in ("product", "industry", "region"):
        rows = [t for t in r.trends.rows if t.dimension == dim]
        assert sum(t.leads for t in rows) == r.leads
        assert all(sum(t.by_bucket.values()) == t.leads for t in rows)
    # A team's report is exactly its part of the all-teams report.
    for team in (*TEAMS, "unassigned"):
        part = build_report(tally, UNTIL, team)
        assert part.losses.rows == tuple(x for x in r.losses.rows if x.team == team)
        assert part.funnel.by_team_source == tuple(x for x in f.by_team_source if x.team == team)
    assert sum(build_report(tally, UNTIL, t).leads for t in (*TEAMS, "unassigned")) == r.leads


def test_hand_checked_report() -> None:
    leads = []
    for i in range(4):  # north, wechat: 3 lost at contacted for no_response, 1 won
        lead = f"w{i}"
        facts = [accepted(lead, T0, "wechat", product="crm"), assigned(lead, T0, "north", "a")]
        facts.append(touched(lead, T0 + timedelta(hours=2 + i)))
        if i < 3:
            facts.append(stage(lead, T0 + timedelta(days=1), "lost", reason="no_response"))
        else:
            facts.append(stage(lead, T0 + timedelta(days=1), "won", amount=250.0))
        leads.append(facts)
    # Repeat customer won in November, accepted in October: counts for the forecast only.
    leads.append(
        [
            accepted("old", T0 - timedelta(days=20), "referral", customer_won_before=True),
            assigned("old", T0 - timedelta(days=20), "north", "b"),
            stage("old", T0 + timedelta(days=3), "won", amount=100.0),
        ]
    )
    tally = tally_of(leads)
    snap = ForecastSnapshot("north", date(2026, 11, 1), T0, 4, 40000, 30000, 50000)
    r = build_report(tally, UNTIL, None, [snap])
    assert r.leads == 4
    assert tally.counted == {"current": 4, "previous": 1, "wins": 2}
    (wechat,) = r.funnel.by_source
    assert (wechat.won, wechat.lost, wechat.won_cents) == (1, 3, 25000)
    assert wechat.first_touch_p50_ms == 3.5 * 3600_000
    (cell,) = r.losses.by_stage_reason
    assert (cell.stage, cell.reason, cell.lost, cell.share) == ("contacted", "no_response", 3, 1.0)
    (row,) = r.forecast.rows
    assert (row.actual_cents, row.actual_won, row.weighted_cents) == (35000, 2, 40000)
    assert row.accuracy == 1 - 5000 / 35000
    (a,) = r.accountability.rows
    assert (a.rep, a.owed, a.within_sla, a.effective_rate, a.won, a.lost) == ("a", 4, 4, 1.0, 1, 3)
    (rp,) = r.repurchase.rows
    assert (rp.won, rp.repeat_won) == (1, 0)
    crm = next(t for t in r.trends.rows if t.dimension == "product" and t.value == "crm")
    assert (crm.leads, crm.previous_leads, crm.change) == (4, 0, 4)


def test_forecast_works_without_snapshots() -> None:
    r = build_report(Tally(NOV), UNTIL)
    assert r.forecast.rows == ()
    assert r.forecast.months == (date(2026, 11, 1),)
