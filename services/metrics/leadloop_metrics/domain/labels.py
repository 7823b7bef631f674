"""Bounded label values and series keys.

Every label value comes from a configured list or an enum; anything else is reported as
``other``. That bounds the number of series (:func:`series_bound`) and makes it
impossible for a lead id, email or phone to reach a label.
"""

from __future__ import annotations

import itertools
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
from leadloop_metrics.domain.metric_defs import (
    FOLLOWUP_STATUSES,
    FORECAST_AGES,
    FORECAST_KINDS,
    FORECAST_MONTHS,
    LEDGER_STATES,
    METRICS,
)

__all__ = [
    "OTHER",
    "TAKEN",
    "UNASSIGNED",
    "Delta",
    "LabelPolicy",
    "Labels",
    "SeriesKey",
    "add",
    "every_series",
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
#: Assignment kinds that take a lead from its previous owner.
TAKEN = ("reassigned", "reclaimed")
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


def every_series(policy: LabelPolicy) -> dict[str, list[Labels]]:
    """Every label set each metric can be served with under ``policy`` (a histogram's
    without ``le``): the bound on the series, made concrete. A rep's series carry the
    rep's own team, so ``team`` and ``rep`` together take one value per roster rep and
    ``other``."""
    reps = sorted(
        {tuple(policy.rep(r).items()) for r in policy.reps} | {(("team", OTHER), ("rep", OTHER))}
    )
    out: dict[str, list[Labels]] = {}
    for name, d in METRICS.items():
        sets: list[list[Labels]] = []
        for label in d.labels:
            if label == "rep":
                continue
            if label == "team" and "rep" in d.labels:
                sets.append([tuple(pair) for pair in reps])
            else:
                sets.append([((label, v),) for v in _values(policy, name, label)])
        out[name] = [
            tuple(
                sorted((kv for part in combo for kv in part), key=lambda kv: d.labels.index(kv[0]))
            )
            for combo in itertools.product(*sets)
        ]
    return out


def _values(policy: LabelPolicy, metric: str, label: str) -> list[str]:
    if label == "source":
        return [*sorted(policy.sources), OTHER]
    if label == "team" and metric.startswith("leadloop_forecast_"):
        return [*sorted(policy.teams), OTHER]  # a lead in a forecast has a team
    if label == "team":
        return [*sorted(policy.teams), OTHER, UNASSIGNED]
    if label == "reason":
        if metric == "leadloop_leads_lost_total":
            return sorted(_LOSS_REASONS)  # `other` is one of them
        return [*sorted(_REASONS), OTHER]
    if label == "kind":
        if metric == "leadloop_forecast_amount":
            return list(FORECAST_KINDS)
        if metric == "leadloop_leads_assigned_total":
            return [k.value for k in AssignmentKind]
        if metric == "leadloop_rep_leads_taken_total":
            return list(TAKEN)
        return [*sorted(_ESCALATION_KINDS), OTHER]
    fixed = {
        "strategy": [s.value for s in Strategy],
        "level": [str(n) for n in range(1, MAX_LEVEL + 1)],
        "stage": [s.value for s in Stage],
        "priority": [*sorted(_PRIORITIES), OTHER],
        "state": list(LEDGER_STATES),
        "status": list(FOLLOWUP_STATUSES),
        "month": list(FORECAST_MONTHS),
        "age": list(FORECAST_AGES),
    }
    return fixed[label]


def series_bound(sources: int, teams: int, reps: int = 0) -> dict[str, int]:
    """The most series each metric can have with ``sources`` configured sources,
    ``teams`` configured teams and ``reps`` reps on the roster (``other`` and
    ``unassigned`` included; a histogram counts its buckets, ``_sum`` and ``_count``)."""
    team_ids = [f"team-{i}" for i in range(teams)]
    policy = LabelPolicy(
        sources=frozenset(f"source-{i}" for i in range(sources)),
        teams=frozenset(team_ids),
        reps={f"rep-{i}": team_ids[i % teams] for i in range(reps)} if teams else {},
    )
    return {
        name: len(sets)
        * (len(METRICS[name].buckets) + 3 if METRICS[name].kind == "histogram" else 1)
        for name, sets in every_series(policy).items()
    }
