"""The report as one self-contained HTML page: bilingual headings (``SECTIONS``), the
tables of the Markdown report, and charts drawn by matplotlib as inline SVG.

The charts' text is drawn as paths (``svg.fonttype = "path"``), so a reader needs no
font for them; the page's own text asks for a CJK font first. Nothing is fetched when
the page is viewed: no script, style, font or image is linked, and no URL is written.
"""

from __future__ import annotations

import io
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import jinja2
import matplotlib
from markupsafe import Markup
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from leadloop_review.domain.model import SECTIONS, FunnelRow, Report
from leadloop_review.domain.record import FUNNEL_STAGES
from leadloop_review.domain.suggest import duration
from leadloop_review.render_md import PREDICTOR_HEAD, predictor_lines
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


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f} %"


def _money(cents: int | None) -> str:
    return "-" if cents is None else f"{cents / 100:,.2f}"


def _table(
    title: str, head: Sequence[str], rows: Sequence[Sequence[object]], text: int = 1
) -> _Table:
    return _Table(title, list(head), [_Row(list(r)) for r in rows], text)


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


def _funnel(r: Report, s: _Section) -> None:
    stages = [x for x in FUNNEL_STAGES if x not in ("new", "won", "lost")]
    head = [
        "",
        "leads",
        *stages,
        "won",
        "lost",
        "open",
        "conversion",
        "win rate",
        "won amount",
        "first touch p50",
    ]

    def row(label: str, f: FunnelRow) -> list[object]:
        return [
            label,
            f.leads,
            *(f.reached.get(x, 0) for x in stages),
            f.won,
            f.lost,
            f.open,
            _pct(f.conversion),
            _pct(f.win_rate),
            _money(f.won_cents),
            duration(f.first_touch_p50_ms),
        ]

    s.charts.append(_funnel_chart(r))
    by_source = _table("By source 按渠道", head, [row(f.key, f) for f in r.funnel.by_source])
    by_source.rows.append(_Row(row("total 合计", r.funnel.total), total=True))
    s.tables += [
        by_source,
        _table("By campaign 按活动", head, [row(f.key, f) for f in r.funnel.by_campaign]),
        _table(
            "By team and source 按团队与渠道",
            ["team", *head],
            [[f.team, *row(f.key, f)] for f in r.funnel.by_team_source],
            2,
        ),
    ]


def _losses(r: Report, s: _Section) -> None:
    s.lines.append(f"{r.losses.lost} leads lost.")
    s.charts.append(_loss_chart(r))
    s.tables += [
        _table(
            "Stage × reason 阶段×原因",
            ["stage", "reason", "lost", "share"],
            [[c.stage, c.reason, c.lost, _pct(c.share)] for c in r.losses.by_stage_reason],
            2,
        ),
        _table(
            "Stage × reason × source × rep 阶段×原因×渠道×销售",
            ["stage", "reason", "source", "team", "rep", "lost"],
            [[x.stage, x.reason, x.source, x.team, x.rep, x.lost] for x in r.losses.rows],
            5,
        ),
    ]


def _bottlenecks(r: Report, s: _Section) -> None:
    def value(measure: str, v: float) -> str:
        return _pct(v) if measure == "loss_rate" else duration(v)

    s.tables += [
        _table(
            "Flagged 预警",
            ["team", "stage", "measure", "value", "baseline", "baseline of", "leads"],
            [
                [
                    b.team,
                    b.stage,
                    b.measure,
                    value(b.measure, b.value),
                    value(b.measure, b.baseline),
                    b.baseline_of,
                    b.leads,
                ]
                for b in r.bottlenecks.flagged
            ],
            3,
        ),
        _table(
            "Every stage 各阶段",
            ["team", "stage", "reached", "lost at", "loss rate", "left", "median time"],
            [
                [
                    x.team,
                    x.stage,
                    x.reached,
                    x.lost_at,
                    _pct(x.loss_rate),
                    x.left,
                    duration(x.median_ms),
                ]
                for x in r.bottlenecks.stages
            ],
            2,
        ),
    ]


def _levels(total: int, by_level: dict[str, int]) -> str:
    return f"{total} ({', '.join(f'L{k}: {v}' for k, v in by_level.items()) or '-'})"


def _accountability(r: Report, s: _Section) -> None:
    s.charts.append(_accountability_chart(r))
    s.tables.append(
        _table(
            "Ranking 排名",
            [
                "#",
                "team",
                "rep",
                "有效跟进率",
                "owed",
                "within SLA",
                "late",
                "missed",
                "pending",
                "SLA attainment",
                "breaches (by level)",
                "first touch p50",
                "owned",
                "won",
                "lost",
                "silent",
            ],
            [
                [
                    a.rank,
                    a.team,
                    a.rep,
                    _pct(a.effective_rate),
                    a.owed,
                    a.within_sla,
                    a.late,
                    a.missed,
                    a.pending,
                    _pct(a.sla_attainment),
                    _levels(a.breaches, a.breaches_by_level),
                    duration(a.first_touch_p50_ms),
                    a.owned,
                    a.won,
                    a.lost,
                    a.silent,
                ]
                for a in r.accountability.rows
            ],
            3,
        )
    )


def _silent(r: Report, s: _Section) -> None:
    x = r.silent
    s.lines.append(f"{x.silent} of {x.open_owned} owned open leads silent ({_pct(x.share)}).")
    s.tables.append(
        _table(
            "By rep 按销售",
            ["team", "rep", "silent"],
            [[y.team, y.rep, y.silent] for y in x.rows],
            2,
        )
    )


def _repurchase(r: Report, s: _Section) -> None:
    s.tables.append(
        _table(
            "By team 按团队",
            ["team", "won", "repeat won", "rate", "repeat amount"],
            [
                [x.team, x.won, x.repeat_won, _pct(x.rate), _money(x.repeat_cents)]
                for x in r.repurchase.rows
            ],
        )
    )


def _satisfaction(r: Report, s: _Section) -> None:
    s.tables.append(
        _table(
            "Ratings 评分",
            ["team", "rep", "ratings", "mean", "1", "2", "3", "4", "5"],
            [
                [
                    x.team,
                    x.rep,
                    x.ratings,
                    "-" if x.mean is None else f"{x.mean:.2f}",
                    *(x.scores.get(str(n), 0) for n in range(1, 6)),
                ]
                for x in r.satisfaction.rows
            ],
            2,
        )
    )


def _forecast(r: Report, s: _Section) -> None:
    s.charts.append(_forecast_chart(r))
    s.tables.append(
        _table(
            "Snapshots 快照",
            [
                "team",
                "month",
                "taken at",
                "weeks ahead",
                "weighted",
                "commit",
                "best case",
                "actual",
                "won",
                "accuracy",
            ],
            [
                [
                    x.team,
                    f"{x.month:%Y-%m}",
                    "-" if x.taken_at is None else f"{x.taken_at:%Y-%m-%d}",
                    "-" if x.age_weeks is None else x.age_weeks,
                    _money(x.weighted_cents),
                    _money(x.commit_cents),
                    _money(x.best_case_cents),
                    _money(x.actual_cents),
                    x.actual_won,
                    _pct(x.accuracy),
                ]
                for x in r.forecast.rows
            ],
            3,
        )
    )


def _trends(r: Report, s: _Section) -> None:
    s.charts.append(_trend_chart(r))
    s.tables += [
        _table(
            "Biggest movers 变化最大",
            ["dimension", "value", "previous", "leads", "change"],
            [
                [m.dimension, m.value, m.previous_leads, m.leads, f"{m.change:+d}"]
                for m in r.trends.movers
            ],
            2,
        ),
        _table(
            "Leads over time 线索走势",
            [
                "dimension",
                "value",
                "leads",
                "previous",
                "conversion",
                "previous conversion",
                "won amount",
                *r.trends.buckets,
            ],
            [
                [
                    t.dimension,
                    t.value,
                    t.leads,
                    t.previous_leads,
                    _pct(t.conversion),
                    _pct(t.previous_conversion),
                    _money(t.won_cents),
                    *(t.by_bucket.get(b, 0) for b in r.trends.buckets),
                ]
                for t in r.trends.rows
            ],
            2,
        ),
    ]


def _predictors(r: Report, s: _Section) -> None:
    line, rows = predictor_lines(r)
    s.lines.append(line)
    if rows:
        s.tables.append(_table("Attributes 属性", PREDICTOR_HEAD, rows, 4))


def _suggestions(r: Report, s: _Section) -> None:
    s.items = [x.text for x in r.suggestions]


_BUILDERS: dict[str, Callable[[Report, _Section], None]] = {
    "suggestions": _suggestions,
    "funnel": _funnel,
    "losses": _losses,
    "bottlenecks": _bottlenecks,
    "accountability": _accountability,
    "silent": _silent,
    "repurchase": _repurchase,
    "satisfaction": _satisfaction,
    "forecast": _forecast,
    "trends": _trends,
    "predictors": _predictors,
}


def render(report: Report) -> str:
    """The page; suggestions first after the summary, as in the Markdown."""
    titles = {key: (zh, en) for key, zh, en in SECTIONS}
    order = ["suggestions"] + [k for k, _, _ in SECTIONS if k != "suggestions"]
    sections = []
    for key in order:
        section = _Section(key, *titles[key])
        _BUILDERS[key](report, section)
        sections.append(section)
    return _TEMPLATE.render(
        r=report,
        scope=report.team or "all teams / 全部团队",
        won_amount=_money(report.funnel.total.won_cents),
        sections=sections,
    )
