"""Ingest's metrics, served on its own ``GET /metrics``. A closed list:

- ``leadloop_ingest_webhook_replays_total{endpoint}`` — signed requests refused 409
  ``replayed`` (a second delivery of a request already accepted); endpoint ``lead``,
  ``meta``, ``crm`` (CRM feedback) or ``crm-hook`` (the vendor CRM webhooks).
- ``leadloop_ingest_webhook_replays_purged_total`` — expired replay-cache rows removed by
  this worker.
- ``leadloop_dead_letters_total`` — the shared dead-letter counter (``leadloop.kafka``).

Labels are bounded: the endpoint kinds above.
"""

from __future__ import annotations

import faust
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, generate_latest

from leadloop.kafka import serve_dead_letters

__all__ = ["ENDPOINTS", "IngestMetrics", "serve_metrics"]

ENDPOINTS = ("lead", "meta", "crm", "crm-hook")


class IngestMetrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._replays = Counter(
            "leadloop_ingest_webhook_replays",
            "Signed webhook requests refused as replays (409 replayed)",
            ("endpoint",),
            registry=self.registry,
        )
        self._purged = Counter(
            "leadloop_ingest_webhook_replays_purged",
            "Expired replay-cache rows removed",
            registry=self.registry,
        )
        for endpoint in ENDPOINTS:
            self._replays.labels(endpoint)

    def replayed(self, endpoint: str) -> None:
        self._replays.labels(endpoint if endpoint in ENDPOINTS else "other").inc()

    def purged(self, rows: int) -> None:
        self._purged.inc(rows)


def serve_metrics(app: faust.App, metrics: IngestMetrics) -> None:
    """``GET /metrics`` on ingest's web port: its own metrics and the dead letters'."""
    serve_dead_letters(app, metrics.registry)

    @app.page("/metrics")
    async def exposition(self: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        # aiohttp takes the charset separately; the exposition format is UTF-8 text.
        return self.bytes(
            generate_latest(metrics.registry),
            content_type=CONTENT_TYPE_LATEST.split(";")[0] + "; version=0.0.4",
        )
