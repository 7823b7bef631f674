"""Every statement leadloop prepares is planned with its values, never from a generic
plan cached while a table had no statistics.

The services look rows up by arrays of keys (``email_key = ANY($1) OR phone_key =
ANY($1)``, ``lead_id = ANY($1)``, one array per batch). PostgreSQL caches a prepared
statement's plan: after five executions it may switch to a generic plan, costed without
the values. On a table that autovacuum has not analysed yet (a fresh database, up to a
minute after it gets rows) that generic plan can be a sequential scan that compares
every row with every key of the array, one by one, and it stays until the table is
analysed: a 1,000-key lookup on 30,000 rows took 1.5 s instead of 5 ms here, and ingest
ran at half speed for the first minute of a fresh database. ``leadloop.db.create_pool``
sets ``plan_cache_mode = force_custom_plan``: each execution is planned with its array,
which the server then looks up by hash (or by index once the table has statistics).

The scenario is the one that produced the slow generic plan: a table that is never
analysed (a temporary one, which autovacuum never touches), a few rows per execution,
then many rows.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

import asyncpg
import pytest

from leadloop.db import create_pool

pytestmark = pytest.mark.integration

KEYS = [f"k{i}" for i in range(1000)]
#: The array as SQL text: EXECUTE then shows a custom plan's values, a generic plan's $1.
KEYS_SQL = "'{" + ",".join(KEYS) + "}'::text[]"


async def plan_after_growth(conn: asyncpg.Connection) -> str:
    await conn.execute(
        """
        CREATE TEMP TABLE people_t (
            lead_id text PRIMARY KEY, email_key text, phone_key text,
            accepted_at timestamptz NOT NULL DEFAULT now());
        CREATE INDEX ON people_t (email_key, accepted_at) WHERE email_key IS NOT NULL;
        CREATE INDEX ON people_t (phone_key, accepted_at) WHERE phone_key IS NOT NULL;
        PREPARE people_by_key(text[]) AS
            SELECT lead_id FROM people_t WHERE email_key = ANY($1) OR phone_key = ANY($1)
        """
    )
    for batch in range(6):  # past the five custom plans before a generic one is tried
        await conn.execute(
            "INSERT INTO people_t (lead_id, email_key, phone_key) "
            f"SELECT 'b{batch}-' || g, 'e{batch}-' || g, 'p{batch}-' || g "
            "FROM generate_series(1, 100) g"
        )
        await conn.fetch(f"EXECUTE people_by_key({KEYS_SQL})")
    await conn.execute(
        "INSERT INTO people_t (lead_id, email_key, phone_key) "
        "SELECT 'l' || g, 'e' || g, 'p' || g FROM generate_series(1, 30000) g"
    )
    rows = await conn.fetch(f"EXPLAIN EXECUTE people_by_key({KEYS_SQL})")
    return "\n".join(r[0] for r in rows)


@pytest.fixture
async def service_conn(database_url: str) -> AsyncIterator[asyncpg.Connection]:
    pool = await create_pool(database_url, min_size=1, max_size=1)
    try:
        async with pool.acquire() as conn:
            yield conn
    finally:
        await pool.close()


async def test_the_services_pool_plans_each_execution_with_its_values(
    service_conn: asyncpg.Connection,
) -> None:
    assert await service_conn.fetchval("SHOW plan_cache_mode") == "force_custom_plan"
    plan = await plan_after_growth(service_conn)
    assert "'{k0,k1," in plan, plan  # the values, not $1: a custom plan
    assert "$1" not in plan, plan


async def test_without_it_the_server_keeps_a_generic_sequential_scan(database_url: str) -> None:
    """The control: on a plain connection the same steps leave the generic plan (``$1``)
    scanning the whole table, which is what the setting is there to prevent."""
    conn = await asyncpg.connect(database_url)
    try:
        assert await conn.fetchval("SHOW plan_cache_mode") == "auto"
        plan = await plan_after_growth(conn)
    finally:
        await conn.close()
    assert "$1" in plan, plan
    assert "Seq Scan on people_t" in plan, plan
