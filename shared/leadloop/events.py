"""The event contract: one pydantic model per topic value (see DESIGN.md, "External contract").

Every event leadloop emits carries ``event_id`` (unique, for consumer-side dedupe),
``schema_version`` and ``occurred_at``. Models of events leadloop emits forbid unknown
fields so a typo never ships; models of events written by outside systems (CRM, HR)
ignore unknown fields so those systems can add fields without breaking us.

A change that removes a field, narrows a type or adds a required field is breaking:
``tests/contract`` compares the exported JSON Schema with the committed one.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import date, datetime
from enum import StrEnum
from typing import Annotated, ClassVar, Final, Literal

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    model_validator,
)

__all__ = [
    "SCHEMA_VERSION",
    "ActivityKind",
    "ActivityRecorded",
    "AssignmentKind",
    "EscalationAction",
    "EscalationKind",
    "EscalationRaised",
    "EscalationStatus",
    "Event",
    "IngestOutcome",
    "IngestOutcomeRecorded",
    "LeadAccepted",
    "LeadAssigned",
    "LossReason",
    "Priority",
    "RawLead",
    "RejectReason",
    "RepStatus",
    "RepUpdated",
    "ReviewKind",
    "ReviewPublished",
    "SatisfactionRecorded",
    "Stage",
    "StageChanged",
    "Strategy",
    "deterministic_id",
]

SCHEMA_VERSION: Final = 1

# Namespace for deterministic ids (uuid5): the same input always yields the same id,
# which is what makes a redelivered record recognisable downstream.
_ID_NAMESPACE = uuid.UUID("6f1d3c1e-5b1a-4a57-9d62-6c9a3f0e1a10")
_NAMESPACE_BYTES: Final = _ID_NAMESPACE.bytes
# The version (5) and RFC 4122 variant bits, as ``uuid.UUID(..., version=5)`` sets them.
_UUID5_KEEP: Final = ~((0xF000 << 64) | (0xC000 << 48))
_UUID5_SET: Final = (5 << 76) | (0x8000 << 48)


def deterministic_id(*parts: str | int) -> str:
    """A stable id derived from its parts: a redelivery produces the same id.

    ``str(uuid.uuid5(_ID_NAMESPACE, name))``, computed without building the ``UUID``
    objects (a what-if replay derives an id for every decision and ladder step)."""
    name = "\x1f".join(str(p) for p in parts)
    digest = int.from_bytes(
        hashlib.sha1(_NAMESPACE_BYTES + name.encode(), usedforsecurity=False).digest()[:16]
    )
    h = f"{(digest & _UUID5_KEEP) | _UUID5_SET:032x}"
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]
SourceId = Annotated[str, StringConstraints(pattern=r"^[a-z0-9_.-]{1,64}$")]
ShortText = Annotated[str, StringConstraints(max_length=256)]
CountryCode = Annotated[str, StringConstraints(pattern=r"^[A-Z]{2}$")]


class Priority(StrEnum):
    HOT = "hot"
    WARM = "warm"
    COLD = "cold"


class Strategy(StrEnum):
    ROUND_ROBIN = "round_robin"
    WEIGHTED = "weighted"
    LEAST_LOADED = "least_loaded"
    STICKY = "sticky"
    DIRECT = "direct"
    POOL = "pool"


class AssignmentKind(StrEnum):
    INITIAL = "initial"
    REASSIGNED = "reassigned"
    RECLAIMED = "reclaimed"
    POOLED = "pooled"


class ActivityKind(StrEnum):
    CALL = "call"
    EMAIL = "email"
    MESSAGE = "message"
    MEETING = "meeting"
    VISIT = "visit"
    NOTE = "note"


class Stage(StrEnum):
    """Pipeline stages. ``new`` and ``assigned`` are set by leadloop itself; the CRM
    publishes the rest."""

    NEW = "new"
    ASSIGNED = "assigned"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    PROPOSAL = "proposal"
    NEGOTIATION = "negotiation"
    WON = "won"
    LOST = "lost"


class LossReason(StrEnum):
    NO_BUDGET = "no_budget"
    NO_RESPONSE = "no_response"
    CHOSE_COMPETITOR = "chose_competitor"
    TIMING = "timing"
    NOT_A_FIT = "not_a_fit"
    INVALID_CONTACT = "invalid_contact"
    OTHER = "other"


class RepStatus(StrEnum):
    ACTIVE = "active"
    AWAY = "away"
    LEFT = "left"


class EscalationKind(StrEnum):
    FIRST_RESPONSE = "first_response"
    FOLLOW_UP = "follow_up"
    STAGE_STALL = "stage_stall"
    RECLAIM_WARNING = "reclaim_warning"


class EscalationAction(StrEnum):
    REMIND_OWNER = "remind_owner"
    NOTIFY_MANAGER = "notify_manager"
    REASSIGN = "reassign"
    RETURN_TO_POOL = "return_to_pool"
    PAGE_ONCALL = "page_oncall"


class EscalationStatus(StrEnum):
    FIRING = "firing"
    RESOLVED = "resolved"


class RejectReason(StrEnum):
    """Stable codes in the ``reject-reason`` header of ``leads.rejected``."""

    INVALID_JSON = "invalid_json"
    SCHEMA_VIOLATION = "schema_violation"
    MISSING_CONTACT = "missing_contact"
    INVALID_EMAIL = "invalid_email"
    INVALID_PHONE = "invalid_phone"
    TOO_LARGE = "too_large"
    UNKNOWN_SOURCE = "unknown_source"
    BAD_SIGNATURE = "bad_signature"


class ReviewKind(StrEnum):
    WEEK = "week"
    MONTH = "month"


class IngestOutcome(StrEnum):
    ACCEPTED = "accepted"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"


class Event(BaseModel):
    """Fields every emitted event carries."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    #: The topic this model is the value of; the registry in ``topics.py`` checks it.
    topic: ClassVar[str]

    event_id: Id
    schema_version: Literal[1] = SCHEMA_VERSION
    occurred_at: AwareDatetime


class RawLead(BaseModel):
    """A lead as a channel sends it on ``leads.raw`` (contains personal data).

    Fields the system owns (``lead_id``, ``owner_id``, ``stage``, ``score``,
    ``priority``) are not part of this model and are therefore never taken from input.
    Shape only: normalisation (email case, E.164 phones, Unicode) is ingest's job.
    """

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)
    topic: ClassVar[str] = "leads.raw"

    source: SourceId
    source_lead_id: Id
    occurred_at: AwareDatetime | None = None
    name: Annotated[str, StringConstraints(max_length=200)] | None = None
    email: Annotated[str, StringConstraints(max_length=254)] | None = None
    phone: Annotated[str, StringConstraints(max_length=64)] | None = None
    company: ShortText | None = None
    title: ShortText | None = None
    country: CountryCode | None = None
    region: ShortText | None = None
    city: ShortText | None = None
    industry: ShortText | None = None
    product: ShortText | None = None
    company_size: Annotated[int, Field(ge=0, le=10_000_000)] | None = None
    budget: Annotated[float, Field(ge=0, le=1e12)] | None = None
    campaign: ShortText | None = None
    message: Annotated[str, StringConstraints(max_length=4000)] | None = None
    attributes: Annotated[
        dict[
            Annotated[str, StringConstraints(min_length=1, max_length=64)],
            Annotated[str, StringConstraints(max_length=1000)] | bool | int | float,
        ],
        Field(max_length=50),
    ] = Field(default_factory=dict)


class IngestOutcomeRecorded(Event):
    """One per record read from ``leads.raw``: how it ended. No personal data.

    Extends the contract so the metrics service can count conservation
    (received = accepted + duplicate + rejected) without reading personal data.
    ``event_id`` is derived from the raw record's position, so a redelivery is
    recognisable.
    """

    topic: ClassVar[str] = "ingest.outcomes"

    source: str
    outcome: IngestOutcome
    reason: str | None = None
    lead_id: Id | None = None
    raw_partition: int
    raw_offset: int


class LeadAccepted(Event):
    topic: ClassVar[str] = "leads.accepted"

    lead_id: Id
    source: SourceId
    source_lead_id: Id
    accepted_at: AwareDatetime
    country: CountryCode | None = None
    region: ShortText | None = None
    city: ShortText | None = None
    industry: ShortText | None = None
    product: ShortText | None = None
    company_size: int | None = None
    budget: float | None = None
    campaign: ShortText | None = None
    is_returning: bool = False
    previous_owner_id: Id | None = None
    #: The same person (identity key of email or phone) had an earlier lead that was
    #: won — any of their earlier leads, not only the latest. A win of this lead is then
    #: repeat business (a repurchase). False for a first-time or only-lost customer.
    customer_won_before: bool = False
    score: Annotated[int, Field(ge=0, le=100)]
    priority: Priority


class LeadAssigned(Event):
    topic: ClassVar[str] = "leads.assigned"

    assignment_id: Id
    lead_id: Id
    owner_id: Id | None
    team_id: Id
    rule_id: Id
    rule_version: str
    strategy: Strategy
    kind: AssignmentKind
    previous_owner_id: Id | None = None
    reason: str
    lead_occurred_at: AwareDatetime
    assigned_at: AwareDatetime
    priority: Priority
    #: The lead's n-th assignment event: 0 for the first decision, then 1, 2, … per move.
    #: After a crash an older move can reach the topic late; keep the highest per lead.
    sequence: Annotated[int, Field(ge=0)] = 0


class ActivityRecorded(BaseModel):
    """A follow-up touch published by the CRM or a sales tool on ``crm.activities``."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    topic: ClassVar[str] = "crm.activities"

    event_id: Id
    schema_version: int = SCHEMA_VERSION
    lead_id: Id
    rep_id: Id
    kind: ActivityKind
    occurred_at: AwareDatetime
    outcome: ShortText | None = None
    next_followup_at: AwareDatetime | None = None


class StageChanged(BaseModel):
    """Pipeline progress published by the CRM on ``crm.stage-changes``."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    topic: ClassVar[str] = "crm.stage-changes"

    event_id: Id
    schema_version: int = SCHEMA_VERSION
    lead_id: Id
    stage: Stage
    occurred_at: AwareDatetime
    rep_id: Id
    amount: Annotated[float, Field(ge=0)] | None = None
    expected_close_date: date | None = None
    loss_reason: LossReason | None = None

    @model_validator(mode="after")
    def _lost_needs_reason(self) -> StageChanged:
        # The contract makes a loss reason mandatory for lost leads: loss attribution
        # in the monthly review depends on it.
        if self.stage is Stage.LOST and self.loss_reason is None:
            raise ValueError("loss_reason is required when stage is 'lost'")
        return self


class SatisfactionRecorded(BaseModel):
    """A customer's satisfaction score (客户满意度) of one lead, published by the CRM on
    ``crm.satisfaction``.

    No free-text comment: what a customer writes about a rep may name people, and this
    topic carries no personal data. ``survey_id`` is a short code the CRM chooses (like a
    channel id), so it can serve as a bounded label.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")
    topic: ClassVar[str] = "crm.satisfaction"

    event_id: Id
    schema_version: int = SCHEMA_VERSION
    lead_id: Id
    #: The rep the rating is about; absent when the CRM does not know.
    rep_id: Id | None = None
    #: 1 (very dissatisfied) … 5 (very satisfied). Strict: the published value is the
    #: posted JSON, so a ``"4"`` or ``4.0`` accepted here would reach consumers as such.
    score: Annotated[int, Field(ge=1, le=5, strict=True)]
    occurred_at: AwareDatetime
    #: Which survey asked, e.g. ``post_call``, ``post_sale``.
    survey_id: SourceId | None = None


class RepUpdated(BaseModel):
    """A rep's roster entry on the compacted ``crm.reps`` topic (key: rep_id)."""

    model_config = ConfigDict(frozen=True, extra="ignore")
    topic: ClassVar[str] = "crm.reps"

    event_id: Id | None = None
    schema_version: int = SCHEMA_VERSION
    rep_id: Id
    team_id: Id
    manager_id: Id | None = None
    status: RepStatus = RepStatus.ACTIVE
    capacity: Annotated[int, Field(ge=0)] = 50
    weight: Annotated[int, Field(ge=0)] = 1
    skills: list[ShortText] = Field(default_factory=list)
    regions: list[ShortText] = Field(default_factory=list)
    timezone: str = "UTC"
    updated_at: datetime
    #: Where the rep is reached: channel -> address, e.g. {"wecom": "zhangsan",
    #: "email": "…"}. Optional; personal contact data, so only the notifier reads it.
    contacts: dict[ShortText, ShortText] = Field(default_factory=dict)
    #: The rep's user id in each CRM: target name -> id, e.g. {"salesforce": "005…"}.
    external_ids: dict[ShortText, ShortText] = Field(default_factory=dict)


class EscalationRaised(Event):
    """One step of an SLA escalation ladder on ``sla.escalations`` (fired or resolved)."""

    topic: ClassVar[str] = "sla.escalations"

    escalation_id: Id
    lead_id: Id
    owner_id: Id | None
    team_id: Id
    manager_id: Id | None = None
    policy_id: Id
    kind: EscalationKind
    level: Annotated[int, Field(ge=1)]
    action: EscalationAction
    due_at: AwareDatetime
    breached_at: AwareDatetime
    status: EscalationStatus


class ReviewPublished(Event):
    """The review (复盘) report of a period was written, on ``review.published`` (key:
    the period label). No personal data: counts, amounts, file names and the suggested
    actions' texts, which name teams, rep ids, sources and percentages only.

    ``event_id`` is ``deterministic_id("review.published", period, team_id or "*")``: a
    report announced again (the run did not see the broker's acknowledgement) carries
    the same id, so a consumer delivers it once. ``occurred_at`` is the time the report
    counts facts up to (the scheduled run's time); ``published_at`` is when it was
    announced, later when the broker was down at first.
    """

    topic: ClassVar[str] = "review.published"

    #: ``2026-W48`` (ISO week) or ``2026-11`` (month).
    period: Annotated[str, StringConstraints(pattern=r"^\d{4}-(W\d{2}|\d{2})$")]
    kind: ReviewKind
    #: None: the report covers every team.
    team_id: Id | None = None
    #: The period, half-open: ``[period_start, period_end)``.
    period_start: AwareDatetime
    period_end: AwareDatetime
    published_at: AwareDatetime
    #: Where the reports are: the files written, as paths relative to the directory's
    #: parent, e.g. ``reviews/review-2026-11.html, reviews/review-2026-11.md``.
    where: Annotated[str, StringConstraints(min_length=1, max_length=1000)]
    #: Headline numbers of the period: leads accepted, won, the amount won (the CRM's
    #: currency) and lost.
    leads: Annotated[int, Field(ge=0)]
    won: Annotated[int, Field(ge=0)]
    won_amount: Annotated[float, Field(ge=0)]
    lost: Annotated[int, Field(ge=0)]
    #: The report's first suggested actions (at most three), in its own order.
    suggestions: Annotated[
        list[Annotated[str, StringConstraints(min_length=1, max_length=500)]],
        Field(max_length=3),
    ] = Field(default_factory=list)

    @model_validator(mode="after")
    def _period_is_consistent(self) -> ReviewPublished:
        if self.period_start >= self.period_end:
            raise ValueError("period_start must be before period_end")
        if ("W" in self.period) != (self.kind is ReviewKind.WEEK):
            raise ValueError(f"period {self.period} is not a {self.kind.value}")
        return self
