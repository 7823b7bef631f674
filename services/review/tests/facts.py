"""Stored facts as the metrics service writes them (``fact_to_json``), for the tests."""

from __future__ import annotations

from datetime import datetime
from typing import Any


def _t(at: datetime | None) -> str | None:
    return None if at is None else at.isoformat()


def accepted(lead: str, at: datetime, source: str = "web_form", **attrs: Any) -> dict[str, Any]:
    return {
        "type": "Accepted",
        "event_id": f"acc-{lead}",
        "lead_id": lead,
        "source": source,
        "accepted_at": _t(at),
        "priority": "warm",
        "customer_won_before": False,
        "campaign": None,
        "product": None,
        "industry": None,
        "region": None,
        "country": None,
        "company_size": None,
        "score": 50,
        **attrs,
    }


def assigned(lead: str, at: datetime, team: str, owner: str | None, n: int = 0) -> dict[str, Any]:
    return {
        "type": "Assigned",
        "event_id": f"asg-{lead}-{n}",
        "lead_id": lead,
        "team": team,
        "owned": owner is not None,
        "strategy": "round_robin",
        "kind": "initial",
        "assigned_at": _t(at),
        "priority": "warm",
        "owner": owner,
        "previous_owner": None,
    }


def touched(lead: str, at: datetime, n: int = 0, touch: bool = True) -> dict[str, Any]:
    return {
        "type": "Touched",
        "event_id": f"tch-{lead}-{n}",
        "lead_id": lead,
        "touch": touch,
        "occurred_at": _t(at),
        "rep": None,
    }


def stage(
    lead: str, at: datetime, name: str, amount: float | None = None, reason: str | None = None
) -> dict[str, Any]:
    return {
        "type": "StageMoved",
        "event_id": f"stg-{lead}-{name}",
        "lead_id": lead,
        "stage": name,
        "occurred_at": _t(at),
        "amount": amount,
        "loss_reason": reason,
        "expected_close": None,
    }


def escalated(
    lead: str,
    at: datetime,
    owner: str | None,
    level: int = 1,
    kind: str = "first_response",
    firing: bool = True,
) -> dict[str, Any]:
    return {
        "type": "Escalated",
        "event_id": f"esc-{lead}-{level}-{firing}",
        "lead_id": lead,
        "escalation_id": f"esc-{lead}-{level}",
        "team": "t",
        "policy_id": "p",
        "kind": kind,
        "level": level,
        "firing": firing,
        "owner": owner,
        "breached_at": _t(at),
    }


def rated(lead: str, at: datetime, score: int, rep: str | None) -> dict[str, Any]:
    return {
        "type": "Rated",
        "event_id": f"rat-{lead}",
        "lead_id": lead,
        "score": score,
        "occurred_at": _t(at),
        "rep": rep,
    }


def silenced(lead: str, since: datetime) -> dict[str, Any]:
    return {
        "type": "Silenced",
        "event_id": f"sil-{lead}",
        "lead_id": lead,
        "quiet_since": _t(since),
    }
