"""The metrics truth (``tests/support/metrics_truth.py``) on hand-made leads: who each
count goes to, which ledger state a lead is in, and what the comparison reports. The
metrics fault test holds the service to this truth, so it must be right on its own."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from tests.support.metrics_truth import (
    COVERED,
    TIME_BUCKETS,
    Activity,
    Decision,
    LabelSets,
    Lead,
    Rating,
    Sample,
    StageChange,
    Step,
    bucket_differences,
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
    return Lead("l1", source, "hot", team, T0, decisions=list(decisions))


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
        StageChange(at(5), "contacted", "rep-a"),
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
        key("leadloop_leads_duplicate_total", source="web_form"): 3.0,
        key("leadloop_forecast_amount", team="north", month="current", kind="commit"): 1.0,
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
        StageChange(at(5), "contacted", "rep-a"),
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


def ms(n: float) -> datetime:
    return T0 + timedelta(milliseconds=n)


def buckets(samples: Counter[Sample], name: str, **values: str) -> list[str]:
    """The ``le`` of the buckets of one series that the samples count in."""
    return [
        dict(k)["le"]
        for k, v in of(samples, f"{name}_bucket").items()
        if v and {n: x for n, x in k if n != "le"} == values
    ]


LATENCY = "leadloop_assignment_latency_seconds"


@pytest.mark.parametrize(
    ("after_ms", "first_le", "summed_ms"),
    [
        (5, "0.005", 5),  # on a boundary: in that bucket
        (6, "0.01", 6),  # a millisecond more: the next
        (5.999, "0.005", 5),  # what is left of a millisecond is dropped
        (60_000, "60.0", 60_000),
        (60_001, "+Inf", 60_001),
        (-3, "0.005", 0),  # decided before its acceptance (clock skew): 0
    ],
)
def test_assignment_latency_is_whole_milliseconds_in_every_bucket_from_its_own_up(
    after_ms: float, first_le: str, summed_ms: int
) -> None:
    s = lead_samples(lead(Decision(ms(after_ms), "pooled", "pool", None)), LABELS)
    les = TIME_BUCKETS[LATENCY]
    assert buckets(s, LATENCY) == list(les[les.index(first_le) :])
    assert s[key(f"{LATENCY}_sum")] == summed_ms
    assert of(s, f"{LATENCY}_count") == {(): 1}
    assert served_units(s).get(key(f"{LATENCY}_sum"), 0.0) == summed_ms / 1000


def test_assignment_latency_runs_to_the_first_decision_whatever_it_decided() -> None:
    moved = Decision(ms(900), "reassigned", "round_robin", "rep-b", previous_owner="rep-a")
    s = lead_samples(lead(moved, Decision(ms(30), "initial", "round_robin", "rep-a")), LABELS)
    assert buckets(s, LATENCY)[0] == "0.05"
    assert of(s, f"{LATENCY}_sum") == {(): 30}
    assert of(lead_samples(lead(), LABELS), f"{LATENCY}_count") == {}  # never decided


def test_first_response_runs_from_the_first_owner_to_the_first_touch() -> None:
    first_response = "leadloop_first_response_seconds"
    by_rep = "leadloop_rep_first_response_seconds"
    plan = lead(initial(minutes=1))
    # A note is no touch; 300 s after the owner is exactly the 300 s boundary.
    plan.activities = [Activity(at(2), "rep-a", "note"), Activity(at(6), "rep-b", "call")]
    s = lead_samples(plan, LABELS)
    team = {"team": "north", "priority": "hot"}
    les = TIME_BUCKETS[first_response]
    assert buckets(s, first_response, **team) == list(les[1:])
    assert buckets(s, by_rep, **A) == list(les[1:])  # the first owner's, not the toucher's
    assert of(s, f"{first_response}_sum") == {labels(**team): 300_000}
    assert served_units(s)[key(f"{by_rep}_sum", **A)] == 300.0
    plan.activities.append(Activity(at(6) - timedelta(microseconds=1), "rep-a", "email"))
    assert buckets(lead_samples(plan, LABELS), first_response, **team) == list(les[1:])
    plan.activities = [Activity(at(6) + timedelta(milliseconds=1), "rep-a", "email")]
    s = lead_samples(plan, LABELS)
    assert buckets(s, first_response, **team) == list(les[2:])  # 300.001 s: the next
    assert of(s, f"{by_rep}_sum") == {labels(**A): 300_001}


def test_each_stage_left_is_timed_from_its_first_entry_to_the_next_stage_entered() -> None:
    duration = "leadloop_stage_duration_seconds"
    plan = lead(
        initial(minutes=1),
        Decision(at(2), "reassigned", "round_robin", "rep-b", previous_owner="rep-a"),
    )
    plan.activities = [Activity(at(5), "rep-b", "call"), Activity(at(7), "rep-b", "call")]
    plan.stages = [
        StageChange(at(5), "contacted", "rep-b"),
        StageChange(at(65), "qualified", "rep-b"),
        StageChange(at(70), "contacted", "rep-b"),  # back: not a new entry
        StageChange(at(200), "negotiation", "rep-b", amount_cents=1),
    ]
    s = lead_samples(plan, LABELS)
    assert of(s, f"{duration}_sum") == {
        labels(stage="new", team="north"): 60_000,
        labels(stage="assigned", team="north"): 240_000,
        labels(stage="contacted", team="north"): 3_600_000,
        labels(stage="qualified", team="north"): 8_100_000,
    }
    assert buckets(s, duration, stage="contacted", team="north")[0] == "3600.0"
    assert buckets(s, duration, stage="qualified", team="north")[0] == "14400.0"
    # The stage it is in is not timed, nor a closed one; a lead never decided has no
    # team to time its stages for.
    plan.stages.append(StageChange(at(300), "won", "rep-b", amount_cents=1))
    plan.decisions = plan.decisions[:1]
    s = lead_samples(plan, LABELS)
    assert of(s, f"{duration}_count")[labels(stage="negotiation", team="north")] == 1
    assert {dict(k)["stage"] for k in of(s, f"{duration}_count")} == {
        *("new", "assigned", "contacted", "qualified", "negotiation")
    }
    assert of(lead_samples(lead(), LABELS), f"{duration}_count") == {}


def test_histories_whose_stage_times_depend_on_the_order_of_arrival_are_refused() -> None:
    # A touch before the CRM's `contacted`: the time in `assigned` would depend on which
    # of the two topics the service read first.
    early_touch = lead(initial())
    early_touch.activities = [Activity(at(3), "rep-a", "call")]
    early_touch.stages = [StageChange(at(4), "contacted", "rep-a")]
    with pytest.raises(AssertionError, match="contacted first"):
        lead_samples(early_touch, LABELS)
    # Pooled first, owned later: the time in `new` would depend on when the owner came.
    pooled_first = lead(
        Decision(at(1), "pooled", "pool", None),
        Decision(at(2), "initial", "round_robin", "rep-a"),
    )
    pooled_first.activities = [Activity(at(3), "rep-a", "call")]
    with pytest.raises(AssertionError, match="owned by its first decision"):
        lead_samples(pooled_first, LABELS)


def test_a_served_bucket_off_by_one_is_reported() -> None:
    plan = lead(initial(minutes=1))
    plan.activities = [Activity(at(6), "rep-a", "call")]
    plan.stages = [StageChange(at(6), "contacted", "rep-a")]
    expected = served_units(lead_samples(plan, LABELS))
    assert differences(expected, dict(expected)) == []
    bucket = key("leadloop_first_response_seconds_bucket", le="900.0", team="north", priority="hot")
    total = key("leadloop_assignment_latency_seconds_sum")
    served = {**expected, bucket: expected[bucket] + 1, total: expected[total] + 0.001}
    diffs = differences(expected, served)
    assert [(d.sample, d.expected, d.served) for d in diffs] == [
        (total, 60.0, 60.001),
        (bucket, 1.0, 2.0),
    ]
    assert "2 samples differ in 2 series" in describe(diffs)


def exposition(les: dict[str, tuple[str, ...]]) -> str:
    lines = []
    for name, bounds in les.items():
        lines.append(f"# TYPE {name} histogram")
        lines.extend(f'{name}_bucket{{le="{le}",team="north"}} 1.0' for le in bounds)
        lines.append(f'{name}_count{{team="north"}} 1.0')
        lines.append(f'{name}_sum{{team="north"}} 0.5')
    return "\n".join(lines) + "\n"


def test_bucket_differences_reports_boundaries_the_scrape_does_not_share() -> None:
    assert bucket_differences(exposition(TIME_BUCKETS)) == []
    wrong = dict(TIME_BUCKETS)
    latency = TIME_BUCKETS[LATENCY]
    wrong[LATENCY] = (*latency[:2], "0.02", *latency[3:])
    del wrong["leadloop_stage_duration_seconds"]
    found = bucket_differences(exposition(wrong))
    assert len(found) == 2
    assert found[0] == "leadloop_stage_duration_seconds: no buckets served"
    assert found[1].startswith(LATENCY + "{'team': 'north'}: served le ['0.005', '0.01', '0.02'")
