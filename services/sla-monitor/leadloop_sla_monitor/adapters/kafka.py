"""faust wiring for sla-monitor: one agent over its input topics, and the ticker."""

from __future__ import annotations

from collections.abc import Sequence

import faust

from leadloop.kafka import batch_agent, raw_topic
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
    async def handle(events: Sequence[faust.EventT[bytes]]) -> object:
        return await handler.handle(
            [(e.message.topic[len(prefix) :], e.message.value or b"") for e in events]
        )

    batch_agent(
        app,
        raw_topic(app, *INPUT_TOPICS, prefix=prefix),
        name="sla-monitor-inputs",
        handle=handle,
        batch_size=batch_size,
        within=within,
    )

    # Runs on every worker: firing takes row locks with SKIP LOCKED, so workers share
    # due clocks without firing one twice.
    @app.timer(interval=tick_seconds)
    async def fire_due() -> None:
        await handler.tick()
