"""What ingest's use cases need of their stores (``bootstrap`` wires the PostgreSQL
implementations, ``adapters.postgres`` and ``adapters.timeline_store``; unit tests hand
in fakes)."""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from datetime import datetime
from typing import Protocol

from leadloop_ingest.domain.dedupe import Decided, Known, Merge
from leadloop_ingest.domain.intake import LeadRecord, OutcomeRecord, Position
from leadloop_ingest.domain.replays import Reservation
from leadloop_ingest.domain.timeline import TimelineEvent, Unusable

__all__ = ["LeadBatch", "LeadRepository", "ReplayCache", "TimelineRepository"]


class LeadBatch(Protocol):
    """One batch's transaction, used in this order: ``outcomes`` (what a redelivery
    finds), ``known`` (locks the identity keys), ``insert_leads``, ``record``, ``leads``;
    all of it commits together or not at all."""

    async def outcomes(self, positions: Sequence[Position]) -> dict[Position, OutcomeRecord]:
        """The outcomes stored for these raw positions, read after locking the positions
        until the transaction ends (one writer per raw record, a zombie worker included)."""
        ...

    async def known(self, fresh: Decided) -> Known:
        """What is stored about the proposals' idempotency and identity keys, read after
        locking the identity keys until the transaction ends (one writer per person)."""
        ...

    async def insert_leads(self, leads: Sequence[LeadRecord]) -> set[str]:
        """Insert new leads; the ids that were inserted (a lead id stored already, by
        another partition's worker, is not)."""
        ...

    async def record(
        self, outcomes: Sequence[OutcomeRecord], merges: Sequence[tuple[Merge, datetime]]
    ) -> None:
        """Record merges with their time and the records' outcomes (each position once:
        one stored before is left as it is)."""
        ...

    async def leads(self, lead_ids: Sequence[str]) -> dict[str, LeadRecord]:
        """The stored leads of these ids."""
        ...


class LeadRepository(Protocol):
    def batch(self) -> AbstractAsyncContextManager[LeadBatch]:
        """A transaction, committed when the block ends without an exception."""
        ...


class TimelineRepository(Protocol):
    async def apply(
        self,
        events: Sequence[tuple[Position, TimelineEvent]],
        rejected: Sequence[Unusable],
        now: datetime,
    ) -> list[Unusable]:
        """Apply valid events once; store and return every rejection (the given ones and
        events of an unknown lead)."""
        ...


class ReplayCache(Protocol):
    """Signed requests already seen, shared by every ingest worker (``adapters.replay_cache``;
    unit tests hand in a dict). Every method raises when the store cannot be reached."""

    async def reserve(self, reservation: Reservation) -> bool:
        """True when the key was free (or its reservation had expired) and is now held;
        False when another delivery of the same request holds it."""
        ...

    async def release(self, reservation: Reservation) -> None:
        """Free the key again, if this reservation still holds it (the request failed on
        our side before it was accepted, so the sender's retry must get through)."""
        ...

    async def purge(self, now: datetime) -> int:
        """Remove reservations expired at ``now``; how many."""
        ...
