"""PostgreSQL side of sla-monitor: clocks, the due-time index, and the escalation outbox.

Every change for a batch of input events happens in one transaction together with the
record of which event ids were applied, so a redelivered event changes nothing. Fired
steps are rows with a deterministic ``escalation_id`` (primary key with the status):
firing a step twice is impossible, and the outbox publishes each row until it is
marked published, so a crash between the two repeats a publish, never loses one.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from datetime import datetime

import asyncpg

from leadloop.calendar import CalendarSet
from leadloop.events import (
    ActivityRecorded,
    EscalationAction,
    EscalationKind,
    EscalationRaised,
    EscalationStatus,
    LeadAssigned,
    Stage,
    StageChanged,
)
from leadloop_sla_monitor.domain.ladder import (
    QUALIFYING_ACTIVITIES,
    Clock,
    PolicySet,
    StepDue,
    due_steps,
    escalation_event,
    escalation_id,
    step_due_at,
)

__all__ = ["ClockStore", "Input"]

Input = LeadAssigned | ActivityRecorded | StageChanged

_INSERT_ESCALATION = """
INSERT INTO escalations (escalation_id, status, event_id, lead_id, owner_id, team_id,
    manager_id, policy_id, kind, level, action, due_at, breached_at, occurred_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
ON CONFLICT DO NOTHING
"""


class ClockStore:
    def __init__(self, pool: asyncpg.Pool, policies: PolicySet, calendars: CalendarSet) -> None:
        self._pool = pool
        self._policies = policies
        self._calendars = calendars

    async def apply(self, inputs: Sequence[Input], now: datetime) -> int:
        """Apply input events once each; return how many were new."""
        applied = 0
        async with self._pool.acquire() as conn, conn.transaction():
            for event in inputs:
                new = await conn.fetchval(
                    "INSERT INTO sla_applied_events (event_id, applied_at) VALUES ($1, $2) "
                    "ON CONFLICT DO NOTHING RETURNING true",
                    event.event_id,
                    now,
                )
                if not new:
                    continue
                applied += 1
                if isinstance(event, LeadAssigned):
                    await self._on_assigned(conn, event, now)
                elif isinstance(event, ActivityRecorded):
                    if event.kind.value in QUALIFYING_ACTIVITIES:
                        await self._on_touch(conn, event.lead_id, event.occurred_at, now)
                else:
                    await self._on_stage(conn, event, now)
        return applied

    async def _on_assigned(self, conn: asyncpg.Connection, e: LeadAssigned, now: datetime) -> None:
        # A new owner (or the pool) ends every earlier cycle of the lead.
        await self._stop(conn, e.lead_id, "reassigned", now, except_cycle=e.assignment_id)
        if e.owner_id is None:
            return
        policy = self._policies.first_response()
        clock = Clock(
            lead_id=e.lead_id,
            kind=EscalationKind.FIRST_RESPONSE,
            cycle=e.assignment_id,
            policy_id=policy.policy_id,
            owner_id=e.owner_id,
            team_id=e.team_id,
            manager_id=None,
            started_at=e.assigned_at,
            next_level=1,
        )
        touched = await conn.fetchval(
            "SELECT last_touch_at FROM sla_lead_touches WHERE lead_id = $1", e.lead_id
        )
        answered = touched is not None and touched >= e.assigned_at
        await conn.execute(
            "INSERT INTO sla_clocks (lead_id, kind, cycle, policy_id, owner_id, team_id, "
            "manager_id, started_at, due_at, next_level, stopped_at, stop_reason) "
            "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11) ON CONFLICT DO NOTHING",
            clock.lead_id,
            clock.kind.value,
            clock.cycle,
            clock.policy_id,
            clock.owner_id,
            clock.team_id,
            clock.manager_id,
            clock.started_at,
            step_due_at(clock, policy, 1, self._calendars.for_team(clock.team_id)),
            touched if answered else None,
            "touched" if answered else None,
        )

    async def _on_touch(
        self, conn: asyncpg.Connection, lead_id: str, at: datetime, now: datetime
    ) -> None:
        await conn.execute(
            "INSERT INTO sla_lead_touches (lead_id, last_touch_at) VALUES ($1, $2) "
            "ON CONFLICT (lead_id) DO UPDATE SET last_touch_at = "
            "greatest(sla_lead_touches.last_touch_at, EXCLUDED.last_touch_at)",
            lead_id,
            at,
        )
        await self._stop(conn, lead_id, "touched", now, touched_at=at)

    async def _on_stage(self, conn: asyncpg.Connection, e: StageChanged, now: datetime) -> None:
        if e.stage in (Stage.WON, Stage.LOST):
            await self._stop(conn, e.lead_id, "closed", now)
        else:
            # Moving a lead forward in the pipeline is a response too.
            await self._on_touch(conn, e.lead_id, e.occurred_at, now)

    async def _stop(
        self,
        conn: asyncpg.Connection,
        lead_id: str,
        reason: str,
        now: datetime,
        *,
        except_cycle: str | None = None,
        touched_at: datetime | None = None,
    ) -> None:
        """Stop the lead's open clocks and resolve every step they fired."""
        stopped = await conn.fetch(
            "UPDATE sla_clocks SET stopped_at = $2, stop_reason = $3 "
            "WHERE lead_id = $1 AND stopped_at IS NULL "
            "AND ($4::text IS NULL OR cycle <> $4) "
            "AND ($5::timestamptz IS NULL OR started_at <= $5) RETURNING *",
            lead_id,
            touched_at or now,
            reason,
            except_cycle,
            touched_at,
        )
        for row in stopped:
            clock = _clock(row)
            policy = self._policies.by_id(clock.policy_id)
            for level in range(1, clock.next_level):
                step = policy.ladder[level - 1]
                due = step_due_at(clock, policy, level, self._calendars.for_team(clock.team_id))
                assert due is not None
                fired = await conn.fetchrow(
                    "SELECT breached_at FROM escalations WHERE escalation_id = $1 "
                    "AND status = 'firing'",
                    escalation_id(clock, level),
                )
                breached = fired["breached_at"] if fired else due
                await self._insert(
                    conn,
                    escalation_event(
                        clock,
                        StepDue(level, step.action, due),
                        EscalationStatus.RESOLVED,
                        breached_at=breached,
                        occurred_at=now,
                    ),
                )

    async def fire_due(self, now: datetime, limit: int = 1000) -> int:
        """Fire every ladder step due by ``now``; return how many fired.

        Reads only due clocks through the partial index on ``due_at``; SKIP LOCKED lets
        several workers share the work without firing a clock twice.
        """
        fired = 0
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT * FROM sla_clocks WHERE stopped_at IS NULL AND due_at <= $1 "
                "ORDER BY due_at LIMIT $2 FOR UPDATE SKIP LOCKED",
                now,
                limit,
            )
            for row in rows:
                clock = _clock(row)
                policy = self._policies.by_id(clock.policy_id)
                steps, next_due = due_steps(
                    clock, policy, now, self._calendars.for_team(clock.team_id)
                )
                for step in steps:
                    await self._insert(
                        conn,
                        escalation_event(
                            clock, step, EscalationStatus.FIRING, breached_at=now, occurred_at=now
                        ),
                    )
                fired += len(steps)
                await conn.execute(
                    "UPDATE sla_clocks SET next_level = $4, "
                    "due_at = coalesce($5, 'infinity'::timestamptz) "
                    "WHERE lead_id = $1 AND kind = $2 AND cycle = $3",
                    clock.lead_id,
                    clock.kind.value,
                    clock.cycle,
                    clock.next_level + len(steps),
                    next_due,
                )
        return fired

    async def drain_outbox(
        self, publish: Callable[[list[EscalationRaised]], Awaitable[None]], limit: int = 1000
    ) -> int:
        """Publish unpublished steps and mark them; return how many were published.

        The rows stay locked while publishing, and are marked only after the broker
        acknowledged them: a crash in between publishes them again (same event ids).
        """
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT * FROM escalations WHERE published_at IS NULL "
                "ORDER BY occurred_at, level LIMIT $1 FOR UPDATE SKIP LOCKED",
                limit,
            )
            if not rows:
                return 0
            await publish([_escalation(r) for r in rows])
            await conn.execute(
                "UPDATE escalations SET published_at = now() "
                "WHERE (escalation_id, status) IN "
                "(SELECT * FROM unnest($1::text[], $2::text[]))",
                [r["escalation_id"] for r in rows],
                [r["status"] for r in rows],
            )
            return len(rows)

    async def _insert(self, conn: asyncpg.Connection, e: EscalationRaised) -> None:
        await conn.execute(
            _INSERT_ESCALATION,
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
