"""PostgreSQL and Kafka side of erasing a person: one transaction, recorded, repeatable.

Everything happens in one transaction that holds ingest's per-person locks (the same
advisory locks a batch takes for the person's identity keys), so a batch carrying the
same person either committed before (and is erased) or runs after (and no longer finds
the erased leads: their identity keys are gone, it creates a new lead). Tombstones are
written and acknowledged before the commit: if Kafka fails, nothing is committed and
running the command again redoes everything. Once committed, the person's leads carry
no identity key, so a second run finds nothing and changes nothing but the record of
the request.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import asyncpg
from aiokafka import AIOKafkaProducer

from leadloop.topics import qualified
from leadloop_ingest.domain.erasure import (
    ERASED_LEAD_COLUMNS,
    PERSONAL_PAYLOAD_KEYS,
    ErasureCounts,
    ErasureSubject,
)

__all__ = ["ErasureStore", "KafkaTombstones", "Tombstones"]

#: Writes tombstones for the given lead ids; returns how many were acknowledged.
Tombstones = Callable[[Sequence[str]], Awaitable[int]]

_FIND_LEADS = """
SELECT lead_id FROM leads
WHERE email_key = ANY($1::text[]) OR phone_key = ANY($1::text[])
   OR email = $2 OR phone = $3
ORDER BY lead_id FOR UPDATE
"""

_ERASE_LEADS = (
    # Built only from the constant column list; values travel as parameters.
    "UPDATE leads SET "  # noqa: S608
    + ", ".join(
        "attributes = '{}'::jsonb" if c == "attributes" else f"{c} = NULL"
        for c in ERASED_LEAD_COLUMNS
    )
    + ", erased_at = $2 WHERE lead_id = ANY($1::text[])"
)

# A merged record belongs to the person when it was merged into one of their leads or
# carries their email or phone (merged into someone else's lead by the other contact).
_ERASE_MERGES = """
UPDATE lead_merges SET payload = payload - $4::text[]
WHERE (lead_id = ANY($1::text[]) OR payload->>'email' = $2 OR payload->>'phone' = $3)
  AND payload ?| $4::text[]
"""

# Free text a rep typed about the person (an activity's outcome) may name them.
_ERASE_OUTCOMES = """
UPDATE lead_activities SET outcome = NULL
WHERE lead_id = ANY($1::text[]) AND outcome IS NOT NULL
"""

_RECORD = """
INSERT INTO erasures (subject_email_key, subject_phone_key, requested_at, rows_erased,
                      leads_erased, tombstones)
VALUES ($1, $2, $3, $4::jsonb, $5, $6)
"""


def _count(status: str) -> int:
    """Rows changed, from a command status such as ``UPDATE 3``."""
    return int(status.rsplit(" ", 1)[-1])


class ErasureStore:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def erase(
        self,
        subject: ErasureSubject,
        *,
        pepper: bytes,
        now: datetime,
        tombstones: Tombstones | None = None,
    ) -> ErasureCounts:
        conn = self._conn
        counts = ErasureCounts()
        keys = subject.lookup_keys(pepper)
        async with conn.transaction():
            # One person, one writer (as in LeadBatch.known): taken in sorted order.
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended(k, 0)) "
                "FROM (SELECT k FROM unnest($1::text[]) AS k ORDER BY k) AS ordered",
                keys,
            )
            lead_ids = [
                r["lead_id"]
                for r in await conn.fetch(_FIND_LEADS, keys, subject.email, subject.phone)
            ]
            counts.leads = len(lead_ids)
            counts.rows["leads"] = _count(await conn.execute(_ERASE_LEADS, lead_ids, now))
            counts.rows["lead_merges"] = _count(
                await conn.execute(
                    _ERASE_MERGES,
                    lead_ids,
                    subject.email,
                    subject.phone,
                    list(PERSONAL_PAYLOAD_KEYS),
                )
            )
            counts.rows["lead_activities"] = _count(await conn.execute(_ERASE_OUTCOMES, lead_ids))
            if tombstones is not None and lead_ids:
                counts.tombstones = await tombstones(lead_ids)
            email_key, phone_key = subject.record_keys(pepper)
            await conn.execute(
                _RECORD,
                email_key,
                phone_key,
                now,
                json.dumps(counts.rows, sort_keys=True),
                counts.leads,
                counts.tombstones,
            )
        return counts


class KafkaTombstones:
    """Tombstones (null values) for erased leads' keys on compacted topics; compaction
    then removes every earlier record of those keys."""

    def __init__(self, producer: AIOKafkaProducer, topics: Sequence[str], prefix: str) -> None:
        self._producer = producer
        self._topics = [qualified(t, prefix) for t in topics]

    async def __call__(self, lead_ids: Sequence[str]) -> int:
        acks = [
            await self._producer.send(topic, None, key=lead_id.encode())
            for topic in self._topics
            for lead_id in lead_ids
        ]
        for ack in acks:
            await ack  # acks=all: raises when the broker did not take it
        return len(acks)
