"""Two ingest workers deciding the same raw record at once, on the real PostgreSQL.

After a rebalance the group's new owner of a partition and a zombie (the old owner,
cut off from the group but still holding a batch) can apply the same records in
overlapping transactions. Whichever commits second must find the first one's outcome
and answer with it — the same outcome and lead under the same event id — instead of
deciding the record again and meeting the first worker's lead as a "duplicate".

The handler's use case (``apply_batch``) and store are the service's own; the test holds
the first transaction open at its commit to make the overlap certain.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import asyncpg
import pytest

from leadloop.events import IngestOutcome
from leadloop_ingest.adapters.postgres import LeadBatch, LeadStore
from leadloop_ingest.domain.dedupe import Decided
from leadloop_ingest.domain.intake import Position, RawRecord, decide
from leadloop_ingest.domain.scoring import ScoringWeights
from leadloop_ingest.domain.validation import Limits
from leadloop_ingest.handlers import apply_batch

pytestmark = pytest.mark.integration

NOW = datetime(2026, 3, 3, 9, 30, tzinfo=UTC)
LIMITS = Limits(sources=frozenset({"web_form"}), default_phone_region={})
PEPPER = b"test-pepper-not-a-real-secret"


class HeldStore(LeadStore):
    """The service's store whose transaction waits at its commit until released."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        super().__init__(pool)
        self.at_commit = asyncio.Event()
        self.release = asyncio.Event()

    @asynccontextmanager
    async def batch(self) -> AsyncIterator[LeadBatch]:
        async with super().batch() as batch:
            yield batch
            self.at_commit.set()
            await self.release.wait()


def records(offsets: range) -> list[RawRecord]:
    return [
        RawRecord(
            position=Position("leads.raw", 0, offset),
            key=f"k{offset}".encode(),
            value=json.dumps(
                {
                    "source": "web_form",
                    "source_lead_id": f"wf-{offset}",
                    "email": f"person{offset}@example.com",
                }
            ).encode(),
            timestamp=NOW,
        )
        for offset in offsets
    ]


def proposals(offsets: range) -> Decided:
    return decide(records(offsets), limits=LIMITS, weights=ScoringWeights(), pepper=PEPPER, now=NOW)


async def test_a_zombie_batch_answers_with_the_outcomes_the_new_owner_committed(
    database_url: str,
) -> None:
    pool = await asyncpg.create_pool(database_url, min_size=2, max_size=4)
    try:
        owner = HeldStore(pool)
        zombie = LeadStore(pool)
        # The new owner's batch starts later in the partition than the zombie's, so the
        # two overlap on part of it, as they do after a rebalance.
        first = asyncio.create_task(apply_batch(owner, proposals(range(5, 15))))
        await asyncio.wait_for(owner.at_commit.wait(), 30)
        second = asyncio.create_task(apply_batch(zombie, proposals(range(0, 10))))
        # The zombie must wait for the owner's commit: observe it blocked on a lock.
        async with pool.acquire() as conn:
            for _ in range(300):
                waiting = await conn.fetchval(
                    "SELECT count(*) FROM pg_stat_activity "
                    "WHERE datname = current_database() AND wait_event_type = 'Lock'"
                )
                if waiting:
                    break
                await asyncio.sleep(0.05)
        assert waiting == 1, "the zombie's batch did not wait for the owner's"
        assert not second.done()
        owner.release.set()
        by_owner = {o.position.offset: o for o, _ in await first}
        by_zombie = {o.position.offset: o for o, _ in await second}

        assert sorted(by_owner) == list(range(5, 15))
        assert sorted(by_zombie) == list(range(0, 10))
        for offset in range(5, 10):
            a, b = by_owner[offset], by_zombie[offset]
            assert (b.outcome, b.lead_id, b.event_id) == (a.outcome, a.lead_id, a.event_id)
            assert a.outcome is IngestOutcome.ACCEPTED
        assert all(by_zombie[o].outcome is IngestOutcome.ACCEPTED for o in range(0, 5))

        async with pool.acquire() as conn:
            stored = await conn.fetch(
                "SELECT raw_offset, outcome, lead_id FROM ingest_outcomes ORDER BY raw_offset"
            )
            leads = await conn.fetchval("SELECT count(*) FROM leads")
        assert len(stored) == 15
        assert leads == 15
        for row in stored:
            published = by_zombie.get(row["raw_offset"]) or by_owner[row["raw_offset"]]
            assert (row["outcome"], row["lead_id"]) == (
                published.outcome.value,
                published.lead_id,
            )
    finally:
        await pool.close()
