"""What a transaction of assignment writes, worked out before anything is written.

Both use cases end in one ``Changes``: first decisions (``decide_first``) and every
move after them (``decide_moves``, which also frees the capacity of won/lost leads).
The repository applies it as it is, in one statement; no rule lives there.

Rep load is a count of a rep's open leads. It changes by steps, never by being set:
a rep gets a lead (+1), loses one to a move (-1), or sees one won or lost (-1). Those
steps are what ``Changes.load`` holds, so a rep outside the state a batch read (a rep
the roster moved out of every team, who still owns leads) keeps an honest count.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime
from typing import TypeVar

from leadloop.events import LeadAccepted, LeadAssigned
from leadloop_assignment.domain.moves import HeldLead, Takeback, move_events, plan_moves
from leadloop_assignment.domain.planning import assigned_event, plan
from leadloop_assignment.domain.routing import Decision, RoutingState
from leadloop_assignment.domain.rules import RuleSet

__all__ = [
    "Changes",
    "LoadStep",
    "Outcome",
    "Placed",
    "Recorded",
    "decide_first",
    "decide_moves",
    "released",
]

K = TypeVar("K", bound=Hashable)


@dataclass(frozen=True, slots=True)
class Recorded:
    """A decision as kept in ``assignments``: its event, its record (the reason, for
    people and the dry run) and the input event that caused it."""

    event: LeadAssigned
    record: Mapping[str, object]
    cause: str


@dataclass(frozen=True, slots=True)
class Placed:
    """A decided lead's place now, kept for later moves."""

    lead_id: str
    team_id: str
    rule_id: str
    owner_id: str | None
    #: Moves this change adds to the lead's count.
    moves: int = 0
    #: The lead itself, on its first decision (a move keeps the one stored).
    lead: LeadAccepted | None = None


@dataclass(frozen=True, slots=True)
class LoadStep:
    """How a rep's load changes."""

    #: The team the rep takes leads for (a rep who only lost leads keeps the stored one).
    team_id: str
    #: Open leads gained, minus those taken away, won or lost.
    opened: int = 0
    #: Leads assigned (a running total: only grows).
    assigned: int = 0


@dataclass(frozen=True, slots=True)
class Changes:
    now: datetime
    recorded: tuple[Recorded, ...] = ()
    placed: tuple[Placed, ...] = ()
    #: team_id → the rep a rotation served last (only the cursors that moved).
    cursors: Mapping[str, str] = field(default_factory=dict)
    load: Mapping[str, LoadStep] = field(default_factory=dict)
    #: Growth of the daily intake and of the weighted counts (both only grow).
    intake: Mapping[tuple[str, date], int] = field(default_factory=dict)
    weighted: Mapping[tuple[str, str, str], int] = field(default_factory=dict)
    #: (lead_id, rep_id, until): reps who may not get the lead back before ``until``.
    cooldowns: tuple[tuple[str, str, datetime], ...] = ()

    def __bool__(self) -> bool:
        return bool(self.recorded or self.load or self.cooldowns)


@dataclass(frozen=True, slots=True)
class Outcome:
    events: list[LeadAssigned]
    changes: Changes
    #: Escalations that moved nothing, with why (stale owner, closed lead).
    ignored: list[tuple[str, str]] = field(default_factory=list)


def decide_first(
    leads: Sequence[LeadAccepted],
    rules: RuleSet,
    state: RoutingState,
    now: datetime,
    *,
    closed: frozenset[str] = frozenset(),
) -> Outcome:
    """First decisions of ``leads`` (each once), and what they change. A lead in
    ``closed`` was won or lost before we decided it (the CRM was quicker): it is
    decided as any other, and its owner's load does not grow."""
    decisions, after = plan(leads, rules, state, now)
    by_id = {lead.lead_id: lead for lead in leads}
    events = [assigned_event(d, by_id[d.lead_id]) for d in decisions]
    changes = Changes(
        now=now,
        recorded=tuple(
            Recorded(e, d.record(), by_id[d.lead_id].event_id)
            for d, e in zip(decisions, events, strict=True)
        ),
        placed=tuple(
            Placed(d.lead_id, d.team_id, d.rule_id, d.owner_id, lead=by_id[d.lead_id])
            for d in decisions
        ),
        load=_load(decisions, rules, closed=closed),
        cursors=_moved(state.cursors, after.cursors),
        intake=_growth(state.intake, after.intake),
        weighted=_growth(state.weighted, after.weighted),
    )
    return Outcome(events, changes)


def released(state: RoutingState, owners: Iterable[str]) -> RoutingState:
    """The state after the listed reps each saw one open lead won or lost."""
    load = dict(state.load)
    for rep in owners:
        load[rep] = max(load.get(rep, 0) - 1, 0)
    return replace(state, load=load)


def decide_moves(
    rules: RuleSet,
    state: RoutingState,
    now: datetime,
    *,
    takebacks: Sequence[Takeback] = (),
    held: Sequence[HeldLead] = (),
    closed_owners: Sequence[str] = (),
) -> Outcome:
    """Every move due now (``plan_moves``), after the won or lost leads of
    ``closed_owners`` (one entry per lead) freed their owners' capacity."""
    before = released(state, closed_owners)
    moves = plan_moves(rules=rules, state=before, now=now, takebacks=takebacks, held=held)
    events = move_events(moves.decisions, held)
    count = Counter(e.lead_id for e in events)
    last = {e.lead_id: e for e in events}  # a lead's place after this pass
    load = _load(moves.decisions, rules)
    for rep, n in Counter(closed_owners).items():
        step = load.get(rep, LoadStep(_team_of(rep, rules) or ""))
        load[rep] = replace(step, opened=step.opened - n)
    changes = Changes(
        now=now,
        recorded=tuple(
            # A move's cause is not one input event (a pass moves many leads): the
            # assignment id keeps the (cause, kind) key unique.
            Recorded(e, d.record(), e.assignment_id)
            for d, e in zip(moves.decisions, events, strict=True)
        ),
        placed=tuple(
            Placed(lead_id, e.team_id, e.rule_id, e.owner_id, moves=count[lead_id])
            for lead_id, e in last.items()
        ),
        load=load,
        cooldowns=tuple(moves.cooldowns),
        cursors=_moved(before.cursors, moves.state.cursors),
        intake=_growth(before.intake, moves.state.intake),
        weighted=_growth(before.weighted, moves.state.weighted),
    )
    return Outcome(events, changes, moves.ignored)


def _load(
    decisions: Sequence[Decision], rules: RuleSet, *, closed: frozenset[str] = frozenset()
) -> dict[str, LoadStep]:
    load: dict[str, LoadStep] = {}
    for d in decisions:
        if d.released is not None:
            gone = d.released
            step = load.get(gone, LoadStep(_team_of(gone, rules) or d.team_id))
            load[gone] = replace(step, opened=step.opened - 1)
        if d.owner_id is not None:
            step = load.get(d.owner_id, LoadStep(d.team_id))
            opened = 0 if d.lead_id in closed else 1
            load[d.owner_id] = LoadStep(d.team_id, step.opened + opened, step.assigned + 1)
    return load


def _team_of(rep_id: str, rules: RuleSet) -> str | None:
    found = rules.rep(rep_id)
    return found[0].team_id if found else None


def _moved(before: Mapping[str, str], after: Mapping[str, str]) -> dict[str, str]:
    return {team: rep for team, rep in after.items() if before.get(team) != rep}


def _growth(before: Mapping[K, int], after: Mapping[K, int]) -> dict[K, int]:
    """How much each count grew (counts only grow within a batch)."""
    return {k: v - before.get(k, 0) for k, v in after.items() if v != before.get(k, 0)}
