"""The signed webhook, ``POST /v1/leads/{source}``, on a real ingest process.

Signed requests (leadloop scheme for web_form, Meta-style for lead_ads, a Chinese name
included) are answered 202 and their bytes are on the prefixed ``leads.raw``, untouched,
keyed by ``<source>:<source_lead_id>`` and carrying ``leadloop-source`` and
``received-at``; ingest's own agent then accepts them onto ``leads.accepted``. Every
refused request (bad, missing or stale signature, a source without a secret, too large,
unknown source, not JSON, an invalid lead, another channel's source) leaves nothing on
``leads.raw``.

Signatures are computed here with ``hmac`` directly, as a channel would, not with
ingest's helpers.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from tests.support.kafka import collect
from tests.support.processes import ServiceGroup
from tests.support.stack import running, stack_env

from leadloop.settings import KafkaSettings

pytestmark = pytest.mark.e2e

WEB_FORM_SECRET = "wf-" + uuid.uuid4().hex
LEAD_ADS_SECRET = "la-" + uuid.uuid4().hex


@pytest.fixture
def ingest(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path
) -> Iterator[ServiceGroup]:
    env = stack_env(
        database_url,
        kafka_settings,
        tmp_path,
        LEADLOOP_IDENTITY_PEPPER=uuid.uuid4().hex,
        # wechat is a configured source without a secret: its webhook must refuse.
        LEADLOOP_WEBHOOK_SECRETS=json.dumps(
            {"web_form": WEB_FORM_SECRET, "lead_ads": LEAD_ADS_SECRET}
        ),
    )
    with running(env, tmp_path, "ingest") as group:
        yield group


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session:
        yield session


def leadloop_signed(body: bytes, secret: str, ts: int | None = None) -> dict[str, str]:
    ts = int(time.time()) if ts is None else ts
    mac = hmac.new(secret.encode(), f"{ts}.".encode() + body, hashlib.sha256).hexdigest()
    return {"X-Leadloop-Timestamp": str(ts), "X-Leadloop-Signature": f"sha256={mac}"}


def meta_signed(body: bytes, secret: str) -> dict[str, str]:
    mac = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {"X-Hub-Signature-256": f"sha256={mac}"}


def lead(source: str, source_lead_id: str, **fields: object) -> bytes:
    record = {"source": source, "source_lead_id": source_lead_id, **fields}
    return json.dumps(record, ensure_ascii=False).encode("utf-8")


async def post(
    http: aiohttp.ClientSession,
    group: ServiceGroup,
    source: str,
    body: bytes | AsyncIterator[bytes],
    headers: dict[str, str],
) -> tuple[int, dict[str, object]]:
    async with http.post(
        group.url("ingest", f"/v1/leads/{source}"),
        data=body,
        headers={"Content-Type": "application/json", **headers},
    ) as response:
        return response.status, await response.json(content_type=None)


async def test_signed_webhook_requests_reach_leads_raw_and_flow_on(
    ingest: ServiceGroup, kafka_settings: KafkaSettings, http: aiohttp.ClientSession
) -> None:
    web_form = lead("web_form", "wh-1", email="ann@example.com", country="US")
    chinese = lead("web_form", "wh-cn", name="张伟", phone="+86 139 1234 5678", city="上海")
    lead_ads = lead("lead_ads", "la-1", email="bo@example.com", campaign="spring")
    accepted = {
        web_form: ("web_form", leadloop_signed(web_form, WEB_FORM_SECRET)),
        chinese: ("web_form", leadloop_signed(chinese, WEB_FORM_SECRET)),
        lead_ads: ("lead_ads", meta_signed(lead_ads, LEAD_ADS_SECRET)),
    }
    for body, (source, headers) in accepted.items():
        assert await post(http, ingest, source, body, headers) == (202, {"status": "accepted"})

    # --- refused: nothing of these may reach leads.raw -------------------------------
    refused = lead("web_form", "refused-1", email="eve@example.com")
    signed = leadloop_signed(refused, WEB_FORM_SECRET)
    tampered = refused.replace(b"eve@", b"mallory@")
    wrong_mac = {**signed, "X-Leadloop-Signature": "sha256=" + "0" * 64}
    old = int((datetime.now(UTC) - timedelta(minutes=10)).timestamp())
    future = int((datetime.now(UTC) + timedelta(minutes=10)).timestamp())
    ads_refused = lead("lead_ads", "refused-2", email="eve@example.com")
    not_json = b'{"source": "web_form", "source_lead_id": '
    other_source = lead("lead_ads", "refused-3", email="eve@example.com")
    no_contact = lead("web_form", "refused-5", name="Nobody")
    big = lead("web_form", "refused-big", email="eve@example.com", message="x" * 70 * 1024)

    async def chunked(data: bytes) -> AsyncIterator[bytes]:
        for i in range(0, len(data), 8192):
            yield data[i : i + 8192]

    cases: list[tuple[str, str, bytes | AsyncIterator[bytes], dict[str, str], int, str]] = [
        ("tampered body", "web_form", tampered, signed, 401, "bad_signature"),
        ("wrong mac", "web_form", refused, wrong_mac, 401, "bad_signature"),
        (
            "another channel's secret",
            "web_form",
            refused,
            leadloop_signed(refused, LEAD_ADS_SECRET),
            401,
            "bad_signature",
        ),
        ("no signature", "web_form", refused, {}, 401, "missing_signature"),
        (
            "stale (past)",
            "web_form",
            refused,
            leadloop_signed(refused, WEB_FORM_SECRET, old),
            401,
            "stale_timestamp",
        ),
        (
            "stale (future)",
            "web_form",
            refused,
            leadloop_signed(refused, WEB_FORM_SECRET, future),
            401,
            "stale_timestamp",
        ),
        (
            "leadloop scheme on a meta source",
            "lead_ads",
            ads_refused,
            leadloop_signed(ads_refused, LEAD_ADS_SECRET),
            401,
            "missing_signature",
        ),
        (
            "meta signature, wrong secret",
            "lead_ads",
            ads_refused,
            meta_signed(ads_refused, WEB_FORM_SECRET),
            401,
            "bad_signature",
        ),
        (
            "source without a secret",
            "wechat",
            lead("wechat", "refused-4", phone="13912345678"),
            {},
            401,
            "unknown_source",
        ),
        ("70 KiB", "web_form", big, leadloop_signed(big, WEB_FORM_SECRET), 413, "too_large"),
        (
            "70 KiB chunked",
            "web_form",
            chunked(big),
            leadloop_signed(big, WEB_FORM_SECRET),
            413,
            "too_large",
        ),
        ("unknown source", "nope", refused, signed, 404, "unknown_source"),
        (
            "not JSON",
            "web_form",
            not_json,
            leadloop_signed(not_json, WEB_FORM_SECRET),
            422,
            "invalid_json",
        ),
        (
            "no contact",
            "web_form",
            no_contact,
            leadloop_signed(no_contact, WEB_FORM_SECRET),
            422,
            "missing_contact",
        ),
        (
            "another channel's source in the body",
            "web_form",
            other_source,
            leadloop_signed(other_source, WEB_FORM_SECRET),
            422,
            "source_mismatch",
        ),
    ]
    for what, source, payload, signature, status, error in cases:
        got = await post(http, ingest, source, payload, signature)
        assert got == (status, {"error": error}), what

    # --- leads.raw holds exactly the accepted bytes, keyed, with the headers -----------
    before = datetime.now(UTC)
    raw = await collect(kafka_settings, "leads.raw", len(accepted), linger_ms=1500)
    assert sorted(r.value for r in raw) == sorted(accepted), "refused requests must not publish"
    for record in raw:
        source = accepted[record.value][0]
        decoded = json.loads(record.value)
        assert record.key == f"{source}:{decoded['source_lead_id']}".encode()
        record_headers = dict(record.headers)
        assert record_headers["leadloop-source"] == source.encode()
        received_at = datetime.fromisoformat(record_headers["received-at"].decode())
        assert received_at.tzinfo is not None
        assert timedelta(0) <= before - received_at < timedelta(minutes=2)
    # Redeliveries of one lead share a key, hence a partition.
    assert len({r.key for r in raw}) == 3

    # --- ingest's agent takes it from there ------------------------------------------
    out = await collect(kafka_settings, "leads.accepted", len(accepted), linger_ms=1500)
    events = [json.loads(r.value) for r in out]
    assert sorted((e["source"], e["source_lead_id"]) for e in events) == [
        ("lead_ads", "la-1"),
        ("web_form", "wh-1"),
        ("web_form", "wh-cn"),
    ]
    assert not any("张伟" in r.value.decode() for r in out), "leads.accepted carries no PII"
