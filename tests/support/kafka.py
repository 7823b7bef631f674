"""Kafka helpers for tests that observe topics on the real broker."""

from __future__ import annotations

import json
import time
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord
from tests.support.ports import free_port_base

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

__all__ = ["collect", "free_port_base", "group_members", "send_json"]


async def collect(
    kafka: KafkaSettings, topic: str, want: int, within: float = 60, linger_ms: int = 1000
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topic`` from the beginning until ``want`` records arrived (or time out),
    then ``linger_ms`` more."""
    consumer = AIOKafkaConsumer(
        qualified(topic, kafka.topic_prefix),
        **kafka.client_kwargs(),  # PLAINTEXT or SASL_SSL, as the settings say
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    got: list[ConsumerRecord[bytes, bytes]] = []
    deadline = time.monotonic() + within
    try:
        while len(got) < want and time.monotonic() < deadline:
            batch = await consumer.getmany(timeout_ms=500)
            for records in batch.values():
                got.extend(records)
        # Linger briefly: more than expected would be a duplicate effect.
        batch = await consumer.getmany(timeout_ms=linger_ms)
        for records in batch.values():
            got.extend(records)
    finally:
        await consumer.stop()
    return got


async def send_json(
    producer: AIOKafkaProducer, kafka: KafkaSettings, topic: str, body: dict[str, Any]
) -> None:
    """``body`` as JSON on ``topic``, keyed by its lead, as the producing services key it."""
    key = body["lead_id"].encode()
    await producer.send_and_wait(
        qualified(topic, kafka.topic_prefix), json.dumps(body).encode(), key=key
    )


async def group_members(kafka: KafkaSettings, group_id: str) -> tuple[str, frozenset[str]]:
    """The consumer group's state and the member ids in it, as the broker describes it
    (``DescribeGroups``): what a test observes instead of sleeping through a rebalance."""
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        (described,) = await admin.describe_consumer_groups([group_id])
        (group,) = described.to_object()["groups"]
        return str(group["state"]), frozenset(str(m["member_id"]) for m in group["members"])
    finally:
        await admin.close()
