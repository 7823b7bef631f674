"""Running totals of the period's lead records, kept by team so a report for one team
and the all-teams baselines come from the same pass.

A :class:`Tally` holds counts per label combination and, for medians, the durations
themselves as 8-byte integers (``array('q')``): a month of a million leads keeps a few
million integers, never the records.
"""

from __future__ import annotations

from array import array
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, date

from leadloop_review.domain.period import Period
from leadloop_review.domain.record import FOLLOWUP_STATUSES, OPEN_STAGES, LeadRecord

__all__ = ["CURRENT", "PREVIOUS", "Tally", "attribute"]

CURRENT, PREVIOUS = "current", "previous"
#: The trend dimensions, attributes of the acceptance.
DIMENSIONS = ("product", "industry", "region")
UNKNOWN = "unknown"


def attribute(value: str | None) -> str:
    return UNKNOWN if value is None else value


def _durations() -> array[int]:
    return array("q")


@dataclass
class RepTally:
    owned: int = 0
    followups: dict[str, int] = field(default_factory=lambda: dict.fromkeys(FOLLOWUP_STATUSES, 0))
    clean: int = 0  # owned leads with no step fired about the rep
    breaches: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    first_touch: array[int] = field(default_factory=_durations)
    won: int = 0
    lost: int = 0
    silent: int = 0


@dataclass
class FunnelTally:
    leads: int = 0
    reached: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    won: int = 0
    lost: int = 0
    won_cents: int = 0
    first_touch: array[int] = field(default_factory=_durations)


@dataclass
class Tally:
    """Everything the sections need, keyed by team first."""

    period: Period
    #: (part, team, "source" | "campaign", key) -> funnel counts
    funnel: dict[tuple[str, str, str, str], FunnelTally] = field(
        default_factory=lambda: defaultdict(FunnelTally)
    )
    #: (team, stage, reason, source, rep) -> lost leads (current period)
    losses: dict[tuple[str, str, str, str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    #: (part, team, stage) -> [reached, lost at it]
    stages: dict[tuple[str, str, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )
    #: (part, team, stage) -> time in stage of the leads that left it
    stage_ms: dict[tuple[str, str, str], array[int]] = field(
        default_factory=lambda: defaultdict(_durations)
    )
    reps: dict[tuple[str, str], RepTally] = field(default_factory=lambda: defaultdict(RepTally))
    open_owned: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    #: team -> [won, repeat won, repeat cents]
    repurchase: dict[str, list[int]] = field(default_factory=lambda: defaultdict(lambda: [0, 0, 0]))
    #: (team, rep or "none") -> count per score 1..5 (index 0..4)
    ratings: dict[tuple[str, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0] * 5)
    )
    #: (part, team, dimension, value) -> [leads, won, won cents]
    trends: dict[tuple[str, str, str, str], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0, 0])
    )
    #: (team, dimension, value, bucket) -> leads
    trend_buckets: dict[tuple[str, str, str, str], int] = field(
        default_factory=lambda: defaultdict(int)
    )
    #: (team, month) -> [won, won cents] of leads won in the month, whenever accepted
    actuals: dict[tuple[str, date], list[int]] = field(
        default_factory=lambda: defaultdict(lambda: [0, 0])
    )
    #: Records tallied per part (current, previous) and wins (actuals).
    counted: dict[str, int] = field(default_factory=lambda: defaultdict(int))

    def add(self, r: LeadRecord) -> None:
        """Tally a lead accepted in the period or the previous one (others are ignored)."""
        if self.period.contains(r.accepted_at):
            part = CURRENT
        elif self.period.previous().contains(r.accepted_at):
            part = PREVIOUS
        else:
            return
        self.counted[part] += 1
        team = r.team
        won = r.outcome == "won"
        for dim, key in (("source", r.source), ("campaign", attribute(r.campaign))):
            f = self.funnel[(part, team, dim, key)]
            f.leads += 1
            for stage in r.reached:
                f.reached[stage] += 1
            f.won += won
            f.lost += r.outcome == "lost"
            f.won_cents += r.amount_cents if won else 0
            if r.first_touch_ms is not None:
                f.first_touch.append(r.first_touch_ms)
        for stage in OPEN_STAGES:
            if stage in r.reached:
                self.stages[(part, team, stage)][0] += 1
        if r.loss_stage is not None:
            self.stages[(part, team, r.loss_stage)][1] += 1
        for stage, ms in r.stage_ms:
            self.stage_ms[(part, team, stage)].append(ms)
        for dim in DIMENSIONS:
            t = self.trends[(part, team, dim, attribute(getattr(r, dim)))]
            t[0] += 1
            t[1] += won
            t[2] += r.amount_cents if won else 0
            if part == CURRENT:
                bucket = self.period.bucket(r.accepted_at)
                self.trend_buckets[(team, dim, attribute(getattr(r, dim)), bucket)] += 1
        if part == CURRENT:
            self._current(r)

    def _current(self, r: LeadRecord) -> None:
        team = r.team
        if r.outcome == "lost":
            key = (
                team,
                r.loss_stage or "new",
                r.loss_reason or "other",
                r.source,
                r.closer or "none",
            )
            self.losses[key] += 1
        for rep in r.owners:
            t = self.reps[(team, rep)]
            t.owned += 1
            t.clean += all(b.rep != rep for b in r.breaches)
        for b in r.breaches:
            if b.rep is not None:
                self.reps[(team, b.rep)].breaches[b.level] += 1
        if r.first_owner is not None and r.followup is not None:
            t = self.reps[(team, r.first_owner)]
            t.followups[r.followup] += 1
            if r.first_touch_ms is not None:
                t.first_touch.append(r.first_touch_ms)
        if r.outcome is not None and r.closer is not None:
            t = self.reps[(team, r.closer)]
            t.won += r.outcome == "won"
            t.lost += r.outcome == "lost"
        if r.outcome is None and r.owner is not None:
            self.open_owned[team] += 1
            if r.silent:
                self.reps[(team, r.owner)].silent += 1
        if r.outcome == "won":
            p = self.repurchase[team]
            p[0] += 1
            if r.customer_won_before:
                p[1] += 1
                p[2] += r.amount_cents
        for score, about in r.ratings:
            if 1 <= score <= 5:
                self.ratings[(team, about or "none")][score - 1] += 1

    def add_win(self, r: LeadRecord) -> None:
        """Tally a lead won in one of the period's months, whenever it was accepted
        (the forecast's actual)."""
        if r.outcome != "won" or r.closed_at is None:
            return
        month = r.closed_at.astimezone(UTC).date().replace(day=1)
        if month in self.period.months():
            self.counted["wins"] += 1
            a = self.actuals[(r.team, month)]
            a[0] += 1
            a[1] += r.amount_cents
