"""A worker that stops making progress while its input keeps arriving raises
LeadloopConsumerStalled on a real Prometheus, and the alert clears when it recovers.

The real broker and database; the metrics service as a process; Debian's Prometheus
started by deploy/prometheus/prom.sh, scraping the worker every second. The stall is
the one the alert's runbook names: a session holding a lock on a table the handler
writes (``metric_applied_events``), so the worker's batch waits in PostgreSQL while
leads.accepted keeps growing. The rule file is rules/consumers.yml with only its time
windows shortened (10-minute windows and minutes of ``for:`` would make a test of
twenty minutes); every expression is the production one.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import subprocess
import time
import urllib.parse
import urllib.request
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.support.events import accepted
from tests.support.ports import free_port_base
from tests.support.processes import ROOT, ServiceGroup
from tests.support.stack import running, stack_env

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(300)]

PROM_SH = ROOT / "deploy/prometheus/prom.sh"
RULES = ROOT / "deploy/prometheus/rules/consumers.yml"
#: The production windows and what this test runs them at. Each must occur in the
#: file: a rule whose window changed must not silently keep its long one here.
SHORTER = {"[10m]": "[20s]", "for: 5m": "for: 5s", "for: 10m": "for: 5s"}
STALLED = {"alertname": "LeadloopConsumerStalled", "service": "metrics", "topic": "leads.accepted"}
WITHIN_S = 120


def shortened_rules(directory: Path) -> Path:
    text = RULES.read_text(encoding="utf-8")
    for long, short in SHORTER.items():
        assert long in text, f"{RULES.name} no longer has {long!r}; update SHORTER"
        text = text.replace(long, short)
    directory.mkdir(parents=True)
    (directory / RULES.name).write_text(text, encoding="utf-8")
    return directory


class Prometheus:
    def __init__(self, port: int, target: str, directory: Path, rules: Path) -> None:
        self.url = f"http://127.0.0.1:{port}"
        self.env = {
            **os.environ,
            "LEADLOOP_PROM_PORT": str(port),
            "LEADLOOP_PROM_DIR": str(directory),
            "LEADLOOP_PROM_TARGET": target,
            "LEADLOOP_PROM_INTERVAL": "1s",
            "LEADLOOP_PROM_RULES": str(rules),
        }

    def run(self, command: str) -> None:
        subprocess.run(["bash", str(PROM_SH), command], env=self.env, check=True, timeout=60)

    def get(self, path: str) -> Any:
        with urllib.request.urlopen(self.url + path, timeout=10) as r:
            return json.loads(r.read())["data"]

    def value(self, expr: str) -> float | None:
        result = self.get("/api/v1/query?" + urllib.parse.urlencode({"query": expr}))["result"]
        return float(result[0]["value"][1]) if result else None

    def alerts(self) -> list[dict[str, Any]]:
        alerts: list[dict[str, Any]] = self.get("/api/v1/alerts")["alerts"]
        return alerts


def matching(alerts: list[dict[str, Any]], labels: dict[str, str]) -> list[dict[str, Any]]:
    return [a for a in alerts if labels.items() <= a["labels"].items()]


@pytest.fixture
def metrics_worker(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[ServiceGroup]:
    env = stack_env(database_url, kafka_settings, tmp_path)
    with running(env, tmp_path, "metrics") as group:
        yield group


@pytest.fixture
def prometheus(metrics_worker: ServiceGroup, tmp_path: Path) -> Iterator[Prometheus]:
    prom = Prometheus(
        free_port_base() + 1,
        f"127.0.0.1:{metrics_worker.port('metrics')}",
        tmp_path / "prometheus",
        shortened_rules(tmp_path / "rules"),
    )
    prom.run("start")
    try:
        yield prom
    finally:
        prom.run("stop")


async def until(what: str, check: Any, within: float = WITHIN_S) -> float:
    """Poll ``check`` (a blocking call, run off the loop) until truthy; seconds taken."""
    start = time.monotonic()
    while not await asyncio.to_thread(check):
        if time.monotonic() - start > within:
            raise AssertionError(f"not within {within} s: {what}")
        await asyncio.sleep(0.5)
    return time.monotonic() - start


class Leads:
    """Accepted leads for leads.accepted, one every ``every`` seconds while running."""

    def __init__(self, kafka: KafkaSettings) -> None:
        self.kafka = kafka
        self.sent = 0

    async def send(self, producer: AIOKafkaProducer, n: int) -> None:
        for _ in range(n):
            i = self.sent
            lead = accepted(
                f"L-stall-{i}",
                datetime.now(UTC),
                event_id=f"acc-stall-{i}",
                source="web_form",
                source_lead_id=f"s-{i}",
                score=50,
                priority="warm",
            )
            await producer.send_and_wait(
                qualified("leads.accepted", self.kafka.topic_prefix),
                lead.model_dump_json().encode(),
                key=lead.lead_id.encode(),
            )
            self.sent += 1

    async def trickle(self, producer: AIOKafkaProducer, every: float, stop: asyncio.Event) -> None:
        # Stopped between sends, never inside one: a send cancelled after the broker
        # took it would be a lead the final count does not know of.
        while not stop.is_set():
            await self.send(producer, 1)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), every)


async def test_a_stalled_worker_fires_the_alert_and_clears_it_on_recovery(
    prometheus: Prometheus, kafka_settings: KafkaSettings, database_url: str
) -> None:
    started = time.monotonic()
    progress = 'leadloop_consumer_progress_total{service="metrics", topic="leads.accepted"}'
    lag = 'leadloop_consumer_lag_records{service="metrics", topic="leads.accepted"}'
    age = 'leadloop_consumer_lag_seconds{service="metrics", topic="leads.accepted"}'
    leads = Leads(kafka_settings)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    await producer.start()
    blocker = await asyncpg.connect(database_url)
    stop = asyncio.Event()
    trickle: asyncio.Task[None] | None = None
    try:
        # Busy and keeping up: the worker finishes what arrives, no alert.
        await leads.send(producer, 20)
        await until(
            "the worker's progress reaches Prometheus",
            lambda: (prometheus.value(progress) or 0) >= 20,
        )
        await until("the lag is back to 0", lambda: prometheus.value(lag) == 0)
        assert not prometheus.alerts()

        # A session locks a table the handler writes; leads keep coming.
        await blocker.execute("BEGIN")
        await blocker.execute("LOCK TABLE metric_applied_events IN EXCLUSIVE MODE")
        stalled_at = time.monotonic()
        trickle = asyncio.create_task(leads.trickle(producer, 0.5, stop))
        # The worker still serves /metrics: the lag and the age of the oldest held
        # record grow while its progress stays put.
        await until("the lag grows", lambda: (prometheus.value(lag) or 0) >= 5)
        await until("the oldest record ages", lambda: (prometheus.value(age) or 0) >= 5)
        await until(
            "LeadloopConsumerStalled fires for metrics / leads.accepted",
            lambda: any(a["state"] == "firing" for a in matching(prometheus.alerts(), STALLED)),
        )
        fired_after = time.monotonic() - stalled_at
        alerts = prometheus.alerts()
        # Only the stalled topic: the worker's other topics have no new input (lag 0),
        # and nothing is near its retention.
        assert {(a["labels"]["alertname"], a["labels"]["topic"]) for a in alerts} == {
            ("LeadloopConsumerStalled", "leads.accepted")
        }, alerts
        (firing,) = matching(alerts, STALLED)
        assert firing["labels"]["severity"] == "page"
        assert "processed nothing from leads.accepted" in firing["annotations"]["summary"]
        # The worker made no progress since the first leads, so the 20 s window is
        # empty at once: what must pass is the lag timer (5 s) seeing the lag grow, then
        # the rule's 5 s `for:`, a few scrapes and evaluations apart.
        assert fired_after < 60, fired_after

        # The lock goes: the worker finishes the backlog and the alert clears.
        stop.set()
        await trickle
        await blocker.execute("ROLLBACK")
        before = prometheus.value(progress) or 0
        await until("progress resumes", lambda: (prometheus.value(progress) or 0) > before)
        await until("the lag is back to 0", lambda: prometheus.value(lag) == 0)
        await until("the alert clears", lambda: not matching(prometheus.alerts(), STALLED))
        # Every lead finished once, the ones held through the stall included.
        await until("every lead counted", lambda: prometheus.value(progress) == leads.sent)
    finally:
        stop.set()
        if trickle is not None:
            await asyncio.gather(trickle, return_exceptions=True)
        await blocker.close()
        await producer.stop()
    print(
        f"stall alert fired {fired_after:.1f} s after the lock; "
        f"{leads.sent} leads; test body {time.monotonic() - started:.1f} s"
    )
