"""``leadloop score fit`` on the real PostgreSQL: the metrics' stored facts of a
simulated half-year (acceptances, stage moves, closes in and out of the window) are
read back, the closed leads of the window are the ones fitted, and the model file
written is one ingest loads."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from typer.testing import CliRunner

from leadloop_ingest.adapters.score_model_file import load_score_model
from leadloop_review.adapters.score_facts import read_close_facts
from leadloop_review.adapters.score_file import read_model
from leadloop_review.cli_score import app
from leadloop_review.domain.score_fit import closed_leads
from leadloop_review.domain.score_sim import simulate

pytestmark = pytest.mark.integration

START, END = date(2026, 1, 1), date(2026, 5, 31)


async def store_facts(url: str) -> int:
    """The simulation's facts as the metrics service stores them; the number of leads
    that closed in the window."""
    rows = []
    in_window = 0
    for s in simulate(8, 2026, months=6):
        lead = s.lead
        accepted: dict[str, object] = {
            "type": "Accepted",
            "event_id": f"a-{lead.lead_id}",
            "lead_id": lead.lead_id,
            "accepted_at": lead.accepted_at.isoformat(),
            "priority": "warm",
            **lead.attributes,
        }
        rows.append((f"a-{lead.lead_id}", "leads.accepted", lead.lead_id, accepted))
        moved: dict[str, object] = {
            "type": "StageMoved",
            "event_id": f"q-{lead.lead_id}",
            "lead_id": lead.lead_id,
            "stage": "qualified",
            "amount": None,
            "loss_reason": None,
            "occurred_at": (lead.accepted_at + timedelta(days=1)).isoformat(),
        }
        rows.append((f"q-{lead.lead_id}", "crm.stage-changes", lead.lead_id, moved))
        if lead.closed_at.date() <= END:
            in_window += 1
        closed: dict[str, object] = {
            **moved,
            "event_id": f"c-{lead.lead_id}",
            "stage": "won" if lead.won else "lost",
            "occurred_at": lead.closed_at.isoformat(),
        }
        rows.append((f"c-{lead.lead_id}", "crm.stage-changes", lead.lead_id, closed))
    conn = await asyncpg.connect(url)
    try:
        await conn.executemany(
            "INSERT INTO metric_applied_events (event_id, applied_at, topic, lead_id, fact) "
            "VALUES ($1, now(), $2, $3, $4::jsonb)",
            [(e, t, lead, json.dumps(f)) for e, t, lead, f in rows],
        )
    finally:
        await conn.close()
    return in_window


def test_fit_from_the_metrics_facts(database_url: str, tmp_path: Path) -> None:
    in_window = asyncio.run(store_facts(database_url))
    facts = asyncio.run(read_close_facts(database_url, START, END))
    leads = closed_leads(facts, START, END)
    assert len(leads) == in_window
    assert {f["type"] for _, f in facts} == {"Accepted", "StageMoved"}

    out = tmp_path / "models" / "score-v4.json"
    result = CliRunner().invoke(
        app,
        [
            "fit",
            "--from",
            START.isoformat(),
            "--to",
            END.isoformat(),
            "--out",
            str(out),
            "--database-url",
            database_url,
        ],
    )
    assert result.exit_code == 0, result.output
    assert "which attributes predict winning" in result.output
    model = read_model(out)
    assert model.version == "score-v4"
    assert model.leads == in_window
    assert (model.window_from, model.window_to) == (START, END)
    assert model.fitted_at > datetime(2026, 1, 1, tzinfo=UTC)
    assert load_score_model(out).version == "score-v4"
