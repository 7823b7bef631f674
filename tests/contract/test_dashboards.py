"""The dashboards in deploy/grafana are the generated ones, and they only ask for series
that exist: metrics the service defines and series the recording rules record.

(That every query returns data against a real Prometheus after a simulated run is
tests/e2e/test_metrics_dashboards.py.)
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
import yaml

from leadloop_metrics.dashboards import DASHBOARDS, Board, build, label_values, queries, render
from leadloop_metrics.domain.metric_defs import METRICS, stored_names

ROOT = Path(__file__).resolve().parents[2]
OUT = ROOT / "deploy/grafana/dashboards"
DATASOURCES = ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml"
RULES = sorted((ROOT / "deploy/prometheus/rules").glob("*.yml"))
NAME = re.compile(r"\b(leadloop[a-z0-9_:]*|ALERTS|up|scrape_duration_seconds)\b")


@pytest.mark.parametrize("board", DASHBOARDS, ids=lambda b: b.uid)
def test_the_committed_dashboard_is_the_generated_one(board: Board) -> None:
    path = OUT / f"{board.uid}.json"
    assert path.exists(), "run: python -m leadloop_metrics.dashboards"
    assert path.read_text(encoding="utf-8") == render(board), (
        f"{path.name} differs from the generator: run python -m leadloop_metrics.dashboards"
    )


def test_no_dashboard_file_is_left_over_from_an_older_generator() -> None:
    generated = {f"{b.uid}.json" for b in DASHBOARDS}
    assert {p.name for p in OUT.glob("*.json")} == generated


def test_uids_are_fixed_and_panels_use_the_provisioned_datasource() -> None:
    (datasource,) = yaml.safe_load(DATASOURCES.read_text(encoding="utf-8"))["datasources"]
    uids = set()
    for board in DASHBOARDS:
        model = build(board)
        assert model["uid"] == board.uid
        uids.add(model["uid"])
        ids = [p["id"] for p in model["panels"]]
        assert len(ids) == len(set(ids)), "panel ids must be unique"
        for panel in model["panels"]:
            if panel["type"] == "row":
                continue
            assert panel["datasource"] == {"type": "prometheus", "uid": datasource["uid"]}
            assert panel.get("description"), f"{panel['title']} says what it shows"
            assert panel.get("targets"), panel["title"]
    assert len(uids) == len(DASHBOARDS)


def test_every_query_names_a_served_metric_or_a_recorded_series() -> None:
    served = {n for d in METRICS.values() for n in stored_names(d)}
    recorded = {
        rule["record"]
        for path in RULES
        for group in yaml.safe_load(path.read_text(encoding="utf-8"))["groups"]
        for rule in group["rules"]
        if "record" in rule
    }
    known = served | recorded | {"ALERTS", "up", "scrape_duration_seconds"}
    for board in DASHBOARDS:
        model = build(board)
        selectors = [(f"${name}", selector) for name, selector, _ in label_values(model)]
        assert len(selectors) == len(board.variables)
        for title, expr in [*queries(model), *selectors]:
            # Label values ("leadloop-metrics") are not series names.
            names = set(NAME.findall(re.sub(r'"[^"]*"', '""', expr)))
            assert names, (title, expr)
            assert names <= known, (title, sorted(names - known))
            # Plain PromQL once the variables are at "All": the e2e test runs each query
            # so; a variable the dashboard does not define would be left as `$name`.
            assert "$" not in expr, (title, expr)


def test_the_dashboards_are_valid_json_grafana_can_load() -> None:
    for path in OUT.glob("*.json"):
        model = json.loads(path.read_text(encoding="utf-8"))
        assert model["schemaVersion"] >= 39
        assert model["title"].startswith("leadloop")
