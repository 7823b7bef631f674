"""Serving the series: an in-memory view of the stored values and its exposition.

The view mirrors ``metric_values`` (loaded at start, then advanced by each committed
batch and re-read periodically), so a scrape never touches PostgreSQL and never sees an
uncommitted change. Values are kept in their stored units and converted when served
(``metric_defs.served_value``).

``render`` writes the text exposition itself, byte for byte what prometheus_client's
``generate_latest`` writes for the view as a collector (``registry_for``; tested):
with 200 reps the view holds about 12,000 series, and prometheus_client validates and
escapes every label name of every sample on every scrape (about 130 ms here, on the
event loop that also consumes the topics). The text of each series' name and labels
is kept once instead, and the sorted order until a series appears or goes, so a scrape
only formats values.
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
from prometheus_client.utils import floatToGoString

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


def _header(d: MetricDef) -> str:
    help_text = d.help.replace("\\", r"\\").replace("\n", r"\n")
    return f"# HELP {d.name} {help_text}\n# TYPE {d.name} {d.kind}\n"


_HEADERS = {d.name: _header(d) for d in METRICS.values()}
_LE = {d.name: [le_label(b) for b in (*d.buckets, math.inf)] for d in METRICS.values()}


def _series_text(key: SeriesKey) -> str:
    """``name{label="value",…} `` as generate_latest writes it: labels sorted by name,
    values escaped."""
    name, labels = key
    if not labels:
        return f"{name} "
    pairs = ",".join(f'{k}="{_escape(v)}"' for k, v in sorted(labels))
    return f"{name}{{{pairs}}} "


def _escape(value: str) -> str:
    return value.replace("\\", r"\\").replace("\n", r"\n").replace('"', r"\"")


def _number(value: float) -> str:
    text: str = floatToGoString(value)  # type: ignore[no-untyped-call]
    return text


class SeriesView(Collector):
    def __init__(self, initial: Mapping[SeriesKey, float]) -> None:
        self._values: dict[SeriesKey, float] = {}
        #: Each series' exposition text up to its value, kept across scrapes.
        self._texts: dict[SeriesKey, str] = {}
        self._sorted: list[SeriesKey] | None = None
        self.replace(initial)

    def replace(self, stored: Mapping[SeriesKey, float]) -> None:
        """Serve exactly what PostgreSQL holds. The caller serialises this with its own
        commits, so the read is never older than a batch this worker already served."""
        values: dict[SeriesKey, float] = {}
        for key, value in stored.items():
            if (k := normalise(key)) is not None:
                values[k] = value
        if values.keys() != self._values.keys():
            self._sorted = None
        self._values = values

    def add(self, delta: Delta) -> None:
        for key, change in delta.items():
            if key not in self._values:
                self._sorted = None
            self._values[key] = self._values.get(key, 0.0) + change

    def render(self) -> bytes:
        """The text exposition of every series (what ``generate_latest`` would write)."""
        if self._sorted is None:
            self._sorted = sorted(self._values)
        values, texts = self._values, self._texts

        def text(key: SeriesKey) -> str:
            cached = texts.get(key)
            if cached is None:
                cached = texts[key] = _series_text(key)
            return cached

        by_name: dict[str, list[SeriesKey]] = {}
        for key in self._sorted:
            by_name.setdefault(key[0], []).append(key)
        out: list[str] = []
        for d in METRICS.values():
            out.append(_HEADERS[d.name])
            if d.kind != "histogram":
                for key in by_name.get(d.name, ()):
                    out.append(f"{text(key)}{_number(served_value(d.name, values[key]))}\n")
                continue
            bucket, count, total = f"{d.name}_bucket", f"{d.name}_count", f"{d.name}_sum"
            for count_key in by_name.get(count, ()):
                base = count_key[1]
                inf = 0.0
                for le in _LE[d.name]:
                    key = (bucket, (*base, ("le", le)))
                    inf = values.get(key, 0.0)
                    out.append(f"{text(key)}{_number(inf)}\n")
                # As generate_latest: the count is the +Inf bucket.
                out.append(f"{text(count_key)}{_number(inf)}\n")
                sum_key = (total, base)
                served = served_value(total, values.get(sum_key, 0.0))
                out.append(f"{text(sum_key)}{_number(served)}\n")
        return "".join(out).encode()

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
