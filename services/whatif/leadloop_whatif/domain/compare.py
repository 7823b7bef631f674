"""Side by side: what happened and what a configuration would have done.

Both sides are summarised by the same function from their ``Outcome`` (decisions and
ladder steps) and the history's closings, so a difference is the configuration's, never
the counting's. ``fidelity`` says how much of the actual record the replay reproduced,
id for id: with the configuration in force it is the proof that the replay is faithful.
"""

from __future__ import annotations

import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from leadloop.events import EscalationKind, Stage
from leadloop_whatif.domain.history import History, Outcome

__all__ = ["Comparison", "Fidelity", "Side", "compare", "summarise"]

_BREACHES = (EscalationKind.FIRST_RESPONSE, EscalationKind.FOLLOW_UP)


@dataclass(frozen=True, slots=True)
class Side:
    """One side's figures."""

    leads: int
    #: rep_id → leads given to the rep (first decisions and moves).
    reps: Mapping[str, int]
    #: rep_id → first decisions only.
    first: Mapping[str, int]
    #: rep_id → leads still open and owned at the end of the range.
    open_at_end: Mapping[str, int]
    #: team_id → leads whose first decision went to the team.
    teams: Mapping[str, int]
    #: max − min of ``reps`` over the reps of either side, and its coefficient of
    #: variation (stdev / mean).
    spread: int
    spread_cv: float
    pooled_first: int
    #: (hour, leads waiting in a pool at its end).
    pool: tuple[tuple[datetime, int], ...]
    pool_peak: int
    #: kind → level → steps fired.
    breaches: Mapping[str, Mapping[int, int]]
    reassigned: int
    reclaimed: int
    from_pool: int
    #: first_response / follow_up → the leads with a step of that kind fired while with
    #: their first owner (before any move: later cycles follow from the first).
    breached_leads: Mapping[str, frozenset[str]]


@dataclass(frozen=True, slots=True)
class Fidelity:
    """How much of the actual record a replay reproduced, id for id."""

    decisions: int
    decisions_matched: int
    steps: int
    steps_matched: int
    #: A few ids that differ (actual side first), for people to look at.
    examples: tuple[str, ...] = ()

    @property
    def exact(self) -> bool:
        return self.decisions == self.decisions_matched and self.steps == self.steps_matched


@dataclass(frozen=True, slots=True)
class Comparison:
    actual: Side
    whatif: Side
    #: Per kind (first_response, follow_up): leads breached in reality that the
    #: configuration would have kept in SLA, and leads it would have let breach (lost to
    #: silence) that were answered in time in reality.
    rescued: Mapping[str, int]
    lost: Mapping[str, int]
    fidelity: Fidelity
    notes: tuple[str, ...] = field(default_factory=tuple)


def summarise(outcome: Outcome, history: History, reps: Iterable[str] = ()) -> Side:
    closed = _closings(history)
    first: Counter[str] = Counter()
    given: Counter[str] = Counter()
    teams: Counter[str] = Counter()
    owner: dict[str, str | None] = {}
    pooled_first = reassigned = reclaimed = from_pool = 0
    # (time, +1 / −1): leads entering and leaving a pool.
    pool_moves: list[tuple[datetime, int]] = []
    in_pool: dict[str, bool] = {}
    decisions = sorted(outcome.decisions, key=lambda d: (d.at, d.lead_id, d.sequence))
    for d in decisions:
        if d.owner_id is not None:
            given[d.owner_id] += 1
        if d.sequence == 0:
            teams[d.team_id] += 1
            if d.owner_id is None:
                pooled_first += 1
            else:
                first[d.owner_id] += 1
        elif d.kind == "reclaimed":
            reclaimed += 1
        elif d.previous_owner_id is None:
            from_pool += 1
        else:
            reassigned += 1
        owner[d.lead_id] = d.owner_id
        waiting = d.owner_id is None and not _closed_by(closed, d.lead_id, d.at)
        if waiting != in_pool.get(d.lead_id, False):
            pool_moves.append((d.at, 1 if waiting else -1))
            in_pool[d.lead_id] = waiting
    for lead_id, at in closed.items():
        if in_pool.get(lead_id):
            pool_moves.append((at, -1))
    open_at_end: Counter[str] = Counter(
        o for lead_id, o in owner.items() if o is not None and lead_id not in closed
    )
    pool, peak = _hourly(pool_moves, history)
    breaches: dict[str, Counter[int]] = defaultdict(Counter)
    breached: dict[str, set[str]] = {k.value: set() for k in _BREACHES}
    first_move: dict[str, datetime] = {}
    for d in decisions:
        if d.sequence and d.lead_id not in first_move:
            first_move[d.lead_id] = d.at
    for s in outcome.steps:
        if s.status != "firing":
            continue
        breaches[s.kind.value][s.level] += 1
        moved = first_move.get(s.lead_id)
        if s.kind in _BREACHES and (moved is None or s.at < moved):
            breached[s.kind.value].add(s.lead_id)
    everyone = sorted(set(given) | set(reps))
    counts = [given.get(r, 0) for r in everyone] or [0]
    mean = statistics.fmean(counts)
    return Side(
        leads=sum(teams.values()),
        reps=dict(sorted(given.items())),
        first=dict(sorted(first.items())),
        open_at_end=dict(sorted(open_at_end.items())),
        teams=dict(sorted(teams.items())),
        spread=max(counts) - min(counts),
        spread_cv=round(statistics.pstdev(counts) / mean, 4) if mean else 0.0,
        pooled_first=pooled_first,
        pool=pool,
        pool_peak=peak,
        breaches={k: dict(sorted(v.items())) for k, v in sorted(breaches.items())},
        reassigned=reassigned,
        reclaimed=reclaimed,
        from_pool=from_pool,
        breached_leads={k: frozenset(v) for k, v in breached.items()},
    )


def compare(
    actual: Outcome, whatif: Outcome, history: History, notes: Iterable[str] = ()
) -> Comparison:
    reps = {d.owner_id for o in (actual, whatif) for d in o.decisions if d.owner_id}
    a = summarise(actual, history, reps)
    w = summarise(whatif, history, reps)
    return Comparison(
        actual=a,
        whatif=w,
        rescued={k: len(a.breached_leads[k] - w.breached_leads[k]) for k in a.breached_leads},
        lost={k: len(w.breached_leads[k] - a.breached_leads[k]) for k in a.breached_leads},
        fidelity=fidelity(actual, whatif),
        notes=tuple(notes),
    )


def fidelity(actual: Outcome, whatif: Outcome) -> Fidelity:
    """Decisions match on (assignment id, kind, owner, team, rule); steps on
    (escalation id, status)."""

    def decided(o: Outcome) -> set[tuple[str, str, str | None, str, str]]:
        return {(d.assignment_id, d.kind, d.owner_id, d.team_id, d.rule_id) for d in o.decisions}

    def stepped(o: Outcome) -> set[tuple[str, str]]:
        return {(s.escalation_id, s.status) for s in o.steps}

    da, dw = decided(actual), decided(whatif)
    sa, sw = stepped(actual), stepped(whatif)
    examples = (
        sorted(f"decision {x}" for x in da ^ dw)[:5] + sorted(f"step {x}" for x in sa ^ sw)[:5]
    )
    return Fidelity(
        decisions=max(len(da), len(dw)),
        decisions_matched=len(da & dw),
        steps=max(len(sa), len(sw)),
        steps_matched=len(sa & sw),
        examples=tuple(examples),
    )


def _closings(history: History) -> dict[str, datetime]:
    closed: dict[str, datetime] = {}
    for s in history.stages:
        if s.stage in (Stage.WON, Stage.LOST) and (
            s.lead_id not in closed or s.at < closed[s.lead_id]
        ):
            closed[s.lead_id] = s.at
    return closed


def _closed_by(closed: Mapping[str, datetime], lead_id: str, at: datetime) -> bool:
    when = closed.get(lead_id)
    return when is not None and when <= at


def _hourly(
    moves: list[tuple[datetime, int]], history: History
) -> tuple[tuple[tuple[datetime, int], ...], int]:
    """The pool's size at the end of every hour of the range, and its peak."""
    if not moves:
        return (), 0
    moves.sort(key=lambda m: m[0])
    start = (history.start or moves[0][0]).replace(minute=0, second=0, microsecond=0)
    end = history.end or moves[-1][0]
    out: list[tuple[datetime, int]] = []
    size = peak = 0
    i = 0
    hour = start + timedelta(hours=1)
    while True:
        while i < len(moves) and moves[i][0] < hour:
            size += moves[i][1]
            peak = max(peak, size)
            i += 1
        out.append((hour, size))
        if hour >= end and i >= len(moves):
            break
        hour += timedelta(hours=1)
    return tuple(out), peak
