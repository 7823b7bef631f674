"""Moves after the first decision: escalations, departed reps, the pool, the roster and
working hours — pure, no broker or database."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st
from services.assignment.tests.factories import NOW, make_lead

from leadloop.calendar import BusinessCalendar
from leadloop.events import AssignmentKind, EscalationAction, Priority, RepStatus, Strategy
from leadloop_assignment.domain.moves import (
    HeldLead,
    Takeback,
    move_events,
    plan_moves,
)
from leadloop_assignment.domain.routing import RoutingState, decide
from leadloop_assignment.domain.rules import Rep, RosterEntry, Rule, RuleSet, Team, with_roster


def rules_of(*reps: Rep, strategy: Strategy = Strategy.ROUND_ROBIN, **team: Any) -> RuleSet:
    return RuleSet(
        version="v1",
        teams=(Team(team_id="sales", manager_id="mgr", reps=reps, **team),),
        rules=(Rule(rule_id="all", team="sales", strategy=strategy),),
        reassign_cooldown_seconds=3600,
    )


def held(lead_id: str, owner: str | None, **fields: Any) -> HeldLead:
    return HeldLead(make_lead(lead_id, **fields), team_id="sales", rule_id="all", owner_id=owner)


def reassign(lead_id: str, owner: str | None, action: EscalationAction) -> Takeback:
    return Takeback(lead_id, owner, action, f"esc-{lead_id}-{action.value}")


A, B, C = Rep(rep_id="a"), Rep(rep_id="b"), Rep(rep_id="c")


def test_an_escalation_reassigns_to_another_rep_and_the_owner_cools_down() -> None:
    rules = rules_of(A, B, C)
    state = RoutingState(load={"a": 1}, cursors={"sales": "c"})  # rotation would pick a
    plan = plan_moves(
        rules=rules,
        state=state,
        now=NOW,
        takebacks=[reassign("l1", "a", EscalationAction.REASSIGN)],
        held=[held("l1", "a")],
    )
    [d] = plan.decisions
    assert (d.owner_id, d.kind, d.released) == ("b", AssignmentKind.REASSIGNED, "a")
    assert [c.skipped for c in d.candidates] == ["cooldown", None]
    assert plan.cooldowns == [("l1", "a", NOW + timedelta(hours=1))]
    assert (plan.state.load["a"], plan.state.load["b"]) == (0, 1)
    assert "escalation reassign from a" in d.reason()


def test_an_escalation_against_an_earlier_owner_moves_nothing() -> None:
    plan = plan_moves(
        rules=rules_of(A, B),
        state=RoutingState(),
        now=NOW,
        takebacks=[
            reassign("l1", "a", EscalationAction.REASSIGN),
            reassign("gone", "a", EscalationAction.REASSIGN),
        ],
        held=[held("l1", "b")],
    )
    assert plan.decisions == []
    assert [why for _, why in plan.ignored] == [
        "lead has moved on since",
        "lead closed or unknown",
    ]


def test_return_to_pool_reclaims_and_the_pool_gives_it_to_someone_else() -> None:
    plan = plan_moves(
        rules=rules_of(A, B),
        state=RoutingState(load={"a": 1}),
        now=NOW,
        takebacks=[reassign("l1", "a", EscalationAction.RETURN_TO_POOL)],
        held=[held("l1", "a")],
    )
    reclaimed, out_of_pool = plan.decisions
    assert (reclaimed.owner_id, reclaimed.kind, reclaimed.released) == (
        None,
        AssignmentKind.RECLAIMED,
        "a",
    )
    assert (out_of_pool.owner_id, out_of_pool.kind, out_of_pool.released) == (
        "b",
        AssignmentKind.REASSIGNED,
        None,
    )
    events = move_events(plan.decisions, [held("l1", "a")])
    assert [e.previous_owner_id for e in events] == ["a", None]
    assert len({e.assignment_id for e in events}) == 2


def test_a_reclaimed_lead_waits_when_only_the_cooling_rep_could_take_it() -> None:
    plan = plan_moves(
        rules=rules_of(A, Rep(rep_id="b", status=RepStatus.AWAY)),
        state=RoutingState(load={"a": 1}),
        now=NOW,
        takebacks=[reassign("l1", "a", EscalationAction.RETURN_TO_POOL)],
        held=[held("l1", "a")],
    )
    assert [(d.owner_id, d.kind) for d in plan.decisions] == [(None, AssignmentKind.RECLAIMED)]
    # Later, with the cooldown still running, a pool pass leaves it where it is.
    later = plan_moves(
        rules=rules_of(A, B.model_copy(update={"status": RepStatus.AWAY})),
        state=RoutingState(cooling={"l1": frozenset({"a"})}),
        now=NOW + timedelta(minutes=5),
        held=[held("l1", None)],
    )
    assert later.decisions == []


def test_a_departed_reps_leads_are_decided_again_by_the_rules() -> None:
    rules = rules_of(Rep(rep_id="a", status=RepStatus.LEFT), B, Rep(rep_id="c", capacity=1))
    plan = plan_moves(
        rules=rules,
        state=RoutingState(load={"a": 3}),
        now=NOW,
        held=[held("l1", "a"), held("l2", "a"), held("l3", "a"), held("other", "b")],
    )
    assert [(d.lead_id, d.owner_id, d.kind, d.released) for d in plan.decisions] == [
        ("l1", "b", AssignmentKind.REASSIGNED, "a"),
        ("l2", "c", AssignmentKind.REASSIGNED, "a"),
        ("l3", "b", AssignmentKind.REASSIGNED, "a"),
    ]
    assert plan.state.load == {"a": 0, "b": 2, "c": 1}
    assert all("a left" in d.reason() for d in plan.decisions)


def test_a_departed_reps_lead_goes_to_the_pool_when_nobody_can_take_it() -> None:
    rules = rules_of(Rep(rep_id="a", status=RepStatus.LEFT), Rep(rep_id="b", capacity=0))
    plan = plan_moves(
        rules=rules, state=RoutingState(load={"a": 1}), now=NOW, held=[held("l1", "a")]
    )
    [d] = plan.decisions
    assert (d.owner_id, d.kind, d.released) == (None, AssignmentKind.RECLAIMED, "a")


def test_the_pool_drains_hottest_first_then_oldest() -> None:
    rules = rules_of(Rep(rep_id="a", capacity=1), Rep(rep_id="b", capacity=1))
    t = NOW - timedelta(hours=1)
    pool = [
        held("cold-old", None, priority=Priority.COLD, accepted_at=t),
        held("warm-new", None, priority=Priority.WARM, accepted_at=t + timedelta(minutes=9)),
        held("hot-new", None, priority=Priority.HOT, accepted_at=t + timedelta(minutes=9)),
        held("warm-old", None, priority=Priority.WARM, accepted_at=t + timedelta(minutes=1)),
    ]
    plan = plan_moves(rules=rules, state=RoutingState(), now=NOW, held=pool)
    assert [d.lead_id for d in plan.decisions] == ["hot-new", "warm-old"]
    assert all(d.kind is AssignmentKind.REASSIGNED for d in plan.decisions)


def test_the_pool_uses_the_leads_rule_when_it_still_rotates_in_the_team() -> None:
    rules = RuleSet(
        version="v2",
        teams=(Team(team_id="sales", reps=(Rep(rep_id="a", weight=0), B)),),
        rules=(Rule(rule_id="all", team="sales", strategy=Strategy.WEIGHTED),),
    )
    plan = plan_moves(rules=rules, state=RoutingState(), now=NOW, held=[held("l1", None)])
    [d] = plan.decisions
    assert (d.owner_id, d.strategy, d.rule_version) == ("b", Strategy.WEIGHTED, "v2")


# NOW is a Monday, 09:00 UTC.
CLOSED_NOW = BusinessCalendar.model_validate(
    {"timezone": "UTC", "weekly": {"monday": ["03:00-04:00"]}}
)
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ALWAYS_OPEN = BusinessCalendar.model_validate(
    {"timezone": "UTC", "weekly": {day: ["00:00-24:00"] for day in DAYS}}
)


def test_outside_working_hours_every_rep_is_skipped_and_the_lead_pools() -> None:
    closed = rules_of(A, B, working_hours=True, calendar=CLOSED_NOW)
    decision = decide(make_lead(), closed, RoutingState(), NOW)
    assert (decision.owner_id, decision.kind) == (None, AssignmentKind.POOLED)
    assert {c.skipped for c in decision.candidates} == {"off_hours"}
    opened = rules_of(A, B, working_hours=True, calendar=ALWAYS_OPEN)
    assert decide(make_lead(), opened, RoutingState(), NOW).owner_id == "a"


def test_the_roster_overrides_the_file_and_moves_reps_between_teams() -> None:
    rules = RuleSet(
        version="v1",
        teams=(
            Team(team_id="t1", reps=(Rep(rep_id="a", daily_cap=5), Rep(rep_id="b"))),
            Team(team_id="t2", reps=(Rep(rep_id="c"),)),
        ),
        rules=(Rule(rule_id="key", team="t1", strategy=Strategy.DIRECT, rep_id="b"),),
    )
    roster = [
        RosterEntry("a", "t1", RepStatus.AWAY, capacity=7, weight=3),
        RosterEntry("b", "t2", RepStatus.ACTIVE, capacity=9, weight=1),
        RosterEntry("new", "t2", RepStatus.ACTIVE, capacity=2, weight=1),
        RosterEntry("c", "nowhere", RepStatus.ACTIVE, capacity=2, weight=1),
    ]
    merged = with_roster(rules, roster)
    t1, t2 = merged.teams
    assert t1.reps == (Rep(rep_id="a", status=RepStatus.AWAY, capacity=7, weight=3, daily_cap=5),)
    assert [r.rep_id for r in t2.reps] == ["b", "new"]
    # The direct rule's rep has moved away: the lead waits in the rule's team's pool.
    d = decide(make_lead(), merged, RoutingState(), NOW)
    assert (d.owner_id, [c.skipped for c in d.candidates]) == (None, ["not_in_team"])


@settings(max_examples=200, deadline=None)
@given(
    statuses=st.lists(st.sampled_from(list(RepStatus)), min_size=1, max_size=5),
    capacities=st.lists(st.integers(0, 3), min_size=5, max_size=5),
    owners=st.lists(st.integers(-1, 4), min_size=1, max_size=12),
    escalate=st.lists(st.tuples(st.integers(0, 11), st.booleans()), max_size=6),
    cooling=st.lists(st.tuples(st.integers(0, 11), st.integers(0, 4)), max_size=6),
)
def test_moves_never_give_a_lead_to_an_ineligible_rep(
    statuses: list[RepStatus],
    capacities: list[int],
    owners: list[int],
    escalate: list[tuple[int, bool]],
    cooling: list[tuple[int, int]],
) -> None:
    reps = tuple(
        Rep(rep_id=f"r{i}", status=s, capacity=capacities[i]) for i, s in enumerate(statuses)
    )
    rules = rules_of(*reps)
    rep_ids = [r.rep_id for r in reps]
    leads = [
        held(f"l{i}", rep_ids[o % len(rep_ids)] if o >= 0 else None) for i, o in enumerate(owners)
    ]
    load: dict[str, int] = {}
    for h in leads:
        if h.owner_id:
            load[h.owner_id] = load.get(h.owner_id, 0) + 1
    cool = {}
    for lead_no, rep_no in cooling:
        lead_id = f"l{lead_no % len(leads)}"
        cool[lead_id] = cool.get(lead_id, frozenset()) | {rep_ids[rep_no % len(rep_ids)]}
    takebacks = [
        reassign(
            f"l{n % len(leads)}",
            leads[n % len(leads)].owner_id,
            EscalationAction.REASSIGN if r else EscalationAction.RETURN_TO_POOL,
        )
        for n, r in escalate
    ]
    state = RoutingState(load=load, cooling=cool)
    plan = plan_moves(rules=rules, state=state, now=NOW, takebacks=takebacks, held=leads)

    by_rep = {r.rep_id: r for r in reps}
    final = {h.lead.lead_id: h.owner_id for h in leads}
    for d in plan.decisions:
        assert final[d.lead_id] == d.released or d.released is None
        final[d.lead_id] = d.owner_id
        if d.owner_id is None:
            continue
        rep = by_rep[d.owner_id]
        assert rep.status is RepStatus.ACTIVE
        assert d.owner_id not in plan.state.cooling.get(d.lead_id, frozenset())
    # Load is conserved: every open lead counts once, with its final owner.
    counted = {rep: n for rep, n in plan.state.load.items() if n}
    owned: dict[str, int] = {}
    for owner in final.values():
        if owner:
            owned[owner] = owned.get(owner, 0) + 1
    assert counted == owned
    # Nobody was pushed past capacity by a move (they may have started above it).
    for rep_id, n in owned.items():
        assert n <= max(by_rep[rep_id].capacity, load.get(rep_id, 0))
    # No rep left keeps an open lead.
    assert not any(by_rep[o].status is RepStatus.LEFT for o in final.values() if o)
