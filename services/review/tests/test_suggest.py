"""Each suggestion rule fires on the numbers it names and stays quiet below them."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

from services.review.tests.facts import accepted, assigned, stage, touched

from leadloop_review.domain.build import build_report
from leadloop_review.domain.model import (
    AccountabilityRow,
    Bottleneck,
    ForecastRow,
    Report,
    SilentRow,
    TrendRow,
)
from leadloop_review.domain.period import parse_period
from leadloop_review.domain.record import fold_lead
from leadloop_review.domain.suggest import duration, suggestions
from leadloop_review.domain.tally import Tally

NOV = parse_period("2026-11")
UNTIL = datetime(2026, 12, 7, tzinfo=UTC)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def report_of(leads: list[list[dict[str, Any]]]) -> Report:
    tally = Tally(NOV)
    for facts in leads:
        record = fold_lead(facts[0]["lead_id"], facts, UNTIL)
        assert record is not None
        tally.add(record)
    return build_report(tally, UNTIL)


def source_leads(source: str, n: int, lost: int, touch: timedelta) -> list[list[dict[str, Any]]]:
    out = []
    for i in range(n):
        lead = f"{source}-{i}"
        facts = [accepted(lead, T0, source), assigned(lead, T0, "team-cn", "rep-1")]
        facts.append(touched(lead, T0 + touch))
        if i < lost:
            facts.append(stage(lead, T0 + timedelta(days=1), "lost", reason="no_response"))
        out.append(facts)
    return out


def rules(report: Report) -> list[str]:
    return [s.rule for s in report.suggestions]


def test_loss_concentration_names_the_share_and_the_faster_source() -> None:
    r = report_of(
        source_leads("wechat", 50, 17, timedelta(hours=3.2))
        + source_leads("web_form", 30, 0, timedelta(minutes=6))
    )
    (s,) = [s for s in r.suggestions if s.rule == "loss_concentration"]
    assert s.text.startswith(
        "team-cn: 34 % of wechat leads lost at contacted for no_response; "
        "first touch p50 3.2 h against 6 min for web_form"
    )
    assert s.evidence["lost"] == 17
    assert s.evidence["leads"] == 50
    quiet = report_of(source_leads("wechat", 50, 9, timedelta(hours=3)))
    assert "loss_concentration" not in rules(quiet), "fewer than 10 lost"


def base() -> Report:
    return report_of([])


def test_bottleneck_follow_up_silent_demand_and_forecast_rules() -> None:
    r = base()
    b = Bottleneck("north", "proposal", "time_in_stage", 9e6, 3e6, "all_teams", 25)
    a = AccountabilityRow(
        1, "north", "rep-9", 12, 10, 7, 2, 1, 0, 0.7, 0.5, 3, {"1": 3}, None, 0, 0, 0
    )
    ok = replace(a, within_sla=8, late=1, effective_rate=0.8)
    t = TrendRow("product", "erp", 70, 40, 30, 0, None, None, 0, 0, {})
    small = replace(t, leads=50, change=10)
    f = ForecastRow("north", date(2026, 10, 1), T0, 4, 100, 0, 100, 200, 1, 0.5)
    fired = replace(
        r,
        bottlenecks=replace(r.bottlenecks, flagged=(b,)),
        accountability=replace(r.accountability, rows=(a, ok)),
        silent=replace(r.silent, rows=(SilentRow("north", "rep-9", 5), SilentRow("south", "x", 4))),
        trends=replace(r.trends, movers=(t, small)),
        forecast=replace(r.forecast, rows=(f, replace(f, accuracy=0.7))),
    )
    out = suggestions(fired)
    assert [s.rule for s in out] == [
        "bottleneck",
        "follow_up",
        "silent_leaks",
        "demand_shift",
        "forecast_miss",
    ]
    assert out[0].text == (
        "north keeps leads in proposal 2.5 h (median) against 50 min for all teams "
        "on 25 leads — unblock proposal"
    )
    assert out[1].evidence["rep"] == "rep-9"
    assert out[2].team == "north"
    assert out[3].evidence["change"] == 0.75
    assert out[4].evidence["accuracy"] == 0.5
    assert suggestions(r) == ()


def test_duration() -> None:
    assert [duration(x) for x in (None, 4000, 360_000, 11_520_000, 3 * 86_400_000)] == [
        "-",
        "4 s",
        "6 min",
        "3.2 h",
        "3.0 d",
    ]
