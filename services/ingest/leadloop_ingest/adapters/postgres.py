"""PostgreSQL side of ingest: leads and per-record outcomes, written in one transaction.

A ``batch`` is one transaction; the handler reads what is stored about the batch
(outcomes of its positions, its people under their identity-key locks), decides with
the pure domain, and writes leads, merges and outcomes through it. A batch is applied
exactly once whatever Kafka redelivers: a raw record whose position already has an
outcome is answered from the table (so its events are re-published with the same ids),
and a lead whose (source, source_lead_id) already exists becomes a duplicate. Array
parameters with ``unnest`` keep a batch to a handful of round trips.
"""

from __future__ import annotations

import json
import operator
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from leadloop.events import IngestOutcome, Priority
from leadloop_ingest.domain.dedupe import Decided, Known, Merge, PersonLead, identity_keys
from leadloop_ingest.domain.intake import (
    PROFILE_FIELDS,
    ROUTING_FIELDS,
    LeadRecord,
    OutcomeRecord,
    Position,
)

__all__ = ["LeadBatch", "LeadStore"]

_LEAD_COLUMNS = (
    "lead_id",
    "source",
    "source_lead_id",
    "email",
    "phone",
    "name",
    *PROFILE_FIELDS,
    *ROUTING_FIELDS,
    "attributes",
    "email_key",
    "phone_key",
    "score",
    "priority",
    "is_returning",
    "previous_owner_id",
    "customer_won_before",
    "occurred_at",
    "accepted_at",
    "accepted_event_id",
    "raw_partition",
    "raw_offset",
)
_LEAD_TYPES = {
    "company_size": "integer",
    "budget": "float8",
    "attributes": "jsonb",
    "score": "smallint",
    "is_returning": "boolean",
    "customer_won_before": "boolean",
    "occurred_at": "timestamptz",
    "accepted_at": "timestamptz",
    "raw_partition": "integer",
    "raw_offset": "bigint",
}


def _unnest(columns: Sequence[str], types: dict[str, str]) -> str:
    params = ", ".join(
        f"${i}::{'text' if types.get(c) == 'jsonb' else types.get(c, 'text')}[]"
        for i, c in enumerate(columns, 1)
    )
    select = ", ".join(f"{c}::jsonb" if types.get(c) == "jsonb" else c for c in columns)
    # Built only from this module's constant column lists; values travel as parameters.
    return f"SELECT {select} FROM unnest({params}) AS t({', '.join(columns)})"  # noqa: S608


_INSERT_LEADS = (
    f"INSERT INTO leads ({', '.join(_LEAD_COLUMNS)}) "
    f"{_unnest(_LEAD_COLUMNS, _LEAD_TYPES)} ON CONFLICT DO NOTHING RETURNING lead_id"
)
_OUTCOME_COLUMNS = (
    "raw_topic",
    "raw_partition",
    "raw_offset",
    "source",
    "outcome",
    "reason",
    "detail",
    "lead_id",
    "event_id",
    "recorded_at",
)
_OUTCOME_TYPES = {"raw_partition": "integer", "raw_offset": "bigint", "recorded_at": "timestamptz"}
_INSERT_OUTCOMES = (
    f"INSERT INTO ingest_outcomes ({', '.join(_OUTCOME_COLUMNS)}) "
    f"{_unnest(_OUTCOME_COLUMNS, _OUTCOME_TYPES)} ON CONFLICT DO NOTHING"
)
_EXISTING_OUTCOMES = """
    SELECT o.* FROM ingest_outcomes o
    JOIN unnest($1::text[], $2::integer[], $3::bigint[]) AS p(t, part, off)
      ON o.raw_topic = p.t AND o.raw_partition = p.part AND o.raw_offset = p.off
"""


_INSERT_MERGE = """
INSERT INTO lead_merges (raw_topic, raw_partition, raw_offset, lead_id, matched_on, source,
    source_lead_id, proposed_lead_id, payload, merged_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9::jsonb, $10) ON CONFLICT DO NOTHING
"""

# A merge fills in contact details the open lead lacks; it never overwrites one.
_ENRICH = """
UPDATE leads SET email = coalesce(email, $2), email_key = coalesce(email_key, $3),
                 phone = coalesce(phone, $4), phone_key = coalesce(phone_key, $5)
WHERE lead_id = $1
"""


class LeadBatch:
    """One batch's transaction (see ``ports.LeadBatch`` for the order of the calls)."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def outcomes(self, positions: Sequence[Position]) -> dict[Position, OutcomeRecord]:
        """The outcomes stored for these raw positions (a redelivery has them), read
        after locking the positions until the transaction ends."""
        # One writer per raw record: a zombie worker still holding a batch the group has
        # given to another worker waits here until that worker commits, then finds its
        # outcome and publishes it again instead of deciding the record a second time
        # (read before the lock, it would find nothing, then meet the other worker's lead
        # under the identity lock and publish "duplicate" under the same event id).
        # Positions are locked before identity keys in every batch, each set in one
        # order, so two batches cannot wait on each other.
        await self._conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) FROM (SELECT k FROM "
            "unnest($1::text[]) AS k ORDER BY k) AS ordered",
            sorted({f"raw-position:{p.topic}:{p.partition}:{p.offset}" for p in positions}),
        )
        rows = await self._conn.fetch(
            _EXISTING_OUTCOMES,
            [p.topic for p in positions],
            [p.partition for p in positions],
            [p.offset for p in positions],
        )
        return {
            Position(r["raw_topic"], r["raw_partition"], r["raw_offset"]): OutcomeRecord(
                position=Position(r["raw_topic"], r["raw_partition"], r["raw_offset"]),
                source=r["source"],
                outcome=IngestOutcome(r["outcome"]),
                reason=r["reason"],
                detail=r["detail"],
                lead_id=r["lead_id"],
                event_id=r["event_id"],
                recorded_at=r["recorded_at"],
            )
            for r in rows
        }

    async def known(self, fresh: Decided) -> Known:
        """What is stored about the proposals' idempotency and identity keys, read after
        locking the identity keys until the transaction ends."""
        conn = self._conn
        keys = identity_keys(fresh)
        # One person, one writer: concurrent batches holding the same email or phone
        # queue here, so neither creates a lead the other does not see.
        await conn.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
            "FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) AS ordered",
            keys,
        )
        proposed = [o.lead_id for o, _ in fresh if o.lead_id is not None]
        as_leads = await conn.fetch(
            "SELECT lead_id FROM leads WHERE lead_id = ANY($1::text[])", proposed
        )
        merged = await conn.fetch(
            "SELECT proposed_lead_id, lead_id FROM lead_merges "
            "WHERE proposed_lead_id = ANY($1::text[])",
            proposed,
        )
        stored = {r["lead_id"]: r["lead_id"] for r in as_leads}
        stored.update({r["proposed_lead_id"]: r["lead_id"] for r in merged})
        people = await conn.fetch(
            "SELECT lead_id, email_key, phone_key, owner_id, accepted_at, closed_at, stage "
            "FROM leads WHERE email_key = ANY($1::text[]) OR phone_key = ANY($1::text[])",
            keys,
        )
        return Known(stored=stored, people=[PersonLead(**dict(r)) for r in people])

    async def insert_leads(self, leads: Sequence[LeadRecord]) -> set[str]:
        """Insert new leads; the ids that were inserted (not there already)."""
        if not leads:
            return set()
        rows = await self._conn.fetch(_INSERT_LEADS, *_lead_columns(leads))
        return {r["lead_id"] for r in rows}

    async def record(
        self, outcomes: Sequence[OutcomeRecord], merges: Sequence[tuple[Merge, datetime]]
    ) -> None:
        """Record merges (filling in the open lead's missing contact details) and the
        records' outcomes."""
        if merges:
            await self._conn.executemany(_INSERT_MERGE, [_merge_row(m, at) for m, at in merges])
            await self._conn.executemany(
                _ENRICH,
                [(m.lead_id, m.email, m.email_key, m.phone, m.phone_key) for m, _ in merges],
            )
        if outcomes:
            await self._conn.execute(_INSERT_OUTCOMES, *_outcome_columns(list(outcomes)))

    async def leads(self, lead_ids: Sequence[str]) -> dict[str, LeadRecord]:
        """The stored leads of these ids."""
        if not lead_ids:
            return {}
        rows = await self._conn.fetch(
            "SELECT * FROM leads WHERE lead_id = ANY($1::text[])", list(lead_ids)
        )
        return {r["lead_id"]: _lead_from_row(r) for r in rows}


class LeadStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def ping(self) -> bool:
        return bool(await self._pool.fetchval("SELECT true"))

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[LeadBatch]:
        """One transaction, committed when the block ends without an exception."""
        async with self._pool.acquire() as conn, conn.transaction():
            yield LeadBatch(conn)


def _merge_row(m: Merge, now: datetime) -> tuple[Any, ...]:
    return (
        m.position.topic,
        m.position.partition,
        m.position.offset,
        m.lead_id,
        m.matched_on,
        m.source,
        m.source_lead_id,
        m.proposed_lead_id,
        json.dumps(m.payload, ensure_ascii=False, default=str),
        now,
    )


def _lead_column(column: str) -> Callable[[LeadRecord], Any]:
    """How one column of ``leads`` is read off a lead (decided once per column, not per
    value: this runs for every column of every lead a batch inserts)."""
    if column in ROUTING_FIELDS or column in PROFILE_FIELDS:
        return lambda lead: lead.fields.get(column)
    if column == "attributes":
        return lambda lead: json.dumps(lead.attributes, ensure_ascii=False)
    if column == "priority":
        return lambda lead: lead.priority.value
    if column == "raw_partition":
        return lambda lead: lead.position.partition
    if column == "raw_offset":
        return lambda lead: lead.position.offset
    return operator.attrgetter(column)


_LEAD_READERS = tuple(_lead_column(c) for c in _LEAD_COLUMNS)


def _lead_columns(leads: Sequence[LeadRecord]) -> list[list[Any]]:
    return [[read(lead) for lead in leads] for read in _LEAD_READERS]


def _outcome_columns(outcomes: list[OutcomeRecord]) -> list[list[Any]]:
    return [
        [o.position.topic for o in outcomes],
        [o.position.partition for o in outcomes],
        [o.position.offset for o in outcomes],
        [o.source for o in outcomes],
        [o.outcome.value for o in outcomes],
        [o.reason for o in outcomes],
        [o.detail for o in outcomes],
        [o.lead_id for o in outcomes],
        [o.event_id for o in outcomes],
        [o.recorded_at for o in outcomes],
    ]


def _lead_from_row(r: asyncpg.Record) -> LeadRecord:
    attributes = r["attributes"]
    return LeadRecord(
        lead_id=r["lead_id"],
        source=r["source"],
        source_lead_id=r["source_lead_id"],
        email=r["email"],
        phone=r["phone"],
        name=r["name"],
        fields={f: r[f] for f in (*ROUTING_FIELDS, *PROFILE_FIELDS)},
        attributes=json.loads(attributes) if isinstance(attributes, str) else attributes,
        email_key=r["email_key"],
        phone_key=r["phone_key"],
        score=r["score"],
        priority=Priority(r["priority"]),
        is_returning=r["is_returning"],
        previous_owner_id=r["previous_owner_id"],
        customer_won_before=r["customer_won_before"],
        occurred_at=r["occurred_at"],
        accepted_at=r["accepted_at"],
        accepted_event_id=r["accepted_event_id"],
        # The table keeps partition and offset only; a replayed lead's events never use
        # the topic of the record that created it.
        position=Position("", r["raw_partition"], r["raw_offset"]),
    )
