"""A small hand-made period with every section filled and Chinese values, for the
renderers' tests (unit and browser)."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from typing import Any

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
from leadloop_review.domain.model import Report
from leadloop_review.domain.period import parse_period
from leadloop_review.domain.record import fold_lead
from leadloop_review.domain.score_model import ScoreModel
from leadloop_review.domain.tally import Tally

NOV = parse_period("2026-11")
UNTIL = datetime(2026, 12, 7, tzinfo=UTC)
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
SOURCES = ("wechat", "web_form", "referral")
PRODUCTS = ("企业版 CRM", "erp", "<script>alert(1)</script>")
REASONS = ("no_response", "no_budget", "timing")


def sample_leads() -> list[list[dict[str, Any]]]:
    leads = []
    for i in range(60):
        lead = f"s{i}"
        at = T0 + timedelta(days=(i * 7) % 40 - 10, hours=i % 5)
        facts = [
            accepted(
                lead,
                at,
                SOURCES[i % 3],
                product=PRODUCTS[i % 3] if at >= T0 else PRODUCTS[0],
                region="华东" if i % 2 else "华南",
                customer_won_before=i % 7 == 0,
            )
        ]
        team, rep = ("north", "张伟") if i % 2 else ("south", f"rep{i % 3}")
        facts.append(assigned(lead, at + timedelta(minutes=1), team, rep))
        if i % 4:
            facts.append(touched(lead, at + timedelta(minutes=5 + 40 * (i % 6))))
        if i % 5 == 0:
            facts.append(escalated(lead, at + timedelta(minutes=30), rep, 1 + i % 2))
        if i % 3 == 0:
            facts.append(stage(lead, at + timedelta(days=1), "won", amount=100.0 + i))
        elif i % 3 == 1:
            facts.append(stage(lead, at + timedelta(days=1), "lost", reason=REASONS[(i // 3) % 3]))
        elif i % 4 == 2:
            facts.append(silenced(lead, at + timedelta(days=2)))
        if i % 2:
            facts.append(rated(lead, at + timedelta(days=3), 1 + i % 5, rep))
        leads.append(facts)
    return leads


def sample_report(score_model: ScoreModel | None = None) -> Report:
    tally = Tally(NOV)
    for facts in sample_leads():
        record = fold_lead(facts[0]["lead_id"], facts, UNTIL)
        assert record is not None
        tally.add(record)
        tally.add_win(record)
    snaps = [
        ForecastSnapshot(
            "north", date(2026, 11, 1), T0 - timedelta(weeks=4), 4, 90000, 60000, 120000
        ),
        ForecastSnapshot(
            "south", date(2026, 11, 1), T0 - timedelta(weeks=1), 1, 50000, 40000, 70000
        ),
    ]
    return build_report(tally, UNTIL, None, snaps, score_model)
