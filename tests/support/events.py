"""Builders for the events tests produce in place of the other services and the CRM."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from leadloop.events import (
    EscalationAction,
    EscalationKind,
    EscalationRaised,
    EscalationStatus,
    LeadAccepted,
    Priority,
)

__all__ = ["accepted", "escalation"]


def escalation(
    lead_id: str,
    owner: str | None,
    team: str,
    at: datetime,
    *,
    event_id: str,
    escalation_id: str,
    level: int = 1,
    action: EscalationAction = EscalationAction.REMIND_OWNER,
    status: EscalationStatus = EscalationStatus.FIRING,
    policy_id: str = "first-response",
    manager: str | None = None,
) -> EscalationRaised:
    """A first-response escalation step, due and breached at ``at``."""
    return EscalationRaised(
        event_id=event_id,
        occurred_at=at,
        escalation_id=escalation_id,
        lead_id=lead_id,
        owner_id=owner,
        team_id=team,
        manager_id=manager,
        policy_id=policy_id,
        kind=EscalationKind.FIRST_RESPONSE,
        level=level,
        action=action,
        due_at=at,
        breached_at=at,
        status=status,
    )


def accepted(
    lead_id: str,
    at: datetime,
    *,
    event_id: str,
    source: str,
    source_lead_id: str,
    score: int,
    priority: Priority | str,
    **fields: Any,
) -> LeadAccepted:
    """A lead as ingest accepts it, at ``at``; ``fields`` are the optional ones."""
    return LeadAccepted(
        event_id=event_id,
        occurred_at=at,
        lead_id=lead_id,
        source=source,
        source_lead_id=source_lead_id,
        accepted_at=at,
        score=score,
        priority=priority,
        **fields,
    )
