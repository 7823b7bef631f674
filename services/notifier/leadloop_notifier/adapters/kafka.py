"""faust wiring for the notifier: one agent over its input topics, the sender, digest and
gauge timers, GET /metrics and the Alertmanager bridge (POST /v1/alertmanager/{channel})."""

from __future__ import annotations

import hmac
import json
from typing import cast

import faust
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from leadloop.kafka import serve_dead_letters, service_timer, topics_agent
from leadloop_notifier.handlers import NotifierHandler

__all__ = ["ALERT_PATH", "register_agents"]

ALERT_PATH = "/v1/alertmanager/{channel}"
#: Alertmanager's notifications are small; anything bigger is not one.
_MAX_BODY = 1 << 20


def register_agents(
    app: faust.App,
    handler: NotifierHandler,
    registry: CollectorRegistry,
    *,
    prefix: str,
    batch_size: int,
    within: float,
    tick_seconds: float,
    digest_seconds: float,
    alertmanager_token: str | None = None,
) -> None:
    topics_agent(
        app,
        handler.inputs.topics,
        prefix=prefix,
        name="notifier-inputs",
        handle=handler.handle,
        batch_size=batch_size,
        within=within,
    )
    # Every worker sends: rows are claimed with SKIP LOCKED and leased.
    service_timer(app, interval=tick_seconds, name="notifier-send", run=handler.send_due)
    service_timer(app, interval=digest_seconds, name="notifier-digest", run=handler.make_digests)
    service_timer(app, interval=5.0, name="notifier-pending", run=handler.refresh_pending)
    service_timer(app, interval=3600.0, name="notifier-retention", run=handler.forget_old)

    serve_dead_letters(app, registry)

    @app.page("/metrics")
    async def metrics(self: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return self.bytes(
            generate_latest(registry),
            content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4",
        )

    class AlertBridge(faust.web.View):
        async def post(self, request: faust.web.Request, channel: str) -> faust.web.Response:
            req = cast(web.Request, request)
            if alertmanager_token is not None and not hmac.compare_digest(
                req.headers.get("Authorization", "").encode(),
                f"Bearer {alertmanager_token}".encode(),
            ):
                return self.json({"error": "unauthorized"}, status=401)
            if (req.content_length or 0) > _MAX_BODY:
                return self.json({"error": "too_large"}, status=413)
            try:
                body = json.loads(await req.read())
            except ValueError:
                return self.json({"error": "invalid_json"}, status=400)
            if not isinstance(body, dict) or not isinstance(body.get("alerts"), list):
                return self.json({"error": "not_an_alertmanager_notification"}, status=422)
            queued = await handler.alert(channel, body)
            if queued is None:
                return self.json({"error": "unknown_channel"}, status=404)
            return self.json({"queued": queued}, status=202)

    app.page(ALERT_PATH, name="alertmanager-bridge")(AlertBridge)
