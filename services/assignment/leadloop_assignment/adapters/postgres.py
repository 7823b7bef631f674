"""PostgreSQL side of assignment: decisions, rotation cursors, rep load, daily intake and
weighted counts change in one transaction, with the involved teams' cursor rows locked,
so two workers never interleave a team's state and a redelivered lead is answered from
the table.

First decisions lock only the teams their leads may go to. Everything else — roster
changes, won/lost leads freeing capacity, escalations moving leads, the pool draining —
locks every team (one statement, in team order, so no two transactions deadlock) and
publishes its events from the ``assignments`` table (``published_at``)."""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from datetime import date, datetime
from typing import TypeVar

import asyncpg

from leadloop.events import LeadAccepted, LeadAssigned, RepStatus, RepUpdated
from leadloop.faults import fault_point
from leadloop.logging import get_logger
from leadloop_assignment.domain.moves import (
    PRIORITY_RANK,
    HeldLead,
    Takeback,
    departed_reps,
    move_events,
    plan_moves,
)
from leadloop_assignment.domain.planning import (
    StateScope,
    assigned_event,
    full_scope,
    plan,
    state_scope,
)
from leadloop_assignment.domain.routing import Decision, RoutingState
from leadloop_assignment.domain.rules import RosterEntry, RuleSet, with_roster

__all__ = ["AssignmentStore", "Closing"]

K = TypeVar("K", bound=Hashable)

log = get_logger(__name__)

#: Attempts at a batch whose leads another worker decided concurrently.
_ATTEMPTS = 3

#: Pooled leads looked at per team and pass (hottest, then oldest first).
_POOL_PER_TEAM = 200

#: A won or lost lead: (lead_id, when).
Closing = tuple[str, datetime]

_INSERT = """
INSERT INTO assignments (assignment_id, lead_id, kind, owner_id, team_id, rule_id,
    rule_version, strategy, previous_owner_id, reason, priority, lead_occurred_at,
    assigned_at, event_id, cause_event_id, seq)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::jsonb[], $11::text[], $12::timestamptz[],
    $13::timestamptz[], $14::text[], $15::text[], $16::int[])
"""


_LOCK = (
    "SELECT team_id, last_rep_id FROM rotation_cursors WHERE team_id = ANY($1::text[]) "
    "ORDER BY team_id FOR UPDATE"
)

#: Read under the team locks, in one round trip: the roster, which of the batch's leads
#: were decided before, and the routing state of a scope (``_scope_columns``).
_READ = """
SELECT
    ARRAY(SELECT row(rep_id, team_id, manager_id, status, capacity, weight)
          FROM assignment_reps ORDER BY rep_id) AS roster,
    ARRAY(SELECT lead_id FROM assignments
          WHERE lead_id = ANY($1::text[]) AND kind IN ('initial', 'pooled')) AS decided,
    ARRAY(SELECT row(rep_id, open_leads) FROM rep_load
          WHERE rep_id = ANY($2::text[])) AS load,
    ARRAY(SELECT row(i.rep_id, i.day, i.assigned) FROM rep_daily_intake i
          JOIN unnest($3::text[], $4::date[]) AS k(rep_id, day)
          ON i.rep_id = k.rep_id AND i.day = k.day) AS intake,
    ARRAY(SELECT row(w.team_id, w.roster_id, w.rep_id, w.assigned) FROM weighted_counts w
          JOIN unnest($5::text[], $6::text[]) AS k(team_id, roster_id)
          ON w.team_id = k.team_id AND w.roster_id = k.roster_id) AS weighted
"""

#: A batch's first decisions, in one round trip: the decisions ($1-$16, as ``_INSERT``),
#: rep load ($17-$19), changed cursors ($20-$21), daily intake ($22-$24) and weighted
#: counts ($25-$28) growth, and each decided lead kept for later moves ($29-$36), which
#: returns the leads already closed (their owners' capacity is freed after it). Each
#: part writes other rows, as one statement's parts must. (Built from constants only.)
_SAVE = (
    "WITH decided AS (" + _INSERT + "),"  # noqa: S608
    """
load AS (
    INSERT INTO rep_load (rep_id, team_id, open_leads, assigned_total)
    SELECT rep, team, n, n FROM unnest($17::text[], $18::text[], $19::int[]) AS v(rep, team, n)
    ON CONFLICT (rep_id) DO UPDATE SET team_id = EXCLUDED.team_id,
        open_leads = rep_load.open_leads + EXCLUDED.open_leads,
        assigned_total = rep_load.assigned_total + EXCLUDED.assigned_total
),
cursors AS (
    UPDATE rotation_cursors c SET last_rep_id = v.rep, updated_at = now()
    FROM unnest($20::text[], $21::text[]) AS v(team, rep) WHERE c.team_id = v.team
),
intake AS (
    INSERT INTO rep_daily_intake (rep_id, day, assigned)
    SELECT * FROM unnest($22::text[], $23::date[], $24::int[])
    ON CONFLICT (rep_id, day) DO UPDATE SET
        assigned = rep_daily_intake.assigned + EXCLUDED.assigned
),
weighted AS (
    INSERT INTO weighted_counts (team_id, roster_id, rep_id, assigned)
    SELECT * FROM unnest($25::text[], $26::text[], $27::text[], $28::bigint[])
    ON CONFLICT (team_id, roster_id, rep_id) DO UPDATE SET
        assigned = weighted_counts.assigned + EXCLUDED.assigned
)
INSERT INTO assignment_leads (lead_id, lead, team_id, rule_id, owner_id, priority_rank,
    accepted_at, updated_at)
SELECT l, j, t, r, o, p, a, $36 FROM unnest($29::text[], $30::jsonb[], $31::text[],
    $32::text[], $33::text[], $34::smallint[], $35::timestamptz[]) AS v(l, j, t, r, o, p, a)
ON CONFLICT (lead_id) DO UPDATE SET lead = EXCLUDED.lead, team_id = EXCLUDED.team_id,
    rule_id = EXCLUDED.rule_id, owner_id = EXCLUDED.owner_id,
    priority_rank = EXCLUDED.priority_rank, accepted_at = EXCLUDED.accepted_at,
    updated_at = EXCLUDED.updated_at
RETURNING lead_id, owner_id, closed_at IS NOT NULL AS closed
"""
)


class ScopeChanged(Exception):
    """The roster moved a rep between reading it and locking the teams: try again."""


class AssignmentStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool
        self._merge_cache: tuple[RuleSet, list[RosterEntry], RuleSet] | None = None
        #: Teams whose rotation_cursors row is committed (no row is ever deleted), so
        #: locking them needs no placeholder insert first.
        self._cursor_rows: set[str] = set()

    async def assign(
        self, leads: Sequence[LeadAccepted], rules: RuleSet, now: datetime
    ) -> list[LeadAssigned]:
        """The first-assignment event of every lead: new ones decided now, earlier ones
        read back unchanged."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return await self._assign(leads, rules, now)
            except (asyncpg.exceptions.UniqueViolationError, ScopeChanged) as exc:
                # Another worker decided one of these leads under other locks (it ran an
                # older or newer rule set, whose teams differ), or the roster moved a rep
                # to a team not locked. Nothing of this attempt was kept; the next one
                # finds that decision in the table, or locks the right teams.
                if attempt == _ATTEMPTS:
                    raise
                log.warning("assign_conflict_retry", attempt=attempt, why=type(exc).__name__)
        raise AssertionError("unreachable")

    async def _assign(
        self, leads: Sequence[LeadAccepted], rules: RuleSet, now: datetime
    ) -> list[LeadAssigned]:
        async with self._pool.acquire() as conn, conn.transaction():
            # Which teams to lock is a guess from the roster read before the locks; the
            # roster read under the locks below decides.
            guess = await _roster(conn)
            guessed = self._merged(rules, guess)
            locked = state_scope(leads, guessed, now)
            # Lock first, then look for earlier decisions: a worker that lost these
            # partitions mid-transaction may still be deciding the same leads under the
            # same locks, and its commit is visible to the statements after them.
            cursors, present = await self._lock(conn, locked.teams)
            lead_ids = [lead.lead_id for lead in leads]
            # Roster changes take every team's lock: read under ours, it is settled. The
            # same statement reads the state of the guessed scope and which leads were
            # decided before.
            read = await conn.fetchrow(_READ, lead_ids, *_scope_columns(locked))
            assert read is not None
            roster = [_roster_entry(r) for r in read["roster"]]
            merged = guessed if roster == guess else self._merged(rules, roster)
            scope = locked if merged is guessed else state_scope(leads, merged, now)
            if not set(scope.teams) <= set(locked.teams):
                raise ScopeChanged
            existing: dict[str, LeadAssigned] = {}
            if read["decided"]:
                existing = {
                    r["lead_id"]: _event(r)
                    for r in await conn.fetch(
                        "SELECT * FROM assignments WHERE lead_id = ANY($1::text[]) "
                        "AND kind IN ('initial', 'pooled')",
                        lead_ids,
                    )
                }
            todo = [lead for lead in leads if lead.lead_id not in existing]
            # A lead can appear twice in one batch after a producer retry.
            todo = list({lead.lead_id: lead for lead in todo}.values())
            fresh: dict[str, LeadAssigned] = {}
            if todo:
                if scope == locked:
                    state = _state(read, cursors)
                else:  # the roster changed since the guess: read the scope it gives
                    state = await self._load_state(conn, scope, cursors)
                decisions, new_state = plan(todo, merged, state, now)
                by_id = {lead.lead_id: lead for lead in todo}
                events = [assigned_event(d, by_id[d.lead_id]) for d in decisions]
                closed = await self._save(conn, todo, decisions, events, state, new_state, now)
                # A lead already won or lost (the CRM was quicker than us) frees its
                # owner's capacity at once.
                await _release(conn, closed)
                fresh = {e.lead_id: e for e in events}
            fault_point("assignment.before_commit")  # tests only: everything written, no commit
        self._cursor_rows |= present  # committed now, and never deleted
        return [existing.get(lead.lead_id) or fresh[lead.lead_id] for lead in leads]

    def _merged(self, rules: RuleSet, roster: list[RosterEntry]) -> RuleSet:
        """``with_roster``, remembered for the last rule set and roster (both compared,
        the rule set by identity: the rule file hands out one object until it changes)."""
        cached = self._merge_cache
        if cached is not None and cached[0] is rules and cached[1] == roster:
            return cached[2]
        merged = with_roster(rules, roster)
        self._merge_cache = (rules, roster, merged)
        return merged

    # --- everything after the first decision ------------------------------------------

    async def maintain(
        self,
        rules: RuleSet,
        now: datetime,
        *,
        reps: Sequence[RepUpdated] = (),
        closings: Sequence[Closing] = (),
        takebacks: Sequence[Takeback] = (),
    ) -> list[LeadAssigned]:
        """Apply roster changes, won/lost leads and escalations, then every move due now
        (departed reps' leads, the pool). Returns the moves' events, to publish and then
        mark with ``published``."""
        async with self._pool.acquire() as conn, conn.transaction():
            roster_teams = {
                r["team_id"]
                for r in await conn.fetch("SELECT DISTINCT team_id FROM assignment_reps")
            }
            teams = {t.team_id for t in rules.teams} | roster_teams | {r.team_id for r in reps}
            cursors, _ = await self._lock(conn, sorted(teams))
            if reps:
                await _upsert_roster(conn, reps)
            if closings:
                await _close(conn, closings, now)
            takebacks = await _unapplied(conn, takebacks, now)
            merged = with_roster(rules, await _roster(conn))
            held = await _held(
                conn,
                leads=[tb.lead_id for tb in takebacks],
                owners=sorted(departed_reps(merged)),
                pool_teams=sorted(teams),
            )
            if not held:
                return []
            scope = full_scope(merged, now)
            state = await self._load_state(conn, scope, cursors)
            state = await _with_cooling(conn, state, [h.lead.lead_id for h in held], now)
            moves = plan_moves(rules=merged, state=state, now=now, takebacks=takebacks, held=held)
            for escalation_id, why in moves.ignored:
                log.info("escalation_moves_nothing", escalation_id=escalation_id, why=why)
            if not moves.decisions:
                return []
            events = move_events(moves.decisions, held)
            await self._save_moves(conn, merged, held, moves.decisions, events, state, moves.state)
            if moves.cooldowns:
                await conn.execute(
                    "INSERT INTO assignment_cooldowns (lead_id, rep_id, until) "
                    "SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[]) "
                    "ON CONFLICT (lead_id, rep_id) DO UPDATE SET until = EXCLUDED.until",
                    [c[0] for c in moves.cooldowns],
                    [c[1] for c in moves.cooldowns],
                    [c[2] for c in moves.cooldowns],
                )
            # A moved lead's earlier events a stopped worker left unpublished go first.
            earlier = await conn.fetch(
                "SELECT * FROM assignments WHERE lead_id = ANY($1::text[]) "
                "AND published_at IS NULL AND NOT assignment_id = ANY($2::text[]) "
                "ORDER BY lead_id, seq",
                sorted({e.lead_id for e in events}),
                [e.assignment_id for e in events],
            )
        return [_event(r) for r in earlier] + events

    async def moves_pending(self, rules: RuleSet) -> bool:
        """Whether a pass of ``maintain`` may move something: a lead waits in a pool or a
        departed rep still owns open leads (cheap, without locks)."""
        async with self._pool.acquire() as conn:
            departed = sorted(departed_reps(with_roster(rules, await _roster(conn))))
            return bool(
                await conn.fetchval(
                    "SELECT EXISTS (SELECT 1 FROM assignment_leads WHERE closed_at IS NULL "
                    "AND lead IS NOT NULL AND (owner_id IS NULL OR owner_id = ANY($1::text[])))",
                    departed,
                )
            )

    async def unpublished(self, *, older_than: datetime, limit: int = 500) -> list[LeadAssigned]:
        """Decisions committed before ``older_than`` whose events are not on the topic yet
        (the worker that made them stopped before publishing), in each lead's order."""
        async with self._pool.acquire() as conn:
            rows = await conn.fetch(
                "SELECT * FROM assignments WHERE published_at IS NULL AND assigned_at < $1 "
                "ORDER BY assigned_at, lead_id, seq LIMIT $2",
                older_than,
                limit,
            )
        return [_event(r) for r in rows]

    async def published(self, events: Sequence[LeadAssigned], now: datetime) -> None:
        if not events:
            return
        async with self._pool.acquire() as conn:
            await conn.execute(
                "UPDATE assignments SET published_at = $2 WHERE assignment_id = ANY($1::text[]) "
                "AND published_at IS NULL",
                [e.assignment_id for e in events],
                now,
            )

    async def _save_moves(
        self,
        conn: asyncpg.Connection,
        rules: RuleSet,
        held: Sequence[HeldLead],
        decisions: Sequence[Decision],
        events: Sequence[LeadAssigned],
        before: RoutingState,
        after: RoutingState,
    ) -> None:
        by_lead = {h.lead.lead_id: h for h in held}
        records = {e.assignment_id: d.record() for d, e in zip(decisions, events, strict=True)}
        await conn.execute(
            _INSERT,
            *_columns(
                events,
                reasons=[json.dumps(records[e.assignment_id]) for e in events],
                # A move's cause is not one input event (a pass moves many leads): the
                # assignment id keeps the (cause, kind) key unique.
                causes=[e.assignment_id for e in events],
            ),
        )
        last = {e.lead_id: e for e in events}  # a lead's final place after this pass
        await conn.execute(
            "UPDATE assignment_leads a SET owner_id = v.owner, team_id = v.team, "
            "rule_id = v.rule, moves = a.moves + v.n, updated_at = $6 "
            "FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[]) "
            "AS v(lead, owner, team, rule, n) WHERE a.lead_id = v.lead",
            list(last),
            [e.owner_id for e in last.values()],
            [e.team_id for e in last.values()],
            [e.rule_id for e in last.values()],
            [sum(1 for e in events if e.lead_id == lead) for lead in last],
            events[-1].assigned_at,
        )
        assert all(lead in by_lead for lead in last)
        await self._save_counts(conn, before, after)
        teams = {r.rep_id: t.team_id for t in rules.teams for r in t.reps}
        gained = Counter(e.owner_id for e in events if e.owner_id is not None)
        changed = {
            rep
            for rep in set(after.load) | set(gained)
            if after.load.get(rep, 0) != before.load.get(rep, 0) or rep in gained
        }
        if changed:
            reps = sorted(changed)
            await conn.execute(
                "INSERT INTO rep_load (rep_id, team_id, open_leads, assigned_total) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::int[], $4::bigint[]) "
                "ON CONFLICT (rep_id) DO UPDATE SET open_leads = EXCLUDED.open_leads, "
                "assigned_total = rep_load.assigned_total + EXCLUDED.assigned_total",
                reps,
                [teams.get(rep, "") for rep in reps],
                [after.load.get(rep, 0) for rep in reps],
                [gained.get(rep, 0) for rep in reps],
            )

    async def _lock(
        self, conn: asyncpg.Connection, team_ids: Sequence[str]
    ) -> tuple[dict[str, str], set[str]]:
        """Lock the teams' cursor rows (in team order); returns the cursors that are set
        and the teams locked (for ``_cursor_rows`` once committed).

        The lock on a team's cursor row guards all of the team's state: its reps' load,
        intake and weighted counts are read and written only while it is held."""
        teams = list(team_ids)
        if not set(teams) <= self._cursor_rows:
            await _cursor_placeholders(conn, teams)
        rows = await conn.fetch(_LOCK, teams)
        if len(rows) < len(set(teams)):
            # Only if a row known to exist went away: insert it again and lock all.
            self._cursor_rows.clear()
            await _cursor_placeholders(conn, teams)
            rows = await conn.fetch(_LOCK, teams)
        cursors = {r["team_id"]: r["last_rep_id"] for r in rows if r["last_rep_id"]}
        return cursors, {r["team_id"] for r in rows}

    async def _load_state(
        self, conn: asyncpg.Connection, scope: StateScope, cursors: Mapping[str, str]
    ) -> RoutingState:
        load = await conn.fetch(
            "SELECT rep_id, open_leads FROM rep_load WHERE rep_id = ANY($1::text[])",
            list(scope.reps),
        )
        intake = await conn.fetch(
            "SELECT i.rep_id, i.day, i.assigned FROM rep_daily_intake i "
            "JOIN unnest($1::text[], $2::date[]) AS k(rep_id, day) "
            "ON i.rep_id = k.rep_id AND i.day = k.day",
            [rep for rep, _ in scope.intake],
            [day for _, day in scope.intake],
        )
        weighted = await conn.fetch(
            "SELECT w.team_id, w.roster_id, w.rep_id, w.assigned FROM weighted_counts w "
            "JOIN unnest($1::text[], $2::text[]) AS k(team_id, roster_id) "
            "ON w.team_id = k.team_id AND w.roster_id = k.roster_id",
            [team for team, _ in scope.rosters],
            [roster for _, roster in scope.rosters],
        )
        return RoutingState(
            cursors=dict(cursors),
            load={r["rep_id"]: r["open_leads"] for r in load},
            intake={(r["rep_id"], r["day"]): r["assigned"] for r in intake},
            weighted={(r["team_id"], r["roster_id"], r["rep_id"]): r["assigned"] for r in weighted},
        )

    async def _save(
        self,
        conn: asyncpg.Connection,
        leads: Sequence[LeadAccepted],
        decisions: Sequence[Decision],
        events: Sequence[LeadAssigned],
        before: RoutingState,
        after: RoutingState,
        now: datetime,
    ) -> list[str]:
        """The decisions, the routing state they changed and each decided lead kept for
        later moves, in one statement. Returns the owners of leads already closed (the
        CRM was quicker than us), one per lead, whose capacity is to be freed."""
        by_lead = {lead.lead_id: lead for lead in leads}
        records = {d.lead_id: d.record() for d in decisions}
        owners = [e for e in events if e.owner_id is not None]
        cursors = {t: r for t, r in after.cursors.items() if before.cursors.get(t) != r}
        intake = _growth(before.intake, after.intake)
        weighted = _growth(before.weighted, after.weighted)
        closed = await conn.fetch(
            _SAVE,
            *_columns(
                events,
                reasons=[json.dumps(records[e.lead_id]) for e in events],
                causes=[by_lead[e.lead_id].event_id for e in events],
            ),
            *_load_delta(owners),
            list(cursors),
            list(cursors.values()),
            [rep for rep, _ in intake],
            [day for _, day in intake],
            list(intake.values()),
            [team for team, _, _ in weighted],
            [roster for _, roster, _ in weighted],
            [rep for _, _, rep in weighted],
            list(weighted.values()),
            [d.lead_id for d in decisions],
            [by_lead[d.lead_id].model_dump_json() for d in decisions],
            [d.team_id for d in decisions],
            [d.rule_id for d in decisions],
            [d.owner_id for d in decisions],
            [PRIORITY_RANK[by_lead[d.lead_id].priority] for d in decisions],
            [by_lead[d.lead_id].accepted_at for d in decisions],
            now,
        )
        return [r["owner_id"] for r in closed if r["closed"] and r["owner_id"]]

    async def _save_counts(
        self, conn: asyncpg.Connection, before: RoutingState, after: RoutingState
    ) -> None:
        """Cursors, daily intake and weighted counts (these only grow)."""
        changed = {t: r for t, r in after.cursors.items() if before.cursors.get(t) != r}
        if changed:
            await conn.execute(
                "UPDATE rotation_cursors c SET last_rep_id = v.rep, updated_at = now() "
                "FROM unnest($1::text[], $2::text[]) AS v(team, rep) WHERE c.team_id = v.team",
                list(changed),
                list(changed.values()),
            )
        intake = _growth(before.intake, after.intake)
        if intake:
            await conn.execute(
                "INSERT INTO rep_daily_intake (rep_id, day, assigned) "
                "SELECT * FROM unnest($1::text[], $2::date[], $3::int[]) "
                "ON CONFLICT (rep_id, day) DO UPDATE SET "
                "assigned = rep_daily_intake.assigned + EXCLUDED.assigned",
                [rep for rep, _ in intake],
                [day for _, day in intake],
                list(intake.values()),
            )
        weighted = _growth(before.weighted, after.weighted)
        if weighted:
            await conn.execute(
                "INSERT INTO weighted_counts (team_id, roster_id, rep_id, assigned) "
                "SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::bigint[]) "
                "ON CONFLICT (team_id, roster_id, rep_id) DO UPDATE SET "
                "assigned = weighted_counts.assigned + EXCLUDED.assigned",
                [team for team, _, _ in weighted],
                [roster for _, roster, _ in weighted],
                [rep for _, _, rep in weighted],
                list(weighted.values()),
            )


def _growth(before: Mapping[K, int], after: Mapping[K, int]) -> dict[K, int]:
    """How much each count grew (counts only grow within a batch)."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}


def _load_delta(events: Sequence[LeadAssigned]) -> tuple[list[str], list[str], list[int]]:
    counts: dict[tuple[str, str], int] = {}
    for e in events:
        assert e.owner_id is not None
        counts[(e.owner_id, e.team_id)] = counts.get((e.owner_id, e.team_id), 0) + 1
    keys = list(counts)
    return [k[0] for k in keys], [k[1] for k in keys], [counts[k] for k in keys]


def _event(r: asyncpg.Record) -> LeadAssigned:
    reason = r["reason"]
    reason = json.loads(reason) if isinstance(reason, str) else reason
    return LeadAssigned(
        event_id=r["event_id"],
        occurred_at=r["assigned_at"],
        assignment_id=r["assignment_id"],
        lead_id=r["lead_id"],
        owner_id=r["owner_id"],
        team_id=r["team_id"],
        rule_id=r["rule_id"],
        rule_version=r["rule_version"],
        strategy=r["strategy"],
        kind=r["kind"],
        previous_owner_id=r["previous_owner_id"],
        reason=reason["text"],
        lead_occurred_at=r["lead_occurred_at"],
        assigned_at=r["assigned_at"],
        priority=r["priority"],
        sequence=r["seq"],
    )


def _columns(
    events: Sequence[LeadAssigned],
    *,
    reasons: Sequence[str],
    causes: Sequence[str],
) -> list[list[object]]:
    """``_INSERT``'s sixteen column arrays."""
    rows = [
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
            reason,
            e.priority.value,
            e.lead_occurred_at,
            e.assigned_at,
            e.event_id,
            cause,
            e.sequence,
        )
        for e, reason, cause in zip(events, reasons, causes, strict=True)
    ]
    return [list(col) for col in zip(*rows, strict=True)] if rows else [[] for _ in range(16)]


def _scope_columns(
    scope: StateScope,
) -> tuple[list[str], list[str], list[date], list[str], list[str]]:
    """``_READ``'s $2-$6: the reps, (rep, day) and (team, roster) whose state is read."""
    return (
        list(scope.reps),
        [rep for rep, _ in scope.intake],
        [day for _, day in scope.intake],
        [team for team, _ in scope.rosters],
        [roster for _, roster in scope.rosters],
    )


def _state(read: asyncpg.Record, cursors: Mapping[str, str]) -> RoutingState:
    return RoutingState(
        cursors=dict(cursors),
        load={rep: n for rep, n in read["load"]},
        intake={(rep, day): n for rep, day, n in read["intake"]},
        weighted={(team, roster, rep): n for team, roster, rep, n in read["weighted"]},
    )


def _roster_entry(r: tuple[str, str, str | None, str, int, int]) -> RosterEntry:
    rep_id, team_id, manager_id, status, capacity, weight = r
    return RosterEntry(
        rep_id=rep_id,
        team_id=team_id,
        status=RepStatus(status),
        capacity=capacity,
        weight=weight,
        manager_id=manager_id,
    )


async def _cursor_placeholders(conn: asyncpg.Connection, teams: Sequence[str]) -> None:
    """Rows must exist to be locked; the placeholder cursor '' sorts before every rep."""
    await conn.execute(
        "INSERT INTO rotation_cursors (team_id, last_rep_id, updated_at) "
        "SELECT t, '', now() FROM unnest($1::text[]) t ON CONFLICT DO NOTHING",
        list(teams),
    )


async def _roster(conn: asyncpg.Connection) -> list[RosterEntry]:
    rows = await conn.fetch(
        "SELECT rep_id, team_id, manager_id, status, capacity, weight FROM assignment_reps "
        "ORDER BY rep_id"
    )
    return [
        RosterEntry(
            rep_id=r["rep_id"],
            team_id=r["team_id"],
            status=RepStatus(r["status"]),
            capacity=r["capacity"],
            weight=r["weight"],
            manager_id=r["manager_id"],
        )
        for r in rows
    ]


async def _upsert_roster(conn: asyncpg.Connection, reps: Sequence[RepUpdated]) -> None:
    """Roster entries move forward in ``updated_at`` only: a replayed or reordered older
    entry changes nothing."""
    latest: dict[str, RepUpdated] = {}
    for r in reps:
        if r.rep_id not in latest or latest[r.rep_id].updated_at < r.updated_at:
            latest[r.rep_id] = r
    rows = list(latest.values())
    await conn.execute(
        "INSERT INTO assignment_reps (rep_id, team_id, manager_id, status, capacity, weight, "
        "timezone, updated_at, event_id) SELECT * FROM unnest($1::text[], $2::text[], "
        "$3::text[], $4::text[], $5::int[], $6::int[], $7::text[], $8::timestamptz[], "
        "$9::text[]) ON CONFLICT (rep_id) DO UPDATE SET team_id = EXCLUDED.team_id, "
        "manager_id = EXCLUDED.manager_id, status = EXCLUDED.status, "
        "capacity = EXCLUDED.capacity, weight = EXCLUDED.weight, "
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


async def _close(conn: asyncpg.Connection, closings: Sequence[Closing], now: datetime) -> None:
    """Close won/lost leads once and free their owners' capacity. A lead not decided yet
    is remembered as closed: its first decision then frees the capacity at once."""
    first: dict[str, datetime] = {}
    for lead_id, at in closings:
        first.setdefault(lead_id, at)
    rows = await conn.fetch(
        "UPDATE assignment_leads a SET closed_at = v.at, updated_at = $3 "
        "FROM unnest($1::text[], $2::timestamptz[]) AS v(lead, at) "
        "WHERE a.lead_id = v.lead AND a.closed_at IS NULL RETURNING a.owner_id",
        list(first),
        list(first.values()),
        now,
    )
    await conn.execute(
        "INSERT INTO assignment_leads (lead_id, closed_at, updated_at) "
        "SELECT v.lead, v.at, $3 FROM unnest($1::text[], $2::timestamptz[]) AS v(lead, at) "
        "ON CONFLICT (lead_id) DO NOTHING",
        list(first),
        list(first.values()),
        now,
    )
    await _release(conn, [r["owner_id"] for r in rows if r["owner_id"]])


async def _release(conn: asyncpg.Connection, owners: Iterable[str]) -> None:
    """Each listed rep owns one open lead fewer (once per occurrence)."""
    counts = Counter(owners)
    if counts:
        await conn.execute(
            "UPDATE rep_load r SET open_leads = greatest(r.open_leads - v.n, 0) "
            "FROM unnest($1::text[], $2::int[]) AS v(rep, n) WHERE r.rep_id = v.rep",
            list(counts),
            list(counts.values()),
        )


async def _unapplied(
    conn: asyncpg.Connection, takebacks: Sequence[Takeback], now: datetime
) -> list[Takeback]:
    """The escalations not applied before (a redelivered one moves nothing again)."""
    if not takebacks:
        return []
    fresh = {
        r["event_id"]
        for r in await conn.fetch(
            "INSERT INTO assignment_applied_events (event_id, applied_at) "
            "SELECT e, $2 FROM unnest($1::text[]) e ON CONFLICT DO NOTHING RETURNING event_id",
            sorted({tb.escalation_id for tb in takebacks}),
            now,
        )
    }
    return [tb for tb in takebacks if tb.escalation_id in fresh]


async def _held(
    conn: asyncpg.Connection,
    *,
    leads: Sequence[str],
    owners: Sequence[str],
    pool_teams: Sequence[str],
) -> list[HeldLead]:
    """Open leads a pass may move: those named, those of the listed owners, and each
    team's pool (hottest, then oldest, first; at most ``_POOL_PER_TEAM`` per team)."""
    rows = await conn.fetch(
        "SELECT lead_id, lead, team_id, rule_id, owner_id, moves FROM assignment_leads "
        "WHERE closed_at IS NULL AND lead IS NOT NULL "
        "AND (lead_id = ANY($1::text[]) OR owner_id = ANY($2::text[]))",
        list(leads),
        list(owners),
    )
    rows += await conn.fetch(
        "SELECT p.* FROM unnest($1::text[]) AS t(team) CROSS JOIN LATERAL ("
        "SELECT a.lead_id, a.lead, a.team_id, a.rule_id, a.owner_id, a.moves "
        "FROM assignment_leads a WHERE a.team_id = t.team AND a.owner_id IS NULL "
        "AND a.closed_at IS NULL AND a.lead IS NOT NULL "
        "ORDER BY a.priority_rank, a.accepted_at LIMIT $2) p",
        list(pool_teams),
        _POOL_PER_TEAM,
    )
    held = {}
    for r in rows:
        lead = r["lead"]
        held[r["lead_id"]] = HeldLead(
            lead=LeadAccepted.model_validate_json(lead)
            if isinstance(lead, str)
            else LeadAccepted.model_validate(lead),
            team_id=r["team_id"],
            rule_id=r["rule_id"],
            owner_id=r["owner_id"],
            moves=r["moves"],
        )
    return list(held.values())


async def _with_cooling(
    conn: asyncpg.Connection, state: RoutingState, lead_ids: Sequence[str], now: datetime
) -> RoutingState:
    rows = await conn.fetch(
        "SELECT lead_id, rep_id FROM assignment_cooldowns "
        "WHERE lead_id = ANY($1::text[]) AND until > $2",
        list(lead_ids),
        now,
    )
    cooling: dict[str, set[str]] = {}
    for r in rows:
        cooling.setdefault(r["lead_id"], set()).add(r["rep_id"])
    return RoutingState(
        cursors=state.cursors,
        load=state.load,
        intake=state.intake,
        weighted=state.weighted,
        cooling={lead: frozenset(reps) for lead, reps in cooling.items()},
    )
