"""PostgreSQL side of assignment: decisions, rotation cursors, rep load, daily intake and
weighted counts change in one transaction, with the involved teams' cursor rows locked,
so two workers never interleave a team's state and a redelivered lead is answered from
the table."""

from __future__ import annotations

import json
from collections.abc import Callable, Hashable, Mapping, Sequence
from typing import TypeVar

import asyncpg

from leadloop.events import LeadAccepted, LeadAssigned
from leadloop.logging import get_logger
from leadloop_assignment.domain.planning import StateScope
from leadloop_assignment.domain.routing import Decision, RoutingState

__all__ = ["AssignmentStore", "Planner"]

K = TypeVar("K", bound=Hashable)

log = get_logger(__name__)

#: Attempts at a batch whose leads another worker decided concurrently.
_ATTEMPTS = 3

#: Given the state under lock and the leads not yet assigned: decisions, new state, events.
Planner = Callable[
    [RoutingState, Sequence[LeadAccepted]],
    tuple[list[Decision], RoutingState, list[LeadAssigned]],
]

_INSERT = """
INSERT INTO assignments (assignment_id, lead_id, kind, owner_id, team_id, rule_id,
    rule_version, strategy, previous_owner_id, reason, priority, lead_occurred_at,
    assigned_at, event_id, cause_event_id)
SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::text[],
    $7::text[], $8::text[], $9::text[], $10::jsonb[], $11::text[], $12::timestamptz[],
    $13::timestamptz[], $14::text[], $15::text[])
"""


class AssignmentStore:
    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    async def assign(
        self, leads: Sequence[LeadAccepted], scope: StateScope, planner: Planner
    ) -> list[LeadAssigned]:
        """The first-assignment event of every lead: new ones decided now, earlier ones
        read back unchanged."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return await self._assign(leads, scope, planner)
            except asyncpg.exceptions.UniqueViolationError:
                # Another worker decided one of these leads under other locks (it ran an
                # older or newer rule set, whose teams differ). Nothing of this attempt
                # was kept; the next one finds that decision in the table.
                if attempt == _ATTEMPTS:
                    raise
                log.warning("assign_conflict_retry", attempt=attempt)
        raise AssertionError("unreachable")

    async def _assign(
        self, leads: Sequence[LeadAccepted], scope: StateScope, planner: Planner
    ) -> list[LeadAssigned]:
        async with self._pool.acquire() as conn, conn.transaction():
            # Lock first, then look for earlier decisions: a worker that lost these
            # partitions mid-transaction may still be deciding the same leads under the
            # same locks, and its commit is visible to the statements after them.
            cursors = await self._lock(conn, scope)
            existing = {
                r["lead_id"]: _event(r)
                for r in await conn.fetch(
                    "SELECT * FROM assignments WHERE lead_id = ANY($1::text[]) "
                    "AND kind IN ('initial', 'pooled')",
                    [lead.lead_id for lead in leads],
                )
            }
            todo = [lead for lead in leads if lead.lead_id not in existing]
            # A lead can appear twice in one batch after a producer retry.
            todo = list({lead.lead_id: lead for lead in todo}.values())
            fresh: dict[str, LeadAssigned] = {}
            if todo:
                state = await self._load_state(conn, scope, cursors)
                decisions, new_state, events = planner(state, todo)
                await self._save(conn, todo, decisions, events, state, new_state)
                fresh = {e.lead_id: e for e in events}
        return [existing.get(lead.lead_id) or fresh[lead.lead_id] for lead in leads]

    async def _lock(self, conn: asyncpg.Connection, scope: StateScope) -> dict[str, str]:
        """Lock the teams' cursor rows (in team order); returns the cursors that are set.

        The lock on a team's cursor row guards all of the team's state: its reps' load,
        intake and weighted counts are read and written only while it is held."""
        # Rows must exist to be locked; the placeholder cursor '' sorts before every rep.
        teams = list(scope.teams)
        await conn.execute(
            "INSERT INTO rotation_cursors (team_id, last_rep_id, updated_at) "
            "SELECT t, '', now() FROM unnest($1::text[]) t ON CONFLICT DO NOTHING",
            teams,
        )
        rows = await conn.fetch(
            "SELECT team_id, last_rep_id FROM rotation_cursors WHERE team_id = ANY($1::text[]) "
            "ORDER BY team_id FOR UPDATE",
            teams,
        )
        return {r["team_id"]: r["last_rep_id"] for r in rows if r["last_rep_id"]}

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
    ) -> None:
        by_lead = {lead.lead_id: lead for lead in leads}
        records = {d.lead_id: d.record() for d in decisions}
        cols: list[list[object]] = [[] for _ in range(15)]
        for e in events:
            row = (
                e.assignment_id,
                e.lead_id,
                e.kind.value,
                e.owner_id,
                e.team_id,
                e.rule_id,
                e.rule_version,
                e.strategy.value,
                e.previous_owner_id,
                json.dumps(records[e.lead_id]),
                e.priority.value,
                e.lead_occurred_at,
                e.assigned_at,
                e.event_id,
                by_lead[e.lead_id].event_id,
            )
            for col, value in zip(cols, row, strict=True):
                col.append(value)
        await conn.execute(_INSERT, *cols)
        changed = {t: r for t, r in after.cursors.items() if before.cursors.get(t) != r}
        if changed:
            await conn.execute(
                "UPDATE rotation_cursors c SET last_rep_id = v.rep, updated_at = now() "
                "FROM unnest($1::text[], $2::text[]) AS v(team, rep) WHERE c.team_id = v.team",
                list(changed),
                list(changed.values()),
            )
        owners = [e for e in events if e.owner_id is not None]
        if owners:
            await conn.execute(
                "INSERT INTO rep_load (rep_id, team_id, open_leads, assigned_total) "
                "SELECT rep, team, n, n FROM unnest($1::text[], $2::text[], $3::int[]) "
                "AS v(rep, team, n) ON CONFLICT (rep_id) DO UPDATE SET "
                "team_id = EXCLUDED.team_id, "
                "open_leads = rep_load.open_leads + EXCLUDED.open_leads, "
                "assigned_total = rep_load.assigned_total + EXCLUDED.assigned_total",
                *_load_delta(owners),
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
    )
