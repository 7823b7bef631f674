"""Backtest of the forecast: learned stage probabilities against the fixed table.

    python -m leadloop_metrics.forecast_backtest [--seed 20261207] [--year 2026]
        [--strength 10] [--output bench/results/forecast_backtest.json]

A seeded simulation of a year of leads (:func:`simulate`), with per-team stage
conversion rates that differ from :data:`~leadloop_metrics.domain.forecast.FIXED_TABLE`,
amounts, and expected close dates that the CRM gives from ``contacted`` on, noisy and
closer to the truth as the lead advances. It is replayed at every snapshot instant of
the year (and of the two months before it, whose snapshots forecast its first months):
the pipeline and the closed history as they were at that instant, the forecast with the
probabilities learned from that history and with the fixed table. When a month closes,
each age's accuracy is measured for both; the report is the median over the team-months
per age. The simulation starts ``WARMUP_DAYS`` before the year, so that the year begins
with a pipeline and a history.
"""

from __future__ import annotations

import argparse
import bisect
import json
import math
import os
import platform
import random
import statistics
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

from leadloop_metrics.domain.forecast import (
    FIXED_TABLE,
    FORECAST_STAGES,
    MAX_AGE,
    ClosedLead,
    OpenLead,
    Probabilities,
    Snapshot,
    WonLead,
    accuracy_by_age,
    learned_probabilities,
    month_end,
    next_month,
    snapshot_due,
    take_snapshot,
    won_in_month,
)

__all__ = ["TEAMS", "Backtest", "SimLead", "backtest", "main", "simulate", "true_probabilities"]

#: Per team, the chance that a lead in each open stage moves on to the next one
#: (``negotiation`` → won), else it is lost. None of them is the fixed table's
#: (whose rates are 0.625, 0.667, 0.48, 0.625, 0.667, 0.6): north closes well late in
#: the funnel, south badly, east qualifies hard and then closes.
TEAMS: Mapping[str, Mapping[str, float]] = {
    "north": {
        "new": 0.80,
        "assigned": 0.85,
        "contacted": 0.60,
        "qualified": 0.70,
        "proposal": 0.80,
        "negotiation": 0.85,
    },
    "south": {
        "new": 0.70,
        "assigned": 0.75,
        "contacted": 0.45,
        "qualified": 0.55,
        "proposal": 0.50,
        "negotiation": 0.35,
    },
    "east": {
        "new": 0.75,
        "assigned": 0.80,
        "contacted": 0.30,
        "qualified": 0.90,
        "proposal": 0.85,
        "negotiation": 0.75,
    },
}

#: Mean days a lead stays in each open stage before it moves on or is lost.
DWELL_DAYS: Mapping[str, float] = {
    "new": 0.5,
    "assigned": 1.0,
    "contacted": 6.0,
    "qualified": 10.0,
    "proposal": 10.0,
    "negotiation": 8.0,
}

#: From this stage on, every stage change carries an expected close date.
DATED_FROM = "contacted"
LEADS_PER_DAY = 4.0
WARMUP_DAYS = 120


@dataclass(frozen=True, slots=True)
class SimLead:
    team: str
    amount_cents: int
    #: Every stage the lead entered, in time order, with the expected close date the
    #: CRM gave with it; the last is won or lost, or the lead is still open.
    events: tuple[tuple[datetime, str, date | None], ...]

    @property
    def times(self) -> list[datetime]:
        return [t for t, _, _ in self.events]


def simulate(
    seed: int,
    start: datetime,
    end: datetime,
    teams: Mapping[str, Mapping[str, float]] = TEAMS,
    leads_per_day: float = LEADS_PER_DAY,
) -> list[SimLead]:
    """Leads created from ``start`` to ``end`` for each team, each one's whole life."""
    # A seeded PRNG on purpose: the same seed must give the same year (S311 is about
    # secrets, and there are none here).
    rng = random.Random(seed)  # noqa: S311
    out: list[SimLead] = []
    for team in sorted(teams):
        rates = teams[team]
        t = start
        while True:
            t += timedelta(days=rng.expovariate(leads_per_day))
            if t >= end:
                break
            out.append(_life(rng, team, rates, t))
    return out


def _life(rng: random.Random, team: str, rates: Mapping[str, float], created: datetime) -> SimLead:
    amount = round(rng.lognormvariate(math.log(5_000), 0.8) * 100)
    path: list[tuple[datetime, str]] = []
    t = created
    final = "lost"
    for stage in FORECAST_STAGES:
        path.append((t, stage))
        t += timedelta(days=rng.expovariate(1 / DWELL_DAYS[stage]))
        if rng.random() >= rates[stage]:
            break
    else:
        final = "won"
    path.append((t, final))
    closes = t
    # Reps date a little early, and the date gets better as the deal advances.
    events: list[tuple[datetime, str, date | None]] = []
    dated = False
    for when, stage in path:
        dated = dated or stage == DATED_FROM
        expected = None
        if dated and stage in FORECAST_STAGES:
            remaining = (closes - when).total_seconds() / 86_400
            noise = rng.gauss(-2.0, 3.0 + 0.4 * remaining)
            expected = (closes + timedelta(days=noise)).date()
        events.append((when, stage, expected))
    return SimLead(team, amount, tuple(events))


def true_probabilities(
    teams: Mapping[str, Mapping[str, float]] = TEAMS,
) -> dict[str, dict[str, float]]:
    """P(won | reached the stage) that the simulated rates imply."""
    out: dict[str, dict[str, float]] = {}
    for team, rates in teams.items():
        p = 1.0
        table: dict[str, float] = {}
        for stage in reversed(FORECAST_STAGES):
            p *= rates[stage]
            table[stage] = p
        out[team] = {stage: table[stage] for stage in FORECAST_STAGES}
    return out


def _as_of(
    leads: Sequence[SimLead], at: datetime
) -> tuple[list[OpenLead], list[ClosedLead], list[WonLead]]:
    """The pipeline, the closed history and the wins as they were known at ``at``."""
    open_leads: list[OpenLead] = []
    closed: list[ClosedLead] = []
    wins: list[WonLead] = []
    for lead in leads:
        n = bisect.bisect_right(lead.times, at)
        if n == 0:
            continue
        seen = lead.events[:n]
        when, stage, _ = seen[-1]
        if stage in FORECAST_STAGES:
            expected = next((e for _, _, e in reversed(seen) if e is not None), None)
            open_leads.append(OpenLead(lead.team, stage, lead.amount_cents, expected))
            continue
        reached = frozenset(s for _, s, _ in seen if s in FORECAST_STAGES)
        closed.append(ClosedLead(lead.team, reached, stage == "won"))
        if stage == "won":
            wins.append(WonLead(lead.team, when, lead.amount_cents))
    return open_leads, closed, wins


@dataclass(frozen=True, slots=True)
class Backtest:
    #: model → age → the accuracies of every team-month with wins.
    by_age: dict[str, dict[int, list[float]]]
    #: model → team → its accuracies at every age and month.
    by_team: dict[str, dict[str, list[float]]]
    #: The probabilities learned from the whole simulation, per team.
    learned_end: dict[str, dict[str, float]]
    months: int
    leads: int

    def median(self, model: str, age: int) -> float | None:
        values = self.by_age[model].get(age, [])
        return statistics.median(values) if values else None

    def overall(self, model: str) -> float:
        return statistics.median(v for values in self.by_age[model].values() for v in values)


def backtest(
    seed: int,
    year: int,
    months: int = 12,
    strength: float = 10.0,
    teams: Mapping[str, Mapping[str, float]] = TEAMS,
    leads_per_day: float = LEADS_PER_DAY,
) -> Backtest:
    """Forecast each of ``months`` months from January of ``year`` with both models."""
    first = date(year, 1, 1)
    last = first
    for _ in range(months - 1):
        last = next_month(last)
    begin = datetime(year, 1, 1, tzinfo=UTC) - timedelta(days=WARMUP_DAYS)
    end = month_end(last)
    leads = simulate(seed, begin, end, teams, leads_per_day)
    fixed = Probabilities({}, FIXED_TABLE)
    snapshots: dict[str, list[Snapshot]] = {"learned": [], "fixed": []}
    instants = snapshot_due(
        end - timedelta(microseconds=1), begin + timedelta(days=WARMUP_DAYS // 2)
    )
    for at in instants:
        open_leads, closed, wins = _as_of(leads, at)
        learned = learned_probabilities(closed, FIXED_TABLE, strength)
        snapshots["learned"] += take_snapshot(at, open_leads, learned, wins, teams)
        snapshots["fixed"] += take_snapshot(at, open_leads, fixed, wins, teams)
    _, closed, wins = _as_of(leads, end)
    by_age: dict[str, dict[int, list[float]]] = {"learned": {}, "fixed": {}}
    by_team: dict[str, dict[str, list[float]]] = {"learned": {}, "fixed": {}}
    month = first
    while month <= last:
        actual = won_in_month(wins, month)
        for model, taken in snapshots.items():
            for team, ages in accuracy_by_age(taken, actual, month).items():
                for age, value in ages.items():
                    if value is not None:
                        by_age[model].setdefault(age, []).append(value)
                        by_team[model].setdefault(team, []).append(value)
        month = next_month(month)
    learned_end = learned_probabilities(closed, FIXED_TABLE, strength)
    return Backtest(
        by_age,
        by_team,
        {team: learned_end.table(team) for team in sorted(teams)},
        months,
        len(leads),
    )


def _fmt(x: float | None) -> str:
    return "–" if x is None else f"{x:.3f}"


def table(result: Backtest) -> str:
    lines = [
        "| age (weeks before month end) | team-months | learned: median accuracy "
        "| fixed table: median accuracy |",
        "| ---: | ---: | ---: | ---: |",
    ]
    for age in range(MAX_AGE + 1):
        n = len(result.by_age["learned"].get(age, []))
        if n:
            lines.append(
                f"| {age} | {n} | {_fmt(result.median('learned', age))} "
                f"| {_fmt(result.median('fixed', age))} |"
            )
    lines.append(
        f"| **all** | | **{_fmt(result.overall('learned'))}** "
        f"| **{_fmt(result.overall('fixed'))}** |"
    )
    return "\n".join(lines)


def _machine() -> dict[str, Any]:
    cpu = platform.processor() or "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": cpu,
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leadloop_metrics.forecast_backtest")
    parser.add_argument("--seed", type=int, default=20261207)
    parser.add_argument("--year", type=int, default=2026)
    parser.add_argument("--months", type=int, default=12)
    parser.add_argument("--strength", type=float, default=10.0)
    parser.add_argument("--output", type=Path, default=Path("bench/results/forecast_backtest.json"))
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    result = backtest(args.seed, args.year, args.months, args.strength)
    truth = true_probabilities()
    ages = range(MAX_AGE + 1)
    doc = {
        "benchmark": "forecast_backtest",
        "started_at": started.isoformat(timespec="seconds"),
        "seed": args.seed,
        "year": args.year,
        "months": args.months,
        "strength": args.strength,
        "leads": result.leads,
        "machine": _machine(),
        "median_accuracy_by_age": {
            str(age): {
                "team_months": len(result.by_age["learned"].get(age, [])),
                "learned": result.median("learned", age),
                "fixed": result.median("fixed", age),
            }
            for age in ages
            if result.by_age["learned"].get(age)
        },
        "median_accuracy": {m: result.overall(m) for m in ("learned", "fixed")},
        "probabilities": {
            team: {
                "true": truth[team],
                "learned_at_end": result.learned_end[team],
                "fixed": dict(FIXED_TABLE),
                "median_accuracy": {
                    m: statistics.median(result.by_team[m][team]) for m in ("learned", "fixed")
                },
            }
            for team in sorted(truth)
        },
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    sys.stdout.write(
        f"{result.leads} simulated leads, {len(TEAMS)} teams, {args.months} months of "
        f"{args.year} (seed {args.seed}, strength {args.strength:g})\n\n{table(result)}\n"
        f"\nwritten to {args.output}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
