"""Builders for the notifier's unit tests: the shipped calendars, a config, events."""

from __future__ import annotations

import uuid
from datetime import datetime
from pathlib import Path
from typing import Any

import yaml

from leadloop.calendar import CalendarSet
from leadloop.events import (
    EscalationAction,
    EscalationKind,
    EscalationRaised,
    EscalationStatus,
    LeadAccepted,
    LeadAssigned,
    RepUpdated,
    StageChanged,
)
from leadloop_notifier.domain.config import NotifyConfig

ROOT = Path(__file__).resolve().parents[3]
CALENDARS = CalendarSet.model_validate(
    yaml.safe_load((ROOT / "config" / "calendars.yaml").read_text(encoding="utf-8"))
)

CONFIG: dict[str, Any] = {
    "channels": {
        "wecom_app": {"kind": "wecom_app"},
        "dingtalk": {"kind": "dingtalk_robot"},
        "email": {"kind": "email"},
        "team_robot": {"kind": "wecom_robot"},
    },
    "default": {
        "templates": "en",
        "crm_link": "https://crm.example.com/leads/{lead_id}",
        "person_channels": ["email"],
        "coalesce_seconds": 0,
    },
    "teams": {
        "team-cn": {
            "templates": "zh-CN",
            "crm_link": "https://crm.example.com/l/{lead_id}",
            "person_channels": ["wecom_app", "dingtalk", "email"],
            "coalesce_seconds": 60,
            "pool_channel": {"channel": "team_robot", "address_env": "TEAM_CN_ROBOT"},
        },
    },
    "reminders": [
        {"name": "qualify_confirm", "stage": "qualified"},
        {"name": "proposal_followup", "stage": "proposal", "after_business_days": 2},
        {"name": "negotiation_followup", "stage": "negotiation", "after_business_hours": 8},
        {"name": "revisit", "stage": "won", "after_days": 30},
    ],
}


def config(**changes: Any) -> NotifyConfig:
    return NotifyConfig.model_validate({**CONFIG, **changes})


def eid() -> str:
    return str(uuid.uuid4())


def rep(
    rep_id: str,
    at: datetime,
    *,
    team: str = "team-cn",
    manager: str | None = "mgr-1",
    contacts: dict[str, str] | None = None,
    status: str = "active",
    timezone: str = "Asia/Shanghai",
) -> RepUpdated:
    return RepUpdated.model_validate(
        {
            "event_id": eid(),
            "rep_id": rep_id,
            "team_id": team,
            "manager_id": manager,
            "status": status,
            "timezone": timezone,
            "updated_at": at,
            "contacts": {"wecom_app": f"wx-{rep_id}"} if contacts is None else contacts,
        }
    )


def accepted(lead: str, at: datetime, **fields: Any) -> LeadAccepted:
    return LeadAccepted.model_validate(
        {
            "event_id": eid(),
            "occurred_at": at,
            "lead_id": lead,
            "source": "web_form",
            "source_lead_id": lead,
            "accepted_at": at,
            "score": 80,
            "priority": "hot",
            **fields,
        }
    )


def assigned(
    lead: str, owner: str | None, at: datetime, *, team: str = "team-cn", sequence: int = 0
) -> LeadAssigned:
    return LeadAssigned.model_validate(
        {
            "event_id": eid(),
            "occurred_at": at,
            "assignment_id": eid(),
            "lead_id": lead,
            "owner_id": owner,
            "team_id": team,
            "rule_id": "r1",
            "rule_version": "1",
            "strategy": "round_robin" if owner else "pool",
            "kind": "initial" if owner else "pooled",
            "reason": "test",
            "lead_occurred_at": at,
            "assigned_at": at,
            "priority": "hot",
            "sequence": sequence,
        }
    )


def escalation(
    lead: str,
    owner: str | None,
    at: datetime,
    *,
    action: EscalationAction = EscalationAction.REMIND_OWNER,
    status: EscalationStatus = EscalationStatus.FIRING,
    kind: EscalationKind = EscalationKind.FIRST_RESPONSE,
    escalation_id: str | None = None,
    manager: str | None = "mgr-1",
    level: int = 1,
    team: str = "team-cn",
    occurred_at: datetime | None = None,
) -> EscalationRaised:
    return EscalationRaised(
        event_id=eid(),
        occurred_at=occurred_at or at,
        escalation_id=escalation_id or f"esc-{lead}-{level}",
        lead_id=lead,
        owner_id=owner,
        team_id=team,
        manager_id=manager,
        policy_id="fr",
        kind=kind,
        level=level,
        action=action,
        due_at=at,
        breached_at=at,
        status=status,
    )


def stage(lead: str, name: str, at: datetime, rep_id: str = "rep-a") -> StageChanged:
    body: dict[str, Any] = {
        "event_id": eid(),
        "lead_id": lead,
        "stage": name,
        "occurred_at": at,
        "rep_id": rep_id,
    }
    if name == "lost":
        body["loss_reason"] = "no_budget"
    return StageChanged.model_validate(body)
