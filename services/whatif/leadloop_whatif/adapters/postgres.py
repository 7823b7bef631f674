"""Reads the stored history and the record of what happened, from PostgreSQL.

The leads of a range are those assignment first decided in it; for them it reads their
touches and stage changes, their decisions and their ladder steps up to the range's
end. Read-only: a login of the ``leadloop_whatif`` role may SELECT exactly these tables
(``deploy/postgres/migrations/0018_whatif.sql``). No personal data: ``assignment_leads``
holds the PII-free ``leads.accepted`` event.

The roster is the one assignment keeps now (``assignment_reps``: the latest
``crm.reps`` entry per rep); its history is not stored, so a replay sees today's roster
at every moment of the range.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from leadloop.events import (
    ActivityKind,
    EscalationAction,
    EscalationKind,
    LeadAccepted,
    RepStatus,
    RepUpdated,
    Stage,
)
from leadloop_whatif.domain.history import (
    Arrival,
    Decided,
    History,
    Outcome,
    StageMove,
    Step,
    Touch,
)

__all__ = ["read_history"]

# The range's leads are those first decided in [$1, $2) (the subquery in each).

_ARRIVALS = (
    "SELECT l.lead::text AS lead, a.assigned_at FROM assignments a "
    "JOIN assignment_leads l ON l.lead_id = a.lead_id "
    "WHERE a.kind IN ('initial', 'pooled') AND a.assigned_at >= $1 AND a.assigned_at < $2 "
    "AND l.lead IS NOT NULL"
)

_TOUCHES = (
    "SELECT event_id, lead_id, rep_id, kind, occurred_at, next_followup_at FROM lead_activities "
    "WHERE occurred_at < $2 AND lead_id IN "
    "(SELECT lead_id FROM assignments WHERE kind IN ('initial', 'pooled') "
    "AND assigned_at >= $1 AND assigned_at < $2)"
)

_STAGES = (
    "SELECT event_id, lead_id, rep_id, stage, occurred_at FROM lead_stage_changes "
    "WHERE occurred_at < $2 AND lead_id IN "
    "(SELECT lead_id FROM assignments WHERE kind IN ('initial', 'pooled') "
    "AND assigned_at >= $1 AND assigned_at < $2)"
)

_ROSTER = (
    "SELECT rep_id, team_id, manager_id, status, capacity, weight, timezone, updated_at "
    "FROM assignment_reps ORDER BY rep_id"
)

_DECISIONS = (
    "SELECT assignment_id, lead_id, seq, kind, owner_id, team_id, rule_id, previous_owner_id, "
    "assigned_at FROM assignments WHERE assigned_at < $2 AND lead_id IN "
    "(SELECT lead_id FROM assignments WHERE kind IN ('initial', 'pooled') "
    "AND assigned_at >= $1 AND assigned_at < $2)"
)

_STEPS = (
    "SELECT escalation_id, status, lead_id, kind, level, action, occurred_at FROM escalations "
    "WHERE occurred_at < $2 AND lead_id IN "
    "(SELECT lead_id FROM assignments WHERE kind IN ('initial', 'pooled') "
    "AND assigned_at >= $1 AND assigned_at < $2)"
)


async def read_history(url: str, start: datetime, end: datetime) -> tuple[History, Outcome]:
    """The history of [start, end) and what actually happened to its leads."""
    conn = await asyncpg.connect(url)
    try:
        async with conn.transaction(isolation="repeatable_read", readonly=True):
            arrivals = await conn.fetch(_ARRIVALS, start, end)
            touches = await conn.fetch(_TOUCHES, start, end)
            stages = await conn.fetch(_STAGES, start, end)
            roster = await conn.fetch(_ROSTER)
            decisions = await conn.fetch(_DECISIONS, start, end)
            steps = await conn.fetch(_STEPS, start, end)
    finally:
        await conn.close()
    history = History(
        arrivals=[
            Arrival(LeadAccepted.model_validate_json(r["lead"]), r["assigned_at"]) for r in arrivals
        ],
        touches=[
            Touch(
                r["event_id"],
                r["lead_id"],
                r["rep_id"],
                ActivityKind(r["kind"]),
                r["occurred_at"],
                r["next_followup_at"],
            )
            for r in touches
        ],
        stages=[
            StageMove(r["event_id"], r["lead_id"], r["rep_id"], Stage(r["stage"]), r["occurred_at"])
            for r in stages
        ],
        roster=[
            RepUpdated(
                rep_id=r["rep_id"],
                team_id=r["team_id"],
                manager_id=r["manager_id"],
                status=RepStatus(r["status"]),
                capacity=r["capacity"],
                weight=r["weight"],
                timezone=r["timezone"],
                updated_at=r["updated_at"],
            )
            for r in roster
        ],
        start=start,
        end=end,
    )
    actual = Outcome(
        decisions=[
            Decided(
                assignment_id=r["assignment_id"],
                lead_id=r["lead_id"],
                sequence=r["seq"],
                kind=r["kind"],
                owner_id=r["owner_id"],
                team_id=r["team_id"],
                rule_id=r["rule_id"],
                previous_owner_id=r["previous_owner_id"] if r["seq"] else None,
                at=r["assigned_at"],
            )
            for r in decisions
        ],
        steps=[
            Step(
                r["escalation_id"],
                r["status"],
                r["lead_id"],
                EscalationKind(r["kind"]),
                r["level"],
                EscalationAction(r["action"]),
                r["occurred_at"],
            )
            for r in steps
        ],
    )
    return history, actual
