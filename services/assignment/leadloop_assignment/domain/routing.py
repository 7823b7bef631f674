"""``decide(lead, rules, state, now) -> Decision`` and how a decision changes the state.

Rules are tried in order. The first matching rule that *applies* decides: every strategy
applies (pooling the lead when nobody is eligible) except ``sticky``, which applies only
when the previous owner can take the lead; otherwise the next matching rule decides, and
the decision records the sticky rules passed over and why.

A rep is eligible when active, inside their team's working hours (teams with
``working_hours``), not cooling down from this very lead (a rep a lead was taken from
does not get it straight back), under capacity (open leads) and under their daily cap
(leads assigned on the current calendar day of their team's time zone, computed from
``now``); ``weighted`` also skips reps of weight 0. The strategies:

- ``round_robin`` walks the team's reps in rep-id order, starting after the last rep
  served (the team's cursor), and takes the first eligible one. Because the cursor names
  a rep rather than an index, adding or removing a rep neither resets nor skews it.
- ``weighted`` is a smooth weighted rotation kept by assignment counts alone: the next
  lead goes to the eligible rep whose next lead is "due" first, ``(n + 1 - δ) / weight``
  (n: leads the rep got from this team's weighted rotation under the current roster),
  among the reps not ahead of their share; ties go in rotation order after the cursor.
  δ = 1 / (2k - 2) for k reps (Tijdeman's chairman assignment), which keeps every rep's
  count within one lead of ``N · weight / Σ weight`` after every lead N with a stable
  roster (plain ``(n + 1) / weight`` drifts by up to k - 1). Counts are kept per roster
  (the set of active reps with a positive weight, and their weights): a new rep or a
  changed weight starts fresh counts, so a newcomer is not flooded with catch-up leads,
  and going back to an earlier roster resumes its counts.
- ``least_loaded`` takes the eligible rep with the fewest open leads; ties go in
  rotation order after the cursor.
- ``sticky`` gives a returning customer (``is_returning`` with a ``previous_owner_id``)
  to the previous owner when that rep is eligible. The rule's ``team`` limits where the
  previous owner is looked for; without one, any team of the rule set (the lead then
  joins the owner's team).
- ``direct`` gives the lead to the rule's ``rep_id``; when that rep is not eligible the
  lead goes to the pool of the rule's team.
- ``pool`` always leaves the lead in the team's pool.

The three rotations (round-robin, weighted, least-loaded) move the team's cursor to the
rep they chose; sticky and direct assignments do not take a rotation turn.
"""

from __future__ import annotations

import functools
import hashlib
from bisect import bisect_right
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from zoneinfo import ZoneInfo

from leadloop.calendar import is_working
from leadloop.events import AssignmentKind, LeadAccepted, RepStatus, Strategy
from leadloop_assignment.domain.rules import Rep, Rule, RuleSet, Team, matching_rules

__all__ = [
    "ROTATIONS",
    "Candidate",
    "Decision",
    "PassedRule",
    "RoutingState",
    "apply",
    "decide",
    "eligibility",
    "intake_day",
    "place",
    "roster_id",
]

#: Strategies that take a turn in the team's rotation (and move its cursor).
ROTATIONS = frozenset({Strategy.ROUND_ROBIN, Strategy.WEIGHTED, Strategy.LEAST_LOADED})


@dataclass(frozen=True, slots=True)
class RoutingState:
    """What decisions depend on besides the rules and the clock."""

    #: team_id → the rep served last by the team's rotation.
    cursors: Mapping[str, str] = field(default_factory=dict)
    #: rep_id → open leads owned.
    load: Mapping[str, int] = field(default_factory=dict)
    #: (rep_id, calendar day in the rep's team's time zone) → leads assigned that day.
    intake: Mapping[tuple[str, date], int] = field(default_factory=dict)
    #: (team_id, roster_id, rep_id) → leads the team's weighted rotation gave the rep
    #: while that roster was in force.
    weighted: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    #: lead_id → reps the lead was taken from recently (they do not get it back yet).
    cooling: Mapping[str, frozenset[str]] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Candidate:
    rep_id: str
    #: None when eligible; otherwise why the rep was skipped (a stable code).
    skipped: str | None
    #: What the strategy compared, for people (e.g. open leads, weighted count).
    detail: str | None = None

    def describe(self) -> str:
        if self.skipped:
            return f"{self.rep_id} ({self.skipped})"
        if self.detail:
            return f"{self.rep_id} (eligible, {self.detail})"
        return f"{self.rep_id} (eligible)"


@dataclass(frozen=True, slots=True)
class PassedRule:
    """A matching rule that did not apply (a sticky rule whose owner could not take it)."""

    rule_id: str
    strategy: Strategy
    why: str
    candidates: tuple[Candidate, ...] = ()


@dataclass(frozen=True, slots=True)
class Decision:
    lead_id: str
    owner_id: str | None
    team_id: str
    manager_id: str | None
    rule_id: str
    rule_version: str
    strategy: Strategy
    kind: AssignmentKind
    candidates: tuple[Candidate, ...]
    decided_at: datetime
    #: Matching rules passed over before this one, with why.
    passed: tuple[PassedRule, ...] = ()
    #: The owner's intake day (their team's calendar day at ``decided_at``).
    day: date | None = None
    #: The roster a weighted decision counted under.
    roster: str | None = None
    #: The rep the lead was taken from (a move after the first decision).
    released: str | None = None
    #: Why a move happened (rep left, escalation, from the pool); None for first decisions.
    cause: str | None = None

    def reason(self) -> str:
        """Human-readable: which rule, which candidates and why each was skipped."""
        considered = ", ".join(c.describe() for c in self.candidates)
        if self.owner_id:
            chosen = f"chose {self.owner_id}"
        elif self.strategy is Strategy.POOL and not self.candidates:
            chosen = "the rule pools every lead: pooled"
        else:
            chosen = "no eligible rep: pooled"
        passed = "".join(
            f"rule {p.rule_id} ({p.strategy.value}) did not apply: {p.why}; " for p in self.passed
        )
        cause = f"{self.cause}: " if self.cause else ""
        return (
            f"{cause}{passed}rule {self.rule_id}@{self.rule_version} → team {self.team_id} by "
            f"{self.strategy.value}; {chosen}; considered: {considered or 'none'}"
        )

    def record(self) -> dict[str, object]:
        """The decision as stored with the assignment (PostgreSQL jsonb)."""
        return {
            "text": self.reason(),
            "rule_id": self.rule_id,
            "rule_version": self.rule_version,
            "strategy": self.strategy.value,
            "kind": self.kind.value,
            "cause": self.cause,
            "released": self.released,
            "candidates": [_candidate_record(c) for c in self.candidates],
            "passed": [
                {
                    "rule_id": p.rule_id,
                    "strategy": p.strategy.value,
                    "why": p.why,
                    "candidates": [_candidate_record(c) for c in p.candidates],
                }
                for p in self.passed
            ],
        }


def _candidate_record(c: Candidate) -> dict[str, object]:
    record: dict[str, object] = {"rep_id": c.rep_id, "skipped": c.skipped}
    if c.detail:
        record["detail"] = c.detail
    return record


def eligibility(
    rep: Rep,
    load: int,
    intake_today: int = 0,
    *,
    needs_weight: bool = False,
    off_hours: bool = False,
    cooling: bool = False,
) -> str | None:
    """None when the rep may take a new lead, else the reason they may not."""
    if rep.status is RepStatus.LEFT:
        return "left"
    if rep.status is RepStatus.AWAY:
        return "away"
    if off_hours:
        return "off_hours"
    if cooling:
        return "cooldown"
    if needs_weight and rep.weight == 0:
        return "weight_zero"
    if load >= rep.capacity:
        return "at_capacity"
    if rep.daily_cap is not None and intake_today >= rep.daily_cap:
        return "daily_cap"
    return None


def intake_day(team: Team, now: datetime) -> date:
    """The calendar day in the team's time zone that daily caps count in."""
    return _local_day(team.timezone, now)


@functools.lru_cache(maxsize=1024)
def _local_day(timezone: str, now: datetime) -> date:
    # A batch asks for the same few (zone, instant) pairs once per rep and candidate.
    return now.astimezone(ZoneInfo(timezone)).date()


def roster_id(team: Team) -> str:
    """Identifies the team's weighted roster: its active reps with a positive weight."""
    return _view(team).roster


def _roster_id(team: Team) -> str:
    members = sorted(
        f"{r.rep_id}:{r.weight}" for r in team.reps if r.status is RepStatus.ACTIVE and r.weight
    )
    return hashlib.sha256("\n".join(members).encode()).hexdigest()[:16]


def decide(lead: LeadAccepted, rules: RuleSet, state: RoutingState, now: datetime) -> Decision:
    passed: list[PassedRule] = []
    for rule in matching_rules(lead, rules):
        if rule.strategy is Strategy.STICKY:
            decision = _sticky(lead, rule, rules, state, now, passed)
            if decision is not None:
                return decision
            continue
        assert rule.team is not None  # checked by the rule set
        team = rules.team(rule.team)
        decide_in_team = _STRATEGIES[rule.strategy]
        owner, candidates, roster = decide_in_team(rule, team, state, now, lead.lead_id)
        return _decision(lead, rules, rule, team, owner, candidates, now, passed, roster)
    raise AssertionError("rule sets end with a catch-all rule that is not sticky")


def apply(state: RoutingState, decision: Decision) -> RoutingState:
    """The state after a decision: the owner's load and intake grow (the load of a rep
    the lead was taken from shrinks); a rotation moves the team's cursor to the owner; a
    weighted decision counts under its roster."""
    # One copy of each map that changes, and one new state (a decision is made for
    # every lead and every move: copies add up).
    load = dict(state.load)
    if decision.released is not None:
        gone = decision.released
        load[gone] = max(load.get(gone, 0) - 1, 0)
    owner = decision.owner_id
    if owner is None:
        return state if decision.released is None else replace(state, load=load)
    assert decision.day is not None
    day_key = (owner, decision.day)
    load[owner] = load.get(owner, 0) + 1
    cursors, weighted = state.cursors, state.weighted
    if decision.strategy in ROTATIONS:
        cursors = {**cursors, decision.team_id: owner}
    if decision.strategy is Strategy.WEIGHTED and decision.roster is not None:
        key = (decision.team_id, decision.roster, owner)
        weighted = {**weighted, key: weighted.get(key, 0) + 1}
    return replace(
        state,
        load=load,
        intake={**state.intake, day_key: state.intake.get(day_key, 0) + 1},
        cursors=cursors,
        weighted=weighted,
    )


# --- strategies within a team -------------------------------------------------------------

_Outcome = tuple[str | None, list[Candidate], str | None]


def _check(
    rep: Rep, team: Team, state: RoutingState, now: datetime, lead_id: str, **kw: bool
) -> str | None:
    return _checker(team, state, now, lead_id, **kw)(rep)


def _checker(
    team: Team, state: RoutingState, now: datetime, lead_id: str, *, needs_weight: bool = False
) -> Callable[[Rep], str | None]:
    """``eligibility`` of the team's reps for one lead at ``now``, with what is the same
    for every rep (the intake day, working hours, the lead's cooling reps) worked out
    once: a rotation asks it of every rep of the team."""
    day = intake_day(team, now)
    off_hours = team.calendar is not None and not is_working(now, team.calendar)
    cooling = state.cooling.get(lead_id, frozenset())
    load, intake = state.load, state.intake

    def check(rep: Rep) -> str | None:
        return eligibility(
            rep,
            load.get(rep.rep_id, 0),
            intake.get((rep.rep_id, day), 0),
            needs_weight=needs_weight,
            off_hours=off_hours,
            cooling=rep.rep_id in cooling,
        )

    return check


def _round_robin(
    rule: Rule, team: Team, state: RoutingState, now: datetime, lead_id: str
) -> _Outcome:
    candidates: list[Candidate] = []
    check = _checker(team, state, now, lead_id)
    for rep in _rotation(team, state.cursors.get(team.team_id)):
        skipped = check(rep)
        candidates.append(Candidate(rep.rep_id, skipped))
        if skipped is None:
            return rep.rep_id, candidates, None
    return None, candidates, None


def _weighted(rule: Rule, team: Team, state: RoutingState, now: datetime, lead_id: str) -> _Outcome:
    roster = roster_id(team)
    members = [r for r in team.reps if r.status is RepStatus.ACTIVE and r.weight > 0]
    counts = {r.rep_id: state.weighted.get((team.team_id, roster, r.rep_id), 0) for r in members}
    total = sum(r.weight for r in members)
    lead_no = sum(counts.values()) + 1  # this lead is the roster's N-th weighted lead
    # δ = slack / scale: 1 / (2k − 2) for k members, 0 for one. Integers keep it exact.
    scale, slack = (2 * len(members) - 2, 1) if len(members) > 1 else (1, 0)

    candidates: list[Candidate] = []
    eligible: list[Rep] = []
    check = _checker(team, state, now, lead_id, needs_weight=True)
    for rep in _rotation(team, state.cursors.get(team.team_id)):
        skipped = check(rep)
        detail = None
        if skipped is None:
            eligible.append(rep)
            detail = f"{counts[rep.rep_id]} so far, weight {rep.weight} of {total}"
        candidates.append(Candidate(rep.rep_id, skipped, detail))
    # Not ahead of their share after this lead: n ≤ N·w/W − δ.
    not_ahead = [
        r
        for r in eligible
        if counts[r.rep_id] * total * scale <= lead_no * r.weight * scale - slack * total
    ]
    pick = _earliest_due(not_ahead or eligible, counts, scale, slack)
    return (pick.rep_id if pick else None), candidates, roster


def _earliest_due(
    reps: Sequence[Rep], counts: Mapping[str, int], scale: int, slack: int
) -> Rep | None:
    """The rep whose next lead is due first, min ((n + 1)·scale − slack) / w; the first of
    equals (the rotation order breaks ties).

    Due times are compared by cross-multiplying (a/w < b/v ⇔ a·v < b·w for positive
    weights) instead of as ``Fraction``s: the same order, exactly, without building and
    normalising a fraction per rep and comparison (a quarter of a replay's time)."""
    pick: Rep | None = None
    due = weight = 0
    for rep in reps:
        mine = (counts[rep.rep_id] + 1) * scale - slack
        if pick is None or mine * weight < due * rep.weight:
            pick, due, weight = rep, mine, rep.weight
    return pick


def _least_loaded(
    rule: Rule, team: Team, state: RoutingState, now: datetime, lead_id: str
) -> _Outcome:
    candidates: list[Candidate] = []
    pick: Rep | None = None
    check = _checker(team, state, now, lead_id)
    for rep in _rotation(team, state.cursors.get(team.team_id)):
        skipped = check(rep)
        load = state.load.get(rep.rep_id, 0)
        candidates.append(
            Candidate(rep.rep_id, skipped, None if skipped else f"{load}/{rep.capacity} open")
        )
        if skipped is None and (pick is None or load < state.load.get(pick.rep_id, 0)):
            pick = rep
    return (pick.rep_id if pick else None), candidates, None


def _direct(rule: Rule, team: Team, state: RoutingState, now: datetime, lead_id: str) -> _Outcome:
    assert rule.rep_id is not None  # checked by the rule set
    rep = next((r for r in team.reps if r.rep_id == rule.rep_id), None)
    if rep is None:  # the roster moved the rep to another team since the rule was written
        return None, [Candidate(rule.rep_id, "not_in_team")], None
    skipped = _check(rep, team, state, now, lead_id)
    return (rep.rep_id if skipped is None else None), [Candidate(rep.rep_id, skipped)], None


def _pool(rule: Rule, team: Team, state: RoutingState, now: datetime, lead_id: str) -> _Outcome:
    return None, [], None


_STRATEGIES = {
    Strategy.ROUND_ROBIN: _round_robin,
    Strategy.WEIGHTED: _weighted,
    Strategy.LEAST_LOADED: _least_loaded,
    Strategy.DIRECT: _direct,
    Strategy.POOL: _pool,
}


def _sticky(
    lead: LeadAccepted,
    rule: Rule,
    rules: RuleSet,
    state: RoutingState,
    now: datetime,
    passed: list[PassedRule],
) -> Decision | None:
    """The previous owner's decision, or None (and the reason added to ``passed``)."""
    previous = lead.previous_owner_id
    if not lead.is_returning or previous is None:
        passed.append(PassedRule(rule.rule_id, rule.strategy, "no previous owner"))
        return None
    found = rules.rep(previous)
    if found is None or (rule.team is not None and found[0].team_id != rule.team):
        where = f"team {rule.team}" if rule.team else "the rule set"
        passed.append(
            PassedRule(
                rule.rule_id,
                rule.strategy,
                f"previous owner {previous} is not in {where}",
                (Candidate(previous, "not_in_team" if rule.team else "unknown_rep"),),
            )
        )
        return None
    team, rep = found
    skipped = _check(rep, team, state, now, lead.lead_id)
    candidate = Candidate(rep.rep_id, skipped)
    if skipped is not None:
        passed.append(
            PassedRule(
                rule.rule_id, rule.strategy, f"previous owner {previous} {skipped}", (candidate,)
            )
        )
        return None
    return _decision(lead, rules, rule, team, rep.rep_id, [candidate], now, passed, None)


def _decision(
    lead: LeadAccepted,
    rules: RuleSet,
    rule: Rule,
    team: Team,
    owner: str | None,
    candidates: Sequence[Candidate],
    now: datetime,
    passed: Sequence[PassedRule],
    roster: str | None,
) -> Decision:
    return Decision(
        lead_id=lead.lead_id,
        owner_id=owner,
        team_id=team.team_id,
        manager_id=team.manager_id,
        rule_id=rule.rule_id,
        rule_version=rules.version,
        strategy=rule.strategy if owner else Strategy.POOL,
        kind=AssignmentKind.INITIAL if owner else AssignmentKind.POOLED,
        candidates=tuple(candidates),
        decided_at=now,
        passed=tuple(passed),
        day=intake_day(team, now) if owner else None,
        roster=roster if owner else None,
    )


def place(
    lead_id: str, rule: Rule, team: Team, strategy: Strategy, state: RoutingState, now: datetime
) -> tuple[str | None, list[Candidate], str | None]:
    """Choose a rep of ``team`` for a lead by a rotation or ``direct`` strategy (moves
    after the first decision use it): (owner or None, candidates, weighted roster)."""
    return _STRATEGIES[strategy](rule, team, state, now, lead_id)


def _rotation(team: Team, last: str | None) -> list[Rep]:
    """The team's reps in rep-id order, starting after ``last``."""
    reps, ids = _in_id_order(team)
    if last is None:
        return list(reps)
    cut = bisect_right(ids, last)  # reps[cut:] are those after ``last``
    return [*reps[cut:], *reps[:cut]]


@dataclass(frozen=True, slots=True)
class _TeamView:
    """What every decision in a team reads off it, worked out once per team object."""

    #: Kept so that the team's id cannot be reused while the entry lives.
    team: Team
    #: The reps in rep-id order, and their ids.
    reps: tuple[Rep, ...]
    ids: list[str]
    #: ``roster_id``: a hash over the weighted roster.
    roster: str


#: id(team) → its view. Teams live as long as the rule set that a service or a replay
#: decides with, so a few are in use at a time.
_VIEWS: dict[int, _TeamView] = {}
_VIEWS_KEPT = 256


def _view(team: Team) -> _TeamView:
    found = _VIEWS.get(id(team))
    if found is not None and found.team is team:
        return found
    reps = tuple(sorted(team.reps, key=lambda r: r.rep_id))
    if len(_VIEWS) >= _VIEWS_KEPT:
        _VIEWS.clear()
    view = _VIEWS[id(team)] = _TeamView(team, reps, [r.rep_id for r in reps], _roster_id(team))
    return view


def _in_id_order(team: Team) -> tuple[tuple[Rep, ...], list[str]]:
    """A team's reps sorted once per team instead of for every decision."""
    view = _view(team)
    return view.reps, view.ids
