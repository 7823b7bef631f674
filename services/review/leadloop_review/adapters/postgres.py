"""The metrics service's stored facts, read as the review needs them.

Reads only ``metric_applied_events`` and ``metric_forecasts`` (the ``leadloop_review``
role may do nothing else). A period's facts are streamed through a server-side cursor
ordered by lead, so a month of a million leads is never in memory at once; the
selection of leads is by the fact's own time (acceptance, or win), the cut-off is
applied by the fold.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Any

import asyncpg

from leadloop_review.domain.build import ForecastSnapshot
from leadloop_review.ports import LeadFacts

__all__ = ["FactStore"]

#: Rows fetched per round trip of the cursor.
PREFETCH = 5000

_FACTS_OF = """
SELECT e.lead_id, e.fact::text
FROM metric_applied_events e
WHERE e.fact IS NOT NULL AND e.lead_id IN (
    SELECT s.lead_id FROM metric_applied_events s
    WHERE s.lead_id IS NOT NULL AND {selector}
)
ORDER BY e.lead_id, e.seq
"""
_ACCEPTED = _FACTS_OF.format(
    selector="s.fact->>'type' = 'Accepted' "
    "AND (s.fact->>'accepted_at')::timestamptz >= $1 "
    "AND (s.fact->>'accepted_at')::timestamptz < $2"
)
_WON = _FACTS_OF.format(
    selector="s.fact->>'type' = 'StageMoved' AND s.fact->>'stage' = 'won' "
    "AND (s.fact->>'occurred_at')::timestamptz >= $1 "
    "AND (s.fact->>'occurred_at')::timestamptz < $2"
)


class FactStore:
    """A :class:`~leadloop_review.ports.FactSource` on one connection."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    def accepted(self, start: datetime, end: datetime) -> AsyncIterator[LeadFacts]:
        return self._grouped(_ACCEPTED, start, end)

    def won(self, start: datetime, end: datetime) -> AsyncIterator[LeadFacts]:
        return self._grouped(_WON, start, end)

    async def _grouped(self, query: str, *args: Any) -> AsyncIterator[LeadFacts]:
        lead: str | None = None
        facts: list[dict[str, Any]] = []
        # A cursor lives in a transaction; read-only, it holds no lock that matters.
        async with self._conn.transaction(readonly=True, isolation="repeatable_read"):
            async for row in self._conn.cursor(query, *args, prefetch=PREFETCH):
                if row[0] != lead:
                    if lead is not None:
                        yield lead, facts
                    lead, facts = row[0], []
                facts.append(json.loads(row[1]))
            if lead is not None:
                yield lead, facts

    async def snapshots(self, months: Sequence[date]) -> list[ForecastSnapshot]:
        rows = await self._conn.fetch(
            "SELECT team, month, taken_at, age, weighted_cents, commit_cents, best_case_cents "
            "FROM metric_forecasts WHERE month = ANY($1::date[]) ORDER BY team, month, taken_at",
            list(months),
        )
        return [
            ForecastSnapshot(
                r["team"],
                r["month"],
                r["taken_at"],
                r["age"],
                r["weighted_cents"],
                r["commit_cents"],
                r["best_case_cents"],
            )
            for r in rows
        ]
