"""PostgreSQL side of assignment: the unit of work and its repository.

A transaction locks the teams it may change (their ``rotation_cursors`` rows, in team
order), reads with ``sql.READ`` and writes with ``sql.APPLY``; the decisions in between
are the handlers' and the domain's. Redelivered leads are answered from the
``assignments`` table, and events go out through it (``published_at``)."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import datetime

import asyncpg

from leadloop.events import LeadAccepted, LeadAssigned, RepStatus, RepUpdated
from leadloop_assignment.adapters.sql import (
    APPLY,
    COOLDOWNS,
    CURSORS,
    DECIDED,
    EVENT_COLUMNS,
    INTAKE,
    LOAD,
    PLACED,
    READ,
    WEIGHTED,
)
from leadloop_assignment.domain.changes import Changes
from leadloop_assignment.domain.moves import PRIORITY_RANK, HeldLead, Takeback
from leadloop_assignment.domain.routing import RoutingState
from leadloop_assignment.domain.rules import RosterEntry
from leadloop_assignment.ports import Closing, DecidedElsewhere, ReadScope, Snapshot

__all__ = ["PostgresRepository", "PostgresUnitOfWork"]

#: Pooled leads looked at per team and pass (hottest, then oldest first).
_POOL_PER_TEAM = 200

_LOCK = (
    "SELECT team_id, last_rep_id FROM rotation_cursors WHERE team_id = ANY($1::text[]) "
    "ORDER BY team_id FOR UPDATE"
)


class PostgresUnitOfWork:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        #: Teams whose rotation_cursors row is committed (no row is ever deleted), so
        #: locking them needs no placeholder insert first.
        self._cursor_rows: set[str] = set()

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[PostgresRepository]:
        async with self._pool.acquire() as conn, conn.transaction():
            repo = PostgresRepository(conn, self._cursor_rows)
            yield repo
        self._cursor_rows |= repo.locked  # committed now, and never deleted

    @asynccontextmanager
    async def connection(self) -> AsyncIterator[PostgresRepository]:
        async with self._pool.acquire() as conn:
            yield PostgresRepository(conn, self._cursor_rows)


class PostgresRepository:
    def __init__(self, conn: asyncpg.Connection, cursor_rows: set[str]) -> None:
        self._conn = conn
        self._cursor_rows = cursor_rows
        #: Teams this transaction locked.
        self.locked: set[str] = set()

    async def roster(self) -> list[RosterEntry]:
        rows = await self._conn.fetch(
            "SELECT rep_id, team_id, manager_id, status, capacity, weight FROM assignment_reps "
            "ORDER BY rep_id"
        )
        return [_roster_entry(tuple(r)) for r in rows]

    async def roster_teams(self) -> set[str]:
        rows = await self._conn.fetch("SELECT DISTINCT team_id FROM assignment_reps")
        return {r["team_id"] for r in rows}

    async def lock(self, teams: Sequence[str]) -> dict[str, str]:
        teams = list(teams)
        if not set(teams) <= self._cursor_rows:
            await self._cursor_placeholders(teams)
        rows = await self._conn.fetch(_LOCK, teams)
        if len(rows) < len(set(teams)):
            # Only if a row known to exist went away: insert it again and lock all.
            self._cursor_rows.clear()
            await self._cursor_placeholders(teams)
            rows = await self._conn.fetch(_LOCK, teams)
        self.locked |= {r["team_id"] for r in rows}
        return {r["team_id"]: r["last_rep_id"] for r in rows if r["last_rep_id"]}

    async def _cursor_placeholders(self, teams: Sequence[str]) -> None:
        """Rows must exist to be locked; the placeholder cursor '' sorts before every rep."""
        await self._conn.execute(
            "INSERT INTO rotation_cursors (team_id, last_rep_id, updated_at) "
            "SELECT t, '', now() FROM unnest($1::text[]) t ON CONFLICT DO NOTHING",
            list(teams),
        )

    async def read(self, scope: ReadScope) -> Snapshot:
        state = scope.state
        row = await self._conn.fetchrow(
            READ.text,
            *READ.args(
                {
                    "leads": list(scope.leads),
                    "reps": list(state.reps),
                    "intake_reps": [rep for rep, _ in state.intake],
                    "intake_days": [day for _, day in state.intake],
                    "teams": [team for team, _ in state.rosters],
                    "rosters": [roster for _, roster in state.rosters],
                    "named": list(scope.named),
                    "owners": list(scope.owners),
                    "pools": list(scope.pools),
                    "pool_limit": _POOL_PER_TEAM,
                    "now": scope.now,
                }
            ),
        )
        assert row is not None
        cooling: dict[str, set[str]] = {}
        for lead_id, rep_id in row["cooling"]:
            cooling.setdefault(lead_id, set()).add(rep_id)
        held = {r[0]: _held(tuple(r)) for r in row["held"]}
        return Snapshot(
            roster=[_roster_entry(tuple(r)) for r in row["roster"]],
            state=RoutingState(
                load={rep: n for rep, n in row["load"]},
                intake={(rep, day): n for rep, day, n in row["intake"]},
                weighted={(team, roster, rep): n for team, roster, rep, n in row["weighted"]},
                cooling={lead: frozenset(reps) for lead, reps in cooling.items()},
            ),
            decided={e.lead_id: e for e in (_event(tuple(r)) for r in row["decided"])},
            closed=frozenset(row["closed"]),
            held=list(held.values()),
        )

    async def apply(self, changes: Changes) -> None:
        if not changes:
            return
        values: dict[str, object] = {"now": changes.now}
        values |= DECIDED.values(
            [
                (
                    e.assignment_id,
                    e.lead_id,
                    e.kind.value,
                    e.owner_id,
                    e.team_id,
                    e.rule_id,
                    e.rule_version,
                    e.strategy.value,
                    e.previous_owner_id,
                    json.dumps(r.record),
                    e.priority.value,
                    e.lead_occurred_at,
                    e.assigned_at,
                    e.event_id,
                    r.cause,
                    e.sequence,
                )
                for r in changes.recorded
                for e in (r.event,)
            ]
        )
        values |= PLACED.values(
            [
                (
                    p.lead_id,
                    p.lead.model_dump_json() if p.lead else None,
                    p.team_id,
                    p.rule_id,
                    p.owner_id,
                    PRIORITY_RANK[p.lead.priority] if p.lead else None,
                    p.lead.accepted_at if p.lead else None,
                    p.moves,
                )
                for p in changes.placed
            ]
        )
        values |= CURSORS.values(list(changes.cursors.items()))
        values |= LOAD.values(
            [(rep, s.team_id, s.opened, s.assigned) for rep, s in changes.load.items()]
        )
        values |= INTAKE.values([(rep, day, n) for (rep, day), n in changes.intake.items()])
        values |= WEIGHTED.values([(*key, n) for key, n in changes.weighted.items()])
        values |= COOLDOWNS.values(list(changes.cooldowns))
        try:
            await self._conn.execute(APPLY.text, *APPLY.args(values))
        except asyncpg.exceptions.UniqueViolationError as exc:
            raise DecidedElsewhere(str(exc)) from exc

    async def record_roster(self, reps: Sequence[RepUpdated]) -> None:
        latest: dict[str, RepUpdated] = {}  # one row per rep and statement
        for r in reps:
            if r.rep_id not in latest or latest[r.rep_id].updated_at < r.updated_at:
                latest[r.rep_id] = r
        rows = list(latest.values())
        await self._conn.execute(
            "INSERT INTO assignment_reps (rep_id, team_id, manager_id, status, capacity, "
            "weight, timezone, updated_at, event_id) SELECT * FROM unnest($1::text[], "
            "$2::text[], $3::text[], $4::text[], $5::int[], $6::int[], $7::text[], "
            "$8::timestamptz[], $9::text[]) ON CONFLICT (rep_id) DO UPDATE SET "
            "team_id = EXCLUDED.team_id, manager_id = EXCLUDED.manager_id, "
            "status = EXCLUDED.status, capacity = EXCLUDED.capacity, weight = EXCLUDED.weight, "
            "timezone = EXCLUDED.timezone, updated_at = EXCLUDED.updated_at, "
            "event_id = EXCLUDED.event_id WHERE assignment_reps.updated_at < EXCLUDED.updated_at",
            [r.rep_id for r in rows],
            [r.team_id for r in rows],
            [r.manager_id for r in rows],
            [r.status.value for r in rows],
            [r.capacity for r in rows],
            [r.weight for r in rows],
            [r.timezone for r in rows],
            [r.updated_at for r in rows],
            [r.event_id for r in rows],
        )

    async def close(self, closings: Sequence[Closing], now: datetime) -> list[str]:
        first: dict[str, datetime] = {}
        for lead_id, at in closings:
            first.setdefault(lead_id, at)
        # Both parts see the rows as they were: the update closes the decided leads, the
        # insert remembers the others (it conflicts with every row the update sees).
        rows = await self._conn.fetch(
            "WITH v AS (SELECT * FROM unnest($1::text[], $2::timestamptz[]) AS v(lead, at)), "
            "remembered AS (INSERT INTO assignment_leads (lead_id, closed_at, updated_at) "
            "SELECT lead, at, $3 FROM v ON CONFLICT (lead_id) DO NOTHING) "
            "UPDATE assignment_leads a SET closed_at = v.at, updated_at = $3 FROM v "
            "WHERE a.lead_id = v.lead AND a.closed_at IS NULL RETURNING a.owner_id",
            list(first),
            list(first.values()),
            now,
        )
        return [r["owner_id"] for r in rows if r["owner_id"]]

    async def unapplied(self, takebacks: Sequence[Takeback], now: datetime) -> list[Takeback]:
        if not takebacks:
            return []
        fresh = {
            r["event_id"]
            for r in await self._conn.fetch(
                "INSERT INTO assignment_applied_events (event_id, applied_at) "
                "SELECT e, $2 FROM unnest($1::text[]) e ON CONFLICT DO NOTHING RETURNING event_id",
                sorted({tb.escalation_id for tb in takebacks}),
                now,
            )
        }
        return [tb for tb in takebacks if tb.escalation_id in fresh]

    async def unpublished(
        self,
        *,
        leads: Sequence[str] | None = None,
        older_than: datetime | None = None,
        limit: int = 500,
    ) -> list[LeadAssigned]:
        if leads is not None:
            rows = await self._conn.fetch(
                f"SELECT {EVENT_COLUMNS} FROM assignments WHERE lead_id = ANY($1::text[]) "  # noqa: S608 (a constant)
                "AND published_at IS NULL ORDER BY lead_id, seq",
                list(leads),
            )
        else:
            assert older_than is not None
            rows = await self._conn.fetch(
                f"SELECT {EVENT_COLUMNS} FROM assignments WHERE published_at IS NULL "  # noqa: S608 (a constant)
                "AND assigned_at < $1 ORDER BY assigned_at, lead_id, seq LIMIT $2",
                older_than,
                limit,
            )
        return [_event(tuple(r)) for r in rows]

    async def published(self, events: Sequence[LeadAssigned], now: datetime) -> None:
        if not events:
            return
        await self._conn.execute(
            "UPDATE assignments SET published_at = $2 WHERE assignment_id = ANY($1::text[]) "
            "AND published_at IS NULL",
            [e.assignment_id for e in events],
            now,
        )

    async def waiting(self, departed: Sequence[str]) -> bool:
        return bool(
            await self._conn.fetchval(
                "SELECT EXISTS (SELECT 1 FROM assignment_leads WHERE closed_at IS NULL "
                "AND lead IS NOT NULL AND (owner_id IS NULL OR owner_id = ANY($1::text[])))",
                list(departed),
            )
        )


def _event(r: tuple[object, ...]) -> LeadAssigned:
    """An ``assignments`` row, as ``sql.EVENT_COLUMNS`` lists its columns."""
    (assignment_id, lead_id, kind, owner_id, team_id, rule_id, rule_version, strategy) = r[:8]
    (previous_owner_id, reason, priority, lead_occurred_at, assigned_at, event_id, seq) = r[8:]
    record = json.loads(reason) if isinstance(reason, str) else reason
    assert isinstance(record, dict)
    return LeadAssigned.model_validate(
        {
            "event_id": event_id,
            "occurred_at": assigned_at,
            "assignment_id": assignment_id,
            "lead_id": lead_id,
            "owner_id": owner_id,
            "team_id": team_id,
            "rule_id": rule_id,
            "rule_version": rule_version,
            "strategy": strategy,
            "kind": kind,
            "previous_owner_id": previous_owner_id,
            "reason": record["text"],
            "lead_occurred_at": lead_occurred_at,
            "assigned_at": assigned_at,
            "priority": priority,
            "sequence": seq,
        }
    )


def _roster_entry(r: tuple[object, ...]) -> RosterEntry:
    rep_id, team_id, manager_id, status, capacity, weight = r
    assert isinstance(rep_id, str)
    assert isinstance(team_id, str)
    assert isinstance(status, str)
    assert isinstance(capacity, int)
    assert isinstance(weight, int)
    return RosterEntry(
        rep_id=rep_id,
        team_id=team_id,
        status=RepStatus(status),
        capacity=capacity,
        weight=weight,
        manager_id=manager_id if isinstance(manager_id, str) else None,
    )


def _held(r: tuple[object, ...]) -> HeldLead:
    _, lead, team_id, rule_id, owner_id, moves = r
    assert isinstance(lead, str)
    assert isinstance(team_id, str)
    assert isinstance(rule_id, str)
    assert isinstance(moves, int)
    return HeldLead(
        lead=LeadAccepted.model_validate_json(lead),
        team_id=team_id,
        rule_id=rule_id,
        owner_id=owner_id if isinstance(owner_id, str) else None,
        moves=moves,
    )
