"""Planning a batch: decide each lead in order, threading the state through.

Pure: given the state loaded under lock, returns the decisions and the state to save.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from leadloop.events import LeadAccepted, LeadAssigned, deterministic_id
from leadloop_assignment.domain.routing import Decision, RoutingState, apply, decide
from leadloop_assignment.domain.rules import RuleSet, matching_rule

__all__ = ["assigned_event", "plan", "teams_involved"]


def teams_involved(leads: Sequence[LeadAccepted], rules: RuleSet) -> list[str]:
    """Teams whose state a batch may change, sorted so locks are taken in one order."""
    return sorted({matching_rule(lead, rules).team for lead in leads})


def plan(
    leads: Sequence[LeadAccepted], rules: RuleSet, state: RoutingState, now: datetime
) -> tuple[list[Decision], RoutingState]:
    decisions = []
    for lead in leads:
        decision = decide(lead, rules, state, now)
        state = apply(state, decision)
        decisions.append(decision)
    return decisions, state


def assigned_event(decision: Decision, lead: LeadAccepted) -> LeadAssigned:
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
        previous_owner_id=lead.previous_owner_id,
        reason=decision.reason(),
        lead_occurred_at=lead.occurred_at,
        assigned_at=decision.decided_at,
        priority=lead.priority,
    )
