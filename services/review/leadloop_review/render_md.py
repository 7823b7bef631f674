"""The report as Markdown: one bilingual heading per section (``SECTIONS``), tables with
the numbers a reader compares, suggestions first after the summary."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from leadloop_review.domain.model import SECTIONS, Report
from leadloop_review.sections import Content, content, money

__all__ = ["render"]

_TITLES = {key: f"{zh} {en}" for key, zh, en in SECTIONS}


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
        f"({money(r.funnel.total.won_cents)}), {r.losses.lost} lost.",
    ]
    order = ["suggestions"] + [k for k, _, _ in SECTIONS if k != "suggestions"]
    for key in order:
        out += ["", f"## {_TITLES[key]}", "", *_section(content(key, r))]
    return "\n".join(out) + "\n"


def _section(c: Content) -> list[str]:
    out: list[str] = []
    if c.items is not None:
        out += [f"- {item}" for item in c.items] or ["(none)"]
    for line in c.lines:
        out += [line, ""]
    for t in c.tables:
        rows = [*t.rows, *([t.total] if t.total is not None else [])]
        out += [t.title, "", *_table(t.head, rows), ""]
    while out and out[-1] == "":
        out.pop()
    return out
