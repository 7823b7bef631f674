"""Policies and escalation ladders: which steps of a clock are due at ``now``.

A clock is due at ``started_at + limit``; ladder step *n* is due ``offset_n`` after
that. ``due_steps`` returns the steps that have come due since the last one fired, in
order, so a worker that was down for an hour fires every missed step once on restart.
Times are business time of the team's calendar (``leadloop.calendar``); the default calendar
counts every second.

A ``return_to_pool`` step may carry ``warn_before_seconds``: a ``reclaim_warning``
(action ``remind_owner``: the owner can still save the lead) fires that much business
time before the step. The warnings and the steps together form the policy's
*schedule*, ordered by due time; a clock's ``next_level`` is its position in that
schedule (equal to the ladder level when a policy has no warnings).

A follow-up clock may run to the rep's own promise (``next_followup_at``) instead of
the policy's limit: its steps are then due their offsets after the promise.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Annotated, Self

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from leadloop.calendar import BusinessCalendar, Interval, Weekday, due_at
from leadloop.events import (
    ActivityKind,
    EscalationAction,
    EscalationKind,
    EscalationRaised,
    EscalationStatus,
    deterministic_id,
)
from leadloop_sla_monitor.domain.alerts import Alerting
from leadloop_sla_monitor.domain.policies import Conditions, LeadFacts

__all__ = [
    "ROUND_THE_CLOCK",
    "Clock",
    "LadderStep",
    "Policy",
    "PolicySet",
    "Slot",
    "StepDue",
    "counts_every_second",
    "deadline",
    "due_steps",
    "escalation_event",
    "escalation_id",
    "fired_steps",
    "follow_up_timing",
    "slot_escalation_id",
    "slots_due",
    "step_due_at",
]

#: Activities that count as a response (a private note does not).
QUALIFYING_ACTIVITIES = frozenset(
    {
        ActivityKind.CALL,
        ActivityKind.EMAIL,
        ActivityKind.MESSAGE,
        ActivityKind.MEETING,
        ActivityKind.VISIT,
    }
)


class _Frozen(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class LadderStep(_Frozen):
    level: Annotated[int, Field(ge=1)]
    #: Time after the clock's deadline at which this step fires.
    after_seconds: Annotated[float, Field(ge=0)]
    action: EscalationAction
    #: Only on ``return_to_pool``: warn the owner this much business time before.
    warn_before_seconds: Annotated[float, Field(gt=0)] | None = None

    @model_validator(mode="after")
    def _warning_only_before_reclaim(self) -> Self:
        if self.warn_before_seconds is not None and self.action is not (
            EscalationAction.RETURN_TO_POOL
        ):
            raise ValueError("warn_before_seconds is only for a return_to_pool step")
        return self


@dataclass(frozen=True, slots=True)
class Slot:
    """One entry of a policy's schedule: a ladder step or the warning ahead of one."""

    position: int
    level: int
    action: EscalationAction
    warning: bool
    #: Business seconds after the clock's deadline (negative: before it).
    after_deadline: float


#: Policy kinds a policy may have (a reclaim warning is a step, not a clock).
_CLOCK_KINDS = frozenset(
    {EscalationKind.FIRST_RESPONSE, EscalationKind.FOLLOW_UP, EscalationKind.STAGE_STALL}
)


class Policy(_Frozen):
    policy_id: Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]
    kind: EscalationKind
    #: Which leads the policy covers (see ``policies.Conditions``).
    when: Conditions = Conditions()
    limit_seconds: Annotated[float, Field(gt=0)]
    #: follow_up only: run to the rep's own ``next_followup_at`` when one is given.
    honour_promise: bool = True
    ladder: Annotated[tuple[LadderStep, ...], Field(min_length=1)]

    _schedule: tuple[Slot, ...] = PrivateAttr(default=())

    @model_validator(mode="after")
    def _ordered(self) -> Self:
        if self.kind not in _CLOCK_KINDS:
            raise ValueError(
                f"policy {self.policy_id}: kind {self.kind.value} is not a clock kind "
                "(a reclaim warning is a ladder step's warn_before_seconds)"
            )
        if self.kind is EscalationKind.STAGE_STALL and self.when.stage is None:
            raise ValueError(f"policy {self.policy_id}: a stage_stall policy must name when.stage")
        levels = [s.level for s in self.ladder]
        if levels != list(range(1, len(levels) + 1)):
            raise ValueError(f"policy {self.policy_id}: ladder levels must be 1..n in order")
        offsets = [s.after_seconds for s in self.ladder]
        if offsets != sorted(offsets):
            raise ValueError(f"policy {self.policy_id}: ladder offsets must not decrease")
        for s in self.ladder:
            if s.warn_before_seconds is not None and (
                s.warn_before_seconds > self.limit_seconds + s.after_seconds
            ):
                raise ValueError(
                    f"policy {self.policy_id}: the warning of level {s.level} would be due "
                    "before the clock starts"
                )
        return self

    def model_post_init(self, context: object, /) -> None:
        entries: list[tuple[float, int, int, LadderStep, bool]] = []
        for s in self.ladder:
            if s.warn_before_seconds is not None:
                entries.append((s.after_seconds - s.warn_before_seconds, s.level, 0, s, True))
            entries.append((s.after_seconds, s.level, 1, s, False))
        # Sorted by due time; a warning comes before its own step, and ties keep levels
        # in order, so the schedule is the order in which slots fire.
        entries.sort(key=lambda e: (e[0], e[1], e[2]))
        self._schedule = tuple(
            Slot(position=i, level=s.level, action=_action(s, w), warning=w, after_deadline=off)
            for i, (off, _, _, s, w) in enumerate(entries, start=1)
        )

    @property
    def schedule(self) -> tuple[Slot, ...]:
        return self._schedule

    def step(self, level: int) -> LadderStep | None:
        return self.ladder[level - 1] if 1 <= level <= len(self.ladder) else None

    def slot(self, position: int) -> Slot | None:
        return self._schedule[position - 1] if 1 <= position <= len(self._schedule) else None

    def covers(self, lead: LeadFacts) -> bool:
        return self.when.matches(lead)


def _action(step: LadderStep, warning: bool) -> EscalationAction:
    # The warning asks the owner to act; it must not carry return_to_pool, which the
    # assignment service acts on.
    return EscalationAction.REMIND_OWNER if warning else step.action


class PolicySet(_Frozen):
    """The whole of sla.yaml: the policies and which of their steps page on-call."""

    policies: Annotated[tuple[Policy, ...], Field(min_length=1)]
    alerting: Alerting = Alerting()

    @model_validator(mode="after")
    def _unique_ids(self) -> Self:
        ids = [p.policy_id for p in self.policies]
        dupes = sorted({i for i in ids if ids.count(i) > 1})
        if dupes:
            raise ValueError(f"policy ids used twice: {', '.join(dupes)}")
        return self

    def first_response(self) -> Policy:
        return next(p for p in self.policies if p.kind is EscalationKind.FIRST_RESPONSE)

    def by_id(self, policy_id: str) -> Policy | None:
        return next((p for p in self.policies if p.policy_id == policy_id), None)

    def select(self, kind: EscalationKind, lead: LeadFacts) -> Policy | None:
        """The first policy of ``kind`` in file order that covers ``lead``."""
        return next((p for p in self.policies if p.kind is kind and p.covers(lead)), None)

    def kinds(self) -> frozenset[EscalationKind]:
        return frozenset(p.kind for p in self.policies)


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
    #: Position in the policy's schedule of the next slot to fire (1-based).
    next_level: int
    #: follow_up only: the rep's promised time, which replaces the policy's limit.
    promised_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class StepDue:
    level: int
    action: EscalationAction
    due_at: datetime
    #: A reclaim warning ahead of the step of this level (kind ``reclaim_warning``).
    warning: bool = False


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
    """When the slot at schedule position ``level`` is due (None past the end)."""
    slot = policy.slot(level)
    if slot is None:
        return None
    if clock.promised_at is not None:
        # The rep's promise is the deadline; a warning that would precede it fires at it.
        return due_at(clock.promised_at, max(0.0, slot.after_deadline), calendar)
    # One sum, not deadline + offset: an offset of 0 after an 18:00 deadline is 18:00,
    # not the next morning.
    return due_at(clock.started_at, policy.limit_seconds + slot.after_deadline, calendar)


def due_steps(
    clock: Clock, policy: Policy, now: datetime, calendar: BusinessCalendar = ROUND_THE_CLOCK
) -> tuple[list[StepDue], datetime | None]:
    """Slots due at ``now`` from ``clock.next_level`` on, and when the next one is due
    (None once the schedule is exhausted)."""
    return slots_due(
        policy.schedule,
        policy.limit_seconds,
        clock.started_at,
        clock.promised_at,
        clock.next_level,
        now,
        calendar,
    )


def slots_due(
    schedule: tuple[Slot, ...],
    limit_seconds: float,
    started_at: datetime,
    promised_at: datetime | None,
    next_level: int,
    now: datetime,
    calendar: BusinessCalendar | None,
) -> tuple[list[StepDue], datetime | None]:
    """``due_steps`` on a clock's bare columns and a policy's schedule read once: the
    ticker runs this for every due clock, and a pydantic private attribute read or a
    ``Clock`` built per slot costs more than the calendar arithmetic itself.

    ``calendar`` None: every second counts (see ``counts_every_second``), and a due time
    is a plain sum instead of a walk over working spans."""
    fired: list[StepDue] = []
    position = next_level
    while position <= len(schedule):
        slot = schedule[position - 1]
        if promised_at is not None:
            start, seconds = promised_at, max(0.0, slot.after_deadline)
        else:
            start, seconds = started_at, limit_seconds + slot.after_deadline
        if calendar is None:
            at = start.astimezone(UTC) + timedelta(seconds=seconds)
        else:
            at = due_at(start, seconds, calendar)
        if at > now:
            return fired, at
        fired.append(StepDue(level=slot.level, action=slot.action, due_at=at, warning=slot.warning))
        position += 1
    return fired, None


def counts_every_second(calendar: BusinessCalendar) -> bool:
    """Whether ``calendar`` is working time around the clock, every day of the year:
    then ``due_at(t, s, calendar) == t + s`` (consecutive local days of 00:00-24:00 leave
    no gap, whatever the zone's offset changes)."""
    return (
        not calendar.holidays
        and not calendar.workdays
        and all(_whole_day(calendar.weekly.on(day)) for day in Weekday)
    )


def _whole_day(hours: tuple[Interval, ...]) -> bool:
    return len(hours) == 1 and hours[0].start == 0 and hours[0].end == 24 * 3600


def fired_steps(
    clock: Clock, policy: Policy, calendar: BusinessCalendar = ROUND_THE_CLOCK
) -> list[StepDue]:
    """The slots a clock has fired (those before ``next_level``), to resolve them."""
    out = []
    for position in range(1, clock.next_level):
        slot = policy.slot(position)
        at = step_due_at(clock, policy, position, calendar)
        if slot is None or at is None:
            break
        out.append(StepDue(level=slot.level, action=slot.action, due_at=at, warning=slot.warning))
    return out


def follow_up_timing(
    touched_at: datetime, promise: datetime | None, policy: Policy
) -> datetime | None:
    """The promise a follow-up clock runs to, if any: the rep's ``next_followup_at``
    when the policy honours promises and it lies after the touch."""
    if promise is not None and policy.honour_promise and promise > touched_at:
        return promise
    return None


def escalation_id(clock: Clock, level: int, *, warning: bool = False) -> str:
    """Deterministic per lead, policy, clock cycle and level: a redelivery is recognisable.
    A reclaim warning has an id of its own, distinct from its step's."""
    return slot_escalation_id(clock.lead_id, clock.policy_id, clock.cycle, level, warning=warning)


def slot_escalation_id(
    lead_id: str, policy_id: str, cycle: str, level: int, *, warning: bool = False
) -> str:
    """``escalation_id`` on a clock's bare columns (the same id)."""
    parts: tuple[str | int, ...] = ("escalation", lead_id, policy_id, cycle)
    return deterministic_id(*parts, level, *(("reclaim_warning",) if warning else ()))


def escalation_event(
    clock: Clock,
    step: StepDue,
    status: EscalationStatus,
    *,
    breached_at: datetime,
    occurred_at: datetime,
) -> EscalationRaised:
    esc_id = escalation_id(clock, step.level, warning=step.warning)
    return EscalationRaised(
        event_id=deterministic_id("sla.escalations", esc_id, status.value),
        occurred_at=occurred_at,
        escalation_id=esc_id,
        lead_id=clock.lead_id,
        owner_id=clock.owner_id,
        team_id=clock.team_id,
        manager_id=clock.manager_id,
        policy_id=clock.policy_id,
        kind=EscalationKind.RECLAIM_WARNING if step.warning else clock.kind,
        level=step.level,
        action=step.action,
        due_at=step.due_at,
        breached_at=breached_at,
        status=status,
    )
