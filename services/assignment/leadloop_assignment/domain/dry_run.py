"""Dry run of a proposed rule set over past leads, before it is switched on.

The leads are replayed in the order they were accepted, each decided at its own
acceptance time by ``decide`` from a fresh routing state (rotation cursors and counts
start empty, as after a rule-set switch with a new roster). Open-lead counts follow the
replay itself: a lead the replay assigned counts against its rep until the time the lead
was actually won or lost, so capacity limits act as they would have. The result is the
distribution per team, rep and rule, next to what the rules in force actually decided
for the same leads.
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime

from leadloop.events import LeadAccepted
from leadloop_assignment.domain.routing import RoutingState, apply, decide
from leadloop_assignment.domain.rules import RuleSet

__all__ = ["Distribution", "PastLead", "replay"]

#: (team_id, rep_id or None for the pool).
Place = tuple[str, str | None]


@dataclass(frozen=True, slots=True)
class PastLead:
    lead: LeadAccepted
    #: Where the rules in force put it first (team, owner or None when pooled).
    actual: Place
    #: When it was won or lost (None: still open).
    closed_at: datetime | None = None


@dataclass(slots=True)
class Distribution:
    leads: int = 0
    proposed: Counter[Place] = field(default_factory=Counter)
    actual: Counter[Place] = field(default_factory=Counter)
    rules: Counter[str] = field(default_factory=Counter)
    #: Leads the proposed rules place differently from the rules in force.
    changed: int = 0

    def teams(self, which: Counter[Place]) -> Counter[str]:
        out: Counter[str] = Counter()
        for (team, _), n in which.items():
            out[team] += n
        return out


def replay(past: Sequence[PastLead], rules: RuleSet) -> Distribution:
    dist = Distribution()
    state = RoutingState()
    # (closed_at, seq, rep): replayed owners to release when their lead closed.
    closing: list[tuple[datetime, int, str]] = []
    for seq, p in enumerate(sorted(past, key=lambda p: (p.lead.accepted_at, p.lead.lead_id))):
        now = p.lead.accepted_at
        while closing and closing[0][0] <= now:
            _, _, rep = heapq.heappop(closing)
            state = replace(state, load={**state.load, rep: max(state.load.get(rep, 0) - 1, 0)})
        decision = decide(p.lead, rules, state, now)
        state = apply(state, decision)
        place = (decision.team_id, decision.owner_id)
        dist.leads += 1
        dist.proposed[place] += 1
        dist.actual[p.actual] += 1
        dist.rules[decision.rule_id] += 1
        dist.changed += place != p.actual
        if decision.owner_id is not None and p.closed_at is not None:
            heapq.heappush(closing, (p.closed_at, seq, decision.owner_id))
    return dist
