"""What metrics' use case needs of its store and of the served view (``bootstrap`` wires
the PostgreSQL and Prometheus implementations; unit tests hand in fakes)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from leadloop_metrics.domain.facts import Fact
from leadloop_metrics.domain.fold import Step
from leadloop_metrics.domain.labels import Delta, SeriesKey
from leadloop_metrics.domain.leads import LeadState
from leadloop_metrics.domain.silence import Quiet

__all__ = ["MetricBatch", "MetricRepository", "SeriesSink"]


class MetricBatch(Protocol):
    """One batch's transaction: everything read and written in it commits together."""

    async def read(self, facts: Sequence[Fact]) -> tuple[dict[str, LeadState], list[Fact]]:
        """Lock the leads ``facts`` concern (in one order) and record the facts' event ids;
        return the stored states of those leads and the facts not applied before, in
        order. A second worker holding the same leads waits until this one commits."""
        ...

    async def apply(self, result: Step) -> None:
        """Save the new lead states and add the series changes."""
        ...


class MetricRepository(Protocol):
    def batch(self, now: datetime) -> AbstractAsyncContextManager[MetricBatch]:
        """A transaction, committed when the block ends without an exception."""
        ...

    async def load(self) -> dict[SeriesKey, float]:
        """Every stored series."""
        ...

    async def quiet(
        self, before: datetime, after: tuple[datetime, str] | None, limit: int
    ) -> list[Quiet]:
        """Up to ``limit`` leads that could fall silent, quiet since ``before`` or
        earlier, in (quiet_since, lead_id) order after ``after`` (None: from the start)."""
        ...


class SeriesSink(Protocol):
    """The served values."""

    def add(self, delta: Delta) -> None: ...

    def replace(self, stored: Mapping[SeriesKey, float]) -> None: ...
