"""``decide(lead, rules, state, now) -> Decision`` and how a decision changes the state.

Round-robin walks a team's reps in rep-id order, starting after the last rep served
(the cursor), and takes the first eligible one. Because the cursor names a rep rather
than an index, adding or removing a rep neither resets nor skews the rotation. When no
rep is eligible the lead goes to the team's pool (owner None, strategy ``pool``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import datetime

from leadloop.events import AssignmentKind, LeadAccepted, RepStatus, Strategy
from leadloop_assignment.domain.rules import Rep, RuleSet, Team, matching_rule

__all__ = ["Candidate", "Decision", "RoutingState", "apply", "decide", "eligibility"]


@dataclass(frozen=True, slots=True)
class RoutingState:
    """What decisions depend on besides the rules: cursors and open-lead load."""

    #: team_id → the rep served last.
    cursors: Mapping[str, str] = field(default_factory=dict)
    #: rep_id → open leads owned.
    load: Mapping[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Candidate:
    rep_id: str
    #: None when eligible; otherwise why the rep was skipped.
    skipped: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    lead_id: str
    owner_id: str | None
    team_id: str
    manager_id: str | None
    rule_id: str
    rule_version: str
    strategy: Strategy
    kind: AssignmentKind
    candidates: tuple[Candidate, ...]
    decided_at: datetime

    def reason(self) -> str:
        """Human-readable: which rule, which candidates and why each was skipped."""
        considered = ", ".join(
            f"{c.rep_id} ({c.skipped})" if c.skipped else f"{c.rep_id} (eligible)"
            for c in self.candidates
        )
        chosen = f"chose {self.owner_id}" if self.owner_id else "no eligible rep: pooled"
        return (
            f"rule {self.rule_id}@{self.rule_version} → team {self.team_id} by "
            f"{self.strategy.value}; {chosen}; considered: {considered or 'none'}"
        )


def eligibility(rep: Rep, load: int) -> str | None:
    """None when the rep may take a new lead, else the reason they may not."""
    if rep.status is RepStatus.LEFT:
        return "left"
    if rep.status is RepStatus.AWAY:
        return "away"
    if load >= rep.capacity:
        return "at_capacity"
    return None


def decide(lead: LeadAccepted, rules: RuleSet, state: RoutingState, now: datetime) -> Decision:
    rule = matching_rule(lead, rules)
    team = rules.team(rule.team)
    order = _rotation(team, state.cursors.get(team.team_id))
    candidates: list[Candidate] = []
    owner: str | None = None
    for rep in order:
        skipped = eligibility(rep, state.load.get(rep.rep_id, 0))
        candidates.append(Candidate(rep.rep_id, skipped))
        if skipped is None:
            owner = rep.rep_id
            break
    return Decision(
        lead_id=lead.lead_id,
        owner_id=owner,
        team_id=team.team_id,
        manager_id=team.manager_id,
        rule_id=rule.rule_id,
        rule_version=rules.version,
        strategy=rule.strategy if owner else Strategy.POOL,
        kind=AssignmentKind.INITIAL if owner else AssignmentKind.POOLED,
        candidates=tuple(candidates),
        decided_at=now,
    )


def apply(state: RoutingState, decision: Decision) -> RoutingState:
    """The state after a decision: the cursor moves to the owner, whose load grows."""
    if decision.owner_id is None:
        return state
    return replace(
        state,
        cursors={**state.cursors, decision.team_id: decision.owner_id},
        load={**state.load, decision.owner_id: state.load.get(decision.owner_id, 0) + 1},
    )


def _rotation(team: Team, last: str | None) -> list[Rep]:
    reps = sorted(team.reps, key=lambda r: r.rep_id)
    if last is None:
        return reps
    after = [r for r in reps if r.rep_id > last]
    return after + [r for r in reps if r.rep_id <= last]
