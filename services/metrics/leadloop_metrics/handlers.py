"""metrics' use case: decode → read the batch's leads → fold (pure) → save, in one
transaction → advance the served view."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import partial

from leadloop.clock import Clock
from leadloop.db import retrying
from leadloop.decoding import InputDecoder
from leadloop.events import (
    ActivityRecorded,
    EscalationRaised,
    IngestOutcomeRecorded,
    LeadAccepted,
    LeadAssigned,
    SatisfactionRecorded,
    StageChanged,
)
from leadloop_metrics.domain.facts import Fact, fact_of
from leadloop_metrics.domain.fold import first_of_each, step
from leadloop_metrics.domain.forecast import (
    forecast_step,
    month_of,
    previous_month,
    snapshot_due,
)
from leadloop_metrics.domain.labels import Delta, LabelPolicy
from leadloop_metrics.domain.silence import Silence, earliest_quiet_since, silences
from leadloop_metrics.ports import MetricRepository, SeriesSink

__all__ = ["SWEEP_PAGE", "MetricsHandler", "apply_facts"]

#: Candidate leads read (and silences applied) per transaction of the sweep.
SWEEP_PAGE = 2000


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
    #: None: no lead is ever reported silent.
    silence: Silence | None = None
    inputs: InputDecoder = field(default_factory=lambda: InputDecoder("metrics"))
    #: The forecast's smoothing toward the fixed stage table, in leads.
    forecast_strength: float = 10.0
    #: How long the forecast series stand between snapshots before they are set again
    #: (a win that arrives late changes the last closed month's accuracy).
    forecast_refresh: timedelta = timedelta(hours=1)
    #: When this worker last set the forecast series (None: not since it started).
    _forecast_set_at: datetime | None = None
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
                | EscalationRaised
                | SatisfactionRecorded,
            )
        ]
        if not facts:
            return 0
        return len(await self._apply(facts, self.clock.now()))

    async def _apply(self, facts: Sequence[Fact], now: datetime) -> Delta:
        async with self._lock:
            delta = await retrying(
                lambda: apply_facts(self.store, facts, self.labels, now), what="metrics_apply"
            )
            # Only after the commit: the view never shows a change that could be rolled back.
            self.view.add(delta)
        return delta

    async def sweep(self) -> int:
        """Mark the leads that went silent; return how many. Every worker may sweep: a
        silence is applied once (its event id), and a lead that moved meanwhile is not
        silent whatever the sweep read."""
        if self.silence is None:
            return 0
        rule = self.silence
        now = self.clock.now()
        before = earliest_quiet_since(now, rule.days)
        after: tuple[datetime, str] | None = None
        marked = 0
        while True:
            page = await retrying(
                partial(self.store.quiet, before, after, SWEEP_PAGE), what="metrics_sweep"
            )
            found = silences(page, now, rule)
            if found:
                await self._apply(found, now)
                marked += len(found)
            if len(page) < SWEEP_PAGE:
                return marked
            after = (page[-1].quiet_since, page[-1].lead_id)

    async def forecast(self) -> int:
        """Take the forecast snapshot when one is due and set the forecast series; return
        how many snapshots were stored. The series are also set after a start and every
        ``forecast_refresh`` (wins that arrive late change the last month's accuracy)."""
        now = self.clock.now()
        stale = self._forecast_set_at is None or now - self._forecast_set_at >= (
            self.forecast_refresh
        )

        async def run() -> int:
            async with self.store.forecast() as job:
                due = snapshot_due(now, await job.last_taken())
                if not due and not stale:
                    return -1
                result = forecast_step(
                    now,
                    due,
                    await job.pipeline(self.labels.team),
                    await job.snapshots(previous_month(month_of(now))),
                    self.labels.teams,
                    self.forecast_strength,
                )
                await job.save(result)
            return len(result.snapshots)

        stored = await retrying(run, what="metrics_forecast")
        if stored < 0:
            return 0
        self._forecast_set_at = now
        await self.refresh()
        return stored

    async def refresh(self) -> None:
        """Re-read the totals (other workers of the group count their partitions)."""
        async with self._lock:
            self.view.replace(await retrying(self.store.load, what="metrics_load"))
