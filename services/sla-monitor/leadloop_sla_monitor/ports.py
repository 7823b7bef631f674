"""What sla-monitor's use cases need from storage: a unit of work and the repository it
hands out. ``adapters.postgres`` implements them; ``bootstrap`` wires that in.

Every method of a ``ClockRepository`` runs in its unit of work's transaction: nothing
is visible to others before the unit of work ends without an error, and an error
(or a crash) undoes all of it. Each method is one or a few round trips whatever the
batch size, so the use cases call them once per batch.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from leadloop.events import EscalationRaised
from leadloop_sla_monitor.domain.firing import Advance
from leadloop_sla_monitor.domain.ladder import Clock
from leadloop_sla_monitor.domain.state import Decision, Fired, Scope, Snapshot

__all__ = ["AlertDue", "ClockRepository", "NoMetrics", "SlaMetrics", "UnitOfWork"]


@dataclass(frozen=True, slots=True)
class AlertDue:
    """A pending on-call delivery: the step, and how often sending it failed so far."""

    event: EscalationRaised
    attempts: int


class ClockRepository(Protocol):
    async def read(self, scope: Scope, now: datetime) -> Snapshot:
        """Mark ``scope.event_ids`` applied at ``now`` and return which were new, with
        the state of ``scope``'s leads: lead rows, latest touches, roster entries of
        the owners (``scope.rep_ids`` and the leads' owners), running clocks, and the
        clocks of ``scope.cycles`` and of the leads' latest touches. The clocks stay
        locked until the unit of work ends."""
        ...

    async def fired(self, escalation_ids: Sequence[str]) -> dict[str, Fired]:
        """The stored ``firing`` steps among ``escalation_ids``."""
        ...

    async def apply(
        self,
        decision: Decision,
        resolved: Sequence[EscalationRaised],
        paged: Sequence[EscalationRaised],
        now: datetime,
    ) -> int:
        """Save ``decision``'s rows and store ``resolved`` steps (once each;
        unpublished), queueing the ``paged`` ones for Alertmanager (a resolve only if
        its firing went there). Roster entries older than the stored one are ignored;
        returns how many were saved."""
        ...

    async def due(self, now: datetime, limit: int) -> list[Clock]:
        """Up to ``limit`` running clocks due by ``now``, earliest first, with the
        roster's current manager; locked, skipping clocks another worker holds."""
        ...

    async def record_fired(
        self,
        events: Sequence[EscalationRaised],
        advances: Sequence[Advance],
        paged: Sequence[EscalationRaised],
        now: datetime,
    ) -> None:
        """Store fired steps (once each, unpublished), queue the ``paged`` ones for
        Alertmanager, and advance the clocks."""
        ...

    async def unpublished(self, limit: int) -> list[EscalationRaised]:
        """Up to ``limit`` steps not yet published, oldest first; locked."""
        ...

    async def claim_unpublished(self, events: Sequence[EscalationRaised]) -> list[EscalationRaised]:
        """Those of ``events`` still unpublished, in their order; locked, skipping
        steps another transaction (the outbox drain) holds."""
        ...

    async def mark_published(self, events: Sequence[EscalationRaised]) -> None: ...

    async def alerts_due(self, now: datetime, limit: int) -> list[AlertDue]:
        """Up to ``limit`` on-call deliveries due by ``now``, in order; locked."""
        ...

    async def alerts_delivered(self, events: Sequence[EscalationRaised], now: datetime) -> None: ...

    async def alerts_failed(
        self, retries: Sequence[tuple[EscalationRaised, datetime]], reason: str
    ) -> None:
        """Count a failed attempt for each delivery and retry it at its time."""
        ...


class UnitOfWork(Protocol):
    def __call__(self) -> AbstractAsyncContextManager[ClockRepository]:
        """One transaction: committed when the block ends, rolled back on an error."""
        ...


class SlaMetrics(Protocol):
    """What the ticker counts (``adapters.metrics`` serves them on ``/metrics``)."""

    def clock_jumped(self, seconds: float) -> None:
        """A forward jump of the wall clock of ``seconds`` was seen."""
        ...

    def actions_held(self, reason: str, action: str, n: int) -> None:
        """``n`` taking steps of ``action`` were held back for ``reason``."""
        ...


class NoMetrics:
    """Counts nothing (tests that do not look, tools)."""

    def clock_jumped(self, seconds: float) -> None:
        pass

    def actions_held(self, reason: str, action: str, n: int) -> None:
        pass
