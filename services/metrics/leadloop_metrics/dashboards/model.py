"""What a dashboard is made of, independent of Grafana's JSON: boards, rows of panels,
their queries and template variables."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from grafana_foundation_sdk.models.dashboard import DataSourceRef

__all__ = ["DATASOURCE", "Board", "Kind", "Panel", "Query", "Variable", "q"]

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
