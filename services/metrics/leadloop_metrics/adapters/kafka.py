"""faust wiring for metrics: one agent over the event topics, and GET /metrics."""

from __future__ import annotations

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from leadloop.kafka import process_or_die
from leadloop.topics import qualified

from leadloop_metrics.handlers import INPUT_TOPICS, MetricsHandler

__all__ = ["register_agents"]


def register_agents(
    app: faust.App,
    handler: MetricsHandler,
    registry: CollectorRegistry,
    *,
    prefix: str,
    batch_size: int,
    within: float,
    refresh_seconds: float,
) -> None:
    inputs = app.topic(
        *(qualified(t, prefix) for t in INPUT_TOPICS),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
    )

    @app.agent(inputs, concurrency=1, name="metrics-events")
    async def count(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(batch_size, within=within):
            batch = [(e.message.topic[len(prefix):], e.message.value or b"") for e in events]
            await process_or_die(handler.handle(batch), what="metrics_batch")

    @app.timer(interval=refresh_seconds)
    async def refresh() -> None:
        await handler.refresh()

    @app.page("/metrics")
    async def metrics(self: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        # aiohttp takes the charset separately; the exposition format is UTF-8 text.
        return self.bytes(
            generate_latest(registry), content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4"
        )
