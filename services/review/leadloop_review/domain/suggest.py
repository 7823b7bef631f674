"""Suggested actions, each derived from the report's own numbers by one explicit rule
and carrying those numbers as its evidence. The rules and their thresholds are listed
in docs/review.md; each has a unit test that makes it fire and one that keeps it quiet.

- ``loss_concentration``: one stage × reason takes at least ``LOSS_SHARE`` of a team's
  leads from one source (``MIN_LEADS`` leads, ``MIN_LOST`` lost), with the first-touch
  median of that source beside the team's fastest source.
- ``bottleneck``: every flagged bottleneck.
- ``follow_up``: a rep's 有效跟进率 below ``FOLLOW_UP_FLOOR`` on ``MIN_OWED`` decided leads.
- ``silent_leaks``: a team with ``MIN_SILENT`` or more silent leads.
- ``demand_shift``: a product, industry or region whose leads changed by ``SHIFT_SHARE``
  of the previous period and by ``MIN_SHIFT`` leads.
- ``forecast_miss``: a closed month's snapshot whose accuracy is below ``ACCURACY_FLOOR``.
"""

from __future__ import annotations

from collections import defaultdict

from leadloop_review.domain.model import Report, Suggestion

__all__ = ["duration", "suggestions"]

MIN_LEADS = 20
MIN_LOST = 10
LOSS_SHARE = 0.2
FOLLOW_UP_FLOOR = 0.8
MIN_OWED = 10
MIN_SILENT = 5
SHIFT_SHARE = 0.5
MIN_SHIFT = 20
ACCURACY_FLOOR = 0.7
#: Reasons a faster first touch addresses.
_REACH = frozenset({"no_response", "invalid_contact"})


def duration(ms: float | None) -> str:
    """``6 min``, ``3.2 h``, ``2.5 d``; ``-`` for none."""
    if ms is None:
        return "-"
    minutes = ms / 60_000
    if minutes < 1:
        return f"{ms / 1000:.0f} s"
    if minutes < 90:
        return f"{minutes:.0f} min"
    if minutes < 48 * 60:
        return f"{minutes / 60:.1f} h"
    return f"{minutes / 1440:.1f} d"


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x * 100:.0f} %"


def suggestions(report: Report) -> tuple[Suggestion, ...]:
    return (
        *_loss_concentration(report),
        *_bottlenecks(report),
        *_follow_up(report),
        *_silent(report),
        *_demand(report),
        *_forecast(report),
    )


def _loss_concentration(report: Report) -> list[Suggestion]:
    rows = {(r.team, r.key): r for r in report.funnel.by_team_source}
    lost: dict[tuple[str, str, str, str], int] = defaultdict(int)
    for r in report.losses.rows:
        lost[(r.team, r.source, r.stage, r.reason)] += r.lost
    out = []
    for (team, source, stage, reason), n in sorted(lost.items(), key=lambda kv: (-kv[1], kv[0])):
        row = rows.get((team, source))
        if row is None or row.leads < MIN_LEADS or n < MIN_LOST or n / row.leads < LOSS_SHARE:
            continue
        peers = [
            r
            for (t, _), r in rows.items()
            if t == team and r.leads >= MIN_LEADS and r.first_touch_p50_ms is not None
        ]
        best = min(peers, key=lambda r: (r.first_touch_p50_ms or 0.0, r.key), default=None)
        share = n / row.leads
        text = f"{team}: {_pct(share)} of {source} leads lost at {stage} for {reason}"
        if best is not None and best.key != source:
            text += (
                f"; first touch p50 {duration(row.first_touch_p50_ms)} against "
                f"{duration(best.first_touch_p50_ms)} for {best.key}"
            )
        text += (
            f" — answer {source} leads sooner"
            if reason in _REACH
            else f" — review why {source} leads are lost at {stage}"
        )
        out.append(
            Suggestion(
                "loss_concentration",
                team,
                text,
                {
                    "source": source,
                    "stage": stage,
                    "reason": reason,
                    "lost": n,
                    "leads": row.leads,
                    "share": share,
                    "first_touch_p50_ms": row.first_touch_p50_ms,
                    "fastest_source": best.key if best is not None else None,
                    "fastest_first_touch_p50_ms": (
                        best.first_touch_p50_ms if best is not None else None
                    ),
                },
            )
        )
    return out


def _bottlenecks(report: Report) -> list[Suggestion]:
    out = []
    for b in report.bottlenecks.flagged:
        base = "its previous period" if b.baseline_of == "previous_period" else "all teams"
        if b.measure == "loss_rate":
            what = (
                f"loses {_pct(b.value)} of leads at {b.stage} against {_pct(b.baseline)} for {base}"
            )
        else:
            what = (
                f"keeps leads in {b.stage} {duration(b.value)} (median) against "
                f"{duration(b.baseline)} for {base}"
            )
        out.append(
            Suggestion(
                "bottleneck",
                b.team,
                f"{b.team} {what} on {b.leads} leads — unblock {b.stage}",
                {
                    "stage": b.stage,
                    "measure": b.measure,
                    "value": b.value,
                    "baseline": b.baseline,
                    "baseline_of": b.baseline_of,
                    "leads": b.leads,
                },
            )
        )
    return out


def _follow_up(report: Report) -> list[Suggestion]:
    out = []
    for a in report.accountability.rows:
        if a.effective_rate is None or a.owed < MIN_OWED or a.effective_rate >= FOLLOW_UP_FLOOR:
            continue
        out.append(
            Suggestion(
                "follow_up",
                a.team,
                f"{a.team}: rep {a.rep} followed up {_pct(a.effective_rate)} of {a.owed} leads "
                f"within SLA ({a.late} late, {a.missed} missed) — coach or rebalance their load",
                {
                    "rep": a.rep,
                    "effective_rate": a.effective_rate,
                    "owed": a.owed,
                    "late": a.late,
                    "missed": a.missed,
                    "breaches": a.breaches,
                },
            )
        )
    return out


def _silent(report: Report) -> list[Suggestion]:
    teams: dict[str, int] = defaultdict(int)
    for r in report.silent.rows:
        teams[r.team] += r.silent
    return [
        Suggestion(
            "silent_leaks",
            team,
            f"{team}: {n} owned leads silent — call, close or return them to the pool",
            {"silent": n},
        )
        for team, n in sorted(teams.items())
        if n >= MIN_SILENT
    ]


def _demand(report: Report) -> list[Suggestion]:
    out = []
    team = report.team or "all"
    for m in report.trends.movers:
        if m.previous_leads == 0 or abs(m.change) < MIN_SHIFT:
            continue
        share = m.change / m.previous_leads
        if abs(share) < SHIFT_SHARE:
            continue
        if m.change > 0:
            action = "route and staff for it"
        else:
            action = "check the channels and campaigns that brought it"
        out.append(
            Suggestion(
                "demand_shift",
                team,
                f"{m.dimension} {m.value}: {m.previous_leads} → {m.leads} leads "
                f"({'+' if share > 0 else ''}{share * 100:.0f} %) — {action}",
                {
                    "dimension": m.dimension,
                    "value": m.value,
                    "leads": m.leads,
                    "previous_leads": m.previous_leads,
                    "change": share,
                },
            )
        )
    return out


def _forecast(report: Report) -> list[Suggestion]:
    return [
        Suggestion(
            "forecast_miss",
            r.team,
            f"{r.team}: forecast of {r.month:%Y-%m} {r.age_weeks} "
            f"week{'' if r.age_weeks == 1 else 's'} ahead was "
            f"{_pct(r.accuracy)} accurate — check the expected close dates in the CRM",
            {
                "month": r.month.isoformat(),
                "age_weeks": r.age_weeks,
                "weighted_cents": r.weighted_cents,
                "actual_cents": r.actual_cents,
                "accuracy": r.accuracy,
            },
        )
        for r in report.forecast.rows
        if r.accuracy is not None and r.accuracy < ACCURACY_FLOOR
    ]
