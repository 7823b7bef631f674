"""PostgreSQL side of the hand-off: the delivery outbox, the reps' CRM ids, erasures.

The store loads and saves; what to send, when to retry and what is dead is decided by
the handler with the pure ``domain`` functions.

Claims are leases, not held transactions: a claimed row's ``due_at`` moves ``lease``
into the future and the HTTP call happens with no transaction open. A worker killed
mid-send leaves the row pending, and it is claimed again when the lease runs out
(at-least-once to the CRM, one record there: the upsert is keyed by the lead id).
``finish`` only writes a row still in the state it was claimed in (same attempts), so
a worker that outlived its lease cannot overwrite the newer attempt's result.

Order per lead: only the pending row with the lowest sequence of a (target, lead) is
claimable, and while it is leased no later one is, so a reassignment never overtakes
the lead's earlier hand-off. A move that arrives after a newer one was recorded is
stored as ``superseded`` and never sent.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from leadloop.events import LeadAssigned, RepUpdated
from leadloop_handoff.domain.deliveries import LEAD_COLUMNS, Due, Finished

__all__ = ["HandoffStore"]

_RECORD_REPS = """
INSERT INTO handoff_reps (rep_id, external_ids, updated_at)
SELECT * FROM unnest($1::text[], $2::jsonb[], $3::timestamptz[])
ON CONFLICT (rep_id) DO UPDATE
   SET external_ids = EXCLUDED.external_ids, updated_at = EXCLUDED.updated_at
 WHERE handoff_reps.updated_at < EXCLUDED.updated_at
"""

# One row per (target, assignment). A newer move already recorded for the same target
# and lead makes this one superseded: the CRM must not go back to an older owner.
_RECORD_DELIVERIES = """
INSERT INTO handoff_deliveries AS d
       (target, lead_id, assignment_id, sequence, kind, event, status, due_at, assigned_at,
        created_at)
SELECT i.target, i.lead_id, i.assignment_id, i.sequence, i.kind, i.event,
       CASE WHEN EXISTS (SELECT 1 FROM handoff_deliveries n
                          WHERE n.target = i.target AND n.lead_id = i.lead_id
                            AND n.kind <> 'erase' AND n.sequence > i.sequence)
            THEN 'superseded' ELSE 'pending' END,
       $7, i.assigned_at, $7
  FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::jsonb[],
              $8::timestamptz[])
       AS i(target, lead_id, assignment_id, sequence, kind, event, assigned_at)
ON CONFLICT (target, lead_id, assignment_id) DO NOTHING
"""

# The lead's columns are LEAD_COLUMNS, spelled out (test_handoff_flow checks they agree).
_CLAIM = """
WITH due AS (
    SELECT d.target, d.lead_id, d.assignment_id
      FROM handoff_deliveries d
     WHERE d.target = $1 AND d.status = 'pending' AND d.due_at <= $2
       AND NOT EXISTS (SELECT 1 FROM handoff_deliveries e
                        WHERE e.target = d.target AND e.lead_id = d.lead_id
                          AND e.status = 'pending' AND e.sequence < d.sequence)
     ORDER BY d.due_at
     LIMIT $3
       FOR UPDATE SKIP LOCKED
), claimed AS (
    UPDATE handoff_deliveries d SET due_at = $4, claimed_at = coalesce(d.claimed_at, $2)
      FROM due
     WHERE d.target = due.target AND d.lead_id = due.lead_id
       AND d.assignment_id = due.assignment_id
 RETURNING d.target, d.lead_id, d.assignment_id, d.sequence, d.kind, d.event, d.attempts,
           d.assigned_at
)
SELECT c.*, (l.lead_id IS NOT NULL) AS lead_found,
       l.source, l.source_lead_id, l.name, l.email, l.phone, l.company, l.title, l.message,
       l.country, l.region, l.city, l.industry, l.product, l.company_size, l.budget,
       l.campaign, l.attributes, l.score, l.priority, l.is_returning, l.previous_owner_id,
       l.occurred_at, l.erased_at,
       coalesce(r.external_ids, '{}'::jsonb) AS owner_external_ids
  FROM claimed c
  LEFT JOIN leads l ON l.lead_id = c.lead_id
  LEFT JOIN handoff_reps r ON r.rep_id = c.event ->> 'owner_id'
"""

_FINISH = """
UPDATE handoff_deliveries d
   SET status = f.status, attempts = d.attempts + f.counted, due_at = f.due_at,
       finished_at = f.finished_at,
       -- A row released unsent keeps the reply of its last real attempt.
       last_status = CASE WHEN f.counted = 1 THEN f.last_status ELSE d.last_status END,
       last_code = coalesce(f.last_code, d.last_code),
       crm_id = coalesce(f.crm_id, d.crm_id)
  FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], $5::text[], $6::int[],
              $7::timestamptz[], $8::timestamptz[], $9::int[], $10::text[], $11::text[])
       AS f(target, lead_id, assignment_id, attempts, status, counted, due_at, finished_at,
            last_status, last_code, crm_id)
 WHERE d.target = f.target AND d.lead_id = f.lead_id AND d.assignment_id = f.assignment_id
   AND d.status = 'pending' AND d.attempts = f.attempts
"""

# erased_at is the erasing transaction's start time, and transactions commit in any
# order: an erasure can become visible with a time before the cursor. The scan reads
# back over a window behind the cursor (re-applying an erasure changes nothing).
_ERASED_SINCE = """
SELECT lead_id, erased_at FROM leads
 WHERE erased_at IS NOT NULL AND erased_at > $1::timestamptz - interval '10 minutes'
 ORDER BY erased_at
 LIMIT $2
"""

# After an erasure: nothing more is sent for the lead, and a target that received the
# lead and can delete gets the erasure, once (assignment id 'erase').
_CANCEL_FOR_ERASED = """
UPDATE handoff_deliveries SET status = 'cancelled', finished_at = $2, last_code = 'erased'
 WHERE lead_id = ANY($1::text[]) AND status = 'pending' AND kind <> 'erase'
"""

# A target may hold the lead once any of its deliveries was claimed: confirmed, attempted
# with the reply lost, in flight right now, or sent by a worker killed before it stored
# the reply. The erasure waits out the lease ($4), so it reaches the CRM after a send
# still in flight.
_ERASE_DELIVERIES = """
INSERT INTO handoff_deliveries
       (target, lead_id, assignment_id, sequence, kind, event, status, due_at, assigned_at,
        created_at)
SELECT d.target, d.lead_id, 'erase', max(d.sequence) + 1, 'erase', '{}'::jsonb, 'pending',
       $4, $3, $3
  FROM handoff_deliveries d
 WHERE d.lead_id = ANY($1::text[]) AND d.target = ANY($2::text[]) AND d.kind <> 'erase'
   AND d.claimed_at IS NOT NULL
 GROUP BY d.target, d.lead_id
ON CONFLICT (target, lead_id, assignment_id) DO NOTHING
"""

_CURSOR = "SELECT erased_at FROM handoff_erasure_cursor"
_SET_CURSOR = """
INSERT INTO handoff_erasure_cursor (id, erased_at) VALUES (true, $1)
ON CONFLICT (id) DO UPDATE SET erased_at = greatest(handoff_erasure_cursor.erased_at, $1)
"""

_DEAD_LETTERS = """
SELECT target, lead_id, assignment_id, kind, attempts, last_status, last_code, finished_at
  FROM handoff_deliveries
 WHERE status = 'dead' AND ($1::text IS NULL OR target = $1)
 ORDER BY finished_at, target, lead_id
 LIMIT $2
"""

# Back to pending from the first attempt. A lead erased meanwhile is cancelled when the
# row is claimed, so a replay never sends an erased person.
_REPLAY = """
UPDATE handoff_deliveries SET status = 'pending', attempts = 0, due_at = $4, finished_at = NULL
 WHERE status = 'dead' AND ($1::text IS NULL OR target = $1)
   AND ($2::text IS NULL OR last_code = $2) AND ($3::text IS NULL OR lead_id = $3)
"""

_BACKLOG = """
SELECT target, status, count(*) AS n FROM handoff_deliveries
 WHERE status IN ('pending', 'dead') GROUP BY target, status
"""


class HandoffStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def record(
        self,
        assigned: Sequence[tuple[LeadAssigned, Sequence[str]]],
        reps: Sequence[RepUpdated],
        now: datetime,
    ) -> int:
        """Store reps' CRM ids and one pending delivery per (assignment, target name);
        returns the deliveries newly created. Idempotent."""
        rows = [
            (target, a.lead_id, a.assignment_id, a.sequence, a.kind.value, a, a.assigned_at)
            for a, targets in assigned
            for target in targets
        ]
        # The latest entry per rep in this batch (updated_at decides, as on the topic).
        latest: dict[str, RepUpdated] = {}
        for rep in reps:
            seen = latest.get(rep.rep_id)
            if seen is None or seen.updated_at < rep.updated_at:
                latest[rep.rep_id] = rep
        async with self._pool.acquire() as conn, conn.transaction():
            if latest:
                await conn.execute(
                    _RECORD_REPS,
                    list(latest),
                    [json.dumps(r.external_ids) for r in latest.values()],
                    [r.updated_at for r in latest.values()],
                )
            if not rows:
                return 0
            status = await conn.execute(
                _RECORD_DELIVERIES,
                [r[0] for r in rows],
                [r[1] for r in rows],
                [r[2] for r in rows],
                [r[3] for r in rows],
                [r[4] for r in rows],
                [r[5].model_dump_json() for r in rows],
                now,
                [r[6] for r in rows],
            )
        return int(status.rsplit(" ", 1)[-1])

    async def claim(self, target: str, now: datetime, limit: int, lease: timedelta) -> list[Due]:
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(_CLAIM, target, now, limit, now + lease)
        return [_due(r) for r in rows]

    async def finish(self, results: Sequence[Finished]) -> int:
        if not results:
            return 0
        status = await self._pool.execute(
            _FINISH,
            [f.due.target for f in results],
            [f.due.lead_id for f in results],
            [f.due.assignment_id for f in results],
            [f.due.attempts for f in results],
            [f.status for f in results],
            [1 if f.counted else 0 for f in results],
            [f.due_at for f in results],
            [f.finished_at for f in results],
            [f.last_status for f in results],
            [f.last_code for f in results],
            [f.crm_id for f in results],
        )
        return int(status.rsplit(" ", 1)[-1])

    async def apply_erasures(
        self, erase_targets: Sequence[str], now: datetime, lease: timedelta, limit: int = 5000
    ) -> int:
        """Cancel what is pending for leads erased since the last scan and queue the
        erasure for targets that received them; returns the erased leads looked at."""
        async with self._pool.acquire() as conn, conn.transaction():
            since = await conn.fetchval(_CURSOR) or datetime.min.replace(tzinfo=now.tzinfo)
            rows = await conn.fetch(_ERASED_SINCE, since, limit)
            if not rows:
                return 0
            leads = [r["lead_id"] for r in rows]
            if erase_targets:
                await conn.execute(_ERASE_DELIVERIES, leads, list(erase_targets), now, now + lease)
            await conn.execute(_CANCEL_FOR_ERASED, leads, now)
            await conn.execute(_SET_CURSOR, rows[-1]["erased_at"])
        return len(rows)

    async def dead_letters(self, target: str | None, limit: int) -> list[dict[str, Any]]:
        """Dead-lettered deliveries, oldest first (ids, status and code: no personal data)."""
        return [dict(r) for r in await self._pool.fetch(_DEAD_LETTERS, target, limit)]

    async def replay(
        self, target: str | None, code: str | None, lead_id: str | None, now: datetime
    ) -> int:
        """Make matching dead letters pending again; returns how many."""
        status = await self._pool.execute(_REPLAY, target, code, lead_id, now)
        return int(status.rsplit(" ", 1)[-1])

    async def backlog(self) -> dict[tuple[str, str], int]:
        """(target, pending|dead) -> rows."""
        rows = await self._pool.fetch(_BACKLOG)
        return {(r["target"], r["status"]): r["n"] for r in rows}


def _due(row: asyncpg.Record) -> Due:
    lead: dict[str, Any] | None = None
    if row["lead_found"]:
        lead = {c: row[c] for c in LEAD_COLUMNS}
        if isinstance(lead["attributes"], str):
            lead["attributes"] = json.loads(lead["attributes"])
    return Due(
        target=row["target"],
        lead_id=row["lead_id"],
        assignment_id=row["assignment_id"],
        sequence=row["sequence"],
        kind=row["kind"],
        event=json.loads(row["event"]),
        attempts=row["attempts"],
        assigned_at=row["assigned_at"],
        lead=lead,
        owner_external_ids=json.loads(row["owner_external_ids"]),
    )
