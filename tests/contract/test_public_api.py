"""The public API of the event contract is pinned (as encode/httpx pins its
``__all__``): removing or renaming a name breaks every service and outside consumer
that imports it, so it must fail here first. Adding a name means adding it below."""

from __future__ import annotations

from leadloop import events

EXPECTED_EVENTS_API = [
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


def test_events_public_api_is_pinned() -> None:
    assert sorted(events.__all__) == sorted(EXPECTED_EVENTS_API)
    assert len(set(events.__all__)) == len(events.__all__), "duplicate names in __all__"


def test_every_public_name_exists() -> None:
    missing = [name for name in events.__all__ if not hasattr(events, name)]
    assert missing == []


def test_no_public_looking_name_is_left_out() -> None:
    # A public class or function defined in the module but missing from __all__ is
    # either private by accident or an unpinned part of the contract.
    defined_here = {
        name
        for name, value in vars(events).items()
        if not name.startswith("_") and getattr(value, "__module__", None) == events.__name__
    }
    assert defined_here <= set(events.__all__)


def test_lead_accepted_extensions_read_as_before_when_absent() -> None:
    # Fields added to leads.accepted after its first consumers (customer_won_before,
    # for repurchases) are optional and say "no" when absent: an event written before
    # them, or by a producer that does not know them, means what it meant then.
    minimal = {
        "event_id": "e-1",
        "occurred_at": "2026-03-03T10:05:00+01:00",
        "lead_id": "l-1",
        "source": "web_form",
        "source_lead_id": "wf-1",
        "accepted_at": "2026-03-03T10:05:00+01:00",
        "score": 20,
        "priority": "cold",
    }
    event = events.LeadAccepted.model_validate(minimal)
    assert (event.is_returning, event.previous_owner_id, event.customer_won_before) == (
        False,
        None,
        False,
    )
