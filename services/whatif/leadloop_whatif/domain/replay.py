"""The replay: stored history through the services' own decision code, in time order.

Assignment decides with ``leadloop_assignment.domain`` (``plan`` for first decisions,
``plan_moves`` for escalations and the pool) and the SLA clocks run on
``leadloop_sla_monitor.domain`` (``Lifecycle`` starts and stops clocks; ``slots_due`` and
``escalation_id`` fire ladder steps, as ``Escalator.fire`` does) — the same functions the
services call, over in-memory state instead of PostgreSQL. Nothing here reads the wall
clock: time is the history's.

The replay walks *moments*: the next instant at which a CRM event occurred, a lead
arrives (the instant assignment first decided it in reality) or a clock comes due. At a
moment ``t``, in this order, as the services would with no delay between them:

1. the touches and stage changes of ``t`` reach the clocks; won or lost leads free
   their owner's capacity; the pool is drained;
2. the leads arriving at ``t`` are decided as one batch (in acceptance order) and their
   decisions start clocks; the pool is drained (a ``pool`` rule's lead leaves it here);
3. every ladder step due by ``t`` fires; ``reassign`` and ``return_to_pool`` steps move
   their lead (then the pool is drained) and the moves restart the clocks.

A drain is skipped when nothing that makes a rep eligible has changed since the last
one: the pool, a rep's load, or the quarter hour (working hours and daily caps turn
over on quarter hours in every time zone in use).

Deterministic: the same history and configuration give the same outcome, id for id.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta

from leadloop.calendar import BusinessCalendar, CalendarSet
from leadloop.events import (
    ActivityRecorded,
    EscalationAction,
    EscalationKind,
    EscalationStatus,
    LeadAccepted,
    LeadAssigned,
    Stage,
    StageChanged,
)
from leadloop_assignment.domain.moves import HeldLead, Takeback, move_events, plan_moves
from leadloop_assignment.domain.planning import assigned_event, plan
from leadloop_assignment.domain.routing import Decision, RoutingState
from leadloop_assignment.domain.rules import RosterEntry, RuleSet, with_calendars, with_roster
from leadloop_sla_monitor.domain.ladder import (
    Clock,
    PolicySet,
    counts_every_second,
    escalation_id,
    slots_due,
)
from leadloop_sla_monitor.domain.lifecycle import Lifecycle
from leadloop_sla_monitor.domain.state import ClockKey, ClockState, LeadState, Rep, Snapshot
from leadloop_sla_monitor.domain.state import Touch as SlaTouch
from leadloop_whatif.domain.history import (
    Arrival,
    Decided,
    History,
    Outcome,
    StageMove,
    Step,
    Touch,
)

__all__ = ["Configuration", "replay"]

_MOVING = frozenset({EscalationAction.REASSIGN, EscalationAction.RETURN_TO_POOL})
_CLOSED = frozenset({Stage.WON, Stage.LOST})
#: ``due_at`` of a clock whose ladder is exhausted (PostgreSQL's 'infinity').
NEVER = datetime.max.replace(tzinfo=UTC)
#: Drains are re-tried at least this often (seconds) while a pool is not empty.
_QUARTER_HOUR = 900


@dataclass(frozen=True, slots=True)
class Configuration:
    """What the services would run with: the rule set, the SLA policies, the calendars."""

    rules: RuleSet
    policies: PolicySet
    calendars: CalendarSet


def replay(history: History, config: Configuration) -> Outcome:
    """What ``config`` would have decided and escalated over ``history``."""
    return _Replay(history, config).run()


def _roster(history: History) -> list[RosterEntry]:
    return [
        RosterEntry(
            rep_id=r.rep_id,
            team_id=r.team_id,
            status=r.status,
            capacity=r.capacity,
            weight=r.weight,
            manager_id=r.manager_id,
        )
        for r in history.roster
    ]


class _Replay:
    def __init__(self, history: History, config: Configuration) -> None:
        self.history = history
        # As the services merge them: calendars when the file is loaded, the roster on top.
        self.rules = with_roster(with_calendars(config.rules, config.calendars), _roster(history))
        self.lifecycle = Lifecycle(config.policies, config.calendars)
        self.config = config
        self.policies = {p.policy_id: p for p in config.policies.policies}
        self.calendars: dict[str, BusinessCalendar | None] = {}
        self.reps = {
            r.rep_id: Rep(r.rep_id, r.team_id, r.manager_id, r.status.value, r.updated_at)
            for r in history.roster
        }
        self.out = Outcome()
        # assignment
        self.state = RoutingState()
        self.held: dict[str, HeldLead] = {}
        self.pool: dict[str, HeldLead] = {}
        self.cooling: dict[str, dict[str, datetime]] = {}
        self.closed: set[str] = set()
        self.arrived: set[str] = set()
        self.dirty = False
        self.drained_quarter = -1
        self.day = -1
        # sla-monitor
        self.leads: dict[str, LeadState] = {}
        self.touches: dict[str, SlaTouch] = {}
        self.clocks: dict[str, dict[ClockKey, ClockState]] = {}
        self.due: list[tuple[datetime, int, ClockKey]] = []
        #: escalation_id → the firing step, until a touch resolves it.
        self.fired: dict[str, Step] = {}
        self.fired_by_clock: dict[ClockKey, list[str]] = {}
        self.seq = 0

    # --- the walk ------------------------------------------------------------------------

    def run(self) -> Outcome:
        for t, crm, arrivals in _moments(self.history):
            day = t.toordinal()
            if day != self.day:
                self.day = day
                self.forget_past_intake(t)
            while self.due and self.due[0][0] < t:
                self.fire(self.due[0][0])
            for event in crm:
                self.on_crm(event, t)
            self.drain(t)
            if arrivals:
                self.arrive(arrivals, t)
                self.drain(t)
            self.fire(t)
        while self.due and (self.history.end is None or self.due[0][0] < self.history.end):
            self.fire(self.due[0][0])
        return self.out

    # --- assignment ----------------------------------------------------------------------

    def arrive(self, arrivals: Sequence[Arrival], t: datetime) -> None:
        leads = [a.lead for a in arrivals]
        decisions, after = plan(leads, self.rules, self.state, t)
        self.state = after
        by_id = {x.lead_id: x for x in leads}
        for d in decisions:
            lead = by_id[d.lead_id]
            self.arrived.add(d.lead_id)
            event = assigned_event(d, lead)
            self.record(event, d, 0)
            self.sla(t, lead, event)
            if d.lead_id in self.closed:
                # Won or lost before the decision: the owner's load does not grow.
                if d.owner_id is not None:
                    self.release(d.owner_id)
                continue
            h = HeldLead(lead, d.team_id, d.rule_id, d.owner_id)
            self.hold(h)

    def forget_past_intake(self, t: datetime) -> None:
        """Drop daily-cap counts of days that are over in every time zone.

        A decision copies the state's intake map, which would otherwise grow by a day's
        worth of reps every day of the range. Time only moves forward here, and a
        team's local day is never more than a day before the UTC one."""
        cutoff = t.astimezone(UTC).date() - timedelta(days=2)
        intake = self.state.intake
        if any(day < cutoff for _, day in intake):
            kept = {key: n for key, n in intake.items() if key[1] >= cutoff}
            self.state = replace(self.state, intake=kept)

    def hold(self, h: HeldLead) -> None:
        lead_id = h.lead.lead_id
        self.held[lead_id] = h
        if h.owner_id is None:
            self.pool[lead_id] = h
            self.dirty = True
        else:
            self.pool.pop(lead_id, None)

    def release(self, rep_id: str) -> None:
        load = self.state.load.get(rep_id, 0)
        self.state = replace(self.state, load={**self.state.load, rep_id: max(load - 1, 0)})
        self.dirty = True

    def close(self, lead_id: str) -> None:
        self.closed.add(lead_id)
        h = self.held.pop(lead_id, None)
        if h is None:
            return
        self.pool.pop(lead_id, None)
        self.cooling.pop(lead_id, None)
        if h.owner_id is not None:
            self.release(h.owner_id)

    def drain(self, t: datetime, takebacks: Sequence[Takeback] = ()) -> None:
        quarter = int(t.timestamp()) // _QUARTER_HOUR
        if not takebacks and not (self.pool and (self.dirty or quarter != self.drained_quarter)):
            return
        self.dirty = False
        self.drained_quarter = quarter
        named = [self.held[tb.lead_id] for tb in takebacks if tb.lead_id in self.held]
        held = {h.lead.lead_id: h for h in [*named, *self.pool.values()]}
        cooling = {}
        for lead_id in held:
            reps = self.cooling.get(lead_id)
            if reps:
                cooling[lead_id] = frozenset(r for r, until in reps.items() if until > t)
        moves = plan_moves(
            rules=self.rules,
            state=replace(self.state, cooling=cooling),
            now=t,
            takebacks=takebacks,
            held=held.values(),
        )
        self.state = replace(moves.state, cooling={})
        for lead_id, rep_id, until in moves.cooldowns:
            self.cooling.setdefault(lead_id, {})[rep_id] = until
        events = move_events(moves.decisions, held.values())
        for d, event in zip(moves.decisions, events, strict=True):
            h = self.held[d.lead_id]
            moved = HeldLead(h.lead, d.team_id, d.rule_id, d.owner_id, h.moves + 1)
            self.hold(moved)
            self.record(event, d, event.sequence)
            self.sla(t, None, event)

    def record(self, event: LeadAssigned, d: Decision, sequence: int) -> None:
        self.out.decisions.append(
            Decided(
                assignment_id=event.assignment_id,
                lead_id=event.lead_id,
                sequence=sequence,
                kind=event.kind.value,
                owner_id=event.owner_id,
                team_id=event.team_id,
                rule_id=event.rule_id,
                previous_owner_id=d.released if sequence else None,
                at=event.assigned_at,
            )
        )

    # --- sla-monitor ---------------------------------------------------------------------

    def on_crm(self, event: Touch | StageMove, t: datetime) -> None:
        if isinstance(event, Touch):
            self.sla(
                t,
                None,
                ActivityRecorded.model_construct(
                    event_id=event.event_id,
                    lead_id=event.lead_id,
                    rep_id=event.rep_id,
                    kind=event.kind,
                    occurred_at=event.at,
                    outcome=None,
                    next_followup_at=event.next_followup_at,
                ),
            )
            return
        self.sla(
            t,
            None,
            StageChanged.model_construct(
                event_id=event.event_id,
                lead_id=event.lead_id,
                rep_id=event.rep_id,
                stage=event.stage,
                occurred_at=event.at,
            ),
        )
        if event.stage in _CLOSED and event.lead_id not in self.closed:
            self.close(event.lead_id)

    def sla(
        self,
        t: datetime,
        accepted: LeadAccepted | None,
        event: LeadAssigned | ActivityRecorded | StageChanged,
    ) -> None:
        """Apply a lead's events to its clocks, as sla-monitor's ``apply`` does."""
        lead_id = event.lead_id
        inputs: list[LeadAccepted | LeadAssigned | ActivityRecorded | StageChanged] = []
        if accepted is not None:
            inputs.append(accepted)
        inputs.append(event)
        clocks = self.clocks.get(lead_id, {})
        lead = self.leads.get(lead_id)
        touch = self.touches.get(lead_id)
        before = Snapshot(
            new_event_ids=frozenset(e.event_id for e in inputs),
            leads={lead_id: lead} if lead is not None else {},
            touches={lead_id: touch} if touch is not None else {},
            reps=self.reps,
            clocks=clocks,
        )
        decision = self.lifecycle.decide(before, inputs, t)
        for row in decision.leads:
            self.leads[row.lead_id] = row
        for key, touched in decision.touches:
            self.touches[key] = touched
        for state in decision.clocks:
            self.keep(state)
        for clock in decision.stopped:
            # The steps the clock fired (what ``Escalator.fired_ids`` recomputes from the
            # ladder, kept here as they fire).
            for esc_id in self.fired_by_clock.pop((clock.lead_id, clock.kind, clock.cycle), ()):
                step = self.fired.pop(esc_id, None)
                if step is not None:
                    self.out.steps.append(_resolved(step, t))
        if lead_id in self.closed and lead_id in self.arrived and not self.clocks.get(lead_id):
            # Decided, closed and no clock running: nothing of it can change any more.
            self.leads.pop(lead_id, None)
            self.touches.pop(lead_id, None)
            self.clocks.pop(lead_id, None)

    def keep(self, state: ClockState) -> None:
        lead_id = state.clock.lead_id
        clocks = self.clocks.setdefault(lead_id, {})
        if not state.running:
            # Stopped clocks never run again (a new cycle has a new id): forget them.
            clocks.pop(state.key, None)
            if not clocks:
                del self.clocks[lead_id]
            return
        clocks[state.key] = state
        if state.due_at < NEVER:
            self.seq += 1
            heapq.heappush(self.due, (state.due_at, self.seq, state.key))

    def fire(self, t: datetime) -> None:
        """Fire every step due by ``t`` (sla-monitor's ticker), and act on the moves."""
        due = []
        while self.due and self.due[0][0] <= t:
            at, _, key = heapq.heappop(self.due)
            state = self.clocks.get(key[0], {}).get(key)
            if state is None or state.due_at != at:
                continue  # stopped, or re-decided with another due time since
            due.append(state)
        if not due:
            return
        takebacks = []
        for state in due:
            clock = state.clock
            policy = self.policies.get(clock.policy_id)
            if policy is None:
                continue
            # What ``Escalator.fire`` does per clock, without building the events.
            cal = self.calendar(clock.team_id)
            steps, next_due = slots_due(
                policy.schedule,
                policy.limit_seconds,
                clock.started_at,
                clock.promised_at,
                clock.next_level,
                t,
                cal,
            )
            moved = _at_level(clock, clock.next_level + len(steps))
            # ``replace`` spelled out: it costs more than the rest of this loop.
            self.keep_fired(
                ClockState(moved, next_due or NEVER, state.stopped_at, state.stop_reason)
            )
            fired = self.fired_by_clock.setdefault(state.key, [])
            for step in steps:
                esc_id = escalation_id(clock, step.level, warning=step.warning)
                kind = EscalationKind.RECLAIM_WARNING if step.warning else clock.kind
                fired_step = Step(
                    esc_id,
                    EscalationStatus.FIRING.value,
                    clock.lead_id,
                    kind,
                    step.level,
                    step.action,
                    t,
                )
                self.fired[esc_id] = fired_step
                fired.append(esc_id)
                self.out.steps.append(fired_step)
                if step.action in _MOVING:
                    takebacks.append(Takeback(clock.lead_id, clock.owner_id, step.action, esc_id))
        if takebacks:
            self.drain(t, takebacks)

    def calendar(self, team_id: str) -> BusinessCalendar | None:
        """The team's calendar for ``slots_due`` (None: every second counts), as
        ``Escalator`` picks it."""
        if team_id not in self.calendars:
            cal = self.config.calendars.for_team(team_id)
            self.calendars[team_id] = None if counts_every_second(cal) else cal
        return self.calendars[team_id]

    def keep_fired(self, state: ClockState) -> None:
        clocks = self.clocks.setdefault(state.clock.lead_id, {})
        clocks[state.key] = state
        if state.due_at < NEVER:
            self.seq += 1
            heapq.heappush(self.due, (state.due_at, self.seq, state.key))


# ``dataclasses.replace`` spelled out for the two rows made per fired step (it inspects
# the fields on every call); tests/test_replay.py checks they copy every field.


def _at_level(clock: Clock, level: int) -> Clock:
    return Clock(
        clock.lead_id,
        clock.kind,
        clock.cycle,
        clock.policy_id,
        clock.owner_id,
        clock.team_id,
        clock.manager_id,
        clock.started_at,
        level,
        clock.promised_at,
    )


def _resolved(step: Step, t: datetime) -> Step:
    return Step(
        step.escalation_id,
        EscalationStatus.RESOLVED.value,
        step.lead_id,
        step.kind,
        step.level,
        step.action,
        t,
    )


def _moments(
    history: History,
) -> Iterator[tuple[datetime, list[Touch | StageMove], list[Arrival]]]:
    """(t, CRM events at t, leads arriving at t), in time order."""
    crm: list[Touch | StageMove] = [*history.touches, *history.stages]
    crm.sort(key=lambda e: (e.at, e.event_id))
    arrivals = sorted(history.arrivals, key=lambda a: (a.at, a.lead.accepted_at, a.lead.lead_id))
    i = j = 0
    while i < len(crm) or j < len(arrivals):
        t = min(
            crm[i].at if i < len(crm) else arrivals[j].at,
            arrivals[j].at if j < len(arrivals) else crm[i].at,
        )
        here_crm: list[Touch | StageMove] = []
        while i < len(crm) and crm[i].at == t:
            here_crm.append(crm[i])
            i += 1
        here: list[Arrival] = []
        while j < len(arrivals) and arrivals[j].at == t:
            here.append(arrivals[j])
            j += 1
        yield t, here_crm, here
