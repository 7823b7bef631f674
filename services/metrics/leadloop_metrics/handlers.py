"""metrics' use case: decode → apply once (PostgreSQL) → advance the served view."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, ValidationError

from leadloop.clock import Clock
from leadloop.db import retrying
from leadloop.events import EscalationRaised, IngestOutcomeRecorded, LeadAssigned
from leadloop.logging import get_logger
from leadloop_metrics.adapters.postgres import MetricStore
from leadloop_metrics.adapters.prometheus import CounterView
from leadloop_metrics.domain.fold import Event, LabelPolicy, fold

__all__ = ["INPUT_TOPICS", "MetricsHandler"]

log = get_logger(__name__)

INPUT_TOPICS: dict[str, type[BaseModel]] = {
    "ingest.outcomes": IngestOutcomeRecorded,
    "leads.assigned": LeadAssigned,
    "sla.escalations": EscalationRaised,
}


@dataclass(frozen=True)
class MetricsHandler:
    store: MetricStore
    view: CounterView
    labels: LabelPolicy
    clock: Clock

    async def handle(self, messages: Sequence[tuple[str, bytes]]) -> int:
        events = [e for topic, value in messages if (e := _decode(topic, value)) is not None]
        if not events:
            return 0
        now = self.clock.now()
        inc = await retrying(
            lambda: self.store.apply(events, lambda evs: fold(evs, self.labels), now),
            what="metrics_apply",
        )
        # Only after the commit: the view never shows a change that could be rolled back.
        self.view.add(inc)
        return sum(inc.values())

    async def refresh(self) -> None:
        """Re-read the totals (other workers of the group count their partitions)."""
        self.view.replace(await retrying(self.store.load, what="metrics_load"))


def _decode(topic: str, value: bytes) -> Event | None:
    try:
        event = INPUT_TOPICS[topic].model_validate_json(value)
    except ValidationError as exc:
        log.warning("undecodable_event", topic=topic, errors=exc.error_count())
        return None
    assert isinstance(event, IngestOutcomeRecorded | LeadAssigned | EscalationRaised)
    return event
