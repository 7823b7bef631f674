"""The read API's PostgreSQL side: one lead's rows, and the audit of contact reads.

Runs as ``leadloop_handoff``, which may read only some columns of ``leads`` and
``sla_clocks`` (migration 0009), so every query names its columns; ``SELECT *`` would
be refused. A session is one REPEATABLE READ transaction: the lead, its timeline and its
clocks come from one snapshot, and the audit row of a contact read commits together
with that read or not at all (the caller answers only after the commit).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from leadloop_handoff.domain.lead_view import (
    ActivityRow,
    ClockRow,
    ContactRow,
    LeadRow,
    LeadRows,
    OwnershipRow,
    StageRow,
)

__all__ = ["LeadReader", "ReadSession"]

_SUMMARY_COLUMNS = (
    "lead_id, source, source_lead_id, country, region, city, industry, product, "
    "company_size, budget, campaign, score, priority, is_returning, previous_owner_id, "
    "occurred_at, accepted_at, erased_at"
)
_CONTACT_COLUMNS = "name, email, phone, company, title, message, attributes::text AS attributes"

# Built from the two constant column lists above only; the lead id is a parameter.
_LEAD_SUMMARY = f"SELECT {_SUMMARY_COLUMNS} FROM leads WHERE lead_id = $1"  # noqa: S608
_LEAD_CONTACT = f"SELECT {_SUMMARY_COLUMNS}, {_CONTACT_COLUMNS} FROM leads WHERE lead_id = $1"  # noqa: S608

_OWNERSHIP = "SELECT event_id, owner_id, kind, assigned_at FROM lead_ownership WHERE lead_id = $1"
_ACTIVITIES = "SELECT event_id, rep_id, kind, occurred_at FROM lead_activities WHERE lead_id = $1"
_STAGES = (
    "SELECT event_id, stage, occurred_at, rep_id, amount, loss_reason "
    "FROM lead_stage_changes WHERE lead_id = $1"
)
# due_at 'infinity' (ladder exhausted) becomes NULL: the view shows no due time.
_OPEN_CLOCKS = (
    "SELECT kind, policy_id, owner_id, team_id, started_at, "
    "NULLIF(due_at, 'infinity'::timestamptz) AS due_at, next_level "
    "FROM sla_clocks WHERE lead_id = $1 AND stopped_at IS NULL"
)
_AUDIT = "INSERT INTO lead_reads (client_id, lead_id, scope, read_at) VALUES ($1, $2, $3, $4)"


class ReadSession:
    """One transaction's reads and audit writes."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def read(self, lead_id: str, *, contact: bool) -> LeadRows | None:
        """The lead's rows, None when there is no such lead. Contact columns are read
        only when ``contact`` is true; an erased lead's rows are returned as they are
        (its personal columns are null) for the view to refuse."""
        lead = await self._conn.fetchrow(_LEAD_CONTACT if contact else _LEAD_SUMMARY, lead_id)
        if lead is None:
            return None
        ownership = await self._conn.fetch(_OWNERSHIP, lead_id)
        activities = await self._conn.fetch(_ACTIVITIES, lead_id)
        stages = await self._conn.fetch(_STAGES, lead_id)
        clocks = await self._conn.fetch(_OPEN_CLOCKS, lead_id)
        return LeadRows(
            lead=_lead(lead, contact=contact),
            ownership=[OwnershipRow(**r) for r in ownership],
            activities=[ActivityRow(**r) for r in activities],
            stages=[StageRow(**r) for r in stages],
            clocks=[ClockRow(**r) for r in clocks],
        )

    async def audit(self, client_id: str, lead_id: str, scope: str, at: datetime) -> None:
        """Record that ``client_id`` was shown ``lead_id``'s data under ``scope``."""
        await self._conn.execute(_AUDIT, client_id, lead_id, scope, at)


class LeadReader:
    """Sessions on the hand-off service's pool (``leadloop_handoff`` role)."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def session(self) -> AsyncIterator[ReadSession]:
        """A transaction that commits when the block ends normally, else rolls back."""
        async with (
            self._pool.acquire() as conn,
            conn.transaction(isolation="repeatable_read"),
        ):
            yield ReadSession(conn)


def _lead(r: Mapping[str, Any], *, contact: bool) -> LeadRow:
    return LeadRow(
        lead_id=r["lead_id"],
        source=r["source"],
        source_lead_id=r["source_lead_id"],
        score=r["score"],
        priority=r["priority"],
        is_returning=r["is_returning"],
        previous_owner_id=r["previous_owner_id"],
        occurred_at=r["occurred_at"],
        accepted_at=r["accepted_at"],
        erased_at=r["erased_at"],
        country=r["country"],
        region=r["region"],
        city=r["city"],
        industry=r["industry"],
        product=r["product"],
        company_size=r["company_size"],
        budget=r["budget"],
        campaign=r["campaign"],
        contact=_contact(r) if contact else None,
    )


def _contact(r: Mapping[str, Any]) -> ContactRow:
    attributes = r["attributes"]
    return ContactRow(
        name=r["name"],
        email=r["email"],
        phone=r["phone"],
        company=r["company"],
        title=r["title"],
        message=r["message"],
        attributes=json.loads(attributes) if attributes else {},
    )
