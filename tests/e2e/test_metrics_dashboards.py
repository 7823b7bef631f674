"""Every panel query of every dashboard and every recording rule returns data from a real
Prometheus scraping the metrics service after a simulated run, and every template
variable has values.

The real broker and database; ingest, assignment and metrics as processes; the traffic
simulator playing the channels and the reps; Debian's Prometheus started by
deploy/prometheus/prom.sh with the repository's rules, scraping this test's metrics
service every second. SLA escalations are published by the test itself (the
sla-monitor's own tests cover when they fire; here only their counting matters), for
leads the run really assigned. Afterwards `reconcile` against the served /metrics must
report no difference, and the scrape must stay fast.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import pytest
import yaml
from aiokafka import AIOKafkaProducer
from tests.support.events import escalation
from tests.support.kafka import collect, free_port_base
from tests.support.processes import ROOT, ServiceGroup
from tests.support.stack import reconcile_metrics, running, stack_env

from leadloop.events import (
    EscalationAction,
    EscalationKind,
    EscalationStatus,
    LeadAssigned,
    Stage,
    StageChanged,
)
from leadloop.settings import KafkaSettings
from leadloop.simulate import SimulationConfig, run
from leadloop.topics import qualified
from leadloop_metrics.dashboards import label_values, queries

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

PROM_SH = ROOT / "deploy/prometheus/prom.sh"
DASHBOARDS = sorted((ROOT / "deploy/grafana/dashboards").glob("*.json"))
RULES = sorted((ROOT / "deploy/prometheus/rules").glob("*.yml"))
ESCALATED, RESOLVED = 12, 4
#: Open leads taken from their owners by a follow-up step (at most).
TAKEN = 8


class Prometheus:
    def __init__(self, port: int, target: str, directory: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "LEADLOOP_PROM_PORT": str(port),
            "LEADLOOP_PROM_DIR": str(directory),
            "LEADLOOP_PROM_TARGET": target,
            "LEADLOOP_PROM_INTERVAL": "1s",
        }

    def run(self, command: str) -> None:
        subprocess.run(["bash", str(PROM_SH), command], env=self.env, check=True, timeout=60)

    def query(self, expr: str) -> dict[str, Any]:
        return self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))

    def label_values(self, label: str, selector: str) -> dict[str, Any]:
        """What Grafana's ``label_values(selector, label)`` variable query asks."""
        return self.get(
            f"/api/v1/label/{label}/values?" + urllib.parse.urlencode({"match[]": selector})
        )

    def get(self, path: str) -> dict[str, Any]:
        url = self.url + path
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                body: dict[str, Any] = json.loads(r.read())
        except urllib.error.HTTPError as exc:
            body = json.loads(exc.read())
        return body


@pytest.fixture
def services(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[ServiceGroup]:
    # The forecast series are set again every 2 s: last month's accuracy appears once
    # the test has given last month its wins and snapshots (close_last_month).
    env = stack_env(
        database_url,
        kafka_settings,
        tmp_path,
        LEADLOOP_FORECAST_SECONDS="1",
        LEADLOOP_FORECAST_REFRESH_SECONDS="2",
    )
    with running(env, tmp_path, "ingest", "assignment", "metrics", clean_exit=False) as group:
        yield group


@pytest.fixture
def prometheus(services: ServiceGroup, tmp_path: Path) -> Iterator[Prometheus]:
    port = free_port_base() + 1
    prom = Prometheus(port, f"127.0.0.1:{services.port('metrics')}", tmp_path / "prometheus")
    prom.run("start")
    try:
        yield prom
    finally:
        prom.run("stop")


async def escalate(kafka: KafkaSettings, assignments: list[LeadAssigned]) -> None:
    """First-response breaches for some assigned leads; a few of them resolved."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        now = datetime.now(UTC)
        for i, a in enumerate(assignments[:ESCALATED]):
            for status in (EscalationStatus.FIRING, EscalationStatus.RESOLVED):
                if status is EscalationStatus.RESOLVED and i >= RESOLVED:
                    continue
                event = escalation(
                    a.lead_id,
                    a.owner_id,
                    a.team_id,
                    now,
                    event_id=f"esc-{a.lead_id}-{status.value}",
                    escalation_id=f"esc-{a.lead_id}",
                    status=status,
                )
                await producer.send_and_wait(
                    qualified("sla.escalations", kafka.topic_prefix),
                    event.model_dump_json().encode(),
                    key=a.lead_id.encode(),
                )
    finally:
        await producer.stop()


async def take_back(
    kafka: KafkaSettings, assignments: list[LeadAssigned], stage_changes: int
) -> None:
    """A follow-up step that takes the lead from its owner (reassign or return to the
    pool, alternately) for a few leads still open: the assignment service moves them,
    so that reps really have leads taken."""
    records = await collect(kafka, "crm.stage-changes", want=stage_changes, within=30)
    changes = [StageChanged.model_validate_json(r.value or b"") for r in records]
    closed = {c.lead_id for c in changes if c.stage in (Stage.WON, Stage.LOST)}
    open_leads = [a for a in assignments[ESCALATED:] if a.lead_id not in closed]
    assert open_leads, "the run left no assigned lead open"
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        now = datetime.now(UTC)
        for i, a in enumerate(open_leads[:TAKEN]):
            event = escalation(
                a.lead_id,
                a.owner_id,
                a.team_id,
                now,
                event_id=f"take-{a.lead_id}",
                escalation_id=f"take-{a.lead_id}",
                level=3,
                action=(EscalationAction.REASSIGN, EscalationAction.RETURN_TO_POOL)[i % 2],
                policy_id="follow-up",
            ).model_copy(update={"kind": EscalationKind.FOLLOW_UP})
            await producer.send_and_wait(
                qualified("sla.escalations", kafka.topic_prefix),
                event.model_dump_json().encode(),
                key=a.lead_id.encode(),
            )
    finally:
        await producer.stop()


async def close_last_month(
    kafka: KafkaSettings, database_url: str, assignments: list[LeadAssigned], stage_changes: int
) -> None:
    """Last month, as the forecast remembers it: a snapshot per team taken on its 1st,
    and a win dated in it for one open owned lead per team (the run is all today)."""
    records = await collect(kafka, "crm.stage-changes", want=stage_changes, within=30)
    changes = [StageChanged.model_validate_json(r.value or b"") for r in records]
    closed = {c.lead_id for c in changes if c.stage in (Stage.WON, Stage.LOST)}
    today = datetime.now(UTC).date()
    last = (today.replace(day=1) - timedelta(days=1)).replace(day=1)
    won_at = datetime(last.year, last.month, 10, 12, tzinfo=UTC)
    first_of_team = {
        a.team_id: a for a in reversed(assignments[ESCALATED + TAKEN :]) if a.lead_id not in closed
    }
    assert first_of_team, "no owned lead left to win"
    producer = AIOKafkaProducer(bootstrap_servers=kafka.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for a in first_of_team.values():
            change = StageChanged(
                event_id=f"won-last-month-{a.lead_id}",
                lead_id=a.lead_id,
                stage=Stage.WON,
                occurred_at=won_at,
                rep_id=a.owner_id or "nobody",
                amount=1000.0,
            )
            await producer.send_and_wait(
                qualified("crm.stage-changes", kafka.topic_prefix),
                change.model_dump_json().encode(),
                key=a.lead_id.encode(),
            )
    finally:
        await producer.stop()
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany(
            "INSERT INTO metric_forecasts (team, month, taken_at, age, weighted_cents, "
            "commit_cents, best_case_cents, probabilities) "
            "VALUES ($1, $2, $3, 4, 80000, 50000, 150000, '{}')",
            [
                (team, last, datetime(last.year, last.month, 1, tzinfo=UTC))
                for team in first_of_team
            ],
        )
    finally:
        await conn.close()


def scrape(group: ServiceGroup) -> str:
    with urllib.request.urlopen(group.url("metrics", "/metrics"), timeout=5) as r:
        return str(r.read().decode())


def total(text: str, name: str) -> float:
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in text.splitlines()
        if line.startswith(name + "{") or line.startswith(name + " ")
    )


def recorded_series() -> list[str]:
    return [
        rule["record"]
        for path in RULES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "record" in rule
    ]


async def test_every_panel_and_recording_rule_returns_data_after_a_simulated_run(
    services: ServiceGroup,
    prometheus: Prometheus,
    kafka_settings: KafkaSettings,
    database_url: str,
) -> None:
    summary = await run(
        kafka_settings,
        # Paced over 10 s: Prometheus (scraping every second) sees the counters grow,
        # so that increase() and rate() have something to show.
        SimulationConfig(leads=400, rate=40, seed=606, time_scale=1800, duration_s=50),
    )
    assert summary.sent == 400
    assert summary.stage_changes.get("won"), summary
    assert summary.stage_changes.get("lost"), summary
    records = await collect(kafka_settings, "leads.assigned", want=50, within=30)
    assigned = [LeadAssigned.model_validate_json(r.value or b"") for r in records]
    owned = [a for a in assigned if a.owner_id is not None]
    await escalate(kafka_settings, owned)
    await take_back(kafka_settings, owned, sum(summary.stage_changes.values()))
    await close_last_month(kafka_settings, database_url, owned, sum(summary.stage_changes.values()))

    # The service has counted everything the run produced.
    deadline = time.monotonic() + 60
    while (
        total(text := scrape(services), "leadloop_sla_breaches_total") < ESCALATED
        or total(text, "leadloop_rep_leads_taken_total") < 1
        or total(text, "leadloop_forecast_accuracy_ratio") == 0
    ):
        assert time.monotonic() < deadline, services.log("metrics")
        await asyncio.sleep(0.5)
    # Rules are evaluated every second; rates need a few scrapes after the traffic.
    await asyncio.sleep(8)

    failures: list[str] = []
    checked = 0
    for path in DASHBOARDS:
        dashboard = json.loads(path.read_text(encoding="utf-8"))
        # Each query as Grafana sends it with the template variables at "All".
        for title, expr in queries(dashboard):
            body = prometheus.query(expr)
            checked += 1
            if body.get("status") != "success":
                failures.append(f"{path.name} / {title}: error {body.get('error')}")
            elif not body["data"]["result"]:
                failures.append(f"{path.name} / {title}: no data: {expr}")
        for name, selector, label in label_values(dashboard):
            body = prometheus.label_values(label, selector)
            checked += 1
            if body.get("status") != "success" or not body["data"]:
                failures.append(f"{path.name} / variable {name}: no {label} on {selector}")
    for record in recorded_series():
        body = prometheus.query(record)
        checked += 1
        if body.get("status") != "success" or not body["data"]["result"]:
            failures.append(f"recording rule {record}: {body.get('error') or 'no data'}")
    assert checked >= 30
    assert not failures, "\n".join(failures)

    # Every series served equals the replay of the stored facts, exactly.
    env = {**services.env, "DATABASE_URL": database_url}
    result = await reconcile_metrics(services, env, within=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "differences: 0" in result.stdout

    # Scrape time with the run's full series set stays small.
    body = prometheus.query('max_over_time(scrape_duration_seconds{job="leadloop-metrics"}[1m])')
    (sample,) = body["data"]["result"]
    assert float(sample["value"][1]) < 0.5, sample
