"""The experiment's figures, from what the topics hold after a run: pure.

Per run (all durations in simulated seconds, real seconds × scale):

- ``never_touched``: share of assigned leads without any activity by the horizon;
- ``first_touch_p50_min`` / ``first_touch_p90_min``: minutes from a lead's first
  assignment to its first activity, over the leads that were touched;
- ``loss_rate``: (lost + silent) / (won + lost + silent), as the metrics dashboard
  counts it; a lead is silent when it is open and nothing (assignment, activity, stage
  change) happened to it for ``silent_after_s`` before the horizon;
- ``conversion``: share of assigned leads won.

Over seeds: the mean and a 95 % Student-t interval per arm, and for the difference
(on − off) the same interval over the per-seed differences (the arms of a seed share
the traffic and the reps, so the pairs are compared, not the pooled arms).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from datetime import datetime
from typing import Any

__all__ = ["FIGURES", "interval", "run_figures"]

#: Student t, two-sided 95 %, by degrees of freedom (1-30); the normal 1.96 beyond.
_T975 = (12.706, 4.303, 3.182, 2.776, 2.571, 2.447, 2.365, 2.306, 2.262, 2.228, 2.201,
         2.179, 2.160, 2.145, 2.131, 2.120, 2.110, 2.101, 2.093, 2.086, 2.080, 2.074,
         2.069, 2.064, 2.060, 2.056, 2.052, 2.048, 2.045, 2.042)  # fmt: skip

#: name -> (label, unit); the order of the report.
FIGURES: dict[str, tuple[str, str]] = {
    "never_touched": ("leads never touched", "share"),
    "first_touch_p50_min": ("first touch p50", "min"),
    "first_touch_p90_min": ("first touch p90", "min"),
    "loss_rate": ("loss rate, silent leads counted lost", "share"),
    "conversion": ("conversion (won / leads)", "share"),
}


def _at(value: str) -> datetime:
    return datetime.fromisoformat(value)


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if not ordered:
        return math.nan
    position = q * (len(ordered) - 1)
    low, high = math.floor(position), math.ceil(position)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def run_figures(
    assigned: Iterable[Mapping[str, Any]],
    activities: Iterable[Mapping[str, Any]],
    stage_changes: Iterable[Mapping[str, Any]],
    escalations: Iterable[Mapping[str, Any]],
    *,
    horizon: datetime,
    scale: float,
    silent_after_s: float,
) -> dict[str, Any]:
    """The figures of one run; ``horizon`` is the real instant the run was observed to."""
    arrived: dict[str, datetime] = {}
    last: dict[str, datetime] = {}

    def saw(lead_id: str, at: datetime) -> None:
        last[lead_id] = max(at, last.get(lead_id, at))

    for a in assigned:
        at = _at(a["assigned_at"])
        arrived[a["lead_id"]] = min(at, arrived.get(a["lead_id"], at))
        saw(a["lead_id"], at)
    first_touch: dict[str, datetime] = {}
    for act in activities:
        at = _at(act["occurred_at"])
        first_touch[act["lead_id"]] = min(at, first_touch.get(act["lead_id"], at))
        saw(act["lead_id"], at)
    closed: dict[str, str] = {}
    for change in stage_changes:
        saw(change["lead_id"], _at(change["occurred_at"]))
        if change["stage"] in ("won", "lost"):
            closed[change["lead_id"]] = change["stage"]
    leads = set(arrived)
    waits = [
        (first_touch[x] - arrived[x]).total_seconds() * scale / 60
        for x in leads
        if x in first_touch
    ]
    won = sum(1 for x in leads if closed.get(x) == "won")
    lost = sum(1 for x in leads if closed.get(x) == "lost")
    silent = sum(
        1
        for x in leads
        if x not in closed and (horizon - last[x]).total_seconds() * scale >= silent_after_s
    )
    actions: dict[str, int] = {}
    for e in escalations:
        if e.get("status") == "firing":
            actions[e["action"]] = actions.get(e["action"], 0) + 1
    n = len(leads)
    return {
        "leads": n,
        "never_touched": (n - len(waits)) / n if n else math.nan,
        "first_touch_p50_min": _quantile(waits, 0.5),
        "first_touch_p90_min": _quantile(waits, 0.9),
        "loss_rate": (lost + silent) / (won + lost + silent) if won + lost + silent else math.nan,
        "conversion": won / n if n else math.nan,
        "won": won,
        "lost": lost,
        "silent": silent,
        "open": n - won - lost - silent,
        "escalations": actions,
    }


def interval(values: Sequence[float]) -> dict[str, float]:
    """Mean and 95 % Student-t interval; with one value the interval is unknown (nan)."""
    values = [v for v in values if not math.isnan(v)]
    if not values:
        return {"mean": math.nan, "low": math.nan, "high": math.nan, "n": 0}
    mean = statistics.fmean(values)
    if len(values) < 2:
        return {"mean": mean, "low": math.nan, "high": math.nan, "n": len(values)}
    df = len(values) - 1
    t = _T975[df - 1] if df <= len(_T975) else 1.96
    half = t * statistics.stdev(values) / math.sqrt(len(values))
    return {"mean": mean, "low": mean - half, "high": mean + half, "n": len(values)}
