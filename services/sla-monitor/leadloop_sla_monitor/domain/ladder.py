"""Policies and escalation ladders: which steps of a clock are due at ``now``.

A clock is due at ``started_at + limit``; ladder step *n* is due ``offset_n`` after
that. ``due_steps`` returns the steps that have come due since the last one fired, in
order, so a worker that was down for an hour fires every missed step once on restart.
Times are business time of the team's calendar (``leadloop.calendar``); the default calendar
counts every second.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from leadloop.calendar import BusinessCalendar, due_at
from leadloop.events import (
    EscalationAction,
    EscalationKind,
    EscalationRaised,
    EscalationStatus,
    deterministic_id,
)

__all__ = [
    "ROUND_THE_CLOCK",
    "Clock",
    "LadderStep",
    "Policy",
    "PolicySet",
    "StepDue",
    "deadline",
    "due_steps",
    "escalation_event",
    "escalation_id",
]

#: Activities that count as a response (a private note does not).
QUALIFYING_ACTIVITIES = frozenset({"call", "email", "message", "meeting", "visit"})


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LadderStep(_Frozen):
    level: Annotated[int, Field(ge=1)]
    #: Time after the clock's deadline at which this step fires.
    after_seconds: Annotated[float, Field(ge=0)]
    action: EscalationAction


class Policy(_Frozen):
    policy_id: str
    kind: EscalationKind
    limit_seconds: Annotated[float, Field(gt=0)]
    ladder: Annotated[tuple[LadderStep, ...], Field(min_length=1)]

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        levels = [s.level for s in self.ladder]
        if levels != list(range(1, len(levels) + 1)):
            raise ValueError(f"policy {self.policy_id}: ladder levels must be 1..n in order")
        offsets = [s.after_seconds for s in self.ladder]
        if offsets != sorted(offsets):
            raise ValueError(f"policy {self.policy_id}: ladder offsets must not decrease")
        return self

    def step(self, level: int) -> LadderStep | None:
        return self.ladder[level - 1] if 1 <= level <= len(self.ladder) else None


class PolicySet(_Frozen):
    policies: Annotated[tuple[Policy, ...], Field(min_length=1)]

    def first_response(self) -> Policy:
        return next(p for p in self.policies if p.kind is EscalationKind.FIRST_RESPONSE)

    def by_id(self, policy_id: str) -> Policy:
        return next(p for p in self.policies if p.policy_id == policy_id)


@dataclass(frozen=True, slots=True)
class Clock:
    lead_id: str
    kind: EscalationKind
    cycle: str
    policy_id: str
    owner_id: str | None
    team_id: str
    manager_id: str | None
    started_at: datetime
    next_level: int


@dataclass(frozen=True, slots=True)
class StepDue:
    level: int
    action: EscalationAction
    due_at: datetime


#: Every second counts: wall-clock SLAs, and the calendar of teams that have none.
ROUND_THE_CLOCK = BusinessCalendar.model_validate(
    {
        "timezone": "UTC",
        "weekly": {
            day: ["00:00-24:00"]
            for day in (
                "monday",
                "tuesday",
                "wednesday",
                "thursday",
                "friday",
                "saturday",
                "sunday",
            )
        },
    }
)


def deadline(
    started_at: datetime, policy: Policy, calendar: BusinessCalendar = ROUND_THE_CLOCK
) -> datetime:
    """When the clock runs out: ``limit_seconds`` of the team's business time."""
    return due_at(started_at, policy.limit_seconds, calendar)


def step_due_at(
    clock: Clock, policy: Policy, level: int, calendar: BusinessCalendar = ROUND_THE_CLOCK
) -> datetime | None:
    step = policy.step(level)
    if step is None:
        return None
    # One sum, not deadline + offset: an offset of 0 after an 18:00 deadline is 18:00,
    # not the next morning.
    return due_at(clock.started_at, policy.limit_seconds + step.after_seconds, calendar)


def due_steps(
    clock: Clock, policy: Policy, now: datetime, calendar: BusinessCalendar = ROUND_THE_CLOCK
) -> tuple[list[StepDue], datetime | None]:
    """Steps due at ``now`` from ``clock.next_level`` on, and when the next one is due
    (None once the ladder is exhausted)."""
    fired: list[StepDue] = []
    level = clock.next_level
    while (at := step_due_at(clock, policy, level, calendar)) is not None and at <= now:
        step = policy.ladder[level - 1]
        fired.append(StepDue(level=level, action=step.action, due_at=at))
        level += 1
    return fired, step_due_at(clock, policy, level, calendar)


def escalation_id(clock: Clock, level: int) -> str:
    """Deterministic per lead, policy, clock cycle and level: a redelivery is recognisable."""
    return deterministic_id("escalation", clock.lead_id, clock.policy_id, clock.cycle, level)


def escalation_event(
    clock: Clock,
    step: StepDue,
    status: EscalationStatus,
    *,
    breached_at: datetime,
    occurred_at: datetime,
) -> EscalationRaised:
    esc_id = escalation_id(clock, step.level)
    return EscalationRaised(
        event_id=deterministic_id("sla.escalations", esc_id, status.value),
        occurred_at=occurred_at,
        escalation_id=esc_id,
        lead_id=clock.lead_id,
        owner_id=clock.owner_id,
        team_id=clock.team_id,
        manager_id=clock.manager_id,
        policy_id=clock.policy_id,
        kind=clock.kind,
        level=step.level,
        action=step.action,
        due_at=step.due_at,
        breached_at=breached_at,
        status=status,
    )
