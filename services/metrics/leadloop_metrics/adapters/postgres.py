"""PostgreSQL side of metrics: applied event ids and counter values, changed together.

``apply`` records the batch's event ids and adds the increments of the events that were
new, in one transaction; ``load`` reads every series at start. The served counters are
therefore always a function of this table, which is what ``reconcile`` compares.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from datetime import datetime

import asyncpg

from leadloop_metrics.domain.fold import Event, Increment, SeriesKey

__all__ = ["MetricStore"]


class MetricStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def apply(
        self,
        events: Sequence[Event],
        fold: Callable[[Sequence[Event]], Increment],
        now: datetime,
    ) -> Increment:
        """Fold the events not applied before; return the increments that were saved."""
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "INSERT INTO metric_applied_events (event_id, applied_at) "
                "SELECT e, $2 FROM unnest($1::text[]) e ON CONFLICT DO NOTHING RETURNING event_id",
                list(dict.fromkeys(e.event_id for e in events)),
                now,
            )
            new_ids = {r["event_id"] for r in rows}
            seen: set[str] = set()
            fresh = []
            for e in events:
                if e.event_id in new_ids and e.event_id not in seen:
                    seen.add(e.event_id)
                    fresh.append(e)
            inc = fold(fresh)
            if inc:
                keys = list(inc)
                await conn.execute(
                    "INSERT INTO metric_values (metric, labels, value) "
                    "SELECT m, l::jsonb, v FROM unnest($1::text[], $2::text[], $3::float8[]) "
                    "AS t(m, l, v) ON CONFLICT (metric, labels) DO UPDATE "
                    "SET value = metric_values.value + EXCLUDED.value",
                    [k[0] for k in keys],
                    [json.dumps(dict(k[1])) for k in keys],
                    [float(inc[k]) for k in keys],
                )
        return inc

    async def load(self) -> dict[SeriesKey, float]:
        rows = await self._pool.fetch("SELECT metric, labels, value FROM metric_values")
        out: dict[SeriesKey, float] = {}
        for r in rows:
            labels = r["labels"]
            labels = json.loads(labels) if isinstance(labels, str) else labels
            out[(r["metric"], tuple(sorted(labels.items())))] = r["value"]
        return out
