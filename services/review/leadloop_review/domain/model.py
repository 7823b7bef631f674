"""The review report as data: what every renderer (JSON, Markdown, HTML) reads.

Every section is a frozen dataclass whose fields are plain values (str, int, float,
None, tuples of rows, dicts of str to numbers), so ``dataclasses.asdict`` gives its JSON.
Conventions, everywhere: counts are numbers of leads unless the name says otherwise;
``*_cents`` are amounts in hundredths of the currency; ``*_ms`` are durations in
milliseconds; ratios are fractions in [0, 1] (None when their denominator is 0); times
are UTC. Rows are in the order a reader should see them (stated per table).

``SECTIONS`` lists the sections in report order with their bilingual headings: a
renderer walks it instead of hard-coding the list.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime

__all__ = [
    "SECTIONS",
    "Accountability",
    "AccountabilityRow",
    "Bottleneck",
    "Bottlenecks",
    "DemandTrends",
    "ForecastActual",
    "ForecastRow",
    "Funnel",
    "FunnelRow",
    "LossAttribution",
    "LossCell",
    "LossRow",
    "Report",
    "Repurchase",
    "RepurchaseRow",
    "Satisfaction",
    "SatisfactionRow",
    "SilentLeaks",
    "SilentRow",
    "StageStat",
    "Suggestion",
    "TrendRow",
]


@dataclass(frozen=True, slots=True)
class FunnelRow:
    """One source (or campaign, or the total): its leads and how far they got.
    ``reached`` counts leads that reached each stage (``FUNNEL_STAGES``); ``open`` is
    leads neither won nor lost at the cut-off."""

    key: str
    #: The team, in ``by_team_source`` rows only.
    team: str | None
    leads: int
    reached: dict[str, int]
    won: int
    lost: int
    open: int
    won_cents: int
    #: won / leads
    conversion: float | None
    #: won / (won + lost)
    win_rate: float | None
    #: Median first response (first owner's assignment to first touch).
    first_touch_p50_ms: float | None


@dataclass(frozen=True, slots=True)
class Funnel:
    """漏斗与转化 Funnel and conversion. Rows by leads, most first; ``by_team_source``
    by team, then leads. A lead without a campaign is under ``unknown``."""

    total: FunnelRow
    by_source: tuple[FunnelRow, ...]
    by_campaign: tuple[FunnelRow, ...]
    by_team_source: tuple[FunnelRow, ...]


@dataclass(frozen=True, slots=True)
class LossRow:
    """Lost leads of one stage × reason × source × team × rep (rep: the owner at the
    loss, ``none`` when nobody owned it)."""

    stage: str
    reason: str
    source: str
    team: str
    rep: str
    lost: int


@dataclass(frozen=True, slots=True)
class LossCell:
    stage: str
    reason: str
    lost: int
    #: lost / all lost leads
    share: float


@dataclass(frozen=True, slots=True)
class LossAttribution:
    """流失归因 Loss attribution. ``rows`` by lost, most first; ``by_stage_reason`` the
    same summed over source, team and rep. Both sum to ``lost``."""

    lost: int
    by_stage_reason: tuple[LossCell, ...]
    rows: tuple[LossRow, ...]


@dataclass(frozen=True, slots=True)
class StageStat:
    """One team's open stage: leads that reached it, were lost at it, and how long
    the leads that left it stayed."""

    team: str
    stage: str
    reached: int
    lost_at: int
    loss_rate: float | None
    left: int
    median_ms: float | None


@dataclass(frozen=True, slots=True)
class Bottleneck:
    """A stage whose loss rate or median time is above its baseline (docs/review.md)."""

    team: str
    stage: str
    measure: str  # "loss_rate" | "time_in_stage"
    value: float
    baseline: float
    #: "previous_period" (the team's own) or "all_teams" (this period)
    baseline_of: str
    leads: int


@dataclass(frozen=True, slots=True)
class Bottlenecks:
    """瓶颈 Bottlenecks: ``flagged`` by value / baseline, largest first; ``stages`` every
    team's stages in funnel order."""

    flagged: tuple[Bottleneck, ...]
    stages: tuple[StageStat, ...]


@dataclass(frozen=True, slots=True)
class AccountabilityRow:
    """One rep's record on the period's leads. ``owed``: leads whose first response
    the rep owed as first owner, decided (within_sla + late + missed; pending apart).
    ``effective_rate`` is 有效跟进率 = within_sla / owed. ``sla_attainment``: share of the
    leads the rep owned with no escalation step fired about the rep."""

    rank: int
    team: str
    rep: str
    owned: int
    owed: int
    within_sla: int
    late: int
    missed: int
    pending: int
    effective_rate: float | None
    sla_attainment: float | None
    breaches: int
    breaches_by_level: dict[str, int]
    first_touch_p50_ms: float | None
    won: int
    lost: int
    silent: int


@dataclass(frozen=True, slots=True)
class Accountability:
    """责任追踪 Accountability: ranked by 有效跟进率, lowest first (no rate last), then
    most breaches, then team and rep."""

    rows: tuple[AccountabilityRow, ...]


@dataclass(frozen=True, slots=True)
class SilentRow:
    team: str
    rep: str
    silent: int


@dataclass(frozen=True, slots=True)
class SilentLeaks:
    """沉默流失 Silent leaks: owned, open leads nobody moved since the metrics declared
    them silent, at the cut-off. ``share`` = silent / owned open leads."""

    silent: int
    open_owned: int
    share: float | None
    rows: tuple[SilentRow, ...]


@dataclass(frozen=True, slots=True)
class RepurchaseRow:
    team: str
    won: int
    repeat_won: int
    #: repeat_won / won
    rate: float | None
    repeat_cents: int


@dataclass(frozen=True, slots=True)
class Repurchase:
    """复购 Repurchase: wins of the period's leads whose customer had won before."""

    rows: tuple[RepurchaseRow, ...]


@dataclass(frozen=True, slots=True)
class SatisfactionRow:
    """Ratings of one team (``rep`` = ``*``) or one rep (``none``: rating named no rep)."""

    team: str
    rep: str
    ratings: int
    mean: float | None
    #: Count of each score "1" … "5".
    scores: dict[str, int]


@dataclass(frozen=True, slots=True)
class Satisfaction:
    """客户满意度 Customer satisfaction: teams first, then reps by mean, lowest first."""

    rows: tuple[SatisfactionRow, ...]


@dataclass(frozen=True, slots=True)
class ForecastRow:
    """One forecast snapshot of a team's month against what the team won in it."""

    team: str
    month: date
    taken_at: datetime | None
    age_weeks: int | None
    weighted_cents: int | None
    commit_cents: int | None
    best_case_cents: int | None
    actual_cents: int
    actual_won: int
    #: 1 − |weighted − actual| / actual, for a month ended by the cut-off with a win.
    accuracy: float | None


@dataclass(frozen=True, slots=True)
class ForecastActual:
    """预测与实际 Forecast against actual: per team and month of the period, every
    snapshot (oldest first) beside the month's won amount; a team with wins and no
    snapshot has one row without forecast values."""

    months: tuple[date, ...]
    rows: tuple[ForecastRow, ...]


@dataclass(frozen=True, slots=True)
class TrendRow:
    """One value of a dimension (product, industry, region), this period against the
    previous one. ``by_bucket``: leads per day (week) or ISO week (month)."""

    dimension: str
    value: str
    leads: int
    previous_leads: int
    change: int
    won: int
    conversion: float | None
    previous_conversion: float | None
    won_cents: int
    previous_won_cents: int
    by_bucket: dict[str, int]


@dataclass(frozen=True, slots=True)
class DemandTrends:
    """客户需求趋势 Demand trends: ``rows`` per dimension by leads, most first;
    ``movers`` the largest changes in leads (absolute), largest first."""

    buckets: tuple[str, ...]
    rows: tuple[TrendRow, ...]
    movers: tuple[TrendRow, ...]


@dataclass(frozen=True, slots=True)
class Suggestion:
    """A concrete action with the numbers that led to it (rules in domain/suggest.py)."""

    rule: str
    team: str
    text: str
    evidence: dict[str, float | int | str | None]


@dataclass(frozen=True, slots=True)
class Predictor:
    """One lead attribute's power to predict winning in the score model: ``share`` of all
    attributes' cross-validated log-loss drops (a ranking aid), and the values that raise
    or lower the odds most, as ``(value, odds ratio against the average lead, leads)``."""

    attribute: str
    share: float
    logloss_drop: float
    best: tuple[tuple[str, float, int], ...]
    worst: tuple[tuple[str, float, int], ...]


@dataclass(frozen=True, slots=True)
class Predictors:
    """赢单因素 What predicts winning, from the score model ``leadloop score fit`` wrote
    (docs/scoring.md); ``model`` None when the review was given none."""

    model: str | None = None
    #: The closed leads it learned from: first and last day, leads, won.
    window: tuple[str, str] | None = None
    leads: int = 0
    won: int = 0
    rows: tuple[Predictor, ...] = ()


@dataclass(frozen=True, slots=True)
class Report:
    period: str
    start: datetime
    end: datetime
    previous_period: str
    #: Facts whose own time is after this are not counted.
    until: datetime
    #: None: every team.
    team: str | None
    leads: int
    funnel: Funnel
    losses: LossAttribution
    bottlenecks: Bottlenecks
    accountability: Accountability
    silent: SilentLeaks
    repurchase: Repurchase
    satisfaction: Satisfaction
    forecast: ForecastActual
    trends: DemandTrends
    suggestions: tuple[Suggestion, ...] = field(default=())
    predictors: Predictors = field(default_factory=Predictors)


#: (Report attribute, Chinese heading, English heading), in report order.
SECTIONS: tuple[tuple[str, str, str], ...] = (
    ("funnel", "漏斗与转化", "Funnel and conversion"),
    ("losses", "流失归因", "Loss attribution"),
    ("bottlenecks", "瓶颈", "Bottlenecks"),
    ("accountability", "责任追踪", "Accountability"),
    ("silent", "沉默流失", "Silent leaks"),
    ("repurchase", "复购", "Repurchase"),
    ("satisfaction", "客户满意度", "Customer satisfaction"),
    ("forecast", "预测与实际", "Forecast against actual"),
    ("trends", "客户需求趋势", "Demand trends"),
    ("predictors", "赢单因素", "What predicts winning"),
    ("suggestions", "改进建议", "Suggested actions"),
)
