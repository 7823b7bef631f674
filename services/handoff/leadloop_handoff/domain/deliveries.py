"""Which targets an assignment goes to, who owns it in each CRM, and the card sent.

Pure: the hand-off handler loads rows and calls these; nothing here reads a clock,
a database or the network.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, cast

from leadloop_handoff.domain.cards import LeadCard

__all__ = [
    "LEAD_COLUMNS",
    "Due",
    "Finished",
    "TargetPlan",
    "build_card",
    "owner_crm_id",
    "targets_for",
]

#: The columns of ``leads`` a card shows: exactly those the hand-off role may read.
LEAD_COLUMNS = (
    "source",
    "source_lead_id",
    "name",
    "email",
    "phone",
    "company",
    "title",
    "message",
    "country",
    "region",
    "city",
    "industry",
    "product",
    "company_size",
    "budget",
    "campaign",
    "attributes",
    "score",
    "priority",
    "is_returning",
    "previous_owner_id",
    "occurred_at",
    "erased_at",
)


@dataclass(frozen=True, slots=True)
class TargetPlan:
    """What the hand-off needs to know of a target to route cards to it."""

    name: str
    supports_pool: bool
    supports_erase: bool
    #: rep_id -> the rep's user id in this CRM, when crm.reps carries none.
    owner_ids: Mapping[str, str] = field(default_factory=dict)
    #: team_id -> the team's pool queue (or pool owner) in this CRM.
    pool: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Due:
    """One claimed delivery with everything its card needs (loaded in one query)."""

    target: str
    lead_id: str
    assignment_id: str
    sequence: int
    kind: str
    #: The leads.assigned event as stored (no personal data).
    event: Mapping[str, Any]
    #: Attempts before this one.
    attempts: int
    assigned_at: datetime
    #: The lead's row (LEAD_COLUMNS); None if the lead is unknown here.
    lead: Mapping[str, Any] | None
    #: The owner's ids per CRM from crm.reps (target -> id).
    owner_external_ids: Mapping[str, str]


@dataclass(frozen=True, slots=True)
class Finished:
    """What became of one claimed delivery."""

    due: Due
    status: str  # pending (retry), delivered, dead, cancelled
    #: Whether an attempt was made (a row released unsent, or cancelled, counts none).
    counted: bool
    due_at: datetime
    finished_at: datetime | None
    last_status: int | None
    last_code: str | None
    crm_id: str | None = None


def targets_for(kind: str, targets: Sequence[TargetPlan]) -> list[TargetPlan]:
    """A pooled lead goes only to CRMs that have a pool to put it in."""
    return [t for t in targets if kind != "pooled" or t.supports_pool]


def owner_crm_id(
    plan: TargetPlan, owner_id: str | None, team_id: str, external_ids: Mapping[str, str]
) -> str | None:
    """The CRM user that owns the record: the rep's own id for that CRM (crm.reps), the
    target's configured map, or for a pooled lead the team's pool queue."""
    if owner_id is None:
        return plan.pool.get(team_id)
    return external_ids.get(plan.name) or plan.owner_ids.get(owner_id)


def build_card(due: Due, owner_in_crm: str | None) -> LeadCard:
    """The card for ``due``; its lead row must be present and not erased."""
    lead = due.lead
    if lead is None or lead.get("erased_at") is not None:
        raise ValueError("a card needs the lead's row, and an erased lead has none")
    event = due.event
    attributes = lead.get("attributes") or {}
    return LeadCard(
        lead_id=due.lead_id,
        assignment_id=due.assignment_id,
        sequence=due.sequence,
        kind=cast(Literal["initial", "reassigned", "reclaimed", "pooled"], due.kind),
        owner_id=event.get("owner_id"),
        owner_crm_id=owner_in_crm,
        previous_owner_id=event.get("previous_owner_id"),
        team_id=str(event["team_id"]),
        rule_id=str(event["rule_id"]),
        rule_version=str(event["rule_version"]),
        strategy=str(event["strategy"]),
        reason=str(event["reason"]),
        score=int(lead["score"]),
        priority=str(lead["priority"]),
        is_returning=bool(lead["is_returning"]),
        source=str(lead["source"]),
        source_lead_id=str(lead["source_lead_id"]),
        occurred_at=lead["occurred_at"],
        assigned_at=due.assigned_at,
        name=lead.get("name"),
        email=lead.get("email"),
        phone=lead.get("phone"),
        company=lead.get("company"),
        title=lead.get("title"),
        message=lead.get("message"),
        country=lead.get("country"),
        region=lead.get("region"),
        city=lead.get("city"),
        industry=lead.get("industry"),
        product=lead.get("product"),
        company_size=lead.get("company_size"),
        budget=lead.get("budget"),
        campaign=lead.get("campaign"),
        attributes=dict(attributes) if isinstance(attributes, Mapping) else {},
    )
