"""What the review's use case needs from storage and from the broker."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from datetime import date, datetime
from typing import Any, Protocol

from leadloop.events import ReviewPublished
from leadloop_review.domain.build import ForecastSnapshot

__all__ = ["FactSource", "LeadFacts", "PublishFailed", "Publisher", "ReportSink"]

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
    """Where the scheduled run keeps the reports it wrote, and which of them it has
    announced."""

    def written(self, fmt: str) -> set[str]:
        """The labels (``2026-W48``, ``2026-11``) of the reports already written in
        ``fmt``."""
        ...

    def write(self, label: str, fmt: str, text: str) -> str:
        """Store one report whole (never half of it); where it went."""
        ...

    def files(self, label: str) -> list[str]:
        """The reports of ``label`` stored, as paths relative to the directory's parent
        (``reviews/review-2026-11.md``): no host path goes into an announcement."""
        ...

    def stage(self, label: str, announcement: str) -> None:
        """Keep the announcement of ``label`` (whole) until it is marked announced."""
        ...

    def unannounced(self) -> dict[str, str]:
        """Label -> staged announcement, for each one not marked announced yet."""
        ...

    def mark_announced(self, label: str) -> None:
        """Record that the broker acknowledged ``label``'s announcement."""
        ...


class PublishFailed(Exception):
    """The broker did not acknowledge an announcement (down, unreachable, refused)."""


class Publisher(Protocol):
    async def publish(self, event: ReviewPublished) -> None:
        """Return once the broker acknowledged ``event`` (all in-sync replicas); raise
        :class:`PublishFailed` otherwise. Publishing the same event twice is harmless:
        consumers deduplicate by its ``event_id``."""
        ...
