"""A board as Grafana's dashboard JSON (grafana-foundation-sdk), and every query in it as
Grafana sends it with each variable at "All"."""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

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
    DataTransformerConfig,
    DynamicConfigValue,
    Threshold,
    ThresholdsMode,
    VariableRefresh,
    VariableSort,
)
from grafana_foundation_sdk.models.prometheus import PromQueryFormat

from leadloop_metrics.dashboards.model import DATASOURCE, Board, Kind, Panel, Query, Variable

__all__ = ["build", "label_values", "queries", "render"]


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
