"""Backtest of the learned lead score against ingest's hand-set weights.

    python -m leadloop_review.score_backtest [--seed 20261208] [--year 2026]
        [--first-test-month 7] [--output bench/results/score_backtest.json]
    leadloop score backtest [the same options]

A seeded simulated year (:func:`leadloop_review.domain.score_sim.simulate`). For each
held-out month from ``--first-test-month`` to December, a model is fitted on the leads
that had closed before the month began (as ``leadloop score fit`` would have been run
on its 1st) and scores the leads accepted in the month; their eventual outcomes are the
truth. The hand-set score is ingest's default weights; for its Brier score it is mapped
to a probability by a Platt fit on the same training leads (its 0–100 points are no
probability). Pooled over the held-out months: AUC, Brier, the top decile's lift (its
win rate over the month's overall) and the win rate of the top-scored 20 %, beside the
same figures for the true probabilities (the best any score could do).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.linear_model import LogisticRegression

from leadloop_review.domain.score_fit import FitSettings, fit
from leadloop_review.domain.score_model import probability, top_contributions
from leadloop_review.domain.score_sim import auc, hand_set_score, simulate, top_share_rate

__all__ = ["Figures", "backtest", "figures", "main"]

SCORERS = ("learned", "hand_set", "truth")


@dataclass(frozen=True, slots=True)
class Figures:
    leads: int
    won: int
    auc: float
    brier: float
    top_decile_lift: float
    top_20_win_rate: float


def figures(p: Sequence[float], ranking: Sequence[float], won: Sequence[bool]) -> Figures:
    """``p`` the probabilities (for Brier), ``ranking`` the scores leads are ranked by."""
    rate = sum(won) / len(won)
    return Figures(
        leads=len(won),
        won=sum(won),
        auc=auc(ranking, won),
        brier=sum((q - y) ** 2 for q, y in zip(p, won, strict=True)) / len(won),
        top_decile_lift=top_share_rate(ranking, won, 0.1) / rate,
        top_20_win_rate=top_share_rate(ranking, won, 0.2),
    )


def _platt(points: Sequence[int], won: Sequence[bool]) -> tuple[float, float]:
    lr = LogisticRegression(C=1e6, max_iter=2000).fit(
        np.array(points, dtype=float).reshape(-1, 1), np.array(won, dtype=int)
    )
    return float(lr.coef_[0, 0]), float(lr.intercept_[0])


def backtest(seed: int, year: int, first_test_month: int) -> dict[str, Any]:
    leads = simulate(seed, year)
    pooled: dict[str, dict[str, list[float]]] = {k: {"p": [], "rank": []} for k in SCORERS}
    labels: list[bool] = []
    months = []
    for month in range(first_test_month, 13):
        cutoff = datetime(year, month, 1, tzinfo=UTC)
        train = [s for s in leads if s.lead.closed_at < cutoff]
        test = [
            s for s in leads if (s.lead.accepted_at.year, s.lead.accepted_at.month) == (year, month)
        ]
        model = fit(
            [s.lead for s in train],
            version=f"backtest-{year}-{month:02d}",
            fitted_at=cutoff,
            window=(date(year, 1, 1), cutoff.date()),
            settings=FitSettings(contributions=False),
        )
        slope, shift = _platt([hand_set_score(s) for s in train], [s.lead.won for s in train])
        won = [s.lead.won for s in test]
        learned = [probability(model, s.lead.attributes) for s in test]
        hand = [float(hand_set_score(s)) for s in test]
        by: dict[str, tuple[list[float], list[float]]] = {
            "learned": (learned, [float(math.floor(100 * q + 0.5)) for q in learned]),
            "hand_set": ([1 / (1 + math.exp(-(slope * h + shift))) for h in hand], hand),
            "truth": ([s.p_true for s in test], [s.p_true for s in test]),
        }
        for k, (p, rank) in by.items():
            pooled[k]["p"] += p
            pooled[k]["rank"] += rank
        labels += won
        months.append(
            {
                "month": f"{year}-{month:02d}",
                "training_leads": len(train),
                "test_leads": len(test),
                "auc": {k: auc(by[k][1], won) for k in SCORERS},
            }
        )
    result = {k: figures(pooled[k]["p"], pooled[k]["rank"], labels) for k in SCORERS}
    # What the model fitted on the first held-out month's eve says predicts winning.
    cutoff = datetime(year, first_test_month, 1, tzinfo=UTC)
    final = fit(
        [s.lead for s in leads if s.lead.closed_at < cutoff],
        version="backtest",
        fitted_at=cutoff,
        window=(date(year, 1, 1), cutoff.date()),
    )
    return {
        "leads": len(leads),
        "held_out": {k: vars_of(v) for k, v in result.items()},
        "months": months,
        "contributions": [
            {
                "attribute": c.attribute,
                "logloss_drop": c.logloss_drop,
                "best": {x.value: round(x.odds_ratio, 3) for x in c.best},
                "worst": {x.value: round(x.odds_ratio, 3) for x in c.worst},
            }
            for c in top_contributions(final)
        ],
        "calibration": [
            {
                "low": b.low,
                "high": b.high,
                "leads": b.leads,
                "mean_predicted": b.mean_predicted,
                "observed": b.observed,
            }
            for b in final.reliability
        ],
        "training_quality": dict(final.quality),
    }


def vars_of(f: Figures) -> dict[str, float | int]:
    return {
        "leads": f.leads,
        "won": f.won,
        "auc": f.auc,
        "brier": f.brier,
        "top_decile_lift": f.top_decile_lift,
        "top_20_win_rate": f.top_20_win_rate,
    }


def table(doc: dict[str, Any]) -> str:
    held = doc["held_out"]
    rows = [
        "| score | AUC | Brier | top-decile lift | win rate of the top 20 % |",
        "| --- | ---: | ---: | ---: | ---: |",
    ]
    names = {"learned": "learned", "hand_set": "hand-set weights", "truth": "true probability"}
    for k in SCORERS:
        f = held[k]
        rows.append(
            f"| {names[k]} | {f['auc']:.3f} | {f['brier']:.4f} | {f['top_decile_lift']:.2f} "
            f"| {f['top_20_win_rate']:.3f} |"
        )
    return "\n".join(rows)


def _machine() -> dict[str, Any]:
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "os": platform.platform(),
        "python": platform.python_version(),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m leadloop_review.score_backtest")
    parser.add_argument("--seed", type=int, default=20261208)
    parser.add_argument("--year", type=int, default=2026)
    parser.add_argument("--first-test-month", type=int, default=7, choices=range(2, 13))
    parser.add_argument("--output", type=Path, default=Path("bench/results/score_backtest.json"))
    args = parser.parse_args(argv)
    started = datetime.now(UTC)
    result = backtest(args.seed, args.year, args.first_test_month)
    held = result["held_out"]
    doc = {
        "benchmark": "score_backtest",
        "started_at": started.isoformat(timespec="seconds"),
        "seed": args.seed,
        "year": args.year,
        "first_test_month": args.first_test_month,
        "machine": _machine(),
        **result,
    }
    args.output.parent.mkdir(parents=True, exist_ok=True)
    args.output.write_text(json.dumps(doc, indent=2) + "\n")
    base = held["learned"]["won"] / held["learned"]["leads"]
    sys.stdout.write(
        f"{result['leads']} simulated leads in {args.year} (seed {args.seed}); held out "
        f"{held['learned']['leads']} leads accepted from month {args.first_test_month} on, "
        f"win rate {base:.3f}\n\n{table(doc)}\n\nwritten to {args.output}\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
