"""faust wiring for assignment: the leads.accepted agent."""

from __future__ import annotations

import faust

from leadloop.kafka import process_or_die, raw_topic

from leadloop_assignment.handlers import AssignmentHandler

__all__ = ["register_agents"]


def register_agents(
    app: faust.App, handler: AssignmentHandler, *, prefix: str, batch_size: int, within: float
) -> None:
    accepted = raw_topic(app, "leads.accepted", prefix)

    @app.agent(accepted, concurrency=1, name="assignment-leads-accepted")
    async def assign(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(batch_size, within=within):
            values = [e.message.value or b"" for e in events]
            await process_or_die(handler.handle(values), what="assign_batch")
