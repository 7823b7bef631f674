"""A simulated year of leads for the score backtest, the hand-set weights it is compared
with, and the ranking figures.

The generative model (seeded, documented in docs/scoring.md): leads arrive
``LEADS_PER_DAY`` a day; each attribute is drawn independently from ``MIX``; company size
is log-normal (median 80 employees, 15 % not given), the budget log-normal and given
more often by larger companies; company, title, email and phone are each given with a
fixed chance. The log-odds of winning are ``BASE`` plus one effect per attribute value
(``EFFECTS``) plus small effects of the budget and the title, which the learned model
cannot see (the metrics' facts keep no budget or contact fields) but the hand-set
weights can. Every lead closes, won or lost, after an exponential dwell of
``MEAN_DWELL_DAYS``, the same for both outcomes.

:data:`HAND_SET` is a copy of ingest's default ``ScoringWeights``
(``leadloop_ingest.domain.scoring``); the review does not import ingest.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from leadloop_review.domain.score_fit import ClosedLead

__all__ = [
    "BASE",
    "EFFECTS",
    "HAND_SET",
    "MIX",
    "SimLead",
    "auc",
    "hand_set_score",
    "simulate",
    "top_share_rate",
]

LEADS_PER_DAY = 30
MEAN_DWELL_DAYS = 30.0
BASE = -1.3

#: Each attribute's values and how often each comes.
MIX: Mapping[str, Mapping[str, float]] = {
    "source": {
        "web_form": 0.35,
        "lead_ads": 0.25,
        "wechat": 0.15,
        "trade_show_csv": 0.15,
        "referral": 0.10,
    },
    "industry": {
        "software": 0.25,
        "manufacturing": 0.25,
        "retail": 0.2,
        "finance": 0.1,
        "healthcare": 0.1,
        "education": 0.1,
    },
    "product": {"starter": 0.45, "pro": 0.35, "enterprise": 0.2},
    "region": {"east": 0.35, "north": 0.25, "south": 0.25, "west": 0.15},
    "country": {"CN": 0.85, "SG": 0.1, "DE": 0.05},
    "campaign": {
        "spring_promo": 0.3,
        "webinar": 0.15,
        "giveaway": 0.15,
        "retargeting": 0.2,
        "brand": 0.2,
    },
}

#: Log-odds of winning added by each value; values not listed add 0. Unlike the
#: hand-set channel weights, trade shows and WeChat convert worse than web forms, and
#: the largest companies no better than mid-sized ones.
EFFECTS: Mapping[str, Mapping[str, float]] = {
    "source": {
        "referral": 0.9,
        "web_form": 0.2,
        "trade_show_csv": -0.3,
        "wechat": -0.4,
        "lead_ads": -0.5,
    },
    "industry": {
        "finance": 0.6,
        "software": 0.4,
        "healthcare": 0.2,
        "retail": -0.5,
        "education": -0.7,
    },
    "product": {"starter": 0.3, "enterprise": -0.5},
    "region": {"east": 0.3, "south": -0.3, "west": -0.1},
    "campaign": {"webinar": 0.5, "giveaway": -0.8},
    "company_size": {
        "0-9": -0.6,
        "10-49": -0.2,
        "50-199": 0.1,
        "200-999": 0.3,
        "1000+": 0.1,
        "(missing)": -0.3,
    },
}
#: Unseen by the learned model: a budget given (+0.2, +0.2 more from 20,000), a title.
BUDGET_GIVEN, BUDGET_LARGE, TITLE_GIVEN = 0.2, 0.2, 0.1


@dataclass(frozen=True, slots=True)
class HandSet:
    """Ingest's default ``ScoringWeights``, copied."""

    channel: Mapping[str, int]
    default_channel: int
    company_size_bands: tuple[tuple[int, int], ...]
    budget_bands: tuple[tuple[float, int], ...]
    completeness_per_field: int


HAND_SET = HandSet(
    channel={"referral": 30, "trade_show_csv": 20, "web_form": 15, "wechat": 15, "lead_ads": 10},
    default_channel=10,
    company_size_bands=((1000, 25), (200, 18), (50, 10), (1, 4)),
    budget_bands=((100_000, 25), (20_000, 15), (5_000, 8)),
    completeness_per_field=4,
)


@dataclass(frozen=True, slots=True)
class SimLead:
    lead: ClosedLead
    budget: float | None
    #: company, title, email, phone given.
    fields_given: tuple[bool, bool, bool, bool]
    #: The true win probability.
    p_true: float


def hand_set_score(s: SimLead, w: HandSet = HAND_SET) -> int:
    """Ingest's hand-set score of a simulated lead (as ``scoring.score`` computes it)."""
    a = s.lead.attributes
    points = w.channel.get(str(a["source"]), w.default_channel)
    size = a.get("company_size")
    if isinstance(size, int):
        points += next((p for lo, p in w.company_size_bands if size >= lo), 0)
    if s.budget is not None:
        points += next((p for lo, p in w.budget_bands if s.budget >= lo), 0)
    points += w.completeness_per_field * sum(s.fields_given)
    return max(0, min(100, points))


def _pick(rng: random.Random, mix: Mapping[str, float]) -> str:
    return rng.choices(list(mix), weights=list(mix.values()))[0]


def _band(size: int | None) -> str:
    if size is None:
        return "(missing)"
    for lo, label in ((1000, "1000+"), (200, "200-999"), (50, "50-199"), (10, "10-49")):
        if size >= lo:
            return label
    return "0-9"


def simulate(seed: int, year: int, months: int = 12) -> list[SimLead]:
    """Every lead accepted in the first ``months`` months of ``year``, each with its
    eventual outcome (closes may fall after the year)."""
    rng = random.Random(seed)  # noqa: S311 - a reproducible simulation, not a secret
    start = datetime(year, 1, 1, tzinfo=UTC)
    end_month = date(year + (months // 12), months % 12 + 1, 1)
    days = (end_month - date(year, 1, 1)).days
    out = []
    for day in range(days):
        for k in range(LEADS_PER_DAY):
            accepted = start + timedelta(days=day, seconds=rng.uniform(0, 86_400))
            attrs: dict[str, object] = {a: _pick(rng, mix) for a, mix in MIX.items()}
            size = None if rng.random() < 0.15 else max(1, round(rng.lognormvariate(4.4, 1.5)))
            attrs["company_size"] = size
            budget_chance = 0.3 if size is None or size < 50 else 0.6
            budget = (
                round(rng.lognormvariate(9.5, 1.2), 2) if rng.random() < budget_chance else None
            )
            given = (rng.random() < 0.7, rng.random() < 0.5, rng.random() < 0.9, rng.random() < 0.6)
            z = BASE + sum(
                EFFECTS.get(a, {}).get(str(v), 0.0) for a, v in attrs.items() if a != "company_size"
            )
            z += EFFECTS["company_size"][_band(size)]
            z += (
                (BUDGET_GIVEN if budget is not None else 0.0)
                + (BUDGET_LARGE if budget is not None and budget >= 20_000 else 0.0)
                + (TITLE_GIVEN if given[1] else 0.0)
            )
            p = 1.0 / (1.0 + math.exp(-z))
            won = rng.random() < p
            closed = accepted + timedelta(days=rng.expovariate(1.0 / MEAN_DWELL_DAYS))
            lead = ClosedLead(f"sim-{day}-{k}", accepted, closed, won, attrs)
            out.append(SimLead(lead, budget, given, p))
    return out


# --- ranking figures -------------------------------------------------------------------


def auc(scores: Sequence[float], labels: Sequence[bool]) -> float:
    """The chance that a won lead scores above a lost one (ties count half)."""
    pairs = sorted(zip(scores, labels, strict=True))
    won = sum(labels)
    lost = len(labels) - won
    if not won or not lost:
        raise ValueError("auc needs both outcomes")
    rank_sum = 0.0
    i = 0
    while i < len(pairs):
        j = i
        while j < len(pairs) and pairs[j][0] == pairs[i][0]:
            j += 1
        mid = (i + 1 + j) / 2  # the mean 1-based rank of the tied run
        rank_sum += mid * sum(1 for _, y in pairs[i:j] if y)
        i = j
    return (rank_sum - won * (won + 1) / 2) / (won * lost)


def top_share_rate(scores: Sequence[float], labels: Sequence[bool], share: float) -> float:
    """The win rate of the top ``share`` of leads by score. Leads tied at the cut are
    taken in part (their mean win rate), as a random order among ties would on average."""
    n = len(scores)
    want = share * n
    if want <= 0:
        raise ValueError("share must be positive")
    by_score: dict[float, list[bool]] = {}
    for s, y in zip(scores, labels, strict=True):
        by_score.setdefault(s, []).append(y)
    taken = won = 0.0
    for s in sorted(by_score, reverse=True):
        group = by_score[s]
        room = want - taken
        if room <= 0:
            break
        part = min(1.0, room / len(group))
        taken += part * len(group)
        won += part * sum(group)
    return won / taken
