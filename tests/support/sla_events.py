"""The input events of sla-monitor's tests (the domain's unit tests and the store's
tests on PostgreSQL): one team, "north", on a calendar that is always open, from T0.
Each test file adds its own follow-up and stage-stall policies: their limits are what
its cases are about."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from leadloop.calendar import CalendarSet
from leadloop.events import (
    ActivityRecorded,
    LeadAccepted,
    LeadAssigned,
    RepUpdated,
    StageChanged,
)

__all__ = [
    "ALWAYS",
    "DAY",
    "FIRST_RESPONSE",
    "T0",
    "H",
    "accepted",
    "assigned",
    "at",
    "rep",
    "stage",
    "touch",
]

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
H = 3600
DAY = 86400

ALWAYS = CalendarSet.model_validate(
    {
        "default": "always",
        "calendars": {
            "always": {
                "timezone": "UTC",
                "weekly": {
                    d: ["00:00-24:00"]
                    for d in (
                        "monday",
                        "tuesday",
                        "wednesday",
                        "thursday",
                        "friday",
                        "saturday",
                        "sunday",
                    )
                },
            }
        },
    }
)

#: The first-response policies both files use: hot lead-ads leads get 5 minutes, the
#: rest an hour, with a reclaim warning before the lead returns to the pool.
FIRST_RESPONSE: list[dict[str, Any]] = [
    {
        "policy_id": "fr-hot-ads",
        "kind": "first_response",
        "when": {"priority": ["hot"], "source": ["lead_ads"]},
        "limit_seconds": 300,
        "ladder": [
            {"level": 1, "after_seconds": 0, "action": "remind_owner"},
            {"level": 2, "after_seconds": 600, "action": "notify_manager"},
        ],
    },
    {
        "policy_id": "fr-default",
        "kind": "first_response",
        "limit_seconds": H,
        "ladder": [
            {"level": 1, "after_seconds": 0, "action": "remind_owner"},
            {
                "level": 2,
                "after_seconds": H,
                "action": "return_to_pool",
                "warn_before_seconds": 1800,
            },
            {"level": 3, "after_seconds": 2 * H, "action": "page_oncall"},
        ],
    },
]


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


def assigned(lead: str, owner: str | None, when: datetime, kind: str = "initial") -> LeadAssigned:
    return LeadAssigned(
        event_id=str(uuid.uuid4()),
        occurred_at=when,
        assignment_id=f"a-{uuid.uuid4().hex[:8]}",
        lead_id=lead,
        owner_id=owner,
        team_id="north",
        rule_id="r",
        rule_version="1",
        strategy="pool" if owner is None else "round_robin",
        kind=kind,
        reason="test",
        lead_occurred_at=when,
        assigned_at=when,
        priority="hot",
    )


def accepted(lead: str, source: str, priority: str = "hot") -> LeadAccepted:
    return LeadAccepted(
        event_id=str(uuid.uuid4()),
        occurred_at=T0,
        lead_id=lead,
        source=source,
        source_lead_id=lead,
        accepted_at=T0,
        score=50,
        priority=priority,
    )


def touch(
    lead: str, when: datetime, kind: str = "call", promise: datetime | None = None
) -> ActivityRecorded:
    return ActivityRecorded(
        event_id=str(uuid.uuid4()),
        lead_id=lead,
        rep_id="rep-a",
        kind=kind,
        occurred_at=when,
        next_followup_at=promise,
    )


def stage(lead: str, name: str, when: datetime) -> StageChanged:
    extra: dict[str, Any] = {"loss_reason": "timing"} if name == "lost" else {}
    return StageChanged(
        event_id=str(uuid.uuid4()),
        lead_id=lead,
        stage=name,
        occurred_at=when,
        rep_id="rep-a",
        **extra,
    )


def rep(rep_id: str, manager: str | None, when: datetime = T0) -> RepUpdated:
    return RepUpdated(rep_id=rep_id, team_id="north", manager_id=manager, updated_at=when)
