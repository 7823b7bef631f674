"""sla-monitor's use cases: apply input events, fire due steps, drain the outboxes."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from pydantic import BaseModel, ValidationError

from leadloop.clock import Clock
from leadloop.db import retrying
from leadloop.events import (
    ActivityRecorded,
    EscalationRaised,
    LeadAccepted,
    LeadAssigned,
    RepUpdated,
    StageChanged,
)
from leadloop.logging import get_logger
from leadloop.messaging import Publisher, event_message
from leadloop_sla_monitor.adapters.postgres import FIRE_BATCH, ClockStore, Input
from leadloop_sla_monitor.domain.alerts import Alerting

__all__ = ["FIRE_LANES", "INPUT_MODELS", "SlaHandler"]

#: Firing transactions in flight at once per worker.
FIRE_LANES = 2

log = get_logger(__name__)

#: Input topics and the model of their values.
INPUT_MODELS: dict[str, type[BaseModel]] = {
    "leads.accepted": LeadAccepted,
    "leads.assigned": LeadAssigned,
    "crm.activities": ActivityRecorded,
    "crm.stage-changes": StageChanged,
    "crm.reps": RepUpdated,
}

AlertSender = Callable[[list[dict[str, Any]]], Awaitable[None]]


@dataclass(frozen=True)
class SlaHandler:
    store: ClockStore
    publisher: Publisher
    clock: Clock
    alerting: Alerting = field(default_factory=Alerting)
    #: Sends alerts to Alertmanager; None when no Alertmanager is configured.
    send_alerts: AlertSender | None = None

    async def handle(self, messages: Sequence[tuple[str, bytes]]) -> int:
        """Apply (logical topic, value) pairs; events that cannot be decoded are skipped."""
        inputs = [e for topic, value in messages if (e := _decode(topic, value)) is not None]
        now = self.clock.now()
        applied = await retrying(lambda: self.store.apply(inputs, now), what="sla_apply")
        await self.drain()
        return applied

    async def tick(self) -> int:
        """Fire what is due now and publish it."""
        # Two lanes claim batches side by side (SKIP LOCKED keeps them apart): while one
        # waits on PostgreSQL or the broker's acknowledgement, the other computes.
        fired = sum(await asyncio.gather(*(self._fire_lane() for _ in range(FIRE_LANES))))
        await self.drain()
        return fired

    async def _fire_lane(self) -> int:
        fired = 0
        while True:
            n = await retrying(self._fire_now, what="sla_fire")
            fired += n
            # A full batch means more may be due. Each batch is published as it fires;
            # the drain after the lanes only catches rows a crash left unpublished and
            # resolved steps.
            if n < FIRE_BATCH:
                return fired

    async def _fire_now(self) -> int:
        return await self.store.fire_due(self.clock.now(), publish=self._publish)

    async def _publish(self, events: list[EscalationRaised]) -> None:
        await self.publisher.publish([event_message(e, key=e.lead_id) for e in events])

    async def _deliver_now(self, send: AlertSender) -> tuple[int, int]:
        return await self.store.deliver_alerts(send, self.clock.now(), self.alerting)

    async def drain(self) -> int:
        total = 0
        while n := await retrying(
            lambda: self.store.drain_outbox(self._publish), what="sla_outbox"
        ):
            total += n
        return total

    async def deliver_alerts(self) -> int:
        """Send due on-call alerts; stop at the first failed batch (it backs off)."""
        send = self.send_alerts
        if send is None:
            return 0
        total = 0
        while True:
            delivered, failed = await retrying(partial(self._deliver_now, send), what="sla_alerts")
            total += delivered
            if failed:
                log.warning("alert_delivery_failed", alerts=failed)
            if not delivered:
                return total


def _decode(topic: str, value: bytes) -> Input | None:
    model = INPUT_MODELS[topic]
    try:
        event = model.model_validate_json(value)
    except ValidationError as exc:
        # CRM events are validated at the edge; a bad one is logged by kind and skipped
        # so that it cannot block the partition.
        log.warning("undecodable_event", topic=topic, errors=exc.error_count())
        return None
    assert isinstance(
        event, LeadAssigned | ActivityRecorded | StageChanged | LeadAccepted | RepUpdated
    )
    return event
