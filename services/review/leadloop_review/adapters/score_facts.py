"""The closed leads' facts, read from the metrics' store (``metric_applied_events``).

Read-only, with the review's own login (SELECT on that table, migration 0017). The
query narrows to the leads with a move to won or lost up to the window's end and
returns their acceptance and closing facts; which close counts and what the label is
are decided by :func:`leadloop_review.domain.score_fit.closed_leads`. Facts hold no
personal data.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, time, timedelta
from typing import Any

import asyncpg

__all__ = ["read_close_facts"]

_SQL = """
WITH closed AS (
    SELECT DISTINCT lead_id FROM metric_applied_events
    WHERE fact->>'type' = 'StageMoved' AND fact->>'stage' IN ('won', 'lost')
      AND (fact->>'occurred_at')::timestamptz >= $1
      AND (fact->>'occurred_at')::timestamptz < $2
)
SELECT e.lead_id, e.fact::text AS fact
FROM metric_applied_events e JOIN closed USING (lead_id)
WHERE e.fact->>'type' = 'Accepted'
   OR (e.fact->>'type' = 'StageMoved' AND e.fact->>'stage' IN ('won', 'lost'))
ORDER BY e.seq
"""


async def read_close_facts(url: str, start: date, end: date) -> list[tuple[str, dict[str, Any]]]:
    """``(lead_id, fact)`` of every lead with a move to won or lost on a UTC day from
    ``start`` to ``end``: its Accepted fact and all its won/lost moves."""
    lo = datetime.combine(start, time(), UTC)
    hi = datetime.combine(end + timedelta(days=1), time(), UTC)
    conn = await asyncpg.connect(url, command_timeout=300)
    try:
        rows = await conn.fetch(_SQL, lo, hi)
    finally:
        await conn.close()
    return [(r["lead_id"], json.loads(r["fact"])) for r in rows]
