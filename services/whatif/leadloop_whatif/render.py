"""The comparison as JSON-ready data and as terminal tables."""

from __future__ import annotations

from typing import Any

from rich.console import Console
from rich.table import Table

from leadloop_whatif.domain.compare import Comparison, Side

__all__ = ["as_dict", "print_tables"]


def _side(s: Side) -> dict[str, Any]:
    return {
        "leads": s.leads,
        "teams": dict(s.teams),
        "reps": dict(s.reps),
        "first": dict(s.first),
        "open_at_end": dict(s.open_at_end),
        "spread": s.spread,
        "spread_cv": s.spread_cv,
        "pooled_first": s.pooled_first,
        "pool_peak": s.pool_peak,
        "pool_hourly": [[at.isoformat(), n] for at, n in s.pool],
        "breaches": {k: {str(lvl): n for lvl, n in v.items()} for k, v in s.breaches.items()},
        "breached_leads": {k: len(v) for k, v in s.breached_leads.items()},
        "reassigned": s.reassigned,
        "reclaimed": s.reclaimed,
        "from_pool": s.from_pool,
    }


def as_dict(c: Comparison, meta: dict[str, Any]) -> dict[str, Any]:
    f = c.fidelity
    return {
        **meta,
        "actual": _side(c.actual),
        "whatif": _side(c.whatif),
        "rescued": dict(c.rescued),
        "lost": dict(c.lost),
        "fidelity": {
            "exact": f.exact,
            "decisions": f.decisions,
            "decisions_matched": f.decisions_matched,
            "steps": f.steps,
            "steps_matched": f.steps_matched,
            "examples": list(f.examples),
        },
        "notes": list(c.notes),
    }


def _row(t: Table, name: str, a: int | float, w: int | float) -> None:
    d = w - a
    t.add_row(name, f"{a:g}", f"{w:g}", f"{d:+g}" if d else "")


def print_tables(c: Comparison, console: Console, title: str) -> None:
    a, w = c.actual, c.whatif
    console.print(title)
    t = Table("", "actual", "what-if", "change", title="the range")
    _row(t, "leads", a.leads, w.leads)
    _row(t, "pooled at first decision", a.pooled_first, w.pooled_first)
    _row(t, "pool peak", a.pool_peak, w.pool_peak)
    _row(t, "reassigned by escalation or departure", a.reassigned, w.reassigned)
    _row(t, "reclaimed into the pool", a.reclaimed, w.reclaimed)
    _row(t, "taken from the pool", a.from_pool, w.from_pool)
    _row(t, "spread (max − min leads per rep)", a.spread, w.spread)
    _row(t, "spread (coefficient of variation)", a.spread_cv, w.spread_cv)
    _row(
        t,
        "leads breached (first response, follow-up)",
        len(a.breached_leads),
        len(w.breached_leads),
    )
    t.add_row("rescued (breached, would not be)", "", str(c.rescued), "")
    t.add_row("lost to silence (would breach)", "", str(c.lost), "")
    console.print(t)
    b = Table("kind", "level", "actual", "what-if", "change", title="ladder steps fired")
    kinds = sorted(set(a.breaches) | set(w.breaches))
    for kind in kinds:
        levels = sorted(set(a.breaches.get(kind, {})) | set(w.breaches.get(kind, {})))
        for lvl in levels:
            x, y = a.breaches.get(kind, {}).get(lvl, 0), w.breaches.get(kind, {}).get(lvl, 0)
            b.add_row(kind, str(lvl), str(x), str(y), f"{y - x:+d}" if y != x else "")
    console.print(b)
    teams = Table("team", "actual", "what-if", "change", title="leads per team (first decision)")
    for team in sorted(set(a.teams) | set(w.teams)):
        _row(teams, team, a.teams.get(team, 0), w.teams.get(team, 0))
    console.print(teams)
    reps = Table(
        "rep", "leads", "what-if", "open at end", "what-if", title="leads per rep (all decisions)"
    )
    for rep in sorted(set(a.reps) | set(w.reps)):
        reps.add_row(
            rep,
            str(a.reps.get(rep, 0)),
            str(w.reps.get(rep, 0)),
            str(a.open_at_end.get(rep, 0)),
            str(w.open_at_end.get(rep, 0)),
        )
    console.print(reps)
    f = c.fidelity
    console.print(
        f"reproduced of the record: {f.decisions_matched}/{f.decisions} decisions, "
        f"{f.steps_matched}/{f.steps} ladder steps" + (" (exact)" if f.exact else "")
    )
    for note in c.notes:
        console.print(f"note: {note}")
