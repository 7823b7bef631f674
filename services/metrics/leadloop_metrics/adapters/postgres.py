"""PostgreSQL side of metrics: applied facts, per-lead state and series values, changed
together.

A ``batch`` is one transaction: ``read`` locks the leads the facts concern and records
the facts' event ids (returning the facts that were new), ``apply`` saves the states and
the series changes the fold computed from them. A redelivered event changes nothing,
and the served values are always a function of these tables. ``load`` reads every
series; ``facts`` and ``states`` give reconcile what it replays and compares. ``forecast`` is the
snapshot job's transaction (``ForecastJob``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

import asyncpg

from leadloop_metrics.adapters.lead_state_json import state_from_json, state_to_json
from leadloop_metrics.domain.facts import Fact, Outcome, fact_from_json, fact_to_json
from leadloop_metrics.domain.fold import Step
from leadloop_metrics.domain.forecast import (
    Forecast,
    ForecastStep,
    Pipeline,
    Snapshot,
    pipeline_of,
)
from leadloop_metrics.domain.labels import SeriesKey
from leadloop_metrics.domain.leads import LeadState
from leadloop_metrics.domain.metric_defs import DERIVED
from leadloop_metrics.domain.silence import Quiet, quiet_since

__all__ = ["ForecastJob", "MetricBatch", "MetricStore"]

#: Lead states read per statement by the forecast job.
_PAGE = 5000

_TOPIC = {
    "Outcome": "ingest.outcomes",
    "Accepted": "leads.accepted",
    "Assigned": "leads.assigned",
    "Touched": "crm.activities",
    "StageMoved": "crm.stage-changes",
    "Escalated": "sla.escalations",
    "Rated": "crm.satisfaction",
    # Not a topic: the metrics' own silence sweep.
    "Silenced": "metrics.silence",
}


def _lead_of(fact: Fact) -> str | None:
    return None if isinstance(fact, Outcome) else fact.lead_id


class MetricBatch:
    """One batch's transaction: at most five statements, three in ``read`` (the lead
    locks only when a fact concerns a lead) and two in ``apply`` (each only when it has
    something to save)."""

    def __init__(self, conn: asyncpg.Connection, now: datetime) -> None:
        self._conn = conn
        self._now = now

    async def read(self, facts: Sequence[Fact]) -> tuple[dict[str, LeadState], list[Fact]]:
        """Lock the facts' leads and record the facts; the stored states of those leads and
        the facts not recorded before, in order (``facts`` hold each event id once)."""
        conn, now = self._conn, self._now
        lead_ids = sorted({lead for f in facts if (lead := _lead_of(f)) is not None})
        states: dict[str, LeadState] = {}
        if lead_ids:
            # Lock the leads first, in one order: a second worker holding the same
            # leads during a rebalance waits, so each lead's facts are applied (and
            # numbered by seq) in the order they were folded.
            await conn.execute(
                "INSERT INTO metric_leads (lead_id, state, updated_at) "
                "SELECT l, 'null'::jsonb, $2 FROM unnest($1::text[]) l "
                "ON CONFLICT DO NOTHING",
                lead_ids,
                now,
            )
            rows = await conn.fetch(
                "SELECT lead_id, state FROM metric_leads WHERE lead_id = ANY($1::text[]) "
                "ORDER BY lead_id FOR UPDATE",
                lead_ids,
            )
            for r in rows:
                data = _json(r["state"])
                if data is not None:
                    states[r["lead_id"]] = state_from_json(r["lead_id"], data)
        inserted = await conn.fetch(
            "INSERT INTO metric_applied_events (event_id, applied_at, topic, lead_id, fact) "
            "SELECT e, $2, t, l, f::jsonb FROM unnest($1::text[], $3::text[], $4::text[], "
            "$5::text[]) WITH ORDINALITY AS x(e, t, l, f, n) ORDER BY n "
            "ON CONFLICT DO NOTHING RETURNING event_id",
            [f.event_id for f in facts],
            now,
            [_TOPIC[type(f).__name__] for f in facts],
            [_lead_of(f) for f in facts],
            [json.dumps(fact_to_json(f)) for f in facts],
        )
        new_ids = {r["event_id"] for r in inserted}
        return states, [f for f in facts if f.event_id in new_ids]

    async def apply(self, result: Step) -> None:
        """Save the changed lead states and add the series changes."""
        if result.states:
            changed = list(result.states.values())
            await self._conn.execute(
                "UPDATE metric_leads m SET state = s.state::jsonb, updated_at = $3, "
                "quiet_since = s.quiet_since, team = s.team "
                "FROM unnest($1::text[], $2::text[], $4::timestamptz[], $5::text[]) "
                "AS s(lead_id, state, quiet_since, team) "
                "WHERE m.lead_id = s.lead_id",
                [s.lead_id for s in changed],
                [json.dumps(state_to_json(s)) for s in changed],
                self._now,
                [quiet_since(s) for s in changed],
                [s.team for s in changed],
            )
        if result.delta:
            keys = sorted(result.delta)
            await self._conn.execute(
                "INSERT INTO metric_values (metric, labels, value) "
                "SELECT m, l::jsonb, v FROM unnest($1::text[], $2::text[], $3::float8[]) "
                "AS t(m, l, v) ON CONFLICT (metric, labels) DO UPDATE "
                "SET value = metric_values.value + EXCLUDED.value",
                [k[0] for k in keys],
                [json.dumps(dict(k[1])) for k in keys],
                [result.delta[k] for k in keys],
            )


class ForecastJob:
    """The snapshot job's transaction. It holds an advisory lock, so the workers of the
    group take each snapshot once and replace the served forecast one at a time."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def last_taken(self) -> datetime | None:
        taken: datetime | None = await self._conn.fetchval(
            "SELECT max(taken_at) FROM metric_forecasts"
        )
        return taken

    async def pipeline(self, team_label: Callable[[str], str]) -> Pipeline:
        """Every lead's state, read a page at a time and kept only as the forecast's
        small records."""
        parts: list[Pipeline] = []
        last = ""
        while True:
            rows = await self._conn.fetch(
                "SELECT lead_id, state FROM metric_leads WHERE lead_id > $1 "
                "AND state <> 'null'::jsonb ORDER BY lead_id LIMIT $2",
                last,
                _PAGE,
            )
            if not rows:
                break
            states = (state_from_json(r["lead_id"], _json(r["state"])) for r in rows)
            parts.append(pipeline_of(states, team_label))
            last = rows[-1]["lead_id"]
        return Pipeline(
            tuple(o for p in parts for o in p.open_leads),
            tuple(c for p in parts for c in p.closed),
            tuple(w for p in parts for w in p.wins),
        )

    async def snapshots(self, since: date) -> list[Snapshot]:
        """The stored snapshots of the months from ``since`` on."""
        rows = await self._conn.fetch(
            "SELECT team, month, taken_at, age, weighted_cents, commit_cents, "
            "best_case_cents, probabilities FROM metric_forecasts WHERE month >= $1",
            since,
        )
        return [
            Snapshot(
                r["team"],
                r["month"],
                r["taken_at"],
                r["age"],
                Forecast(r["weighted_cents"], r["commit_cents"], r["best_case_cents"]),
                _json(r["probabilities"]),
            )
            for r in rows
        ]

    async def save(self, step: ForecastStep) -> None:
        """Store the new snapshots and replace every forecast series."""
        snaps = step.snapshots
        if snaps:
            await self._conn.execute(
                "INSERT INTO metric_forecasts (team, month, taken_at, age, weighted_cents, "
                "commit_cents, best_case_cents, probabilities) "
                "SELECT * FROM unnest($1::text[], $2::date[], $3::timestamptz[], $4::int[], "
                "$5::bigint[], $6::bigint[], $7::bigint[], $8::jsonb[]) "
                "ON CONFLICT DO NOTHING",
                [s.team for s in snaps],
                [s.month for s in snaps],
                [s.taken_at for s in snaps],
                [s.age for s in snaps],
                [s.forecast.weighted_cents for s in snaps],
                [s.forecast.commit_cents for s in snaps],
                [s.forecast.best_case_cents for s in snaps],
                [json.dumps(dict(s.probabilities)) for s in snaps],
            )
        await self._conn.execute(
            "DELETE FROM metric_values WHERE metric = ANY($1::text[])", sorted(DERIVED)
        )
        keys = sorted(step.series)
        await self._conn.execute(
            "INSERT INTO metric_values (metric, labels, value) "
            "SELECT m, l::jsonb, v FROM unnest($1::text[], $2::text[], $3::float8[]) AS t(m, l, v)",
            [k[0] for k in keys],
            [json.dumps(dict(k[1])) for k in keys],
            [step.series[k] for k in keys],
        )


class MetricStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def forecast(self) -> AsyncIterator[ForecastJob]:
        """The forecast job's transaction, after the other workers' (advisory lock)."""
        async with self._pool.acquire() as conn, conn.transaction():
            await conn.execute("SELECT pg_advisory_xact_lock(hashtext('metric_forecasts'))")
            yield ForecastJob(conn)

    @asynccontextmanager
    async def batch(self, now: datetime) -> AsyncIterator[MetricBatch]:
        """One transaction, committed when the block ends without an exception."""
        async with self._pool.acquire() as conn, conn.transaction():
            yield MetricBatch(conn, now)

    async def load(self) -> dict[SeriesKey, float]:
        """Every stored series (labels sorted by name; the view orders them)."""
        rows = await self._pool.fetch("SELECT metric, labels, value FROM metric_values")
        out: dict[SeriesKey, float] = {}
        for r in rows:
            labels = _json(r["labels"])
            out[(r["metric"], tuple(sorted(labels.items())))] = r["value"]
        return out

    async def quiet(
        self, before: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[Quiet]:
        """Up to ``limit`` leads that could be silent, quiet since ``before`` or earlier,
        in (quiet_since, lead_id) order after ``after``."""
        since, lead = after if after is not None else (None, "")
        rows = await self._pool.fetch(
            "SELECT lead_id, team, quiet_since FROM metric_leads "
            "WHERE quiet_since IS NOT NULL AND quiet_since <= $1 "
            "AND ($2::timestamptz IS NULL OR (quiet_since, lead_id) > ($2, $3)) "
            "ORDER BY quiet_since, lead_id LIMIT $4",
            before,
            since,
            lead,
            limit,
        )
        return [Quiet(r["lead_id"], r["team"], r["quiet_since"]) for r in rows]

    async def facts(self, batch: int = 5000) -> AsyncIterator[Fact | None]:
        """Every applied fact in application order (None: applied before facts were kept)."""
        last = -1
        while True:
            rows = await self._pool.fetch(
                "SELECT seq, fact FROM metric_applied_events WHERE seq > $1 ORDER BY seq LIMIT $2",
                last,
                batch,
            )
            if not rows:
                return
            for r in rows:
                data = _json(r["fact"])
                yield None if data is None else fact_from_json(data)
            last = rows[-1]["seq"]

    async def states(self) -> dict[str, LeadState]:
        rows = await self._pool.fetch("SELECT lead_id, state FROM metric_leads")
        return {
            r["lead_id"]: state_from_json(r["lead_id"], data)
            for r in rows
            if (data := _json(r["state"])) is not None
        }


def _json(value: Any) -> Any:
    return json.loads(value) if isinstance(value, str) else value
