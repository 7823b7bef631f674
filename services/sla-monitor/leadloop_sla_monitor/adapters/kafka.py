"""faust wiring for sla-monitor: one agent over its input topics, and the tickers."""

from __future__ import annotations

import faust

from leadloop.kafka import service_timer, topics_agent
from leadloop_sla_monitor.handlers import SlaHandler

__all__ = ["register_agents"]


def register_agents(
    app: faust.App,
    handler: SlaHandler,
    *,
    prefix: str,
    batch_size: int,
    within: float,
    tick_seconds: float,
    alert_poll_seconds: float,
) -> None:
    topics_agent(
        app,
        handler.decoder.topics,
        prefix=prefix,
        name="sla-monitor-inputs",
        handle=handler.handle,
        batch_size=batch_size,
        within=within,
    )

    # Runs on every worker: firing takes row locks with SKIP LOCKED, so workers share
    # due clocks without firing one twice.
    service_timer(app, interval=tick_seconds, name="sla-fire-due", run=handler.tick)

    if handler.send_alerts is not None:
        # Same locking for alert deliveries: one worker sends a given row at a time.
        service_timer(
            app,
            interval=alert_poll_seconds,
            name="sla-deliver-alerts",
            run=handler.deliver_alerts,
        )
