"""The notifier's state and what it produces, as plain values.

The roster (:class:`Rep`), the leads it has seen (:class:`Lead`), the escalation steps
(:class:`EscalationStep`), outbox rows (:class:`Notice`, :class:`OutboxRef`), the
:class:`View` a batch reads and the :class:`Changes` it leaves to persist. They live
apart from the rules that make them (``fold``, ``digest``, ``alerts``) so that every
rule and the postgres adapter, which loads and stores them, share one definition.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from leadloop.events import Stage

__all__ = [
    "CLOSED_STAGES",
    "HELD",
    "KINDS",
    "LEAD_FACTS",
    "Changes",
    "EscalationStep",
    "Lead",
    "Notice",
    "OutboxRef",
    "Rep",
    "View",
]

#: Notice kinds: a closed list (metric label values, template names).
KINDS = (
    "new_lead",
    "pooled_lead",
    "remind_owner",
    "reclaim_warning",
    "notify_manager",
    "resolved",
    "node_reminder",
    "digest",
    "alert",
    "review",
)
#: Lead facts a notice may show: leads.accepted's routing attributes, none of them
#: personal. Company, email and phone are never read by the notifier; the name only at
#: send time for a team with ``include_name`` (never into a payload or the outbox).
LEAD_FACTS = ("source", "city", "region", "country", "industry", "product", "priority")
CLOSED_STAGES = frozenset({Stage.WON.value, Stage.LOST.value})
#: The channel of a notice held for a rep the roster does not know yet (never sent).
HELD = ""


@dataclass(frozen=True, slots=True)
class Rep:
    rep_id: str
    team_id: str
    manager_id: str | None
    status: str
    timezone: str
    contacts: Mapping[str, str]
    updated_at: datetime


@dataclass(frozen=True, slots=True)
class Lead:
    lead_id: str
    facts: Mapping[str, str]
    owner_id: str | None = None
    team_id: str | None = None
    sequence: int = -1
    assigned_at: datetime | None = None
    stage: str = "new"
    stage_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class EscalationStep:
    escalation_id: str
    lead_id: str
    owner_id: str | None
    team_id: str
    action: str
    due_at: datetime
    breached_at: datetime
    status: str
    resolved_at: datetime | None = None


@dataclass(frozen=True, slots=True)
class OutboxRef:
    """An existing outbox row of a firing step: what a resolution needs to know."""

    recipient: str
    channel: str
    status: str  # pending | sent | dead | cancelled
    in_flight: bool  # leased by a sender right now
    fallbacks: tuple[str, ...]
    team_id: str


@dataclass(frozen=True, slots=True)
class Notice:
    """One outbox row: a notice for one recipient on one channel."""

    notice_key: str
    recipient: str
    channel: str
    kind: str
    team_id: str
    lead_id: str | None
    payload: Mapping[str, Any]
    fallbacks: tuple[str, ...]
    origin_at: datetime
    due_at: datetime
    coalesce_s: float

    @property
    def key(self) -> tuple[str, str, str]:
        return (self.notice_key, self.recipient, self.channel)


@dataclass
class View:
    """The state a batch needs, loaded by the caller (missing entries: not seen yet)."""

    reps: dict[str, Rep] = field(default_factory=dict)
    leads: dict[str, Lead] = field(default_factory=dict)
    steps: dict[str, EscalationStep] = field(default_factory=dict)
    #: escalation_id -> the outbox rows of its firing notice.
    notified: dict[str, list[OutboxRef]] = field(default_factory=dict)
    #: rep_id -> notices held for that rep (not in the roster when they were made).
    held: dict[str, list[Notice]] = field(default_factory=dict)
    #: The managers the roster names (``manager_id`` of a rep who has not left) -> the
    #: teams of the reps they manage, sorted. Loaded only for a batch that needs them.
    managers: dict[str, tuple[str, ...]] = field(default_factory=dict)


@dataclass
class Changes:
    reps: dict[str, Rep] = field(default_factory=dict)
    leads: dict[str, Lead] = field(default_factory=dict)
    steps: dict[str, EscalationStep] = field(default_factory=dict)
    notices: list[Notice] = field(default_factory=list)
    #: Pending rows to cancel: exact keys, ...
    cancel_keys: list[tuple[str, str, str]] = field(default_factory=list)
    #: ... and every pending node reminder of these leads (the lead moved on).
    cancel_node_reminders: list[str] = field(default_factory=list)
    #: Held rows now routed to a channel (replaced by the routed notices).
    released: list[tuple[str, str, str]] = field(default_factory=list)
