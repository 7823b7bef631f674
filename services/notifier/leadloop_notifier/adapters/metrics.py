"""The notifier's own metrics (a closed list, one comment each), served on GET /metrics.

Label values are bounded: ``channel`` is a configured channel name, ``kind`` one of the
notice kinds, ``outcome`` delivered/retry/failed, ``code`` a stable vendor or notifier
code (anything else is reported as ``other``). Never a lead id, a rep id or an address.
"""

from __future__ import annotations

from collections.abc import Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["PrometheusMetrics"]

#: From the breach (escalations) or the assignment (new leads) to the vendor's
#: acceptance: quiet hours and coalescing included, so the buckets reach a night.
_BUCKETS = (1, 5, 15, 30, 60, 120, 300, 600, 1800, 3600, 4 * 3600, 16 * 3600, 72 * 3600)


class PrometheusMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        #: Notices handed to a vendor, by how the vendor answered (one per outbox row).
        self._sent = Counter(
            "leadloop_notifier_sent_total",
            "Notices handed to a channel, by outcome (delivered, retry, failed).",
            ("channel", "kind", "outcome"),
            registry=registry,
        )
        #: Outbox rows waiting to be sent (quiet hours, coalescing, rate limits, retries).
        self._pending = Gauge(
            "leadloop_notifier_pending",
            "Outbox rows not sent yet.",
            ("channel",),
            registry=registry,
        )
        #: Rows dead-lettered: the vendor refused for good, or retries ran out.
        self._dead = Counter(
            "leadloop_notifier_dead_letters_total",
            "Notices dead-lettered, by channel and code.",
            ("channel", "code"),
            registry=registry,
        )
        #: Time from the event that caused a notice to its delivery.
        self._delivery = Histogram(
            "leadloop_notifier_delivery_seconds",
            "From breach or assignment to the vendor's acceptance, in seconds.",
            ("channel",),
            buckets=_BUCKETS,
            registry=registry,
        )

    def sent(self, channel: str, kind: str, outcome: str, n: int = 1) -> None:
        self._sent.labels(channel, kind, outcome).inc(n)

    def dead_letter(self, channel: str, code: str) -> None:
        self._dead.labels(channel, code).inc()

    def delivered_after(self, channel: str, seconds: float) -> None:
        self._delivery.labels(channel).observe(seconds)

    def pending(self, by_channel: Mapping[str, int]) -> None:
        for channel, n in by_channel.items():
            self._pending.labels(channel).set(n)
