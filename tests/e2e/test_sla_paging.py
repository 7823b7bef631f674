"""On-call paging end to end: the sla-monitor pushes page_oncall escalations to the real
Alertmanager (Debian's prometheus-alertmanager, started by deploy/alertmanager/am.sh)
whose default receiver posts to the chat webhook sink; a late touch resolves the page.
Alertmanager down for a minute when the page is due: it is delivered once it is back.

Each test runs its own Alertmanager (own port and data directory) and sink, so the
tests never touch the stack's instance on 19094.
"""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.fakes.chat_sink import ChatSink
from tests.support.kafka import collect, send_json
from tests.support.ports import free_ports
from tests.support.processes import ROOT, ServiceGroup
from tests.support.stack import sla_monitor

from leadloop.settings import KafkaSettings

pytestmark = pytest.mark.e2e

AM_SCRIPT = ROOT / "deploy/alertmanager/am.sh"
POLICY = """
policies:
  - policy_id: fr-page
    kind: first_response
    limit_seconds: 2
    ladder:
      - {level: 1, after_seconds: 0, action: page_oncall}
alerting:
  actions: [page_oncall]
  retry_base_seconds: 0.5
  retry_max_seconds: 2
"""


@dataclass
class Alertmanager:
    env: dict[str, str]
    port: int

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def run(self, command: str) -> None:
        subprocess.run(
            [str(AM_SCRIPT), command], env=self.env, check=True, capture_output=True, timeout=60
        )

    def alerts(self) -> list[dict[str, Any]]:
        with urllib.request.urlopen(self.url + "/api/v2/alerts", timeout=5) as r:
            alerts: list[dict[str, Any]] = json.loads(r.read())
        return alerts

    def post(self, alerts: list[dict[str, Any]]) -> None:
        req = urllib.request.Request(
            self.url + "/api/v2/alerts",
            data=json.dumps(alerts).encode(),
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            assert r.status == 200


@pytest.fixture
def sink() -> Iterator[ChatSink]:
    s = ChatSink(port=0).start()
    yield s
    s.stop()


@pytest.fixture
def alertmanager(tmp_path: Path, sink: ChatSink) -> Iterator[Alertmanager]:
    env = {
        **os.environ,
        "LEADLOOP_AM_PORT": str(free_ports(1)[0]),
        "LEADLOOP_AM_DIR": str(tmp_path / "alertmanager"),
        "LEADLOOP_AM_WEBHOOK": sink.url("/alerts"),
        "LEADLOOP_AM_GROUP_WAIT": "1s",
        "LEADLOOP_AM_GROUP_INTERVAL": "1s",
    }
    am = Alertmanager(env=env, port=int(env["LEADLOOP_AM_PORT"]))
    yield am
    am.run("stop")


@pytest.fixture
def sla(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path, alertmanager: Alertmanager
) -> Iterator[ServiceGroup]:
    with sla_monitor(
        database_url,
        kafka_settings,
        tmp_path,
        POLICY,
        LEADLOOP_ALERTMANAGER_URL=alertmanager.url,
        LEADLOOP_ALERT_POLL_SECONDS="0.2",
    ) as group:
        yield group


async def assign(p: AIOKafkaProducer, kafka: KafkaSettings, lead: str) -> None:
    when = datetime.now(UTC).isoformat()
    await send_json(
        p,
        kafka,
        "leads.assigned",
        {
            "event_id": str(uuid.uuid4()),
            "occurred_at": when,
            "assignment_id": str(uuid.uuid4()),
            "lead_id": lead,
            "owner_id": "rep-a",
            "team_id": "north",
            "rule_id": "r1",
            "rule_version": "1",
            "strategy": "round_robin",
            "kind": "initial",
            "reason": "test",
            "lead_occurred_at": when,
            "assigned_at": when,
            "priority": "hot",
        },
    )


async def touch(p: AIOKafkaProducer, kafka: KafkaSettings, lead: str) -> None:
    body = {
        "event_id": str(uuid.uuid4()),
        "lead_id": lead,
        "rep_id": "rep-a",
        "kind": "call",
        "occurred_at": datetime.now(UTC).isoformat(),
    }
    await send_json(p, kafka, "crm.activities", body)


def notifications(sink: ChatSink, lead: str) -> list[tuple[str, str]]:
    """(notification status, alert status) for every alert of ``lead`` the sink got."""
    return [
        (entry["body"]["status"], alert["status"])
        for entry in sink.received()
        for alert in entry["body"].get("alerts", [])
        if alert["labels"].get("lead_id") == lead
    ]


async def wait_for(sink: ChatSink, lead: str, want: list[tuple[str, str]], within: float) -> None:
    deadline = time.monotonic() + within
    while time.monotonic() < deadline:
        if notifications(sink, lead) == want:
            break
        await asyncio.sleep(0.2)
    assert notifications(sink, lead) == want


async def test_a_breach_pages_through_alertmanager_and_a_late_touch_resolves_it(
    alertmanager: Alertmanager,
    sla: ServiceGroup,
    sink: ChatSink,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    database_url: str,
) -> None:
    alertmanager.run("start")
    await assign(producer, kafka_settings, "page-1")
    await wait_for(sink, "page-1", [("firing", "firing")], within=30)
    (entry,) = [e for e in sink.received() if e["body"]["status"] == "firing"]
    alert = entry["body"]["alerts"][0]
    assert alert["labels"]["alertname"] == "LeadSlaEscalation"
    assert (alert["labels"]["team"], alert["labels"]["kind"]) == ("north", "first_response")
    assert alert["labels"]["action"] == "page_oncall"
    assert "page-1" in entry["messages"]["wecom"]["markdown"]["content"]

    # Alertmanager deduplicates: the same alert sent again (a redelivery) is one alert
    # and no second notification.
    (am_alert,) = [a for a in alertmanager.alerts() if a["labels"]["lead_id"] == "page-1"]
    alertmanager.post([{k: am_alert[k] for k in ("labels", "annotations", "startsAt", "endsAt")}])
    await asyncio.sleep(3)
    assert len([a for a in alertmanager.alerts() if a["labels"]["lead_id"] == "page-1"]) == 1
    assert notifications(sink, "page-1") == [("firing", "firing")]

    await touch(producer, kafka_settings, "page-1")
    await wait_for(sink, "page-1", [("firing", "firing"), ("resolved", "resolved")], within=30)
    steps = [json.loads(r.value) for r in await collect(kafka_settings, "sla.escalations", 2)]
    assert [s["status"] for s in steps] == ["firing", "resolved"]
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT status, delivered_at IS NOT NULL AS done FROM sla_alert_outbox ORDER BY seq"
        )
    finally:
        await conn.close()
    assert [tuple(r) for r in rows] == [("firing", True), ("resolved", True)]


async def test_a_page_due_while_alertmanager_is_down_arrives_once_it_is_back(
    alertmanager: Alertmanager,
    sla: ServiceGroup,
    sink: ChatSink,
    producer: AIOKafkaProducer,
    kafka_settings: KafkaSettings,
    database_url: str,
) -> None:
    await assign(producer, kafka_settings, "page-2")
    conn = await asyncpg.connect(database_url)
    try:
        # Alertmanager stays down for a minute after the page fell due; delivery keeps
        # failing and retrying meanwhile.
        deadline = time.monotonic() + 30
        attempts = 0
        while attempts < 1 and time.monotonic() < deadline:
            attempts = await conn.fetchval("SELECT max(attempts) FROM sla_alert_outbox") or 0
            await asyncio.sleep(0.3)
        assert attempts >= 1, "the page never fell due"
        await asyncio.sleep(60)
        attempts = await conn.fetchval("SELECT max(attempts) FROM sla_alert_outbox")
        assert attempts >= 10, f"{attempts} delivery attempts in a minute of outage"
        assert await conn.fetchval("SELECT last_error FROM sla_alert_outbox") is not None
        assert sink.received() == []

        alertmanager.run("start")
        await wait_for(sink, "page-2", [("firing", "firing")], within=30)
        await asyncio.sleep(3)
        assert notifications(sink, "page-2") == [("firing", "firing")], "delivered once"
        row = await conn.fetchrow("SELECT delivered_at, attempts FROM sla_alert_outbox")
        assert row["delivered_at"] is not None
        assert row["attempts"] > attempts
    finally:
        await conn.close()
    assert sla.alive("sla-monitor")
