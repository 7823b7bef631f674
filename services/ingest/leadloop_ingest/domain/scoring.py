"""A transparent lead score (0–100) and priority from configurable weights.

score = channel weight + company-size band + budget band + completeness, capped at 100.
Each part is documented in the README's scoring table; the same inputs always give the
same score, so a replayed lead keeps its priority. A learned model
(``domain/learned_score.py``, docs/scoring.md) may stand in for the weights.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from leadloop.events import Priority, RawLead
from leadloop_ingest.domain.learned_score import LearnedScore
from leadloop_ingest.domain.validation import NormalisedContact

__all__ = ["Scoring", "ScoringWeights", "score"]


@dataclass(frozen=True, slots=True)
class ScoringWeights:
    channel: dict[str, int] = field(
        default_factory=lambda: {
            "referral": 30,
            "trade_show_csv": 20,
            "web_form": 15,
            "wechat": 15,
            "lead_ads": 10,
        }
    )
    default_channel: int = 10
    #: (minimum employees, points), highest band first.
    company_size_bands: tuple[tuple[int, int], ...] = ((1000, 25), (200, 18), (50, 10), (1, 4))
    #: (minimum budget, points), highest band first.
    budget_bands: tuple[tuple[float, int], ...] = ((100_000, 25), (20_000, 15), (5_000, 8))
    #: Points per present optional field among company, title, email and phone together.
    completeness_per_field: int = 4
    hot_at: int = 60
    warm_at: int = 30


#: What a lead is scored with: the hand-set weights (the default) or a learned model.
Scoring = ScoringWeights | LearnedScore


def score(raw: RawLead, contact: NormalisedContact, w: Scoring) -> tuple[int, Priority]:
    if isinstance(w, LearnedScore):
        return w.score(raw)
    points = w.channel.get(raw.source, w.default_channel)
    if raw.company_size is not None:
        points += next((p for lo, p in w.company_size_bands if raw.company_size >= lo), 0)
    if raw.budget is not None:
        points += next((p for lo, p in w.budget_bands if raw.budget >= lo), 0)
    present = [raw.company, raw.title, contact.email, contact.phone]
    points += w.completeness_per_field * sum(1 for v in present if v)
    value = max(0, min(100, points))
    if value >= w.hot_at:
        return value, Priority.HOT
    if value >= w.warm_at:
        return value, Priority.WARM
    return value, Priority.COLD
