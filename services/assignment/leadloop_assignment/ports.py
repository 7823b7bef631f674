"""What assignment's use cases need from storage: a unit of work that hands out a
repository scoped to one transaction.

The repository only loads and saves. Its routing state (rotation cursors, rep load,
daily intake, weighted counts) is read by one bulk ``read(scope)`` and written by one
``apply(changes)``; the decisions and what they change are worked out in the domain in
between (``domain.changes``).

Locking contract: ``lock(teams)`` locks the teams' rotation cursors for the rest of the
transaction, always in team order, so two transactions never deadlock. A team's lock
guards all of its state (its reps' load, intake and weighted counts); the roster and
closing won/lost leads are changed only under every team's lock.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from leadloop.events import LeadAssigned, RepUpdated
from leadloop_assignment.domain.changes import Changes
from leadloop_assignment.domain.moves import HeldLead, Takeback
from leadloop_assignment.domain.planning import StateScope
from leadloop_assignment.domain.routing import RoutingState
from leadloop_assignment.domain.rules import RosterEntry

__all__ = [
    "AssignmentRepository",
    "Closing",
    "DecidedElsewhere",
    "ReadScope",
    "Snapshot",
    "UnitOfWork",
]

#: A won or lost lead: (lead_id, when).
Closing = tuple[str, datetime]


class DecidedElsewhere(Exception):
    """``apply`` found a lead of the batch decided by another worker under other locks
    (it ran an older or newer rule set, whose teams differ). Nothing of the transaction
    is kept; the next attempt finds that decision in ``read``."""


@dataclass(frozen=True, slots=True)
class ReadScope:
    """What one ``read`` returns besides the roster."""

    #: The routing state to read (load, intake and weighted counts of its reps).
    state: StateScope
    now: datetime
    #: First decisions: the batch's leads (which were decided or closed before).
    leads: Sequence[str] = ()
    #: Moves: the open leads named, those of these owners, and these teams' pools.
    named: Sequence[str] = ()
    owners: Sequence[str] = ()
    pools: Sequence[str] = ()


@dataclass(frozen=True, slots=True)
class Snapshot:
    roster: list[RosterEntry]
    #: Routing state of the scope, with the cooldowns of the held leads (no cursors:
    #: ``lock`` returns those).
    state: RoutingState
    #: lead_id → its first decision, for the scope's leads decided before.
    decided: dict[str, LeadAssigned] = field(default_factory=dict)
    #: The scope's leads already won or lost.
    closed: frozenset[str] = frozenset()
    #: Open leads a move may touch (each pool hottest, then oldest, first, a few
    #: hundred at most per team and pass).
    held: list[HeldLead] = field(default_factory=list)


class AssignmentRepository(Protocol):
    async def roster(self) -> list[RosterEntry]:
        """The roster (``crm.reps``), by rep id."""
        ...

    async def roster_teams(self) -> set[str]:
        """Teams the roster names."""
        ...

    async def lock(self, teams: Sequence[str]) -> dict[str, str]:
        """Lock the teams (sorted); returns the cursors that are set."""
        ...

    async def read(self, scope: ReadScope) -> Snapshot: ...

    async def apply(self, changes: Changes) -> None:
        """Write the changes; raises ``DecidedElsewhere`` (see there)."""
        ...

    async def record_roster(self, reps: Sequence[RepUpdated]) -> None:
        """Roster entries move forward in ``updated_at`` only: a replayed or reordered
        older entry changes nothing."""
        ...

    async def close(self, closings: Sequence[Closing], now: datetime) -> list[str]:
        """Mark won/lost leads closed, once; returns the owners of the open leads it
        closed (one per lead). A lead not decided yet is remembered as closed."""
        ...

    async def unapplied(self, takebacks: Sequence[Takeback], now: datetime) -> list[Takeback]:
        """The escalations not applied before, now marked applied."""
        ...

    async def unpublished(
        self,
        *,
        leads: Sequence[str] | None = None,
        older_than: datetime | None = None,
        limit: int = 500,
    ) -> list[LeadAssigned]:
        """Decisions whose events are not on the topic yet, in each lead's order: of
        ``leads``, or committed before ``older_than``."""
        ...

    async def published(self, events: Sequence[LeadAssigned], now: datetime) -> None: ...

    async def waiting(self, departed: Sequence[str]) -> bool:
        """Whether an open lead waits in a pool or is owned by one of ``departed``."""
        ...


class UnitOfWork(Protocol):
    def transaction(self) -> AbstractAsyncContextManager[AssignmentRepository]:
        """A repository in a transaction, committed when the block ends without an
        exception and rolled back otherwise."""
        ...

    def connection(self) -> AbstractAsyncContextManager[AssignmentRepository]:
        """A repository outside a transaction (each statement commits), for reads
        that need no locks and for marking events published."""
        ...
