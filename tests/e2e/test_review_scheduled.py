"""``leadloop review scheduled`` on the real PostgreSQL: a run on Monday 2026-12-07
writes the reports of ISO week 2026-W49 and of November 2026 in each format, a second
run writes nothing, and a run a week later adds only the next week."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from leadloop_review.cli_review import app

pytestmark = pytest.mark.integration

LEADS = [  # (lead, accepted at, won?)
    ("s-1", datetime(2026, 11, 3, 10, tzinfo=UTC), True),
    ("s-2", datetime(2026, 11, 20, 9, tzinfo=UTC), False),
    ("s-3", datetime(2026, 12, 1, 11, tzinfo=UTC), True),
    ("s-4", datetime(2026, 12, 3, 15, tzinfo=UTC), False),
]


async def store_facts(url: str) -> None:
    rows = []
    for lead, at, won in LEADS:
        accepted = {
            "type": "Accepted",
            "event_id": f"a-{lead}",
            "lead_id": lead,
            "source": "web_form",
            "accepted_at": at.isoformat(),
            "priority": "warm",
            "customer_won_before": False,
            "score": 50,
        }
        assigned = {
            "type": "Assigned",
            "event_id": f"g-{lead}",
            "lead_id": lead,
            "team": "team-cn",
            "owned": True,
            "strategy": "round_robin",
            "kind": "initial",
            "assigned_at": (at + timedelta(minutes=1)).isoformat(),
            "priority": "warm",
            "owner": "rep-1",
            "previous_owner": None,
        }
        closed = {
            "type": "StageMoved",
            "event_id": f"c-{lead}",
            "lead_id": lead,
            "stage": "won" if won else "lost",
            "amount": 100000 if won else None,
            "loss_reason": None if won else "price",
            "occurred_at": (at + timedelta(days=1)).isoformat(),
        }
        rows += [
            (f"a-{lead}", "leads.accepted", lead, accepted),
            (f"g-{lead}", "leads.assigned", lead, assigned),
            (f"c-{lead}", "crm.stage-changes", lead, closed),
        ]
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO metric_applied_events (event_id, applied_at, topic, lead_id, fact) "
            "VALUES ($1, now(), $2, $3, $4::jsonb)",
            [(e, t, lead, json.dumps(f)) for e, t, lead, f in rows],
        )
    finally:
        await conn.close()


def run(url: str, out: Path, now: str) -> list[str]:
    result = CliRunner().invoke(
        app,
        [
            "scheduled",
            "--dir",
            str(out),
            "--format",
            "md,json",
            "--now",
            now,
            "--database-url",
            url,
            # The announcement has its own test (test_review_announced.py).
            "--no-announce",
        ],
    )
    assert result.exit_code == 0, result.output
    return sorted(line.rsplit("/", 1)[1] for line in result.output.splitlines() if "wrote" in line)


def test_scheduled_writes_each_report_once(database_url: str, tmp_path: Path) -> None:
    asyncio.run(store_facts(database_url))
    out = tmp_path / "reports"

    first = run(database_url, out, "2026-12-07T00:00:00+00:00")
    names = [
        "review-2026-11.json",
        "review-2026-11.md",
        "review-2026-W49.json",
        "review-2026-W49.md",
    ]
    assert first == names
    assert sorted(p.name for p in out.iterdir()) == names  # no temporary file left
    stamps = {p.name: p.stat().st_mtime_ns for p in out.iterdir()}
    assert all(p.stat().st_size > 0 for p in out.iterdir())
    november = json.loads((out / "review-2026-11.json").read_text(encoding="utf-8"))
    week = json.loads((out / "review-2026-W49.json").read_text(encoding="utf-8"))
    assert (november["period"], week["period"]) == ("2026-11", "2026-W49")
    assert (november["leads"], week["leads"]) == (2, 2)  # s-1, s-2; s-3, s-4
    assert (november["funnel"]["total"]["won"], week["funnel"]["total"]["won"]) == (1, 1)
    assert "2026-11" in (out / "review-2026-11.md").read_text(encoding="utf-8")

    assert run(database_url, out, "2026-12-07T09:30:00+00:00") == []  # idempotent
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir()} == stamps

    assert run(database_url, out, "2026-12-14T00:00:01+00:00") == [
        "review-2026-W50.json",
        "review-2026-W50.md",
    ]
    assert {p.name: p.stat().st_mtime_ns for p in out.iterdir() if p.name in stamps} == stamps
