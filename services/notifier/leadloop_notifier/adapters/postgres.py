"""PostgreSQL side of the notifier: load and save its view, the outbox and the schedule.

Repositories only: which notices exist, when they are due and which go out together is
decided in ``domain``; the use cases run in ``handlers`` over a ``Tx`` (one
transaction, committed once).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from contextlib import asynccontextmanager
from datetime import date, datetime
from typing import Any

import asyncpg

from leadloop_notifier.domain.model import (
    HELD,
    Changes,
    EscalationStep,
    Lead,
    Notice,
    OutboxRef,
    Rep,
    View,
)
from leadloop_notifier.domain.sending import Batch, Row

__all__ = ["NotifierStore", "Tx"]


def _rep(r: Mapping[str, Any]) -> Rep:
    return Rep(
        rep_id=r["rep_id"],
        team_id=r["team_id"],
        manager_id=r["manager_id"],
        status=r["status"],
        timezone=r["timezone"],
        contacts=json.loads(r["contacts"]),
        updated_at=r["updated_at"],
    )


def _lead(r: Mapping[str, Any]) -> Lead:
    return Lead(
        lead_id=r["lead_id"],
        facts=json.loads(r["facts"]),
        owner_id=r["owner_id"],
        team_id=r["team_id"],
        sequence=r["sequence"],
        assigned_at=r["assigned_at"],
        stage=r["stage"],
        stage_at=r["stage_at"],
    )


def _step(r: Mapping[str, Any]) -> EscalationStep:
    return EscalationStep(
        escalation_id=r["escalation_id"],
        lead_id=r["lead_id"],
        owner_id=r["owner_id"],
        team_id=r["team_id"],
        action=r["action"],
        due_at=r["due_at"],
        breached_at=r["breached_at"],
        status=r["status"],
        resolved_at=r["resolved_at"],
    )


def _row(r: Mapping[str, Any]) -> Row:
    return Row(
        notice=Notice(
            notice_key=r["notice_key"],
            recipient=r["recipient"],
            channel=r["channel"],
            kind=r["kind"],
            team_id=r["team_id"],
            lead_id=r["lead_id"],
            payload=json.loads(r["payload"]),
            fallbacks=tuple(r["fallbacks"]),
            origin_at=r["origin_at"],
            due_at=r["due_at"],
            coalesce_s=r["coalesce_s"],
        ),
        attempts=r["attempts"],
        not_before=r["not_before"],
        seq=r["seq"],
        message_id=r["message_id"],
    )


class Tx:
    """One transaction's repositories."""

    def __init__(self, conn: asyncpg.Connection) -> None:
        self._c = conn

    # --- inputs ---------------------------------------------------------------------

    async def claim_events(self, event_ids: Sequence[str], now: datetime) -> set[str]:
        """The ids not applied before, now recorded as applied (same transaction as
        their effects)."""
        rows = await self._c.fetch(
            "INSERT INTO notifier_applied_events (event_id, applied_at) "
            "SELECT DISTINCT unnest($1::text[]), $2::timestamptz "
            "ON CONFLICT DO NOTHING RETURNING event_id",
            list(event_ids),
            now,
        )
        return {r["event_id"] for r in rows}

    async def load_view(
        self,
        rep_ids: Iterable[str],
        lead_ids: Iterable[str],
        escalation_ids: Iterable[str],
        roster_ids: Iterable[str] = (),
    ) -> View:
        """What a batch needs; ``roster_ids`` are the reps with a roster entry in the
        batch, whose held notices are loaded to be released."""
        view = View()
        leads = await self._c.fetch(
            "SELECT * FROM notifier_leads WHERE lead_id = ANY($1::text[])", list(set(lead_ids))
        )
        view.leads = {r["lead_id"]: _lead(r) for r in leads}
        wanted = set(rep_ids) | {le.owner_id for le in view.leads.values() if le.owner_id}
        reps = await self._c.fetch(
            "SELECT * FROM notifier_reps WHERE rep_id = ANY($1::text[])", list(wanted)
        )
        view.reps = {r["rep_id"]: _rep(r) for r in reps}
        ids = list(set(escalation_ids))
        steps = await self._c.fetch(
            "SELECT * FROM notifier_escalations WHERE escalation_id = ANY($1::text[])", ids
        )
        view.steps = {r["escalation_id"]: _step(r) for r in steps}
        notified = await self._c.fetch(
            "SELECT substr(notice_key, 12) AS escalation_id, recipient, channel, status, "
            "team_id, fallbacks, (lease_until IS NOT NULL AND lease_until >= clock_timestamp()) "
            "AS in_flight FROM notifier_outbox WHERE notice_key = ANY($1::text[]) "
            "ORDER BY seq",
            [f"escalation:{i}" for i in ids],
        )
        held = await self._c.fetch(
            "SELECT * FROM notifier_outbox WHERE recipient = ANY($1::text[]) "
            "AND channel = $2 AND status = 'pending' ORDER BY seq",
            list(set(roster_ids)),
            HELD,
        )
        for h in held:
            view.held.setdefault(h["recipient"], []).append(_row(h).notice)
        for r in notified:
            view.notified.setdefault(r["escalation_id"], []).append(
                OutboxRef(
                    recipient=r["recipient"],
                    channel=r["channel"],
                    status=r["status"],
                    in_flight=r["in_flight"],
                    fallbacks=tuple(r["fallbacks"]),
                    team_id=r["team_id"],
                )
            )
        return view

    async def managers(self) -> dict[str, tuple[str, ...]]:
        rows = await self._c.fetch(
            "SELECT manager_id, array_agg(DISTINCT team_id ORDER BY team_id) AS teams "
            "FROM notifier_reps WHERE manager_id IS NOT NULL AND status <> 'left' "
            "GROUP BY manager_id"
        )
        return {r["manager_id"]: tuple(r["teams"]) for r in rows}

    async def save(self, changes: Changes, now: datetime) -> int:
        """Persist a fold's changes; returns the outbox rows added."""
        if changes.reps:
            await self._c.executemany(
                "INSERT INTO notifier_reps (rep_id, team_id, manager_id, status, timezone, "
                "contacts, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7) "
                "ON CONFLICT (rep_id) DO UPDATE SET team_id = EXCLUDED.team_id, "
                "manager_id = EXCLUDED.manager_id, status = EXCLUDED.status, "
                "timezone = EXCLUDED.timezone, contacts = EXCLUDED.contacts, "
                "updated_at = EXCLUDED.updated_at "
                "WHERE notifier_reps.updated_at <= EXCLUDED.updated_at",
                [
                    (
                        r.rep_id,
                        r.team_id,
                        r.manager_id,
                        r.status,
                        r.timezone,
                        json.dumps(dict(r.contacts)),
                        r.updated_at,
                    )
                    for r in changes.reps.values()
                ],
            )
        if changes.leads:
            await self._c.executemany(
                "INSERT INTO notifier_leads (lead_id, facts, owner_id, team_id, sequence, "
                "assigned_at, stage, stage_at, updated_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                "ON CONFLICT (lead_id) DO UPDATE SET facts = EXCLUDED.facts, "
                "owner_id = EXCLUDED.owner_id, team_id = EXCLUDED.team_id, "
                "sequence = EXCLUDED.sequence, assigned_at = EXCLUDED.assigned_at, "
                "stage = EXCLUDED.stage, stage_at = EXCLUDED.stage_at, "
                "updated_at = EXCLUDED.updated_at",
                [
                    (
                        le.lead_id,
                        json.dumps(dict(le.facts)),
                        le.owner_id,
                        le.team_id,
                        le.sequence,
                        le.assigned_at,
                        le.stage,
                        le.stage_at,
                        now,
                    )
                    for le in changes.leads.values()
                ],
            )
        if changes.steps:
            await self._c.executemany(
                "INSERT INTO notifier_escalations (escalation_id, lead_id, owner_id, team_id, "
                "action, due_at, breached_at, status, resolved_at) "
                "VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) "
                "ON CONFLICT (escalation_id) DO UPDATE SET status = EXCLUDED.status, "
                "resolved_at = EXCLUDED.resolved_at",
                [
                    (
                        s.escalation_id,
                        s.lead_id,
                        s.owner_id,
                        s.team_id,
                        s.action,
                        s.due_at,
                        s.breached_at,
                        s.status,
                        s.resolved_at,
                    )
                    for s in changes.steps.values()
                ],
            )
        if changes.cancel_keys:
            await self._c.execute(
                "UPDATE notifier_outbox o SET status = 'cancelled', last_code = 'resolved' "
                "FROM unnest($1::text[], $2::text[], $3::text[]) AS k(n, r, c) "
                "WHERE o.notice_key = k.n AND o.recipient = k.r AND o.channel = k.c "
                "AND o.status = 'pending' "
                "AND (o.lease_until IS NULL OR o.lease_until < clock_timestamp())",
                *map(list, zip(*changes.cancel_keys, strict=True)),
            )
        if changes.released:
            await self._c.execute(
                "DELETE FROM notifier_outbox o "
                "USING unnest($1::text[], $2::text[], $3::text[]) AS k(n, r, c) "
                "WHERE o.notice_key = k.n AND o.recipient = k.r AND o.channel = k.c "
                "AND o.status = 'pending'",
                *map(list, zip(*changes.released, strict=True)),
            )
        if changes.cancel_node_reminders:
            await self._c.execute(
                "UPDATE notifier_outbox SET status = 'cancelled', last_code = 'moved_on' "
                "WHERE lead_id = ANY($1::text[]) AND kind = 'node_reminder' "
                "AND status = 'pending' "
                "AND (lease_until IS NULL OR lease_until < clock_timestamp())",
                changes.cancel_node_reminders,
            )
        return await self.add_notices(changes.notices, now)

    async def add_notices(self, notices: Sequence[Notice], now: datetime) -> int:
        """Insert outbox rows; a row whose key exists already is left as it is."""
        if not notices:
            return 0
        cols = list(
            zip(
                *(
                    (
                        n.notice_key,
                        n.recipient,
                        n.channel,
                        n.kind,
                        n.team_id,
                        n.lead_id,
                        json.dumps(dict(n.payload), ensure_ascii=False),
                        "\x1f".join(n.fallbacks),
                        n.origin_at,
                        n.due_at,
                        n.coalesce_s,
                    )
                    for n in notices
                ),
                strict=True,
            )
        )
        status = await self._c.execute(
            "INSERT INTO notifier_outbox (notice_key, recipient, channel, kind, team_id, "
            "lead_id, payload, fallbacks, origin_at, due_at, coalesce_s, created_at) "
            "SELECT n, r, c, k, t, l, p::jsonb, "
            "CASE WHEN f = '' THEN '{}'::text[] ELSE string_to_array(f, chr(31)) END, "
            "o, d, s, $12::timestamptz FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], "
            "$5::text[], $6::text[], $7::text[], $8::text[], $9::timestamptz[], "
            "$10::timestamptz[], $11::float8[]) AS x(n, r, c, k, t, l, p, f, o, d, s) "
            "ON CONFLICT (notice_key, recipient, channel) DO NOTHING",
            *(list(c) for c in cols),
            now,
        )
        return int(status.rsplit(" ", 1)[-1])

    # --- the sender -----------------------------------------------------------------

    async def candidates(
        self, now: datetime, limit: int, per_group: int, robots: Sequence[str]
    ) -> list[Row]:
        """Pending rows ready by ``now`` of the (recipient, channel) pairs whose oldest
        ready row has waited out its coalescing window and whose destination is free
        (``robots``: channel names rate-limited per robot, not per person), at most
        ``per_group`` rows of a pair (one message's worth: a backlog for one destination
        cannot crowd out the others), locked with SKIP LOCKED (other workers take other
        rows) and not leased by a sender. Rows sent before (``message_id`` set: a lease
        ran out, a retry) come first and together, so that they can go out again in the
        same grouping."""
        rows = await self._c.fetch(
            "WITH ripe AS (SELECT DISTINCT o.recipient, o.channel FROM notifier_outbox o "
            "  LEFT JOIN notifier_rate r ON r.destination = CASE WHEN o.channel = ANY($4) "
            "    THEN o.channel ELSE o.channel || chr(31) || o.recipient END "
            "  WHERE o.status = 'pending' AND o.due_at <= $1 AND o.channel <> '' "
            "  AND greatest(o.due_at, coalesce(o.not_before, o.due_at)) "
            "      + make_interval(secs => o.coalesce_s) <= $1 "
            "  AND (o.lease_until IS NULL OR o.lease_until < clock_timestamp()) "
            "  AND (r.next_free_at IS NULL OR r.next_free_at <= $1) LIMIT $2), "
            "picked AS (SELECT notice_key, recipient, channel FROM ("
            "  SELECT o.notice_key, o.recipient, o.channel, o.due_at, o.seq, row_number() "
            "    OVER (PARTITION BY o.recipient, o.channel "
            "      ORDER BY o.message_id IS NULL, o.message_id, o.due_at, o.seq) AS n, "
            "  o.message_id "
            "  FROM notifier_outbox o JOIN ripe USING (recipient, channel) "
            "  WHERE o.status = 'pending' AND o.due_at <= $1 "
            "  AND (o.not_before IS NULL OR o.not_before <= $1) "
            "  AND (o.lease_until IS NULL OR o.lease_until < clock_timestamp())) x "
            "  WHERE n <= $3 ORDER BY message_id IS NULL, message_id, due_at, seq LIMIT $2) "
            "SELECT o.* FROM notifier_outbox o JOIN picked USING (notice_key, recipient, channel) "
            "WHERE o.status = 'pending' "
            "AND (o.lease_until IS NULL OR o.lease_until < clock_timestamp()) "
            "ORDER BY o.due_at, o.seq FOR UPDATE OF o SKIP LOCKED",
            now,
            limit,
            per_group,
            list(robots),
        )
        return [_row(r) for r in rows]

    async def next_free(self, destinations: Iterable[str]) -> dict[str, datetime]:
        rows = await self._c.fetch(
            "SELECT destination, next_free_at FROM notifier_rate "
            "WHERE destination = ANY($1::text[]) ORDER BY destination FOR UPDATE",
            sorted(set(destinations)),
        )
        return {r["destination"]: r["next_free_at"] for r in rows}

    async def set_next_free(self, free: Mapping[str, datetime]) -> None:
        if free:
            await self._c.execute(
                "INSERT INTO notifier_rate (destination, next_free_at) "
                "SELECT * FROM unnest($1::text[], $2::timestamptz[]) "
                "ON CONFLICT (destination) DO UPDATE SET next_free_at = EXCLUDED.next_free_at",
                list(free),
                list(free.values()),
            )

    async def lease(self, batches: Sequence[Batch], lease_s: float) -> None:
        keys = [(r.notice.key, b.message_id) for b in batches for r in b.rows]
        if not keys:
            return
        await self._c.execute(
            "UPDATE notifier_outbox o SET lease_until = clock_timestamp() "
            "  + make_interval(secs => $5), message_id = k.m, attempts = o.attempts + 1 "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[]) AS k(n, r, c, m) "
            "WHERE o.notice_key = k.n AND o.recipient = k.r AND o.channel = k.c",
            [k[0][0] for k in keys],
            [k[0][1] for k in keys],
            [k[0][2] for k in keys],
            [k[1] for k in keys],
            lease_s,
        )

    async def contacts(self, rep_ids: Iterable[str]) -> dict[str, Mapping[str, str]]:
        rows = await self._c.fetch(
            "SELECT rep_id, contacts FROM notifier_reps WHERE rep_id = ANY($1::text[])",
            list(set(rep_ids)),
        )
        return {r["rep_id"]: json.loads(r["contacts"]) for r in rows}

    async def read_names(
        self, lead_ids: Sequence[str], recipient: str, now: datetime
    ) -> dict[str, str]:
        """The names of ``lead_ids`` not erased, each read recorded in
        notifier_name_reads for ``recipient`` by the same statement (no read without its
        audit row). Needs migration 0011's column grant on leads."""
        rows = await self._c.fetch(
            "WITH named AS (SELECT lead_id, name FROM leads WHERE lead_id = ANY($1::text[]) "
            "  AND erased_at IS NULL AND name IS NOT NULL AND name <> ''), "
            "audit AS (INSERT INTO notifier_name_reads (lead_id, recipient, read_at) "
            "  SELECT lead_id, $2, $3 FROM named) "
            "SELECT lead_id, name FROM named",
            sorted(set(lead_ids)),
            recipient,
            now,
        )
        return {r["lead_id"]: r["name"] for r in rows}

    async def mark_sent(self, batch: Batch, now: datetime, code: str) -> int:
        status = await self._c.execute(
            "UPDATE notifier_outbox SET status = 'sent', sent_at = $2, lease_until = NULL, "
            "last_code = $3 WHERE message_id = $1 AND status = 'pending'",
            batch.message_id,
            now,
            code,
        )
        return int(status.rsplit(" ", 1)[-1])

    async def mark_retry(self, batch: Batch, not_before: datetime, code: str) -> None:
        await self._c.execute(
            "UPDATE notifier_outbox SET not_before = $2, lease_until = NULL, last_code = $3 "
            "WHERE message_id = $1 AND status = 'pending'",
            batch.message_id,
            not_before,
            code,
        )

    async def mark_dead(self, batch: Batch, code: str) -> int:
        status = await self._c.execute(
            "UPDATE notifier_outbox SET status = 'dead', lease_until = NULL, last_code = $2 "
            "WHERE message_id = $1 AND status = 'pending'",
            batch.message_id,
            code,
        )
        return int(status.rsplit(" ", 1)[-1])

    async def pending_by_channel(self) -> dict[str, int]:
        rows = await self._c.fetch(
            "SELECT channel, count(*) AS n FROM notifier_outbox WHERE status = 'pending' "
            "GROUP BY channel"
        )
        return {r["channel"]: r["n"] for r in rows}

    # --- retention ------------------------------------------------------------------

    async def forget(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` rows of each kind that nothing can need again: outbox
        rows finished (sent, cancelled; dead ones stay for replay) and applied-event ids
        made before ``before``, digests of dates before it, resolved steps. ``before``
        must lie further back than the input topics' retention, so that no event whose
        id is forgotten can still be redelivered."""
        total = 0
        for sql in (
            "DELETE FROM notifier_outbox WHERE ctid = ANY(ARRAY(SELECT ctid FROM "
            "notifier_outbox WHERE status IN ('sent', 'cancelled') AND created_at < $1 "
            "LIMIT $2))",
            "DELETE FROM notifier_applied_events WHERE ctid = ANY(ARRAY(SELECT ctid FROM "
            "notifier_applied_events WHERE applied_at < $1 LIMIT $2))",
            "DELETE FROM notifier_digests WHERE ctid = ANY(ARRAY(SELECT ctid FROM "
            "notifier_digests WHERE made_at < $1 LIMIT $2))",
            "DELETE FROM notifier_escalations WHERE ctid = ANY(ARRAY(SELECT ctid FROM "
            "notifier_escalations WHERE status = 'resolved' AND resolved_at < $1 LIMIT $2))",
        ):
            status = await self._c.execute(sql, before, limit)
            total += int(status.rsplit(" ", 1)[-1])
        return total

    # --- the digest -----------------------------------------------------------------

    async def active_reps(self) -> list[Rep]:
        rows = await self._c.fetch("SELECT * FROM notifier_reps WHERE status = 'active'")
        return [_rep(r) for r in rows]

    async def digests_made(self, day_by_rep: Mapping[str, date]) -> set[str]:
        rows = await self._c.fetch(
            "SELECT d.rep_id FROM notifier_digests d "
            "JOIN unnest($1::text[], $2::date[]) AS k(r, d) ON d.rep_id = k.r "
            "AND d.local_date = k.d",
            list(day_by_rep),
            list(day_by_rep.values()),
        )
        return {r["rep_id"] for r in rows}

    async def digest_inputs(
        self, rep_id: str, day_end: datetime
    ) -> tuple[list[Lead], list[EscalationStep], list[tuple[str, datetime]]]:
        leads = await self._c.fetch(
            "SELECT * FROM notifier_leads WHERE owner_id = $1 AND stage NOT IN ('won', 'lost') "
            "ORDER BY lead_id",
            rep_id,
        )
        overdue = await self._c.fetch(
            "SELECT DISTINCT ON (e.lead_id) e.* FROM notifier_escalations e "
            "JOIN notifier_leads l ON l.lead_id = e.lead_id AND l.owner_id = $1 "
            "AND l.stage NOT IN ('won', 'lost') "
            "WHERE e.owner_id = $1 AND e.status = 'firing' ORDER BY e.lead_id, e.due_at",
            rep_id,
        )
        due = await self._c.fetch(
            "SELECT lead_id, due_at FROM notifier_outbox WHERE recipient = $1 "
            "AND kind = 'node_reminder' AND status = 'pending' AND due_at < $2 "
            "ORDER BY due_at",
            rep_id,
            day_end,
        )
        return (
            [_lead(r) for r in leads],
            [_step(r) for r in overdue],
            [(r["lead_id"], r["due_at"]) for r in due],
        )

    async def record_digest(self, rep_id: str, day: date, now: datetime) -> bool:
        """True when this pass made the rep's digest for ``day`` (once per rep and date)."""
        made = await self._c.fetchval(
            "INSERT INTO notifier_digests (rep_id, local_date, made_at) VALUES ($1, $2, $3) "
            "ON CONFLICT DO NOTHING RETURNING true",
            rep_id,
            day,
            now,
        )
        return bool(made)


class NotifierStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Tx]:
        async with self._pool.acquire() as conn, conn.transaction():
            yield Tx(conn)

    async def dead_letters(self, channel: str | None, limit: int) -> list[dict[str, Any]]:
        """Dead-lettered rows, oldest first: ids, kind, channel and code. Never the
        address or the payload (the operator's listing is not a path for contacts)."""
        rows = await self._pool.fetch(_DEAD_LETTERS, channel, limit)
        return [dict(r) for r in rows]

    async def replay(
        self, channel: str | None, code: str | None, kind: str | None, lead_id: str | None
    ) -> int:
        """Make matching dead letters pending again, from the first attempt; returns how
        many. A notice its recipient was sent (or is still to be sent) on another
        channel, after a fallback, stays dead: replaying it would reach them twice."""
        status = await self._pool.execute(_REPLAY, channel, code, kind, lead_id)
        return int(status.rsplit(" ", 1)[-1])


_DEAD_LETTERS = """
SELECT notice_key, recipient, channel, kind, team_id, lead_id, attempts, last_code,
       created_at
  FROM notifier_outbox
 WHERE status = 'dead' AND ($1::text IS NULL OR channel = $1)
 ORDER BY created_at, seq
 LIMIT $2
"""

# Due at once: the row's due time (its working moment) has passed. The message id is
# kept, so a vendor that deduplicates drops it if the first attempt did land after all.
_REPLAY = """
UPDATE notifier_outbox d
   SET status = 'pending', attempts = 0, not_before = NULL, lease_until = NULL
 WHERE d.status = 'dead' AND ($1::text IS NULL OR d.channel = $1)
   AND ($2::text IS NULL OR d.last_code = $2) AND ($3::text IS NULL OR d.kind = $3)
   AND ($4::text IS NULL OR d.lead_id = $4)
   AND NOT EXISTS (
       SELECT 1 FROM notifier_outbox o
        WHERE o.notice_key = d.notice_key AND o.recipient = d.recipient
          AND o.channel <> d.channel AND o.status IN ('pending', 'sent'))
"""
