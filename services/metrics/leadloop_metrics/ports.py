"""What metrics' use case needs of its store and of the served view (``bootstrap`` wires
the PostgreSQL and Prometheus implementations; unit tests hand in fakes)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from typing import Protocol

from leadloop_metrics.domain.facts import Fact
from leadloop_metrics.domain.fold import Step
from leadloop_metrics.domain.forecast import ForecastStep, Pipeline, Snapshot
from leadloop_metrics.domain.labels import Delta, SeriesKey
from leadloop_metrics.domain.leads import LeadState
from leadloop_metrics.domain.silence import Quiet

__all__ = ["ForecastJob", "MetricBatch", "MetricRepository", "SeriesSink"]


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


class ForecastJob(Protocol):
    """The forecast job's transaction; one worker of the group at a time."""

    async def last_taken(self) -> datetime | None:
        """When the latest stored snapshot was taken (None: never)."""
        ...

    async def pipeline(self, team_label: Callable[[str], str]) -> Pipeline:
        """The leads as the forecast sees them, teams as served labels."""
        ...

    async def snapshots(self, since: date) -> list[Snapshot]:
        """The stored snapshots of the months from ``since`` on."""
        ...

    async def save(self, step: ForecastStep) -> None:
        """Store the new snapshots and replace every forecast series."""
        ...


class MetricRepository(Protocol):
    def batch(self, now: datetime) -> AbstractAsyncContextManager[MetricBatch]:
        """A transaction, committed when the block ends without an exception."""
        ...

    def forecast(self) -> AbstractAsyncContextManager[ForecastJob]:
        """The forecast job's transaction, committed when the block ends."""
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
