"""How events change the counters: a pure fold from events to increments.

The caller applies each event at most once (event ids are recorded with the change), so
the fold can simply count.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

from leadloop.events import (
    EscalationRaised,
    EscalationStatus,
    IngestOutcome,
    IngestOutcomeRecorded,
    LeadAssigned,
    RejectReason,
)
from leadloop_metrics.domain.metric_defs import METRICS

__all__ = ["Increment", "LabelPolicy", "SeriesKey", "fold"]

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]
Increment = Counter[SeriesKey]
Event = IngestOutcomeRecorded | LeadAssigned | EscalationRaised

OTHER = "other"
_REASONS = frozenset(r.value for r in RejectReason)
_ID = re.compile(r"^[a-z0-9_.-]{1,64}$")


@dataclass(frozen=True, slots=True)
class LabelPolicy:
    """Keeps label values bounded: sources from a configured list, ids by shape."""

    sources: frozenset[str]

    def source(self, value: str) -> str:
        return value if value in self.sources else OTHER

    def team(self, value: str) -> str:
        # Team ids come from leadloop's own rule set, not from input; the shape check
        # is a backstop against an unbounded value ever reaching a label.
        return value if _ID.match(value) else OTHER


def series(metric: str, **labels: str) -> SeriesKey:
    definition = METRICS[metric]
    assert set(labels) == set(definition.labels), (metric, labels)
    return metric, tuple((k, labels[k]) for k in definition.labels)


def fold(events: Iterable[Event], policy: LabelPolicy) -> Increment:
    inc: Increment = Counter()
    for e in events:
        if isinstance(e, IngestOutcomeRecorded):
            source = policy.source(e.source)
            inc[series("leadloop_leads_received_total", source=source)] += 1
            if e.outcome is IngestOutcome.ACCEPTED:
                inc[series("leadloop_leads_accepted_total", source=source)] += 1
            elif e.outcome is IngestOutcome.DUPLICATE:
                inc[series("leadloop_leads_duplicate_total", source=source)] += 1
            else:
                reason = e.reason if e.reason in _REASONS else OTHER
                inc[series("leadloop_leads_rejected_total", source=source, reason=reason)] += 1
        elif isinstance(e, LeadAssigned):
            inc[
                series(
                    "leadloop_leads_assigned_total",
                    team=policy.team(e.team_id),
                    strategy=e.strategy.value,
                    kind=e.kind.value,
                )
            ] += 1
        else:
            metric = (
                "leadloop_sla_breaches_total"
                if e.status is EscalationStatus.FIRING
                else "leadloop_sla_resolved_total"
            )
            inc[
                series(metric, kind=e.kind.value, level=str(e.level), team=policy.team(e.team_id))
            ] += 1
    return inc
