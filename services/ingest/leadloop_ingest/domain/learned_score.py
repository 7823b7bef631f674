"""A lead score learned from closed leads (``leadloop score fit``), evaluated with math.

The model file (docs/scoring.md) holds plain numbers: an intercept, a coefficient per
level of each attribute (company size by band), a Platt calibration and the priority
thresholds. Ingest reads only what scoring needs and ignores the rest (counts, quality
figures), so it never depends on the library that fitted the model:

    z = intercept + Σ coefficient(attribute, level of the lead)
    p = 1 / (1 + exp(-(slope · z + shift)))            the calibrated win probability
    score = ⌊100 · p + ½⌋, priority hot ≥ hot_at, warm ≥ warm_at, else cold

A value that is not one of an attribute's levels takes its ``(other)`` coefficient, or
0 without one; an absent value takes ``(missing)`` the same way. ``parse_learned_score``
refuses a file that does not have this shape, naming the field.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Final

from leadloop.events import Priority, RawLead

__all__ = ["FORMAT", "LearnedScore", "ScoreModelInvalid", "parse_learned_score"]

FORMAT: Final = "leadloop.score-model/1"
_CATEGORICAL: Final = ("source", "industry", "product", "region", "country", "campaign")
_MISSING: Final = "(missing)"
_OTHER: Final = "(other)"


class ScoreModelInvalid(ValueError):
    """``field`` is a dotted path into the file ("" for the whole file); the message
    never repeats a value of the file."""

    def __init__(self, field: str, reason: str) -> None:
        self.field = field
        self.reason = reason
        super().__init__(f"{field}: {reason}" if field else reason)


@dataclass(frozen=True, slots=True)
class LearnedScore:
    version: str
    intercept: float
    #: attribute → level → coefficient.
    coefficients: Mapping[str, Mapping[str, float]]
    slope: float
    shift: float
    size_bands: tuple[int, ...]
    hot_at: int
    warm_at: int

    def _level(self, attribute: str, raw: RawLead) -> str:
        value = getattr(raw, attribute)
        if attribute == "company_size":
            if value is None:
                return _MISSING
            label = _MISSING
            bands = self.size_bands
            for i, lo in enumerate(bands):
                if value >= lo:
                    label = f"{lo}+" if i == len(bands) - 1 else f"{lo}-{bands[i + 1] - 1}"
            return label
        return _MISSING if value is None or value == "" else str(value)

    def probability(self, raw: RawLead) -> float:
        z = self.intercept
        for attribute, levels in self.coefficients.items():
            level = self._level(attribute, raw)
            z += levels[level] if level in levels else levels.get(_OTHER, 0.0)
        x = self.slope * z + self.shift
        if x >= 0:
            return 1.0 / (1.0 + math.exp(-x))
        e = math.exp(x)
        return e / (1.0 + e)

    def score(self, raw: RawLead) -> tuple[int, Priority]:
        value = max(0, min(100, math.floor(100.0 * self.probability(raw) + 0.5)))
        if value >= self.hot_at:
            return value, Priority.HOT
        if value >= self.warm_at:
            return value, Priority.WARM
        return value, Priority.COLD


def _get(data: Mapping[str, Any], key: str, where: str, kind: type | tuple[type, ...]) -> Any:
    path = f"{where}.{key}" if where else key
    if key not in data:
        raise ScoreModelInvalid(path, "missing")
    value = data[key]
    if isinstance(value, bool) or not isinstance(value, kind):
        raise ScoreModelInvalid(path, "has the wrong type")
    if isinstance(value, float) and not math.isfinite(value):
        raise ScoreModelInvalid(path, "is not a finite number")
    return value


def _number(data: Mapping[str, Any], key: str, where: str) -> float:
    return float(_get(data, key, where, (int, float)))


def parse_learned_score(data: object) -> LearnedScore:
    """The scoring part of a decoded model file; :class:`ScoreModelInvalid` otherwise."""
    if not isinstance(data, Mapping):
        raise ScoreModelInvalid("", "expected a JSON object at the top level")
    if data.get("format") != FORMAT:
        raise ScoreModelInvalid("format", f"must be {FORMAT!r}")
    calibration = _get(data, "calibration", "", Mapping)
    if calibration.get("method") != "platt":
        raise ScoreModelInvalid("calibration.method", "must be 'platt'")
    bands = _get(data, "size_bands", "", list)
    if not bands or any(type(b) is not int or b < 0 for b in bands) or bands != sorted(set(bands)):
        raise ScoreModelInvalid("size_bands", "must be increasing whole numbers ≥ 0")
    coefficients: dict[str, dict[str, float]] = {}
    for i, attr in enumerate(_get(data, "attributes", "", list)):
        where = f"attributes.{i}"
        if not isinstance(attr, Mapping):
            raise ScoreModelInvalid(where, "has the wrong type")
        name = _get(attr, "name", where, str)
        if name not in (*_CATEGORICAL, "company_size") or name in coefficients:
            raise ScoreModelInvalid(f"{where}.name", "is not a known attribute, or repeated")
        levels: dict[str, float] = {}
        for j, level in enumerate(_get(attr, "levels", where, list)):
            lw = f"{where}.levels.{j}"
            if not isinstance(level, Mapping):
                raise ScoreModelInvalid(lw, "has the wrong type")
            value = _get(level, "value", lw, str)
            if value in levels:
                raise ScoreModelInvalid(f"{lw}.value", "is repeated")
            levels[value] = _number(level, "coefficient", lw)
        coefficients[name] = levels
    priority = _get(data, "priority", "", Mapping)
    hot_at = _get(priority, "hot_at", "priority", int)
    warm_at = _get(priority, "warm_at", "priority", int)
    if not 0 <= warm_at <= hot_at <= 100:
        raise ScoreModelInvalid("priority", "needs 0 ≤ warm_at ≤ hot_at ≤ 100")
    return LearnedScore(
        version=_get(data, "version", "", str),
        intercept=_number(data, "intercept", ""),
        coefficients=coefficients,
        slope=_number(calibration, "slope", "calibration"),
        shift=_number(calibration, "intercept", "calibration"),
        size_bands=tuple(bands),
        hot_at=hot_at,
        warm_at=warm_at,
    )
