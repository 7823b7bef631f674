"""Assignment's use cases, each over one transaction of the unit of work.

- ``AssignmentHandler``: leads.accepted → lock the teams the leads may go to → read →
  decide (``domain.changes.decide_first``) → apply → publish the first decision of
  every lead (a redelivered lead's is read back unchanged).
- ``ChangeHandler``: crm.reps, crm.stage-changes and sla.escalations → roster, closed
  leads and escalations under every team's lock → read → every move due (departed
  reps, the pool) → apply → publish the moves from the table; its ``tick`` drains pools
  as time makes reps eligible (working hours begin, a new day lifts a daily cap) and
  publishes moves a stopped worker left.

Events go out after the commit and are then marked published; a worker that stops in
between leaves them to ``tick`` (the outbox), so every decision reaches the topic.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from leadloop.clock import Clock
from leadloop.db import retrying
from leadloop.decoding import InputDecoder
from leadloop.events import (
    EscalationAction,
    EscalationRaised,
    EscalationStatus,
    LeadAccepted,
    LeadAssigned,
    RepUpdated,
    Stage,
    StageChanged,
)
from leadloop.faults import fault_point
from leadloop.logging import get_logger
from leadloop.messaging import Publisher, event_message
from leadloop_assignment.domain.changes import decide_first, decide_moves
from leadloop_assignment.domain.moves import Takeback, departed_reps
from leadloop_assignment.domain.planning import full_scope, state_scope
from leadloop_assignment.domain.rules import RosterEntry, RuleSet, with_roster
from leadloop_assignment.ports import Closing, DecidedElsewhere, ReadScope, UnitOfWork

__all__ = ["LEADS_TOPIC", "AssignmentHandler", "ChangeHandler", "ScopeChanged"]

log = get_logger(__name__)

#: The topic of first decisions; assignment's other inputs are changes.
LEADS_TOPIC = LeadAccepted.topic

#: Attempts at a batch whose leads another worker decided concurrently.
_ATTEMPTS = 3

#: Escalation actions that move the lead (the others are for people and paging).
_MOVING = frozenset({EscalationAction.REASSIGN, EscalationAction.RETURN_TO_POOL})

#: A move not published this long after its commit was left by a stopped worker.
_ORPHANED_AFTER = timedelta(seconds=10)


class ScopeChanged(Exception):
    """The roster moved a rep between reading it and locking the teams: try again."""


def _inputs() -> InputDecoder:
    return InputDecoder("assignment")


@dataclass
class AssignmentHandler:
    store: UnitOfWork
    publisher: Publisher
    clock: Clock
    #: The rule set in force now (reloaded live by the adapter).
    rules: Callable[[], RuleSet]
    inputs: InputDecoder = field(default_factory=_inputs)
    #: ``with_roster`` for the last rule set and roster (both compared, the rule set by
    #: identity: the rule file hands out one object until it changes).
    _merged: tuple[RuleSet, list[RosterEntry], RuleSet] | None = None

    async def handle(self, values: Sequence[bytes]) -> list[LeadAssigned]:
        leads = [
            lead
            for v in values
            if isinstance(lead := self.inputs.decode(LEADS_TOPIC, v), LeadAccepted)
        ]
        if not leads:
            return []
        rules = self.rules()
        now = self.clock.now()
        events = await retrying(lambda: self.assign(leads, rules, now), what="assign_batch")
        fault_point("assignment.after_commit")  # tests only: committed, nothing published yet
        await self.publisher.publish([event_message(e, key=e.lead_id) for e in events])
        await retrying(
            lambda: _published(self.store, events, self.clock.now()), what="assignment_published"
        )
        return events

    async def assign(
        self, leads: Sequence[LeadAccepted], rules: RuleSet, now: datetime
    ) -> list[LeadAssigned]:
        """The first-assignment event of every lead: new ones decided now, earlier ones
        read back unchanged."""
        for attempt in range(1, _ATTEMPTS + 1):
            try:
                return await self._assign(leads, rules, now)
            except (DecidedElsewhere, ScopeChanged) as exc:
                # Nothing of this attempt was kept; the next one finds the other worker's
                # decision in the table, or locks the right teams.
                if attempt == _ATTEMPTS:
                    raise
                log.warning("assign_conflict_retry", attempt=attempt, why=type(exc).__name__)
        raise AssertionError("unreachable")

    async def _assign(
        self, leads: Sequence[LeadAccepted], rules: RuleSet, now: datetime
    ) -> list[LeadAssigned]:
        lead_ids = [lead.lead_id for lead in leads]
        async with self.store.transaction() as repo:
            # Which teams to lock is a guess from the roster read before the locks; the
            # roster read under the locks decides (roster changes take every team's lock).
            guess = await repo.roster()
            guessed = self._with_roster(rules, guess)
            locked = state_scope(leads, guessed, now)
            # Lock first, then look for earlier decisions: a worker that lost these
            # partitions mid-transaction may still be deciding the same leads under the
            # same locks, and its commit is visible to the statements after them.
            cursors = await repo.lock(locked.teams)
            read = await repo.read(ReadScope(state=locked, now=now, leads=lead_ids))
            merged = guessed if read.roster == guess else self._with_roster(rules, read.roster)
            scope = locked if merged is guessed else state_scope(leads, merged, now)
            if not set(scope.teams) <= set(locked.teams):
                raise ScopeChanged
            # A lead can appear twice in one batch after a producer retry.
            todo = list({x.lead_id: x for x in leads if x.lead_id not in read.decided}.values())
            fresh: dict[str, LeadAssigned] = {}
            if todo:
                state = read.state
                if scope != locked:  # the roster changed since the guess: read its scope
                    state = (await repo.read(ReadScope(state=scope, now=now))).state
                outcome = decide_first(
                    todo, merged, replace(state, cursors=cursors), now, closed=read.closed
                )
                await repo.apply(outcome.changes)
                fresh = {e.lead_id: e for e in outcome.events}
            fault_point("assignment.before_commit")  # tests only: everything written, no commit
        return [read.decided.get(x) or fresh[x] for x in lead_ids]

    def _with_roster(self, rules: RuleSet, roster: list[RosterEntry]) -> RuleSet:
        cached = self._merged
        if cached is not None and cached[0] is rules and cached[1] == roster:
            return cached[2]
        merged = with_roster(rules, roster)
        self._merged = (rules, roster, merged)
        return merged


@dataclass(frozen=True)
class ChangeHandler:
    store: UnitOfWork
    publisher: Publisher
    clock: Clock
    rules: Callable[[], RuleSet]
    inputs: InputDecoder = field(default_factory=_inputs)

    @property
    def topics(self) -> tuple[str, ...]:
        """The registry topics this handler reads: every input but the accepted leads."""
        return tuple(t for t in self.inputs.topics if t != LEADS_TOPIC)

    async def handle(self, batch: Sequence[tuple[str, bytes]]) -> list[LeadAssigned]:
        reps: list[RepUpdated] = []
        closings: list[Closing] = []
        takebacks: list[Takeback] = []
        for event in self.inputs.decode_all(batch):
            if isinstance(event, RepUpdated):
                reps.append(event)
            elif isinstance(event, StageChanged) and event.stage in (Stage.WON, Stage.LOST):
                closings.append((event.lead_id, event.occurred_at))
            elif (
                isinstance(event, EscalationRaised)
                and event.status is EscalationStatus.FIRING
                and event.action in _MOVING
            ):
                takebacks.append(
                    Takeback(event.lead_id, event.owner_id, event.action, event.event_id)
                )
        if not (reps or closings or takebacks):
            return []
        rules = self.rules()
        now = self.clock.now()
        events = await retrying(
            lambda: self.maintain(rules, now, reps=reps, closings=closings, takebacks=takebacks),
            what="assignment_changes",
        )
        await self._publish(events)
        return events

    async def tick(self) -> list[LeadAssigned]:
        """Drain the pools when someone may have become eligible with time, and publish
        moves a stopped worker committed but did not publish."""
        now = self.clock.now()
        orphans = await retrying(
            lambda: _unpublished(self.store, now - _ORPHANED_AFTER), what="assignment_outbox"
        )
        await self._publish(orphans)
        rules = self.rules()
        if not await retrying(lambda: _moves_pending(self.store, rules), what="pool_check"):
            return orphans
        events = await retrying(lambda: self.maintain(rules, now), what="pool_drain")
        await self._publish(events)
        return orphans + events

    async def maintain(
        self,
        rules: RuleSet,
        now: datetime,
        *,
        reps: Sequence[RepUpdated] = (),
        closings: Sequence[Closing] = (),
        takebacks: Sequence[Takeback] = (),
    ) -> list[LeadAssigned]:
        """Apply roster changes, won/lost leads and escalations, then every move due now
        (departed reps' leads, the pool). Returns the moves' events, to publish, after
        any earlier event of a moved lead a stopped worker left unpublished."""
        async with self.store.transaction() as repo:
            teams = {t.team_id for t in rules.teams} | {r.team_id for r in reps}
            teams |= await repo.roster_teams()
            cursors = await repo.lock(sorted(teams))
            if reps:
                await repo.record_roster(reps)
            closed_owners = await repo.close(closings, now) if closings else []
            takebacks = await repo.unapplied(takebacks, now)
            merged = with_roster(rules, await repo.roster())
            read = await repo.read(
                ReadScope(
                    state=full_scope(merged, now),
                    now=now,
                    named=[tb.lead_id for tb in takebacks],
                    owners=sorted(departed_reps(merged)),
                    pools=sorted(teams),
                )
            )
            outcome = decide_moves(
                merged,
                replace(read.state, cursors=cursors),
                now,
                takebacks=takebacks,
                held=read.held,
                closed_owners=closed_owners,
            )
            for escalation_id, why in outcome.ignored:
                log.info("escalation_moves_nothing", escalation_id=escalation_id, why=why)
            await repo.apply(outcome.changes)
            if not outcome.events:
                return []
            new = {e.assignment_id for e in outcome.events}
            # A moved lead's earlier events a stopped worker left unpublished go first.
            earlier = await repo.unpublished(leads=sorted({e.lead_id for e in outcome.events}))
        return [e for e in earlier if e.assignment_id not in new] + outcome.events

    async def _publish(self, events: Sequence[LeadAssigned]) -> None:
        if not events:
            return
        await self.publisher.publish([event_message(e, key=e.lead_id) for e in events])
        await retrying(
            lambda: _published(self.store, events, self.clock.now()), what="assignment_published"
        )


async def _published(store: UnitOfWork, events: Sequence[LeadAssigned], now: datetime) -> None:
    async with store.connection() as repo:
        await repo.published(events, now)


async def _unpublished(store: UnitOfWork, older_than: datetime) -> list[LeadAssigned]:
    async with store.connection() as repo:
        return await repo.unpublished(older_than=older_than)


async def _moves_pending(store: UnitOfWork, rules: RuleSet) -> bool:
    """Whether a pass of ``maintain`` may move something: a lead waits in a pool or a
    departed rep still owns open leads (cheap, without locks)."""
    async with store.connection() as repo:
        departed = departed_reps(with_roster(rules, await repo.roster()))
        return await repo.waiting(sorted(departed))
