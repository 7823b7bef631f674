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
            # Consecutive assignments go in one statement; every other event keeps its
            # place between them (a stage change and an owner both touch the stage).
            owners: list[LeadAssigned] = []
            for position, event in events:
                if event.lead_id not in known:
                    unusable.append(
                        Unusable(position, CrmRejection("unknown_lead", "no such lead_id"), now)
                    )
                    continue
                if isinstance(event, LeadAssigned):
                    owners.append(event)
                    continue
                await self._owners(conn, owners)
                owners.clear()
                if isinstance(event, ActivityRecorded):
                    await self._activity(conn, event, now)
                elif isinstance(event, StageChanged):
                    await self._stage(conn, event, now)
                else:
                    await self._satisfaction(conn, event, now)
            await self._owners(conn, owners)
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

    async def _owners(self, conn: asyncpg.Connection, run: Sequence[LeadAssigned]) -> None:
        """Record a run of assignments, each once, and move each lead to the owner of its
        newest one: the same end state as applying them one by one in order.

        Only a newly recorded event moves its lead. Of a lead's new events the latest
        ``assigned_at`` wins, the later one in the run on a tie; it applies unless an
        ownership recorded before this statement is newer still. (The statement's own
        inserts are invisible to its ``NOT EXISTS``: rows of this run compete through
        ``DISTINCT ON`` instead.)
        """
        if not run:
            return
        # A redelivery inside the run counts where the event first came, as one by one.
        firsts: dict[str, LeadAssigned] = {}
        for e in run:
            firsts.setdefault(e.event_id, e)
        run = list(firsts.values())
        await conn.execute(
            """
            WITH incoming AS (
                SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[],
                                     $5::timestamptz[]) WITH ORDINALITY
                    AS i(event_id, lead_id, owner_id, kind, assigned_at, n)
            ), recorded AS (
                INSERT INTO lead_ownership (event_id, lead_id, owner_id, kind, assigned_at)
                SELECT event_id, lead_id, owner_id, kind, assigned_at FROM incoming ORDER BY n
                ON CONFLICT DO NOTHING
                RETURNING event_id
            ), newest AS (
                SELECT DISTINCT ON (i.lead_id) i.lead_id, i.owner_id, i.assigned_at
                FROM incoming i JOIN recorded r USING (event_id)
                ORDER BY i.lead_id, i.assigned_at DESC, i.n DESC
            )
            UPDATE leads l SET owner_id = newest.owner_id,
                stage = CASE WHEN l.stage = 'new' THEN 'assigned' ELSE l.stage END
            FROM newest
            WHERE l.lead_id = newest.lead_id AND NOT EXISTS (
                SELECT 1 FROM lead_ownership o
                WHERE o.lead_id = newest.lead_id AND o.assigned_at > newest.assigned_at)
            """,
            [e.event_id for e in run],
            [e.lead_id for e in run],
            [e.owner_id for e in run],
            [e.kind.value for e in run],
            [e.assigned_at for e in run],
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
