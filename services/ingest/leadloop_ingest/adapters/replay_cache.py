"""The webhook replay cache in PostgreSQL (``webhook_replays``, migration 0019), shared by
every ingest worker that serves a webhook URL.

``reserve`` is one ``INSERT … ON CONFLICT``: the first worker to insert a key wins and
every other delivery of the same signed request sees no row come back. A row whose
``expires_at`` has passed but that ``purge`` has not removed yet is taken over, so an
expired key is never refused. ``release`` deletes only the reservation it made (matched
by ``reserved_at``), so it cannot free another request's reservation. Errors (PostgreSQL
down) are raised to the caller, which answers 503: an unprotected accept is not an
option, and the vendor retries.
"""

from __future__ import annotations

from datetime import datetime

import asyncpg

from leadloop_ingest.domain.replays import Reservation

__all__ = ["PostgresReplayCache"]

_RESERVE = """
INSERT INTO webhook_replays (replay_key, scope, reserved_at, expires_at)
VALUES ($1, $2, $3, $4)
ON CONFLICT (replay_key) DO UPDATE
    SET scope = EXCLUDED.scope,
        reserved_at = EXCLUDED.reserved_at,
        expires_at = EXCLUDED.expires_at
    WHERE webhook_replays.expires_at <= EXCLUDED.reserved_at
RETURNING true
"""


class PostgresReplayCache:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def reserve(self, reservation: Reservation) -> bool:
        r = reservation
        got = await self._pool.fetchval(_RESERVE, r.key, r.scope, r.reserved_at, r.expires_at)
        return bool(got)

    async def release(self, reservation: Reservation) -> None:
        await self._pool.execute(
            "DELETE FROM webhook_replays WHERE replay_key = $1 AND reserved_at = $2",
            reservation.key,
            reservation.reserved_at,
        )

    async def purge(self, now: datetime) -> int:
        status = await self._pool.execute("DELETE FROM webhook_replays WHERE expires_at <= $1", now)
        return int(status.split()[-1])
