"""faust wiring for sla-monitor: one agent over its input topics, and the ticker."""

from __future__ import annotations

import faust

from leadloop.kafka import process_or_die
from leadloop.topics import qualified

from leadloop_sla_monitor.handlers import SlaHandler

__all__ = ["INPUT_TOPICS", "register_agents"]

INPUT_TOPICS = ("leads.assigned", "crm.activities", "crm.stage-changes")


def register_agents(
    app: faust.App,
    handler: SlaHandler,
    *,
    prefix: str,
    batch_size: int,
    within: float,
    tick_seconds: float,
) -> None:
    inputs = app.topic(
        *(qualified(t, prefix) for t in INPUT_TOPICS),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
    )

    @app.agent(inputs, concurrency=1, name="sla-monitor-inputs")
    async def track(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(batch_size, within=within):
            batch = [(e.message.topic[len(prefix):], e.message.value or b"") for e in events]
            await process_or_die(handler.handle(batch), what="sla_batch")

    # Runs on every worker: firing takes row locks with SKIP LOCKED, so workers share
    # due clocks without firing one twice.
    @app.timer(interval=tick_seconds)
    async def fire_due() -> None:
        await handler.tick()
