"""metrics' use case: decode → read the batch's leads → fold (pure) → save, in one
transaction → advance the served view."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from leadloop.clock import Clock
from leadloop.db import retrying
from leadloop.decoding import InputDecoder
from leadloop.events import (
    ActivityRecorded,
    EscalationRaised,
    IngestOutcomeRecorded,
    LeadAccepted,
    LeadAssigned,
    StageChanged,
)
from leadloop_metrics.domain.facts import Fact, fact_of
from leadloop_metrics.domain.fold import first_of_each, step
from leadloop_metrics.domain.labels import Delta, LabelPolicy
from leadloop_metrics.ports import MetricRepository, SeriesSink

__all__ = ["MetricsHandler", "apply_facts"]


async def apply_facts(
    store: MetricRepository, facts: Sequence[Fact], policy: LabelPolicy, now: datetime
) -> Delta:
    """Fold the facts not applied before on top of their leads' stored states; return the
    series changes that were saved. A redelivered event changes nothing."""
    async with store.batch(now) as batch:
        stored, fresh = await batch.read(first_of_each(facts))
        result = step(stored, fresh, policy)
        await batch.apply(result)
    return result.delta


@dataclass
class MetricsHandler:
    store: MetricRepository
    view: SeriesSink
    labels: LabelPolicy
    clock: Clock
    inputs: InputDecoder = field(default_factory=lambda: InputDecoder("metrics"))
    #: Serialises commits with re-reads: a re-read that started before this worker's
    #: own commit must not replace the view after it (a counter would go back).
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    async def handle(self, messages: Sequence[tuple[str, bytes]]) -> int:
        facts = [
            fact_of(event)
            for event in self.inputs.decode_all(messages)
            if isinstance(
                event,
                IngestOutcomeRecorded
                | LeadAccepted
                | LeadAssigned
                | ActivityRecorded
                | StageChanged
                | EscalationRaised,
            )
        ]
        if not facts:
            return 0
        now = self.clock.now()
        async with self._lock:
            delta = await retrying(
                lambda: apply_facts(self.store, facts, self.labels, now), what="metrics_apply"
            )
            # Only after the commit: the view never shows a change that could be rolled back.
            self.view.add(delta)
        return len(delta)

    async def refresh(self) -> None:
        """Re-read the totals (other workers of the group count their partitions)."""
        async with self._lock:
            self.view.replace(await retrying(self.store.load, what="metrics_load"))
