"""Serving the counters: a prometheus_client collector over the in-memory view.

The view mirrors ``metric_values`` (loaded at start, then advanced by each committed
batch), so a scrape never touches PostgreSQL and never sees an uncommitted change.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from prometheus_client import CollectorRegistry
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from leadloop_metrics.domain.fold import Increment, SeriesKey
from leadloop_metrics.domain.metric_defs import METRICS

__all__ = ["CounterView", "registry_for"]


class CounterView(Collector):
    def __init__(self, initial: Mapping[SeriesKey, float]) -> None:
        self._values: dict[SeriesKey, float] = {}
        self.replace(initial)

    def replace(self, stored: Mapping[SeriesKey, float]) -> None:
        """Take the values PostgreSQL holds (at start, and periodically, so that every
        worker of a scaled-out group serves the totals, not only its own share).

        Counters only grow, so the larger of the served and the stored value wins: a
        read that raced with this worker's own commit must not make a counter go back,
        which Prometheus would take for a reset.
        """
        values: dict[SeriesKey, float] = dict(self._values)
        for (metric, labels), value in stored.items():
            if metric in METRICS:
                # Stored label order may differ; serve in the defined order.
                wanted = METRICS[metric].labels
                as_dict = dict(labels)
                key = (metric, tuple((k, as_dict.get(k, "")) for k in wanted))
                values[key] = max(values.get(key, 0.0), value)
        self._values = values

    def add(self, inc: Increment) -> None:
        for key, delta in inc.items():
            self._values[key] = self._values.get(key, 0.0) + delta

    def value(self, metric: str, **labels: str) -> float:
        wanted = METRICS[metric].labels
        return self._values.get((metric, tuple((k, labels[k]) for k in wanted)), 0.0)

    def collect(self) -> Iterator[Metric]:
        for name, d in METRICS.items():
            family: CounterMetricFamily | GaugeMetricFamily
            if d.kind == "counter":
                family = CounterMetricFamily(name.removesuffix("_total"), d.help, labels=d.labels)
            else:
                family = GaugeMetricFamily(name, d.help, labels=d.labels)
            for (metric, labels), value in sorted(self._values.items()):
                if metric == name:
                    family.add_metric([v for _, v in labels], value)
            yield family


def registry_for(view: CounterView) -> CollectorRegistry:
    registry = CollectorRegistry(auto_describe=False)
    registry.register(view)
    return registry
