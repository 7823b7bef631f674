"""The Grafana dashboards, as code: a live wallboard, an on-call view and team
accountability.

    python -m leadloop_metrics.dashboards [--out deploy/grafana/dashboards] [--check]

writes one JSON file per dashboard (``--check`` only compares and exits 1 on a
difference; tests/contract/test_dashboards.py does the same). Dashboards and the
datasource have fixed uids, so links and the provisioning survive a regeneration.

Every query is plain PromQL over the metrics of ``domain/metric_defs.py`` and the
recording rules of deploy/prometheus/rules, with fixed windows instead of Grafana
macros. The only Grafana syntax is a template variable (``$team``) in a label matcher
``=~"$team"``, whose "All" value is the regex ``.*``: :func:`queries` gives each query
as Grafana sends it with every variable at "All", which is what
tests/e2e/test_metrics_dashboards.py runs against a real Prometheus. Each panel's
description says what it shows and what to do when it turns red; the README repeats
them.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from leadloop_metrics.dashboards.accountability import ACCOUNTABILITY
from leadloop_metrics.dashboards.build import build, label_values, queries, render
from leadloop_metrics.dashboards.model import Board, Panel, Variable
from leadloop_metrics.dashboards.oncall import ONCALL
from leadloop_metrics.dashboards.wallboard import WALLBOARD

__all__ = [
    "DASHBOARDS",
    "Board",
    "Panel",
    "Variable",
    "build",
    "label_values",
    "main",
    "queries",
    "render",
]

DASHBOARDS: tuple[Board, ...] = (WALLBOARD, ONCALL, ACCOUNTABILITY)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leadloop_metrics.dashboards")
    parser.add_argument("--out", type=Path, default=Path("deploy/grafana/dashboards"))
    parser.add_argument("--check", action="store_true", help="compare only; exit 1 on drift")
    args = parser.parse_args(argv)
    stale = []
    for board in DASHBOARDS:
        path = args.out / f"{board.uid}.json"
        text = render(board)
        current = path.read_text(encoding="utf-8") if path.exists() else None
        if current == text:
            continue
        if args.check:
            stale.append(str(path))
        else:
            path.write_text(text, encoding="utf-8")
            sys.stdout.write(f"wrote {path}\n")
    if stale:
        sys.stdout.write("out of date (run python -m leadloop_metrics.dashboards): ")
        sys.stdout.write(", ".join(stale) + "\n")
        return 1
    return 0
