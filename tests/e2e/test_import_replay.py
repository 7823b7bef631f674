"""The ingest operator tools as an operator runs them, against the real broker.

``import-csv``: a 2,000-row trade-show file with 50 bad rows puts exactly 1,950 records
on ``leads.raw`` and a 50-row report with reasons. ``replay``: of rejects planted on
``leads.rejected``, exactly those with the chosen reasons and inside the time range
come back on ``leads.raw``, byte for byte, with ``replayed-from``.
"""

from __future__ import annotations

import asyncio
import csv
import json
import os
import sys
import uuid
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.structs import ConsumerRecord

from leadloop.settings import KafkaSettings
from leadloop.topics import by_name, qualified
from leadloop_ingest.domain.erasure import subject_for
from leadloop_ingest.domain.validation import Limits, ValidLead, validate

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
LIMITS = Limits(
    sources=frozenset({"trade_show_csv"}), default_phone_region={"trade_show_csv": "CN"}
)


async def run_tool(kafka: KafkaSettings, *args: str, **extra_env: str) -> tuple[int, str]:
    """``python -m leadloop_ingest.tools ARGS`` with the test's broker and topic prefix."""
    env = {
        **os.environ,
        "LEADLOOP_KAFKA__BOOTSTRAP_SERVERS": kafka.bootstrap_servers,
        "LEADLOOP_KAFKA__TOPIC_PREFIX": kafka.topic_prefix,
        "COLUMNS": "200",  # rich tables: one line per row
        **extra_env,
    }
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "leadloop_ingest.tools",
        *args,
        cwd=REPO,  # config/channels.yaml is found relative to the working directory
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(proc.communicate(), timeout=180)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


async def read_topic(kafka: KafkaSettings, name: str) -> list[ConsumerRecord[bytes, bytes]]:
    """Everything on a topic now, from the beginning to the current end offsets."""
    topic = qualified(name, kafka.topic_prefix)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.bootstrap_servers, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(by_name(name).partitions)]
        consumer.assign(tps)
        ends = await consumer.end_offsets(tps)
        for tp, start in (await consumer.beginning_offsets(tps)).items():
            consumer.seek(tp, start)
        records: list[ConsumerRecord[bytes, bytes]] = []
        while any([await consumer.position(tp) < ends[tp] for tp in tps]):
            batches = await consumer.getmany(timeout_ms=1000)
            for tp, batch in batches.items():
                records += [r for r in batch if r.offset < ends[tp]]
        return records
    finally:
        await consumer.stop()


# --------------------------------------------------------------------------------- import

BAD_ROWS = {
    # every 40th data row is bad, cycling through three faults
    "missing_contact": ("", ""),
    "invalid_email": ("not-an-email", ""),
    "invalid_phone": ("", "12345"),
}


def write_trade_show_file(path: Path) -> dict[int, str]:
    """2,000 rows, 50 of them bad; returns {row number: expected reason} of the bad ones.
    Written as Chinese Excel does: Chinese headers and a byte-order mark."""
    expected: dict[int, str] = {}
    reasons = list(BAD_ROWS)
    with path.open("w", encoding="utf-8-sig", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["姓名", "邮箱", "手机", "公司", "城市", "展位号"])
        for i in range(2000):
            row_number = i + 2  # the header is row 1
            email, phone = f"visitor{i}@example.com", f"139{i:08d}"
            if i % 40 == 7:
                reason = reasons[len(expected) % len(reasons)]
                email, phone = BAD_ROWS[reason]
                expected[row_number] = reason
            writer.writerow([f"访客{i}", email, phone, "星云科技", "上海", f"A-{i % 90}"])
    assert len(expected) == 50
    return expected


async def test_import_csv_sends_valid_rows_and_reports_the_rest(
    kafka_settings: KafkaSettings, tmp_path: Path
) -> None:
    source_file = tmp_path / "expo-2025-shanghai.csv"
    expected_rejects = write_trade_show_file(source_file)
    report = tmp_path / "rejected.csv"

    code, out = await run_tool(
        kafka_settings,
        "import-csv",
        str(source_file),
        "--source",
        "trade_show_csv",
        "--report",
        str(report),
    )
    assert code == 0, out
    assert "visitor" not in out  # counts, never row contents

    records = await read_topic(kafka_settings, "leads.raw")
    assert len(records) == 1950
    keys = {r.key for r in records}
    assert len(keys) == 1950
    for r in records:
        assert r.key is not None
        assert r.value is not None
        assert dict(r.headers)["leadloop-source"] == b"trade_show_csv"
        verdict = validate(r.value, LIMITS)
        assert isinstance(verdict, ValidLead)
        assert r.key == f"trade_show_csv:{verdict.raw.source_lead_id}".encode()
        assert str(verdict.raw.attributes["展位号"]).startswith("A-")

    with report.open(encoding="utf-8-sig", newline="") as f:
        header, *rows = list(csv.reader(f))
    assert header[:3] == ["row", "reason", "detail"]
    assert header[3:] == ["姓名", "邮箱", "手机", "公司", "城市", "展位号"]
    assert {int(row[0]): row[1] for row in rows} == expected_rejects
    assert all(row[2] for row in rows)  # a detail for every reject
    reported = Counter(row[1] for row in rows)
    assert reported == Counter(expected_rejects.values())
    for reason, n in reported.items():
        assert reason in out
        assert str(n) in out


# --------------------------------------------------------------------------------- replay


def replay_env(database_url: str) -> dict[str, str]:
    """What replay needs beyond Kafka: the erasures to withhold, and the pepper."""
    return {
        "LEADLOOP_INGEST_DATABASE_URL": database_url,
        "LEADLOOP_IDENTITY_PEPPER": "replay-pepper-" + uuid.uuid4().hex,
    }


async def test_replay_re_feeds_exactly_the_selected_rejects(
    kafka_settings: KafkaSettings, database_url: str
) -> None:
    rejected_topic = qualified("leads.rejected", kafka_settings.topic_prefix)
    t0 = datetime(2025, 3, 3, 1, 0, tzinfo=UTC)
    since, until = t0, t0 + timedelta(hours=1)

    def reject(reason: str | None, at: datetime, **extra: bytes) -> list[tuple[str, bytes]]:
        headers = [("reject-detail", b"phone: not a valid number")]
        if reason is not None:
            headers.append(("reject-reason", reason.encode()))
        headers.append(("rejected-at", at.isoformat().encode()))
        return headers + list(extra.items())

    planted: dict[str, tuple[bytes | None, bytes, list[tuple[str, bytes]]]] = {
        # name: (key, value, headers)
        "phone_in_range": (
            b"wechat:wx-1",
            json.dumps({"openid": "o-1", "purePhoneNumber": "1380013"}).encode(),
            [*reject("invalid_phone", t0 + timedelta(minutes=5)), ("leadloop-source", b"wechat")],
        ),
        "phone_in_range_no_key": (
            None,
            b'{"source": "web_form", "source_lead_id": "wf-9", "phone": "12"}',
            reject("invalid_phone", t0),  # since is inclusive
        ),
        "contact_in_range": (
            b"referral:r-1",
            b'{"source": "referral", "source_lead_id": "r-1"}',
            reject("missing_contact", t0 + timedelta(minutes=59)),
        ),
        "phone_before": (b"k-before", b"{}", reject("invalid_phone", t0 - timedelta(seconds=1))),
        "phone_at_until": (b"k-until", b"{}", reject("invalid_phone", until)),  # exclusive
        "other_reason": (b"k-email", b"{}", reject("invalid_email", t0 + timedelta(minutes=1))),
        "no_reason": (b"k-none", b"{}", reject(None, t0 + timedelta(minutes=1))),
        "bad_time": (b"k-time", b"{}", [("reject-reason", b"invalid_phone"),
                                        ("rejected-at", b"yesterday")]),
    }  # fmt: skip
    positions: dict[str, str] = {}
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for name, (key, value, headers) in planted.items():
            meta = await producer.send_and_wait(rejected_topic, value, key=key, headers=headers)
            positions[name] = f"{rejected_topic}/{meta.partition}/{meta.offset}"
    finally:
        await producer.stop()
    selection = (
        "replay",
        "--reason",
        "invalid_phone",
        "--reason",
        "missing_contact",
        "--since",
        since.isoformat(),
        "--until",
        until.isoformat().replace("+00:00", "Z"),
    )

    env = replay_env(database_url)
    code, out = await run_tool(kafka_settings, *selection, "--dry-run", **env)
    assert code == 0, out
    assert "dry run" in out
    assert await read_topic(kafka_settings, "leads.raw") == []

    code, out = await run_tool(kafka_settings, *selection, **env)
    assert code == 0, out
    replayed = await read_topic(kafka_settings, "leads.raw")
    selected = ("phone_in_range", "phone_in_range_no_key", "contact_in_range")
    by_origin = {dict(r.headers)["replayed-from"].decode(): r for r in replayed}
    assert len(replayed) == len(selected)
    assert set(by_origin) == {positions[name] for name in selected}
    for name in selected:
        key, value, headers = planted[name]
        record = by_origin[positions[name]]
        assert record.key == key
        assert record.value == value  # the original bytes, untouched
        source = dict(headers).get("leadloop-source")
        assert dict(record.headers).get("leadloop-source") == source
    assert "invalid_phone" in out
    assert "missing_contact" in out
    assert "invalid_email" not in out


async def test_replay_refuses_bad_signature_rejects(kafka_settings: KafkaSettings) -> None:
    code, out = await run_tool(kafka_settings, "replay", "--reason", "bad_signature")
    assert code == 2
    assert "not authenticated" in out


async def test_replay_withholds_the_rejects_of_an_erased_person(
    kafka_settings: KafkaSettings, database_url: str
) -> None:
    """An erased person's rejected records stay on leads.rejected for its retention; the
    replay must not bring them back, in any channel's shape, and refuses to run at all
    when it cannot read the erasures."""
    pepper = "replay-pepper-" + uuid.uuid4().hex
    rejected_topic = qualified("leads.rejected", kafka_settings.topic_prefix)
    at = datetime.now(UTC).isoformat().encode()
    headers = [("reject-reason", b"invalid_phone"), ("rejected-at", at)]
    erased_form = b'{"source": "web_form", "source_lead_id": "e-1", "email": "Gone@Example.com"}'
    erased_wechat = json.dumps({"openid": "o-9", "purePhoneNumber": "13800138000"}).encode()
    kept = b'{"source": "web_form", "source_lead_id": "k-1", "email": "stays@example.com"}'
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(rejected_topic, erased_form, headers=headers)
        await producer.send_and_wait(
            rejected_topic, erased_wechat, headers=[*headers, ("leadloop-source", b"wechat")]
        )
        await producer.send_and_wait(rejected_topic, kept, headers=headers)
    finally:
        await producer.stop()
    # Two erasures, as `erase` records them (keyed HMACs of the erasure domain).
    email_key, _ = subject_for("gone@example.com", None).record_keys(pepper.encode())
    _, phone_key = subject_for(None, "+86 138 0013 8000").record_keys(pepper.encode())
    conn = await asyncpg.connect(database_url)
    try:
        await conn.executemany(
            "INSERT INTO erasures (subject_email_key, subject_phone_key, requested_at,"
            " rows_erased, leads_erased) VALUES ($1, $2, now(), '{}', 0)",
            [(email_key, None), (None, phone_key)],
        )
    finally:
        await conn.close()
    env = {**replay_env(database_url), "LEADLOOP_IDENTITY_PEPPER": pepper}

    code, out = await run_tool(kafka_settings, "replay", "--reason", "invalid_phone", **env)
    assert code == 0, out
    replayed = await read_topic(kafka_settings, "leads.raw")
    assert [r.value for r in replayed] == [kept]
    total = next(line for line in out.splitlines() if "total" in line)
    assert [c.strip() for c in total.split("│")[1:5]] == ["total", "3", "2", "1"], out

    unreachable = {**env, "LEADLOOP_INGEST_DATABASE_URL": "postgresql://nobody@127.0.0.1:1/x"}
    code, out = await run_tool(kafka_settings, "replay", "--reason", "invalid_phone", **unreachable)
    assert code == 2, out
    assert "cannot read the erasures" in out
    assert len(await read_topic(kafka_settings, "leads.raw")) == 1
