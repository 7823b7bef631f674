"""The clock lifecycle: which clocks an input event starts, stops and re-decides.

``Lifecycle.decide`` folds a batch of input events over what the monitor knew of their
leads before the batch (a ``Snapshot``) and returns the rows to save (``Decision``);
``Lifecycle.resolve`` turns the steps that stopped clocks had fired into ``resolved``
events. Pure: no I/O, time comes in as ``now``.

Policies are chosen by ``PolicySet.select`` on what the monitor knows of the lead:

* ``leads.assigned`` with an owner stops every other clock of the lead (resolving what
  they fired) and starts a first-response clock, and a stage-stall clock for the
  current stage: every ownership change re-arms the timers. Without an owner
  (``pooled``, ``reclaimed``) it only stops them.
* a qualifying ``crm.activities`` touch, or a stage change short of won/lost, stops the
  first-response and follow-up clocks started before it and starts a follow-up clock
  (to the policy's gap, or to the rep's ``next_followup_at`` promise).
* a stage change stops the stage-stall clock and starts one for the new stage; won or
  lost stops everything.
* ``leads.accepted`` records source and priority; clocks that have not fired yet are
  re-decided with them. ``crm.reps`` keeps the roster that gives escalations their
  manager.

A clock is identified by lead, kind and cycle (the assignment or event that started
it); starting a clock whose key exists already changes nothing, so a redelivered
cycle finds the old clock.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from datetime import datetime

from leadloop.calendar import CalendarSet
from leadloop.events import (
    ActivityRecorded,
    EscalationKind,
    LeadAccepted,
    LeadAssigned,
    RepUpdated,
    Stage,
    StageChanged,
)
from leadloop_sla_monitor.domain.ladder import (
    QUALIFYING_ACTIVITIES,
    Clock,
    Policy,
    PolicySet,
    follow_up_timing,
    step_due_at,
)
from leadloop_sla_monitor.domain.state import (
    ClockKey,
    ClockState,
    Decision,
    Input,
    LeadState,
    Rep,
    Snapshot,
    Touch,
)

__all__ = ["Lifecycle"]

_TOUCH_KINDS = frozenset({EscalationKind.FIRST_RESPONSE, EscalationKind.FOLLOW_UP})
_CLOSED = frozenset({Stage.WON, Stage.LOST})


class Lifecycle:
    """The clock rules over one policy file and one calendar set."""

    def __init__(self, policies: PolicySet, calendars: CalendarSet) -> None:
        self._policies = policies
        self._calendars = calendars

    def decide(self, before: Snapshot, inputs: Iterable[Input], now: datetime) -> Decision:
        """Apply ``inputs`` in order over ``before``; an event whose id is not new, or
        repeats in the batch, changes nothing."""
        run = _Run(self, before, now)
        for event in inputs:
            run.apply(event)
        return run.decision()

    def start(
        self,
        clock: Clock,
        policy: Policy,
        *,
        stopped_at: datetime | None = None,
    ) -> ClockState:
        """A new clock row, due at the policy's first slot; ``stopped_at``: a touch read
        before the clock started answered it already."""
        due = step_due_at(clock, policy, 1, self._calendars.for_team(clock.team_id))
        assert due is not None  # a ladder has at least one step
        return ClockState(
            clock=clock,
            due_at=due,
            stopped_at=stopped_at,
            stop_reason="touched" if stopped_at is not None else None,
        )

    def reselect(self, state: ClockState, lead: LeadState, now: datetime) -> ClockState:
        """The clock with its policy re-decided on what is known of ``lead`` now (no
        policy: stopped); only for a clock that has not fired yet."""
        clock = state.clock
        policy = self._policies.select(clock.kind, lead.facts())
        if policy is not None and policy.policy_id == clock.policy_id:
            return state
        if policy is None:
            return replace(state, stopped_at=now, stop_reason="no_policy")
        moved = replace(clock, policy_id=policy.policy_id)
        due = step_due_at(moved, policy, 1, self._calendars.for_team(clock.team_id))
        assert due is not None
        return replace(state, clock=moved, due_at=due)

    def select(self, kind: EscalationKind, lead: LeadState) -> Policy | None:
        return self._policies.select(kind, lead.facts())


class _Run:
    """One batch being decided: working copies of the snapshot's rows."""

    def __init__(self, rules: Lifecycle, before: Snapshot, now: datetime) -> None:
        self.rules = rules
        self.now = now
        self.new_ids = set(before.new_event_ids)
        self.leads = dict(before.leads)
        self.touches = dict(before.touches)
        self.reps = dict(before.reps)
        self.clocks = dict(before.clocks)
        self.applied = 0
        self.changed_leads: dict[str, None] = {}
        self.changed_touches: dict[str, None] = {}
        self.changed_clocks: dict[ClockKey, None] = {}
        self.rep_entries: dict[str, Rep] = {}
        self.stopped: list[Clock] = []

    def decision(self) -> Decision:
        return Decision(
            applied=self.applied,
            leads=tuple(self.leads[k] for k in self.changed_leads),
            touches=tuple((k, self.touches[k]) for k in self.changed_touches),
            reps=tuple(self.rep_entries.values()),
            clocks=tuple(self.clocks[k] for k in self.changed_clocks),
            stopped=tuple(self.stopped),
        )

    def apply(self, event: Input) -> None:
        if isinstance(event, RepUpdated):
            self.on_rep(event)
            return
        if event.event_id not in self.new_ids:
            return  # applied before, or earlier in this batch
        self.new_ids.discard(event.event_id)
        self.applied += 1
        if isinstance(event, LeadAssigned):
            self.on_assigned(event)
        elif isinstance(event, ActivityRecorded):
            if event.kind in QUALIFYING_ACTIVITIES:
                self.on_touch(
                    event.lead_id, event.occurred_at, event.event_id, event.next_followup_at
                )
        elif isinstance(event, StageChanged):
            self.on_stage(event)
        else:
            self.on_accepted(event)

    # --- rows -------------------------------------------------------------------------

    def lead(self, lead_id: str) -> LeadState:
        return self.leads.get(lead_id) or LeadState(lead_id=lead_id)

    def set_lead(self, lead: LeadState) -> None:
        self.leads[lead.lead_id] = lead
        self.changed_leads[lead.lead_id] = None

    def set_clock(self, state: ClockState) -> None:
        self.clocks[state.key] = state
        self.changed_clocks[state.key] = None

    def manager(self, rep_id: str) -> str | None:
        rep = self.reps.get(rep_id)
        return rep.manager_id if rep is not None else None

    def new_clock(
        self,
        lead: LeadState,
        policy: Policy,
        cycle: str,
        started_at: datetime,
        *,
        owner_id: str,
        team_id: str,
        promised_at: datetime | None = None,
    ) -> Clock:
        return Clock(
            lead_id=lead.lead_id,
            kind=policy.kind,
            cycle=cycle,
            policy_id=policy.policy_id,
            owner_id=owner_id,
            team_id=team_id,
            manager_id=self.manager(owner_id),
            started_at=started_at,
            next_level=1,
            promised_at=promised_at,
        )

    def start(self, clock: Clock, policy: Policy, *, stopped_at: datetime | None = None) -> None:
        key = (clock.lead_id, clock.kind, clock.cycle)
        if key in self.clocks:
            return  # this cycle's clock exists already
        self.set_clock(self.rules.start(clock, policy, stopped_at=stopped_at))

    def stop(
        self,
        lead_id: str,
        reason: str,
        *,
        except_cycle: str | None = None,
        touched_at: datetime | None = None,
        kinds: frozenset[EscalationKind] | None = None,
    ) -> None:
        """Stop the lead's running clocks (of ``kinds``, started by ``touched_at``);
        those that fired are resolved."""
        for state in list(self.clocks.values()):
            clock = state.clock
            if (
                clock.lead_id != lead_id
                or not state.running
                or (except_cycle is not None and clock.cycle == except_cycle)
                or (touched_at is not None and clock.started_at > touched_at)
                or (kinds is not None and clock.kind not in kinds)
            ):
                continue
            self.set_clock(replace(state, stopped_at=touched_at or self.now, stop_reason=reason))
            if clock.next_level > 1:
                self.stopped.append(clock)

    # --- events -----------------------------------------------------------------------

    def on_rep(self, e: RepUpdated) -> None:
        entry = Rep(e.rep_id, e.team_id, e.manager_id, e.status.value, e.updated_at)
        known = self.reps.get(e.rep_id)
        if known is None or known.updated_at <= e.updated_at:
            self.reps[e.rep_id] = entry
        newest = self.rep_entries.get(e.rep_id)
        if newest is None or newest.updated_at <= e.updated_at:
            self.rep_entries[e.rep_id] = entry

    def on_accepted(self, e: LeadAccepted) -> None:
        lead = self.lead(e.lead_id)
        lead = replace(lead, source=e.source, priority=lead.priority or e.priority)
        self.set_lead(lead)
        # Re-decide the policy of the lead's clocks that have not fired yet.
        for state in list(self.clocks.values()):
            if state.clock.lead_id == e.lead_id and state.running and state.clock.next_level == 1:
                moved = self.rules.reselect(state, lead, self.now)
                if moved is not state:
                    self.set_clock(moved)

    def on_assigned(self, e: LeadAssigned) -> None:
        known = self.leads.get(e.lead_id)
        lead = replace(
            known or LeadState(lead_id=e.lead_id),
            priority=e.priority,
            team_id=e.team_id,
            owner_id=e.owner_id,
            stage=Stage.ASSIGNED if known is None or known.stage is Stage.NEW else known.stage,
        )
        self.set_lead(lead)
        # A new owner (or the pool) ends every earlier cycle of the lead.
        self.stop(e.lead_id, "reassigned", except_cycle=e.assignment_id)
        if e.owner_id is None or lead.closed_at is not None:
            return
        last = self.touches.get(e.lead_id)
        touched = last.last_touch_at if last is not None else None
        answered = touched is not None and touched >= e.assigned_at
        owner, team = e.owner_id, e.team_id
        policy = self.rules.select(EscalationKind.FIRST_RESPONSE, lead)
        if policy is not None:
            clock = self.new_clock(
                lead, policy, e.assignment_id, e.assigned_at, owner_id=owner, team_id=team
            )
            self.start(clock, policy, stopped_at=touched if answered else None)
        stall = self.rules.select(EscalationKind.STAGE_STALL, lead)
        if stall is not None:
            # The new owner's time in the stage starts with the assignment, but never
            # before the lead entered the stage (the stage change may be read first).
            entered = lead.stage_changed_at
            since = max(e.assigned_at, entered) if entered is not None else e.assigned_at
            clock = self.new_clock(
                lead, stall, e.assignment_id, since, owner_id=owner, team_id=team
            )
            self.start(clock, stall)
        if last is not None and touched is not None and answered:
            # The touch was read before this assignment: its gap runs from the touch.
            cycle = last.touch_event_id or e.assignment_id
            self.start_follow_up(lead, cycle, touched, last.next_followup_at)

    def on_touch(self, lead_id: str, at: datetime, cycle: str, promise: datetime | None) -> None:
        last = self.touches.get(lead_id)
        latest = last is None or last.last_touch_at <= at
        if latest:
            self.touches[lead_id] = Touch(at, promise, cycle)
            self.changed_touches[lead_id] = None
        self.stop(lead_id, "touched", touched_at=at, kinds=_TOUCH_KINDS)
        if not latest:
            return  # an older touch arriving late starts no gap: a newer one did
        lead = self.leads.get(lead_id)
        if lead is None or lead.owner_id is None or lead.closed_at is not None:
            return
        self.start_follow_up(lead, cycle, at, promise)

    def start_follow_up(
        self, lead: LeadState, cycle: str, at: datetime, promise: datetime | None
    ) -> None:
        policy = self.rules.select(EscalationKind.FOLLOW_UP, lead)
        if policy is None or lead.owner_id is None or lead.team_id is None:
            return
        clock = self.new_clock(
            lead,
            policy,
            cycle,
            at,
            owner_id=lead.owner_id,
            team_id=lead.team_id,
            promised_at=follow_up_timing(at, promise, policy),
        )
        self.start(clock, policy)

    def on_stage(self, e: StageChanged) -> None:
        known = self.leads.get(e.lead_id)
        closing = e.stage in _CLOSED
        moved = (
            known is None
            or known.stage_changed_at is None
            or (known.stage_changed_at <= e.occurred_at)
        )
        lead: LeadState | None = None
        if moved:
            base = known or LeadState(lead_id=e.lead_id)
            lead = replace(
                base,
                stage=e.stage,
                stage_changed_at=e.occurred_at,
                closed_at=base.closed_at or (e.occurred_at if closing else None),
            )
            self.set_lead(lead)
        if closing:
            current = self.leads.get(e.lead_id)
            if current is not None and current.closed_at is None:
                self.set_lead(replace(current, closed_at=e.occurred_at))
            self.stop(e.lead_id, "closed")
            return
        if lead is None:
            return  # an older stage change arriving late: the lead has moved on
        self.stop(
            e.lead_id,
            "stage_changed",
            touched_at=e.occurred_at,
            kinds=frozenset({EscalationKind.STAGE_STALL}),
        )
        # Moving a lead forward in the pipeline is a response too.
        self.on_touch(e.lead_id, e.occurred_at, e.event_id, None)
        if lead.owner_id is None or lead.closed_at is not None or lead.team_id is None:
            return
        stall = self.rules.select(EscalationKind.STAGE_STALL, lead)
        if stall is not None:
            clock = self.new_clock(
                lead, stall, e.event_id, e.occurred_at, owner_id=lead.owner_id, team_id=lead.team_id
            )
            self.start(clock, stall)
