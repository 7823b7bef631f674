"""What each section of the report says, independent of the format: its lines of text,
its tables (bilingual titles, headers, formatted cells) and, for the suggestions, a list.
The Markdown and the HTML renderers lay these out; the HTML page adds its charts."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from leadloop_review.domain.model import FunnelRow, Report
from leadloop_review.domain.record import FUNNEL_STAGES
from leadloop_review.domain.suggest import duration

__all__ = ["Content", "Table", "content", "money", "pct"]


@dataclass
class Table:
    title: str
    head: list[str]
    rows: list[list[object]]
    #: How many leading columns are text (left-aligned); the rest are numbers.
    text_cols: int = 1
    #: A totals row after the others, when the table has one.
    total: list[object] | None = None


@dataclass
class Content:
    lines: list[str] = field(default_factory=list)
    tables: list[Table] = field(default_factory=list)
    #: A bulleted list (the suggestions); None for a section without one.
    items: list[str] | None = None


def pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f} %"


def money(cents: int | None) -> str:
    return "-" if cents is None else f"{cents / 100:,.2f}"


def _levels(total: int, by_level: dict[str, int]) -> str:
    return f"{total} ({', '.join(f'L{k}: {v}' for k, v in by_level.items()) or '-'})"


def _suggestions(r: Report) -> Content:
    return Content(items=[s.text for s in r.suggestions])


def _funnel(r: Report) -> Content:
    stages = [s for s in FUNNEL_STAGES if s not in ("new", "won", "lost")]
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
            *(f.reached.get(s, 0) for s in stages),
            f.won,
            f.lost,
            f.open,
            pct(f.conversion),
            pct(f.win_rate),
            money(f.won_cents),
            duration(f.first_touch_p50_ms),
        ]

    return Content(
        tables=[
            Table(
                "By source 按渠道",
                head,
                [row(f.key, f) for f in r.funnel.by_source],
                total=row("total 合计", r.funnel.total),
            ),
            Table("By campaign 按活动", head, [row(f.key, f) for f in r.funnel.by_campaign]),
            Table(
                "By team and source 按团队与渠道",
                ["team", *head],
                [[f.team, *row(f.key, f)] for f in r.funnel.by_team_source],
                2,
            ),
        ]
    )


def _losses(r: Report) -> Content:
    return Content(
        [f"{r.losses.lost} leads lost."],
        [
            Table(
                "Stage × reason 阶段×原因",
                ["stage", "reason", "lost", "share"],
                [[c.stage, c.reason, c.lost, pct(c.share)] for c in r.losses.by_stage_reason],
                2,
            ),
            Table(
                "Stage × reason × source × rep 阶段×原因×渠道×销售",
                ["stage", "reason", "source", "team", "rep", "lost"],
                [[x.stage, x.reason, x.source, x.team, x.rep, x.lost] for x in r.losses.rows],
                5,
            ),
        ],
    )


def _bottlenecks(r: Report) -> Content:
    def value(measure: str, v: float) -> str:
        return pct(v) if measure == "loss_rate" else duration(v)

    flagged = [
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
    ]
    stages = [
        [x.team, x.stage, x.reached, x.lost_at, pct(x.loss_rate), x.left, duration(x.median_ms)]
        for x in r.bottlenecks.stages
    ]
    return Content(
        tables=[
            Table(
                "Flagged 预警",
                ["team", "stage", "measure", "value", "baseline", "baseline of", "leads"],
                flagged,
                3,
            ),
            Table(
                "Every stage 各阶段",
                ["team", "stage", "reached", "lost at", "loss rate", "left", "median time"],
                stages,
                2,
            ),
        ]
    )


def _accountability(r: Report) -> Content:
    head = [
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
    ]
    rows: list[list[object]] = [
        [
            a.rank,
            a.team,
            a.rep,
            pct(a.effective_rate),
            a.owed,
            a.within_sla,
            a.late,
            a.missed,
            a.pending,
            pct(a.sla_attainment),
            _levels(a.breaches, a.breaches_by_level),
            duration(a.first_touch_p50_ms),
            a.owned,
            a.won,
            a.lost,
            a.silent,
        ]
        for a in r.accountability.rows
    ]
    return Content(tables=[Table("Ranking 排名", head, rows, 3)])


def _silent(r: Report) -> Content:
    s = r.silent
    return Content(
        [f"{s.silent} of {s.open_owned} owned open leads silent ({pct(s.share)})."],
        [
            Table(
                "By rep 按销售",
                ["team", "rep", "silent"],
                [[x.team, x.rep, x.silent] for x in s.rows],
                2,
            )
        ],
    )


def _repurchase(r: Report) -> Content:
    rows: list[list[object]] = [
        [x.team, x.won, x.repeat_won, pct(x.rate), money(x.repeat_cents)] for x in r.repurchase.rows
    ]
    head = ["team", "won", "repeat won", "rate", "repeat amount"]
    return Content(tables=[Table("By team 按团队", head, rows)])


def _satisfaction(r: Report) -> Content:
    rows: list[list[object]] = [
        [
            x.team,
            x.rep,
            x.ratings,
            "-" if x.mean is None else f"{x.mean:.2f}",
            *(x.scores.get(str(n), 0) for n in range(1, 6)),
        ]
        for x in r.satisfaction.rows
    ]
    head = ["team", "rep", "ratings", "mean", "1", "2", "3", "4", "5"]
    return Content(tables=[Table("Ratings 评分", head, rows, 2)])


def _forecast(r: Report) -> Content:
    head = [
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
    ]
    rows: list[list[object]] = [
        [
            x.team,
            f"{x.month:%Y-%m}",
            "-" if x.taken_at is None else f"{x.taken_at:%Y-%m-%d}",
            "-" if x.age_weeks is None else x.age_weeks,
            money(x.weighted_cents),
            money(x.commit_cents),
            money(x.best_case_cents),
            money(x.actual_cents),
            x.actual_won,
            pct(x.accuracy),
        ]
        for x in r.forecast.rows
    ]
    return Content(tables=[Table("Snapshots 快照", head, rows, 3)])


def _trends(r: Report) -> Content:
    movers: list[list[object]] = [
        [m.dimension, m.value, m.previous_leads, m.leads, f"{m.change:+d}"] for m in r.trends.movers
    ]
    head = [
        "dimension",
        "value",
        "leads",
        "previous",
        "conversion",
        "previous conversion",
        "won amount",
        *r.trends.buckets,
    ]
    rows: list[list[object]] = [
        [
            t.dimension,
            t.value,
            t.leads,
            t.previous_leads,
            pct(t.conversion),
            pct(t.previous_conversion),
            money(t.won_cents),
            *(t.by_bucket.get(b, 0) for b in r.trends.buckets),
        ]
        for t in r.trends.rows
    ]
    return Content(
        tables=[
            Table(
                "Biggest movers 变化最大",
                ["dimension", "value", "previous", "leads", "change"],
                movers,
                2,
            ),
            Table("Leads over time 线索走势", head, rows, 2),
        ]
    )


def _predictors(r: Report) -> Content:
    p = r.predictors
    if p.model is None:
        return Content(
            [
                "No score model given: fit one with `leadloop score fit` and pass it with "
                "--score-model (docs/scoring.md). 未提供评分模型。"
            ]
        )
    first, last = p.window or ("?", "?")
    line = (
        f"Score model {p.model}, learned from {p.leads} leads closed {first} – {last} "
        f"({p.won} won); odds against the average lead, most predictive attribute first."
    )

    def levels(xs: tuple[tuple[str, float, int], ...]) -> str:
        return ", ".join(f"{v} ×{odds:.2f} ({n})" for v, odds, n in xs) or "-"

    rows: list[list[object]] = [
        [x.attribute, f"{x.share * 100:.0f} %", levels(x.best), levels(x.worst)] for x in p.rows
    ]
    head = ["attribute", "share", "raises the odds", "lowers the odds"]
    return Content([line], [Table("Attributes 属性", head, rows, 4)])


_CONTENT: dict[str, Callable[[Report], Content]] = {
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


def content(key: str, report: Report) -> Content:
    """The section ``key`` of ``SECTIONS`` for ``report``."""
    return _CONTENT[key](report)
