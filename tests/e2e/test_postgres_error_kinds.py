"""Which PostgreSQL errors leadloop retries and which it dead-letters, with the errors
raised by the real server rather than constructed in the test.

- A serialization failure (two SERIALIZABLE transactions that each read what the other
  writes) and a deadlock (two transactions locking two rows in opposite orders) are
  transient: ``leadloop.db.retrying`` runs the operation again and it succeeds, and the
  poison policy lets them propagate (the worker's batch is redelivered) instead of
  parking the record.
- A check violation and a value too long for its column are the record's fault:
  ``retrying`` does not retry them, and the poison policy gives the record up after its
  attempts, naming the error's type, SQLSTATE and constraint (never its message, which may
  quote the data).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence

import asyncpg
import pytest

from leadloop.db import TRANSIENT_ERRORS, retrying
from leadloop.kafka import is_transient
from leadloop.poison import PROCESSING_FAILED, Streak, isolate

pytestmark = pytest.mark.integration


@pytest.fixture
async def pool(database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=4)
    assert pool is not None
    async with pool.acquire() as conn:
        await conn.execute(
            "CREATE TABLE kinds_t (id text PRIMARY KEY, n integer CHECK (n >= 0), code varchar(5))"
        )
    try:
        yield pool
    finally:
        await pool.close()


async def rows(pool: asyncpg.Pool) -> list[str]:
    return [r["id"] for r in await pool.fetch("SELECT id FROM kinds_t ORDER BY id")]


async def test_a_serialization_failure_is_retried_until_the_transaction_goes_through(
    pool: asyncpg.Pool,
) -> None:
    errors: list[str] = []
    other = await pool.acquire()
    try:

        async def write_skew() -> None:
            async with pool.acquire() as conn, conn.transaction(isolation="serializable"):
                await conn.fetchval("SELECT count(*) FROM kinds_t")
                await conn.execute("INSERT INTO kinds_t (id, n) VALUES ('b', 1)")
                if not errors:
                    # The other transaction read the same rows and commits first.
                    tx = other.transaction(isolation="serializable")
                    await tx.start()
                    await other.fetchval("SELECT count(*) FROM kinds_t")
                    await other.execute("INSERT INTO kinds_t (id, n) VALUES ('a', 1)")
                    await tx.commit()

        def failed(attempt: int) -> None:
            errors.append(f"attempt {attempt}")

        await retrying(write_skew, what="test_serialization", on_retry=failed)
    finally:
        await pool.release(other)
    assert errors == ["attempt 1"]
    assert await rows(pool) == ["a", "b"]


async def test_a_deadlock_is_retried_until_the_transaction_goes_through(
    pool: asyncpg.Pool,
) -> None:
    await pool.execute("INSERT INTO kinds_t (id, n) VALUES ('x', 0), ('y', 0)")
    seen: list[type[BaseException]] = []
    holds_y = asyncio.Event()
    first_done = asyncio.Event()

    async def y_then_x() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE kinds_t SET n = n + 1 WHERE id = 'y'")
            holds_y.set()
            await asyncio.sleep(0.2)  # let the other side take x and wait for y
            await conn.execute("UPDATE kinds_t SET n = n + 1 WHERE id = 'x'")

    async def x_then_y() -> None:
        async with pool.acquire() as conn, conn.transaction():
            await conn.execute("UPDATE kinds_t SET n = n + 1 WHERE id = 'x'")
            if not first_done.is_set():
                first_done.set()
                await holds_y.wait()
            await conn.execute("UPDATE kinds_t SET n = n + 1 WHERE id = 'y'")

    async def attempt_y_then_x() -> None:
        try:
            await y_then_x()
        except TRANSIENT_ERRORS as exc:
            seen.append(type(exc))
            raise

    async def attempt_x_then_y() -> None:
        try:
            await x_then_y()
        except TRANSIENT_ERRORS as exc:
            seen.append(type(exc))
            raise

    await asyncio.wait_for(
        asyncio.gather(
            retrying(attempt_y_then_x, what="test_deadlock"),
            retrying(attempt_x_then_y, what="test_deadlock"),
        ),
        60,
    )
    # PostgreSQL broke the cycle by failing one of them; its retry then went through.
    assert seen == [asyncpg.exceptions.DeadlockDetectedError]
    counts = {r["id"]: r["n"] for r in await pool.fetch("SELECT id, n FROM kinds_t")}
    assert counts == {"x": 2, "y": 2}


async def test_the_server_errors_of_both_kinds_are_classified(pool: asyncpg.Pool) -> None:
    """The classification the poison policy applies to what the real server raises."""
    with pytest.raises(asyncpg.exceptions.CheckViolationError) as check:
        await pool.execute("INSERT INTO kinds_t (id, n) VALUES ('c', -1)")
    with pytest.raises(asyncpg.exceptions.StringDataRightTruncationError) as too_long:
        await pool.execute("INSERT INTO kinds_t (id, code) VALUES ('d', 'toolong')")
    assert not is_transient(check.value)
    assert not is_transient(too_long.value)
    assert is_transient(asyncpg.exceptions.SerializationError())
    assert is_transient(asyncpg.exceptions.DeadlockDetectedError())


async def test_permanent_errors_are_not_retried_and_their_records_are_given_up(
    pool: asyncpg.Pool,
) -> None:
    """A batch of four rows, two of which the server refuses: the good ones are written,
    the bad ones given up after their attempts, each named by its error type; nothing
    is retried by ``retrying`` (it would spin for ever on such a record)."""
    retries: list[int] = []
    batch = [("e1", 1, "ok"), ("e2", -5, "ok"), ("e3", 2, "far-too-long"), ("e4", 3, "ok")]

    async def handle(part: Sequence[tuple[str, int, str]]) -> None:
        async def write() -> None:
            async with pool.acquire() as conn, conn.transaction():
                await conn.executemany(
                    "INSERT INTO kinds_t (id, n, code) VALUES ($1, $2, $3)", part
                )

        await retrying(write, what="test_permanent", on_retry=retries.append)

    failures = await isolate(
        batch, handle, attempts=3, is_transient=is_transient, streak=Streak(), backoff=0.01
    )
    assert [(f.item[0], f.reason, f.detail, f.attempts) for f in failures] == [
        (
            "e2",
            PROCESSING_FAILED,
            "CheckViolationError sqlstate=23514 constraint_name=kinds_t_n_check",
            3,
        ),
        ("e3", PROCESSING_FAILED, "StringDataRightTruncationError sqlstate=22001", 3),
    ]
    assert retries == []
    assert await rows(pool) == ["e1", "e4"]
