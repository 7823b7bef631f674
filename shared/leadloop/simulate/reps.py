"""Rep behaviour: what the owner of an assignment does on the CRM topics, planned per seed.

Rep model
---------
Every rep has a temperament fixed by (seed, rep_id): about 60 % answer fast (first
touch 0.5-5 simulated minutes after assignment), 25 % slowly (30-120 minutes) and 15 %
never. A touch moves the lead to ``contacted``; it then climbs qualified, proposal,
negotiation to won (with an amount) step by step, may stall in a stage, or is lost
with a reason. Fast answers qualify about twice as often as slow ones, as the lead
response studies quoted in DESIGN.md report. A new assignment of a lead (reassigned,
reclaimed, pooled) cancels what the previous owner had still planned.

CRM event timestamps lie on the simulated timeline, ``assigned_at`` plus the simulated
delay, so first-response times look like minutes; the run waits ``delay / time_scale``
real seconds before publishing each one.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from datetime import datetime, timedelta
from enum import StrEnum
from typing import Final

from leadloop.events import (
    ActivityKind,
    ActivityRecorded,
    LossReason,
    Stage,
    StageChanged,
    deterministic_id,
)

__all__ = ["PlannedEvent", "Responsiveness", "plan_followup", "rep_responsiveness"]


class Responsiveness(StrEnum):
    FAST = "fast"
    SLOW = "slow"
    NEVER = "never"


_FAST_SHARE: Final = 0.60
_SLOW_SHARE: Final = 0.25
_FIRST_TOUCH_S: Final = {Responsiveness.FAST: (30.0, 300.0), Responsiveness.SLOW: (1800.0, 7200.0)}
_QUALIFY_ODDS: Final = {Responsiveness.FAST: 0.55, Responsiveness.SLOW: 0.28}
_STALL_ODDS: Final = 0.10
_STAGE_GAP_S: Final = (20 * 60.0, 6 * 3600.0)
#: The climb after ``contacted``: next stage and the odds of reaching it.
_LADDER: Final = ((Stage.PROPOSAL, 0.60), (Stage.NEGOTIATION, 0.65), (Stage.WON, 0.60))
_LOSS_REASONS: Final = {
    Stage.CONTACTED: (LossReason.NO_RESPONSE, LossReason.INVALID_CONTACT, LossReason.NOT_A_FIT,
                      LossReason.TIMING),
    Stage.QUALIFIED: (LossReason.NO_BUDGET, LossReason.TIMING, LossReason.NOT_A_FIT),
    Stage.PROPOSAL: (LossReason.NO_BUDGET, LossReason.CHOSE_COMPETITOR, LossReason.TIMING),
    Stage.NEGOTIATION: (LossReason.CHOSE_COMPETITOR, LossReason.NO_BUDGET, LossReason.OTHER),
}  # fmt: skip
_FIRST_TOUCH: Final = (
    (ActivityKind.CALL, ("connected", "voicemail", "no_answer")),
    (ActivityKind.EMAIL, ("sent",)),
    (ActivityKind.MESSAGE, ("delivered", "replied")),
)
_LATER_TOUCH: Final = (ActivityKind.MEETING, ActivityKind.VISIT, ActivityKind.CALL,
                       ActivityKind.EMAIL)  # fmt: skip


def rep_responsiveness(seed: int, rep_id: str) -> Responsiveness:
    """A rep's temperament, the same for every lead of the run (and every run of the seed)."""
    # A string seed is hashed with SHA-512 by ``random``, so this is stable across
    # processes (unlike ``hash()``).
    draw = random.Random(f"{seed}:rep:{rep_id}").random()
    if draw < _FAST_SHARE:
        return Responsiveness.FAST
    if draw < _FAST_SHARE + _SLOW_SHARE:
        return Responsiveness.SLOW
    return Responsiveness.NEVER


@dataclass(frozen=True, slots=True)
class PlannedEvent:
    """A CRM event the owner will publish ``delay_s`` simulated seconds after assignment."""

    delay_s: float
    topic: str  # registry name, not yet prefixed
    key: bytes
    value: bytes
    stage: Stage | None = None  # set for stage changes


class _PlanBuilder:
    def __init__(
        self, seed: int, assignment_id: str, lead_id: str, owner_id: str, assigned_at: datetime
    ) -> None:
        self.rng = random.Random(f"{seed}:assignment:{assignment_id}")
        self.events: list[PlannedEvent] = []
        self._ids = (str(seed), assignment_id)
        self._lead_id, self._owner_id, self._assigned_at = lead_id, owner_id, assigned_at

    def _event_id(self) -> str:
        # Derived from the assignment, so replaying the same assignment yields the same
        # ids and consumers can drop the repeats.
        return deterministic_id("leadloop-simulator", *self._ids, len(self.events))

    def activity(self, delay_s: float, kind: ActivityKind, outcome: str | None) -> None:
        at = self._assigned_at + timedelta(seconds=delay_s)
        follow_up = at + timedelta(days=self.rng.randint(1, 3)) if self.rng.random() < 0.4 else None
        event = ActivityRecorded(
            event_id=self._event_id(),
            lead_id=self._lead_id,
            rep_id=self._owner_id,
            kind=kind,
            occurred_at=at,
            outcome=outcome,
            next_followup_at=follow_up,
        )
        self._add(delay_s, ActivityRecorded.topic, event.model_dump_json(exclude_none=True), None)

    def stage(
        self,
        delay_s: float,
        stage: Stage,
        *,
        amount: float | None = None,
        loss_reason: LossReason | None = None,
    ) -> None:
        at = self._assigned_at + timedelta(seconds=delay_s)
        closing = stage in (Stage.PROPOSAL, Stage.NEGOTIATION)
        event = StageChanged(
            event_id=self._event_id(),
            lead_id=self._lead_id,
            stage=stage,
            occurred_at=at,
            rep_id=self._owner_id,
            amount=amount,
            expected_close_date=(at + timedelta(days=self.rng.randint(7, 60))).date()
            if closing
            else None,
            loss_reason=loss_reason,
        )
        self._add(delay_s, StageChanged.topic, event.model_dump_json(exclude_none=True), stage)

    def _add(self, delay_s: float, topic: str, value: str, stage: Stage | None) -> None:
        self.events.append(
            PlannedEvent(delay_s, topic, self._lead_id.encode(), value.encode(), stage)
        )


def plan_followup(
    seed: int, *, assignment_id: str, lead_id: str, owner_id: str, assigned_at: datetime
) -> list[PlannedEvent]:
    """What the owner of one assignment will do, in order; empty for a rep who never answers.

    Pure: the same arguments give the same events (values, ids, delays).
    """
    temper = rep_responsiveness(seed, owner_id)
    if temper is Responsiveness.NEVER:
        return []
    plan = _PlanBuilder(seed, assignment_id, lead_id, owner_id, assigned_at)
    rng = plan.rng
    t = rng.uniform(*_FIRST_TOUCH_S[temper])
    kind, outcomes = rng.choice(_FIRST_TOUCH)
    plan.activity(t, kind, rng.choice(outcomes))
    t += rng.uniform(30, 600)
    plan.stage(t, Stage.CONTACTED)
    deal = round(10 ** rng.uniform(3.7, 5.7), -2)
    current = Stage.CONTACTED
    for target, odds in ((Stage.QUALIFIED, _QUALIFY_ODDS[temper]), *_LADDER):
        t += rng.uniform(*_STAGE_GAP_S)
        if rng.random() < _STALL_ODDS:
            break  # left in its stage: what stage-stall escalations are for
        plan.activity(t, rng.choice(_LATER_TOUCH), None)
        t += rng.uniform(60, 1800)
        if rng.random() >= odds:
            plan.stage(t, Stage.LOST, loss_reason=rng.choice(_LOSS_REASONS[current]))
            break
        plan.stage(t, target, amount=_amount(rng, target, deal))
        current = target
    return plan.events


def _amount(rng: random.Random, stage: Stage, deal: float) -> float | None:
    """The deal size the CRM shows: estimated from proposal on, final (discounted) when won."""
    if stage is Stage.WON:
        return round(deal * rng.uniform(0.85, 1.0), 2)
    if stage in (Stage.PROPOSAL, Stage.NEGOTIATION):
        return deal
    return None
