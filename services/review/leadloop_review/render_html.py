"""The report as one self-contained HTML page: bilingual headings (``SECTIONS``), the
tables of the Markdown report, and charts drawn by matplotlib as inline SVG.

The charts' text is drawn as paths (``svg.fonttype = "path"``), so a reader needs no
font for them; the page's own text asks for a CJK font first. Nothing is fetched when
the page is viewed: no script, style, font or image is linked, and no URL is written.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable
from dataclasses import dataclass, field

import jinja2
import matplotlib
from markupsafe import Markup
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from leadloop_review.domain.model import SECTIONS, Report
from leadloop_review.domain.record import FUNNEL_STAGES
from leadloop_review.sections import content, money
from leadloop_review.templates import REPORT_HTML

__all__ = ["render"]

#: Chinese first (its Latin glyphs are fine), then fonts that cover what it lacks.
FONTS = [
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Zen Hei",
    "Noto Serif CJK SC",
    "DejaVu Sans",
]
_PALETTE = ["#4c78a8", "#f58518", "#54a24b", "#e45756", "#72b7b2", "#b279a2", "#9d755d"]
_ENV = jinja2.Environment(autoescape=True, undefined=jinja2.StrictUndefined)
_TEMPLATE = _ENV.from_string(REPORT_HTML)


@dataclass
class _Row:
    cells: list[object]
    total: bool = False


@dataclass
class _Table:
    title: str
    head: list[str]
    rows: list[_Row]
    text_cols: int = 1


@dataclass
class _Section:
    key: str
    zh: str
    en: str
    lines: list[str] = field(default_factory=list)
    charts: list[Markup] = field(default_factory=list)
    tables: list[_Table] = field(default_factory=list)
    items: list[str] | None = None


# --- charts ---------------------------------------------------------------------------

_XML_HEAD = re.compile(r"\A.*?(?=<svg)", re.S)
_METADATA = re.compile(r"<metadata>.*?</metadata>\s*", re.S)
_XMLNS = re.compile(r'\s+xmlns(:\w+)?="[^"]*"')


def _svg(draw: Callable[[Figure], None], width: float, height: float) -> Markup:
    """``draw`` on a fresh figure, as an inline ``<svg>`` naming no URL."""
    with matplotlib.rc_context(
        {  # the literal keeps rc_context's key type
            "font.family": "sans-serif",
            "font.sans-serif": FONTS,
            "svg.fonttype": "path",
            "svg.hashsalt": "leadloop",  # the same report gives the same bytes
            "axes.unicode_minus": False,
            "font.size": 9,
        }
    ):
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasSVG(fig)
        draw(fig)
        buf = io.StringIO()
        fig.savefig(buf, format="svg", metadata={"Date": None, "Creator": None, "Type": None})
    text = _METADATA.sub("", _XML_HEAD.sub("", buf.getvalue()))
    # Inline SVG in HTML needs no namespace declarations; drop them so no URL remains.
    text = _XMLNS.sub("", text).replace("xlink:href", "href")
    return Markup(text)  # noqa: S704 - made here from numbers and labels matplotlib escapes


def _empty(fig: Figure, title: str) -> None:
    ax = fig.add_subplot()
    ax.set_title(title)
    ax.text(0.5, 0.5, "no data 无数据", ha="center", va="center", transform=ax.transAxes)
    ax.set_axis_off()


def _funnel_chart(r: Report) -> Markup:
    title = "按渠道漏斗 Funnel by source"
    stages = [s for s in FUNNEL_STAGES if s not in ("won", "lost")] + ["won"]
    sources = list(r.funnel.by_source[:6])

    def draw(fig: Figure) -> None:
        if not sources:
            return _empty(fig, title)
        ax = fig.add_subplot()
        width = 0.8 / len(sources)
        for i, f in enumerate(sources):
            values = [
                f.won if s == "won" else f.reached.get(s, f.leads if s == "new" else 0)
                for s in stages
            ]
            xs = [x + (i - (len(sources) - 1) / 2) * width for x in range(len(stages))]
            ax.bar(xs, values, width, label=f.key, color=_PALETTE[i % len(_PALETTE)])
        ax.set_xticks(range(len(stages)), stages)
        ax.set_ylabel("leads 线索")
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
        return None

    return _svg(draw, 9, 3.6)


def _loss_chart(r: Report) -> Markup:
    title = "流失：阶段 × 原因 Losses by stage × reason"
    cells = r.losses.by_stage_reason
    stages = [s for s in FUNNEL_STAGES if any(c.stage == s for c in cells)]
    stages += sorted({c.stage for c in cells} - set(stages))
    reasons = sorted({c.reason for c in cells})

    def draw(fig: Figure) -> None:
        if not cells:
            return _empty(fig, title)
        grid = [[0] * len(reasons) for _ in stages]
        for c in cells:
            grid[stages.index(c.stage)][reasons.index(c.reason)] += c.lost
        ax = fig.add_subplot()
        im = ax.imshow(grid, cmap="Reds", aspect="auto")
        ax.set_xticks(range(len(reasons)), reasons, rotation=20, ha="right")
        ax.set_yticks(range(len(stages)), stages)
        top = max(max(row) for row in grid) or 1
        for y, row in enumerate(grid):
            for x, v in enumerate(row):
                if v:
                    colour = "white" if v > top / 2 else "black"
                    ax.text(x, y, str(v), ha="center", va="center", color=colour)
        fig.colorbar(im, ax=ax, label="lost 流失", ticks=MaxNLocator(integer=True))
        ax.set_title(title)
        return None

    return _svg(draw, 9, 1.6 + 0.45 * max(len(stages), 2))


def _accountability_chart(r: Report) -> Markup:
    title = "有效跟进率排名 Follow-up rate by rep (lowest first)"
    rows = [a for a in r.accountability.rows if a.effective_rate is not None][:15]

    def draw(fig: Figure) -> None:
        if not rows:
            return _empty(fig, title)
        ax = fig.add_subplot()
        labels = [f"{a.team} / {a.rep}" for a in rows]
        rates = [(a.effective_rate or 0.0) * 100 for a in rows]
        colours = [_PALETTE[3] if v < 80 else _PALETTE[0] for v in rates]
        ys = range(len(rows))
        ax.barh(ys, rates, color=colours)
        ax.set_yticks(ys, labels)
        ax.invert_yaxis()
        ax.axvline(80, color="#57606a", linestyle="--", linewidth=1)
        for y, (v, a) in enumerate(zip(rates, rows, strict=True)):
            ax.text(v + 1, y, f"{v:.0f} % · {a.breaches} breaches", va="center", fontsize=8)
        ax.set_xlim(0, 125)
        ax.set_xlabel("有效跟进率 % (dashed: 80 %)")
        ax.set_title(title)
        ax.spines[["top", "right"]].set_visible(False)
        return None

    return _svg(draw, 9, 1.2 + 0.32 * max(len(rows), 2))


def _trend_chart(r: Report) -> Markup:
    title = "需求走势 Demand over time (biggest movers)"
    movers = list(r.trends.movers[:6])
    buckets = list(r.trends.buckets)

    def draw(fig: Figure) -> None:
        if not movers or not buckets:
            return _empty(fig, title)
        ax = fig.add_subplot()
        for i, t in enumerate(movers):
            ax.plot(
                range(len(buckets)),
                [t.by_bucket.get(b, 0) for b in buckets],
                marker="o",
                markersize=3,
                color=_PALETTE[i % len(_PALETTE)],
                label=f"{t.dimension}: {t.value} ({t.change:+d})",
            )
        step = max(1, len(buckets) // 12)
        ax.set_xticks(range(0, len(buckets), step), buckets[::step], rotation=30, ha="right")
        ax.set_ylabel("leads 线索")
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
        return None

    return _svg(draw, 9, 3.6)


def _forecast_chart(r: Report) -> Markup:
    title = "预测与实际 Forecast (weighted) against actual"
    rows = list(r.forecast.rows)

    def draw(fig: Figure) -> None:
        if not rows:
            return _empty(fig, title)
        ax = fig.add_subplot()
        labels = [
            f"{x.team} {x.month:%Y-%m}" + ("" if x.age_weeks is None else f" −{x.age_weeks}w")
            for x in rows
        ]
        xs = range(len(rows))
        ax.bar(
            [x - 0.2 for x in xs],
            [(x.weighted_cents or 0) / 100 for x in rows],
            0.4,
            label="weighted 加权预测",
            color=_PALETTE[0],
        )
        ax.bar(
            [x + 0.2 for x in xs],
            [x.actual_cents / 100 for x in rows],
            0.4,
            label="actual 实际",
            color=_PALETTE[2],
        )
        ax.set_xticks(xs, labels, rotation=20, ha="right")
        ax.set_title(title)
        ax.legend(fontsize=8)
        ax.spines[["top", "right"]].set_visible(False)
        return None

    return _svg(draw, 9, 3.2)


# --- sections -------------------------------------------------------------------------

_CHARTS: dict[str, Callable[[Report], Markup]] = {
    "funnel": _funnel_chart,
    "losses": _loss_chart,
    "accountability": _accountability_chart,
    "forecast": _forecast_chart,
    "trends": _trend_chart,
}


def _section(key: str, zh: str, en: str, report: Report) -> _Section:
    c = content(key, report)
    tables = [
        _Table(
            t.title,
            list(t.head),
            [_Row(list(row)) for row in t.rows]
            + ([_Row(list(t.total), total=True)] if t.total is not None else []),
            t.text_cols,
        )
        for t in c.tables
    ]
    charts = [_CHARTS[key](report)] if key in _CHARTS else []
    return _Section(key, zh, en, list(c.lines), charts, tables, c.items)


def render(report: Report) -> str:
    """The page; suggestions first after the summary, as in the Markdown."""
    titles = {key: (zh, en) for key, zh, en in SECTIONS}
    order = ["suggestions"] + [k for k, _, _ in SECTIONS if k != "suggestions"]
    sections = [_section(key, *titles[key], report) for key in order]
    return _TEMPLATE.render(
        r=report,
        scope=report.team or "all teams / 全部团队",
        won_amount=money(report.funnel.total.won_cents),
        sections=sections,
    )
