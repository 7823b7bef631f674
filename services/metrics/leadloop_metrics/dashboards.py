"""The Grafana dashboards, as code: a live wallboard and an on-call view.

    python -m leadloop_metrics.dashboards [--out deploy/grafana/dashboards] [--check]

writes one JSON file per dashboard (``--check`` only compares and exits 1 on a
difference; tests/contract/test_dashboards.py does the same). Dashboards and the
datasource have fixed uids, so links and the provisioning survive a regeneration.

Every query is plain PromQL over the metrics of ``domain/metric_defs.py`` and the
recording rules of deploy/prometheus/rules, with fixed windows instead of Grafana
macros, so that tests/e2e/test_metrics_dashboards.py can run each one as it stands
against a real Prometheus. Each panel's description says what it shows and what to do
when it turns red; the README repeats them.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.dashboard import Dashboard, Row, ThresholdsConfig
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    Threshold,
    ThresholdsMode,
)

__all__ = ["DASHBOARDS", "Board", "Panel", "build", "main", "queries", "render"]

#: The datasource uid of deploy/grafana/provisioning/datasources/prometheus.yml.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="leadloop-prometheus")

Kind = Literal["stat", "timeseries", "bargauge", "table"]


@dataclass(frozen=True, slots=True)
class Query:
    expr: str
    legend: str = ""


@dataclass(frozen=True, slots=True)
class Panel:
    title: str
    kind: Kind
    queries: tuple[Query, ...]
    description: str
    unit: str = "short"
    width: int = 8
    height: int = 7
    #: Red from this value up (or, with ``red_below``, below it).
    red_at: float | None = None
    red_below: bool = False


@dataclass(frozen=True, slots=True)
class Board:
    uid: str
    title: str
    description: str
    rows: tuple[tuple[str, tuple[Panel, ...]], ...]


def q(expr: str, legend: str = "") -> Query:
    return Query(" ".join(expr.split()), legend)


WALLBOARD = Board(
    uid="leadloop-wallboard",
    title="leadloop — live wallboard",
    description="Today's leads, the funnel, speed to first touch, SLA and team load.",
    rows=(
        (
            "Intake",
            (
                Panel(
                    "Leads today by channel",
                    "bargauge",
                    (
                        q(
                            "sum by (source) (increase(leadloop_leads_received_total[1d]))",
                            "{{source}}",
                        ),
                    ),
                    "Records received per channel over the last 24 hours. A channel far below "
                    "its usual bar is silent or broken: see the LeadloopChannelSilent alert.",
                ),
                Panel(
                    "Intake per minute",
                    "timeseries",
                    (q("leadloop:leads_received:rate5m * 60", "{{source}}"),),
                    "Leads per minute per channel (5-minute rate).",
                ),
                Panel(
                    "Rejected share (10 min)",
                    "stat",
                    (
                        q(
                            "sum(rate(leadloop_leads_rejected_total[10m])) "
                            "/ sum(rate(leadloop_leads_received_total[10m]))"
                        ),
                    ),
                    "Share of received records rejected. Red above 5%: open the on-call "
                    "dashboard's rejects by reason and fix the channel's adapter or secret.",
                    unit="percentunit",
                    red_at=0.05,
                ),
            ),
        ),
        (
            "Funnel",
            (
                Panel(
                    "Funnel (24 h)",
                    "bargauge",
                    (
                        q(
                            "sum by (stage) (increase(leadloop_funnel_entered_total[1d]))",
                            "{{stage}}",
                        ),
                    ),
                    "Leads that entered each stage in the last 24 hours.",
                ),
                Panel(
                    "Conversion from accepted (24 h)",
                    "bargauge",
                    (q("leadloop:funnel_conversion:ratio_1d", "{{stage}}"),),
                    "Share of the last day's accepted leads that reached each stage. A stage "
                    "whose bar drops against the one before it is the bottleneck.",
                    unit="percentunit",
                ),
                Panel(
                    "Win rate by team",
                    "bargauge",
                    (q("leadloop:win_rate:ratio", "{{team}}"),),
                    "Won out of closed (won + lost) leads per team since counting began.",
                    unit="percentunit",
                ),
                Panel(
                    "Time in stage (median, 24 h)",
                    "bargauge",
                    (
                        q(
                            "histogram_quantile(0.5, sum by (stage, le) "
                            "(rate(leadloop_stage_duration_seconds_bucket[1d])))",
                            "{{stage}}",
                        ),
                    ),
                    "How long leads that left a stage in the last day had spent in it. A "
                    "stage whose time grows while its conversion drops is where deals stall: "
                    "look at that stage's open leads per team and their follow-ups.",
                    unit="s",
                ),
            ),
        ),
        (
            "Speed to first touch",
            (
                Panel(
                    "Time to first touch (p50 / p90)",
                    "timeseries",
                    (
                        q(
                            "histogram_quantile(0.5, sum by (le) "
                            "(rate(leadloop_first_response_seconds_bucket[1h])))",
                            "p50",
                        ),
                        q(
                            "histogram_quantile(0.9, sum by (le) "
                            "(rate(leadloop_first_response_seconds_bucket[1h])))",
                            "p90",
                        ),
                    ),
                    "Human delay: seconds from a rep's assignment to the first call, email, "
                    "message, meeting or visit. Red above 5 minutes: odds of reaching the "
                    "lead fall steeply; see who is slow in the SLA row.",
                    unit="s",
                    red_at=300,
                ),
                Panel(
                    "First touch within 5 min (24 h)",
                    "bargauge",
                    (q("leadloop:first_response_within_5m:ratio_1d", "{{team}}"),),
                    "Share of first touches within 5 minutes, per team. Red below 80%.",
                    unit="percentunit",
                    red_at=0.8,
                    red_below=True,
                ),
                Panel(
                    "Assignment latency p95",
                    "stat",
                    (
                        q(
                            "histogram_quantile(0.95, sum by (le) "
                            "(rate(leadloop_assignment_latency_seconds_bucket[15m])))"
                        ),
                    ),
                    "System delay: seconds from acceptance to the assignment decision. Red "
                    "above 1 s: the assignment service lags (on-call dashboard).",
                    unit="s",
                    red_at=1,
                ),
            ),
        ),
        (
            "SLA and teams",
            (
                Panel(
                    "SLA attainment (24 h)",
                    "bargauge",
                    (q("leadloop:sla_attainment:ratio_1d", "{{team}}"),),
                    "Share of the last day's assignments whose first-response clock did not "
                    "run out, per team. Red below 90%: talk to the team's manager.",
                    unit="percentunit",
                    red_at=0.9,
                    red_below=True,
                ),
                Panel(
                    "SLA breaches (1 h)",
                    "timeseries",
                    (
                        q(
                            "sum by (team, kind) (increase(leadloop_sla_breaches_total[1h]))",
                            "{{team}} {{kind}}",
                        ),
                    ),
                    "Escalation steps fired in the last hour per team and kind.",
                ),
                Panel(
                    "Lead pool (公海)",
                    "stat",
                    (
                        # A team nobody's lead was pooled for shows 0, not nothing.
                        q(
                            "sum by (team) (leadloop_pool_leads) "
                            "or 0 * sum by (team) (leadloop_funnel_open_leads)",
                            "{{team}}",
                        ),
                    ),
                    "Open leads in each team's pool, owned by nobody. Red from 20: reps are "
                    "at capacity or away; rebalance capacity or pull leads from the pool.",
                    red_at=20,
                ),
                Panel(
                    "Open leads per team and stage",
                    "bargauge",
                    (
                        q(
                            "sum by (team, stage) (leadloop_funnel_open_leads)",
                            "{{team}} {{stage}}",
                        ),
                    ),
                    "Each team's load: open leads by stage (`unassigned`: no decision yet).",
                    width=12,
                ),
                Panel(
                    "Pipeline amount per stage",
                    "bargauge",
                    (q("sum by (stage) (leadloop_pipeline_amount)", "{{stage}}"),),
                    "Latest amount of the open leads per stage.",
                    unit="currencyUSD",
                    width=6,
                ),
                Panel(
                    "Won amount (24 h)",
                    "stat",
                    (q("sum by (team) (increase(leadloop_won_amount_total[1d]))", "{{team}}"),),
                    "Amount won in the last 24 hours, per team.",
                    unit="currencyUSD",
                    width=6,
                ),
                Panel(
                    "Losses by stage and reason (24 h)",
                    "table",
                    (
                        q(
                            "sum by (stage, reason) (increase(leadloop_leads_lost_total[1d]))",
                            "{{stage}} {{reason}}",
                        ),
                    ),
                    "Loss attribution: lost leads by the furthest stage they reached and the "
                    "reason. A stage that grows here fires LeadloopStageLossAboveBaseline.",
                    width=24,
                ),
            ),
        ),
    ),
)

ONCALL = Board(
    uid="leadloop-oncall",
    title="leadloop — on-call",
    description="Firing escalations, lag, rejects and the health of the pipeline.",
    rows=(
        (
            "Escalations",
            (
                Panel(
                    "Open SLA clocks",
                    "stat",
                    (q("sum by (kind) (leadloop_sla_open_clocks)", "{{kind}}"),),
                    "Breached SLA clocks not yet resolved, per kind. Red from 10: page the "
                    "team's manager; reassign or return leads to the pool.",
                    red_at=10,
                ),
                Panel(
                    "Firing alerts",
                    "stat",
                    (q('count(ALERTS{alertstate="firing"}) or vector(0)'),),
                    "leadloop alerts firing now (Alertmanager shows which).",
                    red_at=1,
                ),
                Panel(
                    "Breaches by level (1 h)",
                    "timeseries",
                    (
                        q(
                            "sum by (kind, level) (increase(leadloop_sla_breaches_total[1h]))",
                            "{{kind}} level {{level}}",
                        ),
                    ),
                    "Escalation steps per level: level 3 and up means leads were taken away "
                    "from their owner or on-call was paged.",
                ),
            ),
        ),
        (
            "Lag and health",
            (
                Panel(
                    "Leads waiting for assignment",
                    "stat",
                    (q('sum(leadloop_funnel_open_leads{team="unassigned"}) or vector(0)'),),
                    "Accepted leads without an assignment decision. Red from 50: the "
                    "assignment service lags or stopped (LeadloopAssignmentLagging).",
                    red_at=50,
                ),
                Panel(
                    "Assignment decisions per minute",
                    "timeseries",
                    (
                        q(
                            "sum by (kind) (rate(leadloop_leads_assigned_total[5m])) * 60",
                            "{{kind}}",
                        ),
                    ),
                    "Initial, reassigned, reclaimed and pooled decisions per minute.",
                ),
                Panel(
                    "Metrics scrape",
                    "timeseries",
                    (
                        q('up{job="leadloop-metrics"}', "up"),
                        q('scrape_duration_seconds{job="leadloop-metrics"}', "scrape seconds"),
                    ),
                    "1 while Prometheus scrapes the metrics service, and how long a scrape "
                    "takes. 0: every wallboard number is stale (LeadloopMetricsDown).",
                ),
            ),
        ),
        (
            "Rejects",
            (
                Panel(
                    "Rejects per minute by channel and reason",
                    "timeseries",
                    (q("leadloop:leads_rejected:rate5m * 60", "{{source}} {{reason}}"),),
                    "Why records are rejected. A new reason on one channel usually means the "
                    "channel changed its payload or its signing secret: fix, then replay.",
                    width=12,
                ),
                Panel(
                    "Received in the last 30 min by channel",
                    "bargauge",
                    (
                        q(
                            "sum by (source) (increase(leadloop_leads_received_total[30m]))",
                            "{{source}}",
                        ),
                    ),
                    "A channel at 0 that normally sends is silent (LeadloopChannelSilent).",
                    width=12,
                ),
            ),
        ),
    ),
)

DASHBOARDS: tuple[Board, ...] = (WALLBOARD, ONCALL)


def _thresholds(p: Panel) -> ThresholdsConfig:
    if p.red_at is None:
        steps = [Threshold(value=None, color="green")]
    elif p.red_below:
        steps = [Threshold(value=None, color="red"), Threshold(value=p.red_at, color="green")]
    else:
        steps = [Threshold(value=None, color="green"), Threshold(value=p.red_at, color="red")]
    return ThresholdsConfig().mode(ThresholdsMode.ABSOLUTE).steps(steps)


_BUILDERS: dict[Kind, Callable[[], Any]] = {
    "stat": stat.Panel,
    "timeseries": timeseries.Panel,
    "bargauge": bargauge.Panel,
    "table": table.Panel,
}


def _panel(p: Panel, panel_id: int) -> Any:
    builder = (
        _BUILDERS[p.kind]()
        .id(panel_id)
        .title(p.title)
        .description(p.description)
        .datasource(DATASOURCE)
        .unit(p.unit)
        .span(p.width)
        .height(p.height)
        .thresholds(_thresholds(p))
    )
    for i, query in enumerate(p.queries):
        target = prometheus.Dataquery().expr(query.expr).ref_id(chr(ord("A") + i))
        if query.legend:
            target = target.legend_format(query.legend)
        if p.kind in ("stat", "bargauge", "table"):
            target = target.instant()
        builder = builder.with_target(target)
    return builder


def build(board: Board) -> dict[str, Any]:
    """The dashboard model as Grafana's JSON (a plain dict)."""
    dash = (
        Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(["leadloop"])
        .refresh("10s")
        .time("now-6h", "now")
        .timezone("browser")
        .readonly()
    )
    # Fixed panel ids, in order: Grafana links and the e2e test's reports name them.
    next_id = 1
    for title, panels in board.rows:
        dash = dash.with_row(Row(title).id(next_id))
        next_id += 1
        for p in panels:
            dash = dash.with_panel(_panel(p, next_id))
            next_id += 1
    data: dict[str, Any] = json.loads(json.dumps(dash.build(), cls=JSONEncoder))
    return data


def render(board: Board) -> str:
    return json.dumps(build(board), indent=2, sort_keys=True, ensure_ascii=False) + "\n"


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of a dashboard's JSON."""
    out = []
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets") or []:
            if target.get("expr"):
                out.append((panel["title"], target["expr"]))
    return out


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


if __name__ == "__main__":
    sys.exit(main())
