"""Pipeline forecast per team and calendar month, and how accurate it turned out.

**Probabilities.** For each team and open stage, the chance that a lead which reached
that stage is won, learned from the team's own closed leads and smoothed toward a fixed
per-stage table (:data:`FIXED_TABLE`): ``(won + strength × prior) / (closed + strength)``,
the mean of a Beta posterior whose prior is worth ``strength`` leads. A team with no
closed lead gets the table; with many, its own rates. Only closed leads count, so a lead
still open tells nothing yet (the rates of young teams lean on the table longer).

**Forecast of a month.** What the team has already won in the month (at face value: it
is part of the actual the forecast is measured against, and a snapshot late in the
month would otherwise forecast only the rest), plus, over the open leads whose
``expected_close`` falls in the month:

- ``weighted``: Σ amount × p(team, stage);
- ``commit``: Σ amount of those in ``negotiation`` (the last open stage: terms are being
  agreed, the rep commits to them);
- ``best_case``: Σ amount of all of them (every one of them is won).

So ``won ≤ commit ≤ best_case`` and ``won ≤ weighted ≤ best_case``. A lead without an
expected close date is in no month's forecast, and neither is one dated in a month
already past: the forecast is of the amount the CRM says will close in that month.
Amounts are in cents; ``weighted`` is rounded to a cent once, after an exact sum, so it
does not depend on the order of the leads.

**Snapshots** are taken at fixed instants (:func:`snapshot_due`: 00:00 UTC on the 1st of
every month and on every Monday), for the current and the next month. A snapshot's age
is the number of whole weeks from it to the month's end (:func:`snapshot_age`, 0 to
:data:`MAX_AGE`). When a month closes, each age's accuracy is
``1 − |forecast − actual| / actual`` (:func:`accuracy`; below 0 when the forecast is off
by more than the actual, none when nothing was won), where ``actual`` is the amount the
team won in that month (by the time of the win), with the earliest snapshot of each age.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, date, datetime, time, timedelta

from leadloop_metrics.domain.leads import LeadState, current_stage

__all__ = [
    "FIXED_TABLE",
    "FORECAST_STAGES",
    "MAX_AGE",
    "ClosedLead",
    "Forecast",
    "ForecastStep",
    "OpenLead",
    "Pipeline",
    "Probabilities",
    "Snapshot",
    "WonLead",
    "accuracy",
    "accuracy_by_age",
    "accuracy_gauges",
    "closed_lead",
    "forecast",
    "forecast_gauges",
    "forecast_step",
    "learned_probabilities",
    "month_end",
    "month_of",
    "next_month",
    "open_lead",
    "pipeline_of",
    "previous_month",
    "snapshot_age",
    "snapshot_due",
    "take_snapshot",
    "won_in_month",
    "won_lead",
]

#: The open stages, in funnel order (``leads.OPEN_STAGES``).
FORECAST_STAGES = ("new", "assigned", "contacted", "qualified", "proposal", "negotiation")

#: P(won | the lead reached the stage): a common sales rule of thumb, not measured on
#: leadloop's data. It is the prior of the learned rates and what a team without closed
#: leads is forecast with.
FIXED_TABLE: Mapping[str, float] = {
    "new": 0.05,
    "assigned": 0.08,
    "contacted": 0.12,
    "qualified": 0.25,
    "proposal": 0.40,
    "negotiation": 0.60,
}

#: The stage whose leads make the commit forecast.
COMMIT_STAGE = "negotiation"

#: Snapshots cover the current and the next month: at most 62 days, 8 whole weeks.
MAX_AGE = 8

WEEK = timedelta(days=7)


@dataclass(frozen=True, slots=True)
class ClosedLead:
    """A won or lost lead, with every open stage it was seen to reach."""

    team: str
    reached: frozenset[str]
    won: bool


@dataclass(frozen=True, slots=True)
class OpenLead:
    team: str
    stage: str
    amount_cents: int
    #: The latest expected close date the CRM gave (None: not in any forecast).
    expected_close: date | None


@dataclass(frozen=True, slots=True)
class WonLead:
    team: str
    won_at: datetime
    amount_cents: int


@dataclass(frozen=True, slots=True)
class Probabilities:
    """P(won | stage) per team; a team or stage not learned gets ``default``'s."""

    by_team: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    default: Mapping[str, float] = field(default_factory=lambda: FIXED_TABLE)

    def p(self, team: str, stage: str) -> float:
        table = self.by_team.get(team, self.default)
        return table.get(stage, self.default.get(stage, 0.0))

    def table(self, team: str) -> dict[str, float]:
        return {stage: self.p(team, stage) for stage in FORECAST_STAGES}


@dataclass(frozen=True, slots=True)
class Forecast:
    weighted_cents: int = 0
    commit_cents: int = 0
    best_case_cents: int = 0


@dataclass(frozen=True, slots=True)
class Snapshot:
    team: str
    #: The forecast month, as its first day.
    month: date
    taken_at: datetime
    age: int
    forecast: Forecast
    #: The P(won | stage) the weighted forecast used.
    probabilities: Mapping[str, float]


def learned_probabilities(
    history: Iterable[ClosedLead],
    prior: Mapping[str, float] = FIXED_TABLE,
    strength: float = 10.0,
) -> Probabilities:
    """Per team and open stage, (won + strength·prior) / (closed + strength) over the
    closed leads that reached the stage. ``strength`` > 0 is the prior's weight in leads."""
    if strength <= 0:
        raise ValueError("strength must be positive")
    closed: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FORECAST_STAGES, 0))
    won: dict[str, dict[str, int]] = defaultdict(lambda: dict.fromkeys(FORECAST_STAGES, 0))
    for lead in history:
        for stage in FORECAST_STAGES:
            if stage in lead.reached:
                closed[lead.team][stage] += 1
                won[lead.team][stage] += lead.won
    by_team = {
        team: {
            stage: (won[team][stage] + strength * prior[stage]) / (closed[team][stage] + strength)
            for stage in FORECAST_STAGES
        }
        for team in closed
    }
    return Probabilities(by_team, prior)


def month_of(d: date | datetime) -> date:
    """The month of a date or a UTC instant, as its first day."""
    if isinstance(d, datetime):
        d = d.astimezone(UTC).date()
    return d.replace(day=1)


def next_month(month: date) -> date:
    return date(month.year + month.month // 12, month.month % 12 + 1, 1)


def previous_month(month: date) -> date:
    return date(month.year - (month.month == 1), (month.month - 2) % 12 + 1, 1)


def month_end(month: date) -> datetime:
    """00:00 UTC on the first day of the following month."""
    return datetime.combine(next_month(month), time(), UTC)


def forecast(
    open_leads: Iterable[OpenLead],
    probabilities: Probabilities,
    month: date,
    wins: Iterable[WonLead] = (),
) -> dict[str, Forecast]:
    """Per team, the forecast of ``month`` (its first day): the ``wins`` in the month and
    the open leads dated in it. Teams with neither are absent (their forecast is zero)."""
    won = won_in_month(wins, month)
    weighted: dict[str, list[float]] = defaultdict(list)
    commit: dict[str, int] = defaultdict(int, won)
    best: dict[str, int] = defaultdict(int, won)
    for team, cents in won.items():
        weighted[team].append(float(cents))
    for lead in open_leads:
        if lead.expected_close is None or month_of(lead.expected_close) != month:
            continue
        weighted[lead.team].append(lead.amount_cents * probabilities.p(lead.team, lead.stage))
        best[lead.team] += lead.amount_cents
        if lead.stage == COMMIT_STAGE:
            commit[lead.team] += lead.amount_cents
    return {
        team: Forecast(round(math.fsum(weighted[team])), commit[team], best[team]) for team in best
    }


def won_in_month(wins: Iterable[WonLead], month: date) -> dict[str, int]:
    """Per team, the amount won in ``month`` (by the time of the win)."""
    out: dict[str, int] = defaultdict(int)
    for w in wins:
        if month_of(w.won_at) == month:
            out[w.team] += w.amount_cents
    return dict(out)


def accuracy(forecast_cents: int, actual_cents: int) -> float | None:
    """1 − |forecast − actual| / actual; None when nothing was won."""
    if actual_cents == 0:
        return None
    return 1 - abs(forecast_cents - actual_cents) / actual_cents


def snapshot_age(taken_at: datetime, month: date) -> int:
    """Whole weeks from ``taken_at`` to the end of ``month``, within 0 to MAX_AGE."""
    weeks = (month_end(month) - taken_at) // WEEK
    return min(max(weeks, 0), MAX_AGE)


def _instants_from(day: date) -> Iterable[datetime]:
    while True:
        if day.day == 1 or day.weekday() == 0:
            yield datetime.combine(day, time(), UTC)
        day += timedelta(days=1)


def snapshot_due(now: datetime, last: datetime | None) -> list[datetime]:
    """The snapshot instants after ``last`` and up to ``now``, oldest first.

    With no snapshot taken yet, only the latest instant up to ``now``: a forecast can
    be taken only of the pipeline as it is, so a first start does not invent a past. For
    the same reason a job that was stopped over several instants should take only the
    last one it finds due; the others are missed (the backtest, which can replay the
    past, takes them all)."""
    now = now.astimezone(UTC)
    if last is None:
        start = now.date() - timedelta(days=7)
        return list(_until(start, now))[-1:]
    return [t for t in _until(last.astimezone(UTC).date(), now) if t > last]


def _until(start: date, now: datetime) -> Iterable[datetime]:
    for t in _instants_from(start):
        if t > now:
            return
        yield t


def take_snapshot(
    taken_at: datetime,
    open_leads: Iterable[OpenLead],
    probabilities: Probabilities,
    wins: Iterable[WonLead] = (),
    teams: Iterable[str] = (),
) -> list[Snapshot]:
    """The forecasts of the current and the next month at ``taken_at``, for every team
    among ``teams`` and those of the open leads and wins (zero where nothing is dated).
    Wins after ``taken_at`` are not known yet and are left out."""
    leads = list(open_leads)
    known = [w for w in wins if w.won_at <= taken_at]
    current = month_of(taken_at)
    every = set(teams) | {lead.team for lead in leads} | {w.team for w in known}
    out: list[Snapshot] = []
    for month in (current, next_month(current)):
        by_team = forecast(leads, probabilities, month, known)
        age = snapshot_age(taken_at, month)
        for team in sorted(every):
            f = by_team.get(team, Forecast())
            out.append(Snapshot(team, month, taken_at, age, f, probabilities.table(team)))
    return out


def accuracy_by_age(
    snapshots: Iterable[Snapshot], actual: Mapping[str, int], month: date
) -> dict[str, dict[int, float | None]]:
    """Per team and age, the weighted forecast's accuracy for the closed ``month``: the
    earliest snapshot of each age counts (a month's 1st and a Monday can share one)."""
    earliest: dict[tuple[str, int], Snapshot] = {}
    for s in snapshots:
        if s.month != month:
            continue
        key = (s.team, s.age)
        if key not in earliest or s.taken_at < earliest[key].taken_at:
            earliest[key] = s
    out: dict[str, dict[int, float | None]] = defaultdict(dict)
    for (team, age), s in sorted(earliest.items()):
        out[team][age] = accuracy(s.forecast.weighted_cents, actual.get(team, 0))
    return dict(out)


def forecast_gauges(
    snapshots: Iterable[Snapshot], now: datetime
) -> dict[tuple[str, str, str], int]:
    """``leadloop_forecast_amount`` at ``now`` in cents, by (team, month, kind): per team,
    the latest snapshot taken up to ``now`` of the current month and of the next one
    (``month`` ``current`` or ``next``; ``kind`` ``weighted``, ``commit`` or ``best_case``).
    On a month's first day, before its snapshot, the current month's is the one taken as
    the next month's the week before."""
    current = month_of(now)
    names = {current: "current", next_month(current): "next"}
    latest: dict[tuple[str, date], Snapshot] = {}
    for s in snapshots:
        if s.month not in names or s.taken_at > now:
            continue
        key = (s.team, s.month)
        if key not in latest or s.taken_at > latest[key].taken_at:
            latest[key] = s
    out: dict[tuple[str, str, str], int] = {}
    for (team, month), s in sorted(latest.items()):
        f = s.forecast
        for kind, cents in (
            ("weighted", f.weighted_cents),
            ("commit", f.commit_cents),
            ("best_case", f.best_case_cents),
        ):
            out[(team, names[month], kind)] = cents
    return out


def accuracy_gauges(
    snapshots: Iterable[Snapshot], actual: Mapping[str, int], now: datetime
) -> dict[tuple[str, int], float]:
    """``leadloop_forecast_accuracy_ratio`` at ``now`` by (team, age): the latest closed
    month's (the one before ``now``'s), given what each team won in it. A team that won
    nothing in it has no accuracy, so no series."""
    month = previous_month(month_of(now))
    return {
        (team, age): value
        for team, ages in accuracy_by_age(snapshots, actual, month).items()
        for age, value in ages.items()
        if value is not None
    }


def open_lead(s: LeadState) -> OpenLead | None:
    """The lead as the forecast sees it while it is open and has a team (the latest
    assignment's); None otherwise. A lead without an amount counts for nothing."""
    stage = current_stage(s)
    if stage is None or s.team is None or s.won is not None or s.lost is not None:
        return None
    return OpenLead(s.team, stage, s.amount_cents or 0, s.expected_close)


def closed_lead(s: LeadState) -> ClosedLead | None:
    """The lead as history for the learned rates, once its win or loss is counted (with
    the team it was counted for)."""
    reached = s.reached & frozenset(FORECAST_STAGES)
    if s.won is not None:
        return ClosedLead(s.won.team, reached, True)
    if s.lost is not None:
        return ClosedLead(s.lost.team, reached, False)
    return None


def won_lead(s: LeadState) -> WonLead | None:
    """The win as the actual of its month: counted for the team and amount of
    ``leadloop_won_amount_total``, at the time the CRM says it was won."""
    won_at = dict(s.stage_entered).get("won")
    if s.won is None or won_at is None:
        return None
    return WonLead(s.won.team, won_at, s.won.cents)


@dataclass(frozen=True, slots=True)
class Pipeline:
    """What the forecast job needs of the leads, with teams as served labels."""

    open_leads: tuple[OpenLead, ...] = ()
    closed: tuple[ClosedLead, ...] = ()
    wins: tuple[WonLead, ...] = ()


def pipeline_of(states: Iterable[LeadState], team_label: Callable[[str], str]) -> Pipeline:
    """The open leads, the closed history and the wins of ``states``, each team replaced
    by its label: teams served as ``other`` are forecast, learned and measured together,
    so a forecast series always has the actual it is measured against."""
    open_leads: list[OpenLead] = []
    closed: list[ClosedLead] = []
    wins: list[WonLead] = []
    for s in states:
        if (o := open_lead(s)) is not None:
            open_leads.append(replace(o, team=team_label(o.team)))
        if (c := closed_lead(s)) is not None:
            closed.append(replace(c, team=team_label(c.team)))
        if (w := won_lead(s)) is not None:
            wins.append(replace(w, team=team_label(w.team)))
    return Pipeline(tuple(open_leads), tuple(closed), tuple(wins))


#: A served forecast series and its value in stored units (amounts in cents).
Series = dict[tuple[str, tuple[tuple[str, str], ...]], float]


@dataclass(frozen=True, slots=True)
class ForecastStep:
    #: The snapshot taken now (none when nothing was due): to store.
    snapshots: list[Snapshot]
    #: Every forecast series as of now: what ``leadloop_forecast_*`` serve, replacing
    #: what they served before (a team's accuracy goes when a new month closes).
    series: Series


def forecast_step(
    now: datetime,
    due: Sequence[datetime],
    pipeline: Pipeline,
    stored: Iterable[Snapshot],
    teams: Iterable[str],
    strength: float = 10.0,
) -> ForecastStep:
    """The job at ``now``: when a snapshot instant is ``due``, take the last one (the
    pipeline of an earlier instant is gone) with probabilities learned from the closed
    history; then the served gauges from the ``stored`` snapshots (those of the months
    from the previous one on suffice) and the new ones. ``teams`` get a snapshot (zero
    where nothing is dated) even without leads, so their series exist."""
    new: list[Snapshot] = []
    if due:
        probabilities = learned_probabilities(pipeline.closed, strength=strength)
        new = take_snapshot(due[-1], pipeline.open_leads, probabilities, pipeline.wins, teams)
    every = [*stored, *new]
    actual = won_in_month(pipeline.wins, previous_month(month_of(now)))
    series: Series = {}
    for (team, month, kind), cents in forecast_gauges(every, now).items():
        labels = (("team", team), ("month", month), ("kind", kind))
        series[("leadloop_forecast_amount", labels)] = float(cents)
    for (team, age), value in accuracy_gauges(every, actual, now).items():
        series[("leadloop_forecast_accuracy_ratio", (("team", team), ("age", str(age))))] = value
    return ForecastStep(new, series)
