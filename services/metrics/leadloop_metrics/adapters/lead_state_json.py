"""The stored form of a lead's metric state (``metric_leads.state``, JSON): what the
PostgreSQL adapter writes and reads back. A state read back equals the one written;
fields added since a row was stored get their defaults."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from leadloop_metrics.domain.leads import (
    Clock,
    FirstResponse,
    LeadState,
    Lost,
    Order,
    Rating,
    StageTime,
    Won,
)

__all__ = ["state_from_json", "state_to_json"]


def _t(value: datetime | None) -> str | None:
    return None if value is None else value.isoformat()


def _dt(value: str | None) -> datetime | None:
    return None if value is None else datetime.fromisoformat(value)


def _date(value: str | None) -> date | None:
    return None if value is None else date.fromisoformat(value)


def _order_out(o: Order | None) -> list[str] | None:
    return None if o is None else [o[0].isoformat(), o[1]]


def _order_in(o: list[str] | None) -> Order | None:
    return None if o is None else (datetime.fromisoformat(o[0]), o[1])


def state_to_json(s: LeadState) -> dict[str, Any]:
    return {
        "source": s.source,
        "accepted_at": _t(s.accepted_at),
        "priority": s.priority,
        "customer_won_before": s.customer_won_before,
        "team": s.team,
        "owned": s.owned,
        "owner": s.owner,
        "assignment_order": _order_out(s.assignment_order),
        "first_assigned_at": _t(s.first_assigned_at),
        "first_owned_at": _t(s.first_owned_at),
        "first_owner": s.first_owner,
        "first_owned_order": _order_out(s.first_owned_order),
        "first_touch_at": _t(s.first_touch_at),
        "last_activity_at": _t(s.last_activity_at),
        "silenced": _t(s.silenced),
        "crm_stage": s.crm_stage,
        "stage_order": _order_out(s.stage_order),
        "amount_cents": s.amount_cents,
        "amount_order": _order_out(s.amount_order),
        "expected_close": None if s.expected_close is None else s.expected_close.isoformat(),
        "expected_close_order": _order_out(s.expected_close_order),
        "loss_reason": s.loss_reason,
        "reached": sorted(s.reached),
        "stage_entered": [[stage, when.isoformat()] for stage, when in s.stage_entered],
        "stage_times": [[st.stage, st.millis, st.team] for st in s.stage_times],
        "won": None if s.won is None else [s.won.team, s.won.cents, s.won.rep],
        "lost": (
            None if s.lost is None else [s.lost.team, s.lost.stage, s.lost.reason, s.lost.rep]
        ),
        "first_response": (
            None
            if s.first_response is None
            else [
                s.first_response.millis,
                s.first_response.team,
                s.first_response.priority,
                s.first_response.rep,
            ]
        ),
        "assignment_latency_ms": s.assignment_latency_ms,
        "clocks": [
            [c.escalation_id, c.kind, c.policy_id, c.fired, c.resolved, c.owner, _t(c.breached_at)]
            for c in s.clocks
        ],
        "ratings": [[r.event_id, r.score, r.rep, r.team] for r in s.ratings],
    }


def _at(values: list[Any], i: int) -> Any:
    """Element ``i`` of a stored list, None when it was stored before it was kept."""
    return values[i] if len(values) > i else None


def state_from_json(lead_id: str, d: dict[str, Any]) -> LeadState:
    # States stored before per-rep series were kept lack the rep fields: None.
    won, lost, fr = d["won"], d["lost"], d["first_response"]
    return LeadState(
        lead_id=lead_id,
        source=d["source"],
        accepted_at=_dt(d["accepted_at"]),
        priority=d["priority"],
        customer_won_before=bool(d.get("customer_won_before", False)),
        team=d["team"],
        owned=d["owned"],
        owner=d.get("owner"),
        assignment_order=_order_in(d["assignment_order"]),
        first_assigned_at=_dt(d["first_assigned_at"]),
        first_owned_at=_dt(d["first_owned_at"]),
        first_owner=d.get("first_owner"),
        first_owned_order=_order_in(d.get("first_owned_order")),
        first_touch_at=_dt(d["first_touch_at"]),
        last_activity_at=_dt(d.get("last_activity_at")),
        silenced=_dt(d.get("silenced")),
        crm_stage=d["crm_stage"],
        stage_order=_order_in(d["stage_order"]),
        amount_cents=d["amount_cents"],
        amount_order=_order_in(d["amount_order"]),
        # States stored before the expected close date was kept have neither key.
        expected_close=_date(d.get("expected_close")),
        expected_close_order=_order_in(d.get("expected_close_order")),
        loss_reason=d["loss_reason"],
        reached=frozenset(d["reached"]),
        # States stored before stage times were kept have neither key.
        stage_entered=tuple(
            (stage, datetime.fromisoformat(when)) for stage, when in d.get("stage_entered", [])
        ),
        stage_times=tuple(StageTime(st[0], int(st[1]), st[2]) for st in d.get("stage_times", [])),
        won=None if won is None else Won(won[0], int(won[1]), _at(won, 2)),
        lost=None if lost is None else Lost(lost[0], lost[1], lost[2], _at(lost, 3)),
        first_response=(
            None if fr is None else FirstResponse(int(fr[0]), fr[1], fr[2], _at(fr, 3))
        ),
        assignment_latency_ms=d["assignment_latency_ms"],
        clocks=tuple(
            Clock(c[0], c[1], c[2], bool(c[3]), bool(c[4]), _at(c, 5), _dt(_at(c, 6)))
            for c in d["clocks"]
        ),
        ratings=tuple(Rating(r[0], int(r[1]), r[2], r[3]) for r in d.get("ratings", [])),
    )
