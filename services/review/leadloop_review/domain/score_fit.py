"""Learning the lead score from closed leads: which leads count, how they are encoded,
and the fit (regularised logistic regression, Platt calibration, per-attribute
contributions).

- :func:`closed_leads` folds the metrics' stored facts (``Accepted``, ``StageMoved``)
  into one labelled lead per lead that closed in the window: won if its last move to
  ``won`` or ``lost`` on or before the window's end was to ``won``. A lead that closed
  but whose acceptance is not among the facts is left out (nothing to learn from).
- :func:`fit` one-hot encodes each attribute by level (company size by band); a level
  with fewer than ``min_leads`` training leads is pooled into ``(other)``, which is
  also what a value never seen scores as. The L2 strength is picked from a small grid
  by cross-validated log-loss; the Platt mapping is fitted on the cross-validated
  log-odds (so it corrects what the regularisation shrank, on leads the model did not
  see); each attribute's contribution is the rise in cross-validated log-loss when it
  is left out. Everything is seeded: the same leads give the same model.

Pure: no I/O and no clock (``fitted_at`` comes in).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import brier_score_loss, log_loss, roc_auc_score
from sklearn.model_selection import StratifiedKFold

from leadloop_review.domain.score_model import (
    ATTRIBUTES,
    OTHER,
    SIZE_BANDS,
    Attribute,
    Calibration,
    Level,
    ReliabilityBin,
    ScoreModel,
    level_of,
)

__all__ = [
    "C_GRID",
    "ClosedLead",
    "FitError",
    "FitSettings",
    "closed_leads",
    "fit",
    "reliability",
]

#: The L2 strengths tried (scikit-learn's C: smaller is stronger).
C_GRID = (0.03, 0.1, 0.3, 1.0, 3.0)


class FitError(ValueError):
    """Too few closed leads, or only one outcome among them."""


@dataclass(frozen=True, slots=True)
class ClosedLead:
    lead_id: str
    accepted_at: datetime
    closed_at: datetime
    won: bool
    #: attribute → value, as the Accepted fact kept it (None when absent).
    attributes: Mapping[str, object]


def closed_leads(
    facts: Iterable[tuple[str, Mapping[str, Any]]], start: date, end: date
) -> list[ClosedLead]:
    """The leads whose last close (won or lost) on or before ``end`` falls on or after
    ``start`` (UTC dates), from ``(lead_id, fact)`` pairs in any order; sorted by lead."""
    accepted: dict[str, Mapping[str, Any]] = {}
    last_close: dict[str, tuple[datetime, bool]] = {}
    for lead_id, fact in facts:
        kind = fact.get("type")
        if kind == "Accepted":
            accepted[lead_id] = fact
        elif kind == "StageMoved" and fact.get("stage") in ("won", "lost"):
            at = datetime.fromisoformat(str(fact["occurred_at"]))
            if at.date() > end:
                continue
            seen = last_close.get(lead_id)
            if seen is None or at >= seen[0]:
                last_close[lead_id] = (at, fact["stage"] == "won")
    out = []
    for lead_id in sorted(last_close):
        at, won = last_close[lead_id]
        acc = accepted.get(lead_id)
        if acc is None or at.date() < start:
            continue
        out.append(
            ClosedLead(
                lead_id=lead_id,
                accepted_at=datetime.fromisoformat(str(acc["accepted_at"])),
                closed_at=at,
                won=won,
                attributes={a: acc.get(a) for a in ATTRIBUTES},
            )
        )
    return out


@dataclass(frozen=True, slots=True)
class FitSettings:
    #: Levels with fewer training leads are pooled into ``(other)``.
    min_leads: int = 20
    folds: int = 5
    c_grid: tuple[float, ...] = C_GRID
    seed: int = 0
    #: Priority thresholds: the top ``hot_share`` of the training leads' scores is hot,
    #: the next ``warm_share`` warm.
    hot_share: float = 0.2
    warm_share: float = 0.3
    attributes: tuple[str, ...] = ATTRIBUTES
    #: Each attribute's log-loss drop costs ``folds`` more fits; off in the backtest.
    contributions: bool = True
    size_bands: tuple[int, ...] = field(default=SIZE_BANDS)


@dataclass(frozen=True, slots=True)
class _Encoding:
    #: Per attribute, its kept levels in column order.
    levels: dict[str, tuple[str, ...]]

    def columns(self, attributes: Sequence[str]) -> list[tuple[str, str]]:
        return [(a, lv) for a in attributes for lv in self.levels[a]]


def _raw_levels(lead: ClosedLead, attributes: Sequence[str], bands: Sequence[int]) -> list[str]:
    return [level_of(a, lead.attributes.get(a), bands) for a in attributes]


def _encoding(raw: list[list[str]], attributes: Sequence[str], min_leads: int) -> _Encoding:
    levels = {}
    for i, a in enumerate(attributes):
        counts = Counter(row[i] for row in raw)
        kept = sorted(v for v, n in counts.items() if n >= min_leads)
        if any(n < min_leads for n in counts.values()):
            kept.append(OTHER)
        levels[a] = tuple(kept)
    return _Encoding(levels)


def _pooled(raw: list[list[str]], enc: _Encoding, attributes: Sequence[str]) -> list[list[str]]:
    return [
        [v if v in enc.levels[a] else OTHER for a, v in zip(attributes, row, strict=True)]
        for row in raw
    ]


def _matrix(
    pooled: list[list[str]], enc: _Encoding, attributes: Sequence[str]
) -> NDArray[np.float64]:
    cols = {c: j for j, c in enumerate(enc.columns(attributes))}
    x = np.zeros((len(pooled), len(cols)))
    for i, row in enumerate(pooled):
        for a, v in zip(attributes, row, strict=True):
            x[i, cols[(a, v)]] = 1.0
    return x


def _model(c: float) -> LogisticRegression:
    return LogisticRegression(C=c, max_iter=2000)


def _oof_logits(
    x: NDArray[np.float64], y: NDArray[np.int_], c: float, folds: StratifiedKFold
) -> NDArray[np.float64]:
    """Each lead's log-odds from the model fitted on the other folds."""
    z = np.zeros(len(y))
    for train, test in folds.split(x, y):
        z[test] = _model(c).fit(x[train], y[train]).decision_function(x[test])
    return z


def _sigmoid(z: NDArray[np.float64]) -> NDArray[np.float64]:
    out: NDArray[np.float64] = 1.0 / (1.0 + np.exp(-z))
    return out


def reliability(
    p: NDArray[np.float64], y: NDArray[np.int_], bins: int = 10
) -> tuple[ReliabilityBin, ...]:
    """Predicted against observed win rate in equal-width probability bins (empty
    bins left out)."""
    edges = np.linspace(0.0, 1.0, bins + 1)
    idx = np.clip(np.digitize(p, edges[1:-1]), 0, bins - 1)
    out = []
    for b in range(bins):
        mask = idx == b
        n = int(mask.sum())
        if n:
            out.append(
                ReliabilityBin(
                    float(edges[b]),
                    float(edges[b + 1]),
                    n,
                    float(p[mask].mean()),
                    float(y[mask].mean()),
                )
            )
    return tuple(out)


def _threshold(scores: NDArray[np.float64], share: float) -> int:
    """The smallest whole score at or above which about ``share`` of the leads lie."""
    if share <= 0:
        return 101
    return int(np.quantile(scores, 1.0 - share, method="lower"))


def fit(
    leads: Sequence[ClosedLead],
    *,
    version: str,
    fitted_at: datetime,
    window: tuple[date, date],
    settings: FitSettings = FitSettings(),
) -> ScoreModel:
    """The calibrated model learned from ``leads``; :class:`FitError` when there are
    fewer than ``2 × folds`` leads of either outcome."""
    s = settings
    y = np.array([1 if lead.won else 0 for lead in leads], dtype=np.int_)
    won = int(y.sum())
    if min(won, len(y) - won) < 2 * s.folds:
        raise FitError(
            f"{len(y)} closed leads, {won} won: at least {2 * s.folds} won and "
            f"{2 * s.folds} lost are needed"
        )
    every = list(s.attributes)
    raw = [_raw_levels(lead, every, s.size_bands) for lead in leads]
    enc = _encoding(raw, every, s.min_leads)
    # An attribute with one level in the window (never given, say) says nothing.
    attrs = [a for a in every if len(enc.levels[a]) > 1]
    if not attrs:
        raise FitError("no attribute has more than one value among the closed leads")
    keep = [every.index(a) for a in attrs]
    raw = [[row[i] for i in keep] for row in raw]
    pooled = _pooled(raw, enc, attrs)
    x = _matrix(pooled, enc, attrs)
    folds = StratifiedKFold(n_splits=s.folds, shuffle=True, random_state=s.seed)

    # The strength that predicts held-out leads best.
    losses = {c: log_loss(y, _sigmoid(_oof_logits(x, y, c, folds))) for c in s.c_grid}
    c = min(s.c_grid, key=lambda k: (losses[k], -k))
    z_oof = _oof_logits(x, y, c, folds)
    platt = LogisticRegression(C=1e6, max_iter=2000).fit(z_oof.reshape(-1, 1), y)
    slope, shift = float(platt.coef_[0, 0]), float(platt.intercept_[0])
    p_oof = _sigmoid(slope * z_oof + shift)

    drops = dict.fromkeys(attrs, 0.0)
    if s.contributions and len(attrs) > 1:
        full = log_loss(y, _sigmoid(z_oof))
        for a in attrs:
            rest = [b for b in attrs if b != a]
            xr = _matrix(
                [[v for b, v in zip(attrs, row, strict=True) if b != a] for row in pooled],
                enc,
                rest,
            )
            drops[a] = float(log_loss(y, _sigmoid(_oof_logits(xr, y, c, folds))) - full)

    final = _model(c).fit(x, y)
    coef = dict(zip(enc.columns(attrs), final.coef_[0], strict=True))
    attributes = []
    for i, a in enumerate(attrs):
        counts = Counter(row[i] for row in pooled)
        wins = Counter(row[i] for row, label in zip(pooled, y, strict=True) if label)
        attributes.append(
            Attribute(
                name=a,
                kind="size_band" if a == "company_size" else "category",
                levels=tuple(
                    Level(lv, float(coef[(a, lv)]), counts[lv], wins[lv]) for lv in enc.levels[a]
                ),
                logloss_drop=drops[a],
            )
        )
    base = float(y.mean())
    model = ScoreModel(
        version=version,
        fitted_at=fitted_at,
        window_from=window[0],
        window_to=window[1],
        leads=len(y),
        won=won,
        intercept=float(final.intercept_[0]),
        attributes=tuple(attributes),
        calibration=Calibration(slope, shift),
        size_bands=tuple(s.size_bands),
        hot_at=100,
        warm_at=100,
        quality={
            "auc": float(roc_auc_score(y, p_oof)),
            "brier": float(brier_score_loss(y, p_oof)),
            "log_loss": float(log_loss(y, p_oof)),
            "brier_base_rate": base * (1 - base),
            "base_rate": base,
            "c": c,
        },
        reliability=reliability(p_oof, y),
    )
    # Thresholds from the final model's own scores of its training leads.
    scores = np.floor(100.0 * _sigmoid(slope * final.decision_function(x) + shift) + 0.5)
    hot = _threshold(scores, s.hot_share)
    warm = min(hot, _threshold(scores, s.hot_share + s.warm_share))
    return replace(model, hot_at=min(hot, 100), warm_at=warm)
