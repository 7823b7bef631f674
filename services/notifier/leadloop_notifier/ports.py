"""What the notifier's use cases need of their store (``bootstrap`` wires the PostgreSQL
implementation, ``adapters.postgres``)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from contextlib import AbstractAsyncContextManager
from datetime import date, datetime
from typing import Protocol

from leadloop_notifier.domain.model import Changes, EscalationStep, Lead, Notice, Rep, View
from leadloop_notifier.domain.sending import Batch, Row

__all__ = ["NotifierRepository", "NotifierTx"]


class NotifierTx(Protocol):
    """One transaction's reads and writes; all of them commit together."""

    # --- inputs ---------------------------------------------------------------------

    async def claim_events(self, event_ids: Sequence[str], now: datetime) -> set[str]:
        """The ids not applied before, now recorded as applied."""
        ...

    async def load_view(
        self,
        rep_ids: Iterable[str],
        lead_ids: Iterable[str],
        escalation_ids: Iterable[str],
        roster_ids: Iterable[str] = (),
    ) -> View:
        """What the fold needs to know of these reps, leads, steps and teams' rosters."""
        ...

    async def managers(self) -> dict[str, tuple[str, ...]]:
        """Every manager the roster names (the ``manager_id`` of a rep who has not left)
        and the teams of the reps they manage, sorted."""
        ...

    async def save(self, changes: Changes, now: datetime) -> int:
        """Persist a fold's changes; returns the outbox rows added."""
        ...

    async def add_notices(self, notices: Sequence[Notice], now: datetime) -> int:
        """Insert outbox rows; a row whose key exists already is left as it is."""
        ...

    # --- the sender -----------------------------------------------------------------

    async def candidates(
        self, now: datetime, limit: int, per_group: int, robots: Sequence[str]
    ) -> list[Row]:
        """Pending rows ready to be sent, locked for this transaction."""
        ...

    async def next_free(self, destinations: Iterable[str]) -> dict[str, datetime]:
        """When each destination may be sent to again (locked)."""
        ...

    async def set_next_free(self, free: Mapping[str, datetime]) -> None: ...

    async def lease(self, batches: Sequence[Batch], lease_s: float) -> None:
        """Reserve the batches' rows for this worker under their message ids."""
        ...

    async def contacts(self, rep_ids: Iterable[str]) -> dict[str, Mapping[str, str]]: ...

    async def read_names(
        self, lead_ids: Sequence[str], recipient: str, now: datetime
    ) -> dict[str, str]:
        """The names of leads not erased, each read recorded for ``recipient``."""
        ...

    async def mark_sent(self, batch: Batch, now: datetime, code: str) -> int: ...

    async def mark_retry(self, batch: Batch, not_before: datetime, code: str) -> None: ...

    async def mark_dead(self, batch: Batch, code: str) -> int: ...

    async def pending_by_channel(self) -> dict[str, int]: ...

    # --- retention ------------------------------------------------------------------

    async def forget(self, before: datetime, limit: int) -> int:
        """Delete up to ``limit`` rows of each kind that nothing can need again."""
        ...

    # --- the digest -----------------------------------------------------------------

    async def active_reps(self) -> list[Rep]: ...

    async def digests_made(self, day_by_rep: Mapping[str, date]) -> set[str]: ...

    async def digest_inputs(
        self, rep_id: str, day_end: datetime
    ) -> tuple[list[Lead], list[EscalationStep], list[tuple[str, datetime]]]: ...

    async def record_digest(self, rep_id: str, day: date, now: datetime) -> bool:
        """True when this pass made the rep's digest for ``day`` (once per rep and date)."""
        ...


class NotifierRepository(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[NotifierTx]:
        """A transaction, committed when the block ends without an exception."""
        ...
