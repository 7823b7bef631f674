"""What the monitor knows of a lead, and the rows the clock lifecycle reads and writes.

A ``Snapshot`` is the state of a batch's leads before the batch; a ``Decision`` holds
the rows the batch changes, each in its final state. Plain values: the repository
(``ports.ClockRepository``) loads and saves them, ``lifecycle.Lifecycle`` decides them.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from leadloop.events import (
    ActivityRecorded,
    EscalationKind,
    LeadAccepted,
    LeadAssigned,
    Priority,
    RepUpdated,
    Stage,
    StageChanged,
)
from leadloop_sla_monitor.domain.ladder import Clock
from leadloop_sla_monitor.domain.policies import LeadFacts

__all__ = [
    "ClockKey",
    "ClockState",
    "Decision",
    "Fired",
    "Input",
    "LeadState",
    "Rep",
    "Scope",
    "Snapshot",
    "Touch",
    "scope_of",
]

Input = LeadAssigned | ActivityRecorded | StageChanged | LeadAccepted | RepUpdated

#: (lead_id, kind, cycle): one clock.
ClockKey = tuple[str, EscalationKind, str]


@dataclass(frozen=True, slots=True)
class LeadState:
    """What the monitor knows of a lead (``sla_leads``)."""

    lead_id: str
    source: str | None = None
    priority: Priority | None = None
    team_id: str | None = None
    owner_id: str | None = None
    stage: Stage = Stage.NEW
    stage_changed_at: datetime | None = None
    closed_at: datetime | None = None

    def facts(self) -> LeadFacts:
        return LeadFacts(
            priority=self.priority, source=self.source, team_id=self.team_id, stage=self.stage
        )


@dataclass(frozen=True, slots=True)
class Touch:
    """A lead's latest touch (``sla_lead_touches``): it may arrive before the assignment
    it answers, and must still stop that clock."""

    last_touch_at: datetime
    next_followup_at: datetime | None = None
    touch_event_id: str | None = None


@dataclass(frozen=True, slots=True)
class Rep:
    """A roster entry (``sla_reps``): the newest entry per rep wins."""

    rep_id: str
    team_id: str
    manager_id: str | None
    status: str
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class ClockState:
    """A clock row (``sla_clocks``): the clock, when its next slot is due, and whether
    and why it stopped."""

    clock: Clock
    due_at: datetime
    stopped_at: datetime | None = None
    stop_reason: str | None = None

    @property
    def key(self) -> ClockKey:
        return (self.clock.lead_id, self.clock.kind, self.clock.cycle)

    @property
    def running(self) -> bool:
        return self.stopped_at is None


@dataclass(frozen=True, slots=True)
class Scope:
    """What a batch needs read: its new event ids, its leads, the owners it assigns, and
    the cycles it may start (so an existing clock of such a cycle is known)."""

    event_ids: tuple[str, ...]
    lead_ids: tuple[str, ...]
    rep_ids: tuple[str, ...]
    cycles: tuple[str, ...]


@dataclass(frozen=True, slots=True)
class Snapshot:
    """State before a batch: which of its event ids are new, and for its leads the
    lead, latest touch, owners' roster entries, running clocks and clocks of its
    cycles."""

    new_event_ids: frozenset[str] = frozenset()
    leads: Mapping[str, LeadState] = field(default_factory=dict)
    touches: Mapping[str, Touch] = field(default_factory=dict)
    reps: Mapping[str, Rep] = field(default_factory=dict)
    clocks: Mapping[ClockKey, ClockState] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Fired:
    """A stored ``firing`` step, as much as resolving it needs."""

    breached_at: datetime
    manager_id: str | None


@dataclass(frozen=True, slots=True)
class Decision:
    """The rows a batch changes, each in its final state, and the clocks it stopped
    after they fired (to resolve). ``applied``: lead events applied for the first time."""

    applied: int
    leads: tuple[LeadState, ...] = ()
    touches: tuple[tuple[str, Touch], ...] = ()
    #: The newest roster entry per rep in the batch (an older one than stored loses).
    reps: tuple[Rep, ...] = ()
    clocks: tuple[ClockState, ...] = ()
    stopped: tuple[Clock, ...] = ()


def scope_of(inputs: Sequence[Input]) -> Scope:
    """What ``inputs`` need read."""
    event_ids: dict[str, None] = {}
    leads: dict[str, None] = {}
    reps: dict[str, None] = {}
    cycles: dict[str, None] = {}
    for e in inputs:
        if isinstance(e, RepUpdated):
            continue
        event_ids[e.event_id] = None
        leads[e.lead_id] = None
        cycles[e.event_id] = None
        if isinstance(e, LeadAssigned):
            cycles[e.assignment_id] = None
            if e.owner_id is not None:
                reps[e.owner_id] = None
    return Scope(tuple(event_ids), tuple(leads), tuple(reps), tuple(cycles))
