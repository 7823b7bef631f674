"""PostgreSQL side of a lead's life: owner, stage and timeline, each event applied once.

Each event's row is inserted with its ``event_id`` as the key; only a newly inserted
event changes the lead, so a redelivery changes nothing. Stage and owner follow the
event time, not arrival order: an older event arriving late does not overwrite a newer
state.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from leadloop.events import (
    ActivityRecorded,
    LeadAssigned,
    SatisfactionRecorded,
    Stage,
    StageChanged,
)
from leadloop_ingest.domain.intake import Position
from leadloop_ingest.domain.timeline import (
    QUALIFYING_ACTIVITIES,
    CrmRejection,
    TimelineEvent,
    Unusable,
)

__all__ = ["TimelineStore"]

_CLOSED = (Stage.WON.value, Stage.LOST.value)


class TimelineStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def apply(
        self,
        events: Sequence[tuple[Position, TimelineEvent]],
        rejected: Sequence[Unusable],
        now: datetime,
    ) -> list[Unusable]:
        """Apply valid events once; return every rejection (given or unknown lead)."""
        unusable = list(rejected)
        async with self._pool.acquire() as conn, conn.transaction():
            ids = sorted({e.lead_id for _, e in events})
            known = {
                r["lead_id"]
                for r in await conn.fetch(
                    "SELECT lead_id FROM leads WHERE lead_id = ANY($1::text[]) "
                    "ORDER BY lead_id FOR UPDATE",
                    ids,
                )
            }
            for position, event in events:
                if event.lead_id not in known:
                    unusable.append(
                        Unusable(position, CrmRejection("unknown_lead", "no such lead_id"), now)
                    )
                elif isinstance(event, LeadAssigned):
                    await self._owner(conn, event)
                elif isinstance(event, ActivityRecorded):
                    await self._activity(conn, event, now)
                elif isinstance(event, StageChanged):
                    await self._stage(conn, event, now)
                else:
                    await self._satisfaction(conn, event, now)
            if unusable:
                await conn.executemany(
                    "INSERT INTO crm_rejects (raw_topic, raw_partition, raw_offset, reason, "
                    "detail, recorded_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
                    [
                        (
                            u.position.topic,
                            u.position.partition,
                            u.position.offset,
                            u.rejection.reason,
                            u.rejection.detail,
                            u.recorded_at,
                        )
                        for u in unusable
                    ],
                )
        return unusable

    async def _owner(self, conn: asyncpg.Connection, e: LeadAssigned) -> None:
        new = await conn.fetchval(
            "INSERT INTO lead_ownership (event_id, lead_id, owner_id, kind, assigned_at) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING RETURNING true",
            e.event_id,
            e.lead_id,
            e.owner_id,
            e.kind.value,
            e.assigned_at,
        )
        if new:
            await conn.execute(
                "UPDATE leads SET owner_id = $2, "
                "stage = CASE WHEN stage = 'new' THEN 'assigned' ELSE stage END "
                "WHERE lead_id = $1 AND NOT EXISTS (SELECT 1 FROM lead_ownership o "
                "WHERE o.lead_id = $1 AND o.assigned_at > $3)",
                e.lead_id,
                e.owner_id,
                e.assigned_at,
            )

    async def _activity(self, conn: asyncpg.Connection, e: ActivityRecorded, now: datetime) -> None:
        new = await conn.fetchval(
            "INSERT INTO lead_activities (event_id, lead_id, rep_id, kind, occurred_at, outcome, "
            "next_followup_at, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) "
            "ON CONFLICT DO NOTHING RETURNING true",
            e.event_id,
            e.lead_id,
            e.rep_id,
            e.kind.value,
            e.occurred_at,
            e.outcome,
            e.next_followup_at,
            now,
        )
        if new and e.kind.value in QUALIFYING_ACTIVITIES:
            # The default pipeline: the first qualifying touch makes the lead contacted.
            await conn.execute(
                "UPDATE leads SET stage = 'contacted', stage_changed_at = $2 "
                "WHERE lead_id = $1 AND stage IN ('new', 'assigned')",
                e.lead_id,
                e.occurred_at,
            )

    async def _stage(self, conn: asyncpg.Connection, e: StageChanged, now: datetime) -> None:
        new = await conn.fetchval(
            "INSERT INTO lead_stage_changes (event_id, lead_id, stage, occurred_at, rep_id, "
            "amount, expected_close_date, loss_reason, recorded_at) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT DO NOTHING RETURNING true",
            e.event_id,
            e.lead_id,
            e.stage.value,
            e.occurred_at,
            e.rep_id,
            e.amount,
            e.expected_close_date,
            e.loss_reason.value if e.loss_reason else None,
            now,
        )
        if new:
            await conn.execute(
                "UPDATE leads SET stage = $2, stage_changed_at = $3, "
                "closed_at = CASE WHEN $2 = ANY($4::text[]) THEN $3 ELSE NULL END "
                "WHERE lead_id = $1 AND (stage_changed_at IS NULL OR stage_changed_at <= $3)",
                e.lead_id,
                e.stage.value,
                e.occurred_at,
                list(_CLOSED),
            )

    async def _satisfaction(
        self, conn: asyncpg.Connection, e: SatisfactionRecorded, now: datetime
    ) -> None:
        # A score changes nothing else about the lead: kept for review, once per event.
        await conn.execute(
            "INSERT INTO lead_satisfaction (event_id, lead_id, rep_id, score, survey_id, "
            "occurred_at, recorded_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
            "ON CONFLICT DO NOTHING",
            e.event_id,
            e.lead_id,
            e.rep_id,
            e.score,
            e.survey_id,
            e.occurred_at,
            now,
        )
