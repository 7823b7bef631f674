"""sla-monitor's use cases: apply input events, fire due steps, drain the outbox."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from leadloop.clock import Clock
from leadloop.db import retrying
from leadloop.events import ActivityRecorded, EscalationRaised, LeadAssigned, StageChanged
from leadloop.logging import get_logger
from leadloop.messaging import Publisher, event_message
from leadloop_sla_monitor.adapters.postgres import ClockStore, Input

__all__ = ["SlaHandler"]

log = get_logger(__name__)

_MODELS: dict[str, type[BaseModel]] = {
    "leads.assigned": LeadAssigned,
    "crm.activities": ActivityRecorded,
    "crm.stage-changes": StageChanged,
}


@dataclass(frozen=True)
class SlaHandler:
    store: ClockStore
    publisher: Publisher
    clock: Clock

    async def handle(self, messages: Sequence[tuple[str, bytes]]) -> int:
        """Apply (logical topic, value) pairs; events that cannot be decoded are skipped."""
        inputs = [e for topic, value in messages if (e := _decode(topic, value)) is not None]
        now = self.clock.now()
        applied = await retrying(lambda: self.store.apply(inputs, now), what="sla_apply")
        await self.drain()
        return applied

    async def tick(self) -> int:
        """Fire what is due now and publish it."""
        now = self.clock.now()
        fired = await retrying(lambda: self.store.fire_due(now), what="sla_fire")
        await self.drain()
        return fired

    async def drain(self) -> int:
        async def publish(events: list[EscalationRaised]) -> None:
            await self.publisher.publish([event_message(e, key=e.lead_id) for e in events])

        total = 0
        while n := await retrying(lambda: self.store.drain_outbox(publish), what="sla_outbox"):
            total += n
        return total


def _decode(topic: str, value: bytes) -> Input | None:
    model = _MODELS[topic]
    try:
        event = model.model_validate_json(value)
    except ValidationError as exc:
        # CRM events are validated at the edge; a bad one is logged by kind and skipped
        # so that it cannot block the partition.
        log.warning("undecodable_event", topic=topic, errors=exc.error_count())
        return None
    assert isinstance(event, LeadAssigned | ActivityRecorded | StageChanged)
    return event
