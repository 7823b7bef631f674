"""The clock lifecycle and ladder firing, without a database: examples of each rule,
and properties over random sequences of input events and ticks."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from hypothesis import given, settings
from hypothesis import strategies as st
from tests.support.sla_events import (
    ALWAYS,
    FIRST_RESPONSE,
    T0,
    H,
    accepted,
    assigned,
    at,
    rep,
    stage,
    touch,
)

from leadloop.events import (
    EscalationKind,
    EscalationRaised,
    EscalationStatus,
    RepUpdated,
)
from leadloop_sla_monitor.domain.firing import Escalator
from leadloop_sla_monitor.domain.ladder import Clock, PolicySet
from leadloop_sla_monitor.domain.lifecycle import Lifecycle
from leadloop_sla_monitor.domain.state import (
    ClockKey,
    ClockState,
    Fired,
    Input,
    LeadState,
    Rep,
    Snapshot,
    Touch,
    scope_of,
)

POLICIES = PolicySet.model_validate(
    {
        "policies": [
            *FIRST_RESPONSE,
            {
                "policy_id": "fu",
                "kind": "follow_up",
                "limit_seconds": 4 * H,
                "ladder": [
                    {"level": 1, "after_seconds": 0, "action": "remind_owner"},
                    {"level": 2, "after_seconds": H, "action": "notify_manager"},
                ],
            },
            {
                "policy_id": "stall",
                "kind": "stage_stall",
                "when": {"stage": ["assigned", "contacted", "proposal"]},
                "limit_seconds": 2 * H,
                "ladder": [{"level": 1, "after_seconds": 0, "action": "notify_manager"}],
            },
        ],
    }
)
LIFECYCLE = Lifecycle(POLICIES, ALWAYS)
ESCALATOR = Escalator(POLICIES, ALWAYS)


@dataclass
class World:
    """What the repository would hold: the rows every decision saved, and the steps."""

    applied: set[str] = field(default_factory=set)
    leads: dict[str, LeadState] = field(default_factory=dict)
    touches: dict[str, Touch] = field(default_factory=dict)
    reps: dict[str, Rep] = field(default_factory=dict)
    clocks: dict[ClockKey, ClockState] = field(default_factory=dict)
    steps: dict[tuple[str, EscalationStatus], EscalationRaised] = field(default_factory=dict)

    def apply(self, inputs: Sequence[Input], now: datetime) -> int:
        scope = scope_of(inputs)
        before = Snapshot(
            new_event_ids=frozenset(i for i in scope.event_ids if i not in self.applied),
            leads=dict(self.leads),
            touches=dict(self.touches),
            reps=dict(self.reps),
            clocks=dict(self.clocks),
        )
        self.applied.update(scope.event_ids)
        decision = LIFECYCLE.decide(before, inputs, now)
        for lead in decision.leads:
            self.leads[lead.lead_id] = lead
        for lead_id, t in decision.touches:
            self.touches[lead_id] = t
        for r in decision.reps:
            known = self.reps.get(r.rep_id)
            if known is None or known.updated_at <= r.updated_at:
                self.reps[r.rep_id] = r
        for state in decision.clocks:
            self.clocks[state.key] = state
        fired = {
            i: Fired(e.breached_at, e.manager_id)
            for (i, status), e in self.steps.items()
            if status is EscalationStatus.FIRING
        }
        self.store(ESCALATOR.resolve(decision.stopped, fired, now))
        return decision.applied

    def fire(self, now: datetime) -> list[EscalationRaised]:
        due = [s.clock for s in self.clocks.values() if s.running and s.due_at <= now]
        firing = ESCALATOR.fire(due, now)
        for a in firing.advances:
            state = self.clocks[a.key]
            level = a.next_level if a.next_level is not None else state.clock.next_level
            self.clocks[a.key] = replace(
                state,
                clock=replace(state.clock, next_level=level),
                due_at=a.due_at or datetime.max.replace(tzinfo=UTC),
            )
        self.store(firing.events)
        return list(firing.events)

    def store(self, events: Iterable[EscalationRaised]) -> None:
        for e in events:
            self.steps.setdefault((e.escalation_id, e.status), e)

    def running(self, lead: str, kind: EscalationKind | None = None) -> list[Clock]:
        return [
            s.clock
            for s in self.clocks.values()
            if s.running and s.clock.lead_id == lead and kind in (None, s.clock.kind)
        ]


# --- examples of each rule ----------------------------------------------------------------


def test_an_assignment_starts_first_response_and_stage_stall_with_the_owners_manager() -> None:
    w = World()
    w.apply([rep("rep-a", "mgr-1", T0), assigned("l1", "rep-a", T0)], T0)
    clocks = sorted(w.running("l1"), key=lambda c: c.kind)
    assert [(c.kind, c.policy_id, c.manager_id) for c in clocks] == [
        (EscalationKind.FIRST_RESPONSE, "fr-default", "mgr-1"),
        (EscalationKind.STAGE_STALL, "stall", "mgr-1"),
    ]


def test_a_touch_stops_the_first_response_clock_and_starts_a_follow_up() -> None:
    w = World()
    w.apply([assigned("l1", "rep-a", T0)], T0)
    w.apply([touch("l1", at(60))], at(60))
    assert not w.running("l1", EscalationKind.FIRST_RESPONSE)
    (fu,) = w.running("l1", EscalationKind.FOLLOW_UP)
    assert fu.started_at == at(60)
    (stopped,) = [s for s in w.clocks.values() if s.clock.kind is EscalationKind.FIRST_RESPONSE]
    assert (stopped.stopped_at, stopped.stop_reason) == (at(60), "touched")


def test_a_note_is_not_a_touch() -> None:
    w = World()
    w.apply([assigned("l1", "rep-a", T0), touch("l1", at(60), kind="note")], at(60))
    assert w.running("l1", EscalationKind.FIRST_RESPONSE)


def test_a_touch_read_before_the_assignment_answers_it() -> None:
    w = World()
    w.apply([touch("l1", at(60), promise=at(2 * H))], at(60))
    w.apply([assigned("l1", "rep-a", T0)], at(61))
    assert not w.running("l1", EscalationKind.FIRST_RESPONSE)
    (fu,) = w.running("l1", EscalationKind.FOLLOW_UP)
    assert (fu.started_at, fu.promised_at) == (at(60), at(2 * H))


def test_the_source_arriving_later_re_decides_a_clock_that_has_not_fired() -> None:
    w = World()
    w.apply([assigned("l1", "rep-a", T0)], T0)
    w.apply([accepted("l1", "lead_ads")], at(1))
    (fr,) = w.running("l1", EscalationKind.FIRST_RESPONSE)
    assert fr.policy_id == "fr-hot-ads"
    assert w.clocks[("l1", fr.kind, fr.cycle)].due_at == at(300)


def test_firing_then_a_touch_resolves_every_fired_step_with_its_manager() -> None:
    w = World()
    w.apply([rep("rep-a", "mgr-1", T0), assigned("l1", "rep-a", T0)], T0)
    fired = w.fire(at(H + 1800))
    assert [(e.kind, e.level) for e in fired] == [
        (EscalationKind.FIRST_RESPONSE, 1),
        (EscalationKind.RECLAIM_WARNING, 2),
    ]
    w.apply([rep("rep-a", "mgr-2", at(H + 1900))], at(H + 1900))
    w.apply([touch("l1", at(2 * H))], at(2 * H))
    resolved = [e for (_, s), e in w.steps.items() if s is EscalationStatus.RESOLVED]
    assert sorted(e.escalation_id for e in resolved) == sorted(e.escalation_id for e in fired)
    assert {e.manager_id for e in resolved} == {"mgr-1"}
    assert {e.breached_at for e in resolved} == {at(H + 1800)}


def test_won_stops_everything_and_a_redelivery_changes_nothing() -> None:
    w = World()
    w.apply([assigned("l1", "rep-a", T0), touch("l1", at(60))], at(60))
    won = stage("l1", "won", at(120))
    assert w.apply([won], at(120)) == 1
    assert not w.running("l1")
    rows = dict(w.clocks)
    assert w.apply([won, won], at(130)) == 0
    assert w.clocks == rows


def test_pooling_stops_the_clocks_and_starts_none() -> None:
    w = World()
    w.apply([assigned("l1", "rep-a", T0)], T0)
    w.apply([assigned("l1", None, at(60))], at(60))
    assert not w.running("l1")
    assert {s.stop_reason for s in w.clocks.values()} == {"reassigned"}


def test_an_older_roster_entry_loses() -> None:
    w = World()
    w.apply([rep("rep-a", "mgr-2", at(10)), rep("rep-a", "mgr-old", at(5))], T0)
    w.apply([assigned("l1", "rep-a", T0)], T0)
    assert {c.manager_id for c in w.running("l1")} == {"mgr-2"}


# --- properties over random sequences -----------------------------------------------------

LEADS = ("l1", "l2")
times = st.integers(min_value=0, max_value=12 * H).map(at)


@st.composite
def an_input(draw: st.DrawFn) -> Input:
    lead = draw(st.sampled_from(LEADS))
    when = draw(times)
    kind = draw(st.integers(0, 4))
    if kind == 0:
        return assigned(lead, draw(st.sampled_from(["rep-a", "rep-b", None])), when)
    if kind == 1:
        promise = draw(st.none() | times)
        return touch(lead, when, draw(st.sampled_from(["call", "email", "note"])), promise)
    if kind == 2:
        name = draw(st.sampled_from(["contacted", "proposal", "negotiation", "won", "lost"]))
        return stage(lead, name, when)
    if kind == 3:
        return accepted(lead, draw(st.sampled_from(["web", "lead_ads"])))
    return rep(draw(st.sampled_from(["rep-a", "rep-b"])), draw(st.sampled_from(["m1", "m2"])), when)


# A step is a batch of inputs (with a redelivery now and then) or a tick at a time.
steps = st.lists(
    st.one_of(
        st.lists(an_input(), min_size=1, max_size=4).map(lambda b: ("batch", b)),
        times.map(lambda t: ("tick", t)),
    ),
    max_size=25,
)


def _time_of(e: Input) -> datetime:
    return e.updated_at if isinstance(e, RepUpdated) else e.occurred_at


def run(world: World, plan: list[tuple[str, object]], *, redeliver: bool = True) -> None:
    now = T0
    seen: list[Input] = []
    for what, arg in plan:
        if what == "tick":
            assert isinstance(arg, datetime)
            world.fire(arg)
            continue
        assert isinstance(arg, list)
        batch = [*arg, *seen[-1:]] if redeliver else arg
        now = max([now, *(_time_of(e) for e in batch)])
        world.apply(batch, now)
        seen.extend(arg)


@settings(max_examples=300, deadline=None)
@given(steps)
def test_never_two_running_first_response_or_follow_up_clocks_for_a_lead(
    plan: list[tuple[str, object]],
) -> None:
    w = World()
    run(w, plan)
    for lead in LEADS:
        for kind in (EscalationKind.FIRST_RESPONSE, EscalationKind.FOLLOW_UP):
            assert len(w.running(lead, kind)) <= 1


@settings(max_examples=300, deadline=None)
@given(st.lists(an_input(), max_size=25))
def test_events_in_time_order_never_leave_two_running_clocks_of_one_kind(
    inputs: list[Input],
) -> None:
    # A stage change read after an assignment that happened later leaves the stall
    # clock of the assignment running next to the new stage's: only in time order is
    # there one of each kind.
    w = World()
    for e in sorted(inputs, key=_time_of):
        w.apply([e], _time_of(e))
    for lead in LEADS:
        for kind in POLICIES.kinds():
            assert len(w.running(lead, kind)) <= 1


@settings(max_examples=300, deadline=None)
@given(steps, times)
def test_a_touch_stops_every_first_response_clock_it_answers(
    plan: list[tuple[str, object]], when: datetime
) -> None:
    w = World()
    run(w, plan)
    w.apply([touch("l1", when)], max(when, T0))
    assert not [c for c in w.running("l1", EscalationKind.FIRST_RESPONSE) if c.started_at <= when]


@settings(max_examples=300, deadline=None)
@given(steps, times)
def test_stopped_clocks_never_fire(plan: list[tuple[str, object]], when: datetime) -> None:
    """A clock a touch stopped fires nothing more, however far time jumps."""
    w = World()
    run(w, plan)
    answered = [c for c in w.running("l1", EscalationKind.FIRST_RESPONSE) if c.started_at <= when]
    w.apply([touch("l1", when)], max(when, T0))
    later = {e.escalation_id for e in w.fire(when + timedelta(days=30))}
    slots = ESCALATOR.fired_ids([replace(c, next_level=99) for c in answered])
    assert not later & set(slots)


@settings(max_examples=300, deadline=None)
@given(steps, st.lists(times, min_size=1, max_size=5))
def test_firing_is_idempotent_in_ids(plan: list[tuple[str, object]], ticks: list[datetime]) -> None:
    """However a span of time is cut into ticks, each step fires once with the same ids,
    and firing the same clocks again at the same time yields the same events."""
    w = World()
    run(w, [p for p in plan if p[0] == "batch"])
    once = World(
        leads=dict(w.leads),
        touches=dict(w.touches),
        reps=dict(w.reps),
        clocks=dict(w.clocks),
        steps=dict(w.steps),
    )
    end = max(ticks)
    pieces = [e for t in sorted(ticks) for e in w.fire(t)]
    whole = once.fire(end)
    assert sorted(e.event_id for e in pieces) == sorted(e.event_id for e in whole)
    assert len({e.escalation_id for e in whole}) == len(whole)
    due = [s.clock for s in once.clocks.values() if s.running]
    assert ESCALATOR.fire(due, end) == ESCALATOR.fire(due, end)


@settings(max_examples=200, deadline=None)
@given(steps)
def test_a_resolved_step_is_always_one_that_fired(plan: list[tuple[str, object]]) -> None:
    w = World()
    run(w, plan)
    firing = {i for i, s in w.steps if s is EscalationStatus.FIRING}
    resolved = {i for i, s in w.steps if s is EscalationStatus.RESOLVED}
    assert resolved <= firing
