"""The dry run of a proposed rule set over past leads (pure)."""

from __future__ import annotations

from datetime import timedelta

from services.assignment.tests.factories import NOW, make_lead

from leadloop.events import Strategy
from leadloop_assignment.domain.dry_run import PastLead, replay
from leadloop_assignment.domain.rules import Rep, Rule, RuleSet, Team


def proposal(*reps: Rep, strategy: Strategy = Strategy.ROUND_ROBIN) -> RuleSet:
    return RuleSet(
        version="proposed",
        teams=(Team(team_id="new", reps=reps),),
        rules=(Rule(rule_id="all-new", team="new", strategy=strategy),),
    )


def past(i: int, owner: str | None, closed_after: timedelta | None = None) -> PastLead:
    at = NOW + timedelta(minutes=i)
    return PastLead(
        lead=make_lead(f"l{i}", accepted_at=at, occurred_at=at),
        actual=("old", owner),
        closed_at=at + closed_after if closed_after is not None else None,
    )


def test_the_dry_run_reports_proposed_next_to_actual() -> None:
    leads = [past(i, "x") for i in range(6)]
    dist = replay(leads, proposal(Rep(rep_id="a"), Rep(rep_id="b"), Rep(rep_id="c")))
    assert dist.leads == 6
    assert dist.proposed == {("new", "a"): 2, ("new", "b"): 2, ("new", "c"): 2}
    assert dist.actual == {("old", "x"): 6}
    assert dist.changed == 6
    assert dist.rules == {"all-new": 6}
    assert dist.teams(dist.proposed) == {"new": 6}


def test_capacity_is_freed_when_the_lead_actually_closed() -> None:
    # One rep with room for one lead: the first lead closes a minute and a half later,
    # so the third lead (minute 2) fits again, the second (minute 1) does not.
    leads = [past(0, "x", closed_after=timedelta(seconds=90)), past(1, "x"), past(2, "x")]
    dist = replay(leads, proposal(Rep(rep_id="a", capacity=1)))
    assert dist.proposed == {("new", "a"): 2, ("new", None): 1}


def test_leads_are_replayed_in_acceptance_order_whatever_the_input_order() -> None:
    rules = proposal(Rep(rep_id="a"), Rep(rep_id="b"))
    forward = replay([past(i, "x") for i in range(5)], rules)
    backward = replay([past(i, "x") for i in reversed(range(5))], rules)
    assert forward.proposed == backward.proposed == {("new", "a"): 3, ("new", "b"): 2}
