"""PostgreSQL side of assignment: decisions, rotation cursors and rep load change in
one transaction, with the involved teams' cursor rows locked, so two workers never
interleave a team's rotation and a redelivered lead is answered from the table."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

import asyncpg

from leadloop.events import LeadAccepted, LeadAssigned
from leadloop_assignment.domain.routing import Decision, RoutingState

__all__ = ["AssignmentStore", "Planner"]

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
        self,
        leads: Sequence[LeadAccepted],
        teams: Sequence[str],
        reps: Sequence[str],
        planner: Planner,
    ) -> list[LeadAssigned]:
        """The first-assignment event of every lead: new ones decided now, earlier ones
        read back unchanged."""
        async with self._pool.acquire() as conn, conn.transaction():
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
                state = await self._lock_state(conn, teams, reps)
                _, new_state, events = planner(state, todo)
                await self._save(conn, todo, events, state, new_state)
                fresh = {e.lead_id: e for e in events}
        return [existing.get(lead.lead_id) or fresh[lead.lead_id] for lead in leads]

    async def _lock_state(
        self, conn: asyncpg.Connection, teams: Sequence[str], reps: Sequence[str]
    ) -> RoutingState:
        # Rows must exist to be locked; the placeholder cursor '' sorts before every rep.
        await conn.execute(
            "INSERT INTO rotation_cursors (team_id, last_rep_id, updated_at) "
            "SELECT t, '', now() FROM unnest($1::text[]) t ON CONFLICT DO NOTHING",
            list(teams),
        )
        cursors = await conn.fetch(
            "SELECT team_id, last_rep_id FROM rotation_cursors WHERE team_id = ANY($1::text[]) "
            "ORDER BY team_id FOR UPDATE",
            list(teams),
        )
        load = await conn.fetch(
            "SELECT rep_id, open_leads FROM rep_load WHERE rep_id = ANY($1::text[])", list(reps)
        )
        return RoutingState(
            cursors={r["team_id"]: r["last_rep_id"] for r in cursors if r["last_rep_id"]},
            load={r["rep_id"]: r["open_leads"] for r in load},
        )

    async def _save(
        self,
        conn: asyncpg.Connection,
        leads: Sequence[LeadAccepted],
        events: Sequence[LeadAssigned],
        before: RoutingState,
        after: RoutingState,
    ) -> None:
        by_lead = {lead.lead_id: lead for lead in leads}
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
                json.dumps({"text": e.reason}),
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
                "open_leads = rep_load.open_leads + EXCLUDED.open_leads, "
                "assigned_total = rep_load.assigned_total + EXCLUDED.assigned_total",
                *_load_delta(owners),
            )


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
