"""PostgreSQL side of sla-monitor: clocks, the due-time index, and the escalation outbox.

``PostgresUnitOfWork`` opens one transaction and hands out a ``PostgresClocks``
repository over it (``ports.ClockRepository``). The repository only loads and saves;
the rules live in ``domain.lifecycle`` and ``domain.firing``. Every method is a fixed
number of statements whatever the batch size: rows go in and out as arrays (unnest).

Input events are marked applied in the transaction that applies them, so a redelivered
event changes nothing. Fired steps are rows with a deterministic ``escalation_id``
(primary key with the status): firing a step twice is impossible, and the outbox
publishes each row until it is marked published, so a crash between the two repeats a
publish, never loses one.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterable, Sequence
from contextlib import asynccontextmanager
from datetime import datetime
from typing import Any

import asyncpg

from leadloop.events import (
    EscalationAction,
    EscalationKind,
    EscalationRaised,
    EscalationStatus,
    Priority,
    Stage,
)
from leadloop_sla_monitor.adapters import sql
from leadloop_sla_monitor.domain.firing import Advance
from leadloop_sla_monitor.domain.ladder import Clock
from leadloop_sla_monitor.domain.state import (
    ClockKey,
    ClockState,
    Decision,
    Fired,
    LeadState,
    Rep,
    Scope,
    Snapshot,
    Touch,
)
from leadloop_sla_monitor.ports import AlertDue

__all__ = ["PostgresClocks", "PostgresUnitOfWork"]


class PostgresUnitOfWork:
    """``ports.UnitOfWork`` on a pool: one connection and transaction per unit."""

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[PostgresClocks]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield PostgresClocks(conn)


class PostgresClocks:
    """``ports.ClockRepository`` over one connection inside a transaction."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    # --- input events -----------------------------------------------------------------

    async def read(self, scope: Scope, now: datetime) -> Snapshot:
        conn = self._conn
        new: frozenset[str] = frozenset()
        if scope.event_ids:
            rows = await conn.fetch(sql.CLAIM, list(scope.event_ids), now)
            new = frozenset(r[0] for r in rows)
        if not scope.lead_ids:
            return Snapshot(new_event_ids=new)
        leads: dict[str, LeadState] = {}
        touches: dict[str, Touch] = {}
        reps: dict[str, Rep] = {}
        for r in await conn.fetch(sql.READ_LEADS, list(scope.lead_ids)):
            if r["known"]:
                leads[r["lead_id"]] = _lead(r)
            if r["last_touch_at"] is not None:
                touches[r["lead_id"]] = Touch(
                    r["last_touch_at"], r["next_followup_at"], r["touch_event_id"]
                )
            if r["rep_id"] is not None:
                reps[r["rep_id"]] = Rep(
                    r["rep_id"], r["rep_team_id"], r["manager_id"], r["status"], r["updated_at"]
                )
        missing = [rep_id for rep_id in scope.rep_ids if rep_id not in reps]
        if missing:
            for r in await conn.fetch(
                "SELECT rep_id, team_id, manager_id, status, updated_at FROM sla_reps "
                "WHERE rep_id = ANY($1::text[])",
                missing,
            ):
                reps[r["rep_id"]] = Rep(*r)
        # A batch may start a clock in a cycle of its own events, or of a touch read
        # earlier: such a clock may exist (stopped), and then is not started again.
        cycles = [*scope.cycles, *(t.touch_event_id for t in touches.values() if t.touch_event_id)]
        clocks: dict[ClockKey, ClockState] = {}
        for r in await conn.fetch(sql.READ_CLOCKS, list(scope.lead_ids), cycles):
            state = ClockState(
                clock=_clock(r),
                due_at=r["due_at"],
                stopped_at=r["stopped_at"],
                stop_reason=r["stop_reason"],
            )
            clocks[state.key] = state
        return Snapshot(new, leads, touches, reps, clocks)

    async def fired(self, escalation_ids: Sequence[str]) -> dict[str, Fired]:
        if not escalation_ids:
            return {}
        rows = await self._conn.fetch(sql.FIRED, list(escalation_ids))
        return {r["escalation_id"]: Fired(r["breached_at"], r["manager_id"]) for r in rows}

    async def apply(
        self,
        decision: Decision,
        resolved: Sequence[EscalationRaised],
        paged: Sequence[EscalationRaised],
        now: datetime,
    ) -> int:
        conn = self._conn
        saved = 0
        if decision.reps:
            rows = await conn.fetch(
                sql.SAVE_REPS,
                *_columns(
                    (r.rep_id, r.team_id, r.manager_id, r.status, r.updated_at)
                    for r in decision.reps
                ),
            )
            saved = len(rows)
        if decision.leads:
            await conn.execute(
                sql.SAVE_LEADS,
                *_columns(
                    (
                        lead.lead_id,
                        lead.source,
                        lead.priority.value if lead.priority else None,
                        lead.team_id,
                        lead.owner_id,
                        lead.stage.value,
                        lead.stage_changed_at,
                        lead.closed_at,
                    )
                    for lead in decision.leads
                ),
            )
        if decision.touches:
            await conn.execute(
                sql.SAVE_TOUCHES,
                *_columns(
                    (lead_id, t.last_touch_at, t.next_followup_at, t.touch_event_id)
                    for lead_id, t in decision.touches
                ),
            )
        if decision.clocks:
            await conn.execute(
                sql.SAVE_CLOCKS,
                *_columns(
                    (
                        *_clock_values(s.clock),
                        s.due_at,
                        s.stopped_at,
                        s.stop_reason,
                    )
                    for s in decision.clocks
                ),
            )
        await self._insert(resolved, paged, now)
        return saved

    # --- the ticker -------------------------------------------------------------------

    async def due(self, now: datetime, limit: int) -> list[Clock]:
        rows = await self._conn.fetch(sql.DUE, now, limit)
        return [
            Clock(
                lead_id,
                EscalationKind(kind),
                cycle,
                policy_id,
                owner,
                team,
                manager,
                started_at,
                next_level,
                promised_at,
            )
            for (
                lead_id,
                kind,
                cycle,
                policy_id,
                owner,
                team,
                manager,
                started_at,
                next_level,
                promised_at,
            ) in rows
        ]

    async def record_fired(
        self,
        events: Sequence[EscalationRaised],
        advances: Sequence[Advance],
        paged: Sequence[EscalationRaised],
        now: datetime,
    ) -> None:
        await self._insert(events, paged, now)
        if advances:
            await self._conn.execute(
                sql.ADVANCE,
                *_columns(
                    (a.key[0], a.key[1].value, a.key[2], a.next_level, a.due_at) for a in advances
                ),
            )

    async def _insert(
        self,
        events: Sequence[EscalationRaised],
        paged: Sequence[EscalationRaised],
        now: datetime,
    ) -> None:
        if not events:
            return
        await self._conn.execute(
            sql.INSERT_ESCALATIONS,
            *_columns(
                (
                    e.escalation_id,
                    e.status.value,
                    e.event_id,
                    e.lead_id,
                    e.owner_id,
                    e.team_id,
                    e.manager_id,
                    e.policy_id,
                    e.kind.value,
                    e.level,
                    e.action.value,
                    e.due_at,
                    e.breached_at,
                    e.occurred_at,
                )
                for e in events
            ),
        )
        if paged:
            await self._conn.execute(
                sql.INSERT_ALERTS,
                [e.escalation_id for e in paged],
                [e.status.value for e in paged],
                now,
            )

    # --- outboxes ---------------------------------------------------------------------

    async def unpublished(self, limit: int) -> list[EscalationRaised]:
        rows = await self._conn.fetch(
            "SELECT * FROM escalations WHERE published_at IS NULL "
            "ORDER BY occurred_at, level LIMIT $1 FOR UPDATE SKIP LOCKED",
            limit,
        )
        return [_escalation(r) for r in rows]

    async def claim_unpublished(self, events: Sequence[EscalationRaised]) -> list[EscalationRaised]:
        rows = await self._conn.fetch(
            "SELECT escalation_id, status FROM escalations "
            "WHERE (escalation_id, status) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[])) "
            "AND published_at IS NULL FOR UPDATE SKIP LOCKED",
            [e.escalation_id for e in events],
            [e.status.value for e in events],
        )
        held = {(r["escalation_id"], r["status"]) for r in rows}
        return [e for e in events if (e.escalation_id, e.status.value) in held]

    async def mark_published(self, events: Sequence[EscalationRaised]) -> None:
        await self._conn.execute(
            "UPDATE escalations SET published_at = clock_timestamp() "
            "WHERE (escalation_id, status) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[]))",
            [e.escalation_id for e in events],
            [e.status.value for e in events],
        )

    async def alerts_due(self, now: datetime, limit: int) -> list[AlertDue]:
        rows = await self._conn.fetch(
            "SELECT o.seq, o.attempts, e.* FROM sla_alert_outbox o "
            "JOIN escalations e USING (escalation_id, status) "
            "WHERE o.delivered_at IS NULL AND o.next_attempt_at <= $1 "
            "ORDER BY o.seq LIMIT $2 FOR UPDATE OF o SKIP LOCKED",
            now,
            limit,
        )
        return [AlertDue(_escalation(r), r["attempts"]) for r in rows]

    async def alerts_delivered(self, events: Sequence[EscalationRaised], now: datetime) -> None:
        await self._conn.execute(
            "UPDATE sla_alert_outbox SET delivered_at = $3, attempts = attempts + 1 "
            "WHERE (escalation_id, status) IN "
            "(SELECT * FROM unnest($1::text[], $2::text[]))",
            [e.escalation_id for e in events],
            [e.status.value for e in events],
            now,
        )

    async def alerts_failed(
        self, retries: Sequence[tuple[EscalationRaised, datetime]], reason: str
    ) -> None:
        await self._conn.executemany(
            "UPDATE sla_alert_outbox SET attempts = attempts + 1, "
            "next_attempt_at = $3, last_error = $4 "
            "WHERE escalation_id = $1 AND status = $2",
            [(e.escalation_id, e.status.value, at, reason) for e, at in retries],
        )


def _columns(rows: Iterable[tuple[Any, ...]]) -> list[list[Any]]:
    """Rows as one list per column, for ``unnest``."""
    return [list(col) for col in zip(*rows, strict=True)]


def _clock_values(c: Clock) -> tuple[Any, ...]:
    return (
        c.lead_id,
        c.kind.value,
        c.cycle,
        c.policy_id,
        c.owner_id,
        c.team_id,
        c.manager_id,
        c.started_at,
        c.next_level,
        c.promised_at,
    )


def _lead(r: asyncpg.Record) -> LeadState:
    return LeadState(
        lead_id=r["lead_id"],
        source=r["source"],
        priority=Priority(r["priority"]) if r["priority"] else None,
        team_id=r["team_id"],
        owner_id=r["owner_id"],
        stage=Stage(r["stage"]),
        stage_changed_at=r["stage_changed_at"],
        closed_at=r["closed_at"],
    )


def _clock(r: asyncpg.Record) -> Clock:
    return Clock(
        lead_id=r["lead_id"],
        kind=EscalationKind(r["kind"]),
        cycle=r["cycle"],
        policy_id=r["policy_id"],
        owner_id=r["owner_id"],
        team_id=r["team_id"],
        manager_id=r["manager_id"],
        started_at=r["started_at"],
        next_level=r["next_level"],
        promised_at=r["promised_at"],
    )


def _escalation(r: asyncpg.Record) -> EscalationRaised:
    return EscalationRaised(
        event_id=r["event_id"],
        occurred_at=r["occurred_at"],
        escalation_id=r["escalation_id"],
        lead_id=r["lead_id"],
        owner_id=r["owner_id"],
        team_id=r["team_id"],
        manager_id=r["manager_id"],
        policy_id=r["policy_id"],
        kind=EscalationKind(r["kind"]),
        level=r["level"],
        action=EscalationAction(r["action"]),
        due_at=r["due_at"],
        breached_at=r["breached_at"],
        status=EscalationStatus(r["status"]),
    )
