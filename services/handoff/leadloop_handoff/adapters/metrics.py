"""The hand-off's metrics (served on its own ``GET /metrics``). A closed list:

- ``leadloop_handoff_deliveries_total{target,outcome,status_class}`` — attempts by what
  became of them: ``delivered``, ``retried`` (will be tried again), ``failed`` (dead
  letter), ``cancelled`` (erased before it went out); status_class ``2xx``…``5xx`` or
  ``none`` when no reply came.
- ``leadloop_handoff_latency_seconds{target}`` — from the assignment to the CRM's
  confirmation, for deliveries of assignments (not erasures).
- ``leadloop_handoff_pending{target}``, ``leadloop_handoff_dead_letters{target}`` — rows
  waiting and rows dead-lettered, read from PostgreSQL (all workers), refreshed.

Labels are bounded: target names come from config/crm.yaml.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

__all__ = ["HandoffMetrics"]

_LATENCY_BUCKETS = (0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600)


class HandoffMetrics:
    def __init__(self, targets: Iterable[str]) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        self._attempts = Counter(
            "leadloop_handoff_deliveries",
            "Hand-off attempts by what became of them",
            ("target", "outcome", "status_class"),
            registry=self.registry,
        )
        self._latency = Histogram(
            "leadloop_handoff_latency_seconds",
            "Assignment to the CRM's confirmation",
            ("target",),
            buckets=_LATENCY_BUCKETS,
            registry=self.registry,
        )
        self._pending = Gauge(
            "leadloop_handoff_pending",
            "Deliveries waiting to be sent",
            ("target",),
            registry=self.registry,
        )
        self._dead = Gauge(
            "leadloop_handoff_dead_letters",
            "Deliveries given up (replay with leadloop_handoff.tools replay)",
            ("target",),
            registry=self.registry,
        )
        self._targets = tuple(targets)
        for target in self._targets:
            self._pending.labels(target).set(0)
            self._dead.labels(target).set(0)
            self._attempts.labels(target, "delivered", "2xx")

    def attempt(self, target: str, outcome: str, status_class: str) -> None:
        self._attempts.labels(target, outcome, status_class).inc()

    def delivered_after(self, target: str, seconds: float) -> None:
        self._latency.labels(target).observe(max(0.0, seconds))

    def backlog(self, counts: Mapping[tuple[str, str], int]) -> None:
        for target in self._targets:
            self._pending.labels(target).set(counts.get((target, "pending"), 0))
            self._dead.labels(target).set(counts.get((target, "dead"), 0))
