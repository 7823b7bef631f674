"""What the hand-off's use cases need of their store and of their metrics (``bootstrap``
wires the PostgreSQL and Prometheus implementations; tests may hand in others)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Protocol

from leadloop.events import LeadAssigned, RepUpdated
from leadloop_handoff.domain.deliveries import Due, Finished

__all__ = ["DeliveryMetrics", "DeliveryRepository"]


class DeliveryRepository(Protocol):
    """The delivery outbox, the reps' CRM ids and the erasure cursor. Every method is
    one transaction (or one statement) of its own."""

    async def record(
        self,
        assigned: Sequence[tuple[LeadAssigned, Sequence[str]]],
        reps: Sequence[RepUpdated],
        now: datetime,
    ) -> int:
        """Store reps' CRM ids and one pending delivery per (assignment, target name);
        returns the deliveries newly created. Idempotent."""
        ...

    async def claim(self, target: str, now: datetime, limit: int, lease: timedelta) -> list[Due]:
        """Lease up to ``limit`` due rows of ``target`` (the first pending one per lead)."""
        ...

    async def finish(self, results: Sequence[Finished]) -> int:
        """Store what became of claimed rows still in the state they were claimed in."""
        ...

    async def apply_erasures(
        self, erase_targets: Sequence[str], now: datetime, lease: timedelta, limit: int = 5000
    ) -> int:
        """Cancel what is pending for newly erased leads and queue their erasure for
        ``erase_targets``; returns the erased leads looked at."""
        ...

    async def backlog(self) -> dict[tuple[str, str], int]:
        """(target, pending|dead) -> rows."""
        ...


class DeliveryMetrics(Protocol):
    def attempt(self, target: str, outcome: str, status_class: str) -> None: ...

    def delivered_after(self, target: str, seconds: float) -> None: ...

    def backlog(self, counts: Mapping[tuple[str, str], int]) -> None: ...
