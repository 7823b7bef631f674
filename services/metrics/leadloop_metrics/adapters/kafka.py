"""faust wiring for metrics: one agent over the event topics, and GET /metrics."""

from __future__ import annotations

from collections.abc import Callable

import faust
from prometheus_client import CONTENT_TYPE_LATEST

from leadloop.kafka import service_timer, topics_agent
from leadloop_metrics.handlers import MetricsHandler

__all__ = ["register_agents"]


def register_agents(
    app: faust.App,
    handler: MetricsHandler,
    exposition: Callable[[], bytes],
    *,
    prefix: str,
    batch_size: int,
    within: float,
    refresh_seconds: float,
    sweep_seconds: float,
    forecast_seconds: float,
) -> None:
    topics_agent(
        app,
        handler.inputs.topics,
        prefix=prefix,
        name="metrics-events",
        handle=handler.handle,
        batch_size=batch_size,
        within=within,
    )

    service_timer(app, interval=refresh_seconds, name="metrics-refresh", run=handler.refresh)
    service_timer(app, interval=sweep_seconds, name="metrics-silence", run=handler.sweep)
    service_timer(app, interval=forecast_seconds, name="metrics-forecast", run=handler.forecast)

    @app.page("/metrics")
    async def metrics(self: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        # aiohttp takes the charset separately; the exposition format is UTF-8 text.
        return self.bytes(
            exposition(),
            content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4",
        )
