"""The learned lead score's model file: what it holds, how a lead is scored with it, and
which attributes it says predict winning.

A model is a regularised logistic regression over the lead's non-personal attributes,
each attribute one-hot encoded by level (company size by band), with a Platt mapping of
its log-odds to a calibrated win probability:

    z = intercept + Σ coefficient(attribute, level of the lead)
    p = 1 / (1 + exp(-(calibration.slope · z + calibration.intercept)))
    score = ⌊100 · p + ½⌋                                   (0–100, as LeadAccepted.score)

A value the model has not seen as a level takes the attribute's ``(other)`` coefficient
(rare values were pooled there when it was fitted), or 0 if it has none; an absent
value takes ``(missing)`` the same way. Everything in the file is plain numbers and
strings, so ingest evaluates it with ``math`` alone (``leadloop_ingest.domain.learned_score``
reads the same format; ``tests/contract/test_score_model_file.py`` keeps the two equal).

Pure: no I/O, no clock, no scikit-learn.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, datetime
from typing import Any, Final, Literal

__all__ = [
    "ATTRIBUTES",
    "CATEGORICAL",
    "FORMAT",
    "MISSING",
    "OTHER",
    "SIZE_BANDS",
    "Attribute",
    "AttributeContribution",
    "Calibration",
    "Level",
    "LevelContribution",
    "ReliabilityBin",
    "ScoreModel",
    "ScoreModelError",
    "level_of",
    "model_from_json",
    "model_to_json",
    "probability",
    "score",
    "size_band",
    "top_contributions",
]

#: The file format; a reader refuses any other.
FORMAT: Final = "leadloop.score-model/1"
#: The categorical attributes a model may use, as LeadAccepted names them.
CATEGORICAL: Final = ("source", "industry", "product", "region", "country", "campaign")
#: Every attribute, company size (banded) last.
ATTRIBUTES: Final = (*CATEGORICAL, "company_size")
#: Lower bounds (employees) of the company-size bands.
SIZE_BANDS: Final = (0, 10, 50, 200, 1000)
MISSING: Final = "(missing)"
OTHER: Final = "(other)"


class ScoreModelError(ValueError):
    """A model file that cannot be used: ``field`` is a dotted path into it ("" for the
    file as a whole). The message never repeats a value of the file."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


@dataclass(frozen=True, slots=True)
class Level:
    value: str
    coefficient: float
    #: Training leads with this level, and how many of them were won.
    leads: int
    won: int


@dataclass(frozen=True, slots=True)
class Attribute:
    name: str
    kind: Literal["category", "size_band"]
    levels: tuple[Level, ...]
    #: Cross-validated log-loss of the model without this attribute minus with it:
    #: how much worse the predictions get when it is left out (> 0: it helps).
    logloss_drop: float

    def coefficient(self, level: str) -> float:
        for lv in self.levels:
            if lv.value == level:
                return lv.coefficient
        for lv in self.levels:
            if lv.value == OTHER:
                return lv.coefficient
        return 0.0


@dataclass(frozen=True, slots=True)
class Calibration:
    """Platt scaling of the log-odds, fitted on cross-validated predictions."""

    slope: float
    intercept: float


@dataclass(frozen=True, slots=True)
class ReliabilityBin:
    """Cross-validated leads whose calibrated probability fell in [low, high)."""

    low: float
    high: float
    leads: int
    mean_predicted: float
    observed: float


@dataclass(frozen=True, slots=True)
class ScoreModel:
    version: str
    fitted_at: datetime
    #: The training window: leads that closed (won or lost) from ``window_from`` to
    #: ``window_to``, both included.
    window_from: date
    window_to: date
    leads: int
    won: int
    intercept: float
    attributes: tuple[Attribute, ...]
    calibration: Calibration
    size_bands: tuple[int, ...]
    #: Priority thresholds in score units (hot ≥ hot_at, warm ≥ warm_at).
    hot_at: int
    warm_at: int
    #: Cross-validated quality on the training window: auc, brier, log_loss,
    #: brier_base_rate (a constant guess of the win rate), c (the regularisation).
    quality: Mapping[str, float]
    reliability: tuple[ReliabilityBin, ...] = ()


def size_band(size: int | None, bands: Sequence[int] = SIZE_BANDS) -> str:
    """``"50-199"``, ``"1000+"``; :data:`MISSING` for no size."""
    if size is None:
        return MISSING
    label = MISSING
    for i, lo in enumerate(bands):
        if size >= lo:
            label = f"{lo}+" if i == len(bands) - 1 else f"{lo}-{bands[i + 1] - 1}"
    return label


def level_of(attribute: str, value: object, bands: Sequence[int] = SIZE_BANDS) -> str:
    """The level a lead's value is encoded as (before pooling rare values)."""
    if attribute == "company_size":
        return size_band(value if isinstance(value, int) else None, bands)
    if value is None or value == "":
        return MISSING
    return str(value)


def _logit(model: ScoreModel, lead: Mapping[str, object]) -> float:
    z = model.intercept
    for attr in model.attributes:
        z += attr.coefficient(level_of(attr.name, lead.get(attr.name), model.size_bands))
    return z


def _sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def probability(model: ScoreModel, lead: Mapping[str, object]) -> float:
    """The calibrated win probability of a lead given as attribute → value."""
    c = model.calibration
    return _sigmoid(c.slope * _logit(model, lead) + c.intercept)


def score(model: ScoreModel, lead: Mapping[str, object]) -> int:
    """The 0–100 score: the win probability in percent, rounded half up."""
    return max(0, min(100, math.floor(100.0 * probability(model, lead) + 0.5)))


# --- contributions -------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LevelContribution:
    value: str
    #: Odds of winning against the attribute's average training lead (1 = no effect).
    odds_ratio: float
    leads: int
    won: int


@dataclass(frozen=True, slots=True)
class AttributeContribution:
    attribute: str
    #: Cross-validated log-loss drop when the attribute is left out (> 0: it predicts).
    logloss_drop: float
    #: Share of all attributes' positive drops (0–1): a ranking aid, not a probability.
    share: float
    #: The levels that raise the odds most, best first, and those that lower them most,
    #: worst first.
    best: tuple[LevelContribution, ...]
    worst: tuple[LevelContribution, ...]


def _odds_ratios(attr: Attribute) -> list[LevelContribution]:
    total = sum(lv.leads for lv in attr.levels)
    mean = sum(lv.coefficient * lv.leads for lv in attr.levels) / total if total else 0.0
    return [
        LevelContribution(lv.value, math.exp(lv.coefficient - mean), lv.leads, lv.won)
        for lv in attr.levels
    ]


def top_contributions(model: ScoreModel, levels: int = 3) -> list[AttributeContribution]:
    """Which attributes predict winning, most predictive first: each attribute's drop in
    log-loss when it is left out, with its ``levels`` best and worst levels by odds
    ratio against the attribute's average lead (levels with an odds ratio within 5 % of
    1 are left out). For the review report and ``leadloop score show``."""
    positive = sum(max(0.0, a.logloss_drop) for a in model.attributes)
    out = []
    for attr in sorted(model.attributes, key=lambda a: (-a.logloss_drop, a.name)):
        ratios = sorted(_odds_ratios(attr), key=lambda c: (-c.odds_ratio, c.value))
        best = tuple(c for c in ratios if c.odds_ratio > 1.05)[:levels]
        worst = tuple(c for c in reversed(ratios) if c.odds_ratio < 1 / 1.05)[:levels]
        share = max(0.0, attr.logloss_drop) / positive if positive > 0 else 0.0
        out.append(AttributeContribution(attr.name, attr.logloss_drop, share, best, worst))
    return out


# --- the file --------------------------------------------------------------------------


def model_to_json(model: ScoreModel) -> dict[str, Any]:
    return {
        "format": FORMAT,
        "version": model.version,
        "fitted_at": model.fitted_at.isoformat(),
        "window": {"from": model.window_from.isoformat(), "to": model.window_to.isoformat()},
        "training": {"leads": model.leads, "won": model.won},
        "intercept": model.intercept,
        "calibration": {
            "method": "platt",
            "slope": model.calibration.slope,
            "intercept": model.calibration.intercept,
        },
        "size_bands": list(model.size_bands),
        "attributes": [
            {
                "name": a.name,
                "kind": a.kind,
                "logloss_drop": a.logloss_drop,
                "levels": [
                    {
                        "value": lv.value,
                        "coefficient": lv.coefficient,
                        "leads": lv.leads,
                        "won": lv.won,
                    }
                    for lv in a.levels
                ],
            }
            for a in model.attributes
        ],
        "priority": {"hot_at": model.hot_at, "warm_at": model.warm_at},
        "quality": dict(model.quality),
        "reliability": [
            {
                "low": b.low,
                "high": b.high,
                "leads": b.leads,
                "mean_predicted": b.mean_predicted,
                "observed": b.observed,
            }
            for b in model.reliability
        ],
    }


def _get(data: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    path = f"{where}.{key}" if where else key
    if key not in data:
        raise ScoreModelError(path, "missing")
    value = data[key]
    # bool is an int to Python, never a number or a count in this file.
    if isinstance(value, bool) and bool not in (kind if isinstance(kind, tuple) else (kind,)):
        raise ScoreModelError(path, "has the wrong type")
    if not isinstance(value, kind):
        raise ScoreModelError(path, "has the wrong type")
    if isinstance(value, float) and not math.isfinite(value):
        raise ScoreModelError(path, "is not a finite number")
    return value


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    return float(_get(data, key, where, (int, float)))


def _count(data: Mapping[str, Any], key: str, where: str) -> int:
    value: int = _get(data, key, where, int)
    if value < 0:
        raise ScoreModelError(f"{where}.{key}" if where else key, "is negative")
    return value


def _when(data: Mapping[str, Any], key: str, where: str, parse: Any) -> Any:
    try:
        return parse(_get(data, key, where, str))
    except ValueError:
        raise ScoreModelError(f"{where}.{key}" if where else key, "is not a date") from None


def model_from_json(data: object) -> ScoreModel:
    """The model of a decoded model file; :class:`ScoreModelError` names the first
    field that is missing, of the wrong type or out of range."""
    if not isinstance(data, Mapping):
        raise ScoreModelError("", "expected a JSON object at the top level")
    if data.get("format") != FORMAT:
        raise ScoreModelError("format", f"must be {FORMAT!r}")
    window = _get(data, "window", "", Mapping)
    training = _get(data, "training", "", Mapping)
    cal = _get(data, "calibration", "", Mapping)
    if cal.get("method") != "platt":
        raise ScoreModelError("calibration.method", "must be 'platt'")
    bands = _get(data, "size_bands", "", list)
    if (
        not bands
        or not all(type(b) is int and b >= 0 for b in bands)
        or bands != sorted(set(bands))
    ):
        raise ScoreModelError("size_bands", "must be increasing whole numbers ≥ 0")
    attributes = []
    seen: set[str] = set()
    for i, raw in enumerate(_get(data, "attributes", "", list)):
        where = f"attributes.{i}"
        if not isinstance(raw, Mapping):
            raise ScoreModelError(where, "has the wrong type")
        name = _get(raw, "name", where, str)
        if name not in ATTRIBUTES or name in seen:
            raise ScoreModelError(f"{where}.name", "is not a known attribute, or repeated")
        seen.add(name)
        kind = _get(raw, "kind", where, str)
        if kind != ("size_band" if name == "company_size" else "category"):
            raise ScoreModelError(f"{where}.kind", "does not fit the attribute")
        levels = []
        values: set[str] = set()
        for j, lv in enumerate(_get(raw, "levels", where, list)):
            lw = f"{where}.levels.{j}"
            if not isinstance(lv, Mapping):
                raise ScoreModelError(lw, "has the wrong type")
            value = _get(lv, "value", lw, str)
            if value in values:
                raise ScoreModelError(f"{lw}.value", "is repeated")
            values.add(value)
            levels.append(
                Level(
                    value,
                    _number(lv, "coefficient", lw),
                    _count(lv, "leads", lw),
                    _count(lv, "won", lw),
                )
            )
        attributes.append(Attribute(name, kind, tuple(levels), _number(raw, "logloss_drop", where)))
    priority = _get(data, "priority", "", Mapping)
    hot_at, warm_at = (
        _count(priority, "hot_at", "priority"),
        _count(priority, "warm_at", "priority"),
    )
    if not warm_at <= hot_at <= 100:
        raise ScoreModelError("priority", "needs warm_at ≤ hot_at ≤ 100")
    quality = _get(data, "quality", "", Mapping)
    reliability = []
    for i, b in enumerate(data.get("reliability", [])):
        w = f"reliability.{i}"
        if not isinstance(b, Mapping):
            raise ScoreModelError(w, "has the wrong type")
        reliability.append(
            ReliabilityBin(
                _number(b, "low", w),
                _number(b, "high", w),
                _count(b, "leads", w),
                _number(b, "mean_predicted", w),
                _number(b, "observed", w),
            )
        )
    return ScoreModel(
        version=_get(data, "version", "", str),
        fitted_at=_when(data, "fitted_at", "", datetime.fromisoformat),
        window_from=_when(window, "from", "window", date.fromisoformat),
        window_to=_when(window, "to", "window", date.fromisoformat),
        leads=_count(training, "leads", "training"),
        won=_count(training, "won", "training"),
        intercept=_number(data, "intercept", ""),
        attributes=tuple(attributes),
        calibration=Calibration(
            _number(cal, "slope", "calibration"), _number(cal, "intercept", "calibration")
        ),
        size_bands=tuple(bands),
        hot_at=hot_at,
        warm_at=warm_at,
        quality={str(k): _number(quality, str(k), "quality") for k in quality},
        reliability=tuple(reliability),
    )
