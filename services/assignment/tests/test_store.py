"""The use cases over the PostgreSQL unit of work, against the real server: how many
round trips a batch costs, that the roster read before the locks only picks the locks
(the roster read under the locks decides), and that rep load stays the count of each
rep's open leads."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator

import asyncpg
import pytest
from services.assignment.tests.factories import NOW, make_lead
from tests.conftest import create_database, drop_database

from leadloop.clock import FixedClock
from leadloop.events import EscalationAction, LeadAccepted, RepStatus, Strategy
from leadloop.messaging import RecordingPublisher
from leadloop_assignment.adapters.postgres import PostgresRepository, PostgresUnitOfWork
from leadloop_assignment.domain.moves import Takeback
from leadloop_assignment.domain.rules import Rep, RosterEntry, Rule, RuleSet, Team
from leadloop_assignment.handlers import AssignmentHandler, ChangeHandler

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
    """The use cases over a fresh database, with every statement its connections send."""

    def __init__(self, pool: asyncpg.Pool, statements: list[str]) -> None:
        uow = PostgresUnitOfWork(pool)
        publisher, clock = RecordingPublisher(), FixedClock(NOW)
        self.decide = AssignmentHandler(uow, publisher, clock, rules=lambda: RULES)
        self.changes = ChangeHandler(uow, publisher, clock, rules=lambda: RULES)
        self.pool = pool
        self.statements = statements

    async def open_leads(self) -> tuple[dict[str, int], dict[str, int]]:
        """Each rep's load as stored, and the open leads each rep owns."""
        load = {
            r["rep_id"]: r["open_leads"]
            for r in await self.pool.fetch("SELECT * FROM rep_load")
            if r["open_leads"]
        }
        owned = {
            r["owner_id"]: r["n"]
            for r in await self.pool.fetch(
                "SELECT owner_id, count(*) AS n FROM assignment_leads "
                "WHERE closed_at IS NULL AND owner_id IS NOT NULL GROUP BY owner_id"
            )
        }
        return load, owned

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
    first = await db.decide.assign(leads("warm", 3), RULES, NOW)
    assert [e.owner_id for e in first] == ["a", "b", "c"]
    db.statements.clear()
    batch = leads("next", 4)
    events = await db.decide.assign(batch, RULES, NOW)
    assert [e.owner_id for e in events] == ["a", "b", "c", "a"]
    # BEGIN, the roster, lock the teams, read roster/decisions/state, apply everything,
    # COMMIT, and the pool's reset when the connection goes back.
    assert len(db.statements) == 7, db.statements
    load = {r["rep_id"]: r["open_leads"] for r in await db.pool.fetch("SELECT * FROM rep_load")}
    assert load == {"a": 3, "b": 2, "c": 2}

    again = await db.decide.assign([*batch, batch[0]], RULES, NOW)
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
    await db.decide.assign(leads("warm", 1), RULES, NOW)
    await db.roster("a", "t1", "left")
    await db.roster("d", "t1")  # moved from t2
    events = await db.decide.assign(leads("after", 6), RULES, NOW)
    owners = [e.owner_id for e in events]
    assert set(owners) == {"b", "c", "d"}
    assert all(e.team_id == "t1" for e in events)


async def test_a_rep_moved_after_the_roster_was_read_makes_the_batch_lock_again(
    db: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A returning lead sticks to its previous owner's team. The roster read before the
    # locks still says d is in t2; under the locks it says t3, a team not locked.
    await db.decide.assign(leads("warm", 1), RULES, NOW)
    await db.roster("d", "t3")
    stale = [RosterEntry("d", "t2", RepStatus.ACTIVE, capacity=100, weight=1)]
    reads: list[int] = []

    async def roster_before_locks(repo: PostgresRepository) -> list[RosterEntry]:
        reads.append(len(reads))
        return stale if len(reads) == 1 else await real(repo)

    real = PostgresRepository.roster
    monkeypatch.setattr(PostgresRepository, "roster", roster_before_locks)
    [event] = await db.decide.assign(
        leads("back", 1, previous_owner_id="d", is_returning=True), RULES, NOW
    )
    assert (event.owner_id, event.team_id, event.rule_id) == ("d", "t3", "back")
    assert len(reads) == 2  # a second attempt
    # The first attempt (t1 and t2 locked) was rolled back; the second locked t1 and t3.
    locked = await db.pool.fetch("SELECT team_id FROM rotation_cursors ORDER BY team_id")
    assert [r["team_id"] for r in locked] == ["t1", "t3"]


async def test_rep_load_is_the_count_of_open_leads_even_for_a_rep_outside_the_rules(
    db: Store,
) -> None:
    # Load moves by steps. a owns two leads, then the roster puts a in a team the rule
    # set does not have (so no pass reads a's load); an escalation takes one lead from
    # a, another lead is won: a owns none, and says so.
    events = await db.decide.assign(leads("l", 4), RULES, NOW)
    assert [e.owner_id for e in events] == ["a", "b", "c", "a"]
    await db.roster("a", "elsewhere")
    taken, won = events[0].lead_id, events[3].lead_id
    moved = await db.changes.maintain(
        RULES,
        NOW,
        takebacks=[Takeback(taken, "a", EscalationAction.REASSIGN, "esc-1")],
        closings=[(won, NOW)],
    )
    # (after the lead's first decision, not published here)
    assert [(e.lead_id, e.previous_owner_id, e.sequence) for e in moved] == [
        (taken, None, 0),
        (taken, "a", 1),
    ]
    load, owned = await db.open_leads()
    assert "a" not in owned
    assert load == owned


async def test_a_pass_of_moves_reads_once_and_applies_once(db: Store) -> None:
    await db.decide.assign(leads("l", 6), RULES, NOW)
    await db.changes.maintain(RULES, NOW)  # every team's cursor row is there now
    await db.roster("a", "t1")
    await db.roster("b", "t1", "left")
    db.statements.clear()
    moved = await db.changes.maintain(RULES, NOW)
    assert {e.previous_owner_id for e in moved if e.sequence} == {"b"}
    # BEGIN, the roster's teams, lock every team, the roster, read, apply, earlier
    # unpublished events of the moved leads, COMMIT, reset.
    assert len(db.statements) == 9, db.statements
    load, owned = await db.open_leads()
    assert load == owned
