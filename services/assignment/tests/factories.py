"""Builders the assignment unit tests share."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from leadloop.events import LeadAccepted, Priority

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)


def make_lead(lead_id: str = "lead-1", **fields: Any) -> LeadAccepted:
    base: dict[str, Any] = {
        "event_id": f"ev-{lead_id}",
        "occurred_at": NOW,
        "lead_id": lead_id,
        "source": "web_form",
        "source_lead_id": lead_id,
        "accepted_at": NOW,
        "score": 20,
        "priority": Priority.COLD,
    }
    base.update(fields)
    return LeadAccepted(**base)
