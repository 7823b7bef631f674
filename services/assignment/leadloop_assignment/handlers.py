"""Assignment's use cases.

- ``AssignmentHandler``: leads.accepted → (under lock) load state → decide → persist →
  publish the first decision of every lead.
- ``ChangeHandler``: crm.reps, crm.stage-changes and sla.escalations → roster, closed
  leads and escalation moves → every move due (departed reps, the pool) → publish the
  moves from the table; its ``tick`` drains pools as time makes reps eligible (working
  hours begin, a new day lifts a daily cap) and publishes moves a stopped worker left.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import TypeVar

from pydantic import BaseModel, ValidationError

from leadloop.clock import Clock
from leadloop.db import retrying
from leadloop.events import (
    EscalationAction,
    EscalationRaised,
    EscalationStatus,
    LeadAccepted,
    LeadAssigned,
    RepUpdated,
    Stage,
    StageChanged,
)
from leadloop.faults import fault_point
from leadloop.logging import get_logger
from leadloop.messaging import Publisher, event_message
from leadloop_assignment.adapters.postgres import AssignmentStore, Closing
from leadloop_assignment.domain.moves import Takeback
from leadloop_assignment.domain.rules import RuleSet

__all__ = ["AssignmentHandler", "ChangeHandler"]

log = get_logger(__name__)

#: Escalation actions that move the lead (the others are for people and paging).
_MOVING = frozenset({EscalationAction.REASSIGN, EscalationAction.RETURN_TO_POOL})

#: A move not published this long after its commit was left by a stopped worker.
_ORPHANED_AFTER = timedelta(seconds=10)


@dataclass(frozen=True)
class AssignmentHandler:
    store: AssignmentStore
    publisher: Publisher
    clock: Clock
    #: The rule set in force now (reloaded live by the adapter).
    rules: Callable[[], RuleSet]

    async def handle(self, values: Sequence[bytes]) -> list[LeadAssigned]:
        leads = [lead for v in values if (lead := _decode(LeadAccepted, v)) is not None]
        if not leads:
            return []
        rules = self.rules()
        now = self.clock.now()
        events = await retrying(lambda: self.store.assign(leads, rules, now), what="assign_batch")
        fault_point("assignment.after_commit")  # tests only: committed, nothing published yet
        await self.publisher.publish([event_message(e, key=e.lead_id) for e in events])
        await retrying(
            lambda: self.store.published(events, self.clock.now()), what="assignment_published"
        )
        return events


@dataclass(frozen=True)
class ChangeHandler:
    store: AssignmentStore
    publisher: Publisher
    clock: Clock
    rules: Callable[[], RuleSet]

    async def handle(self, batch: Sequence[tuple[str, bytes]]) -> list[LeadAssigned]:
        reps: list[RepUpdated] = []
        closings: list[Closing] = []
        takebacks: list[Takeback] = []
        for topic, value in batch:
            if topic == "crm.reps":
                if (rep := _decode(RepUpdated, value)) is not None:
                    reps.append(rep)
            elif topic == "crm.stage-changes":
                change = _decode(StageChanged, value)
                if change is not None and change.stage in (Stage.WON, Stage.LOST):
                    closings.append((change.lead_id, change.occurred_at))
            elif topic == "sla.escalations":
                step = _decode(EscalationRaised, value)
                if (
                    step is not None
                    and step.status is EscalationStatus.FIRING
                    and step.action in _MOVING
                ):
                    takebacks.append(
                        Takeback(step.lead_id, step.owner_id, step.action, step.event_id)
                    )
        if not (reps or closings or takebacks):
            return []
        rules = self.rules()
        now = self.clock.now()
        events = await retrying(
            lambda: self.store.maintain(
                rules, now, reps=reps, closings=closings, takebacks=takebacks
            ),
            what="assignment_changes",
        )
        await self._publish(events)
        return events

    async def tick(self) -> list[LeadAssigned]:
        """Drain the pools when someone may have become eligible with time, and publish
        moves a stopped worker committed but did not publish."""
        now = self.clock.now()
        orphans = await retrying(
            lambda: self.store.unpublished(older_than=now - _ORPHANED_AFTER),
            what="assignment_outbox",
        )
        await self._publish(orphans)
        rules = self.rules()
        if not await retrying(lambda: self.store.moves_pending(rules), what="pool_check"):
            return orphans
        events = await retrying(lambda: self.store.maintain(rules, now), what="pool_drain")
        await self._publish(events)
        return orphans + events

    async def _publish(self, events: Sequence[LeadAssigned]) -> None:
        if not events:
            return
        await self.publisher.publish([event_message(e, key=e.lead_id) for e in events])
        await retrying(
            lambda: self.store.published(events, self.clock.now()), what="assignment_published"
        )


M = TypeVar("M", bound=BaseModel)


def _decode(model: type[M], value: bytes) -> M | None:
    try:
        return model.model_validate_json(value)
    except ValidationError as exc:
        # Inputs here are validated upstream (ingest's timeline rejects bad CRM records
        # to crm.rejected; leads.accepted and sla.escalations are ours). An undecodable
        # event is logged (kinds only, no values) and skipped, never retried.
        log.error("undecodable_input", model=model.__name__, errors=exc.error_count())
        return None
