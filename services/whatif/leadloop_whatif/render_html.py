"""The comparison as one self-contained HTML page: the tables of the terminal report and
three charts (the pool over time, ladder steps by kind and level, leads per rep), each an
inline SVG drawn by matplotlib. No network, no script beyond a check that marks the body
``data-ready="yes"`` once every chart has drawn a non-empty box (the headless-browser
test reads it)."""

from __future__ import annotations

import io
from typing import Any

import matplotlib

matplotlib.use("svg")  # no display; SVG text stays text

import matplotlib.pyplot as plt
from jinja2 import Environment, select_autoescape
from markupsafe import Markup

__all__ = ["render"]

_ACTUAL, _WHATIF = "#6b7280", "#2563eb"

_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8">
<title>what-if {{ r.rule_version }} · {{ r["from"] }} – {{ r["to"] }}</title>
<style>
body { font-family: system-ui, sans-serif; margin: 2rem; color: #111827; max-width: 72rem; }
table { border-collapse: collapse; margin: 0.5rem 0 1.5rem; }
th, td { padding: 0.2rem 0.8rem; border-bottom: 1px solid #e5e7eb; text-align: right; }
th:first-child, td:first-child { text-align: left; }
.up { color: #b91c1c; } .down { color: #15803d; }
figure { margin: 0 0 2rem; } .note { color: #6b7280; font-size: 0.9rem; }
</style></head>
<body data-ready="no">
<h1>What-if of rule set {{ r.rule_version }}</h1>
<p>{{ r["from"] }} – {{ r["to"] }}: {{ r.actual.leads }} leads replayed.
Reproduced of the record: {{ r.fidelity.decisions_matched }}/{{ r.fidelity.decisions }}
decisions, {{ r.fidelity.steps_matched }}/{{ r.fidelity.steps }} ladder steps.</p>
<h2>The range</h2>
<table><tr><th></th><th>actual</th><th>what-if</th><th>change</th></tr>
{% for name, a, w in rows %}<tr><td>{{ name }}</td>
<td>{{ "" if a is none else a }}</td><td>{{ w }}</td>
<td class="{{ cls(a, w) }}">{{ delta(a, w) }}</td></tr>
{% endfor %}</table>
<h2>Pool over time</h2><figure>{{ charts.pool }}</figure>
<h2>Ladder steps fired</h2><figure>{{ charts.steps }}</figure>
<h2>Leads per rep</h2><figure>{{ charts.reps }}</figure>
{% for note in r.notes %}<p class="note">Note: {{ note }}</p>{% endfor %}
<script>
const svgs = document.querySelectorAll("figure svg");
let drawn = 0;
svgs.forEach(s => { const b = s.getBBox(); if (b.width > 0 && b.height > 0) drawn++; });
document.body.dataset.svgs = svgs.length;
document.body.dataset.drawn = drawn;
document.body.dataset.ready = (svgs.length > 0 && drawn === svgs.length) ? "yes" : "no";
</script>
</body></html>
"""


def _svg(fig: Any) -> Markup:
    buf = io.StringIO()
    fig.savefig(buf, format="svg", bbox_inches="tight")
    plt.close(fig)
    text = buf.getvalue()
    return Markup(text[text.index("<svg") :])  # noqa: S704 - matplotlib's own SVG


def _pool(r: dict[str, Any]) -> Markup:
    fig, ax = plt.subplots(figsize=(10, 3))
    for side, colour, label in (("actual", _ACTUAL, "actual"), ("whatif", _WHATIF, "what-if")):
        points = r[side]["pool_hourly"]
        ax.step(
            range(len(points)),
            [n for _, n in points],
            where="post",
            color=colour,
            label=label,
            marker="o" if len(points) < 30 else None,
        )
    ax.set_xlabel("hours from the start of the range")
    ax.set_ylim(bottom=0)
    ax.set_ylabel("leads waiting")
    ax.legend()
    return _svg(fig)


def _bars(labels: list[str], actual: list[int], whatif: list[int], ylabel: str) -> Markup:
    fig, ax = plt.subplots(figsize=(10, 3.5))
    xs = range(len(labels))
    ax.bar([x - 0.2 for x in xs], actual, width=0.4, color=_ACTUAL, label="actual")
    ax.bar([x + 0.2 for x in xs], whatif, width=0.4, color=_WHATIF, label="what-if")
    ax.set_xticks(list(xs), labels, rotation=45 if len(labels) > 8 else 0, ha="right")
    ax.set_ylabel(ylabel)
    ax.legend()
    return _svg(fig)


def _steps(r: dict[str, Any]) -> Markup:
    a, w = r["actual"]["breaches"], r["whatif"]["breaches"]
    keys = sorted({(k, lvl) for side in (a, w) for k, levels in side.items() for lvl in levels})
    labels = [f"{k} L{lvl}" for k, lvl in keys]
    return _bars(
        labels,
        [a.get(k, {}).get(lvl, 0) for k, lvl in keys],
        [w.get(k, {}).get(lvl, 0) for k, lvl in keys],
        "steps fired",
    )


def _reps(r: dict[str, Any]) -> Markup:
    a, w = r["actual"]["reps"], r["whatif"]["reps"]
    reps = sorted(set(a) | set(w))
    return _bars(reps, [a.get(x, 0) for x in reps], [w.get(x, 0) for x in reps], "leads")


def _delta(a: float | None, w: float) -> str:
    return f"{w - a:+g}" if a is not None and w != a else ""


def _cls(a: float | None, w: float) -> str:
    if a is None or w == a:
        return ""
    return "up" if w > a else "down"


def render(report: dict[str, Any]) -> str:
    """The page of a report as ``render.as_dict`` makes it."""
    a, w = report["actual"], report["whatif"]
    rows: list[tuple[str, float | None, float]] = [
        ("leads", a["leads"], w["leads"]),
        ("pooled at first decision", a["pooled_first"], w["pooled_first"]),
        ("pool peak", a["pool_peak"], w["pool_peak"]),
        ("reassigned", a["reassigned"], w["reassigned"]),
        ("reclaimed into the pool", a["reclaimed"], w["reclaimed"]),
        ("taken from the pool", a["from_pool"], w["from_pool"]),
        ("spread (max − min leads per rep)", a["spread"], w["spread"]),
        ("spread (coefficient of variation)", a["spread_cv"], w["spread_cv"]),
    ]
    for kind in sorted(a["breached_leads"]):
        name = kind.replace("_", " ")
        rows.append(
            (f"leads breached: {name}", a["breached_leads"][kind], w["breached_leads"][kind])
        )
        rows.append((f"  rescued ({name})", None, report["rescued"][kind]))
        rows.append((f"  lost to silence ({name})", None, report["lost"][kind]))
    env = Environment(autoescape=select_autoescape(default=True))
    page = env.from_string(_PAGE)
    charts = {"pool": _pool(report), "steps": _steps(report), "reps": _reps(report)}
    return page.render(r=report, rows=rows, charts=charts, delta=_delta, cls=_cls)
