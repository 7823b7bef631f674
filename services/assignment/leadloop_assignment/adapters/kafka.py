"""faust wiring for assignment: the agent over accepted leads, the agent over the changes
that move decided leads (every other input the topic registry gives assignment:
crm.reps, crm.stage-changes, sla.escalations), and the pool timer."""

from __future__ import annotations

from collections.abc import Sequence

import faust

from leadloop.kafka import batch_agent, raw_topic, service_timer, topics_agent
from leadloop_assignment.handlers import LEADS_TOPIC, AssignmentHandler, ChangeHandler

__all__ = ["register_agents"]


def register_agents(
    app: faust.App,
    handler: AssignmentHandler,
    changes: ChangeHandler,
    *,
    prefix: str,
    batch_size: int,
    within: float,
    decide_within: float,
    pool_check_seconds: float,
) -> None:
    if LEADS_TOPIC not in handler.inputs.topics:
        raise ValueError(f"the topic registry gives assignment no {LEADS_TOPIC}")

    async def handle(events: Sequence[faust.EventT[bytes]]) -> object:
        return await handler.handle([e.message.value or b"" for e in events])

    batch_agent(
        app,
        raw_topic(app, LEADS_TOPIC, prefix=prefix),
        name="assignment-leads-accepted",
        handle=handle,
        batch_size=batch_size,
        within=decide_within,
    )
    topics_agent(
        app,
        changes.topics,
        prefix=prefix,
        name="assignment-changes",
        handle=changes.handle,
        batch_size=batch_size,
        within=within,
    )

    # Runs on every worker: a pass locks every team, so two workers' passes take turns
    # and the second finds nothing left to move.
    service_timer(app, interval=pool_check_seconds, name="assignment-pools", run=changes.tick)
