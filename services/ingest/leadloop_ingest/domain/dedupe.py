"""Person-level dedupe: the same person again is merged, or returns as a new lead.

Runs on the proposals of ``intake.decide`` with what PostgreSQL knows about the people
in the batch (loaded under a lock per identity key, so two workers cannot both create
a lead for one person):

- (``source``, ``source_lead_id``) already stored (as a lead, or merged into one) → a
  redelivery: nothing changes;
- the same person (identity key of the normalised email or phone) has an open lead →
  the record is merged into it: counted as a duplicate, the merge recorded;
- the person's last lead was won or lost → a new lead with ``is_returning`` and the
  previous owner, so assignment can route them back; and ``customer_won_before`` when
  any of the person's leads was won (their stage now is ``won``), so a win of the new
  lead is counted as a repurchase;
- otherwise → a new lead.

Records earlier in the same batch count as known, so a record twice in one batch gives
one lead and one redelivery, and a person twice gives one lead and one merge — in
whatever order and subset of a batch ``resolve`` is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence, Set
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from leadloop.events import IngestOutcome
from leadloop_ingest.domain.intake import (
    LeadRecord,
    OutcomeRecord,
    Position,
    as_duplicate,
)

__all__ = [
    "Decided",
    "Known",
    "Merge",
    "PersonLead",
    "Resolved",
    "identity_keys",
    "in_batch_order",
    "replayed_leads",
    "resolve",
    "settle",
]


@dataclass(frozen=True, slots=True)
class PersonLead:
    """A stored lead as person-level dedupe sees it (no personal data beyond keys)."""

    lead_id: str
    email_key: str | None
    phone_key: str | None
    owner_id: str | None
    accepted_at: datetime
    closed_at: datetime | None
    #: The lead's stage now (``new`` … ``won`` | ``lost``), as the CRM last reported it.
    stage: str


@dataclass(frozen=True, slots=True)
class Known:
    #: For the batch's idempotency keys already stored: the lead id derived from
    #: (source, source_lead_id) → the lead the record ended as (itself, or the open
    #: lead it was merged into).
    stored: Mapping[str, str]
    #: Stored leads sharing an identity key with the batch.
    people: Sequence[PersonLead]


@dataclass(frozen=True, slots=True)
class Merge:
    position: Position
    lead_id: str
    matched_on: Literal["email", "phone"]
    source: str
    source_lead_id: str
    #: The lead id the record would have had; later copies are matched on it.
    proposed_lead_id: str
    #: The merged record's normalised data, kept with the merge so nothing is lost.
    payload: dict[str, Any]
    #: Contact details the open lead lacks are filled in from the merged record, so the
    #: person is recognised by either from now on.
    email: str | None
    email_key: str | None
    phone: str | None
    phone_key: str | None


Resolved = tuple[OutcomeRecord, LeadRecord | None, Merge | None]
#: Each record's outcome and, when it creates one, its lead.
Decided = list[tuple[OutcomeRecord, LeadRecord | None]]


def identity_keys(proposals: Sequence[tuple[OutcomeRecord, LeadRecord | None]]) -> list[str]:
    """Every identity key in the batch, sorted: locks are taken in this order."""
    keys = {
        k
        for _, lead in proposals
        if lead is not None
        for k in (lead.email_key, lead.phone_key)
        if k is not None
    }
    return sorted(keys)


def resolve(
    proposals: Sequence[tuple[OutcomeRecord, LeadRecord | None]], known: Known
) -> list[Resolved]:
    people = _People(known.people)
    # Proposed lead id → the lead it ended as (itself, a stored lead, or a merge
    # target), so a later copy of the same record in the batch points at a real lead.
    ended_as: dict[str, str] = {}
    out: list[Resolved] = []
    for outcome, lead in proposals:
        if lead is None or outcome.outcome is not IngestOutcome.ACCEPTED:
            # A copy of a record seen before: point it at the lead that record became.
            proposed = outcome.lead_id
            if proposed is not None:
                final = ended_as.get(proposed) or known.stored.get(proposed) or proposed
                outcome = replace(outcome, lead_id=final)
            out.append((outcome, lead, None))
            continue
        stored = ended_as.get(lead.lead_id) or known.stored.get(lead.lead_id)
        if stored is not None:
            ended_as[lead.lead_id] = stored
            out.append((replace(as_duplicate(outcome), lead_id=stored), None, None))
            continue
        open_match = _latest_open(people, lead)
        if open_match is not None:
            target, matched_on = open_match
            ended_as[lead.lead_id] = target.lead_id
            merge = _merge(outcome, lead, target, matched_on)
            out.append((_merged(outcome, target.lead_id), None, merge))
            people.append(
                replace(
                    target,
                    email_key=target.email_key or lead.email_key,
                    phone_key=target.phone_key or lead.phone_key,
                )
            )
            continue
        closed = _latest_closed(people, lead)
        if closed is not None:
            lead = replace(
                lead,
                is_returning=True,
                previous_owner_id=closed.owner_id,
                customer_won_before=_won_before(people, lead),
            )
        ended_as[lead.lead_id] = lead.lead_id
        people.append(
            PersonLead(
                lead_id=lead.lead_id,
                email_key=lead.email_key,
                phone_key=lead.phone_key,
                owner_id=None,
                accepted_at=lead.accepted_at,
                closed_at=None,
                stage="new",
            )
        )
        out.append((outcome, lead, None))
    return out


def settle(
    resolved: Sequence[Resolved], inserted: Set[str]
) -> tuple[Decided, list[tuple[Merge, datetime]]]:
    """The final outcome of each resolved record once its new leads were inserted
    (``inserted``: the ids that were), and the merges to record with their time. A lead
    that was not inserted lost a race on its idempotency key to another partition's
    worker: the record is a duplicate."""
    final: Decided = []
    merges: list[tuple[Merge, datetime]] = []
    for outcome, lead, merge in resolved:
        if lead is not None and lead.lead_id not in inserted:
            final.append((as_duplicate(outcome), None))
        else:
            final.append((outcome, lead))
            if merge is not None:
                merges.append((merge, outcome.recorded_at))
    return final, merges


def replayed_leads(done: Mapping[Position, OutcomeRecord]) -> list[str]:
    """The leads whose accepted events a redelivered batch publishes again."""
    return [
        o.lead_id
        for o in done.values()
        if o.outcome is IngestOutcome.ACCEPTED and o.lead_id is not None
    ]


def in_batch_order(
    proposed: Decided,
    fresh: Decided,
    done: Mapping[Position, OutcomeRecord],
    replayed: Mapping[str, LeadRecord],
) -> Decided:
    """Every record's final outcome in the order of ``proposed``: the fresh ones as
    settled, the ones done before as stored (an accepted one with its stored lead)."""
    final = {o.position: (o, lead) for o, lead in fresh}
    for pos, o in done.items():
        final[pos] = (
            o,
            replayed.get(o.lead_id or "") if o.outcome is IngestOutcome.ACCEPTED else None,
        )
    return [final[o.position] for o, _ in proposed]


def _matches(p: PersonLead, lead: LeadRecord) -> Literal["email", "phone"] | None:
    if lead.email_key is not None and p.email_key == lead.email_key:
        return "email"
    if lead.phone_key is not None and p.phone_key == lead.phone_key:
        return "phone"
    return None


class _People:
    """The people a batch knows, stored and added as it goes, indexed by identity key.

    A record is compared only with the people sharing one of its keys, in the order
    they were added (so ties resolve as a scan of the whole list would): without the
    index every record scanned every lead added before it, quadratic in the batch."""

    def __init__(self, people: Sequence[PersonLead]) -> None:
        self._all: list[PersonLead] = []
        self._by_key: dict[str, list[int]] = {}
        for p in people:
            self.append(p)

    def append(self, p: PersonLead) -> None:
        at = len(self._all)
        self._all.append(p)
        for key in {p.email_key, p.phone_key}:
            if key is not None:
                self._by_key.setdefault(key, []).append(at)

    def sharing_a_key(self, lead: LeadRecord) -> list[tuple[PersonLead, Literal["email", "phone"]]]:
        """The people matching ``lead``, each with the key it matched on, in the order
        they were added."""
        found: set[int] = set()
        for key in (lead.email_key, lead.phone_key):
            if key is not None:
                found.update(self._by_key.get(key, ()))
        # An email key equal to a phone key is not a match: compare field by field.
        return [
            (p, m) for at in sorted(found) if (m := _matches(p := self._all[at], lead)) is not None
        ]


def _latest_open(
    people: _People, lead: LeadRecord
) -> tuple[PersonLead, Literal["email", "phone"]] | None:
    found = [(p, m) for p, m in people.sharing_a_key(lead) if p.closed_at is None]
    return max(found, key=lambda pm: (pm[0].accepted_at, pm[0].lead_id), default=None)


def _latest_closed(people: _People, lead: LeadRecord) -> PersonLead | None:
    closed = [p for p, _ in people.sharing_a_key(lead) if p.closed_at is not None]
    return max(closed, key=lambda p: (p.closed_at, p.lead_id), default=None)


def _won_before(people: _People, lead: LeadRecord) -> bool:
    """Any of the person's stored leads was won, not only the latest to close."""
    return any(p.stage == "won" for p, _ in people.sharing_a_key(lead))


def _merged(outcome: OutcomeRecord, lead_id: str) -> OutcomeRecord:
    return replace(
        outcome,
        outcome=IngestOutcome.DUPLICATE,
        reason="same_person",
        detail="merged into the person's open lead",
        lead_id=lead_id,
    )


def _merge(
    outcome: OutcomeRecord,
    lead: LeadRecord,
    target: PersonLead,
    matched_on: Literal["email", "phone"],
) -> Merge:
    return Merge(
        position=outcome.position,
        lead_id=target.lead_id,
        matched_on=matched_on,
        source=lead.source,
        source_lead_id=lead.source_lead_id,
        proposed_lead_id=lead.lead_id,
        payload={
            "email": lead.email,
            "phone": lead.phone,
            "name": lead.name,
            "occurred_at": lead.occurred_at.isoformat(),
            **{k: v for k, v in lead.fields.items() if v is not None},
            "attributes": lead.attributes,
        },
        email=lead.email,
        email_key=lead.email_key,
        phone=lead.phone,
        phone_key=lead.phone_key,
    )
