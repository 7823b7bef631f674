"""Bounded label values and series keys.

Every label value comes from a configured list or an enum; anything else is reported as
``other``. That bounds the number of series (:func:`series_bound`) and makes it
impossible for a lead id, email or phone to reach a label.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from leadloop.events import (
    AssignmentKind,
    EscalationKind,
    LossReason,
    Priority,
    RejectReason,
    Stage,
    Strategy,
)
from leadloop_metrics.domain.metric_defs import FOLLOWUP_STATUSES, LEDGER_STATES, METRICS

__all__ = [
    "OTHER",
    "UNASSIGNED",
    "Delta",
    "LabelPolicy",
    "Labels",
    "SeriesKey",
    "add",
    "le_label",
    "observe",
    "series",
    "series_bound",
]

Labels = tuple[tuple[str, str], ...]
SeriesKey = tuple[str, Labels]
#: Changes to series values: positive for counters, either sign for gauges.
Delta = dict[SeriesKey, float]

OTHER = "other"
#: The team label of an open lead no assignment decision has reached yet.
UNASSIGNED = "unassigned"
#: Escalation levels beyond this are reported as this level ("this or higher").
MAX_LEVEL = 5
_REASONS = frozenset(r.value for r in RejectReason)
_LOSS_REASONS = frozenset(r.value for r in LossReason)
_PRIORITIES = frozenset(p.value for p in Priority)
_ESCALATION_KINDS = frozenset(k.value for k in EscalationKind)


@dataclass(frozen=True, slots=True)
class LabelPolicy:
    """Keeps label values bounded: sources, teams and reps from configured lists."""

    sources: frozenset[str]
    teams: frozenset[str]
    #: The roster: rep id -> the rep's team. A rep's series carry both.
    reps: Mapping[str, str] = field(default_factory=dict)

    def rep(self, value: str | None) -> dict[str, str]:
        """The ``team`` and ``rep`` labels of a rep's series (``other`` for both when the
        rep is not on the roster)."""
        team = self.reps.get(value) if value is not None else None
        if team is None:
            return {"team": OTHER, "rep": OTHER}
        return {"team": self.team(team), "rep": value or OTHER}

    def source(self, value: str) -> str:
        return value if value in self.sources else OTHER

    def team(self, value: str | None) -> str:
        if value is None:
            return UNASSIGNED
        return value if value in self.teams else OTHER

    @staticmethod
    def reject_reason(value: str | None) -> str:
        return value if value in _REASONS else OTHER

    @staticmethod
    def loss_reason(value: str | None) -> str:
        return value if value in _LOSS_REASONS else OTHER

    @staticmethod
    def priority(value: str) -> str:
        return value if value in _PRIORITIES else OTHER

    @staticmethod
    def escalation_kind(value: str) -> str:
        return value if value in _ESCALATION_KINDS else OTHER

    @staticmethod
    def level(value: int) -> str:
        return str(min(max(value, 1), MAX_LEVEL))


def series(metric: str, **labels: str) -> SeriesKey:
    """The key of a counter or gauge series, labels in their defined order."""
    definition = METRICS[metric]
    assert set(labels) == set(definition.labels), (metric, labels)
    return metric, tuple((k, labels[k]) for k in definition.labels)


def add(delta: Delta, key: SeriesKey, value: float) -> None:
    if value:
        delta[key] = delta.get(key, 0.0) + value


def le_label(bound: float) -> str:
    """The ``le`` label as Prometheus' own clients write it (``60.0``, ``+Inf``)."""
    return "+Inf" if math.isinf(bound) else repr(float(bound))


def observe(delta: Delta, metric: str, millis: int, sign: float = 1.0, **labels: str) -> None:
    """Add (or with ``sign=-1`` remove) one observation of a histogram, given in whole
    milliseconds: the stored ``_sum`` is then a sum of integers, exact in any order."""
    definition = METRICS[metric]
    assert definition.kind == "histogram"
    assert set(labels) == set(definition.labels)
    base = tuple((k, labels[k]) for k in definition.labels)
    for bound in (*definition.buckets, math.inf):
        if millis <= bound * 1000:
            add(delta, (f"{metric}_bucket", (*base, ("le", le_label(bound)))), sign)
    add(delta, (f"{metric}_sum", base), sign * millis)
    add(delta, (f"{metric}_count", base), sign)


def series_bound(sources: int, teams: int, reps: int = 0) -> dict[str, int]:
    """The most series each metric can have with ``sources`` configured sources,
    ``teams`` configured teams and ``reps`` reps on the roster (``other`` and
    ``unassigned`` included). A rep's series carry the rep's own team, so ``team`` and
    ``rep`` together take ``reps + 1`` values."""
    sizes = {
        "source": sources + 1,
        "team": teams + 2,
        "reason": len(_REASONS) + 1,
        "strategy": len(Strategy),
        "kind": max(len(AssignmentKind), len(EscalationKind) + 1),
        "level": MAX_LEVEL,
        "stage": len(Stage),
        "priority": len(Priority) + 1,
        "state": len(LEDGER_STATES),
        "status": len(FOLLOWUP_STATUSES),
    }
    out: dict[str, int] = {}
    for name, d in METRICS.items():
        n = 1
        labels = d.labels
        if "rep" in labels:
            n = reps + 1
            labels = tuple(label for label in labels if label not in ("team", "rep"))
        for label in labels:
            n *= (
                len(LossReason)
                if (name, label) == ("leadloop_leads_lost_total", "reason")
                else 2  # reassigned, reclaimed
                if (name, label) == ("leadloop_rep_leads_taken_total", "kind")
                else sizes[label]
            )
        out[name] = n * (len(d.buckets) + 3) if d.kind == "histogram" else n
    return out
