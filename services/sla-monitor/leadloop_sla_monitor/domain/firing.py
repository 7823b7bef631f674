"""Firing and resolving ladder steps: which steps of due clocks fire at ``now``, and
the ``resolved`` events of the steps a stopped clock had fired.

Every event comes from ``ladder.escalation_event``, so a step's ``escalation_id`` and
``event_id`` are deterministic per lead, policy, cycle, level and status: firing the
same clock at the same position twice yields the same ids, and the store keeps one row
per id. Pure: no I/O, time comes in as ``now``.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from leadloop.calendar import BusinessCalendar, CalendarSet
from leadloop.events import EscalationAction, EscalationRaised, EscalationStatus
from leadloop_sla_monitor.domain.ladder import (
    Clock,
    PolicySet,
    StepDue,
    counts_every_second,
    escalation_event,
    escalation_id,
    fired_steps,
    slots_due,
)
from leadloop_sla_monitor.domain.restraint import Gate, HoldReason
from leadloop_sla_monitor.domain.state import ClockKey, Fired

__all__ = ["Advance", "Escalator", "Firing", "HeldStep"]


@dataclass(frozen=True, slots=True)
class Advance:
    """Where a fired clock stands now: its next position in the schedule and when that
    is due (None: the schedule is exhausted; ``next_level`` None: unchanged)."""

    key: ClockKey
    next_level: int | None
    due_at: datetime | None


@dataclass(frozen=True, slots=True)
class HeldStep:
    """A taking step the restraint kept from firing in this pass."""

    lead_id: str
    team_id: str
    action: EscalationAction
    reason: HoldReason


@dataclass(frozen=True, slots=True)
class Firing:
    """The steps a pass fires, how each due clock advances, and the steps held back."""

    events: tuple[EscalationRaised, ...]
    advances: tuple[Advance, ...]
    held: tuple[HeldStep, ...] = ()


class Escalator:
    """Fires due clocks and resolves stopped ones, over one policy file and calendar set."""

    def __init__(self, policies: PolicySet, calendars: CalendarSet) -> None:
        self._policies = policies
        self._calendars = calendars
        # Read once: a pass looks these up for every due clock.
        self._by_id = {p.policy_id: p for p in policies.policies}
        self._schedules = {p.policy_id: (p.schedule, p.limit_seconds) for p in policies.policies}

    def fire(self, due: Sequence[Clock], now: datetime, gate: Gate | None = None) -> Firing:
        """Every slot of ``due`` clocks that has come due by ``now``, in schedule order
        (a worker that was down fires each missed slot once), breached at ``now``.

        With a ``gate`` (``domain.restraint``), a taking step it holds stops its clock
        there: the slots before it fire, and the clock is due again when the hold ends."""
        events: list[EscalationRaised] = []
        advances: list[Advance] = []
        held: list[HeldStep] = []
        calendars: dict[str, BusinessCalendar | None] = {}
        for clock in due:
            key = (clock.lead_id, clock.kind, clock.cycle)
            schedule = self._schedules.get(clock.policy_id)
            if schedule is None:
                # The policy left the configuration: nothing more to fire.
                advances.append(Advance(key, None, None))
                continue
            if clock.team_id not in calendars:
                calendars[clock.team_id] = self._calendar(clock.team_id)
            steps, next_due = slots_due(
                *schedule,
                clock.started_at,
                clock.promised_at,
                clock.next_level,
                now,
                calendars[clock.team_id],
            )
            if gate is not None:
                for i, step in enumerate(steps):
                    hold = gate.check(clock.team_id, step.action, step.due_at)
                    if hold is not None:
                        held.append(
                            HeldStep(clock.lead_id, clock.team_id, step.action, hold.reason)
                        )
                        steps, next_due = steps[:i], hold.until
                        break
            advances.append(Advance(key, clock.next_level + len(steps), next_due))
            events.extend(
                escalation_event(
                    clock, step, EscalationStatus.FIRING, breached_at=now, occurred_at=now
                )
                for step in steps
            )
        return Firing(tuple(events), tuple(advances), tuple(held))

    def fired_ids(self, stopped: Iterable[Clock]) -> list[str]:
        """The escalation ids of the steps ``stopped`` clocks fired (to look them up)."""
        return [
            escalation_id(clock, step.level, warning=step.warning)
            for clock, step in self._fired(stopped)
        ]

    def resolve(
        self, stopped: Iterable[Clock], fired: Mapping[str, Fired], now: datetime
    ) -> list[EscalationRaised]:
        """A ``resolved`` event for every step of ``stopped`` found in ``fired``, with the
        manager and breach time the step fired with."""
        out = []
        for clock, step in self._fired(stopped):
            found = fired.get(escalation_id(clock, step.level, warning=step.warning))
            if found is None:
                continue
            out.append(
                escalation_event(
                    replace(clock, manager_id=found.manager_id),
                    step,
                    EscalationStatus.RESOLVED,
                    breached_at=found.breached_at,
                    occurred_at=now,
                )
            )
        return out

    def gone_policies(self, stopped: Iterable[Clock]) -> list[str]:
        """Policies of ``stopped`` clocks no longer configured: their steps stay firing."""
        return [c.policy_id for c in stopped if c.policy_id not in self._by_id]

    def _fired(self, stopped: Iterable[Clock]) -> Iterator[tuple[Clock, StepDue]]:
        for clock in stopped:
            policy = self._by_id.get(clock.policy_id)
            if policy is None:
                continue
            cal = self._calendars.for_team(clock.team_id)
            for step in fired_steps(clock, policy, cal):
                yield clock, step

    def _calendar(self, team_id: str) -> BusinessCalendar | None:
        """The team's calendar for ``slots_due`` (None: every second counts)."""
        cal = self._calendars.for_team(team_id)
        return None if counts_every_second(cal) else cal
