"""Person-level dedupe on the returning path: who comes back as a returning lead, and
whether a win of theirs before makes the new lead repeat business
(``customer_won_before``), whatever else the person's stored leads are."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from leadloop.events import IngestOutcome
from leadloop_ingest.domain.dedupe import Known, PersonLead, resolve
from leadloop_ingest.domain.identity import identity_key
from leadloop_ingest.domain.intake import (
    LeadRecord,
    Position,
    RawRecord,
    accepted_event,
    decide,
)
from leadloop_ingest.domain.scoring import ScoringWeights
from leadloop_ingest.domain.validation import Limits

NOW = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)
PEPPER = b"test-pepper-not-a-real-secret"
LIMITS = Limits(sources=frozenset({"web_form", "referral"}), default_phone_region={})
EMAIL = "mei.lin@example.com"
PHONE = "+8613800138000"


def stored(
    lead_id: str,
    stage: str,
    *,
    days_ago: int,
    email: str | None = EMAIL,
    phone: str | None = None,
    owner: str | None = "rep-7",
) -> PersonLead:
    """A stored lead of a person: closed when its stage is won or lost."""
    accepted_at = NOW - timedelta(days=days_ago)
    closed = stage in ("won", "lost")
    return PersonLead(
        lead_id=lead_id,
        email_key=identity_key(PEPPER, "email", email) if email else None,
        phone_key=identity_key(PEPPER, "phone", phone) if phone else None,
        owner_id=owner,
        accepted_at=accepted_at,
        closed_at=accepted_at + timedelta(days=1) if closed else None,
        stage=stage,
    )


def new_lead(people: list[PersonLead], **contact: str) -> LeadRecord:
    """The lead one new record of the person (``contact``) becomes."""
    body = {"source": "referral", "source_lead_id": "r-new", **contact}
    record = RawRecord(Position("leads.raw", 0, 1), None, json.dumps(body).encode(), NOW)
    proposals = decide([record], limits=LIMITS, weights=ScoringWeights(), pepper=PEPPER, now=NOW)
    [(outcome, lead, merge)] = resolve(proposals, Known(stored={}, people=people))
    assert outcome.outcome is IngestOutcome.ACCEPTED
    assert lead is not None
    assert merge is None
    return lead


def test_a_person_with_an_earlier_won_lead_is_repeat_business() -> None:
    lead = new_lead([stored("l-won", "won", days_ago=90)], email=EMAIL)
    assert (lead.is_returning, lead.previous_owner_id, lead.customer_won_before) == (
        True,
        "rep-7",
        True,
    )
    event = accepted_event(lead)
    assert event.customer_won_before is True


def test_any_earlier_win_counts_not_only_the_latest_lead() -> None:
    people = [
        stored("l-won", "won", days_ago=300, owner="rep-1"),
        stored("l-lost", "lost", days_ago=30, owner="rep-2"),
    ]
    lead = new_lead(people, email=EMAIL)
    # Routed back to the owner of the latest closed lead; the older win still counts.
    assert lead.previous_owner_id == "rep-2"
    assert lead.customer_won_before is True


def test_a_person_whose_leads_were_only_lost_returns_but_won_nothing_before() -> None:
    people = [stored("l-1", "lost", days_ago=200), stored("l-2", "lost", days_ago=20)]
    lead = new_lead(people, email=EMAIL)
    assert lead.is_returning is True
    assert lead.customer_won_before is False
    assert accepted_event(lead).customer_won_before is False


def test_a_won_lead_of_another_person_does_not_count() -> None:
    people = [
        stored("other-won", "won", days_ago=10, email="someone.else@example.com"),
        stored("mine-lost", "lost", days_ago=20),
    ]
    lead = new_lead(people, email=EMAIL)
    assert lead.is_returning is True
    assert lead.customer_won_before is False


def test_an_earlier_win_is_recognised_by_phone_as_by_email() -> None:
    people = [stored("by-phone", "won", days_ago=40, email=None, phone=PHONE)]
    lead = new_lead(people, email="new.address@example.com", phone=PHONE)
    assert lead.customer_won_before is True


def test_a_first_time_customer_has_won_nothing_before() -> None:
    lead = new_lead([], email=EMAIL)
    assert (lead.is_returning, lead.customer_won_before) == (False, False)


@pytest.mark.parametrize("stage", ["new", "assigned", "proposal"])
def test_a_person_with_an_open_lead_is_merged_not_a_repurchase(stage: str) -> None:
    body = {"source": "referral", "source_lead_id": "r-new", "email": EMAIL}
    record = RawRecord(Position("leads.raw", 0, 1), None, json.dumps(body).encode(), NOW)
    proposals = decide([record], limits=LIMITS, weights=ScoringWeights(), pepper=PEPPER, now=NOW)
    people = [stored("won", "won", days_ago=90), stored("open", stage, days_ago=3)]
    [(outcome, lead, merge)] = resolve(proposals, Known(stored={}, people=people))
    assert (outcome.outcome, outcome.lead_id, lead) == (IngestOutcome.DUPLICATE, "open", None)
    assert merge is not None


def test_a_stored_phone_key_equal_to_the_new_email_key_is_not_the_same_person() -> None:
    """The identity index holds email and phone keys side by side; a match is still
    field by field."""
    email_key = identity_key(PEPPER, "email", EMAIL)
    odd = PersonLead(
        lead_id="l-odd",
        email_key=None,
        phone_key=email_key,
        owner_id="rep-9",
        accepted_at=NOW - timedelta(days=3),
        closed_at=NOW - timedelta(days=2),
        stage="won",
    )
    lead = new_lead([odd], email=EMAIL)
    assert not lead.is_returning
    assert not lead.customer_won_before


def test_the_latest_of_several_closed_leads_sharing_either_key_gives_the_previous_owner() -> None:
    by_email = stored("l-1", "lost", days_ago=30, owner="rep-1")
    by_phone = stored("l-2", "lost", days_ago=10, email=None, phone=PHONE, owner="rep-2")
    someone_else = stored("l-3", "lost", days_ago=5, email="x@example.com", owner="rep-3")
    lead = new_lead([by_phone, someone_else, by_email], email=EMAIL, phone=PHONE)
    assert lead.is_returning
    assert lead.previous_owner_id == "rep-2"
