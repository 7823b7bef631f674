"""Facts: the part of each event that the metrics need, in a compact, storable form.

Every applied event is stored as its fact (``metric_applied_events.fact``), so the
metrics can be recomputed by replaying facts in application order. A fact holds ids,
enum values, times and amounts only: no personal data.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from datetime import date, datetime
from typing import Any

from leadloop.events import (
    ActivityKind,
    ActivityRecorded,
    AssignmentKind,
    EscalationRaised,
    EscalationStatus,
    IngestOutcome,
    IngestOutcomeRecorded,
    LeadAccepted,
    LeadAssigned,
    SatisfactionRecorded,
    StageChanged,
)

__all__ = [
    "Accepted",
    "Assigned",
    "Escalated",
    "Fact",
    "Outcome",
    "Rated",
    "Silenced",
    "StageMoved",
    "Touched",
    "fact_from_json",
    "fact_of",
    "fact_to_json",
]


@dataclass(frozen=True, slots=True)
class Outcome:
    """How one leads.raw record ended (ingest.outcomes)."""

    event_id: str
    source: str
    outcome: str
    reason: str | None


@dataclass(frozen=True, slots=True)
class Accepted:
    event_id: str
    lead_id: str
    source: str
    accepted_at: datetime
    priority: str
    #: The customer had won a lead before (a win of this one is a repurchase). Facts
    #: stored before it was kept lack it: False, as their events said.
    customer_won_before: bool = False
    #: The lead's non-personal attributes, for the review (复盘): what sells where.
    #: Facts stored before they were kept lack them: None.
    campaign: str | None = None
    product: str | None = None
    industry: str | None = None
    region: str | None = None
    country: str | None = None
    company_size: int | None = None
    score: int | None = None


@dataclass(frozen=True, slots=True)
class Assigned:
    event_id: str
    lead_id: str
    team: str
    owned: bool
    strategy: str
    kind: str
    assigned_at: datetime
    priority: str
    #: Facts stored before per-rep series were kept have neither (None).
    owner: str | None = None
    previous_owner: str | None = None


@dataclass(frozen=True, slots=True)
class Touched:
    """A CRM activity; ``touch`` is False for a note, which stops no clock."""

    event_id: str
    lead_id: str
    touch: bool
    occurred_at: datetime
    rep: str | None = None


@dataclass(frozen=True, slots=True)
class StageMoved:
    event_id: str
    lead_id: str
    stage: str
    occurred_at: datetime
    amount: float | None
    loss_reason: str | None
    #: When the CRM expects the lead to close (facts stored before it was kept: None).
    expected_close: date | None = None


@dataclass(frozen=True, slots=True)
class Escalated:
    event_id: str
    lead_id: str
    escalation_id: str
    team: str
    policy_id: str
    kind: str
    level: int
    firing: bool
    owner: str | None = None
    breached_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class Rated:
    """A customer's satisfaction score (1-5) of the lead, about ``rep`` when known."""

    event_id: str
    lead_id: str
    score: int
    occurred_at: datetime
    rep: str | None


@dataclass(frozen=True, slots=True)
class Silenced:
    """The metrics' own fact: the lead, owned and open, has not moved since
    ``quiet_since`` for the configured business time (``domain/silence.py``). Its
    event id names the lead and ``quiet_since``, so a sweep repeated finds it applied."""

    event_id: str
    lead_id: str
    quiet_since: datetime


Fact = Outcome | Accepted | Assigned | Touched | StageMoved | Escalated | Rated | Silenced
LeadFact = Accepted | Assigned | Touched | StageMoved | Escalated | Rated | Silenced

_TYPES: dict[str, type[Any]] = {
    t.__name__: t
    for t in (Outcome, Accepted, Assigned, Touched, StageMoved, Escalated, Rated, Silenced)
}
_TIMES = ("accepted_at", "assigned_at", "occurred_at", "breached_at", "quiet_since")
_DATES = ("expected_close",)

EventIn = (
    IngestOutcomeRecorded
    | LeadAccepted
    | LeadAssigned
    | ActivityRecorded
    | StageChanged
    | EscalationRaised
    | SatisfactionRecorded
)


def fact_of(event: EventIn) -> Fact:
    """The fact an event contributes."""
    if isinstance(event, IngestOutcomeRecorded):
        reason = event.reason if event.outcome is IngestOutcome.REJECTED else None
        return Outcome(event.event_id, event.source, event.outcome.value, reason)
    if isinstance(event, LeadAccepted):
        return Accepted(
            event.event_id,
            event.lead_id,
            event.source,
            event.accepted_at,
            event.priority.value,
            event.customer_won_before,
            event.campaign,
            event.product,
            event.industry,
            event.region,
            event.country,
            event.company_size,
            event.score,
        )
    if isinstance(event, LeadAssigned):
        return Assigned(
            event.event_id,
            event.lead_id,
            event.team_id,
            # A pooled decision names a team but no owner: the lead waits in the pool.
            event.owner_id is not None and event.kind is not AssignmentKind.POOLED,
            event.strategy.value,
            event.kind.value,
            event.assigned_at,
            event.priority.value,
            event.owner_id,
            event.previous_owner_id,
        )
    if isinstance(event, ActivityRecorded):
        return Touched(
            event.event_id,
            event.lead_id,
            event.kind is not ActivityKind.NOTE,
            event.occurred_at,
            event.rep_id,
        )
    if isinstance(event, StageChanged):
        return StageMoved(
            event.event_id,
            event.lead_id,
            event.stage.value,
            event.occurred_at,
            event.amount,
            event.loss_reason.value if event.loss_reason is not None else None,
            event.expected_close_date,
        )
    if isinstance(event, SatisfactionRecorded):
        return Rated(event.event_id, event.lead_id, event.score, event.occurred_at, event.rep_id)
    return Escalated(
        event.event_id,
        event.lead_id,
        event.escalation_id,
        event.team_id,
        event.policy_id,
        event.kind.value,
        event.level,
        event.status is EscalationStatus.FIRING,
        event.owner_id,
        event.breached_at,
    )


def fact_to_json(fact: Fact) -> dict[str, Any]:
    out = asdict(fact)
    for key in (*_TIMES, *_DATES):
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    out["type"] = type(fact).__name__
    return out


def fact_from_json(data: dict[str, Any]) -> Fact:
    fields = dict(data)
    cls = _TYPES[fields.pop("type")]
    for key in _TIMES:
        if fields.get(key) is not None:
            fields[key] = datetime.fromisoformat(fields[key])
    for key in _DATES:
        if fields.get(key) is not None:
            fields[key] = date.fromisoformat(fields[key])
    fact: Fact = cls(**fields)
    return fact
