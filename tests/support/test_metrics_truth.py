"""The metrics truth (``tests/support/metrics_truth.py``) on hand-made leads: who each
count goes to, which ledger state a lead is in, and what the comparison reports. The
metrics fault test holds the service to this truth, so it must be right on its own."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from tests.support.metrics_truth import (
    COVERED,
    Activity,
    Decision,
    LabelSets,
    Lead,
    Rating,
    Sample,
    StageChange,
    Step,
    describe,
    differences,
    followup,
    key,
    lead_samples,
    served_units,
)

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
LABELS = LabelSets(
    sources=frozenset({"web_form"}),
    teams=frozenset({"north", "south"}),
    reps={"rep-a": "north", "rep-b": "south"},
)
A = {"team": "north", "rep": "rep-a"}
B = {"team": "south", "rep": "rep-b"}
OTHER = {"team": "other", "rep": "other"}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def lead(*decisions: Decision, team: str = "north", source: str = "web_form") -> Lead:
    return Lead("l1", source, "hot", team, decisions=list(decisions))


def initial(rep: str = "rep-a", minutes: float = 1) -> Decision:
    return Decision(at(minutes), "initial", "round_robin", rep)


def of(samples: Counter[Sample], name: str) -> dict[tuple[tuple[str, str], ...], int]:
    return {labels: v for (n, labels), v in samples.items() if n == name and v}


def ledger(samples: Counter[Sample]) -> dict[str, int]:
    return {dict(k)["state"]: v for k, v in of(samples, "leadloop_leads_by_state").items()}


def labels(**values: str) -> tuple[tuple[str, str], ...]:
    return tuple(sorted(values.items()))


def test_a_reassigned_lead_is_taken_from_the_first_rep_and_open_for_the_second() -> None:
    plan = lead(
        initial(),
        Decision(at(60), "reassigned", "round_robin", "rep-b", previous_owner="rep-a"),
    )
    plan.activities = [Activity(at(90), "rep-b", "call"), Activity(at(95), "rep-b", "email")]
    s = lead_samples(plan, LABELS)
    assert of(s, "leadloop_rep_leads_taken_total") == {labels(kind="reassigned", **A): 1}
    assert of(s, "leadloop_rep_open_leads") == {labels(**B): 1}
    assert of(s, "leadloop_rep_touches_total") == {labels(**B): 2}
    # The first response was owed by the first owner, whoever touched the lead.
    assert of(s, "leadloop_rep_first_response_seconds_count") == {labels(**A): 1}
    assert of(s, "leadloop_rep_followups") == {labels(status="within_sla", **A): 1}
    assert of(s, "leadloop_leads_assigned_total") == {
        labels(team="north", strategy="round_robin", kind="initial"): 1,
        labels(team="north", strategy="round_robin", kind="reassigned"): 1,
    }
    assert of(s, "leadloop_assignment_latency_seconds_count") == {(): 1}
    assert ledger(s) == {"owned_within_sla": 1}


def test_a_reclaimed_lead_without_a_touch_is_pooled_and_back_in_new() -> None:
    plan = lead(initial(), Decision(at(60), "reclaimed", "pool", None, previous_owner="rep-a"))
    s = lead_samples(plan, LABELS)
    assert of(s, "leadloop_rep_leads_taken_total") == {labels(kind="reclaimed", **A): 1}
    assert of(s, "leadloop_pool_leads") == {labels(team="north"): 1}
    assert of(s, "leadloop_funnel_open_leads") == {labels(stage="new", team="north"): 1}
    assert of(s, "leadloop_rep_open_leads") == {}
    assert of(s, "leadloop_rep_followups") == {labels(status="pending", **A): 1}
    # It was assigned once: the funnel entry stays.
    assert labels(stage="assigned", source="web_form") in of(s, "leadloop_funnel_entered_total")
    assert ledger(s) == {"pooled": 1}


def test_the_latest_decision_wins_whatever_the_order_of_the_list() -> None:
    moved = Decision(at(60), "reassigned", "round_robin", "rep-b", previous_owner="rep-a")
    one = lead_samples(lead(initial(), moved), LABELS)
    other = lead_samples(lead(moved, initial()), LABELS)
    assert one == other


def test_a_taken_lead_given_back_to_the_same_rep_is_not_taken() -> None:
    plan = lead(
        initial(), Decision(at(60), "reassigned", "round_robin", "rep-a", previous_owner="rep-a")
    )
    assert of(lead_samples(plan, LABELS), "leadloop_rep_leads_taken_total") == {}


def test_a_won_lead_is_the_owners_with_its_latest_amount() -> None:
    plan = lead(initial())
    plan.activities = [Activity(at(5), "rep-a", "call")]
    plan.stages = [
        StageChange(at(10), "contacted", "rep-a"),
        StageChange(at(20), "proposal", "rep-a", amount_cents=150_000),
        StageChange(at(30), "won", "rep-a", amount_cents=123_456),
    ]
    s = lead_samples(plan, LABELS)
    assert of(s, "leadloop_rep_leads_won_total") == {labels(**A): 1}
    assert of(s, "leadloop_rep_won_amount_total") == {labels(**A): 123_456}
    assert of(s, "leadloop_won_amount_total") == {labels(team="north", source="web_form"): 123_456}
    assert of(s, "leadloop_funnel_open_leads") == {}
    assert of(s, "leadloop_pipeline_amount") == {}
    assert of(s, "leadloop_rep_open_leads") == {}
    assert ledger(s) == {"won": 1}
    assert served_units(s)[key("leadloop_rep_won_amount_total", **A)] == 1234.56


def test_a_lost_lead_is_attributed_to_its_furthest_open_stage_and_its_owner() -> None:
    plan = lead(initial("rep-b"))
    plan.stages = [
        StageChange(at(20), "qualified", "rep-b"),
        StageChange(at(10), "contacted", "rep-b"),
        StageChange(at(30), "lost", "rep-b", loss_reason="timing"),
    ]
    s = lead_samples(plan, LABELS)
    assert of(s, "leadloop_leads_lost_total") == {
        labels(stage="qualified", reason="timing", team="north"): 1
    }
    # A rep's series carry the rep's own team, not the lead's.
    assert of(s, "leadloop_rep_leads_lost_total") == {labels(**B): 1}
    assert ledger(s) == {"lost": 1}


def test_a_rep_off_the_roster_is_other_for_both_labels() -> None:
    plan = lead(initial("rep-q"))
    plan.activities = [Activity(at(3), "rep-q", "visit")]
    s = lead_samples(plan, LABELS)
    assert of(s, "leadloop_rep_open_leads") == {labels(**OTHER): 1}
    assert of(s, "leadloop_rep_touches_total") == {labels(**OTHER): 1}
    assert of(s, "leadloop_rep_first_response_seconds_count") == {labels(**OTHER): 1}


def test_a_note_is_no_touch_but_a_stage_change_answers_the_first_response() -> None:
    plan = lead(initial())
    plan.activities = [Activity(at(3), "rep-a", "note")]
    s = lead_samples(plan, LABELS)
    assert of(s, "leadloop_rep_touches_total") == {}
    assert of(s, "leadloop_first_response_seconds_count") == {}
    assert labels(stage="contacted", source="web_form") not in of(
        s, "leadloop_funnel_entered_total"
    )
    assert of(s, "leadloop_funnel_open_leads") == {labels(stage="assigned", team="north"): 1}
    assert followup(plan) == "pending"
    plan.stages = [StageChange(at(4), "contacted", "rep-a")]
    assert followup(plan) == "within_sla"
    s = lead_samples(plan, LABELS)
    assert of(s, "leadloop_first_response_seconds_count") == {}  # a touch is what counts
    assert of(s, "leadloop_funnel_open_leads") == {labels(stage="contacted", team="north"): 1}


@pytest.mark.parametrize(
    ("touch_at", "steps", "status"),
    [
        (None, [], "pending"),
        (None, [Step(1, "rep-a", at(11), resolved=False)], "missed"),
        (5, [Step(1, "rep-a", at(11), resolved=False)], "within_sla"),
        (20, [Step(1, "rep-a", at(11), resolved=True)], "late"),
        (11, [Step(1, "rep-a", at(11), resolved=True)], "late"),  # at the breach: late
        # A step without an owner is the first owner's; another owner's step is not.
        (20, [Step(1, None, at(11), resolved=True)], "late"),
        (20, [Step(1, "rep-b", at(11), resolved=True)], "within_sla"),
    ],
)
def test_followup_status(touch_at: float | None, steps: list[Step], status: str) -> None:
    plan = lead(initial())
    if touch_at is not None:
        plan.activities = [Activity(at(touch_at), "rep-a", "call")]
    plan.steps = steps
    assert followup(plan) == status
    assert of(lead_samples(plan, LABELS), "leadloop_rep_followups") == {
        labels(status=status, **A): 1
    }


def test_an_unresolved_step_breaches_the_lead_and_opens_one_clock() -> None:
    plan = lead(initial())
    plan.steps = [
        Step(1, "rep-a", at(11), resolved=False),
        Step(2, "rep-a", at(41), resolved=False),
    ]
    s = lead_samples(plan, LABELS)
    assert ledger(s) == {"owned_breached": 1}
    assert of(s, "leadloop_sla_open_clocks") == {labels(kind="first_response"): 1}
    assert of(s, "leadloop_rep_sla_breaches_total") == {
        labels(level="1", **A): 1,
        labels(level="2", **A): 1,
    }
    plan.steps = [Step(1, "rep-a", at(11), resolved=True)]
    s = lead_samples(plan, LABELS)
    assert ledger(s) == {"owned_within_sla": 1}
    assert of(s, "leadloop_sla_open_clocks") == {}
    assert of(s, "leadloop_sla_resolved_total") == {
        labels(kind="first_response", level="1", team="north"): 1
    }


def test_a_lead_without_a_decision_awaits_assignment_unassigned() -> None:
    s = lead_samples(lead(team="south"), LABELS)
    assert ledger(s) == {"awaiting_assignment": 1}
    assert of(s, "leadloop_leads_by_state") == {
        labels(state="awaiting_assignment", team="unassigned"): 1
    }
    assert of(s, "leadloop_funnel_open_leads") == {labels(stage="new", team="unassigned"): 1}
    assert of(s, "leadloop_assignment_latency_seconds_count") == {}
    assert of(s, "leadloop_rep_followups") == {}


def test_unknown_teams_and_sources_are_other() -> None:
    s = lead_samples(lead(Decision(at(1), "pooled", "pool", None), team="east", source="x"), LABELS)
    assert of(s, "leadloop_pool_leads") == {labels(team="other"): 1}
    assert of(s, "leadloop_leads_accepted_total") == {labels(source="other"): 1}


def test_histories_whose_truth_depends_on_the_order_of_arrival_are_refused() -> None:
    reassigned = lead(
        initial(), Decision(at(60), "reassigned", "round_robin", "rep-b", previous_owner="rep-a")
    )
    reassigned.stages = [
        StageChange(at(70), "contacted", "rep-b"),
        StageChange(at(80), "won", "rep-b", amount_cents=1),
    ]
    with pytest.raises(AssertionError, match="one decision"):
        lead_samples(reassigned, LABELS)
    lost_at_once = lead(initial())
    lost_at_once.stages = [StageChange(at(80), "lost", "rep-a", loss_reason="timing")]
    with pytest.raises(AssertionError, match="open stage"):
        lead_samples(lost_at_once, LABELS)


def test_differences_name_every_disagreeing_covered_series_and_nothing_else() -> None:
    expected = {
        key("leadloop_rep_open_leads", **A): 2.0,
        key("leadloop_rep_touches_total", **A): 1.0,
        key("leadloop_leads_by_state", state="pooled", team="north"): 1.0,
    }
    served = {
        key("leadloop_rep_open_leads", **A): 1.0,  # wrong value
        key("leadloop_rep_touches_total", **B): 1.0,  # not in the truth
        key("leadloop_leads_by_state", state="pooled", team="north"): 1.0,
        key("leadloop_stage_duration_seconds_count", stage="new", team="north"): 3.0,
        key("leadloop_rep_first_response_seconds_bucket", le="60.0", **A): 1.0,
    }
    diffs = differences(expected, served)
    assert [(str(d.sample[0]), d.expected, d.served) for d in diffs] == [
        ("leadloop_rep_open_leads", 2.0, 1.0),
        ("leadloop_rep_touches_total", 1.0, None),
        ("leadloop_rep_touches_total", None, 1.0),
    ]
    text = describe(diffs)
    assert "3 samples differ in 2 series" in text
    assert "leadloop_rep_open_leads{rep=rep-a,team=north} expected 2.0 served 1.0" in text
    assert differences(expected, {**expected, key("leadloop_pool_leads", team="x"): 0.0}) == []


def test_every_lead_is_in_exactly_one_ledger_state_and_the_covered_list_is_complete() -> None:
    plans = [
        lead(),
        lead(Decision(at(1), "pooled", "pool", None)),
        lead(initial()),
        lead(initial(), Decision(at(60), "reclaimed", "pool", None, previous_owner="rep-a")),
    ]
    total: Counter[Sample] = Counter()
    for plan in plans:
        s = lead_samples(plan, LABELS)
        assert sum(ledger(s).values()) == 1
        total.update(s)
    assert {name for name, _ in total} <= set(COVERED)


def won_lead(*, won_before: bool, team: str = "north") -> Lead:
    plan = lead(initial(), team=team)
    plan.customer_won_before = won_before
    plan.activities = [Activity(at(5), "rep-a", "call")]
    plan.stages = [
        StageChange(at(10), "contacted", "rep-a"),
        StageChange(at(30), "won", "rep-a", amount_cents=10_000),
    ]
    return plan


def test_a_repeat_customers_win_is_a_repurchase_of_the_team_it_is_won_for() -> None:
    s = lead_samples(won_lead(won_before=True), LABELS)
    assert of(s, "leadloop_repurchases_total") == {labels(team="north"): 1}
    assert of(s, "leadloop_leads_won_total") == {labels(team="north", source="web_form"): 1}
    s = lead_samples(won_lead(won_before=True, team="east"), LABELS)
    assert of(s, "leadloop_repurchases_total") == {labels(team="other"): 1}


def test_no_repurchase_without_a_win_or_without_an_earlier_one() -> None:
    assert of(lead_samples(won_lead(won_before=False), LABELS), "leadloop_repurchases_total") == {}
    back_but_lost = won_lead(won_before=True)
    back_but_lost.stages[-1] = StageChange(at(30), "lost", "rep-a", loss_reason="timing")
    assert of(lead_samples(back_but_lost, LABELS), "leadloop_repurchases_total") == {}
    still_open = lead(initial())
    still_open.customer_won_before = True
    assert of(lead_samples(still_open, LABELS), "leadloop_repurchases_total") == {}


def test_each_rating_counts_once_for_the_leads_team_and_the_rep_it_is_about() -> None:
    plan = lead(initial())
    plan.ratings = [
        Rating(at(100), 4, "rep-a"),
        Rating(at(200), 2, "rep-b"),  # a rep of another team: the rep's own team
        Rating(at(300), 5, None),  # about nobody: the team's only
    ]
    s = lead_samples(plan, LABELS)
    north = labels(team="north")
    assert of(s, "leadloop_satisfaction_score_count") == {north: 3}
    assert of(s, "leadloop_satisfaction_score_sum") == {north: 11}
    assert of(s, "leadloop_satisfaction_score_bucket") == {
        labels(team="north", le="2.0"): 1,
        labels(team="north", le="3.0"): 1,
        labels(team="north", le="4.0"): 2,
        labels(team="north", le="5.0"): 3,
        labels(team="north", le="+Inf"): 3,
    }
    assert of(s, "leadloop_rep_satisfaction_score_count") == {labels(**A): 1, labels(**B): 1}
    assert of(s, "leadloop_rep_satisfaction_score_sum") == {labels(**A): 4, labels(**B): 2}
    assert of(s, "leadloop_rep_satisfaction_score_bucket") == {
        labels(le="4.0", **A): 1,
        labels(le="5.0", **A): 1,
        labels(le="+Inf", **A): 1,
        labels(le="2.0", **B): 1,
        labels(le="3.0", **B): 1,
        labels(le="4.0", **B): 1,
        labels(le="5.0", **B): 1,
        labels(le="+Inf", **B): 1,
    }
    # Served as scores: no scaling of the sum.
    assert served_units(s)[key("leadloop_satisfaction_score_sum", team="north")] == 11.0


def test_a_rating_of_a_lead_never_decided_has_no_team_and_an_off_roster_rep_is_other() -> None:
    plan = lead()  # no assignment decision
    plan.ratings = [Rating(at(100), 3, "rep-q"), Rating(at(110), 1, None)]
    s = lead_samples(plan, LABELS)
    assert of(s, "leadloop_satisfaction_score_count") == {}
    assert of(s, "leadloop_rep_satisfaction_score_count") == {labels(**OTHER): 1}
    assert of(s, "leadloop_rep_satisfaction_score_sum") == {labels(**OTHER): 3}
    # A pooled lead has its team from the decision: rated for the team.
    pooled = lead(Decision(at(1), "pooled", "pool", None), team="south")
    pooled.ratings = [Rating(at(100), 1, None)]
    s = lead_samples(pooled, LABELS)
    assert of(s, "leadloop_satisfaction_score_bucket")[labels(team="south", le="1.0")] == 1


def test_a_score_off_the_scale_is_refused() -> None:
    plan = lead(initial())
    plan.ratings = [Rating(at(1), 6, None)]
    with pytest.raises(AssertionError, match="1-5"):
        lead_samples(plan, LABELS)
