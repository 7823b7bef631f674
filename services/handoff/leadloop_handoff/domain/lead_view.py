"""What ``GET /v1/leads/{lead_id}`` shows: one lead as JSON, built from its rows (no I/O).

The summary (scope ``leads:read-summary``) carries no personal data: the lead's ids,
owner, stage, score and priority, routing attributes, timeline and open SLA clocks. The
``contact`` object (scope ``leads:read-contact``) adds name, email, phone, company,
title, message and the channel's extra ``attributes``, which ingest's erasure treats as
personal data too. An erased lead is gone for readers: ``None``, like a missing one.

Timeline entries are ``{kind, at, rep, detail}``: ``ownership`` (detail: the move kind,
rep: the new owner or null when pooled), ``activity`` (detail: call, email, …; an
activity's free-text outcome may name the person and is never shown), and ``stage``
(detail: the stage; ``loss_reason`` and ``amount`` when the CRM gave them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final

__all__ = [
    "QUALIFYING_ACTIVITIES",
    "ActivityRow",
    "ClockRow",
    "ContactRow",
    "LeadRow",
    "LeadRows",
    "OwnershipRow",
    "StageRow",
    "current_owner",
    "current_stage",
    "lead_view",
    "timeline",
]

#: Touches that make a lead ``contacted`` (a ``note`` is not a touch).
QUALIFYING_ACTIVITIES: Final = frozenset({"call", "email", "message", "meeting", "visit"})

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class ContactRow:
    """The lead's personal data; read only for a client with the contact scope."""

    name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    title: str | None = None
    message: str | None = None
    attributes: Mapping[str, str | int | float | bool] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LeadRow:
    lead_id: str
    source: str
    source_lead_id: str
    score: int
    priority: str
    is_returning: bool
    previous_owner_id: str | None
    occurred_at: datetime
    accepted_at: datetime
    erased_at: datetime | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    industry: str | None = None
    product: str | None = None
    company_size: int | None = None
    budget: float | None = None
    campaign: str | None = None
    #: None when the contact columns were not read (summary clients).
    contact: ContactRow | None = None


@dataclass(frozen=True, slots=True)
class OwnershipRow:
    event_id: str
    owner_id: str | None
    kind: str
    assigned_at: datetime


@dataclass(frozen=True, slots=True)
class ActivityRow:
    event_id: str
    rep_id: str
    kind: str
    occurred_at: datetime


@dataclass(frozen=True, slots=True)
class StageRow:
    event_id: str
    stage: str
    occurred_at: datetime
    rep_id: str
    amount: float | None = None
    loss_reason: str | None = None


@dataclass(frozen=True, slots=True)
class ClockRow:
    """An open SLA clock; ``due_at`` None: its ladder is exhausted (due 'infinity')."""

    kind: str
    policy_id: str
    owner_id: str | None
    team_id: str
    started_at: datetime
    due_at: datetime | None
    next_level: int


@dataclass(frozen=True, slots=True)
class LeadRows:
    lead: LeadRow
    ownership: Sequence[OwnershipRow] = ()
    activities: Sequence[ActivityRow] = ()
    stages: Sequence[StageRow] = ()
    clocks: Sequence[ClockRow] = ()


def current_owner(ownership: Sequence[OwnershipRow]) -> str | None:
    """The owner named by the latest ownership change (None: never owned, or pooled)."""
    if not ownership:
        return None
    return max(ownership, key=lambda o: (o.assigned_at, o.event_id)).owner_id


def current_stage(rows: LeadRows) -> str:
    """The latest stage change; else ``contacted`` after a qualifying touch; else
    ``assigned`` while someone owns it; else ``new``."""
    if rows.stages:
        return max(rows.stages, key=lambda s: (s.occurred_at, s.event_id)).stage
    if any(a.kind in QUALIFYING_ACTIVITIES for a in rows.activities):
        return "contacted"
    if current_owner(rows.ownership) is not None:
        return "assigned"
    return "new"


def timeline(rows: LeadRows) -> list[Json]:
    """Ownership changes, activities and stage changes in time order. At the same
    instant an ownership change comes first, then touches, then stage changes (a touch
    at the moment of assignment answers it; a stage change follows its touch)."""
    keyed: list[tuple[tuple[datetime, int, str], Json]] = []
    for o in rows.ownership:
        entry = _entry("ownership", o.assigned_at, o.owner_id, o.kind)
        keyed.append(((o.assigned_at, 0, o.event_id), entry))
    for a in rows.activities:
        entry = _entry("activity", a.occurred_at, a.rep_id, a.kind)
        keyed.append(((a.occurred_at, 1, a.event_id), entry))
    for s in rows.stages:
        entry = _entry("stage", s.occurred_at, s.rep_id, s.stage)
        if s.loss_reason is not None:
            entry["loss_reason"] = s.loss_reason
        if s.amount is not None:
            entry["amount"] = s.amount
        keyed.append(((s.occurred_at, 2, s.event_id), entry))
    keyed.sort(key=lambda k: k[0])
    return [entry for _, entry in keyed]


def _entry(kind: str, at: datetime, rep: str | None, detail: str) -> Json:
    return {"kind": kind, "at": at.isoformat(), "rep": rep, "detail": detail}


def _clock(c: ClockRow) -> Json:
    return {
        "kind": c.kind,
        "policy_id": c.policy_id,
        "owner_id": c.owner_id,
        "team_id": c.team_id,
        "started_at": c.started_at.isoformat(),
        "due_at": c.due_at.isoformat() if c.due_at is not None else None,
        "next_level": c.next_level,
    }


def lead_view(rows: LeadRows | None, *, contact: bool) -> Json | None:
    """The response body, or None (404) when there is no such lead or it was erased.

    ``contact`` says whether the caller holds the contact scope; the ``contact`` object
    is present exactly when it does (its fields may be null), and absent otherwise even
    if the rows carry personal data. Raises ``ValueError`` when ``contact`` is asked of
    rows read without their contact columns (a caller's bug, never an empty contact).
    """
    if rows is None or rows.lead.erased_at is not None:
        return None
    lead = rows.lead
    body: Json = {
        "lead_id": lead.lead_id,
        "source": lead.source,
        "source_lead_id": lead.source_lead_id,
        "owner_id": current_owner(rows.ownership),
        "stage": current_stage(rows),
        "score": lead.score,
        "priority": lead.priority,
        "is_returning": lead.is_returning,
        "previous_owner_id": lead.previous_owner_id,
        "occurred_at": lead.occurred_at.isoformat(),
        "accepted_at": lead.accepted_at.isoformat(),
        "routing": {
            "country": lead.country,
            "region": lead.region,
            "city": lead.city,
            "industry": lead.industry,
            "product": lead.product,
            "company_size": lead.company_size,
            "budget": lead.budget,
            "campaign": lead.campaign,
        },
        "timeline": timeline(rows),
        # Soonest due first; exhausted ladders (no due time) last.
        "open_clocks": [
            _clock(c)
            for c in sorted(
                rows.clocks, key=lambda c: (c.due_at is None, c.due_at or c.started_at, c.kind)
            )
        ],
    }
    if contact:
        c = lead.contact
        if c is None:
            raise ValueError("contact view asked of rows read without contact columns")
        body["contact"] = {
            "name": c.name,
            "email": c.email,
            "phone": c.phone,
            "company": c.company,
            "title": c.title,
            "message": c.message,
            "attributes": dict(c.attributes),
        }
    return body
