"""``AssignmentStore`` against the real PostgreSQL server: how many round trips a batch
of first decisions costs, and that the roster read before the locks only picks the
locks — the roster read under the locks decides."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import asyncpg
import pytest
from services.assignment.tests.factories import NOW, make_lead
from tests.conftest import create_database, drop_database

from leadloop.events import LeadAccepted, RepStatus, Strategy
from leadloop_assignment.adapters import postgres
from leadloop_assignment.adapters.postgres import AssignmentStore
from leadloop_assignment.domain.rules import Rep, RosterEntry, Rule, RuleSet, Team

pytestmark = pytest.mark.integration

RULES = RuleSet(
    version="v1",
    teams=(
        Team(team_id="t1", reps=(Rep(rep_id="a"), Rep(rep_id="b"), Rep(rep_id="c"))),
        Team(team_id="t2", reps=(Rep(rep_id="d"),)),
        Team(team_id="t3", reps=(Rep(rep_id="e"),)),
    ),
    rules=(
        Rule(rule_id="back", strategy=Strategy.STICKY),
        Rule(rule_id="all", team="t1", strategy=Strategy.ROUND_ROBIN),
    ),
)


class Store:
    """A store over a fresh database, with every statement its connections send."""

    def __init__(self, pool: asyncpg.Pool, statements: list[str]) -> None:
        self.store = AssignmentStore(pool)
        self.pool = pool
        self.statements = statements

    async def roster(self, rep_id: str, team_id: str, status: str = "active") -> None:
        await self.pool.execute(
            "INSERT INTO assignment_reps (rep_id, team_id, status, capacity, weight, "
            "timezone, updated_at) VALUES ($1, $2, $3, 100, 1, 'UTC', now()) "
            "ON CONFLICT (rep_id) DO UPDATE SET team_id = EXCLUDED.team_id, "
            "status = EXCLUDED.status",
            rep_id,
            team_id,
            status,
        )


@pytest.fixture
async def db() -> AsyncIterator[Store]:
    admin = os.environ.get("DATABASE_URL")
    if not admin:
        pytest.fail("DATABASE_URL is not set: these tests need the real PostgreSQL server")
    url = await create_database(admin)
    statements: list[str] = []

    async def log_statements(conn: asyncpg.Connection) -> None:
        conn.add_query_logger(lambda q: statements.append(q.query))

    try:
        pool = await asyncpg.create_pool(url, min_size=1, max_size=2, init=log_statements)
        try:
            yield Store(pool, statements)
        finally:
            await pool.close()
    finally:
        await drop_database(admin, url)


def leads(prefix: str, n: int, **fields: object) -> list[LeadAccepted]:
    return [make_lead(f"{prefix}-{i}", **fields) for i in range(n)]


async def test_a_warm_batch_costs_seven_round_trips_and_a_redelivery_changes_nothing(
    db: Store,
) -> None:
    first = await db.store.assign(leads("warm", 3), RULES, NOW)
    assert [e.owner_id for e in first] == ["a", "b", "c"]
    db.statements.clear()
    batch = leads("next", 4)
    events = await db.store.assign(batch, RULES, NOW)
    assert [e.owner_id for e in events] == ["a", "b", "c", "a"]
    # BEGIN, the roster, lock the teams, read roster/decisions/state, write everything,
    # COMMIT, and the pool's reset when the connection goes back.
    assert len(db.statements) == 7, db.statements
    load = {r["rep_id"]: r["open_leads"] for r in await db.pool.fetch("SELECT * FROM rep_load")}
    assert load == {"a": 3, "b": 2, "c": 2}

    again = await db.store.assign([*batch, batch[0]], RULES, NOW)
    assert again == [*events, events[0]]
    load_after = {
        r["rep_id"]: r["open_leads"] for r in await db.pool.fetch("SELECT * FROM rep_load")
    }
    assert load_after == load
    cursor = await db.pool.fetchval("SELECT last_rep_id FROM rotation_cursors WHERE team_id = 't1'")
    assert cursor == "a"
    firsts = await db.pool.fetchval("SELECT count(*) FROM assignments")
    assert firsts == 7


async def test_the_roster_decides_who_takes_a_lead(db: Store) -> None:
    await db.store.assign(leads("warm", 1), RULES, NOW)
    await db.roster("a", "t1", "left")
    await db.roster("d", "t1")  # moved from t2
    events = await db.store.assign(leads("after", 6), RULES, NOW)
    owners = [e.owner_id for e in events]
    assert set(owners) == {"b", "c", "d"}
    assert all(e.team_id == "t1" for e in events)


async def test_a_rep_moved_after_the_roster_was_read_makes_the_batch_lock_again(
    db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A returning lead sticks to its previous owner's team. The roster read before the
    # locks still says d is in t2; under the locks it says t3, a team not locked.
    await db.store.assign(leads("warm", 1), RULES, NOW)
    await db.roster("d", "t3")
    stale = [RosterEntry("d", "t2", RepStatus.ACTIVE, capacity=100, weight=1)]
    reads: list[int] = []

    async def roster_before_locks(conn: asyncpg.Connection) -> list[RosterEntry]:
        reads.append(len(reads))
        return stale if len(reads) == 1 else await real(conn)

    real = postgres._roster
    monkeypatch.setattr(postgres, "_roster", roster_before_locks)
    [event] = await db.store.assign(
        leads("back", 1, previous_owner_id="d", is_returning=True), RULES, NOW
    )
    assert (event.owner_id, event.team_id, event.rule_id) == ("d", "t3", "back")
    assert len(reads) == 2  # a second attempt
    # The first attempt (t1 and t2 locked) was rolled back; the second locked t1 and t3.
    locked = await db.pool.fetch("SELECT team_id FROM rotation_cursors ORDER BY team_id")
    assert [r["team_id"] for r in locked] == ["t1", "t3"]
