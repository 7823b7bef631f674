"""faust wiring for metrics: one agent over the event topics, and GET /metrics."""

from __future__ import annotations

from collections.abc import Callable

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from leadloop.kafka import serve_dead_letters, service_timer, topics_agent
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

    # The worker's own series (its dead letters), after the stored ones.
    own = CollectorRegistry(auto_describe=True)
    serve_dead_letters(app, own)

    @app.page("/metrics")
    async def metrics(self: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        # aiohttp takes the charset separately; the exposition format is UTF-8 text.
        return self.bytes(
            exposition() + generate_latest(own),
            content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4",
        )
