"""What the metrics know of one lead, how each fact changes it, and what it contributes.

A lead's contribution to every series is a pure function of its state
(:func:`contributions`); applying a fact changes the served values by the difference
between the contributions after and before. The served values are therefore always the
sum of the contributions of the stored states, which is what reconcile checks.

Order of arrival: a lead's facts come from several topics, so a stage change can
arrive before the assignment, or an activity before the acceptance. The state is built
so that this does not matter where it can (the latest assignment and stage are chosen
by their own timestamps, first times are minima, reached stages a union), and where a
counter needs a label value that is not known yet, the count waits for it: a win is
counted when the lead's team is known, funnel entries when its source is. Label values
a counter used are frozen in the state when it first counts, so a counter never moves
from one series to another (Prometheus would read the drop as a reset).

Repurchases: a win is served (``leadloop_leads_won_total`` by team and source) only once
the acceptance is known, and whether the customer had won before comes with that same
acceptance. The flag is frozen with the source by the first acceptance (a later one is
ignored, as for the source), so the repurchase of a won lead is counted in the same step
as its win and never changes afterwards, whichever of the win, the assignment and the
acceptance arrives first.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from itertools import pairwise

from leadloop_metrics.domain.facts import (
    Accepted,
    Assigned,
    Escalated,
    LeadFact,
    Rated,
    Silenced,
    StageMoved,
    Touched,
)
from leadloop_metrics.domain.labels import Delta, LabelPolicy, add, observe, series

__all__ = [
    "CLOSED_STAGES",
    "FUNNEL_STAGES",
    "OPEN_STAGES",
    "Clock",
    "FirstResponse",
    "LeadState",
    "Lost",
    "StageTime",
    "Won",
    "apply",
    "contributions",
    "current_stage",
    "followup_status",
    "ledger_state",
]

OPEN_STAGES = ("new", "assigned", "contacted", "qualified", "proposal", "negotiation")
CLOSED_STAGES = ("won", "lost")
FUNNEL_STAGES = OPEN_STAGES + CLOSED_STAGES

#: Orders facts of one kind by their own time, then id: "the latest" is deterministic.
Order = tuple[datetime, str]


@dataclass(frozen=True, slots=True)
class Won:
    team: str
    cents: int
    #: The owner when the win became known (None: no owner, or stored before reps).
    rep: str | None = None


@dataclass(frozen=True, slots=True)
class Lost:
    team: str
    stage: str
    reason: str
    rep: str | None = None


@dataclass(frozen=True, slots=True)
class FirstResponse:
    millis: int
    team: str
    priority: str
    #: The first owner, whose first response it was.
    rep: str | None = None


@dataclass(frozen=True, slots=True)
class StageTime:
    """How long the lead stayed in ``stage``, fixed when it was first seen to leave."""

    stage: str
    millis: int
    team: str


@dataclass(frozen=True, slots=True)
class Rating:
    """One satisfaction score; ``team`` is fixed when the lead's team is first known."""

    event_id: str
    score: int
    rep: str | None
    team: str | None = None


@dataclass(frozen=True, slots=True)
class Clock:
    """One escalation step seen on sla.escalations (fired and/or resolved)."""

    escalation_id: str
    kind: str
    policy_id: str
    fired: bool
    resolved: bool
    owner: str | None = None
    #: When the step fired (None until a firing event was seen, or stored before).
    breached_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class LeadState:
    lead_id: str
    source: str | None = None
    accepted_at: datetime | None = None
    priority: str | None = None
    #: The customer had won a lead before: frozen with ``source`` by the first
    #: acceptance (False until then, and for states stored before it was kept).
    customer_won_before: bool = False
    #: The team and owner of the latest assignment decision (by assigned_at).
    team: str | None = None
    owned: bool = False
    owner: str | None = None
    assignment_order: Order | None = None
    first_assigned_at: datetime | None = None
    first_owned_at: datetime | None = None
    #: The owner of the earliest owning assignment (by assigned_at, then event id).
    first_owner: str | None = None
    first_owned_order: Order | None = None
    first_touch_at: datetime | None = None
    #: The latest assignment, touch or stage change: when the lead last moved.
    last_activity_at: datetime | None = None
    #: The ``quiet_since`` of the latest silence seen: the lead is silent while it has
    #: not moved since then.
    silenced: datetime | None = None
    #: The latest CRM stage (by occurred_at) and the latest amount the CRM gave.
    crm_stage: str | None = None
    stage_order: Order | None = None
    #: Amounts in hundredths: sums of integers are exact in any order.
    amount_cents: int | None = None
    amount_order: Order | None = None
    #: The latest expected close date the CRM gave (by occurred_at, then event id; a
    #: stage change without one keeps the one before): what dates the lead in a forecast.
    expected_close: date | None = None
    expected_close_order: Order | None = None
    loss_reason: str | None = None
    reached: frozenset[str] = frozenset()
    #: When the lead first entered each stage the CRM reported (by occurred_at).
    stage_entered: tuple[tuple[str, datetime], ...] = ()
    stage_times: tuple[StageTime, ...] = ()
    won: Won | None = None
    lost: Lost | None = None
    first_response: FirstResponse | None = None
    assignment_latency_ms: int | None = None
    clocks: tuple[Clock, ...] = field(default=())
    ratings: tuple[Rating, ...] = ()


def _later(new: Order, old: Order | None) -> bool:
    return old is None or new > old


def _min(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b < a else a


def _max(a: datetime | None, b: datetime) -> datetime:
    return b if a is None or b > a else a


def apply(state: LeadState, fact: LeadFact) -> LeadState:
    """The state after one fact (applied once: the caller dedupes by event id)."""
    s = state
    if isinstance(fact, Accepted):
        if s.source is not None:
            # A lead is accepted once; a second acceptance (a producer retry under a new
            # event id) must not move its funnel counts to another source.
            return s
        s = replace(
            s,
            source=fact.source,
            accepted_at=fact.accepted_at,
            priority=fact.priority,
            customer_won_before=fact.customer_won_before,
            reached=s.reached | {"new"},
        )
    elif isinstance(fact, Assigned):
        order = (fact.assigned_at, fact.event_id)
        owner = fact.owner if fact.owned else None
        if _later(order, s.assignment_order):
            s = replace(s, team=fact.team, owned=fact.owned, owner=owner, assignment_order=order)
        s = replace(
            s,
            first_assigned_at=_min(s.first_assigned_at, fact.assigned_at),
            priority=s.priority or fact.priority,
            last_activity_at=_max(s.last_activity_at, fact.assigned_at),
        )
        if fact.owned:
            s = replace(
                s,
                first_owned_at=_min(s.first_owned_at, fact.assigned_at),
                reached=s.reached | {"assigned"},
            )
            if s.first_owned_order is None or order < s.first_owned_order:
                s = replace(s, first_owner=owner, first_owned_order=order)
    elif isinstance(fact, Touched):
        if fact.touch:
            # The first qualifying activity moves a lead to `contacted` (DESIGN.md).
            s = replace(
                s,
                first_touch_at=_min(s.first_touch_at, fact.occurred_at),
                reached=s.reached | {"contacted"},
                last_activity_at=_max(s.last_activity_at, fact.occurred_at),
            )
    elif isinstance(fact, Rated):
        if all(r.event_id != fact.event_id for r in s.ratings):
            rating = Rating(fact.event_id, fact.score, fact.rep)
            s = replace(s, ratings=tuple(sorted((*s.ratings, rating), key=lambda r: r.event_id)))
    elif isinstance(fact, Silenced):
        if s.silenced is None or fact.quiet_since > s.silenced:
            s = replace(s, silenced=fact.quiet_since)
    elif isinstance(fact, StageMoved):
        order = (fact.occurred_at, fact.event_id)
        if _later(order, s.stage_order):
            s = replace(s, crm_stage=fact.stage, stage_order=order)
        if fact.amount is not None and _later(order, s.amount_order):
            s = replace(s, amount_cents=round(fact.amount * 100), amount_order=order)
        if fact.expected_close is not None and _later(order, s.expected_close_order):
            s = replace(s, expected_close=fact.expected_close, expected_close_order=order)
        if fact.stage == "lost" and s.loss_reason is None:
            s = replace(s, loss_reason=fact.loss_reason)
        entered = dict(s.stage_entered)
        entered[fact.stage] = _min(entered.get(fact.stage), fact.occurred_at)
        s = replace(
            s,
            reached=s.reached | {fact.stage},
            stage_entered=tuple(sorted(entered.items())),
            last_activity_at=_max(s.last_activity_at, fact.occurred_at),
        )
    else:
        s = _escalated(s, fact)
    return _freeze(s)


def _escalated(s: LeadState, fact: Escalated) -> LeadState:
    clocks = {c.escalation_id: c for c in s.clocks}
    old = clocks.get(fact.escalation_id)
    fired = fact.firing or (old is not None and old.fired)
    resolved = (not fact.firing) or (old is not None and old.resolved)
    breached_at = old.breached_at if old is not None else None
    if fact.firing and fact.breached_at is not None:
        breached_at = _min(breached_at, fact.breached_at)
    owner = fact.owner if fact.owner is not None else old.owner if old is not None else None
    clocks[fact.escalation_id] = Clock(
        fact.escalation_id, fact.kind, fact.policy_id, fired, resolved, owner, breached_at
    )
    return replace(s, clocks=tuple(clocks[k] for k in sorted(clocks)))


def _furthest_open(reached: frozenset[str]) -> str:
    return next((st for st in reversed(OPEN_STAGES) if st in reached), "new")


def _freeze(s: LeadState) -> LeadState:
    """Fix the label values of counts that have just become countable."""
    if s.won is None and "won" in s.reached and s.team is not None:
        s = replace(s, won=Won(s.team, s.amount_cents or 0, s.owner))
    if s.lost is None and "lost" in s.reached and s.team is not None:
        reason = s.loss_reason or "other"
        s = replace(s, lost=Lost(s.team, _furthest_open(s.reached), reason, s.owner))
    if (
        s.first_response is None
        and s.first_owned_at is not None
        and s.first_touch_at is not None
        and s.team is not None
        and s.priority is not None
    ):
        millis = _millis(s.first_touch_at - s.first_owned_at)
        first = FirstResponse(millis, s.team, s.priority, s.first_owner)
        s = replace(s, first_response=first)
    if (
        s.assignment_latency_ms is None
        and s.first_assigned_at is not None
        and s.accepted_at is not None
    ):
        s = replace(s, assignment_latency_ms=_millis(s.first_assigned_at - s.accepted_at))
    if s.team is not None and any(r.team is None for r in s.ratings):
        ratings = tuple(r if r.team is not None else replace(r, team=s.team) for r in s.ratings)
        s = replace(s, ratings=ratings)
    return _freeze_stage_times(s)


def _stage_entries(s: LeadState) -> list[tuple[datetime, int, str]]:
    """When the lead first entered each stage it reached, in time order (ties in funnel
    order): acceptance, first owner and first touch stand for new, assigned, contacted."""
    first = dict(s.stage_entered)
    for stage, when in (
        ("new", s.accepted_at),
        ("assigned", s.first_owned_at),
        ("contacted", s.first_touch_at),
    ):
        if when is not None:
            first[stage] = _min(first.get(stage), when)
    rank = {stage: n for n, stage in enumerate(FUNNEL_STAGES)}
    return sorted((when, rank.get(stage, len(rank)), stage) for stage, when in first.items())


def _freeze_stage_times(s: LeadState) -> LeadState:
    """Fix the time spent in every stage the lead has been seen to leave.

    A stage's time is fixed once, with the owning team of that moment: a histogram's
    counts must never go back. A fact that arrives later and would put another stage in
    between does not move a time already fixed; nothing is fixed before the acceptance
    (the start of ``new``) and the team are known, which keeps that rare."""
    if s.accepted_at is None or s.team is None:
        return s
    done = {t.stage for t in s.stage_times}
    entries = _stage_entries(s)
    fixed = [
        StageTime(stage, _millis(left - entered), s.team)
        for (entered, _, stage), (left, _, _) in pairwise(entries)
        if stage not in done and stage not in CLOSED_STAGES
    ]
    return replace(s, stage_times=s.stage_times + tuple(fixed)) if fixed else s


def _millis(delta: timedelta) -> int:
    # A touch logged before the assignment (clock skew, a rep acting early) is 0, not
    # negative: a histogram has no negative buckets.
    return max(0, delta // timedelta(milliseconds=1))


def current_stage(s: LeadState) -> str | None:
    """The lead's open stage now, or None when it is closed (won or lost)."""
    if s.crm_stage is not None:
        return None if s.crm_stage in CLOSED_STAGES else s.crm_stage
    if s.first_touch_at is not None:
        return "contacted"
    return "assigned" if s.owned else "new"


def ledger_state(s: LeadState) -> str:
    """Where the lead is now, one of ``LEDGER_STATES``."""
    if s.crm_stage in CLOSED_STAGES:
        return s.crm_stage
    if s.team is None:
        return "awaiting_assignment"
    if not s.owned:
        return "pooled"
    if s.silenced is not None and (s.last_activity_at is None or s.last_activity_at <= s.silenced):
        return "silent"
    if any(c.fired and not c.resolved for c in s.clocks):
        return "owned_breached"
    return "owned_within_sla"


def followup_status(s: LeadState) -> str | None:
    """How the first owner's first response went (``FOLLOWUP_STATUSES``); None for a
    lead nobody has owned. The response is the first touch or the first stage the CRM
    reported, whichever came first; a first-response step of the first owner that
    fired at or before it makes it late."""
    if s.first_owner is None:
        return None
    responses = [when for _, when in s.stage_entered]
    if s.first_touch_at is not None:
        responses.append(s.first_touch_at)
    breaches = [
        c.breached_at
        for c in s.clocks
        if c.kind == "first_response"
        and c.fired
        and c.breached_at is not None
        and c.owner in (None, s.first_owner)
    ]
    breach = min(breaches, default=None)
    if responses:
        return "late" if breach is not None and breach <= min(responses) else "within_sla"
    return "missed" if breach is not None else "pending"


def contributions(s: LeadState, policy: LabelPolicy, sign: float = 1.0) -> Delta:
    """Everything this lead adds to the served series (``sign=-1``: its negation)."""
    out: Delta = {}
    source = policy.source(s.source) if s.source is not None else None
    if source is not None:
        for entered in sorted(s.reached):
            key = series("leadloop_funnel_entered_total", stage=entered, source=source)
            add(out, key, sign)
        if s.won is not None:
            team = policy.team(s.won.team)
            add(out, series("leadloop_leads_won_total", team=team, source=source), sign)
            add(
                out,
                series("leadloop_won_amount_total", team=team, source=source),
                sign * s.won.cents,
            )
            if s.customer_won_before:
                add(out, series("leadloop_repurchases_total", team=team), sign)
            if s.won.rep is not None:
                rep = policy.rep(s.won.rep)
                add(out, series("leadloop_rep_leads_won_total", **rep), sign)
                add(out, series("leadloop_rep_won_amount_total", **rep), sign * s.won.cents)
        stage = current_stage(s)
        if stage is not None:
            team = policy.team(s.team)
            add(out, series("leadloop_funnel_open_leads", stage=stage, team=team), sign)
            if s.amount_cents is not None:
                key = series("leadloop_pipeline_amount", stage=stage, team=team)
                add(out, key, sign * s.amount_cents)
            if s.team is not None and not s.owned:
                add(out, series("leadloop_pool_leads", team=team), sign)
            if s.owned:
                add(out, series("leadloop_rep_open_leads", **policy.rep(s.owner)), sign)
        state = ledger_state(s)
        add(out, series("leadloop_leads_by_state", state=state, team=policy.team(s.team)), sign)
    if s.lost is not None:
        key = series(
            "leadloop_leads_lost_total",
            stage=s.lost.stage,
            reason=policy.loss_reason(s.lost.reason),
            team=policy.team(s.lost.team),
        )
        add(out, key, sign)
        if s.lost.rep is not None:
            add(out, series("leadloop_rep_leads_lost_total", **policy.rep(s.lost.rep)), sign)
    if s.first_response is not None:
        fr = s.first_response
        observe(
            out,
            "leadloop_first_response_seconds",
            fr.millis,
            sign,
            team=policy.team(fr.team),
            priority=policy.priority(fr.priority),
        )
        if fr.rep is not None:
            observe(
                out, "leadloop_rep_first_response_seconds", fr.millis, sign, **policy.rep(fr.rep)
            )
    for r in s.ratings:
        millis = r.score * 1000
        if r.team is not None:
            team = policy.team(r.team)
            observe(out, "leadloop_satisfaction_score", millis, sign, team=team)
        if r.rep is not None:
            rep = policy.rep(r.rep)
            observe(out, "leadloop_rep_satisfaction_score", millis, sign, **rep)
    status = followup_status(s)
    if status is not None:
        key = series("leadloop_rep_followups", status=status, **policy.rep(s.first_owner))
        add(out, key, sign)
    if s.assignment_latency_ms is not None:
        observe(out, "leadloop_assignment_latency_seconds", s.assignment_latency_ms, sign)
    for st in s.stage_times:
        observe(
            out,
            "leadloop_stage_duration_seconds",
            st.millis,
            sign,
            stage=st.stage,
            team=policy.team(st.team),
        )
    open_clocks = {(c.kind, c.policy_id) for c in s.clocks if c.fired and not c.resolved}
    for kind, _policy in sorted(open_clocks):
        add(out, series("leadloop_sla_open_clocks", kind=policy.escalation_kind(kind)), sign)
    return out
