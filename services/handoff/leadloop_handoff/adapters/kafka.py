"""faust wiring for the hand-off: one agent over its input topics, a sending timer per
target, the erasure scan, the backlog gauges and ``GET /metrics``."""

from __future__ import annotations

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from leadloop.kafka import serve_dead_letters, service_timer, topics_agent
from leadloop_handoff.handlers import HandoffHandler

__all__ = ["register_agents"]


def register_agents(
    app: faust.App,
    handler: HandoffHandler,
    registry: CollectorRegistry,
    *,
    prefix: str,
    batch_size: int,
    within: float,
    tick_seconds: float,
    erasure_scan_seconds: float,
) -> None:
    topics_agent(
        app,
        handler.inputs.topics,
        prefix=prefix,
        name="handoff-inputs",
        handle=handler.handle,
        batch_size=batch_size,
        within=within,
    )
    # One timer per target: a target that is down or slow holds up only itself. Every
    # worker runs them; claims take row locks with SKIP LOCKED and a lease, so workers
    # share the due rows without sending one twice at the same time.
    for target in handler.lanes:

        async def deliver(target: str = target) -> None:
            while await handler.deliver(target) >= handler.claim_batch:
                pass  # a full batch means more may be due: keep going

        service_timer(app, interval=tick_seconds, name=f"handoff-deliver-{target}", run=deliver)
    service_timer(
        app, interval=erasure_scan_seconds, name="handoff-erasures", run=handler.scan_erasures
    )
    service_timer(app, interval=2.0, name="handoff-backlog", run=handler.refresh)

    serve_dead_letters(app, registry)

    @app.page("/metrics")
    async def metrics(self: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return self.bytes(
            generate_latest(registry),
            content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4",
        )
