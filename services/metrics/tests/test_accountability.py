"""Per-rep series and the leak ledger, lead by lead: who a count is attributed to, and
which single state each accepted lead is in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from leadloop_metrics.domain.facts import (
    Accepted,
    Assigned,
    Escalated,
    LeadFact,
    Rated,
    Silenced,
    StageMoved,
    Touched,
)
from leadloop_metrics.domain.fold import step
from leadloop_metrics.domain.labels import Delta, LabelPolicy, series
from leadloop_metrics.domain.leads import LeadState, followup_status, ledger_state
from leadloop_metrics.domain.metric_defs import LEDGER_STATES, served_value

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
L = "lead-1"
POLICY = LabelPolicy(
    sources=frozenset({"web_form"}),
    teams=frozenset({"north", "south"}),
    reps={"rep-a": "north", "rep-b": "south"},
)
A = {"team": "north", "rep": "rep-a"}
B = {"team": "south", "rep": "rep-b"}


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def accepted() -> Accepted:
    return Accepted("acc", L, "web_form", at(0), "hot")


def owned_by(
    rep: str | None, minutes: float, kind: str = "initial", previous: str | None = None
) -> Assigned:
    owned = rep is not None
    return Assigned(
        f"asg-{minutes}", L, "north", owned, "round_robin", kind, at(minutes), "hot", rep, previous
    )


def touch(rep: str, minutes: float, kind_touch: bool = True) -> Touched:
    return Touched(f"act-{minutes}", L, kind_touch, at(minutes), rep)


def fired(
    esc: str, minutes: float, owner: str = "rep-a", kind: str = "first_response"
) -> Escalated:
    return Escalated(f"{esc}-f", L, esc, "north", "p", kind, 1, True, owner, at(minutes))


def resolved(esc: str, minutes: float, owner: str = "rep-a") -> Escalated:
    return Escalated(
        f"{esc}-r", L, esc, "north", "p", "first_response", 1, False, owner, at(minutes)
    )


def run(facts: list[LeadFact]) -> tuple[LeadState, Delta]:
    result = step({}, facts, POLICY)
    return result.states[L], result.delta


def value(delta: Delta, name: str, **labels: str) -> float:
    key = series(name, **labels)
    return served_value(name, delta.get(key, 0.0))


def states(delta: Delta) -> dict[str, float]:
    return {
        dict(labels)["state"]: v
        for (name, labels), v in delta.items()
        if name == "leadloop_leads_by_state" and v
    }


def test_a_rep_is_credited_with_touches_first_response_and_the_win() -> None:
    _, delta = run(
        [
            accepted(),
            owned_by("rep-a", 1),
            touch("rep-a", 4),
            touch("rep-a", 30, kind_touch=False),  # a note is not a touch
            StageMoved("won", L, "won", at(90), 5000.0, None),
        ]
    )
    assert value(delta, "leadloop_rep_touches_total", **A) == 1
    assert (
        served_value(
            "leadloop_rep_first_response_seconds_count",
            delta[
                ("leadloop_rep_first_response_seconds_count", (("team", "north"), ("rep", "rep-a")))
            ],
        )
        == 1
    )
    assert value(delta, "leadloop_rep_leads_won_total", **A) == 1
    assert value(delta, "leadloop_rep_won_amount_total", **A) == 5000.0
    assert value(delta, "leadloop_rep_open_leads", **A) == 0
    assert value(delta, "leadloop_rep_followups", status="within_sla", **A) == 1
    assert states(delta) == {"won": 1}


def test_a_reassigned_lead_counts_as_taken_from_the_first_rep_and_open_for_the_second() -> None:
    state, delta = run(
        [
            accepted(),
            owned_by("rep-a", 1),
            owned_by("rep-b", 60, kind="reassigned", previous="rep-a"),
            StageMoved("lost", L, "lost", at(120), None, "no_budget"),
        ]
    )
    assert value(delta, "leadloop_rep_leads_taken_total", kind="reassigned", **A) == 1
    assert value(delta, "leadloop_rep_leads_taken_total", kind="reassigned", **B) == 0
    # The loss is the owner's at the time; the first response was owed by rep-a.
    assert value(delta, "leadloop_rep_leads_lost_total", **B) == 1
    assert value(delta, "leadloop_rep_leads_lost_total", **A) == 0
    assert state.first_owner == "rep-a"
    assert followup_status(state) == "within_sla"  # the CRM's stage change answered it


def test_open_leads_follow_the_latest_owner_whatever_the_order() -> None:
    late_first = [accepted(), owned_by("rep-b", 60, "reassigned", "rep-a"), owned_by("rep-a", 1)]
    _, delta = run(late_first)
    assert value(delta, "leadloop_rep_open_leads", **B) == 1
    assert value(delta, "leadloop_rep_open_leads", **A) == 0


def test_a_rep_off_the_roster_is_other_for_both_labels() -> None:
    _, delta = run([accepted(), owned_by("rep-q", 1), touch("rep-q", 2)])
    other = {"team": "other", "rep": "other"}
    assert value(delta, "leadloop_rep_open_leads", **other) == 1
    assert value(delta, "leadloop_rep_touches_total", **other) == 1


@pytest.mark.parametrize(
    ("facts", "status"),
    [
        ([owned_by("rep-a", 1)], "pending"),
        ([owned_by("rep-a", 1), fired("fr", 31)], "missed"),
        ([owned_by("rep-a", 1), touch("rep-a", 20), fired("fr", 31)], "within_sla"),
        ([owned_by("rep-a", 1), fired("fr", 31), touch("rep-a", 40)], "late"),
        # The step reaches the metrics after the touch but fired before it: late.
        ([owned_by("rep-a", 1), touch("rep-a", 40), fired("fr", 31)], "late"),
        # Another kind of clock says nothing about the first response.
        (
            [owned_by("rep-a", 1), fired("fu", 31, kind="follow_up"), touch("rep-a", 40)],
            "within_sla",
        ),
        # A step of another owner's first-response clock is not the first owner's.
        ([owned_by("rep-a", 1), fired("fr", 31, owner="rep-b"), touch("rep-a", 40)], "within_sla"),
    ],
)
def test_followup_status(facts: list[LeadFact], status: str) -> None:
    state, delta = run([accepted(), *facts])
    assert followup_status(state) == status
    assert value(delta, "leadloop_rep_followups", status=status, **A) == 1


@pytest.mark.parametrize(
    ("facts", "expected"),
    [
        ([], "awaiting_assignment"),
        ([owned_by(None, 1, kind="pooled")], "pooled"),
        ([owned_by("rep-a", 1)], "owned_within_sla"),
        ([owned_by("rep-a", 1), fired("fr", 31)], "owned_breached"),
        ([owned_by("rep-a", 1), fired("fr", 31), resolved("fr", 40)], "owned_within_sla"),
        ([owned_by("rep-a", 1), Silenced("s", L, at(1))], "silent"),
        # Silent wins over breached: nobody has moved the lead for days.
        ([owned_by("rep-a", 1), fired("fr", 31), Silenced("s", L, at(1))], "silent"),
        # A touch after the quiet time started ends the silence, in either order.
        ([owned_by("rep-a", 1), Silenced("s", L, at(1)), touch("rep-a", 5000)], "owned_within_sla"),
        ([owned_by("rep-a", 1), touch("rep-a", 5000), Silenced("s", L, at(1))], "owned_within_sla"),
        ([owned_by("rep-a", 1), StageMoved("w", L, "won", at(9), 1.0, None)], "won"),
        ([owned_by("rep-a", 1), StageMoved("x", L, "lost", at(9), None, "timing")], "lost"),
    ],
)
def test_every_accepted_lead_is_in_exactly_one_ledger_state(
    facts: list[LeadFact], expected: str
) -> None:
    state, delta = run([accepted(), *facts])
    assert ledger_state(state) == expected
    assert states(delta) == {expected: 1}
    assert expected in LEDGER_STATES


def test_a_lead_not_yet_accepted_is_not_in_the_ledger() -> None:
    # The ledger sums to accepted leads: an assignment seen before the acceptance waits.
    _, delta = run([owned_by("rep-a", 1)])
    assert states(delta) == {}
    _, delta = run([owned_by("rep-a", 1), accepted()])
    assert states(delta) == {"owned_within_sla": 1}


def test_satisfaction_counts_each_rating_once_for_the_rep_and_for_the_team_once_known() -> None:
    rated = [Rated("r1", L, 4, at(200), "rep-a"), Rated("r2", L, 2, at(300), None)]
    # Ratings before any assignment: the rep's counts at once, the team's wait.
    _, delta = run([accepted(), *rated, rated[0]])
    rep_count = ("leadloop_rep_satisfaction_score_count", (("team", "north"), ("rep", "rep-a")))
    assert delta.get(rep_count) == 1
    assert not [k for k in delta if k[0] == "leadloop_satisfaction_score_count"]
    _, delta = run([accepted(), *rated, owned_by("rep-b", 400)])
    team = (("team", "north"),)
    assert delta[("leadloop_satisfaction_score_count", team)] == 2
    assert (
        served_value(
            "leadloop_satisfaction_score_sum", delta[("leadloop_satisfaction_score_sum", team)]
        )
        == 6
    )
    assert delta[("leadloop_satisfaction_score_bucket", (*team, ("le", "2.0")))] == 1
    assert delta[("leadloop_satisfaction_score_bucket", (*team, ("le", "4.0")))] == 2
