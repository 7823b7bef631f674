"""On-call alerts: which escalations page, what Alertmanager is sent, how retries back off.

An alert's labels identify the escalation step and carry no personal data (ids only),
so Alertmanager's grouping, deduplication, silences and routes work on them: the same
step sent twice is one alert. A firing alert is held open ``firing_hold_seconds``
(Alertmanager would otherwise resolve it by itself after its ``resolve_timeout``); the
resolve is sent as the same labels with ``endsAt`` set to when the lead was touched.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from leadloop.events import EscalationAction, EscalationRaised, EscalationStatus

__all__ = ["ALERT_NAME", "Alerting", "DeliveryFailed", "alert_payload", "retry_delay"]

#: The ``alertname`` of every SLA page; Alertmanager routes and silences match on it.
ALERT_NAME = "LeadSlaEscalation"


class Alerting(BaseModel):
    """Which escalation actions go to Alertmanager, and how (``alerting:`` in sla.yaml)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    actions: frozenset[EscalationAction] = frozenset({EscalationAction.PAGE_ONCALL})
    #: How long a firing alert stays open in Alertmanager without a resolve.
    firing_hold_seconds: Annotated[float, Field(gt=0)] = 7 * 86400
    #: First retry delay after a failed delivery; doubles per attempt up to the cap.
    retry_base_seconds: Annotated[float, Field(gt=0)] = 1.0
    retry_max_seconds: Annotated[float, Field(gt=0)] = 60.0


def retry_delay(attempts: int, alerting: Alerting) -> timedelta:
    """Delay before the next try after ``attempts`` failed ones (exponential, capped)."""
    exponent = min(max(attempts - 1, 0), 30)
    seconds = min(alerting.retry_base_seconds * 2**exponent, alerting.retry_max_seconds)
    return timedelta(seconds=seconds)


def alert_payload(e: EscalationRaised, *, now: datetime, alerting: Alerting) -> dict[str, Any]:
    """One element of Alertmanager's ``POST /api/v2/alerts`` body."""
    labels = {
        "alertname": ALERT_NAME,
        "severity": "page" if e.action is EscalationAction.PAGE_ONCALL else "warning",
        "team": e.team_id,
        "kind": e.kind.value,
        "policy": e.policy_id,
        "level": str(e.level),
        "action": e.action.value,
        "escalation_id": e.escalation_id,
        "lead_id": e.lead_id,
    }
    annotations = {
        "summary": f"{e.kind.value} SLA of lead {e.lead_id}: level {e.level}, {e.action.value}",
        "due_at": e.due_at.isoformat(),
        "owner_id": e.owner_id or "",
        "manager_id": e.manager_id or "",
    }
    if e.status is EscalationStatus.RESOLVED:
        ends = max(e.occurred_at, e.breached_at)
    else:
        ends = now + timedelta(seconds=alerting.firing_hold_seconds)
    return {
        "labels": labels,
        "annotations": annotations,
        "startsAt": e.breached_at.isoformat(),
        "endsAt": ends.isoformat(),
    }


class DeliveryFailed(Exception):
    """Alertmanager did not accept a batch; ``reason`` is a short code (never data)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
