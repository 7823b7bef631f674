"""Every foreign key to a lead is backed by an index, on the migrated schema.

The services read a lead's rows in the tables beside ``leads`` by ``lead_id`` (its
activities, stage changes, satisfaction scores, merges, ownership). A missing index
does not show in a test with a few hundred rows; in production each such read scans the
whole table, and a table that grows with every lead makes each lead slower than the
one before (lead_ownership did, until migration 0020).
"""

from __future__ import annotations

import asyncpg
import pytest

pytestmark = pytest.mark.integration

#: Written once per raw record and never read by lead; leads are never deleted, so no
#: foreign-key check scans it either.
UNREAD_BY_LEAD = {("ingest_outcomes", "lead_id")}


async def test_every_foreign_key_to_leads_is_the_leading_column_of_an_index(
    database_url: str,
) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        keys = await conn.fetch(
            """
            SELECT c.conrelid::regclass::text AS tab, a.attname AS col,
                   EXISTS (SELECT 1 FROM pg_index i
                           WHERE i.indrelid = c.conrelid AND i.indkey[0] = c.conkey[1])
                       AS indexed
            FROM pg_constraint c
            JOIN pg_attribute a ON a.attrelid = c.conrelid AND a.attnum = c.conkey[1]
            WHERE c.contype = 'f' AND c.confrelid = 'leads'::regclass
            """
        )
    finally:
        await conn.close()
    # The tables that hang off a lead today: a scan that finds none checks nothing.
    assert len(keys) >= 6, keys
    unindexed = {(k["tab"], k["col"]) for k in keys if not k["indexed"]}
    assert unindexed == UNREAD_BY_LEAD
