"""Rule sets, first-match-wins, and round-robin routing (properties over random rosters)."""

from __future__ import annotations

from collections import Counter
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import ValidationError
from services.assignment.tests.factories import NOW, make_lead

from leadloop.events import AssignmentKind, LeadAccepted, Priority, RepStatus, Strategy
from leadloop_assignment.domain.planning import assigned_event, plan, teams_involved
from leadloop_assignment.domain.routing import (
    Decision,
    RoutingState,
    apply,
    decide,
    eligibility,
)
from leadloop_assignment.domain.rules import (
    Condition,
    Rep,
    Rule,
    RuleSet,
    Team,
    matching_rule,
)


def rule_set(
    rules: list[dict[str, Any]], teams: dict[str, list[str]] | None = None, version: str = "v7"
) -> RuleSet:
    teams = teams or {"a": ["a1"], "b": ["b1"], "c": ["c1"], "d": ["d1"]}
    return RuleSet.model_validate(
        {
            "version": version,
            "teams": [
                {"team_id": t, "manager_id": f"mgr-{t}", "reps": [{"rep_id": r} for r in reps]}
                for t, reps in teams.items()
            ],
            "rules": rules,
        }
    )


# --- rule set validation ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        (
            {"rules": [{"rule_id": "r1", "team": "ghost"}]},
            "rule r1 names unknown team ghost",
        ),
        (
            {
                "teams": {"a": ["a1", "x"], "b": ["x"]},
                "rules": [{"rule_id": "r1", "team": "a"}],
            },
            "a rep belongs to exactly one team",
        ),
        (
            {"teams": {"a": ["a1", "a1"]}, "rules": [{"rule_id": "r1", "team": "a"}]},
            "a rep belongs to exactly one team",
        ),
        (
            {
                "rules": [
                    {"rule_id": "r0", "team": "a"},
                    {"rule_id": "r1", "team": "a", "when": {"country": {"equals": "CN"}}},
                ]
            },
            "the last rule must match every lead",
        ),
        (
            {
                "rules": [
                    {"rule_id": "r1", "team": "a", "when": {"email": {"present": True}}},
                    {"rule_id": "all", "team": "a"},
                ]
            },
            "rule r1 tests unknown attributes ['email']",
        ),
        (
            {
                "rules": [
                    {"rule_id": "r1", "team": "a", "when": {"country": {}}},
                    {"rule_id": "all", "team": "a"},
                ]
            },
            "a condition needs one of",
        ),
        (
            {
                "rules": [
                    {"rule_id": "r1", "team": "a", "when": {"country": {"eq": "CN"}}},
                    {"rule_id": "all", "team": "a"},
                ]
            },
            "Extra inputs are not permitted",
        ),
        ({"rules": []}, "at least 1 item"),
    ],
)
def test_inconsistent_rule_sets_are_refused(spec: dict[str, Any], message: str) -> None:
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        rule_set(spec["rules"], spec.get("teams"))


def test_duplicate_team_ids_are_refused() -> None:
    with pytest.raises(ValidationError, match="team ids must be unique"):
        RuleSet.model_validate(
            {
                "version": "1",
                "teams": [{"team_id": "a", "reps": []}, {"team_id": "a", "reps": []}],
                "rules": [{"rule_id": "all", "team": "a"}],
            }
        )


def test_a_condition_without_an_operator_is_refused_on_its_own() -> None:
    with pytest.raises(ValidationError, match="a condition needs one of"):
        Condition()
    assert Condition(present=False).holds(None)


def test_a_valid_rule_set_loads() -> None:
    rules = rule_set(
        [
            {"rule_id": "hot", "team": "a", "when": {"priority": {"equals": "hot"}}},
            {"rule_id": "all", "team": "d", "strategy": "round_robin"},
        ]
    )
    assert rules.version == "v7"
    assert rules.team("d").manager_id == "mgr-d"


# --- matching ----------------------------------------------------------------------------

RULES = rule_set(
    [
        {"rule_id": "hot", "team": "a", "when": {"priority": {"equals": "hot"}}},
        {"rule_id": "returning", "team": "b", "when": {"is_returning": {"equals": True}}},
        {"rule_id": "greater-china", "team": "c", "when": {"country": {"in": ["CN", "HK"]}}},
        {"rule_id": "big-budget", "team": "a", "when": {"budget": {"gte": 100_000}}},
        {
            "rule_id": "small-saas",
            "team": "b",
            "when": {"company_size": {"lt": 50}, "industry": {"equals": "saas"}},
        },
        {"rule_id": "campaign", "team": "c", "when": {"campaign": {"present": True}}},
        {"rule_id": "all", "team": "d"},
    ]
)


@pytest.mark.parametrize(
    ("fields", "rule_id"),
    [
        ({}, "all"),
        ({"priority": Priority.HOT}, "hot"),
        ({"priority": Priority.HOT, "is_returning": True, "country": "CN"}, "hot"),
        ({"priority": Priority.WARM, "is_returning": True, "country": "CN"}, "returning"),
        ({"country": "CN"}, "greater-china"),
        ({"country": "HK", "budget": 500_000}, "greater-china"),
        ({"country": "US", "budget": 500_000}, "big-budget"),
        ({"budget": 100_000}, "big-budget"),
        ({"budget": 99_999.99}, "all"),
        ({"company_size": 49, "industry": "saas"}, "small-saas"),
        ({"company_size": 50, "industry": "saas"}, "all"),
        ({"company_size": 10, "industry": "retail"}, "all"),
        ({"industry": "saas"}, "all"),  # lt does not hold for a missing value
        ({"campaign": "spring"}, "campaign"),
        ({"campaign": None}, "all"),
    ],
)
def test_the_first_matching_rule_wins(fields: dict[str, Any], rule_id: str) -> None:
    assert matching_rule(make_lead(**fields), RULES).rule_id == rule_id


def test_condition_operators() -> None:
    assert Condition(gte=10).holds(10)
    assert not Condition(gte=10).holds(9.5)
    assert not Condition(gte=10).holds(None)
    assert not Condition(gte=10).holds("11")
    assert Condition(lt=10).holds(9)
    assert not Condition(lt=10).holds(10)
    assert not Condition(lt=10).holds(None)
    assert Condition.model_validate({"in": ["a", "b"]}).holds("b")
    assert not Condition.model_validate({"in": ["a", "b"]}).holds("c")
    assert Condition(present=True).holds(0)
    assert not Condition(present=True).holds(None)
    assert Condition(gte=1, lt=5).holds(3)
    assert not Condition(gte=1, lt=5).holds(5)


def test_teams_involved_is_sorted_and_unique() -> None:
    leads = [
        make_lead("1", country="CN"),
        make_lead("2", priority=Priority.HOT),
        make_lead("3"),
        make_lead("4", country="HK"),
    ]
    assert teams_involved(leads, RULES) == ["a", "c", "d"]


# --- routing examples ------------------------------------------------------------------


def one_team(reps: list[Rep], version: str = "v1") -> RuleSet:
    return RuleSet(
        version=version,
        teams=(Team(team_id="sales", manager_id="boss", reps=tuple(reps)),),
        rules=(Rule(rule_id="all", team="sales"),),
    )


def owners(decisions: list[Decision]) -> list[str | None]:
    return [d.owner_id for d in decisions]


def test_round_robin_walks_reps_in_id_order_and_wraps() -> None:
    rules = one_team([Rep(rep_id=r) for r in ("r3", "r1", "r2")])
    leads = [make_lead(str(i)) for i in range(7)]
    decisions, state = plan(leads, rules, RoutingState(), NOW)
    assert owners(decisions) == ["r1", "r2", "r3", "r1", "r2", "r3", "r1"]
    assert state.cursors == {"sales": "r1"}
    assert state.load == {"r1": 3, "r2": 2, "r3": 2}
    assert all(d.kind is AssignmentKind.INITIAL for d in decisions)
    assert all(d.strategy is Strategy.ROUND_ROBIN for d in decisions)


def test_away_left_and_full_reps_are_skipped_with_their_reason() -> None:
    rules = one_team(
        [
            Rep(rep_id="r1", status=RepStatus.AWAY),
            Rep(rep_id="r2", status=RepStatus.LEFT),
            Rep(rep_id="r3", capacity=2),
            Rep(rep_id="r4"),
        ]
    )
    decision = decide(make_lead(), rules, RoutingState(load={"r3": 2}), NOW)
    assert decision.owner_id == "r4"
    assert [(c.rep_id, c.skipped) for c in decision.candidates] == [
        ("r1", "away"),
        ("r2", "left"),
        ("r3", "at_capacity"),
        ("r4", None),
    ]
    reason = decision.reason()
    assert "rule all@v1" in reason
    for part in ("r1 (away)", "r2 (left)", "r3 (at_capacity)", "r4 (eligible)", "chose r4"):
        assert part in reason


def test_eligibility() -> None:
    assert eligibility(Rep(rep_id="r", capacity=1), 0) is None
    assert eligibility(Rep(rep_id="r", capacity=1), 1) == "at_capacity"
    assert eligibility(Rep(rep_id="r", capacity=0), 0) == "at_capacity"
    assert eligibility(Rep(rep_id="r", status=RepStatus.AWAY), 0) == "away"
    assert eligibility(Rep(rep_id="r", status=RepStatus.LEFT), 0) == "left"


def test_nobody_eligible_pools_the_lead_and_leaves_the_state_alone() -> None:
    rules = one_team(
        [
            Rep(rep_id="r1", status=RepStatus.AWAY),
            Rep(rep_id="r2", capacity=0),
            Rep(rep_id="r3", status=RepStatus.LEFT),
        ]
    )
    state = RoutingState(cursors={"sales": "r2"}, load={"r1": 4})
    decision = decide(make_lead(priority=Priority.HOT), rules, state, NOW)
    assert decision.owner_id is None
    assert decision.strategy is Strategy.POOL
    assert decision.kind is AssignmentKind.POOLED
    assert {c.rep_id for c in decision.candidates} == {"r1", "r2", "r3"}
    assert apply(state, decision) == state
    assert "no eligible rep: pooled" in decision.reason()
    event = assigned_event(decision, make_lead(priority=Priority.HOT))
    assert event.owner_id is None
    assert event.kind is AssignmentKind.POOLED
    assert event.strategy is Strategy.POOL
    assert event.team_id == "sales"


def test_an_empty_team_pools() -> None:
    decision = decide(make_lead(), one_team([]), RoutingState(), NOW)
    assert decision.owner_id is None
    assert decision.kind is AssignmentKind.POOLED
    assert "considered: none" in decision.reason()


def test_the_rotation_resumes_after_the_last_rep_when_the_roster_changes() -> None:
    reps = [Rep(rep_id=r) for r in ("a", "b", "c", "d")]
    decisions, state = plan([make_lead("1"), make_lead("2")], one_team(reps), RoutingState(), NOW)
    assert owners(decisions) == ["a", "b"]
    # A rep added after the cursor is next; one added before it waits for the wrap.
    assert decide(make_lead("3"), one_team([*reps, Rep(rep_id="bb")]), state, NOW).owner_id == "bb"
    assert decide(make_lead("3"), one_team([Rep(rep_id="0"), *reps]), state, NOW).owner_id == "c"
    # Removing the next rep, or the rep served last, moves on rather than resetting.
    assert decide(make_lead("3"), one_team([reps[0], reps[1], reps[3]]), state, NOW).owner_id == (
        "d"
    )
    assert decide(make_lead("3"), one_team([reps[0], reps[2], reps[3]]), state, NOW).owner_id == (
        "c"
    )


def test_the_assigned_event_is_deterministic_and_explains_itself() -> None:
    rules = one_team([Rep(rep_id="r1", status=RepStatus.AWAY), Rep(rep_id="r2")], version="2025-03")
    lead = make_lead("lead-9", previous_owner_id="r0", priority=Priority.WARM)
    decision = decide(lead, rules, RoutingState(), NOW)
    event = assigned_event(decision, lead)
    again = assigned_event(decide(lead, rules, RoutingState(), NOW), lead)
    assert event == again
    assert event.assignment_id != event.event_id
    assert (event.owner_id, event.team_id, event.rule_id, event.rule_version) == (
        "r2",
        "sales",
        "all",
        "2025-03",
    )
    assert (event.kind, event.strategy, event.priority) == (
        AssignmentKind.INITIAL,
        Strategy.ROUND_ROBIN,
        Priority.WARM,
    )
    assert event.previous_owner_id == "r0"
    assert event.reason == decision.reason()
    assert "r1 (away)" in event.reason
    other = assigned_event(decide(make_lead("lead-10"), rules, RoutingState(), NOW), lead)
    assert other.assignment_id == event.assignment_id  # keyed by the lead, not the decision
    assert (
        assigned_event(decide(make_lead("lead-10"), rules, RoutingState(), NOW), make_lead("x"))
    ).assignment_id != event.assignment_id


# --- properties over random rosters and lead streams --------------------------------------

TEAMS = ("north", "south", "east")
statuses = st.sampled_from(list(RepStatus))


@st.composite
def rosters(draw: st.DrawFn, *, stable: bool = False, ample: int = 0) -> RuleSet:
    teams = []
    n_teams = draw(st.integers(1, len(TEAMS)))
    for t in TEAMS[:n_teams]:
        ids = draw(st.sets(st.integers(0, 99), min_size=1, max_size=8))
        reps = tuple(
            Rep(
                rep_id=f"{t}-{i:02d}",
                status=RepStatus.ACTIVE if stable else draw(statuses),
                capacity=ample if stable else draw(st.integers(0, 6)),
            )
            for i in draw(st.permutations(sorted(ids)))  # the roster's order must not matter
        )
        teams.append(Team(team_id=t, manager_id=f"mgr-{t}", reps=reps))
    team_ids = [t.team_id for t in teams]
    rules = [
        {"rule_id": "hot", "team": team_ids[-1], "when": {"priority": {"equals": "hot"}}},
        {"rule_id": "cn", "team": team_ids[0], "when": {"country": {"in": ["CN"]}}},
        {"rule_id": "all", "team": team_ids[len(team_ids) // 2]},
    ]
    return RuleSet(
        version=f"v{draw(st.integers(1, 9))}",
        teams=tuple(teams),
        rules=tuple(Rule.model_validate(r) for r in rules),
    )


lead_streams = st.lists(
    st.builds(
        lambda i, priority, country: make_lead(f"lead-{i}", priority=priority, country=country),
        st.integers(0, 10**6),
        st.sampled_from(list(Priority)),
        st.sampled_from([None, "CN", "US"]),
    ),
    max_size=40,
)


def initial_loads(rules: RuleSet) -> st.SearchStrategy[dict[str, int]]:
    rep_ids = [r.rep_id for t in rules.teams for r in t.reps]
    return st.fixed_dictionaries({}, optional={r: st.integers(0, 6) for r in rep_ids})


@settings(max_examples=200)
@given(st.data())
def test_never_assigns_to_an_ineligible_rep_and_pools_only_when_nobody_is(
    data: st.DataObject,
) -> None:
    rules = data.draw(rosters())
    loads = data.draw(initial_loads(rules))
    leads = data.draw(lead_streams)
    start = RoutingState(load=loads)
    decisions, final = plan(leads, rules, start, NOW)
    assert len(decisions) == len(leads)

    # Recompute the load each decision saw from the starting load and earlier decisions.
    load = Counter(loads)
    for lead, decision in zip(leads, decisions, strict=True):
        rule = matching_rule(lead, rules)
        team = rules.team(rule.team)
        reps = {r.rep_id: r for r in team.reps}
        assert decision.team_id == team.team_id
        assert decision.rule_id == rule.rule_id
        assert decision.rule_version == rules.version
        assert decision.manager_id == team.manager_id
        if decision.owner_id is not None:
            rep = reps[decision.owner_id]
            assert rep.status is RepStatus.ACTIVE
            assert load[rep.rep_id] < rep.capacity
            assert decision.kind is AssignmentKind.INITIAL
            assert decision.strategy is rule.strategy
            # Every candidate before the owner was skipped, for its true reason.
            *skipped, chosen = decision.candidates
            assert chosen.rep_id == decision.owner_id
            assert chosen.skipped is None
            load[rep.rep_id] += 1
        else:
            assert decision.strategy is Strategy.POOL
            assert decision.kind is AssignmentKind.POOLED
            skipped = list(decision.candidates)
            assert {c.rep_id for c in skipped} == set(reps)
            assert all(eligibility(r, load[r.rep_id]) is not None for r in team.reps)
        for c in skipped:
            assert c.skipped == eligibility(reps[c.rep_id], load[c.rep_id])
            assert c.skipped is not None
        # (e) the reason names the rule, its version and every skipped candidate.
        reason = decision.reason()
        assert f"rule {rule.rule_id}@{rules.version}" in reason
        for c in skipped:
            assert f"{c.rep_id} ({c.skipped})" in reason
    assert {k: v for k, v in final.load.items() if v} == {k: v for k, v in load.items() if v}


@settings(max_examples=200)
@given(st.data())
def test_round_robin_is_fair_over_every_prefix_with_a_stable_roster(data: st.DataObject) -> None:
    leads = data.draw(lead_streams)
    rules = data.draw(rosters(stable=True, ample=len(leads) + 1))
    decisions, _ = plan(leads, rules, RoutingState(), NOW)
    counts: dict[str, Counter[str]] = {t.team_id: Counter() for t in rules.teams}
    for decision in decisions:
        assert decision.owner_id is not None
        counts[decision.team_id][decision.owner_id] += 1
        for team in rules.teams:
            served = [counts[team.team_id][r.rep_id] for r in team.reps]
            assert max(served) - min(served) <= 1, (team.team_id, served)


@settings(max_examples=200)
@given(st.data())
def test_the_rotation_continues_after_the_last_rep_served_when_the_roster_changes(
    data: st.DataObject,
) -> None:
    ids = sorted(data.draw(st.sets(st.integers(0, 50), min_size=2, max_size=8)))
    reps = [Rep(rep_id=f"r{i:02d}", capacity=1000) for i in ids]
    served = data.draw(st.integers(1, 20))
    _, state = plan([make_lead(str(i)) for i in range(served)], one_team(reps), RoutingState(), NOW)
    cursor = state.cursors["sales"]
    assert cursor == reps[(served - 1) % len(reps)].rep_id

    added = data.draw(st.sets(st.integers(0, 50), max_size=3))
    removed = data.draw(st.sets(st.sampled_from([r.rep_id for r in reps]), max_size=len(reps) - 1))
    new_ids = sorted({r.rep_id for r in reps} - removed | {f"r{i:02d}" for i in added})
    new_roster = one_team([Rep(rep_id=r, capacity=1000) for r in new_ids])
    decision = decide(make_lead("next"), new_roster, state, NOW)
    after = [r for r in new_ids if r > cursor]
    expected = after[0] if after else new_ids[0]
    assert decision.owner_id == expected


@settings(max_examples=100)
@given(rosters(), lead_streams)
def test_apply_only_moves_the_cursor_to_the_owner_and_grows_their_load(
    rules: RuleSet, leads: list[LeadAccepted]
) -> None:
    state = RoutingState()
    for lead in leads:
        decision = decide(lead, rules, state, NOW)
        after = apply(state, decision)
        if decision.owner_id is None:
            assert after == state
        else:
            assert after.cursors == {**state.cursors, decision.team_id: decision.owner_id}
            assert after.load[decision.owner_id] == state.load.get(decision.owner_id, 0) + 1
            assert {k: v for k, v in after.load.items() if k != decision.owner_id} == {
                k: v for k, v in state.load.items() if k != decision.owner_id
            }
        state = after
