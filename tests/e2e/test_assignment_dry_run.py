"""``leadloop_assignment.tools dry-run`` over leads assignment decided in a real database.

Assignment's use cases decide 30 leads with the rules in force (one team of two reps)
and close ten of them, and the tool replays them through a proposal (another team of
three reps); its JSON report must match the decisions in PostgreSQL and the proposal's
rotation, and the command must leave the database untouched.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from tests.support.processes import ROOT

from leadloop.clock import SystemClock
from leadloop.db import create_pool
from leadloop.events import LeadAccepted, Priority
from leadloop.messaging import RecordingPublisher
from leadloop_assignment.adapters.postgres import PostgresUnitOfWork
from leadloop_assignment.domain.rules import Rep, Rule, RuleSet, Team
from leadloop_assignment.handlers import AssignmentHandler, ChangeHandler

pytestmark = pytest.mark.integration

IN_FORCE = RuleSet(
    version="now",
    teams=(Team(team_id="old", reps=(Rep(rep_id="o-1"), Rep(rep_id="o-2"))),),
    rules=(Rule(rule_id="all-old", team="old"),),
)

PROPOSAL = """
version: "next"
teams:
  - team_id: new
    reps: [{rep_id: n-1}, {rep_id: n-2}, {rep_id: n-3}]
rules:
  - rule_id: all-new
    team: new
"""


def lead(i: int, at: datetime) -> LeadAccepted:
    return LeadAccepted(
        event_id=f"ev-{i}",
        occurred_at=at,
        lead_id=f"lead-{i:02d}",
        source="web_form",
        source_lead_id=str(i),
        accepted_at=at,
        score=30,
        priority=Priority.WARM,
    )


def tool(*args: str, database_url: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "DATABASE_URL": database_url}
    return subprocess.run(
        [sys.executable, "-m", "leadloop_assignment.tools", "dry-run", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


async def test_dry_run_replays_a_time_range(database_url: str, tmp_path: Path) -> None:
    start = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
    leads = [lead(i, start + timedelta(minutes=i)) for i in range(30)]
    pool = await create_pool(database_url)
    try:
        uow, out, clock = PostgresUnitOfWork(pool), RecordingPublisher(), SystemClock()
        decide = AssignmentHandler(uow, out, clock, rules=lambda: IN_FORCE)
        changes = ChangeHandler(uow, out, clock, rules=lambda: IN_FORCE)
        for i in range(0, 30, 10):
            await decide.assign(leads[i : i + 10], IN_FORCE, leads[i].accepted_at)
        closings = [(x.lead_id, x.accepted_at + timedelta(seconds=30)) for x in leads[:10]]
        await changes.maintain(IN_FORCE, start + timedelta(hours=1), closings=closings)
    finally:
        await pool.close()
    proposal = tmp_path / "next.yaml"
    proposal.write_text(PROPOSAL)
    conn = await asyncpg.connect(database_url)
    try:
        before = await conn.fetchval("SELECT count(*) FROM assignments")

        # The second half hour only: leads 15..29.
        since = (start + timedelta(minutes=15)).isoformat()
        done = tool(str(proposal), "--since", since, "--json", database_url=database_url)
        assert done.returncode == 0, done.stderr
        report = json.loads(done.stdout)
        assert (report["leads"], report["changed"]) == (15, 15)
        assert report["teams"] == {
            "new": {"proposed": 15, "actual": 0},
            "old": {"proposed": 0, "actual": 15},
        }
        rows = {(r["team"], r["rep"]): (r["proposed"], r["actual"]) for r in report["reps"]}
        actual = {
            r["owner_id"]: r["n"]
            for r in await conn.fetch(
                "SELECT owner_id, count(*) AS n FROM assignments "
                "WHERE kind = 'initial' AND lead_id >= 'lead-15' GROUP BY owner_id"
            )
        }
        assert rows == {
            ("new", "n-1"): (5, 0),
            ("new", "n-2"): (5, 0),
            ("new", "n-3"): (5, 0),
            ("old", "o-1"): (0, actual["o-1"]),
            ("old", "o-2"): (0, actual["o-2"]),
        }
        assert report["rules"] == {"all-new": 15}

        # Human output, and a refused proposal.
        shown = tool(str(proposal), database_url=database_url)
        assert shown.returncode == 0, shown.stderr
        assert "30 leads replayed through rule set next" in shown.stdout
        broken = tmp_path / "broken.yaml"
        broken.write_text(PROPOSAL.replace("team: new", "team: nowhere"))
        refused = tool(str(broken), database_url=database_url)
        assert refused.returncode == 2
        assert refused.stderr.startswith(f"assignment: {broken}: "), refused.stderr

        assert await conn.fetchval("SELECT count(*) FROM assignments") == before
    finally:
        await conn.close()
