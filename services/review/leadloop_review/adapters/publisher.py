"""Announcements to Kafka (``review.published``): an idempotent aiokafka producer with
``acks=all``, started on the first announcement (a run with nothing to announce never
connects) and stopped by ``close``. Every failure to get the acknowledgement becomes
:class:`~leadloop_review.ports.PublishFailed`."""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from leadloop.events import ReviewPublished
from leadloop.settings import KafkaSettings
from leadloop.topics import by_name, qualified
from leadloop_review.ports import PublishFailed

__all__ = ["KafkaPublisher"]

_TOPIC = by_name(ReviewPublished.topic).name


class KafkaPublisher:
    """A :class:`~leadloop_review.ports.Publisher` on Kafka."""

    def __init__(self, kafka: KafkaSettings, *, timeout_s: float = 30.0) -> None:
        self._kafka = kafka
        self._timeout_s = timeout_s
        self._producer: AIOKafkaProducer | None = None

    async def publish(self, event: ReviewPublished) -> None:
        try:
            async with asyncio.timeout(self._timeout_s):
                producer = await self._started()
                # Key: the period label, so every announcement of a period stays in order.
                await producer.send_and_wait(
                    qualified(_TOPIC, self._kafka.topic_prefix),
                    event.model_dump_json().encode(),
                    key=event.period.encode(),
                )
        except (KafkaError, OSError, TimeoutError) as exc:
            raise PublishFailed(f"{type(exc).__name__}: {exc}") from exc

    async def close(self) -> None:
        if self._producer is not None:
            producer, self._producer = self._producer, None
            await producer.stop()

    async def _started(self) -> AIOKafkaProducer:
        if self._producer is None:
            producer = AIOKafkaProducer(
                request_timeout_ms=int(self._timeout_s * 1000),
                **self._kafka.producer_kwargs(),
            )
            try:
                await producer.start()
            except BaseException:
                await producer.stop()
                raise
            self._producer = producer
        return self._producer
