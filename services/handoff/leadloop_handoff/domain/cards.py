"""What a CRM target receives for one assignment, and what one attempt to deliver it said.

A ``LeadCard`` is built in the hand-off service from a ``leads.assigned`` event and the
lead's row in PostgreSQL (the only place its contact details live). A ``Target`` is one
configured CRM (the generic signed webhook, Salesforce, HubSpot, 简道云 …): it turns a
card into its vendor's request and the vendor's reply into an ``Attempt``. Targets never
retry, sleep or log personal data; what to do with an attempt (retry when, dead-letter)
is ``domain.retry``'s decision.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal, Protocol

__all__ = ["Attempt", "LeadCard", "Outcome", "Target"]

#: delivered: the CRM holds the record (created, or updated to this card);
#: retry: worth trying again later (5xx, 429, rate limit, timeout, network error);
#: failed: will not succeed as sent (4xx other than 429, duplicate external id, …).
Outcome = Literal["delivered", "retry", "failed"]


@dataclass(frozen=True, slots=True)
class LeadCard:
    lead_id: str
    assignment_id: str
    #: The lead's move number on leads.assigned: a target keeps the highest it saw.
    sequence: int
    kind: Literal["initial", "reassigned", "reclaimed", "pooled"]
    owner_id: str | None
    #: The owner's user id in this target's CRM (crm.reps ``external_ids`` or the
    #: target's ``owner_ids`` map); None when the lead is pooled or unmapped.
    owner_crm_id: str | None
    previous_owner_id: str | None
    team_id: str
    rule_id: str
    rule_version: str
    strategy: str
    reason: str
    score: int
    priority: str
    is_returning: bool
    source: str
    source_lead_id: str
    occurred_at: datetime
    assigned_at: datetime
    name: str | None = None
    email: str | None = None
    phone: str | None = None
    company: str | None = None
    title: str | None = None
    message: str | None = None
    country: str | None = None
    region: str | None = None
    city: str | None = None
    industry: str | None = None
    product: str | None = None
    company_size: int | None = None
    budget: float | None = None
    campaign: str | None = None
    attributes: Mapping[str, str | int | float | bool] = field(default_factory=dict)

    @property
    def idempotency_key(self) -> str:
        """Stable per (lead, assignment): the same move delivered twice carries it twice."""
        return f"{self.lead_id}:{self.assignment_id}"

    def payload(self) -> dict[str, Any]:
        """The card as plain JSON values (the generic webhook's ``lead`` object)."""
        return {
            "lead_id": self.lead_id,
            "assignment_id": self.assignment_id,
            "sequence": self.sequence,
            "kind": self.kind,
            "owner_id": self.owner_id,
            "owner_crm_id": self.owner_crm_id,
            "previous_owner_id": self.previous_owner_id,
            "team_id": self.team_id,
            "rule_id": self.rule_id,
            "rule_version": self.rule_version,
            "strategy": self.strategy,
            "reason": self.reason,
            "score": self.score,
            "priority": self.priority,
            "is_returning": self.is_returning,
            "source": self.source,
            "source_lead_id": self.source_lead_id,
            "occurred_at": self.occurred_at.isoformat(),
            "assigned_at": self.assigned_at.isoformat(),
            "contact": {
                "name": self.name,
                "email": self.email,
                "phone": self.phone,
                "company": self.company,
                "title": self.title,
                "message": self.message,
            },
            "routing": {
                "country": self.country,
                "region": self.region,
                "city": self.city,
                "industry": self.industry,
                "product": self.product,
                "company_size": self.company_size,
                "budget": self.budget,
                "campaign": self.campaign,
            },
            "attributes": dict(self.attributes),
            "idempotency_key": self.idempotency_key,
        }


@dataclass(frozen=True, slots=True)
class Attempt:
    outcome: Outcome
    #: The HTTP status, None when no response came (timeout, connection error).
    status: int | None
    #: A short stable code for metrics and the dead letter: "ok", "http_503",
    #: "REQUEST_LIMIT_EXCEEDED", "RATE_LIMIT", "8303", "timeout", "connect_error",
    #: "duplicate_external_id" … never a response body, never personal data.
    code: str
    #: Seconds the target asked us to wait (Retry-After, a vendor's own hint).
    retry_after_s: float | None = None
    #: The record's id on the CRM side, when the reply names it.
    crm_id: str | None = None


class Target(Protocol):
    """One configured CRM. Implementations live in ``adapters/targets``.

    ``upsert`` and ``erase`` send one request (plus a token refresh where the vendor
    needs one) and return what happened; they raise only on a programming error. Both
    are idempotent on the CRM side: upsert is keyed by the leadloop lead id (an
    external-id field or unique property), so the same card sent twice leaves one
    record. A reply with a lower ``sequence`` than the CRM already holds is still sent
    (the hand-off worker orders deliveries per lead, so this does not happen).
    """

    @property
    def name(self) -> str: ...

    #: Whether a ``pooled`` card means something to this CRM (a team queue).
    @property
    def supports_pool(self) -> bool: ...

    #: Whether ``erase`` does anything (delete or anonymise, per the target's config).
    @property
    def supports_erase(self) -> bool: ...

    async def upsert(self, card: LeadCard) -> Attempt: ...

    async def erase(self, lead_id: str) -> Attempt: ...

    async def aclose(self) -> None: ...
