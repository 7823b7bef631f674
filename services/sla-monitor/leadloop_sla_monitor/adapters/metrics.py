"""sla-monitor's own metrics, served on its ``/metrics`` beside the calendar gauge. A
closed list:

- ``leadloop_sla_clock_jumps_total`` — forward jumps of the wall clock the ticker saw
  (``domain.restraint``): the wall clock ran ahead of the monotonic one by more than
  ``LEADLOOP_CLOCK_JUMP_THRESHOLD_SECONDS`` between two ticks.
- ``leadloop_sla_clock_jump_seconds_total`` — how far those jumps moved the clock.
- ``leadloop_sla_actions_held_total{reason,action}`` — taking steps (``reassign``,
  ``return_to_pool``) kept from firing in a pass: ``clock_jump`` (they became due by a
  jump and wait for the hold) or ``rate_cap`` (the team's cap for the minute was used
  up). A step held in several passes is counted in each.

Labels are bounded: two reasons, two actions.
"""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter

from leadloop.events import EscalationAction
from leadloop_sla_monitor.domain.restraint import TAKING_ACTIONS, HoldReason

__all__ = ["PrometheusSlaMetrics"]


class PrometheusSlaMetrics:
    def __init__(self, registry: CollectorRegistry) -> None:
        self._jumps = Counter(
            "leadloop_sla_clock_jumps",
            "Forward jumps of the wall clock seen by the SLA ticker",
            registry=registry,
        )
        self._jump_seconds = Counter(
            "leadloop_sla_clock_jump_seconds",
            "Seconds the wall clock jumped forward, summed",
            registry=registry,
        )
        self._held = Counter(
            "leadloop_sla_actions_held",
            "Taking steps (reassign, return_to_pool) held back in a firing pass",
            ("reason", "action"),
            registry=registry,
        )
        # Every series exists from the start: increase() sees the first hold.
        for reason in HoldReason:
            for action in sorted(a.value for a in TAKING_ACTIONS):
                self._held.labels(reason.value, action)

    def clock_jumped(self, seconds: float) -> None:
        self._jumps.inc()
        self._jump_seconds.inc(seconds)

    def actions_held(self, reason: str, action: str, n: int) -> None:
        self._held.labels(reason, EscalationAction(action).value).inc(n)
