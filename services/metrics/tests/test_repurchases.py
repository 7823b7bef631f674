"""Repurchases, lead by lead: a win of a customer who had won before is counted with the
win, by the same team, once, whatever order the acceptance, the assignment and the win
arrive in — and a count once served never changes."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from itertools import permutations

import pytest

from leadloop_metrics.adapters.lead_state_json import state_from_json, state_to_json
from leadloop_metrics.domain.facts import (
    Accepted,
    Assigned,
    LeadFact,
    StageMoved,
    fact_from_json,
    fact_to_json,
)
from leadloop_metrics.domain.fold import merge, step
from leadloop_metrics.domain.labels import Delta, LabelPolicy, series
from leadloop_metrics.domain.leads import LeadState

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
L = "lead-1"
POLICY = LabelPolicy(
    sources=frozenset({"web_form"}),
    teams=frozenset({"north", "south"}),
    reps={"rep-a": "north"},
)
REPURCHASES = "leadloop_repurchases_total"


def at(minutes: float) -> datetime:
    return T0 + timedelta(minutes=minutes)


def accepted(won_before: bool, event_id: str = "acc") -> Accepted:
    return Accepted(event_id, L, "web_form", at(0), "hot", won_before)


def owned(team: str = "north") -> Assigned:
    return Assigned("asg", L, team, True, "round_robin", "initial", at(1), "hot", "rep-a")


def won() -> StageMoved:
    return StageMoved("won", L, "won", at(90), 100.0, None)


def lost() -> StageMoved:
    return StageMoved("lost", L, "lost", at(90), None, "timing")


def served(facts: list[LeadFact]) -> tuple[LeadState, Delta, list[Delta]]:
    """Apply one fact per step, as separate batches would: the final state, the served
    sum and each step's change."""
    state = LeadState(L)
    total: Delta = {}
    steps: list[Delta] = []
    for fact in facts:
        result = step({L: state}, [fact], POLICY)
        merge(total, result.delta)
        steps.append(result.delta)
        state = result.states[L]
    return state, total, steps


def count(delta: Delta, name: str, **labels: str) -> float:
    return delta.get(series(name, **labels), 0.0)


@pytest.mark.parametrize("order", list(permutations(range(3))))
def test_a_repeat_customers_win_is_a_repurchase_with_the_win_in_any_order(
    order: tuple[int, ...],
) -> None:
    facts: list[LeadFact] = [accepted(True), owned(), won()]
    _, total, steps = served([facts[i] for i in order])
    assert count(total, REPURCHASES, team="north") == 1
    assert count(total, "leadloop_leads_won_total", team="north", source="web_form") == 1
    # Counted in the very step the win is: a dashboard never sees one without the other.
    for delta in steps:
        assert count(delta, REPURCHASES, team="north") == count(
            delta, "leadloop_leads_won_total", team="north", source="web_form"
        )


def test_a_first_time_customers_win_is_no_repurchase() -> None:
    _, total, _ = served([accepted(False), owned(), won()])
    assert count(total, "leadloop_leads_won_total", team="north", source="web_form") == 1
    assert not [k for k in total if k[0] == REPURCHASES]


def test_a_repeat_customer_who_does_not_buy_again_is_no_repurchase() -> None:
    _, total, _ = served([accepted(True), owned(), lost()])
    assert not [k for k in total if k[0] == REPURCHASES]
    _, total, _ = served([accepted(True), owned()])
    assert not [k for k in total if k[0] == REPURCHASES]


def test_the_first_acceptance_decides_and_a_later_one_changes_nothing() -> None:
    # A producer retry under a new event id saying otherwise: the count stays.
    state, total, steps = served([owned(), won(), accepted(True), accepted(False, "acc-2")])
    assert count(total, REPURCHASES, team="north") == 1
    assert steps[-1] == {}
    assert state.customer_won_before is True
    state, total, _ = served([accepted(False), owned(), won(), accepted(True, "acc-2")])
    assert not [k for k in total if k[0] == REPURCHASES]


def test_a_repurchase_goes_to_the_team_of_the_win_outside_the_list_as_other() -> None:
    _, total, _ = served([accepted(True), owned(team="east"), won()])
    assert count(total, REPURCHASES, team="other") == 1


def test_facts_and_states_stored_before_the_flag_was_kept_read_as_first_time() -> None:
    stored_fact = fact_to_json(accepted(True))
    del stored_fact["customer_won_before"]
    assert fact_from_json(stored_fact) == accepted(False)

    state, _, _ = served([accepted(True), owned(), won()])
    assert state_from_json(L, state_to_json(state)) == state
    stored_state = state_to_json(state)
    del stored_state["customer_won_before"]
    old = state_from_json(L, stored_state)
    assert old.customer_won_before is False
    # Nothing a later fact does to such a state counts a repurchase it never had.
    result = step({L: old}, [accepted(True, "acc-2")], POLICY)
    assert result.delta == {}
