"""Thousands of hostile records through the real ingest: malformed, oversized, wrongly
typed, deeply nested, invalid UTF-8, injection-laden. None crashes it or blocks its
partition; every one ends as exactly one outcome; each reject is on leads.rejected with
the reason the pure validation gives it, and every valid record among them is accepted.
"""

from __future__ import annotations

import asyncio
import json
import os
import time
import uuid
from collections import Counter
from collections.abc import Iterator
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from tests.conftest import running_stack
from tests.support.kafka import collect
from tests.support.processes import ROOT
from tests.support.stack import create_database, drop_database, running, stack_env

from leadloop.kafka import create_topics
from leadloop.settings import KafkaSettings
from leadloop.topics import qualified
from leadloop_ingest.adapters.channels_file import load_channels
from leadloop_ingest.domain.validation import Limits, Rejection, validate

pytestmark = pytest.mark.e2e

RECORDS_PER_EXAMPLE = 600
#: Hypothesis examples of that many records each (``make soak`` runs 12).
EXAMPLES = int(os.environ.get("LEADLOOP_FUZZ_EXAMPLES", "2"))

CHANNELS = load_channels(ROOT / "config/channels.yaml")
LIMITS = Limits(
    sources=frozenset(CHANNELS.channels),
    default_phone_region=CHANNELS.phone_regions(),
    channels=CHANNELS,
)

INJECTIONS = (
    "'; DROP TABLE leads; --",
    "<script>alert(1)</script>",
    "${jndi:ldap://127.0.0.1/x}",
    "{{7*7}}",
    "\u202eevil",
    "../../etc/passwd",
    "%00",
)
text = st.one_of(st.text(max_size=40), st.sampled_from(INJECTIONS))
scalars = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), text)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4),
    max_leaves=12,
)


@st.composite
def valid_lead(draw: st.DrawFn) -> dict[str, Any]:
    unique = uuid.uuid4().hex[:12]  # a new person each time: no person-level merge
    return {
        "source": draw(st.sampled_from(sorted(CHANNELS.channels))),
        "source_lead_id": f"fz-{unique}",
        "email": f"p{unique}@example.com",
        "name": draw(st.sampled_from(("王伟", "José Núñez", "Zoë", "  李  娜 "))),
        "company": draw(text),
        "country": draw(st.sampled_from(("CN", "US", "DE"))),
    }


@st.composite
def hostile(draw: st.DrawFn) -> bytes:
    base = draw(valid_lead())
    kind = draw(st.integers(0, 9))
    if kind == 0:
        return draw(st.binary(max_size=200))  # arbitrary bytes, mostly invalid UTF-8/JSON
    if kind == 1:
        return json.dumps(draw(json_values)).encode()  # JSON, rarely an object
    if kind == 2:
        field = draw(st.sampled_from(sorted(base)))
        return json.dumps({**base, field: draw(json_values)}).encode()  # wrong types
    if kind == 3:
        return json.dumps({**base, "message": "x" * 70_000}).encode()  # too large
    if kind == 4:
        depth = draw(st.integers(50, 5000))
        return ("[" * depth + "]" * depth).encode()  # deeply nested
    if kind == 5:
        return json.dumps({**base, "attributes": {f"k{i}": i for i in range(51)}}).encode()
    if kind == 6:
        return json.dumps({**base, "email": draw(text), "phone": None}).encode()
    if kind == 7:
        return json.dumps({**base, "email": None, "phone": draw(text)}).encode()
    if kind == 8:
        return json.dumps({**base, "email": None}).encode()  # no contact at all
    return json.dumps(base).encode()  # valid


@pytest.fixture(scope="module")
def fuzz_stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, KafkaSettings]]:
    """One ingest for every example: it must survive all of them in a row."""
    stack = running_stack()
    tmp = tmp_path_factory.mktemp("fuzz")
    kafka = KafkaSettings(
        bootstrap_servers=stack.bootstrap, topic_prefix=f"fz{uuid.uuid4().hex[:8]}."
    )
    url = asyncio.run(create_database(stack.admin_url))
    asyncio.run(create_topics(kafka))
    env = stack_env(url, kafka, tmp, LEADLOOP_CONSECUTIVE_INVALID_LIMIT="0")
    try:
        with running(env, tmp, "ingest", clean_exit=False) as group:
            yield url, kafka
            assert group.alive("ingest"), group.log("ingest")
    finally:
        asyncio.run(drop_database(stack.admin_url, url))


@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
        HealthCheck.function_scoped_fixture,
        # Hundreds of records per example is the point: ingest must survive a flood.
        HealthCheck.large_base_example,
    ],
)
@given(records=st.lists(hostile(), min_size=RECORDS_PER_EXAMPLE, max_size=RECORDS_PER_EXAMPLE))
def test_hostile_records_never_crash_or_block_ingest(
    fuzz_stack: tuple[str, KafkaSettings], records: list[bytes]
) -> None:
    asyncio.run(_run_example(*fuzz_stack, records))


async def _run_example(url: str, kafka: KafkaSettings, records: list[bytes]) -> None:
    conn = await asyncpg.connect(url)
    try:
        before = await conn.fetchval("SELECT count(*) FROM ingest_outcomes")
        producer = AIOKafkaProducer(
            bootstrap_servers=kafka.bootstrap_servers, acks="all", max_request_size=2_000_000
        )
        await producer.start()
        try:
            topic = qualified("leads.raw", kafka.topic_prefix)
            futures = [await producer.send(topic, r, key=b"fuzz") for r in records]
            await asyncio.gather(*futures)
        finally:
            await producer.stop()
        deadline = time.monotonic() + 120
        while await conn.fetchval("SELECT count(*) FROM ingest_outcomes") < before + len(records):
            assert time.monotonic() < deadline, "ingest stopped making progress"
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)
        rows = await conn.fetch(
            "SELECT outcome, reason FROM ingest_outcomes ORDER BY raw_partition, raw_offset "
            "OFFSET $1",
            before,
        )
    finally:
        await conn.close()
    assert len(rows) == len(records), "exactly one outcome per record"
    # One key: one partition, in order — outcome i is record i.
    for record, row in zip(records, rows, strict=True):
        expected = validate(record, LIMITS)
        if isinstance(expected, Rejection):
            assert (row["outcome"], row["reason"]) == ("rejected", expected.reason.value)
        else:
            assert row["outcome"] == "accepted", row
    rejected = Counter(
        dict(r.headers)["reject-reason"].decode()
        for r in await collect(kafka, "leads.rejected", 0, within=2)
    )
    assert sum(rejected.values()) >= sum(1 for r in rows if r["outcome"] == "rejected")
