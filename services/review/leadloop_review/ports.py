"""What the review's use case needs from storage."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from leadloop_review.domain.build import ForecastSnapshot

__all__ = ["FactSource", "LeadFacts", "ReportSink"]

#: One lead's stored facts (the JSON the metrics service stored), in application order.
LeadFacts = tuple[str, list[dict[str, Any]]]


class FactSource(Protocol):
    def accepted(self, start: datetime, end: datetime) -> AsyncIterator[LeadFacts]:
        """Every stored fact of each lead accepted in ``[start, end)``, one lead at a
        time (all of a lead's facts together), streamed: nothing is held but the lead
        being read."""
        ...

    def won(self, start: datetime, end: datetime) -> AsyncIterator[LeadFacts]:
        """The same for each lead with a win dated in ``[start, end)``."""
        ...

    async def snapshots(self, months: Sequence[date]) -> list[ForecastSnapshot]:
        """The forecast snapshots of those months (none yet: empty)."""
        ...


class ReportSink(Protocol):
    """Where the scheduled run keeps the reports it wrote."""

    def written(self, fmt: str) -> set[str]:
        """The labels (``2026-W48``, ``2026-11``) of the reports already written in
        ``fmt``."""
        ...

    def write(self, label: str, fmt: str, text: str) -> str:
        """Store one report whole (never half of it); where it went."""
        ...
