"""What happens to a batch of ``leads.raw`` records: accept, duplicate or reject.

``decide`` proposes an outcome per record; PostgreSQL has the last word on whether an
accepted proposal is new (its unique key on (source, source_lead_id) turns a proposal
that lost a race into a duplicate). Every id here is derived from the input, so a
redelivered record yields the same lead id and event ids as the first delivery.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from leadloop.events import (
    IngestOutcome,
    IngestOutcomeRecorded,
    LeadAccepted,
    Priority,
    deterministic_id,
)
from leadloop_ingest.domain.identity import identity_key
from leadloop_ingest.domain.scoring import Scoring, score
from leadloop_ingest.domain.validation import Limits, Rejection, ValidLead, validate

__all__ = [
    "SOURCE_HEADER",
    "UNKNOWN_SOURCE",
    "LeadRecord",
    "OutcomeRecord",
    "Position",
    "RawRecord",
    "accepted_event",
    "decide",
    "lead_id_for",
    "outcome_event",
    "reject_headers",
    "rejection_headers",
]

#: Source recorded for a record whose channel could not be read.
UNKNOWN_SOURCE = "unknown"

#: Kafka header naming the channel of a leads.raw record (set by the webhook and the
#: import tool); it selects the channel's adapter and survives into dead letters.
SOURCE_HEADER = "leadloop-source"


@dataclass(frozen=True, slots=True, order=True)
class Position:
    topic: str
    partition: int
    offset: int


@dataclass(frozen=True, slots=True)
class RawRecord:
    position: Position
    key: bytes | None
    value: bytes
    #: Broker timestamp: when the channel produced it (stands in for occurred_at).
    timestamp: datetime
    #: The channel as the transport names it (``leadloop-source`` header), if any.
    source_hint: str | None = None


@dataclass(frozen=True, slots=True)
class LeadRecord:
    """A lead as persisted (the ``leads`` table); the only place personal data sits."""

    lead_id: str
    source: str
    source_lead_id: str
    email: str | None
    phone: str | None
    name: str | None
    fields: dict[str, Any]
    attributes: dict[str, Any]
    email_key: str | None
    phone_key: str | None
    score: int
    priority: Priority
    is_returning: bool
    previous_owner_id: str | None
    #: The same person had an earlier lead that was won (set by ``dedupe.resolve``).
    customer_won_before: bool
    occurred_at: datetime
    accepted_at: datetime
    accepted_event_id: str
    position: Position


@dataclass(frozen=True, slots=True)
class OutcomeRecord:
    """How one raw record ended (the ``ingest_outcomes`` table)."""

    position: Position
    source: str
    outcome: IngestOutcome
    reason: str | None
    detail: str | None
    lead_id: str | None
    event_id: str
    recorded_at: datetime


#: Routing attributes copied to leads.accepted (no personal data among them).
ROUTING_FIELDS = (
    "country",
    "region",
    "city",
    "industry",
    "product",
    "company_size",
    "budget",
    "campaign",
)
#: Other non-contact fields kept with the lead in PostgreSQL.
PROFILE_FIELDS = ("company", "title", "message")


def lead_id_for(source: str, source_lead_id: str) -> str:
    return deterministic_id("lead", source, source_lead_id)


def decide(
    records: list[RawRecord],
    *,
    limits: Limits,
    weights: Scoring,
    pepper: bytes,
    now: datetime,
) -> list[tuple[OutcomeRecord, LeadRecord | None]]:
    """One proposed outcome per record, in input order.

    Every valid record is proposed as a new lead; which copy of an idempotency key
    or of a person wins is ``dedupe.resolve``'s decision, made in one place whatever
    order or subset of the batch it is given.
    """
    out: list[tuple[OutcomeRecord, LeadRecord | None]] = []
    for rec in records:
        verdict = validate(rec.value, limits, rec.source_hint)
        event_id = deterministic_id("ingest.outcomes", *_pos(rec.position))
        if isinstance(verdict, Rejection):
            out.append(
                (
                    OutcomeRecord(
                        position=rec.position,
                        source=verdict.source or UNKNOWN_SOURCE,
                        outcome=IngestOutcome.REJECTED,
                        reason=verdict.reason.value,
                        detail=verdict.detail,
                        lead_id=None,
                        event_id=event_id,
                        recorded_at=now,
                    ),
                    None,
                )
            )
            continue
        raw = verdict.raw
        lead_id = lead_id_for(raw.source, raw.source_lead_id)
        lead = _lead(verdict, rec, lead_id, weights, pepper, now)
        outcome = OutcomeRecord(
            position=rec.position,
            source=raw.source,
            outcome=IngestOutcome.ACCEPTED,
            reason=None,
            detail=None,
            lead_id=lead_id,
            event_id=event_id,
            recorded_at=now,
        )
        out.append((outcome, lead))
    return out


def as_duplicate(outcome: OutcomeRecord) -> OutcomeRecord:
    """The outcome of an accepted proposal whose idempotency key already existed."""
    assert outcome.lead_id is not None
    return _duplicate(
        outcome.position, outcome.source, outcome.lead_id, outcome.event_id, outcome.recorded_at
    )


def _duplicate(
    position: Position, source: str, lead_id: str, event_id: str, now: datetime
) -> OutcomeRecord:
    return OutcomeRecord(
        position=position,
        source=source,
        outcome=IngestOutcome.DUPLICATE,
        reason="redelivery",
        detail="(source, source_lead_id) was already received",
        lead_id=lead_id,
        event_id=event_id,
        recorded_at=now,
    )


def _lead(
    valid: ValidLead,
    rec: RawRecord,
    lead_id: str,
    weights: Scoring,
    pepper: bytes,
    now: datetime,
) -> LeadRecord:
    raw, contact = valid.raw, valid.contact
    value, priority = score(raw, contact, weights)
    return LeadRecord(
        lead_id=lead_id,
        source=raw.source,
        source_lead_id=raw.source_lead_id,
        email=contact.email,
        phone=contact.phone,
        name=contact.name,
        fields={f: getattr(raw, f) for f in (*ROUTING_FIELDS, *PROFILE_FIELDS)},
        attributes=dict(raw.attributes),
        email_key=identity_key(pepper, "email", contact.email),
        phone_key=identity_key(pepper, "phone", contact.phone),
        score=value,
        priority=priority,
        is_returning=False,
        previous_owner_id=None,
        customer_won_before=False,
        occurred_at=raw.occurred_at or rec.timestamp,
        accepted_at=now,
        accepted_event_id=deterministic_id("leads.accepted", lead_id),
        position=rec.position,
    )


def accepted_event(lead: LeadRecord) -> LeadAccepted:
    """The PII-free event for a persisted lead: routing attributes and ids only."""
    return LeadAccepted(
        event_id=lead.accepted_event_id,
        occurred_at=lead.occurred_at,
        lead_id=lead.lead_id,
        source=lead.source,
        source_lead_id=lead.source_lead_id,
        accepted_at=lead.accepted_at,
        is_returning=lead.is_returning,
        previous_owner_id=lead.previous_owner_id,
        customer_won_before=lead.customer_won_before,
        score=lead.score,
        priority=lead.priority,
        **{f: lead.fields.get(f) for f in ROUTING_FIELDS},
    )


def outcome_event(outcome: OutcomeRecord) -> IngestOutcomeRecorded:
    return IngestOutcomeRecorded(
        event_id=outcome.event_id,
        occurred_at=outcome.recorded_at,
        source=outcome.source,
        outcome=outcome.outcome,
        reason=outcome.reason,
        lead_id=outcome.lead_id,
        raw_partition=outcome.position.partition,
        raw_offset=outcome.position.offset,
    )


def reject_headers(outcome: OutcomeRecord) -> list[tuple[str, bytes]]:
    """The contract's reject-* headers; the detail never carries personal data."""
    return rejection_headers(
        outcome.reason or "", outcome.detail or "", outcome.position, outcome.recorded_at
    )


def rejection_headers(
    reason: str, detail: str, position: Position, at: datetime
) -> list[tuple[str, bytes]]:
    """Headers of a dead letter (leads.rejected, crm.rejected): why, and where from."""
    return [
        ("reject-reason", reason.encode()),
        ("reject-detail", detail.encode()),
        ("source-topic", position.topic.encode()),
        ("source-partition", str(position.partition).encode()),
        ("source-offset", str(position.offset).encode()),
        ("rejected-at", at.isoformat().encode()),
    ]


def _pos(p: Position) -> tuple[str, int, int]:
    return (p.topic, p.partition, p.offset)
