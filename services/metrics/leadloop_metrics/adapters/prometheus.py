"""Serving the series: a prometheus_client collector over an in-memory view.

The view mirrors ``metric_values`` (loaded at start, then advanced by each committed
batch and re-read periodically), so a scrape never touches PostgreSQL and never sees an
uncommitted change. Values are kept in their stored units and converted when served
(``metric_defs.served_value``).
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import (
    CounterMetricFamily,
    GaugeMetricFamily,
    HistogramMetricFamily,
    Metric,
)
from prometheus_client.registry import Collector

from leadloop_metrics.domain.labels import Delta, Labels, SeriesKey, le_label
from leadloop_metrics.domain.metric_defs import METRICS, MetricDef, served_value, stored_names

__all__ = ["SeriesView", "registry_for"]

_ORDER: dict[str, tuple[str, ...]] = {}
for _d in METRICS.values():
    for _name in stored_names(_d):
        _ORDER[_name] = (*_d.labels, "le") if _name.endswith("_bucket") else _d.labels


def normalise(key: SeriesKey) -> SeriesKey | None:
    """The key with its labels in the defined order; None for a series not served."""
    name, labels = key
    order = _ORDER.get(name)
    if order is None:
        return None
    as_dict = dict(labels)
    return name, tuple((k, as_dict.get(k, "")) for k in order)


class SeriesView(Collector):
    def __init__(self, initial: Mapping[SeriesKey, float]) -> None:
        self._values: dict[SeriesKey, float] = {}
        self.replace(initial)

    def replace(self, stored: Mapping[SeriesKey, float]) -> None:
        """Serve exactly what PostgreSQL holds. The caller serialises this with its own
        commits, so the read is never older than a batch this worker already served."""
        values: dict[SeriesKey, float] = {}
        for key, value in stored.items():
            if (k := normalise(key)) is not None:
                values[k] = value
        self._values = values

    def add(self, delta: Delta) -> None:
        for key, change in delta.items():
            self._values[key] = self._values.get(key, 0.0) + change

    def snapshot(self) -> dict[SeriesKey, float]:
        return dict(self._values)

    def value(self, name: str, **labels: str) -> float:
        """A stored series' served value (``name`` may be a ``_bucket``/``_sum``/``_count``)."""
        order = _ORDER[name]
        return served_value(
            name, self._values.get((name, tuple((k, labels[k]) for k in order)), 0.0)
        )

    def collect(self) -> Iterator[Metric]:
        by_name: dict[str, list[tuple[Labels, float]]] = {}
        for (name, labels), value in sorted(self._values.items()):
            by_name.setdefault(name, []).append((labels, value))
        for d in METRICS.values():
            if d.kind == "histogram":
                yield _histogram(d, by_name)
                continue
            family: CounterMetricFamily | GaugeMetricFamily
            if d.kind == "counter":
                family = CounterMetricFamily(d.name.removesuffix("_total"), d.help, labels=d.labels)
            else:
                family = GaugeMetricFamily(d.name, d.help, labels=d.labels)
            for labels, value in by_name.get(d.name, []):
                family.add_metric([v for _, v in labels], served_value(d.name, value))
            yield family


def _histogram(d: MetricDef, by_name: Mapping[str, list[tuple[Labels, float]]]) -> Metric:
    family = HistogramMetricFamily(d.name, d.help, labels=d.labels)
    buckets: dict[Labels, dict[str, float]] = {}
    for labels, value in by_name.get(f"{d.name}_bucket", []):
        buckets.setdefault(labels[:-1], {})[labels[-1][1]] = value
    sums = dict(by_name.get(f"{d.name}_sum", []))
    for base, _count in by_name.get(f"{d.name}_count", []):
        seen = buckets.get(base, {})
        bounds = [le_label(b) for b in (*d.buckets, math.inf)]
        family.add_metric(
            [v for _, v in base],
            [(le, seen.get(le, 0.0)) for le in bounds],
            served_value(f"{d.name}_sum", sums.get(base, 0.0)),
        )
    return family


def registry_for(view: SeriesView) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(view)
    return registry
