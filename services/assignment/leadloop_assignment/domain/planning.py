"""Planning a batch: decide each lead in order, threading the state through.

Pure: ``state_scope`` says which state a batch may read and change (the teams whose
cursor rows are locked, and the load, intake and weighted counts of their reps); given
that state, loaded under lock, ``plan`` returns the decisions and the state to save.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime

from leadloop.events import LeadAccepted, LeadAssigned, Strategy, deterministic_id
from leadloop_assignment.domain.routing import (
    Decision,
    RoutingState,
    apply,
    decide,
    intake_day,
    roster_id,
)
from leadloop_assignment.domain.rules import RuleSet, matching_rules

__all__ = [
    "StateScope",
    "assigned_event",
    "full_scope",
    "plan",
    "state_scope",
    "teams_involved",
]


@dataclass(frozen=True, slots=True)
class StateScope:
    """The state a batch's decisions may read and change."""

    #: Sorted, so that every worker takes the cursor row locks in one order.
    teams: tuple[str, ...]
    reps: tuple[str, ...]
    #: (rep_id, day in the rep's team's time zone) whose intake counts are needed.
    intake: tuple[tuple[str, date], ...]
    #: (team_id, roster_id) whose weighted counts are needed.
    rosters: tuple[tuple[str, str], ...]


def teams_involved(leads: Sequence[LeadAccepted], rules: RuleSet) -> list[str]:
    """Teams whose state a batch may read or change, sorted so locks are taken in one
    order: the team of every matching rule up to the first that always applies, and the
    team of a returning lead's previous owner where a sticky rule may send it."""
    teams: set[str] = set()
    for lead in leads:
        for rule in matching_rules(lead, rules):
            if rule.strategy is not Strategy.STICKY:
                assert rule.team is not None
                teams.add(rule.team)
                break
            found = rules.rep(lead.previous_owner_id) if lead.previous_owner_id else None
            if found is not None:
                teams.add(found[0].team_id)
    return sorted(teams)


def state_scope(leads: Sequence[LeadAccepted], rules: RuleSet, now: datetime) -> StateScope:
    teams = [rules.team(t) for t in teams_involved(leads, rules)]
    return StateScope(
        teams=tuple(t.team_id for t in teams),
        reps=tuple(r.rep_id for t in teams for r in t.reps),
        intake=tuple((r.rep_id, intake_day(t, now)) for t in teams for r in t.reps),
        rosters=tuple((t.team_id, roster_id(t)) for t in teams),
    )


def full_scope(rules: RuleSet, now: datetime) -> StateScope:
    """All of the rule set's state (moves may send a lead to any team)."""
    teams = sorted(rules.teams, key=lambda t: t.team_id)
    return StateScope(
        teams=tuple(t.team_id for t in teams),
        reps=tuple(r.rep_id for t in teams for r in t.reps),
        intake=tuple((r.rep_id, intake_day(t, now)) for t in teams for r in t.reps),
        rosters=tuple((t.team_id, roster_id(t)) for t in teams),
    )


def plan(
    leads: Sequence[LeadAccepted], rules: RuleSet, state: RoutingState, now: datetime
) -> tuple[list[Decision], RoutingState]:
    decisions = []
    for lead in leads:
        decision = decide(lead, rules, state, now)
        state = apply(state, decision)
        decisions.append(decision)
    return decisions, state


def assigned_event(
    decision: Decision,
    lead: LeadAccepted,
    *,
    assignment_id: str | None = None,
    sequence: int = 0,
) -> LeadAssigned:
    """The ``leads.assigned`` event of a decision. A first decision (``sequence`` 0) names
    the lead's previous owner from ingest (a returning customer's); a move names the rep
    it took the lead from."""
    if assignment_id is None:
        assignment_id = deterministic_id("assignment", lead.lead_id, decision.kind.value)
    return LeadAssigned(
        event_id=deterministic_id("leads.assigned", assignment_id),
        occurred_at=decision.decided_at,
        assignment_id=assignment_id,
        lead_id=lead.lead_id,
        owner_id=decision.owner_id,
        team_id=decision.team_id,
        rule_id=decision.rule_id,
        rule_version=decision.rule_version,
        strategy=decision.strategy,
        kind=decision.kind,
        previous_owner_id=decision.released if sequence else lead.previous_owner_id,
        reason=decision.reason(),
        lead_occurred_at=lead.occurred_at,
        assigned_at=decision.decided_at,
        priority=lead.priority,
        sequence=sequence,
    )
