from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from services.review.tests.facts import (
    accepted,
    assigned,
    escalated,
    rated,
    silenced,
    stage,
    touched,
)

from leadloop_review.domain.record import fold_lead

T0 = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)
UNTIL = datetime(2026, 12, 7, tzinfo=UTC)
H = timedelta(hours=1)


def test_a_lead_lost_at_qualified_in_any_order() -> None:
    facts = [
        accepted("l1", T0, "wechat", product="crm", region="east"),
        assigned("l1", T0 + timedelta(minutes=1), "north", "rep-a"),
        touched("l1", T0 + timedelta(minutes=7)),
        stage("l1", T0 + 2 * H, "qualified", amount=100.5),
        stage("l1", T0 + 5 * H, "lost", reason="no_budget"),
        rated("l1", T0 + 6 * H, 2, "rep-a"),
    ]
    for _ in range(5):
        random.shuffle(facts)
        r = fold_lead("l1", facts + facts[:2], UNTIL)  # duplicates change nothing
        assert r is not None
        assert (r.team, r.owner, r.first_owner, r.source) == ("north", "rep-a", "rep-a", "wechat")
        assert r.first_touch_ms == 6 * 60_000
        assert r.outcome == "lost"
        assert r.loss_stage == "qualified"
        assert r.loss_reason == "no_budget"
        assert r.closer == "rep-a"
        assert r.amount_cents == 10050
        assert r.reached == {"new", "assigned", "contacted", "qualified", "lost"}
        assert dict(r.stage_ms) == {
            "new": 60_000,
            "assigned": 6 * 60_000,
            "contacted": 2 * 3600_000 - 7 * 60_000,
            "qualified": 3 * 3600_000,
        }
        assert r.followup == "within_sla"
        assert r.ratings == ((2, "rep-a"),)


def test_facts_after_the_cut_off_do_not_count() -> None:
    facts = [accepted("l", T0), assigned("l", T0, "north", "a"), stage("l", T0 + 48 * H, "won", 5)]
    r = fold_lead("l", facts, T0 + H)
    assert r is not None
    assert r.outcome is None
    assert r.amount_cents == 0
    assert fold_lead("l", facts, T0 - H) is None, "not accepted by the cut-off"


def test_follow_up_statuses_and_breaches() -> None:
    base = [accepted("l", T0), assigned("l", T0, "north", "a")]
    late = fold_lead("l", [*base, escalated("l", T0 + H, "a"), touched("l", T0 + 2 * H)], UNTIL)
    missed = fold_lead("l", [*base, escalated("l", T0 + H, None, level=2)], UNTIL)
    pending = fold_lead("l", base, UNTIL)
    assert late is not None
    assert late.followup == "late"
    assert missed is not None
    assert missed.followup == "missed"
    assert [(b.level, b.rep) for b in missed.breaches] == [(2, "a")]
    assert pending is not None
    assert pending.followup == "pending"
    assert not pending.breaches
    resolved_only = fold_lead("l", [*base, escalated("l", T0 + H, "a", firing=False)], UNTIL)
    assert resolved_only is not None
    assert not resolved_only.breaches


def test_the_latest_assignment_owns_and_the_owner_at_the_close_closes() -> None:
    facts = [
        accepted("l", T0),
        assigned("l", T0, "north", "a", 0),
        assigned("l", T0 + 3 * H, "south", "b", 1),
        stage("l", T0 + 2 * H, "won", 40),
    ]
    r = fold_lead("l", facts, UNTIL)
    assert r is not None
    assert (r.team, r.owner, r.owners, r.closer) == ("south", "b", ("a", "b"), "a")


def test_silent_until_the_lead_moves() -> None:
    base = [accepted("l", T0), assigned("l", T0, "north", "a"), silenced("l", T0 + 2 * H)]
    r = fold_lead("l", base, UNTIL)
    assert r is not None
    assert r.silent
    moved = fold_lead("l", [*base, touched("l", T0 + 3 * H)], UNTIL)
    assert moved is not None
    assert not moved.silent
    pooled = fold_lead(
        "l", [accepted("l", T0), assigned("l", T0, "north", None), silenced("l", T0)], UNTIL
    )
    assert pooled is not None
    assert not pooled.silent
