"""Kafka helpers for tests that observe topics on the real broker."""

from __future__ import annotations

import socket
import time
import uuid

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

__all__ = ["collect", "free_port_base"]


def free_port_base() -> int:
    """A base such that base+1..base+4 are free on loopback."""
    for _ in range(50):
        base = 20000 + (uuid.uuid4().int % 4000) * 10
        try:
            for offset in range(1, 5):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
    raise RuntimeError("no free port range")


async def collect(
    kafka: KafkaSettings, topic: str, want: int, within: float = 60
) -> list[ConsumerRecord[bytes, bytes]]:
    """Read ``topic`` from the beginning until ``want`` records arrived (or time out)."""
    consumer = AIOKafkaConsumer(
        qualified(topic, kafka.topic_prefix),
        bootstrap_servers=kafka.bootstrap_servers,
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
        batch = await consumer.getmany(timeout_ms=1000)
        for records in batch.values():
            got.extend(records)
    finally:
        await consumer.stop()
    return got
