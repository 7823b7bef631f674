"""Poison records on a real worker: the metrics service fed, on one partition, an
undecodable record and a record that decodes but that PostgreSQL refuses (an event id
with U+0000, which no text column can store) between good ones. Both land on
``metrics.dead-letter`` with their original bytes and the reason, the worker stays up
(same process), the records after them are counted, and ``/metrics`` shows both;
``leadloop dead-letters replay`` re-feeds one to its source topic."""

from __future__ import annotations

import asyncio
import json
import time
import urllib.request
from pathlib import Path

import pytest
from aiokafka import AIOKafkaProducer
from prometheus_client.parser import text_string_to_metric_families
from tests.support.checker import read_topic
from tests.support.ports import free_port_base
from tests.support.processes import ServiceGroup, leadloop, service_env

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

pytestmark = pytest.mark.e2e


def outcome(n: int, event_id: str | None = None) -> bytes:
    return json.dumps(
        {
            "event_id": event_id or f"outcome-{n}",
            "occurred_at": "2026-05-04T10:00:00+00:00",
            "source": "web_form",
            "outcome": "accepted",
            "lead_id": f"lead-{n}",
            "raw_partition": 0,
            "raw_offset": n,
        }
    ).encode()


def scrape(group: ServiceGroup) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    with urllib.request.urlopen(group.url("metrics", "/metrics"), timeout=5) as r:
        text = r.read().decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def dead_letters(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[str, float]:
    return {
        dict(labels)["reason"]: v
        for (name, labels), v in samples.items()
        if name == "leadloop_dead_letters_total" and dict(labels)["service"] == "metrics"
    }


async def test_a_poison_record_and_an_undecodable_one_are_parked_and_the_partition_moves_on(
    database_url: str,
    kafka_settings: KafkaSettings,
    producer: AIOKafkaProducer,
    tmp_path: Path,
) -> None:
    env = service_env(
        database_url,
        kafka_settings.bootstrap_servers,
        kafka_settings.topic_prefix,
        tmp_path / "data",
        LEADLOOP_KAFKA__POISON_ATTEMPTS="2",
    )
    group = ServiceGroup(env=env, port_base=free_port_base(), log_dir=tmp_path)
    group.start("metrics")
    try:
        await asyncio.to_thread(group.wait_ready, "metrics")
        pid = group.procs["metrics"].pid
        assert dead_letters(await asyncio.to_thread(scrape, group)) == {
            "processing_failed": 0.0,
            "undecodable": 0.0,
        }
        topic = qualified("ingest.outcomes", kafka_settings.topic_prefix)
        poison = outcome(2, event_id="outcome-\u00002")
        records = [outcome(1), b"{not json", poison, outcome(3), outcome(4)]
        offsets = []
        for value in records:
            meta = await producer.send_and_wait(topic, value, key=b"web_form", partition=0)
            offsets.append(meta.offset)

        received = 0.0
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            samples = await asyncio.to_thread(scrape, group)
            received = samples.get(
                ("leadloop_leads_received_total", (("source", "web_form"),)), 0.0
            )
            if received >= 3 and sum(dead_letters(samples).values()) >= 2:
                break
            assert group.alive("metrics"), group.log("metrics")
            await asyncio.sleep(0.5)
        assert received == 3.0, group.log("metrics")
        assert dead_letters(samples) == {"processing_failed": 1.0, "undecodable": 1.0}
        assert group.alive("metrics")
        assert group.procs["metrics"].pid == pid

        parked = sorted(
            await read_topic(kafka_settings, "metrics.dead-letter", within=60),
            key=lambda r: int(dict(r.headers)["source-offset"]),
        )
        assert [(r.key, r.value) for r in parked] == [
            (b"web_form", b"{not json"),
            (b"web_form", poison),
        ]
        undecodable, failed = (dict(r.headers) for r in parked)
        assert undecodable["reject-reason"] == b"undecodable"
        assert undecodable["reject-detail"].startswith(b"not a ingest.outcomes event")
        assert undecodable["reject-attempts"] == b"1"
        assert failed["reject-reason"] == b"processing_failed"
        # The type and SQLSTATE only: never the value PostgreSQL quoted.
        assert failed["reject-detail"].startswith(b"CharacterNotInRepertoireError sqlstate=22021")
        assert failed["reject-attempts"] == b"2"
        for headers, offset in ((undecodable, offsets[1]), (failed, offsets[2])):
            assert headers["source-topic"] == b"ingest.outcomes"
            assert headers["source-partition"] == b"0"
            assert headers["source-offset"] == str(offset).encode()
            assert headers["reject-service"] == b"metrics"

        # The replay command lists both (never a value) and re-feeds one by its position;
        # still undecodable, it is parked again.
        listed = await asyncio.to_thread(
            leadloop, "dead-letters", "list", "--service", "metrics", env=env
        )
        assert listed.returncode == 0, listed.stderr
        assert "2 dead letter(s)" in listed.stdout
        assert "not json" not in listed.stdout
        first = f"{parked[0].partition}:{parked[0].offset}"
        replayed = await asyncio.to_thread(
            leadloop, "dead-letters", "replay", "--service", "metrics", "--offset", first, env=env
        )
        assert replayed.returncode == 0, replayed.stderr
        assert "1 dead letter(s) replayed" in replayed.stdout
        again = [
            r
            for r in await read_topic(kafka_settings, "ingest.outcomes", within=60)
            if ("replayed-from", f"metrics.dead-letter:{first}".encode()) in r.headers
        ]
        assert [r.value for r in again] == [b"{not json"]
        deadline = time.monotonic() + 60
        while dead_letters(samples)["undecodable"] < 2 and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            samples = await asyncio.to_thread(scrape, group)
        assert dead_letters(samples) == {"processing_failed": 1.0, "undecodable": 2.0}
        assert group.procs["metrics"].pid == pid
    finally:
        codes = group.stop()
    assert codes == {"metrics": 0}, group.log("metrics")
