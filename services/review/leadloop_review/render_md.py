"""The report as Markdown: one bilingual heading per section (``SECTIONS``), tables with
the numbers a reader compares, suggestions first after the summary."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from leadloop_review.domain.model import SECTIONS, FunnelRow, Report
from leadloop_review.domain.record import FUNNEL_STAGES
from leadloop_review.domain.suggest import duration

__all__ = ["render"]

_TITLES = {key: f"{zh} {en}" for key, zh, en in SECTIONS}


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.1f} %"


def _money(cents: int | None) -> str:
    return "-" if cents is None else f"{cents / 100:,.2f}"


def _table(head: Sequence[str], rows: Iterable[Sequence[object]]) -> list[str]:
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    if len(lines) == 2:
        return ["(none)"]
    return lines


def render(report: Report) -> str:
    r = report
    scope = r.team or "all teams / 全部团队"
    out = [
        f"# 复盘 Review {r.period} — {scope}",
        "",
        f"{r.start:%Y-%m-%d} – {r.end:%Y-%m-%d} (UTC, end exclusive); facts up to "
        f"{r.until:%Y-%m-%d %H:%M} UTC; baseline period {r.previous_period}. "
        f"{r.leads} leads accepted, {r.funnel.total.won} won "
        f"({_money(r.funnel.total.won_cents)}), {r.losses.lost} lost.",
    ]
    sections = {
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
    order = ["suggestions"] + [k for k, _, _ in SECTIONS if k != "suggestions"]
    for key in order:
        out += ["", f"## {_TITLES[key]}", "", *sections[key](r)]
    return "\n".join(out) + "\n"


def _suggestions(r: Report) -> list[str]:
    return [f"- {s.text}" for s in r.suggestions] or ["(none)"]


def _funnel(r: Report) -> list[str]:
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
            _pct(f.conversion),
            _pct(f.win_rate),
            _money(f.won_cents),
            duration(f.first_touch_p50_ms),
        ]

    out = ["By source 按渠道", ""]
    out += _table(
        head, [row(f.key, f) for f in r.funnel.by_source] + [row("**total**", r.funnel.total)]
    )
    out += ["", "By campaign 按活动", ""]
    out += _table(head, [row(f.key, f) for f in r.funnel.by_campaign])
    out += ["", "By team and source 按团队与渠道", ""]
    out += _table(["team", *head], [[f.team, *row(f.key, f)] for f in r.funnel.by_team_source])
    return out


def _losses(r: Report) -> list[str]:
    out = [f"{r.losses.lost} leads lost.", ""]
    out += _table(
        ["stage", "reason", "lost", "share"],
        [[c.stage, c.reason, c.lost, _pct(c.share)] for c in r.losses.by_stage_reason],
    )
    out += ["", "Stage × reason × source × rep 阶段×原因×渠道×销售", ""]
    out += _table(
        ["stage", "reason", "source", "team", "rep", "lost"],
        [[x.stage, x.reason, x.source, x.team, x.rep, x.lost] for x in r.losses.rows],
    )
    return out


def _bottlenecks(r: Report) -> list[str]:
    def value(measure: str, v: float) -> str:
        return _pct(v) if measure == "loss_rate" else duration(v)

    out = _table(
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
    )
    out += ["", "Every stage 各阶段", ""]
    out += _table(
        ["team", "stage", "reached", "lost at", "loss rate", "left", "median time"],
        [
            [
                s.team,
                s.stage,
                s.reached,
                s.lost_at,
                _pct(s.loss_rate),
                s.left,
                duration(s.median_ms),
            ]
            for s in r.bottlenecks.stages
        ],
    )
    return out


def _levels(total: int, by_level: dict[str, int]) -> str:
    return f"{total} ({', '.join(f'L{k}: {v}' for k, v in by_level.items()) or '-'})"


def _accountability(r: Report) -> list[str]:
    return _table(
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
    )


def _silent(r: Report) -> list[str]:
    s = r.silent
    out = [f"{s.silent} of {s.open_owned} owned open leads silent ({_pct(s.share)}).", ""]
    return out + _table(["team", "rep", "silent"], [[x.team, x.rep, x.silent] for x in s.rows])


def _repurchase(r: Report) -> list[str]:
    return _table(
        ["team", "won", "repeat won", "rate", "repeat amount"],
        [
            [x.team, x.won, x.repeat_won, _pct(x.rate), _money(x.repeat_cents)]
            for x in r.repurchase.rows
        ],
    )


def _satisfaction(r: Report) -> list[str]:
    return _table(
        ["team", "rep", "ratings", "mean", "1", "2", "3", "4", "5"],
        [
            [
                x.team,
                x.rep,
                x.ratings,
                "-" if x.mean is None else f"{x.mean:.2f}",
                *(x.scores[str(n)] for n in range(1, 6)),
            ]
            for x in r.satisfaction.rows
        ],
    )


def _forecast(r: Report) -> list[str]:
    return _table(
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
    )


def _trends(r: Report) -> list[str]:
    out = ["Biggest movers 变化最大", ""]
    out += _table(
        ["dimension", "value", "previous", "leads", "change"],
        [
            [m.dimension, m.value, m.previous_leads, m.leads, f"{m.change:+d}"]
            for m in r.trends.movers
        ],
    )
    out += ["", "Leads over time 线索走势", ""]
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
    out += _table(
        head,
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
    )
    return out


def predictor_lines(r: Report) -> tuple[str, list[list[object]]]:
    """The section's summary line and table rows (shared by the HTML page)."""
    p = r.predictors
    if p.model is None:
        return (
            "No score model given: fit one with `leadloop score fit` and pass it with "
            "--score-model (docs/scoring.md). 未提供评分模型。",
            [],
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
    return line, rows


PREDICTOR_HEAD = ["attribute", "share", "raises the odds", "lowers the odds"]


def _predictors(r: Report) -> list[str]:
    line, rows = predictor_lines(r)
    return [line, "", *_table(PREDICTOR_HEAD, rows)] if rows else [line]
