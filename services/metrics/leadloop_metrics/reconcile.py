"""Recompute every metric from the stored facts and compare with what is stored and served.

The facts of ``metric_applied_events`` are replayed in application order through the
same pure fold the service uses. The result must equal the stored lead states, the
stored series values (``metric_values``) and, when a ``/metrics`` URL is given, the
served samples, exactly: every sum is a sum of integers (counts, hundredths,
milliseconds), so there is no rounding to allow for. The forecast series
(``metric_defs.DERIVED``) are set from snapshots of the pipeline at fixed instants, not
folded from the facts, and are left out.
"""

from __future__ import annotations

import urllib.request
from dataclasses import dataclass, field

from prometheus_client.parser import text_string_to_metric_families

from leadloop_metrics.adapters.postgres import MetricStore
from leadloop_metrics.adapters.prometheus import normalise
from leadloop_metrics.domain.facts import Fact
from leadloop_metrics.domain.fold import step
from leadloop_metrics.domain.labels import LabelPolicy, SeriesKey
from leadloop_metrics.domain.metric_defs import DERIVED, METRICS, served_value

__all__ = ["Report", "recompute", "reconcile", "scrape"]

#: What a sample looks like in the exposition text: name and sorted labels.
Sample = tuple[str, tuple[tuple[str, str], ...]]


@dataclass
class Report:
    facts: int = 0
    leads: int = 0
    unreplayable: int = 0
    differences: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not self.differences

    def lines(self, limit: int = 50) -> list[str]:
        out = [
            f"replayed facts: {self.facts}",
            f"leads: {self.leads}",
            f"differences: {len(self.differences)}",
        ]
        out += [f"  {d}" for d in self.differences[:limit]]
        if len(self.differences) > limit:
            out.append(f"  ... and {len(self.differences) - limit} more")
        return out


async def recompute(
    store: MetricStore, policy: LabelPolicy, report: Report
) -> tuple[dict[SeriesKey, float], dict[str, object]]:
    facts: list[Fact] = []
    async for fact in store.facts():
        if fact is None:
            report.unreplayable += 1
        else:
            facts.append(fact)
    report.facts = len(facts)
    result = step({}, facts, policy)
    values: dict[SeriesKey, float] = {}
    for key, value in result.delta.items():
        if (k := normalise(key)) is not None and value:
            values[k] = value
    return values, dict(result.states)


def _fmt(key: SeriesKey | Sample) -> str:
    name, labels = key
    return name + "{" + ",".join(f'{k}="{v}"' for k, v in labels) + "}"


def _compare(what: str, want: dict[SeriesKey, float], got: dict[SeriesKey, float]) -> list[str]:
    out = []
    for key in sorted(set(want) | set(got)):
        w, g = want.get(key, 0.0), got.get(key, 0.0)
        if w != g:
            out.append(f"{what} {_fmt(key)}: {g!r}, recomputed {w!r}")
    return out


def served_samples(values: dict[SeriesKey, float]) -> dict[Sample, float]:
    """The samples /metrics should show for stored values (labels sorted, base units)."""
    out: dict[Sample, float] = {}
    for (name, labels), value in values.items():
        if value:
            out[(name, tuple(sorted(labels)))] = served_value(name, value)
    return out


def scrape(url: str) -> dict[Sample, float]:
    """The leadloop samples served at ``url`` (non-zero ones; zero equals absent)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError("the /metrics URL must be http(s)")
    with urllib.request.urlopen(url, timeout=10) as response:  # noqa: S310 - scheme checked
        text = response.read().decode()
    folded = set(METRICS) - DERIVED
    known = folded | {n.removesuffix("_total") for n in folded}
    out: dict[Sample, float] = {}
    for family in text_string_to_metric_families(text):
        if family.name not in known:
            continue
        for s in family.samples:
            if s.value and not s.name.endswith("_created"):
                out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


async def reconcile(store: MetricStore, policy: LabelPolicy, url: str | None = None) -> Report:
    report = Report()
    values, states = await recompute(store, policy, report)
    if report.unreplayable:
        report.differences.append(
            f"{report.unreplayable} applied events have no stored fact (applied before "
            "migration 0006) and could not be replayed"
        )
    stored_states = await store.states()
    report.leads = len(stored_states)
    for lead_id in sorted(set(states) | set(stored_states)):
        if states.get(lead_id) != stored_states.get(lead_id):
            report.differences.append(f"lead state {lead_id}: stored differs from the replay")
    stored = {
        k: v
        for key, v in (await store.load()).items()
        if (k := normalise(key)) and v and k[0] not in DERIVED
    }
    report.differences += _compare("stored", values, stored)
    if url is not None:
        want = served_samples(values)
        got = scrape(url)
        for key in sorted(set(want) | set(got)):
            w, g = want.get(key, 0.0), got.get(key, 0.0)
            if w != g:
                report.differences.append(f"served {_fmt(key)}: {g!r}, recomputed {w!r}")
    return report
