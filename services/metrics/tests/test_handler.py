"""The handler: a periodic re-read never replaces the view with values older than a
batch this worker already served (a counter would go back, a gauge would flicker)."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from datetime import UTC, datetime

import pytest

from leadloop.clock import FixedClock
from leadloop.decoding import Undecodable
from leadloop.events import IngestOutcome, IngestOutcomeRecorded
from leadloop_metrics.adapters.prometheus import SeriesView
from leadloop_metrics.domain.facts import Fact
from leadloop_metrics.domain.fold import Step
from leadloop_metrics.domain.labels import LabelPolicy, SeriesKey, series
from leadloop_metrics.domain.leads import LeadState
from leadloop_metrics.handlers import MetricsHandler

NOW = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
POLICY = LabelPolicy(sources=frozenset({"web_form"}), teams=frozenset({"north"}))
RECEIVED = series("leadloop_leads_received_total", source="web_form")


class SlowStore:
    """Commits take a while; ``load`` returns what is committed at the moment it reads."""

    def __init__(self) -> None:
        self.committed: dict[SeriesKey, float] = {}
        self.commit_started = asyncio.Event()
        self.release = asyncio.Event()

    @asynccontextmanager
    async def batch(self, now: datetime) -> AsyncIterator[SlowStore]:
        yield self

    async def read(self, facts: Sequence[Fact]) -> tuple[dict[str, LeadState], list[Fact]]:
        return {}, list(facts)

    async def apply(self, result: Step) -> None:
        self.commit_started.set()
        await self.release.wait()
        for k, v in result.delta.items():
            self.committed[k] = self.committed.get(k, 0.0) + v

    async def load(self) -> dict[SeriesKey, float]:
        return dict(self.committed)


def outcome(n: int) -> bytes:
    return (
        IngestOutcomeRecorded(
            event_id=f"o{n}",
            occurred_at=NOW,
            source="web_form",
            outcome=IngestOutcome.ACCEPTED,
            lead_id=f"l{n}",
            raw_partition=0,
            raw_offset=n,
        )
        .model_dump_json()
        .encode()
    )


async def test_a_reread_waits_for_the_commit_in_flight() -> None:
    store = SlowStore()
    view = SeriesView({})
    handler = MetricsHandler(store=store, view=view, labels=POLICY, clock=FixedClock(NOW))
    batch = asyncio.create_task(handler.handle([("ingest.outcomes", outcome(1))]))
    await store.commit_started.wait()
    refresh = asyncio.create_task(handler.refresh())
    await asyncio.sleep(0.01)
    assert not refresh.done(), "the re-read must wait for the commit in flight"
    store.release.set()
    await asyncio.gather(batch, refresh)
    assert view.value("leadloop_leads_received_total", source="web_form") == 1
    assert store.committed[RECEIVED] == 1


async def test_an_undecodable_event_raises_before_anything_is_applied() -> None:
    # The agent isolates the record and parks it on metrics.dead-letter (leadloop.poison).
    store = SlowStore()
    store.release.set()
    view = SeriesView({})
    handler = MetricsHandler(store=store, view=view, labels=POLICY, clock=FixedClock(NOW))
    for bad in (b"{not json", b'{"stage": "lost"}'):
        with pytest.raises(Undecodable):
            await handler.handle([("crm.stage-changes", bad)])
    assert view.snapshot() == {}
