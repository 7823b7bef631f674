"""Every metric leadloop serves, with a comment each. Nothing outside this list is served.

Label values come only from bounded sets: configured sources (others become
``other``), team ids and enum values. Never a lead id, email, phone or name.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

__all__ = ["METRICS", "MetricDef"]


@dataclass(frozen=True, slots=True)
class MetricDef:
    name: str
    kind: Literal["counter", "gauge"]
    labels: tuple[str, ...]
    help: str


METRICS: dict[str, MetricDef] = {
    m.name: m
    for m in (
        # Every record read from leads.raw, by channel (conservation: = accepted +
        # duplicate + rejected).
        MetricDef(
            "leadloop_leads_received_total", "counter", ("source",), "Records read from leads.raw."
        ),
        # New leads persisted and published on leads.accepted.
        MetricDef("leadloop_leads_accepted_total", "counter", ("source",), "Leads accepted."),
        # Records whose (source, source_lead_id) was already received.
        MetricDef(
            "leadloop_leads_duplicate_total",
            "counter",
            ("source",),
            "Records recognised as duplicates.",
        ),
        # Records sent to leads.rejected, by stable reason code.
        MetricDef(
            "leadloop_leads_rejected_total",
            "counter",
            ("source", "reason"),
            "Records rejected, by reason.",
        ),
        # Assignment decisions: initial, reassigned, reclaimed or pooled.
        MetricDef(
            "leadloop_leads_assigned_total",
            "counter",
            ("team", "strategy", "kind"),
            "Assignment decisions.",
        ),
        # Escalation ladder steps fired (each step once).
        MetricDef(
            "leadloop_sla_breaches_total",
            "counter",
            ("kind", "level", "team"),
            "SLA escalation steps fired.",
        ),
        # Fired steps later resolved by a touch, a reassignment or closing the lead.
        MetricDef(
            "leadloop_sla_resolved_total",
            "counter",
            ("kind", "level", "team"),
            "SLA escalation steps resolved.",
        ),
    )
}
