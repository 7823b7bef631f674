"""metrics' use case: decode → apply once (PostgreSQL) → advance the served view."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field

from pydantic import BaseModel, ValidationError

from leadloop.clock import Clock
from leadloop.db import retrying
from leadloop.events import (
    ActivityRecorded,
    EscalationRaised,
    IngestOutcomeRecorded,
    LeadAccepted,
    LeadAssigned,
    StageChanged,
)
from leadloop.logging import get_logger
from leadloop_metrics.adapters.postgres import MetricStore
from leadloop_metrics.adapters.prometheus import SeriesView
from leadloop_metrics.domain.facts import EventIn, Fact, fact_of
from leadloop_metrics.domain.labels import LabelPolicy

__all__ = ["INPUT_TOPICS", "MetricsHandler"]

log = get_logger(__name__)

INPUT_TOPICS: dict[str, type[BaseModel]] = {
    m.topic: m
    for m in (
        IngestOutcomeRecorded,
        LeadAccepted,
        LeadAssigned,
        ActivityRecorded,
        StageChanged,
        EscalationRaised,
    )
}


@dataclass
class MetricsHandler:
    store: MetricStore
    view: SeriesView
    labels: LabelPolicy
    clock: Clock
    #: Serialises commits with re-reads: a re-read that started before this worker's
    #: own commit must not replace the view after it (a counter would go back).
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def handle(self, messages: Sequence[tuple[str, bytes]]) -> int:
        facts = [f for topic, value in messages if (f := _decode(topic, value)) is not None]
        if not facts:
            return 0
        now = self.clock.now()
        async with self._lock:
            delta = await retrying(
                lambda: self.store.apply(facts, self.labels, now), what="metrics_apply"
            )
            # Only after the commit: the view never shows a change that could be rolled back.
            self.view.add(delta)
        return len(delta)

    async def refresh(self) -> None:
        """Re-read the totals (other workers of the group count their partitions)."""
        async with self._lock:
            self.view.replace(await retrying(self.store.load, what="metrics_load"))


def _decode(topic: str, value: bytes) -> Fact | None:
    try:
        event = INPUT_TOPICS[topic].model_validate_json(value)
    except ValidationError as exc:
        # The producers' own dead-letter paths (leads.rejected, crm.rejected) keep bad
        # input; here a record that does not decode counts nowhere and is logged.
        log.warning("undecodable_event", topic=topic, errors=exc.error_count())
        return None
    assert isinstance(
        event,
        IngestOutcomeRecorded
        | LeadAccepted
        | LeadAssigned
        | ActivityRecorded
        | StageChanged
        | EscalationRaised,
    )
    typed: EventIn = event
    return fact_of(typed)
