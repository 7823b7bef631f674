"""metrics under `kill -9`: the worker is killed three times while it folds
``LEADLOOP_FAULT_SCALE`` events (default 100,000) from all six input topics, and after
the restarts every served series equals the truth.

Two independent checks: ``reconcile`` (the stored facts replayed, compared with the
stored and the served values, every bucket included), and a ground truth computed here
from the generated leads alone — what each lead's funnel, pipeline, outcome and SLA
series must be — compared with /metrics. The workload keeps that truth independent of
the order in which the topics interleave: each lead has one assignment decision, and a
lost lead's stage changes reach `contacted` before it is lost, so the stage a loss is
attributed to does not depend on when the activities arrive. Producer retries are
simulated by sending a share of the events twice.
"""

from __future__ import annotations

import asyncio
import os
import random
import signal
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from pydantic import BaseModel
from tests.support.events import accepted, escalation
from tests.support.processes import ROOT, ServiceGroup
from tests.support.stack import reconcile_metrics, running, stack_env

from leadloop.events import (
    ActivityKind,
    ActivityRecorded,
    AssignmentKind,
    EscalationStatus,
    IngestOutcome,
    IngestOutcomeRecorded,
    LeadAssigned,
    LossReason,
    Priority,
    Stage,
    StageChanged,
    Strategy,
)
from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

pytestmark = pytest.mark.e2e

SCALE = int(os.environ.get("LEADLOOP_FAULT_SCALE", "100000"))
TIMEOUT_S = 300 + SCALE // 200
SESSION_TIMEOUT_S = 10
T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
SOURCES = ("web_form", "lead_ads", "wechat", "trade_show_csv", "referral")
TEAMS = tuple(
    t["team_id"]
    for t in yaml.safe_load((ROOT / "config/rules.yaml").read_text(encoding="utf-8"))["teams"]
)
OPEN = ("contacted", "qualified", "proposal", "negotiation")

Sample = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class Workload:
    #: (topic, key, value) in production order; some values appear twice.
    messages: list[tuple[str, bytes, bytes]] = field(default_factory=list)
    unique_events: int = 0
    expected: Counter[Sample] = field(default_factory=Counter)


def key(name: str, **labels: str) -> Sample:
    return name, tuple(sorted(labels.items()))


def workload(scale: int, seed: int) -> Workload:
    """About ``scale`` events over leads that each take a random path through the loop."""
    rng = random.Random(seed)
    w = Workload()
    exp = w.expected
    seen: set[str] = set()

    def send(topic: str, lead: str, event: BaseModel) -> None:
        value = event.model_dump_json().encode()
        w.messages.append((topic, lead.encode(), value))
        event_id = str(getattr(event, "event_id", ""))
        if event_id not in seen:
            seen.add(event_id)
            w.unique_events += 1
        if rng.random() < 0.03:  # a producer retry: the same event again
            w.messages.append((topic, lead.encode(), value))

    n = 0
    while w.unique_events < scale:
        lead = f"L{n:07d}"
        t = T0 + timedelta(seconds=n)
        source = rng.choice((*SOURCES, "partner_x"))
        source_l = source if source in SOURCES else "other"
        team = rng.choice((*TEAMS, "team-unknown"))
        team_l = team if team in TEAMS else "other"
        priority = rng.choice(list(Priority))
        owned = rng.random() > 0.1
        n += 1
        # Rejected records have no lead: only the ingest counters see them.
        if rng.random() < 0.05:
            reason = rng.choice(["invalid_email", "missing_contact"])
            send(
                "ingest.outcomes",
                source,
                IngestOutcomeRecorded(
                    event_id=f"rej-{lead}",
                    occurred_at=t,
                    source=source,
                    outcome=IngestOutcome.REJECTED,
                    reason=reason,
                    raw_partition=0,
                    raw_offset=n,
                ),
            )
            exp[key("leadloop_leads_received_total", source=source_l)] += 1
            exp[key("leadloop_leads_rejected_total", source=source_l, reason=reason)] += 1
            continue
        send(
            "ingest.outcomes",
            source,
            IngestOutcomeRecorded(
                event_id=f"out-{lead}",
                occurred_at=t,
                source=source,
                outcome=IngestOutcome.ACCEPTED,
                lead_id=lead,
                raw_partition=0,
                raw_offset=n,
            ),
        )
        exp[key("leadloop_leads_received_total", source=source_l)] += 1
        exp[key("leadloop_leads_accepted_total", source=source_l)] += 1
        send(
            "leads.accepted",
            lead,
            accepted(
                lead,
                t,
                event_id=f"acc-{lead}",
                source=source,
                source_lead_id=lead,
                score=50,
                priority=priority,
            ),
        )
        exp[key("leadloop_funnel_entered_total", stage="new", source=source_l)] += 1
        assigned_at = t + timedelta(milliseconds=rng.randint(1, 3000))
        strategy, kind = (
            (Strategy.ROUND_ROBIN, AssignmentKind.INITIAL)
            if owned
            else (Strategy.POOL, AssignmentKind.POOLED)
        )
        send(
            "leads.assigned",
            lead,
            LeadAssigned(
                event_id=f"asg-{lead}",
                occurred_at=assigned_at,
                assignment_id=f"asg-{lead}",
                lead_id=lead,
                owner_id="rep-x" if owned else None,
                team_id=team,
                rule_id="r",
                rule_version="v",
                strategy=strategy,
                kind=kind,
                reason="test",
                lead_occurred_at=t,
                assigned_at=assigned_at,
                priority=priority,
            ),
        )
        labels = {"team": team_l, "strategy": strategy.value, "kind": kind.value}
        exp[key("leadloop_leads_assigned_total", **labels)] += 1
        exp[key("leadloop_assignment_latency_seconds_count")] += 1
        if owned:
            exp[key("leadloop_funnel_entered_total", stage="assigned", source=source_l)] += 1
        # Touches (some leads get none, some only a note).
        touches = rng.choice([0, 0, 1, 2, 3]) if owned else 0
        at = assigned_at
        for k in range(touches):
            at += timedelta(seconds=rng.randint(30, 3600))
            send(
                "crm.activities",
                lead,
                ActivityRecorded(
                    event_id=f"act-{lead}-{k}",
                    lead_id=lead,
                    rep_id="rep-x",
                    kind=rng.choice([ActivityKind.CALL, ActivityKind.EMAIL]),
                    occurred_at=at,
                ),
            )
        if touches:
            exp[key("leadloop_first_response_seconds_count", team=team_l, priority=priority)] += 1
        # Stage changes: a prefix of the pipeline, then maybe won or lost.
        stages = list(OPEN[: rng.randint(0, 4)]) if touches else []
        end = rng.choice([None, "won", "lost"]) if stages else None
        amount: float | None = None
        for k, stage in enumerate([*stages, *([end] if end else [])]):
            at += timedelta(minutes=rng.randint(5, 600))
            if stage in ("proposal", "negotiation", "won"):
                amount = rng.randint(100_000, 9_000_000) / 100
            reason = rng.choice(list(LossReason)) if stage == "lost" else None
            send(
                "crm.stage-changes",
                lead,
                StageChanged(
                    event_id=f"stg-{lead}-{k}",
                    lead_id=lead,
                    stage=Stage(stage),
                    occurred_at=at,
                    rep_id="rep-x",
                    amount=amount if stage in ("proposal", "negotiation", "won") else None,
                    loss_reason=reason,
                ),
            )
            exp[key("leadloop_funnel_entered_total", stage=stage, source=source_l)] += 1
            if stage == "lost":
                assert reason is not None
                exp[
                    key(
                        "leadloop_leads_lost_total",
                        stage=stages[-1],
                        reason=reason.value,
                        team=team_l,
                    )
                ] += 1
        if touches and "contacted" not in stages:
            exp[key("leadloop_funnel_entered_total", stage="contacted", source=source_l)] += 1
        if end == "won":
            exp[key("leadloop_leads_won_total", team=team_l, source=source_l)] += 1
            assert amount is not None
            exp[key("leadloop_won_amount_total", team=team_l, source=source_l)] += round(
                amount * 100
            )
        if end is None:
            current = (
                stages[-1] if stages else "contacted" if touches else "assigned" if owned else "new"
            )
            exp[key("leadloop_funnel_open_leads", stage=current, team=team_l)] += 1
            if amount is not None:
                exp[key("leadloop_pipeline_amount", stage=current, team=team_l)] += round(
                    amount * 100
                )
            if not owned:
                exp[key("leadloop_pool_leads", team=team_l)] += 1
        # Some leads breach their first-response SLA; half of those are resolved.
        if owned and rng.random() < 0.1:
            resolved = rng.random() < 0.5
            for status in [EscalationStatus.FIRING] + (
                [EscalationStatus.RESOLVED] if resolved else []
            ):
                send(
                    "sla.escalations",
                    lead,
                    escalation(
                        lead,
                        "rep-x",
                        team,
                        assigned_at,
                        event_id=f"esc-{lead}-{status.value}",
                        escalation_id=f"esc-{lead}",
                        status=status,
                    ),
                )
                metric = (
                    "leadloop_sla_breaches_total"
                    if status is EscalationStatus.FIRING
                    else "leadloop_sla_resolved_total"
                )
                exp[key(metric, kind="first_response", level="1", team=team_l)] += 1
            if not resolved:
                exp[key("leadloop_sla_open_clocks", kind="first_response")] += 1
    # Amounts were counted in hundredths (exact); the service serves base units.
    for k in list(exp):
        if k[0] in ("leadloop_won_amount_total", "leadloop_pipeline_amount"):
            exp[k] = exp[k] / 100  # type: ignore[assignment]
    return w


def served(text: str) -> dict[Sample, float]:
    """The non-zero leadloop samples of an exposition (zero equals absent)."""
    out: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        if not family.name.startswith("leadloop_"):
            continue
        for s in family.samples:
            if s.value and not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def produce(kafka: KafkaSettings, messages: list[tuple[str, bytes, bytes]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all", linger_ms=20)
    await producer.start()
    try:
        for i in range(0, len(messages), 2000):
            futures = [
                await producer.send(qualified(topic, kafka.topic_prefix), value, key=k)
                for topic, k, value in messages[i : i + 2000]
            ]
            await asyncio.gather(*futures)
    finally:
        await producer.stop()


@pytest.fixture
def metrics(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[ServiceGroup]:
    env = stack_env(
        database_url, kafka_settings, tmp_path, BROKER_SESSION_TIMEOUT=str(SESSION_TIMEOUT_S)
    )
    with running(env, tmp_path, "metrics", clean_exit=False) as group:
        yield group


async def applied(conn: asyncpg.Connection) -> int:
    return int(await conn.fetchval("SELECT count(*) FROM metric_applied_events"))


def scrape(group: ServiceGroup) -> str:
    with urllib.request.urlopen(group.url("metrics", "/metrics"), timeout=10) as r:
        return str(r.read().decode())


async def test_kill_9_of_the_metrics_worker_leaves_every_series_exact(
    metrics: ServiceGroup, kafka_settings: KafkaSettings, database_url: str
) -> None:
    load = workload(SCALE, seed=6)
    started = time.monotonic()
    producing = asyncio.create_task(produce(kafka_settings, load.messages))
    conn = await asyncpg.connect(database_url)
    killed_at: list[int] = []
    try:
        for fraction in (0.2, 0.5, 0.8):
            deadline = time.monotonic() + TIMEOUT_S / 3
            while await applied(conn) < fraction * load.unique_events:
                assert metrics.alive("metrics"), metrics.log("metrics")
                assert time.monotonic() < deadline, f"stuck at {await applied(conn)}"
                await asyncio.sleep(0.05)
            metrics.signal("metrics", signal.SIGKILL)
            metrics.procs["metrics"].wait(timeout=30)
            killed_at.append(await applied(conn))
            metrics.start("metrics")
            await asyncio.to_thread(metrics.wait_ready, "metrics", timeout=120)
        await producing
        deadline = time.monotonic() + TIMEOUT_S / 3
        while await applied(conn) < load.unique_events:
            assert metrics.alive("metrics"), metrics.log("metrics")
            assert time.monotonic() < deadline, f"stuck at {await applied(conn)}"
            await asyncio.sleep(0.2)
        elapsed = time.monotonic() - started
        # The last batch is committed; the view shows it once the handler returns.
        await asyncio.sleep(1)
        assert await applied(conn) == load.unique_events
    finally:
        producing.cancel()
        await conn.close()

    got = served(await asyncio.to_thread(scrape, metrics))
    wanted = {k: float(v) for k, v in load.expected.items() if v}
    compared = {k: v for k, v in got.items() if k in wanted or k[0] in {n for n, _ in wanted}}
    # Only histogram _count series are part of the ground truth; buckets and sums are
    # checked by reconcile below.
    compared = {k: v for k, v in compared.items() if not k[0].endswith(("_bucket", "_sum"))}
    missing = {k: v for k, v in wanted.items() if compared.get(k) != v}
    extra = {k: v for k, v in compared.items() if k not in wanted}
    shown = list(missing)[:10]
    assert not missing, f"ground truth {[(k, wanted[k], compared.get(k)) for k in shown]}"
    assert not extra, f"served but not in the ground truth: {list(extra.items())[:10]}"

    result = await reconcile_metrics(metrics, metrics.env, within=600)
    print(
        f"\n{load.unique_events} events ({len(load.messages)} sent), kills at {killed_at}, "
        f"{elapsed:.0f}s\n{result.stdout}"
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert all(0 < n < load.unique_events for n in killed_at), killed_at
