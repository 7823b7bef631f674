"""What a replay reads and what it produces: plain values, no I/O.

``History`` is the stored past of a time range: the accepted leads (each with the moment
assignment first decided it, which is when a candidate rule set would have decided it
too), the CRM's touches and stage changes, and the roster. ``Outcome`` is one side of the
comparison — what actually happened, read back from assignment's and sla-monitor's
tables, or what the replay says a configuration would have done — as a list of
decisions and ladder steps, both keyed by the deterministic ids the services use.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from leadloop.events import (
    ActivityKind,
    EscalationAction,
    EscalationKind,
    LeadAccepted,
    RepUpdated,
    Stage,
)

__all__ = ["Arrival", "Decided", "History", "Outcome", "StageMove", "Step", "Touch"]


@dataclass(frozen=True, slots=True)
class Arrival:
    """An accepted lead and the moment assignment first decided it."""

    lead: LeadAccepted
    at: datetime


@dataclass(frozen=True, slots=True)
class Touch:
    """A ``crm.activities`` event."""

    event_id: str
    lead_id: str
    rep_id: str
    kind: ActivityKind
    at: datetime
    next_followup_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StageMove:
    """A ``crm.stage-changes`` event."""

    event_id: str
    lead_id: str
    rep_id: str
    stage: Stage
    at: datetime


@dataclass(frozen=True, slots=True)
class History:
    arrivals: Sequence[Arrival]
    touches: Sequence[Touch] = ()
    stages: Sequence[StageMove] = ()
    #: The roster as crm.reps last described it (assignment and sla-monitor keep only
    #: the latest entry per rep, not its history).
    roster: Sequence[RepUpdated] = ()
    #: The range replayed: [start, end).
    start: datetime | None = None
    end: datetime | None = None


@dataclass(frozen=True, slots=True)
class Decided:
    """One assignment decision (a row of ``assignments``)."""

    assignment_id: str
    lead_id: str
    #: 0 for the first decision, n for the lead's n-th move.
    sequence: int
    kind: str
    owner_id: str | None
    team_id: str
    rule_id: str
    previous_owner_id: str | None
    at: datetime


@dataclass(frozen=True, slots=True)
class Step:
    """One ladder step (a row of ``escalations``): fired, or resolved by a touch."""

    escalation_id: str
    status: str
    lead_id: str
    kind: EscalationKind
    level: int
    action: EscalationAction
    at: datetime


@dataclass(slots=True)
class Outcome:
    decisions: list[Decided] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
