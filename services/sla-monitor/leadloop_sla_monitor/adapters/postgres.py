"""PostgreSQL side of sla-monitor: clocks, the due-time index, and the escalation outbox.

Every change for a batch of input events happens in one transaction together with the
record of which event ids were applied, so a redelivered event changes nothing. Fired
steps are rows with a deterministic ``escalation_id`` (primary key with the status):
firing a step twice is impossible, and the outbox publishes each row until it is
marked published, so a crash between the two repeats a publish, never loses one.

Clock lifecycle (policies chosen by ``PolicySet.select`` on what ``sla_leads`` knows):

* ``leads.assigned`` with an owner stops every other clock of the lead (resolving what
  they fired) and starts a first-response clock, and a stage-stall clock for the
  current stage: every ownership change re-arms the timers. Without an owner
  (``pooled``, ``reclaimed``) it only stops them.
* a qualifying ``crm.activities`` touch, or a stage change short of won/lost, stops the
  first-response and follow-up clocks started before it and starts a follow-up clock
  (to the policy's gap, or to the rep's ``next_followup_at`` promise).
* a stage change stops the stage-stall clock and starts one for the new stage; won or
  lost stops everything.
* ``leads.accepted`` records source and priority; clocks that have not fired yet are
  re-decided with them. ``crm.reps`` keeps the roster that gives escalations their
  manager.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime
from typing import Any

import asyncpg

from leadloop.calendar import BusinessCalendar, CalendarSet
from leadloop.events import (
    ActivityRecorded,
    EscalationAction,
    EscalationKind,
    EscalationRaised,
    EscalationStatus,
    LeadAccepted,
    LeadAssigned,
    Priority,
    RepUpdated,
    Stage,
    StageChanged,
    deterministic_id,
)
from leadloop.logging import get_logger
from leadloop_sla_monitor.domain.alerts import (
    Alerting,
    DeliveryFailed,
    alert_payload,
    retry_delay,
)
from leadloop_sla_monitor.domain.ladder import (
    QUALIFYING_ACTIVITIES,
    Clock,
    Policy,
    PolicySet,
    counts_every_second,
    escalation_event,
    fired_steps,
    follow_up_timing,
    slot_escalation_id,
    slots_due,
    step_due_at,
)
from leadloop_sla_monitor.domain.policies import LeadFacts

__all__ = ["FIRE_BATCH", "ClockStore", "Input"]

#: Clocks fired (and steps published) per transaction.
FIRE_BATCH = 2000

#: How long a firing transaction waits for the broker's acknowledgement before it
#: stores the steps unpublished instead. Well under the database's
#: idle_in_transaction_session_timeout (20 s, migration 0004): a transaction held open
#: through a broker outage is ended by PostgreSQL after the steps reached the topic,
#: and a clock touched before the retry would never store the step it published.
PUBLISH_WITHIN_S = 10.0

log = get_logger(__name__)

Input = LeadAssigned | ActivityRecorded | StageChanged | LeadAccepted | RepUpdated

# One statement per batch. published_at is the moment of the insert (clock_timestamp,
# not the transaction's start) when the broker acknowledged the steps before it.
_INSERT_ESCALATIONS = """
INSERT INTO escalations (escalation_id, status, event_id, lead_id, owner_id, team_id,
    manager_id, policy_id, kind, level, action, due_at, breached_at, occurred_at,
    published_at)
SELECT u.*, CASE WHEN $15::boolean THEN clock_timestamp() END
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::int[], $11::text[], $12::timestamptz[],
    $13::timestamptz[], $14::timestamptz[])
    AS u(escalation_id, status, event_id, lead_id, owner_id, team_id, manager_id,
         policy_id, kind, level, action, due_at, breached_at, occurred_at)
ON CONFLICT DO NOTHING
"""

# A resolve goes to Alertmanager only for a step whose firing went there.
_INSERT_ALERT = """
INSERT INTO sla_alert_outbox (escalation_id, status, next_attempt_at, created_at)
SELECT $1, $2, $3, $3
WHERE $2 = 'firing' OR EXISTS (
    SELECT 1 FROM sla_alert_outbox WHERE escalation_id = $1 AND status = 'firing')
ON CONFLICT DO NOTHING
"""

_INSERT_CLOCK = """
INSERT INTO sla_clocks (lead_id, kind, cycle, policy_id, owner_id, team_id, manager_id,
    started_at, due_at, next_level, stopped_at, stop_reason, promised_at)
VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 1, $10, $11, $12) ON CONFLICT DO NOTHING
"""

_TOUCH_KINDS = [EscalationKind.FIRST_RESPONSE.value, EscalationKind.FOLLOW_UP.value]
_CLOSED = (Stage.WON.value, Stage.LOST.value)


class ClockStore:
    def __init__(
        self,
        pool: asyncpg.Pool,
        policies: PolicySet,
        calendars: CalendarSet,
        *,
        alert_actions: frozenset[EscalationAction] = frozenset(),
    ) -> None:
        self._pool = pool
        self._policies = policies
        self._calendars = calendars
        #: Actions whose steps go to Alertmanager (empty: no notifier configured).
        self._alert_actions = alert_actions
        # Read once: the ticker looks these up for every due clock.
        self._by_id = {p.policy_id: p for p in policies.policies}
        self._schedules = {p.policy_id: (p.schedule, p.limit_seconds) for p in policies.policies}

    # --- input events -----------------------------------------------------------------

    async def apply(self, inputs: Sequence[Input], now: datetime) -> int:
        """Apply input events once each; return how many were new."""
        applied = 0
        async with self._pool.acquire() as conn, conn.transaction():
            for event in inputs:
                if isinstance(event, RepUpdated):
                    # Roster entries may lack an event id; the newest entry wins instead.
                    applied += await self._on_rep(conn, event)
                    continue
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
                    if event.kind in QUALIFYING_ACTIVITIES:
                        await self._on_touch(
                            conn, event.lead_id, event.occurred_at, now, event.event_id, event
                        )
                elif isinstance(event, StageChanged):
                    await self._on_stage(conn, event, now)
                else:
                    await self._on_accepted(conn, event, now)
        return applied

    async def _on_rep(self, conn: asyncpg.Connection, e: RepUpdated) -> int:
        status = await conn.execute(
            "INSERT INTO sla_reps (rep_id, team_id, manager_id, status, updated_at) "
            "VALUES ($1, $2, $3, $4, $5) ON CONFLICT (rep_id) DO UPDATE SET "
            "team_id = EXCLUDED.team_id, manager_id = EXCLUDED.manager_id, "
            "status = EXCLUDED.status, updated_at = EXCLUDED.updated_at "
            "WHERE sla_reps.updated_at <= EXCLUDED.updated_at",
            e.rep_id,
            e.team_id,
            e.manager_id,
            e.status.value,
            e.updated_at,
        )
        return 1 if status.endswith(" 1") else 0

    async def _on_accepted(self, conn: asyncpg.Connection, e: LeadAccepted, now: datetime) -> None:
        await conn.execute(
            "INSERT INTO sla_leads (lead_id, source, priority) VALUES ($1, $2, $3) "
            "ON CONFLICT (lead_id) DO UPDATE SET source = EXCLUDED.source, "
            "priority = coalesce(sla_leads.priority, EXCLUDED.priority)",
            e.lead_id,
            e.source,
            e.priority.value,
        )
        await self._reselect(conn, e.lead_id, now)

    async def _on_assigned(self, conn: asyncpg.Connection, e: LeadAssigned, now: datetime) -> None:
        lead = await conn.fetchrow(
            "INSERT INTO sla_leads (lead_id, priority, team_id, owner_id, stage) "
            "VALUES ($1, $2, $3, $4, 'assigned') ON CONFLICT (lead_id) DO UPDATE SET "
            "priority = EXCLUDED.priority, team_id = EXCLUDED.team_id, "
            "owner_id = EXCLUDED.owner_id, "
            "stage = CASE WHEN sla_leads.stage = 'new' THEN 'assigned' ELSE sla_leads.stage END "
            "RETURNING *",
            e.lead_id,
            e.priority.value,
            e.team_id,
            e.owner_id,
        )
        # A new owner (or the pool) ends every earlier cycle of the lead.
        await self._stop(conn, e.lead_id, "reassigned", now, except_cycle=e.assignment_id)
        if e.owner_id is None or lead["closed_at"] is not None:
            return
        facts = _facts(lead)
        manager = await self._manager(conn, e.owner_id)
        last = await conn.fetchrow("SELECT * FROM sla_lead_touches WHERE lead_id = $1", e.lead_id)
        touched = last["last_touch_at"] if last is not None else None
        answered = touched is not None and touched >= e.assigned_at
        policy = self._policies.select(EscalationKind.FIRST_RESPONSE, facts)
        if policy is not None:
            await self._start(
                conn,
                _new_clock(
                    e.lead_id,
                    policy,
                    e.assignment_id,
                    e.owner_id,
                    e.team_id,
                    manager,
                    e.assigned_at,
                ),
                policy,
                stopped_at=touched if answered else None,
            )
        stall = self._policies.select(EscalationKind.STAGE_STALL, facts)
        if stall is not None:
            # The new owner's time in the stage starts with the assignment, but never
            # before the lead entered the stage (the stage change may be read first).
            entered = lead["stage_changed_at"]
            since = max(e.assigned_at, entered) if entered is not None else e.assigned_at
            await self._start(
                conn,
                _new_clock(
                    e.lead_id,
                    stall,
                    e.assignment_id,
                    e.owner_id,
                    e.team_id,
                    manager,
                    since,
                ),
                stall,
            )
        if last is not None and touched is not None and answered:
            # The touch was read before this assignment: its gap runs from the touch.
            await self._start_follow_up(
                conn,
                lead,
                last["touch_event_id"] or e.assignment_id,
                touched,
                last["next_followup_at"],
            )

    async def _on_touch(
        self,
        conn: asyncpg.Connection,
        lead_id: str,
        at: datetime,
        now: datetime,
        cycle: str,
        activity: ActivityRecorded | None = None,
    ) -> None:
        promise = activity.next_followup_at if activity is not None else None
        latest = await conn.fetchval(
            "INSERT INTO sla_lead_touches (lead_id, last_touch_at, next_followup_at, "
            "touch_event_id) VALUES ($1, $2, $3, $4) "
            "ON CONFLICT (lead_id) DO UPDATE SET last_touch_at = EXCLUDED.last_touch_at, "
            "next_followup_at = EXCLUDED.next_followup_at, "
            "touch_event_id = EXCLUDED.touch_event_id "
            "WHERE sla_lead_touches.last_touch_at <= EXCLUDED.last_touch_at RETURNING true",
            lead_id,
            at,
            promise,
            cycle,
        )
        await self._stop(conn, lead_id, "touched", now, touched_at=at, kinds=_TOUCH_KINDS)
        if not latest:
            return  # an older touch arriving late starts no gap: a newer one did
        lead = await conn.fetchrow("SELECT * FROM sla_leads WHERE lead_id = $1", lead_id)
        if lead is None or lead["owner_id"] is None or lead["closed_at"] is not None:
            return
        await self._start_follow_up(conn, lead, cycle, at, promise)

    async def _start_follow_up(
        self,
        conn: asyncpg.Connection,
        lead: asyncpg.Record,
        cycle: str,
        at: datetime,
        promise: datetime | None,
    ) -> None:
        lead_id = lead["lead_id"]
        policy = self._policies.select(EscalationKind.FOLLOW_UP, _facts(lead))
        if policy is None:
            return
        clock = _new_clock(
            lead_id,
            policy,
            cycle,
            lead["owner_id"],
            lead["team_id"],
            await self._manager(conn, lead["owner_id"]),
            at,
            promised_at=follow_up_timing(at, promise, policy),
        )
        await self._start(conn, clock, policy)

    async def _on_stage(self, conn: asyncpg.Connection, e: StageChanged, now: datetime) -> None:
        lead = await conn.fetchrow(
            "INSERT INTO sla_leads (lead_id, stage, stage_changed_at, closed_at) "
            "VALUES ($1, $2::text, $3::timestamptz, "
            "CASE WHEN $2::text = ANY($4::text[]) THEN $3::timestamptz END) "
            "ON CONFLICT (lead_id) DO UPDATE SET stage = EXCLUDED.stage, "
            "stage_changed_at = EXCLUDED.stage_changed_at, "
            "closed_at = coalesce(sla_leads.closed_at, EXCLUDED.closed_at) "
            "WHERE sla_leads.stage_changed_at IS NULL "
            "OR sla_leads.stage_changed_at <= EXCLUDED.stage_changed_at RETURNING *",
            e.lead_id,
            e.stage.value,
            e.occurred_at,
            list(_CLOSED),
        )
        if e.stage in (Stage.WON, Stage.LOST):
            await conn.execute(
                "UPDATE sla_leads SET closed_at = coalesce(closed_at, $2) WHERE lead_id = $1",
                e.lead_id,
                e.occurred_at,
            )
            await self._stop(conn, e.lead_id, "closed", now)
            return
        if lead is None:
            return  # an older stage change arriving late: the lead has moved on
        await self._stop(
            conn,
            e.lead_id,
            "stage_changed",
            now,
            touched_at=e.occurred_at,
            kinds=[EscalationKind.STAGE_STALL.value],
        )
        # Moving a lead forward in the pipeline is a response too.
        await self._on_touch(conn, e.lead_id, e.occurred_at, now, e.event_id)
        if lead["owner_id"] is None or lead["closed_at"] is not None:
            return
        stall = self._policies.select(EscalationKind.STAGE_STALL, _facts(lead))
        if stall is not None:
            clock = _new_clock(
                e.lead_id,
                stall,
                e.event_id,
                lead["owner_id"],
                lead["team_id"],
                await self._manager(conn, lead["owner_id"]),
                e.occurred_at,
            )
            await self._start(conn, clock, stall)

    async def _reselect(self, conn: asyncpg.Connection, lead_id: str, now: datetime) -> None:
        """Re-decide the policy of the lead's clocks that have not fired yet."""
        lead = await conn.fetchrow("SELECT * FROM sla_leads WHERE lead_id = $1", lead_id)
        if lead is None:
            return
        facts = _facts(lead)
        rows = await conn.fetch(
            "SELECT * FROM sla_clocks WHERE lead_id = $1 AND stopped_at IS NULL AND next_level = 1",
            lead_id,
        )
        for row in rows:
            clock = _clock(row)
            policy = self._policies.select(clock.kind, facts)
            if policy is not None and policy.policy_id == clock.policy_id:
                continue
            if policy is None:
                await conn.execute(
                    "UPDATE sla_clocks SET stopped_at = $4, stop_reason = 'no_policy' "
                    "WHERE lead_id = $1 AND kind = $2 AND cycle = $3",
                    clock.lead_id,
                    clock.kind.value,
                    clock.cycle,
                    now,
                )
                continue
            cal = self._calendars.for_team(clock.team_id)
            moved = replace(clock, policy_id=policy.policy_id)
            await conn.execute(
                "UPDATE sla_clocks SET policy_id = $4, due_at = $5 "
                "WHERE lead_id = $1 AND kind = $2 AND cycle = $3",
                clock.lead_id,
                clock.kind.value,
                clock.cycle,
                policy.policy_id,
                step_due_at(moved, policy, 1, cal),
            )

    async def _start(
        self,
        conn: asyncpg.Connection,
        clock: Clock,
        policy: Policy,
        *,
        stopped_at: datetime | None = None,
    ) -> None:
        await conn.execute(
            _INSERT_CLOCK,
            clock.lead_id,
            clock.kind.value,
            clock.cycle,
            clock.policy_id,
            clock.owner_id,
            clock.team_id,
            clock.manager_id,
            clock.started_at,
            step_due_at(clock, policy, 1, self._calendars.for_team(clock.team_id)),
            stopped_at,
            "touched" if stopped_at is not None else None,
            clock.promised_at,
        )

    async def _manager(self, conn: asyncpg.Connection, rep_id: str) -> str | None:
        manager: str | None = await conn.fetchval(
            "SELECT manager_id FROM sla_reps WHERE rep_id = $1", rep_id
        )
        return manager

    async def _stop(
        self,
        conn: asyncpg.Connection,
        lead_id: str,
        reason: str,
        now: datetime,
        *,
        except_cycle: str | None = None,
        touched_at: datetime | None = None,
        kinds: list[str] | None = None,
    ) -> None:
        """Stop the lead's open clocks (of ``kinds``) and resolve every step they fired."""
        stopped = await conn.fetch(
            "UPDATE sla_clocks SET stopped_at = $2, stop_reason = $3 "
            "WHERE lead_id = $1 AND stopped_at IS NULL "
            "AND ($4::text IS NULL OR cycle <> $4) "
            "AND ($5::timestamptz IS NULL OR started_at <= $5) "
            "AND ($6::text[] IS NULL OR kind = ANY($6)) RETURNING *",
            lead_id,
            touched_at or now,
            reason,
            except_cycle,
            touched_at,
            kinds,
        )
        for row in stopped:
            if row["next_level"] <= 1:
                continue
            clock = _clock(row)
            policy = self._policies.by_id(clock.policy_id)
            if policy is None:
                log.warning("policy_gone_cannot_resolve", policy_id=clock.policy_id)
                continue
            cal = self._calendars.for_team(clock.team_id)
            for step in fired_steps(clock, policy, cal):
                firing = escalation_event(
                    clock, step, EscalationStatus.FIRING, breached_at=now, occurred_at=now
                )
                fired = await conn.fetchrow(
                    "SELECT breached_at, manager_id FROM escalations WHERE escalation_id = $1 "
                    "AND status = 'firing'",
                    firing.escalation_id,
                )
                if fired is None:
                    continue
                resolved_clock = replace(clock, manager_id=fired["manager_id"])
                await self._insert(
                    conn,
                    [
                        escalation_event(
                            resolved_clock,
                            step,
                            EscalationStatus.RESOLVED,
                            breached_at=fired["breached_at"],
                            occurred_at=now,
                        )
                    ],
                    now,
                )

    # --- the ticker -------------------------------------------------------------------

    async def fire_due(
        self,
        now: datetime,
        limit: int = FIRE_BATCH,
        publish: Callable[[list[EscalationRaised]], Awaitable[None]] | None = None,
        publish_within: float = PUBLISH_WITHIN_S,
    ) -> int:
        """Fire every ladder step due by ``now`` (up to ``limit`` clocks); return how many
        steps fired.

        Reads only due clocks through the partial index on ``due_at``; SKIP LOCKED lets
        several workers share the work without firing a clock twice. With ``publish``
        the steps go to the broker inside the transaction, while the clocks are still
        locked, and are stored already published: one pass instead of a commit, a
        re-read of the outbox and a second transaction. A crash before the commit
        leaves the clocks due, so they fire again with the same ids (a duplicate on the
        topic that consumers drop by ``escalation_id``, never a lost step). Without
        ``publish``, or when the broker has not acknowledged within ``publish_within``
        seconds, the rows are stored unpublished and wait in the outbox for
        ``drain_outbox`` (a step the broker takes late is then on the topic twice, with
        the same event id).
        """
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT c.lead_id, c.kind, c.cycle, c.policy_id, c.owner_id, c.team_id, "
                "coalesce(r.manager_id, c.manager_id), c.started_at, c.next_level, "
                "c.promised_at FROM sla_clocks c "
                "LEFT JOIN sla_reps r ON r.rep_id = c.owner_id "
                "WHERE c.stopped_at IS NULL AND c.due_at <= $1 "
                "ORDER BY c.due_at LIMIT $2 FOR UPDATE OF c SKIP LOCKED",
                now,
                limit,
            )
            if not rows:
                return 0
            events: list[EscalationRaised] = []
            # Columns of the clock update, one list each (unnest): a round trip per
            # clock would make ten thousand clocks due at once late by seconds.
            keys: tuple[list[str], list[str], list[str]] = ([], [], [])
            levels: list[int | None] = []
            dues: list[datetime | None] = []
            calendars: dict[str, BusinessCalendar | None] = {}
            for row in rows:
                (
                    lead_id,
                    kind,
                    cycle,
                    policy_id,
                    owner_id,
                    team_id,
                    manager_id,
                    started_at,
                    next_level,
                    promised_at,
                ) = row
                keys[0].append(lead_id)
                keys[1].append(kind)
                keys[2].append(cycle)
                policy = self._by_id.get(policy_id)
                if policy is None:
                    # The policy left the configuration: nothing more to fire.
                    levels.append(None)
                    dues.append(None)
                    continue
                if team_id in calendars:
                    cal = calendars[team_id]
                else:
                    cal = calendars[team_id] = self._calendar(team_id)
                schedule, limit_s = self._schedules[policy_id]
                steps, next_due = slots_due(
                    schedule, limit_s, started_at, promised_at, next_level, now, cal
                )
                levels.append(next_level + len(steps))
                dues.append(next_due)
                clock_kind = policy.kind
                for step in steps:
                    esc_id = slot_escalation_id(
                        lead_id, policy_id, cycle, step.level, warning=step.warning
                    )
                    events.append(
                        EscalationRaised(
                            event_id=deterministic_id("sla.escalations", esc_id, "firing"),
                            occurred_at=now,
                            escalation_id=esc_id,
                            lead_id=lead_id,
                            owner_id=owner_id,
                            team_id=team_id,
                            manager_id=manager_id,
                            policy_id=policy_id,
                            kind=EscalationKind.RECLAIM_WARNING if step.warning else clock_kind,
                            level=step.level,
                            action=step.action,
                            due_at=step.due_at,
                            breached_at=now,
                            status=EscalationStatus.FIRING,
                        )
                    )
            published = False
            if publish is not None and events:
                published = await _acknowledged(publish(events), publish_within)
                if not published:
                    log.warning("escalations_left_in_outbox", steps=len(events))
            await self._insert(conn, events, now, published=published)
            await conn.execute(
                "UPDATE sla_clocks c SET next_level = coalesce(u.next_level, c.next_level), "
                "due_at = coalesce(u.due_at, 'infinity'::timestamptz) "
                "FROM unnest($1::text[], $2::text[], $3::text[], $4::int[], "
                "$5::timestamptz[]) AS u(lead_id, kind, cycle, next_level, due_at) "
                "WHERE c.lead_id = u.lead_id AND c.kind = u.kind AND c.cycle = u.cycle",
                *keys,
                levels,
                dues,
            )
        return len(events)

    # --- outboxes ---------------------------------------------------------------------

    async def drain_outbox(
        self,
        publish: Callable[[list[EscalationRaised]], Awaitable[None]],
        limit: int = FIRE_BATCH,
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
                "UPDATE escalations SET published_at = clock_timestamp() "
                "WHERE (escalation_id, status) IN "
                "(SELECT * FROM unnest($1::text[], $2::text[]))",
                [r["escalation_id"] for r in rows],
                [r["status"] for r in rows],
            )
            return len(rows)

    async def _insert(
        self,
        conn: asyncpg.Connection,
        events: Sequence[EscalationRaised],
        now: datetime,
        *,
        published: bool = False,
    ) -> None:
        """Store steps (once each); ``published``: the broker already acknowledged them."""
        if not events:
            return
        columns: list[list[Any]] = [[] for _ in range(14)]
        for e in events:
            for col, value in zip(
                columns,
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
                ),
                strict=True,
            ):
                col.append(value)
        await conn.execute(_INSERT_ESCALATIONS, *columns, published)
        paged = [(e.escalation_id, e.status.value, now) for e in events if self._pages(e)]
        if paged:
            await conn.executemany(_INSERT_ALERT, paged)

    async def deliver_alerts(
        self,
        send: Callable[[list[dict[str, Any]]], Awaitable[None]],
        now: datetime,
        alerting: Alerting,
        limit: int = 200,
    ) -> tuple[int, int]:
        """Send due alert deliveries to Alertmanager; return (delivered, failed).

        Rows stay locked while sending and are marked delivered only after
        Alertmanager answered 2xx. A failure schedules the next try with backoff; rows
        are never dropped.
        """
        async with self._pool.acquire() as conn, conn.transaction():
            rows = await conn.fetch(
                "SELECT o.seq, o.attempts, e.* FROM sla_alert_outbox o "
                "JOIN escalations e USING (escalation_id, status) "
                "WHERE o.delivered_at IS NULL AND o.next_attempt_at <= $1 "
                "ORDER BY o.seq LIMIT $2 FOR UPDATE OF o SKIP LOCKED",
                now,
                limit,
            )
            if not rows:
                return 0, 0
            keys = ([r["escalation_id"] for r in rows], [r["status"] for r in rows])
            try:
                await send(
                    [alert_payload(_escalation(r), now=now, alerting=alerting) for r in rows]
                )
            except DeliveryFailed as exc:
                await conn.executemany(
                    "UPDATE sla_alert_outbox SET attempts = attempts + 1, "
                    "next_attempt_at = $3, last_error = $4 "
                    "WHERE escalation_id = $1 AND status = $2",
                    [
                        (
                            r["escalation_id"],
                            r["status"],
                            now + retry_delay(r["attempts"] + 1, alerting),
                            exc.reason,
                        )
                        for r in rows
                    ],
                )
                return 0, len(rows)
            await conn.execute(
                "UPDATE sla_alert_outbox SET delivered_at = $3, attempts = attempts + 1 "
                "WHERE (escalation_id, status) IN "
                "(SELECT * FROM unnest($1::text[], $2::text[]))",
                *keys,
                now,
            )
            return len(rows), 0

    def _calendar(self, team_id: str) -> BusinessCalendar | None:
        """The team's calendar for ``slots_due`` (None: every second counts)."""
        cal = self._calendars.for_team(team_id)
        return None if counts_every_second(cal) else cal

    def _pages(self, e: EscalationRaised) -> bool:
        return e.action in self._alert_actions


def _new_clock(
    lead_id: str,
    policy: Policy,
    cycle: str,
    owner_id: str | None,
    team_id: str,
    manager_id: str | None,
    started_at: datetime,
    *,
    promised_at: datetime | None = None,
) -> Clock:
    return Clock(
        lead_id=lead_id,
        kind=policy.kind,
        cycle=cycle,
        policy_id=policy.policy_id,
        owner_id=owner_id,
        team_id=team_id,
        manager_id=manager_id,
        started_at=started_at,
        next_level=1,
        promised_at=promised_at,
    )


def _facts(lead: asyncpg.Record) -> LeadFacts:
    return LeadFacts(
        priority=Priority(lead["priority"]) if lead["priority"] else None,
        source=lead["source"],
        team_id=lead["team_id"],
        stage=Stage(lead["stage"]),
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


async def _acknowledged(publishing: Awaitable[None], within: float) -> bool:
    """Whether ``publishing`` finished within ``within`` seconds. A publish still under
    way is left to finish (or fail) on its own: what the producer has buffered goes
    out regardless, and cancelling it would not take it back."""
    task = asyncio.ensure_future(publishing)
    done, _ = await asyncio.wait({task}, timeout=within)
    if done:
        task.result()  # a failed publish fails the transaction, as before
        return True
    task.add_done_callback(_retrieve)
    return False


def _retrieve(task: asyncio.Future[None]) -> None:
    # A late failure changes nothing (the rows are in the outbox); retrieving it keeps
    # asyncio from reporting an exception nobody looked at.
    if not task.cancelled() and task.exception() is not None:
        log.info("late_publish_failed", error=type(task.exception()).__name__)
