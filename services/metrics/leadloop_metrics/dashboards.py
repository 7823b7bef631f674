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
import json
import re
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, table, timeseries
from grafana_foundation_sdk.builders.common import StackingConfig, TableSortByFieldState
from grafana_foundation_sdk.builders.dashboard import (
    Dashboard,
    QueryVariable,
    Row,
    ThresholdsConfig,
)
from grafana_foundation_sdk.cog.encoder import JSONEncoder
from grafana_foundation_sdk.models.common import StackingMode
from grafana_foundation_sdk.models.dashboard import (
    DataSourceRef,
    DataTransformerConfig,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

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

#: The datasource uid of deploy/grafana/provisioning/datasources/prometheus.yml.
DATASOURCE = DataSourceRef(type_val="prometheus", uid="leadloop-prometheus")

Kind = Literal["stat", "timeseries", "bargauge", "table"]


@dataclass(frozen=True, slots=True)
class Query:
    expr: str
    legend: str = ""
    #: In a table: the column's title and unit (the panel's unit when empty) and, for
    #: counts, decimals (0: ``increase()`` extrapolates whole counts to fractions).
    column: str = ""
    unit: str = ""
    decimals: int | None = None


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
    #: A time series stacked (each series on top of the ones before it).
    stacked: bool = False
    #: One copy of the panel per selected value of this template variable.
    repeat: str | None = None
    #: A table's rows sorted by this column (ascending unless ``sort_desc``).
    sort_by: str | None = None
    sort_desc: bool = False


@dataclass(frozen=True, slots=True)
class Variable:
    """A template variable: the values of ``label`` on the series ``selector`` picks
    (Grafana's ``label_values``), several at once or "All" (the regex ``.*``)."""

    name: str
    title: str
    selector: str
    label: str


@dataclass(frozen=True, slots=True)
class Board:
    uid: str
    title: str
    description: str
    rows: tuple[tuple[str, tuple[Panel, ...]], ...]
    variables: tuple[Variable, ...] = ()
    refresh: str = "10s"


def q(expr: str, legend: str = "", **column: Any) -> Query:
    return Query(" ".join(expr.split()), legend, **column)


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
        (
            "Forecast",
            (
                Panel(
                    "Forecast this month",
                    "bargauge",
                    (
                        q(
                            'sum by (team, kind) (leadloop_forecast_amount{month="current"})',
                            "{{team}} {{kind}}",
                        ),
                    ),
                    "Per team, as of the latest Monday or 1st: won so far plus the open leads "
                    "the CRM dates in this month — weighted by the team's learned chance per "
                    "stage, only those in negotiation (commit), or all (best case). A weighted "
                    "bar far below the target means the month needs pipeline now.",
                    unit="currencyUSD",
                ),
                Panel(
                    "Forecast next month",
                    "bargauge",
                    (
                        q(
                            'sum by (team, kind) (leadloop_forecast_amount{month="next"})',
                            "{{team}} {{kind}}",
                        ),
                    ),
                    "The same for next month: what is dated to close there already.",
                    unit="currencyUSD",
                ),
                Panel(
                    "Forecast accuracy, last month",
                    "bargauge",
                    (
                        q(
                            "min by (team, age) (leadloop_forecast_accuracy_ratio)",
                            "{{team}} {{age}} weeks before",
                        ),
                    ),
                    "1 − |forecast − won| / won for last month, by how many weeks before the "
                    "month's end the forecast was taken. Red below 70%: the expected close "
                    "dates or the stages in the CRM are not kept up to date.",
                    unit="percentunit",
                    red_at=0.7,
                    red_below=True,
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

#: A rep's series, filtered by the dashboard's variables.
_REP = 'team=~"$team", rep=~"$rep"'


def _per_rep_1d(metric: str) -> str:
    return f"sum by (team, rep) (increase({metric}{{{_REP}}}[1d]))"


ACCOUNTABILITY = Board(
    uid="leadloop-accountability",
    title="leadloop — team accountability",
    description="Per rep: load, follow-up, first response, breaches and outcomes; per "
    "team: the leak ledger and the loss rate with the leads that went silent.",
    variables=(
        # Every rep who has owned a lead has an open-leads series (0 when none is open).
        Variable("team", "Team", "leadloop_rep_open_leads", "team"),
        Variable("rep", "Rep", 'leadloop_rep_open_leads{team=~"$team"}', "rep"),
    ),
    # Day-long windows over every rep: a minute is fresh enough for a manager.
    refresh="1m",
    rows=(
        (
            "Reps",
            (
                Panel(
                    "Reps (24 h)",
                    "table",
                    (
                        q(
                            f"sum by (team, rep) (leadloop_rep_open_leads{{{_REP}}})",
                            column="Open leads",
                            decimals=0,
                        ),
                        q(_per_rep_1d("leadloop_rep_touches_total"), column="Touches", decimals=0),
                        q(
                            f"leadloop:rep_first_response:p50_1d{{{_REP}}}",
                            column="First response p50",
                            unit="s",
                        ),
                        q(
                            f"leadloop:rep_effective_followup:ratio{{{_REP}}}",
                            column="有效跟进率",
                            unit="percentunit",
                        ),
                        q(
                            _per_rep_1d("leadloop_rep_sla_breaches_total"),
                            column="SLA breaches",
                            decimals=0,
                        ),
                        q(_per_rep_1d("leadloop_rep_leads_won_total"), column="Won", decimals=0),
                        q(
                            _per_rep_1d("leadloop_rep_won_amount_total"),
                            column="Won amount",
                            unit="currencyUSD",
                        ),
                        q(_per_rep_1d("leadloop_rep_leads_lost_total"), column="Lost", decimals=0),
                        q(
                            _per_rep_1d("leadloop_rep_leads_taken_total"),
                            column="Leads taken",
                            decimals=0,
                        ),
                    ),
                    "One row per rep (`other`: reps not on the roster): open leads now; "
                    "touches, SLA escalation steps fired on their leads, wins, won amount, "
                    "losses and leads taken away (reassigned or reclaimed to the pool) in "
                    "the last 24 hours; the median first response of the last 24 hours; "
                    "有效跟进率 to date (first responses within the SLA out of those due). "
                    "Lowest 有效跟进率 first: a rep near the top with breaches and leads "
                    "taken is not following up; look at their open leads and load with "
                    "the team's manager before moving leads.",
                    width=24,
                    height=10,
                    sort_by="有效跟进率",
                ),
                Panel(
                    "有效跟进率 (effective follow-up rate)",
                    "timeseries",
                    (
                        q(f"leadloop:rep_effective_followup:ratio{{{_REP}}}", "{{rep}}"),
                        q('leadloop:effective_followup:ratio{team=~"$team"}', "team {{team}}"),
                    ),
                    "Per rep and per team, to date: of the leads whose first response the "
                    "rep owed as first owner and that are decided, the share touched before "
                    "any first-response escalation fired (leads not touched and not yet "
                    "due are left out). Red below 90%: the rep answers late or not at all; "
                    "check their load and shifts.",
                    unit="percentunit",
                    red_at=0.9,
                    red_below=True,
                ),
                Panel(
                    "First response per rep (p50 / p90, 24 h)",
                    "timeseries",
                    (
                        q(f"leadloop:rep_first_response:p50_1d{{{_REP}}}", "{{rep}} p50"),
                        q(f"leadloop:rep_first_response:p90_1d{{{_REP}}}", "{{rep}} p90"),
                    ),
                    "Seconds from a rep's assignment as first owner to the lead's first "
                    "touch, over the leads first touched in the last 24 hours. Red above 5 "
                    "minutes: the odds of reaching the lead fall steeply.",
                    unit="s",
                    red_at=300,
                ),
                Panel(
                    "SLA breaches by level per rep (1 h)",
                    "timeseries",
                    (
                        q(
                            "sum by (rep, level) "
                            f"(increase(leadloop_rep_sla_breaches_total{{{_REP}}}[1h]))",
                            "{{rep}} level {{level}}",
                        ),
                    ),
                    "Escalation steps fired on each rep's leads in the last hour, by level "
                    "(1: the clock ran out; 3 and up: leads taken away or on-call paged).",
                ),
            ),
        ),
        (
            "Leaks",
            (
                Panel(
                    "Silent leads now",
                    "stat",
                    (
                        # A team with no silent lead shows 0, not nothing: the ledger
                        # holds every accepted lead, so no silent series means none.
                        q(
                            'sum by (team) (leadloop_leads_by_state{state="silent", '
                            'team=~"$team"}) or 0 * sum by (team) (leadloop_leads_by_state'
                            '{state!="awaiting_assignment", team=~"$team"})',
                            "{{team}}",
                        ),
                    ),
                    "Leads owned and open that nobody touched, assigned or moved for the "
                    "configured business days (5 by default): leaks nobody declared. Red "
                    "from 1: ask the owner to call or close them, or return them to the "
                    "pool.",
                    width=6,
                    red_at=1,
                ),
                Panel(
                    "Loss rate with and without silent leaks",
                    "timeseries",
                    (
                        q(
                            'leadloop:loss_rate_with_silent:ratio{team=~"$team"}',
                            "{{team}} with silent",
                        ),
                        q('leadloop:loss_rate_declared:ratio{team=~"$team"}', "{{team}} declared"),
                    ),
                    "Per team, from the ledger now: (lost + silent) / (won + lost + silent) "
                    "beside the declared loss rate lost / (won + lost) the CRM reports. The "
                    "gap is the silent leak: leads lost without anyone saying so.",
                    unit="percentunit",
                    width=18,
                ),
                Panel(
                    "Leak ledger: $team",
                    "timeseries",
                    (q('sum by (state) (leadloop_leads_by_state{team=~"$team"})', "{{state}}"),),
                    "Every accepted lead of the team in exactly one state, stacked: pooled, "
                    "owned within the SLA, owned and breached, silent, won, lost (the top "
                    "is the team's accepted leads). Leads awaiting assignment have no team "
                    "yet (on-call dashboard). A growing silent or breached band is where "
                    "leads leak.",
                    width=12,
                    height=8,
                    stacked=True,
                    repeat="team",
                ),
            ),
        ),
    ),
)

DASHBOARDS: tuple[Board, ...] = (WALLBOARD, ONCALL, ACCOUNTABILITY)


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
        if p.kind == "table" and query.column:
            target = target.format(PromQueryFormat.TABLE)
        builder = builder.with_target(target)
    if p.stacked:
        builder = builder.stacking(StackingConfig().mode(StackingMode.NORMAL)).fill_opacity(60)
    if p.repeat:
        builder = builder.repeat(p.repeat).repeat_direction("h").max_per_row(2)
    if p.sort_by:
        builder = builder.sort_by(
            [TableSortByFieldState().display_name(p.sort_by).desc(p.sort_desc)]
        )
    columns = [(chr(ord("A") + i), c) for i, c in enumerate(p.queries) if c.column]
    if columns:
        builder = _columns(builder, columns)
    return builder


def _columns(builder: Any, columns: list[tuple[str, Query]]) -> Any:
    """One table row per series: the instant queries merged on their labels, each query's
    value a column with its own title and unit, the time column hidden."""
    builder = builder.with_transformation(DataTransformerConfig(id_val="merge", options={}))
    builder = builder.with_transformation(
        DataTransformerConfig(
            id_val="organize",
            options={
                "excludeByName": {"Time": True},
                "renameByName": {f"Value #{ref}": c.column for ref, c in columns},
            },
        )
    )
    for _, c in columns:
        properties = [DynamicConfigValue(id_val="unit", value=c.unit)] if c.unit else []
        if c.decimals is not None:
            properties.append(DynamicConfigValue(id_val="decimals", value=c.decimals))
        if properties:
            builder = builder.override_by_name(c.column, properties)
    return builder


def _variable(v: Variable) -> QueryVariable:
    return (
        QueryVariable(v.name)
        .label(v.title)
        .datasource(DATASOURCE)
        .query(f"label_values({v.selector}, {v.label})")
        .refresh(VariableRefresh.ON_TIME_RANGE_CHANGED)
        .sort(VariableSort.ALPHABETICAL_ASC)
        .multi(True)
        .include_all(True)
        .all_value(".*")
    )


def build(board: Board) -> dict[str, Any]:
    """The dashboard model as Grafana's JSON (a plain dict)."""
    dash = (
        Dashboard(board.title)
        .uid(board.uid)
        .description(board.description)
        .tags(["leadloop"])
        .refresh(board.refresh)
        .time("now-6h", "now")
        .timezone("browser")
        .readonly()
    )
    for v in board.variables:
        dash = dash.with_variable(_variable(v))
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


_VARIABLE = re.compile(r"\$(?:\{(\w+)\}|(\w+))")


def _all_values(dashboard: dict[str, Any]) -> dict[str, str]:
    variables = (dashboard.get("templating") or {}).get("list") or []
    return {v["name"]: v["allValue"] for v in variables}


def _at_all(expr: str, values: dict[str, str]) -> str:
    """``expr`` with every template variable at its "All" value; an unknown variable is
    left as it is (and then is not plain PromQL)."""
    return _VARIABLE.sub(lambda m: values.get(m[1] or m[2], m[0]), expr)


def queries(dashboard: dict[str, Any]) -> list[tuple[str, str]]:
    """(panel title, PromQL) of every target of a dashboard's JSON, as Grafana sends it
    with every template variable at "All"."""
    values = _all_values(dashboard)
    out = []
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets") or []:
            if target.get("expr"):
                out.append((panel["title"], _at_all(target["expr"], values)))
    return out


_LABEL_VALUES = re.compile(r"label_values\((.+),\s*(\w+)\)")


def label_values(dashboard: dict[str, Any]) -> list[tuple[str, str, str]]:
    """(variable, series selector, label) of every ``label_values`` variable of a
    dashboard's JSON, the selector with the other variables at "All": Prometheus' label
    values API (``/api/v1/label/<label>/values?match[]=<selector>``) answers the same."""
    values = _all_values(dashboard)
    out = []
    for v in (dashboard.get("templating") or {}).get("list") or []:
        if m := _LABEL_VALUES.fullmatch(v.get("query") or ""):
            out.append((v["name"], _at_all(m[1], values), m[2]))
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
