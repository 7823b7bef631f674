"""faust wiring for assignment: the leads.accepted agent."""

from __future__ import annotations

from collections.abc import Sequence

import faust

from leadloop.kafka import batch_agent, raw_topic
from leadloop_assignment.handlers import AssignmentHandler

__all__ = ["register_agents"]


def register_agents(
    app: faust.App, handler: AssignmentHandler, *, prefix: str, batch_size: int, within: float
) -> None:
    async def handle(events: Sequence[faust.EventT[bytes]]) -> object:
        return await handler.handle([e.message.value or b"" for e in events])

    batch_agent(
        app,
        raw_topic(app, "leads.accepted", prefix=prefix),
        name="assignment-leads-accepted",
        handle=handle,
        batch_size=batch_size,
        within=within,
    )
