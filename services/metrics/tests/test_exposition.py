"""The metrics service writes its exposition itself: byte for byte what prometheus_client
writes for the same view as a collector, whatever the view holds, and never stale."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from prometheus_client import generate_latest

from leadloop_metrics.adapters.prometheus import SeriesView, registry_for
from leadloop_metrics.domain.labels import SeriesKey, le_label, series
from leadloop_metrics.domain.metric_defs import METRICS

LABEL_VALUES = st.sampled_from(["north", "other", "rep-a", 'odd"quote', "back\\slash", "new\nline"])
NUMBERS = st.one_of(
    st.integers(-5, 10**12).map(float),
    st.floats(-1e9, 1e15, allow_nan=False, allow_infinity=False),
)


@st.composite
def stored_series(draw: st.DrawFn) -> tuple[SeriesKey, float]:
    d = METRICS[draw(st.sampled_from(sorted(METRICS)))]
    labels = {label: draw(LABEL_VALUES) for label in d.labels}
    value = draw(NUMBERS)
    if d.kind != "histogram":
        return series(d.name, **labels), value
    base = tuple((k, labels[k]) for k in d.labels)
    part = draw(st.sampled_from(["bucket", "sum", "count"]))
    if part == "bucket":
        le = le_label(draw(st.sampled_from([*d.buckets, float("inf")])))
        return (f"{d.name}_bucket", (*base, ("le", le))), value
    return (f"{d.name}_{part}", base), value


@settings(max_examples=300, deadline=None)
@given(st.lists(stored_series(), max_size=40), st.lists(stored_series(), max_size=10))
def test_render_writes_what_prometheus_client_writes(
    stored: list[tuple[SeriesKey, float]], changes: list[tuple[SeriesKey, float]]
) -> None:
    view = SeriesView(dict(stored))
    assert view.render() == generate_latest(registry_for(view))
    # After a change, the text follows (the rendered text is not served stale).
    view.add(dict(changes))
    assert view.render() == generate_latest(registry_for(view))
    view.replace(dict(changes))
    assert view.render() == generate_latest(registry_for(view))


def test_an_empty_view_still_describes_every_metric() -> None:
    text = SeriesView({}).render().decode()
    assert text.count("# TYPE ") == len(METRICS)
