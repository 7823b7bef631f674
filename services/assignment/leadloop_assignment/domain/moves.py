"""Moves after the first decision: what happens to leads already decided.

- An **escalation** whose action is ``reassign`` gives the lead to another rep of its
  team by the team's rotation (the lead's rule's strategy when that is a rotation or
  ``direct``, else round-robin); ``return_to_pool`` takes it from the owner into the
  team's pool. Either way the rep it was taken from cools down: they do not get this
  lead back for the rule set's ``reassign_cooldown_seconds``.
- A rep who **left** has every open lead decided again by the rule set, exactly as a
  new lead would be (the rep is no longer eligible, so the rules choose someone else).
- The **pool** is drained hottest first, then oldest: each waiting lead goes to an
  eligible rep of its team as soon as there is one, and stays otherwise.

A lead that gets an owner is ``reassigned`` (``previous_owner_id``: the rep it was taken
from, or null when it came from the pool); a lead that loses its owner without getting
another is ``reclaimed`` (owner null: it waits in the pool). ``plan_moves`` runs them in
that order — escalations, departures, then the pool — so a lead reclaimed by an
escalation can leave the pool in the same pass, to someone other than the rep cooling
down.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta

from leadloop.events import (
    AssignmentKind,
    EscalationAction,
    LeadAccepted,
    LeadAssigned,
    Priority,
    RepStatus,
    Strategy,
    deterministic_id,
)
from leadloop_assignment.domain.planning import assigned_event
from leadloop_assignment.domain.routing import (
    ROTATIONS,
    Decision,
    RoutingState,
    apply,
    decide,
    intake_day,
    place,
)
from leadloop_assignment.domain.rules import Rule, RuleSet, Team

__all__ = [
    "PRIORITY_RANK",
    "HeldLead",
    "MovePlan",
    "Takeback",
    "departed_reps",
    "move_events",
    "plan_moves",
]

#: Pool order: hottest first (then oldest, by acceptance time).
PRIORITY_RANK = {Priority.HOT: 0, Priority.WARM: 1, Priority.COLD: 2}


@dataclass(frozen=True, slots=True)
class HeldLead:
    """An open lead assignment has decided: its team, rule and current owner."""

    lead: LeadAccepted
    team_id: str
    rule_id: str
    #: None: waiting in the team's pool.
    owner_id: str | None
    #: Moves so far (the next move's assignment id counts from it).
    moves: int = 0


@dataclass(frozen=True, slots=True)
class Takeback:
    """An escalation step that moves a lead away from its owner."""

    lead_id: str
    #: The owner the escalation was raised against: a lead that has moved on since (or
    #: closed) is left alone.
    owner_id: str | None
    action: EscalationAction
    escalation_id: str


@dataclass(frozen=True, slots=True)
class MovePlan:
    decisions: list[Decision]
    state: RoutingState
    #: (lead_id, rep_id, until): reps who may not get the lead back before ``until``.
    cooldowns: list[tuple[str, str, datetime]]
    #: Escalations that moved nothing, with why (stale owner, closed lead).
    ignored: list[tuple[str, str]]


def departed_reps(rules: RuleSet) -> set[str]:
    """Reps marked ``left`` (their open leads are decided again)."""
    return {r.rep_id for t in rules.teams for r in t.reps if r.status is RepStatus.LEFT}


def plan_moves(
    *,
    rules: RuleSet,
    state: RoutingState,
    now: datetime,
    takebacks: Sequence[Takeback] = (),
    held: Iterable[HeldLead] = (),
) -> MovePlan:
    """Every move due now. ``held`` holds the open leads the moves may touch: those the
    escalations name, those of departed reps, and the pool (any order; the pool is
    ordered here)."""
    leads = {h.lead.lead_id: h for h in held}
    decisions: list[Decision] = []
    cooldowns: list[tuple[str, str, datetime]] = []
    ignored: list[tuple[str, str]] = []
    until = now + timedelta(seconds=rules.reassign_cooldown_seconds)

    def record(d: Decision) -> None:
        nonlocal state
        state = apply(state, d)
        decisions.append(d)
        h = leads[d.lead_id]
        leads[d.lead_id] = replace(h, owner_id=d.owner_id, team_id=d.team_id, rule_id=d.rule_id)

    for tb in takebacks:
        h = leads.get(tb.lead_id)
        if h is None:
            ignored.append((tb.escalation_id, "lead closed or unknown"))
            continue
        if h.owner_id is None or h.owner_id != tb.owner_id:
            ignored.append((tb.escalation_id, "lead has moved on since"))
            continue
        old = h.owner_id
        cooldowns.append((h.lead.lead_id, old, until))
        cooling = state.cooling.get(h.lead.lead_id, frozenset()) | {old}
        state = replace(state, cooling={**state.cooling, h.lead.lead_id: cooling})
        cause = f"escalation {tb.action.value} from {old}"
        if tb.action is EscalationAction.RETURN_TO_POOL:
            record(_reclaimed(h, rules, now, cause))
        else:
            record(_in_team(h, rules, state, now, cause, released=old))

    for rep_id in sorted(departed_reps(rules)):
        for h in sorted(_owned_by(leads.values(), rep_id), key=_pool_order):
            d = decide(h.lead, rules, state, now)
            record(
                replace(
                    d,
                    kind=AssignmentKind.REASSIGNED if d.owner_id else AssignmentKind.RECLAIMED,
                    released=rep_id,
                    cause=f"{rep_id} left",
                )
            )

    pooled = sorted((h for h in leads.values() if h.owner_id is None), key=_pool_order)
    for h in pooled:
        d = _in_team(h, rules, state, now, "from the pool", released=None)
        if d.owner_id is not None:
            record(d)
    return MovePlan(decisions, state, cooldowns, ignored)


def move_events(decisions: Sequence[Decision], held: Iterable[HeldLead]) -> list[LeadAssigned]:
    """The ``leads.assigned`` events of moves, numbered per lead from its move count."""
    by_id = {h.lead.lead_id: h for h in held}
    moves = {lead_id: h.moves for lead_id, h in by_id.items()}
    events = []
    for d in decisions:
        moves[d.lead_id] += 1
        n = moves[d.lead_id]
        assignment_id = deterministic_id("assignment", d.lead_id, "move", str(n))
        lead = by_id[d.lead_id].lead
        events.append(assigned_event(d, lead, assignment_id=assignment_id, sequence=n))
    return events


def _owned_by(held: Iterable[HeldLead], rep_id: str) -> list[HeldLead]:
    return [h for h in held if h.owner_id == rep_id]


def _pool_order(h: HeldLead) -> tuple[int, datetime, str]:
    return PRIORITY_RANK[h.lead.priority], h.lead.accepted_at, h.lead.lead_id


def _team_rule(h: HeldLead, rules: RuleSet, team: Team) -> tuple[Rule, Strategy]:
    """The lead's rule and strategy when they still choose within its team; otherwise
    the team's round-robin."""
    rule = next((r for r in rules.rules if r.rule_id == h.rule_id), None)
    keeps = rule is not None and rule.team == team.team_id
    if (
        rule is not None
        and keeps
        and (rule.strategy in ROTATIONS or rule.strategy is Strategy.DIRECT)
    ):
        return rule, rule.strategy
    return Rule(rule_id=h.rule_id, team=team.team_id), Strategy.ROUND_ROBIN


def _in_team(
    h: HeldLead,
    rules: RuleSet,
    state: RoutingState,
    now: datetime,
    cause: str,
    *,
    released: str | None,
) -> Decision:
    team = next((t for t in rules.teams if t.team_id == h.team_id), None)
    if team is None:
        # The team is gone from the rule set: the rules decide afresh.
        d = decide(h.lead, rules, state, now)
        kind = AssignmentKind.REASSIGNED if d.owner_id else AssignmentKind.RECLAIMED
        return replace(d, kind=kind, released=released, cause=cause)
    rule, strategy = _team_rule(h, rules, team)
    owner, candidates, roster = place(h.lead.lead_id, rule, team, strategy, state, now)
    return Decision(
        lead_id=h.lead.lead_id,
        owner_id=owner,
        team_id=team.team_id,
        manager_id=team.manager_id,
        rule_id=h.rule_id,
        rule_version=rules.version,
        strategy=strategy if owner else Strategy.POOL,
        kind=AssignmentKind.REASSIGNED if owner else AssignmentKind.RECLAIMED,
        candidates=tuple(candidates),
        decided_at=now,
        day=intake_day(team, now) if owner else None,
        roster=roster if owner else None,
        released=released,
        cause=cause,
    )


def _reclaimed(h: HeldLead, rules: RuleSet, now: datetime, cause: str) -> Decision:
    team = next((t for t in rules.teams if t.team_id == h.team_id), None)
    return Decision(
        lead_id=h.lead.lead_id,
        owner_id=None,
        team_id=h.team_id,
        manager_id=team.manager_id if team else None,
        rule_id=h.rule_id,
        rule_version=rules.version,
        strategy=Strategy.POOL,
        kind=AssignmentKind.RECLAIMED,
        candidates=(),
        decided_at=now,
        released=h.owner_id,
        cause=cause,
    )
