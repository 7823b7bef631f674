"""The report's sections from a :class:`~leadloop_review.domain.tally.Tally`.

Baselines (docs/review.md): a team's stage is compared with the same team's previous
period when that had at least ``MIN_BASELINE`` leads in the stage, else with all teams
in this period. A stage is flagged when at least ``MIN_LEADS`` leads are behind it and
its loss rate is above ``LOSS_FACTOR`` × baseline (and at least ``LOSS_MARGIN`` above it)
or its median time above ``TIME_FACTOR`` × baseline (the Prometheus bottleneck alert's
factor).
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, replace
from datetime import date, datetime
from statistics import median

from leadloop_review.domain.model import (
    Accountability,
    AccountabilityRow,
    Bottleneck,
    Bottlenecks,
    DemandTrends,
    ForecastActual,
    ForecastRow,
    Funnel,
    FunnelRow,
    LossAttribution,
    LossCell,
    LossRow,
    Predictor,
    Predictors,
    Report,
    Repurchase,
    RepurchaseRow,
    Satisfaction,
    SatisfactionRow,
    SilentLeaks,
    SilentRow,
    StageStat,
    TrendRow,
)
from leadloop_review.domain.record import FUNNEL_STAGES, OPEN_STAGES
from leadloop_review.domain.score_model import ScoreModel, top_contributions
from leadloop_review.domain.suggest import suggestions
from leadloop_review.domain.tally import CURRENT, DIMENSIONS, PREVIOUS, FunnelTally, Tally

__all__ = [
    "LOSS_FACTOR",
    "MIN_LEADS",
    "TIME_FACTOR",
    "ForecastSnapshot",
    "build_report",
    "predictors",
]

MIN_LEADS = 20
MIN_BASELINE = 20
LOSS_FACTOR = 1.5
LOSS_MARGIN = 0.05
TIME_FACTOR = 2.0
MOVERS = 5

#: Whether a team is in the report.
Mine = Callable[[str], bool]


@dataclass(frozen=True, slots=True)
class ForecastSnapshot:
    """One row of metric_forecasts."""

    team: str
    month: date
    taken_at: datetime
    age: int
    weighted_cents: int
    commit_cents: int
    best_case_cents: int


def _ratio(a: int, b: int) -> float | None:
    return a / b if b else None


def _median(values: Iterable[int]) -> float | None:
    data = list(values)
    return float(median(data)) if data else None


def build_report(
    tally: Tally,
    until: datetime,
    team: str | None = None,
    snapshots: Iterable[ForecastSnapshot] = (),
    score_model: ScoreModel | None = None,
) -> Report:
    """The report of ``tally``'s period for ``team`` (None: all teams); what predicts
    winning from ``score_model`` when one is given."""

    def mine(t: str) -> bool:
        return team is None or t == team

    period = tally.period
    funnel = _funnel(tally, mine)
    losses = _losses(tally, mine)
    bottlenecks = _bottlenecks(tally, mine)
    accountability = _accountability(tally, mine)
    silent = _silent(tally, mine)
    report = Report(
        period=period.label,
        start=period.start,
        end=period.end,
        previous_period=period.previous().label,
        until=until,
        team=team,
        leads=funnel.total.leads,
        funnel=funnel,
        losses=losses,
        bottlenecks=bottlenecks,
        accountability=accountability,
        silent=silent,
        repurchase=_repurchase(tally, mine),
        satisfaction=_satisfaction(tally, mine),
        forecast=_forecast(tally, mine, until, snapshots),
        trends=_trends(tally, mine),
        predictors=predictors(score_model),
    )
    return replace(report, suggestions=suggestions(report))


def _funnel_row(key: str, parts: list[FunnelTally], team: str | None = None) -> FunnelRow:
    leads = sum(p.leads for p in parts)
    won = sum(p.won for p in parts)
    lost = sum(p.lost for p in parts)
    reached = {s: sum(p.reached.get(s, 0) for p in parts) for s in FUNNEL_STAGES}
    return FunnelRow(
        key=key,
        team=team,
        leads=leads,
        reached=reached,
        won=won,
        lost=lost,
        open=leads - won - lost,
        won_cents=sum(p.won_cents for p in parts),
        conversion=_ratio(won, leads),
        win_rate=_ratio(won, won + lost),
        first_touch_p50_ms=_median(ms for p in parts for ms in p.first_touch),
    )


def _funnel(tally: Tally, mine: Mine) -> Funnel:
    groups: dict[tuple[str, str], list[FunnelTally]] = defaultdict(list)
    for (part, t, dim, key), f in tally.funnel.items():
        if part == CURRENT and mine(t):
            groups[(dim, key)].append(f)

    def rows(dim: str) -> tuple[FunnelRow, ...]:
        out = [_funnel_row(k, v) for (d, k), v in groups.items() if d == dim]
        return tuple(sorted(out, key=lambda r: (-r.leads, r.key)))

    by_source = rows("source")
    total = _funnel_row("total", [f for (d, _), fs in groups.items() if d == "source" for f in fs])
    by_team = [
        _funnel_row(key, [f], t)
        for (part, t, dim, key), f in tally.funnel.items()
        if part == CURRENT and dim == "source" and mine(t)
    ]
    by_team.sort(key=lambda r: (r.team or "", -r.leads, r.key))
    return Funnel(
        total=total,
        by_source=by_source,
        by_campaign=rows("campaign"),
        by_team_source=tuple(by_team),
    )


def _losses(tally: Tally, mine: Mine) -> LossAttribution:
    rows = [
        LossRow(stage, reason, source, t, rep, n)
        for (t, stage, reason, source, rep), n in tally.losses.items()
        if mine(t)
    ]
    rows.sort(key=lambda r: (-r.lost, r.stage, r.reason, r.source, r.team, r.rep))
    lost = sum(r.lost for r in rows)
    cells: dict[tuple[str, str], int] = defaultdict(int)
    for r in rows:
        cells[(r.stage, r.reason)] += r.lost
    by_cell = sorted(
        (LossCell(s, reason, n, n / lost) for (s, reason), n in cells.items()),
        key=lambda c: (-c.lost, c.stage, c.reason),
    )
    return LossAttribution(lost=lost, by_stage_reason=tuple(by_cell), rows=tuple(rows))


def _bottlenecks(tally: Tally, mine: Mine) -> Bottlenecks:
    teams = sorted({t for (part, t, _) in tally.stages if part == CURRENT and mine(t)})
    stats: list[StageStat] = []
    flagged: list[Bottleneck] = []
    for stage in OPEN_STAGES:
        all_reached = sum(
            v[0] for (p, _, s), v in tally.stages.items() if p == CURRENT and s == stage
        )
        all_lost = sum(v[1] for (p, _, s), v in tally.stages.items() if p == CURRENT and s == stage)
        all_times = [
            ms for (p, _, s), a in tally.stage_ms.items() if p == CURRENT and s == stage for ms in a
        ]
        all_median = _median(all_times)
        for t in teams:
            reached, lost_at = tally.stages.get((CURRENT, t, stage), [0, 0])
            times = tally.stage_ms.get((CURRENT, t, stage), ())
            med = _median(times)
            if reached == 0 and not times:
                continue
            rate = _ratio(lost_at, reached)
            stats.append(StageStat(t, stage, reached, lost_at, rate, len(times), med))
            prev_reached, prev_lost = tally.stages.get((PREVIOUS, t, stage), [0, 0])
            if prev_reached >= MIN_BASELINE:
                base, of = prev_lost / prev_reached, "previous_period"
            else:
                base, of = (all_lost / all_reached if all_reached else 0.0), "all_teams"
            if (
                rate is not None
                and reached >= MIN_LEADS
                and rate > base * LOSS_FACTOR
                and rate - base >= LOSS_MARGIN
            ):
                flagged.append(Bottleneck(t, stage, "loss_rate", rate, base, of, reached))
            prev_times = tally.stage_ms.get((PREVIOUS, t, stage), ())
            if len(prev_times) >= MIN_BASELINE:
                tbase, tof = _median(prev_times), "previous_period"
            else:
                tbase, tof = all_median, "all_teams"
            if (
                med is not None
                and tbase is not None
                and len(times) >= MIN_LEADS
                and med > tbase * TIME_FACTOR
            ):
                flagged.append(Bottleneck(t, stage, "time_in_stage", med, tbase, tof, len(times)))

    def excess(b: Bottleneck) -> float:
        return b.value / b.baseline if b.baseline else float("inf")

    flagged.sort(key=lambda b: (-excess(b), b.team, b.stage, b.measure))
    stats.sort(key=lambda s: (s.team, OPEN_STAGES.index(s.stage)))
    return Bottlenecks(flagged=tuple(flagged), stages=tuple(stats))


def _accountability(tally: Tally, mine: Mine) -> Accountability:
    rows = []
    for (t, rep), r in tally.reps.items():
        if not mine(t):
            continue
        f = r.followups
        owed = f["within_sla"] + f["late"] + f["missed"]
        rows.append(
            AccountabilityRow(
                rank=0,
                team=t,
                rep=rep,
                owned=r.owned,
                owed=owed,
                within_sla=f["within_sla"],
                late=f["late"],
                missed=f["missed"],
                pending=f["pending"],
                effective_rate=_ratio(f["within_sla"], owed),
                sla_attainment=_ratio(r.clean, r.owned),
                breaches=sum(r.breaches.values()),
                breaches_by_level={str(k): v for k, v in sorted(r.breaches.items())},
                first_touch_p50_ms=_median(r.first_touch),
                won=r.won,
                lost=r.lost,
                silent=r.silent,
            )
        )
    rows.sort(
        key=lambda a: (
            a.effective_rate is None,
            a.effective_rate if a.effective_rate is not None else 0.0,
            -a.breaches,
            a.team,
            a.rep,
        )
    )
    return Accountability(tuple(replace(a, rank=n) for n, a in enumerate(rows, 1)))


def _silent(tally: Tally, mine: Mine) -> SilentLeaks:
    rows = [
        SilentRow(t, rep, r.silent) for (t, rep), r in tally.reps.items() if r.silent and mine(t)
    ]
    rows.sort(key=lambda r: (-r.silent, r.team, r.rep))
    silent = sum(r.silent for r in rows)
    open_owned = sum(n for t, n in tally.open_owned.items() if mine(t))
    return SilentLeaks(silent, open_owned, _ratio(silent, open_owned), tuple(rows))


def _repurchase(tally: Tally, mine: Mine) -> Repurchase:
    rows = [
        RepurchaseRow(t, won, repeat, _ratio(repeat, won), cents)
        for t, (won, repeat, cents) in sorted(tally.repurchase.items())
        if mine(t)
    ]
    return Repurchase(tuple(rows))


def _satisfaction_row(team: str, rep: str, counts: list[int]) -> SatisfactionRow:
    n = sum(counts)
    total = sum((i + 1) * c for i, c in enumerate(counts))
    scores = {str(i + 1): c for i, c in enumerate(counts)}
    return SatisfactionRow(team, rep, n, total / n if n else None, scores)


def _satisfaction(tally: Tally, mine: Mine) -> Satisfaction:
    teams: dict[str, list[int]] = defaultdict(lambda: [0] * 5)
    reps = []
    for (t, rep), counts in tally.ratings.items():
        if not mine(t):
            continue
        teams[t] = [a + b for a, b in zip(teams[t], counts, strict=True)]
        reps.append(_satisfaction_row(t, rep, counts))
    reps.sort(key=lambda r: (r.mean or 0.0, r.team, r.rep))
    rows = [_satisfaction_row(t, "*", c) for t, c in sorted(teams.items())]
    return Satisfaction(tuple(rows + reps))


def _forecast(
    tally: Tally, mine: Mine, until: datetime, snapshots: Iterable[ForecastSnapshot]
) -> ForecastActual:
    months = tally.period.months()
    rows: list[ForecastRow] = []
    covered: set[tuple[str, date]] = set()

    def ended(month: date) -> bool:
        nxt = date(month.year + (month.month == 12), month.month % 12 + 1, 1)
        return until.date() >= nxt

    for s in sorted(snapshots, key=lambda s: (s.team, s.month, s.taken_at)):
        if s.month not in months or not mine(s.team) or s.taken_at > until:
            continue
        won, cents = tally.actuals.get((s.team, s.month), [0, 0])
        accuracy = 1 - abs(s.weighted_cents - cents) / cents if cents and ended(s.month) else None
        covered.add((s.team, s.month))
        rows.append(
            ForecastRow(
                s.team,
                s.month,
                s.taken_at,
                s.age,
                s.weighted_cents,
                s.commit_cents,
                s.best_case_cents,
                cents,
                won,
                accuracy,
            )
        )
    for (t, month), (won, cents) in sorted(tally.actuals.items()):
        if (t, month) not in covered and mine(t):
            rows.append(ForecastRow(t, month, None, None, None, None, None, cents, won, None))
    rows.sort(key=lambda r: (r.team, r.month, r.taken_at is not None, r.taken_at or until))
    return ForecastActual(months, tuple(rows))


def _trends(tally: Tally, mine: Mine) -> DemandTrends:
    sums: dict[tuple[str, str, str], list[int]] = defaultdict(lambda: [0, 0, 0])
    for (part, t, dim, value), (leads, won, cents) in tally.trends.items():
        if mine(t):
            s = sums[(part, dim, value)]
            s[0] += leads
            s[1] += won
            s[2] += cents
    buckets: dict[tuple[str, str], dict[str, int]] = defaultdict(dict)
    names = tally.period.buckets()
    for (t, dim, value, b), n in tally.trend_buckets.items():
        if mine(t):
            row = buckets[(dim, value)]
            row[b] = row.get(b, 0) + n
    rows = []
    for dim in DIMENSIONS:
        values = {v for (_, d, v) in sums if d == dim}
        for value in values:
            cur = sums.get((CURRENT, dim, value), [0, 0, 0])
            prev = sums.get((PREVIOUS, dim, value), [0, 0, 0])
            by = buckets.get((dim, value), {})
            rows.append(
                TrendRow(
                    dimension=dim,
                    value=value,
                    leads=cur[0],
                    previous_leads=prev[0],
                    change=cur[0] - prev[0],
                    won=cur[1],
                    conversion=_ratio(cur[1], cur[0]),
                    previous_conversion=_ratio(prev[1], prev[0]),
                    won_cents=cur[2],
                    previous_won_cents=prev[2],
                    by_bucket={b: by.get(b, 0) for b in names},
                )
            )
    rows.sort(key=lambda r: (DIMENSIONS.index(r.dimension), -r.leads, r.value))
    movers = sorted(rows, key=lambda r: (-abs(r.change), r.dimension, r.value))[:MOVERS]
    return DemandTrends(names, tuple(rows), tuple(m for m in movers if m.change))


def predictors(model: ScoreModel | None) -> Predictors:
    """The score model's attributes, most predictive first (``top_contributions``)."""
    if model is None:
        return Predictors()
    rows = tuple(
        Predictor(
            c.attribute,
            c.share,
            c.logloss_drop,
            tuple((x.value, x.odds_ratio, x.leads) for x in c.best),
            tuple((x.value, x.odds_ratio, x.leads) for x in c.worst),
        )
        for c in top_contributions(model)
    )
    window = (model.window_from.isoformat(), model.window_to.isoformat())
    return Predictors(model.version, window, model.leads, model.won, rows)
