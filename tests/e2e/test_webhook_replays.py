"""Replay protection on real ingest processes sharing one PostgreSQL: a signed request
accepted by one worker is refused 409 ``replayed`` by another worker behind the same
URL (leadloop scheme and Meta's, which signs no timestamp), counted on ``/metrics``, and
only the first delivery reaches ``leads.raw``; an expired reservation is purged.

Signatures are computed here with ``hmac`` directly, as a channel would.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path

import aiohttp
import asyncpg
import pytest
from tests.support.kafka import collect
from tests.support.processes import ServiceGroup
from tests.support.stack import running, stack_env

from leadloop.settings import KafkaSettings

pytestmark = pytest.mark.e2e

WEB_FORM_SECRET = "wf-" + uuid.uuid4().hex
LEAD_ADS_SECRET = "la-" + uuid.uuid4().hex


@pytest.fixture
def workers(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[tuple[ServiceGroup, ServiceGroup]]:
    env = stack_env(
        database_url,
        kafka_settings,
        tmp_path,
        LEADLOOP_IDENTITY_PEPPER=uuid.uuid4().hex,
        LEADLOOP_WEBHOOK_SECRETS=json.dumps(
            {"web_form": WEB_FORM_SECRET, "lead_ads": LEAD_ADS_SECRET}
        ),
        LEADLOOP_WEBHOOK_REPLAY_PURGE_S="0.5",
    )
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    with (
        running(env, tmp_path / "a", "ingest") as a,
        running(env, tmp_path / "b", "ingest") as b,
    ):
        yield a, b


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


def leadloop_signed(body: bytes, ts: int) -> dict[str, str]:
    mac = hmac.new(WEB_FORM_SECRET.encode(), f"{ts}.".encode() + body, hashlib.sha256)
    return {"X-Leadloop-Timestamp": str(ts), "X-Leadloop-Signature": f"sha256={mac.hexdigest()}"}


def meta_signed(body: bytes) -> dict[str, str]:
    mac = hmac.new(LEAD_ADS_SECRET.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={mac}"}


def lead(source: str, source_lead_id: str) -> bytes:
    return json.dumps(
        {"source": source, "source_lead_id": source_lead_id, "email": "a@b.cn"}
    ).encode()


async def post(
    http: aiohttp.ClientSession,
    group: ServiceGroup,
    source: str,
    body: bytes,
    headers: dict[str, str],
) -> tuple[int, object]:
    async with http.post(
        group.url("ingest", f"/v1/leads/{source}"),
        data=body,
        headers={"Content-Type": "application/json", **headers},
    ) as response:
        return response.status, await response.json(content_type=None)


async def replays_counted(http: aiohttp.ClientSession, group: ServiceGroup) -> dict[str, float]:
    async with http.get(group.url("ingest", "/metrics")) as response:
        text = await response.text()
    counted = {}
    for line in text.splitlines():
        if line.startswith("leadloop_ingest_webhook_replays_total{"):
            labels, value = line.rsplit(" ", 1)
            counted[labels.split('"')[1]] = float(value)
    return counted


async def test_a_replay_to_another_worker_is_refused_and_counted(
    workers: tuple[ServiceGroup, ServiceGroup],
    kafka_settings: KafkaSettings,
    database_url: str,
    http: aiohttp.ClientSession,
) -> None:
    a, b = workers
    now = int(time.time())
    form = lead("web_form", "rp-1")
    form_headers = leadloop_signed(form, now)
    ads = lead("lead_ads", "rp-2")
    ads_headers = meta_signed(ads)

    assert await post(http, a, "web_form", form, form_headers) == (202, {"status": "accepted"})
    assert await post(http, b, "web_form", form, form_headers) == (409, {"error": "replayed"})
    assert await post(http, a, "web_form", form, form_headers) == (409, {"error": "replayed"})
    assert await post(http, b, "lead_ads", ads, ads_headers) == (202, {"status": "accepted"})
    assert await post(http, a, "lead_ads", ads, ads_headers) == (409, {"error": "replayed"})
    # The channel's own resend, signed anew, is not a replay (ingest deduplicates it).
    resent = leadloop_signed(form, now + 1)
    assert await post(http, b, "web_form", form, resent) == (202, {"status": "accepted"})

    assert (await replays_counted(http, a))["lead"] == 2
    assert (await replays_counted(http, b))["lead"] == 1

    raw = await collect(kafka_settings, "leads.raw", 3, linger_ms=1500)
    assert sorted(r.value for r in raw) == sorted([form, ads, form])

    # Meta's reservation lasts the retention; the leadloop one its window, then purged.
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch(
            "SELECT scope, expires_at - reserved_at AS kept FROM webhook_replays"
        )
        scopes = sorted(r["scope"] for r in rows)
        assert scopes == ["lead:lead_ads", "lead:web_form", "lead:web_form"]
        assert max(r["kept"].total_seconds() for r in rows) >= 7 * 24 * 3600
        # Signed at the window's edge: expires within seconds, and a worker purges it.
        edge = lead("web_form", "rp-3")
        edge_headers = leadloop_signed(edge, int(time.time()) - 298)
        assert (await post(http, a, "web_form", edge, edge_headers))[0] == 202
        for _ in range(100):
            left = await conn.fetchval(
                "SELECT count(*) FROM webhook_replays WHERE scope = 'lead:web_form'"
            )
            if left == 2:
                break
            await asyncio.sleep(0.1)
        assert left == 2
    finally:
        await conn.close()
