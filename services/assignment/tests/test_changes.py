"""What a transaction writes, worked out in the domain: load moves by steps."""

from __future__ import annotations

from services.assignment.tests.factories import NOW, make_lead

from leadloop.events import EscalationAction, Strategy
from leadloop_assignment.domain.changes import LoadStep, decide_first, decide_moves
from leadloop_assignment.domain.moves import HeldLead, Takeback
from leadloop_assignment.domain.routing import RoutingState
from leadloop_assignment.domain.rules import Rep, Rule, RuleSet, Team

RULES = RuleSet(
    version="v1",
    teams=(Team(team_id="t1", reps=(Rep(rep_id="a"), Rep(rep_id="b"))),),
    rules=(Rule(rule_id="all", team="t1", strategy=Strategy.ROUND_ROBIN),),
)


def test_first_decisions_count_their_owners_and_move_the_cursor_once() -> None:
    leads = [make_lead(f"l-{i}") for i in range(3)]
    outcome = decide_first(leads, RULES, RoutingState(load={"a": 4}), NOW)
    assert [e.owner_id for e in outcome.events] == ["a", "b", "a"]
    changes = outcome.changes
    assert changes.load == {"a": LoadStep("t1", 2, 2), "b": LoadStep("t1", 1, 1)}
    assert changes.cursors == {"t1": "a"}
    assert [r.cause for r in changes.recorded] == [x.event_id for x in leads]
    assert all(p.lead is not None and p.moves == 0 for p in changes.placed)


def test_a_lead_won_before_its_first_decision_adds_nothing_to_the_load() -> None:
    outcome = decide_first(
        [make_lead("l-1")], RULES, RoutingState(), NOW, closed=frozenset({"l-1"})
    )
    assert outcome.events[0].owner_id == "a"
    assert outcome.changes.load == {"a": LoadStep("t1", opened=0, assigned=1)}


def test_a_rep_outside_the_rules_loses_a_lead_by_one_step() -> None:
    # "x" is in no team: its load was not read, and must still go down by one.
    held = [HeldLead(make_lead("l-1"), team_id="t1", rule_id="all", owner_id="x", moves=2)]
    outcome = decide_moves(
        RULES,
        RoutingState(),
        NOW,
        takebacks=[Takeback("l-1", "x", EscalationAction.REASSIGN, "esc-1")],
        held=held,
        closed_owners=["x", "b"],
    )
    [event] = outcome.events
    assert (event.owner_id, event.previous_owner_id, event.sequence) == ("a", "x", 3)
    changes = outcome.changes
    assert changes.load == {
        "x": LoadStep("t1", opened=-2, assigned=0),
        "a": LoadStep("t1", opened=1, assigned=1),
        "b": LoadStep("t1", opened=-1, assigned=0),
    }
    [placed] = changes.placed
    assert (placed.owner_id, placed.moves, placed.lead) == ("a", 1, None)
    assert [(lead, rep) for lead, rep, _ in changes.cooldowns] == [("l-1", "x")]


def test_nothing_to_do_writes_nothing() -> None:
    assert not decide_moves(RULES, RoutingState(), NOW).changes
