"""`leadloop review` on the real stack: a seeded history of events goes through the
metrics service (which stores each as a fact), and the report's numbers equal an
independent computation from the events themselves (tests/support/review_truth.py)."""

from __future__ import annotations

import asyncio
import json
import random
import subprocess
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.support.events import accepted, escalation
from tests.support.processes import ROOT
from tests.support.review_truth import Event, review_truth
from tests.support.stack import running, stack_env

from leadloop.events import (
    ActivityKind,
    ActivityRecorded,
    AssignmentKind,
    LeadAssigned,
    LossReason,
    Priority,
    SatisfactionRecorded,
    Stage,
    StageChanged,
    Strategy,
)
from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

NOV = datetime(2026, 11, 1, tzinfo=UTC)
DEC = datetime(2026, 12, 1, tzinfo=UTC)
REPS = {"north": ["n1", "n2"], "south": ["s1"]}


def history(seed: int) -> list[Event]:
    """60 leads accepted over October and November: assigned, touched or not, escalated
    or not, won or lost with a reason or left open, some rated."""
    rnd = random.Random(seed)
    events: list[Event] = []
    for i in range(60):
        lead = f"lead-{seed}-{i}"
        at = NOV - timedelta(days=25) + timedelta(hours=rnd.randrange(0, 55 * 24))
        source = rnd.choice(["web_form", "wechat", "referral"])
        events.append(
            accepted(
                lead,
                at,
                event_id=f"a-{lead}",
                source=source,
                source_lead_id=str(i),
                score=50,
                priority=Priority.WARM,
                product=rnd.choice(["crm", "erp"]),
            )
        )
        if rnd.random() < 0.1:
            continue
        team = rnd.choice(sorted(REPS))
        owner = rnd.choice(REPS[team])
        assigned_at = at + timedelta(minutes=1)
        events.append(
            LeadAssigned(
                event_id=f"s-{lead}",
                occurred_at=assigned_at,
                assignment_id=f"s-{lead}",
                lead_id=lead,
                owner_id=owner,
                team_id=team,
                rule_id="r",
                rule_version="1",
                strategy=Strategy.ROUND_ROBIN,
                kind=AssignmentKind.INITIAL,
                reason="test",
                lead_occurred_at=at,
                assigned_at=assigned_at,
                priority=Priority.WARM,
            )
        )
        touched = rnd.random() < 0.7
        touch_at = assigned_at + timedelta(minutes=rnd.randrange(1, 600))
        if rnd.random() < (0.3 if touched else 0.6):
            events.append(
                escalation(
                    lead,
                    owner,
                    team,
                    assigned_at + timedelta(minutes=30),
                    event_id=f"e-{lead}",
                    escalation_id=f"e-{lead}",
                )
            )
        if touched:
            events.append(
                ActivityRecorded(
                    event_id=f"t-{lead}",
                    occurred_at=touch_at,
                    lead_id=lead,
                    rep_id=owner,
                    kind=ActivityKind.CALL,
                )
            )
        end = rnd.choice(["open", "qualified", "won", "lost", "lost"])
        if end != "open" and touched:
            events.append(
                StageChanged(
                    event_id=f"q-{lead}",
                    occurred_at=touch_at + timedelta(hours=2),
                    lead_id=lead,
                    stage=Stage.QUALIFIED,
                    rep_id=owner,
                )
            )
        closed_at = touch_at + timedelta(days=rnd.randrange(1, 20))
        if end == "won":
            events.append(
                StageChanged(
                    event_id=f"w-{lead}",
                    occurred_at=closed_at,
                    lead_id=lead,
                    stage=Stage.WON,
                    rep_id=owner,
                    amount=float(rnd.randrange(100, 5000)),
                )
            )
        elif end == "lost":
            events.append(
                StageChanged(
                    event_id=f"l-{lead}",
                    occurred_at=closed_at,
                    lead_id=lead,
                    stage=Stage.LOST,
                    rep_id=owner,
                    loss_reason=rnd.choice([LossReason.NO_RESPONSE, LossReason.TIMING]),
                )
            )
        if rnd.random() < 0.3:
            events.append(
                SatisfactionRecorded(
                    event_id=f"r-{lead}",
                    occurred_at=closed_at,
                    lead_id=lead,
                    rep_id=owner,
                    score=rnd.randint(1, 5),
                )
            )
    return events


async def publish(kafka: KafkaSettings, events: list[Event]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(
                qualified(e.topic, kafka.topic_prefix),
                e.model_dump_json().encode(),
                key=e.lead_id.encode(),
            )
    finally:
        await producer.stop()


async def test_the_report_equals_the_truth_from_the_events(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    events = history(seed=1511)
    env = stack_env(database_url, kafka_settings, tmp_path, LEADLOOP_SILENT_AFTER_BUSINESS_DAYS="0")
    with running(env, tmp_path, "metrics") as group:
        await publish(kafka_settings, events)
        conn = await asyncpg.connect(database_url)
        try:
            deadline = time.monotonic() + 90
            while (
                stored := await conn.fetchval(
                    "SELECT count(*) FROM metric_applied_events WHERE lead_id IS NOT NULL"
                )
            ) < len(events):
                assert time.monotonic() < deadline, (stored, group.log("metrics"))
                await asyncio.sleep(0.5)
            assert stored == len(events)
        finally:
            await conn.close()

    out = tmp_path / "review.json"
    result = await asyncio.to_thread(
        subprocess.run,
        [
            str(ROOT / ".venv/bin/leadloop"),
            "review",
            "--period",
            "2026-11",
            "--format",
            "json",
            "--until",
            "2027-01-01T00:00:00+00:00",
            "--out",
            str(out),
        ],
        cwd=ROOT,
        env={**env, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    report = json.loads(out.read_text(encoding="utf-8"))
    truth = review_truth(events, NOV, DEC)
    assert truth.leads > 20, "the seeded history puts most leads in November"
    assert truth.losses, "and loses some"
    assert truth.won_in_period, "and wins some"
    assert {"late", "missed", "within_sla"} <= {s for c in truth.followups.values() for s in c}

    assert report["leads"] == truth.leads
    got = {
        r["key"]: [r["leads"], r["won"], r["lost"], r["won_cents"]]
        for r in report["funnel"]["by_source"]
    }
    assert got == truth.by_source
    cells = {(c["stage"], c["reason"]): c["lost"] for c in report["losses"]["by_stage_reason"]}
    assert cells == dict(truth.losses)
    follow = {
        a["rep"]: {k: a[k] for k in ("within_sla", "late", "missed", "pending") if a[k]}
        for a in report["accountability"]["rows"]
        if a["owed"] or a["pending"]
    }
    assert follow == {rep: dict(c) for rep, c in truth.followups.items()}
    actual = {r["team"]: [r["actual_won"], r["actual_cents"]] for r in report["forecast"]["rows"]}
    assert actual == truth.won_in_period
    rated = {r["team"]: r["ratings"] for r in report["satisfaction"]["rows"] if r["rep"] == "*"}
    assert rated == {t: n for t, n in truth.ratings.items() if n}

    # Markdown, one team: the bilingual headings and the team's leads.
    md = await asyncio.to_thread(
        subprocess.run,
        [
            str(ROOT / ".venv/bin/leadloop"),
            "review",
            "--period",
            "2026-11",
            "--team",
            "north",
            "--until",
            "2027-01-01T00:00:00+00:00",
        ],
        cwd=ROOT,
        env={**env, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert md.returncode == 0, md.stderr
    assert "## 流失归因 Loss attribution" in md.stdout
    assert "## 责任追踪 Accountability" in md.stdout
