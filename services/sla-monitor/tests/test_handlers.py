"""sla-monitor's use cases over a recording repository: one unit of work per batch,
decoding through the shared decoder, and fired steps committed before they are
published."""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from leadloop.calendar import CalendarSet
from leadloop.clock import FixedClock
from leadloop.decoding import Undecodable
from leadloop.events import ActivityRecorded, EscalationKind, EscalationRaised
from leadloop.messaging import OutMessage, RecordingPublisher
from leadloop_sla_monitor.domain.firing import Advance, Escalator
from leadloop_sla_monitor.domain.ladder import Clock, PolicySet
from leadloop_sla_monitor.domain.lifecycle import Lifecycle
from leadloop_sla_monitor.domain.state import Decision, Fired, Scope, Snapshot
from leadloop_sla_monitor.handlers import SlaHandler
from leadloop_sla_monitor.ports import AlertDue, ClockRepository

T0 = datetime(2025, 3, 3, 9, 0, tzinfo=UTC)
H_AND_A_HALF = 3600 + 1800
POLICIES = PolicySet.model_validate(
    {
        "policies": [
            {
                "policy_id": "fr-default",
                "kind": "first_response",
                "limit_seconds": 3600,
                "ladder": [
                    {"level": 1, "after_seconds": 0, "action": "remind_owner"},
                    {"level": 2, "after_seconds": 1800, "action": "notify_manager"},
                ],
            },
        ],
    }
)
DAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
ALWAYS = CalendarSet.model_validate(
    {
        "default": "always",
        "calendars": {"always": {"timezone": "UTC", "weekly": {d: ["00:00-24:00"] for d in DAYS}}},
    }
)


def at(seconds: float) -> datetime:
    return T0 + timedelta(seconds=seconds)


@dataclass
class Recorded:
    """A repository that records what the use cases save (nothing stored before)."""

    due_clocks: list[Clock] = field(default_factory=list)
    units: int = 0
    scopes: list[Scope] = field(default_factory=list)
    decisions: list[Decision] = field(default_factory=list)
    fired: list[tuple[EscalationRaised, ...]] = field(default_factory=list)
    #: What happened, in order: units begun and committed, steps stored, published, marked.
    journal: list[str] = field(default_factory=list)
    #: The outbox drain published every step first (the claim finds them taken).
    drained_first: bool = False

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[ClockRepository]:
        self.units += 1
        self.journal.append("begin")
        try:
            yield _Repo(self)
        except BaseException:
            self.journal.append("rollback")
            raise
        self.journal.append("commit")


@dataclass
class _Repo:
    log: Recorded

    async def read(self, scope: Scope, now: datetime) -> Snapshot:
        self.log.scopes.append(scope)
        return Snapshot(new_event_ids=frozenset(scope.event_ids))

    async def fired(self, escalation_ids: Sequence[str]) -> dict[str, Fired]:
        return {}

    async def apply(
        self,
        decision: Decision,
        resolved: Sequence[EscalationRaised],
        paged: Sequence[EscalationRaised],
        now: datetime,
    ) -> int:
        self.log.decisions.append(decision)
        return 0

    async def due(self, now: datetime, limit: int) -> list[Clock]:
        return self.log.due_clocks

    async def record_fired(
        self,
        events: Sequence[EscalationRaised],
        advances: Sequence[Advance],
        paged: Sequence[EscalationRaised],
        now: datetime,
    ) -> None:
        self.log.fired.append(tuple(events))
        self.log.journal.append(f"store {len(events)}")

    async def unpublished(self, limit: int) -> list[EscalationRaised]:
        return []

    async def claim_unpublished(self, events: Sequence[EscalationRaised]) -> list[EscalationRaised]:
        claimed = [] if self.log.drained_first else list(events)
        self.log.journal.append(f"claim {len(claimed)}")
        return claimed

    async def mark_published(self, events: Sequence[EscalationRaised]) -> None:
        self.log.journal.append(f"mark {len(events)}")

    async def alerts_due(self, now: datetime, limit: int) -> list[AlertDue]:
        return []

    async def alerts_delivered(self, events: Sequence[EscalationRaised], now: datetime) -> None:
        raise AssertionError("nothing delivered")

    async def alerts_failed(
        self, retries: Sequence[tuple[EscalationRaised, datetime]], reason: str
    ) -> None:
        raise AssertionError("nothing failed")


@dataclass
class Journaled:
    """A broker that notes each publish in the repository's journal, or refuses it."""

    journal: list[str]
    down: bool = False
    messages: list[OutMessage] = field(default_factory=list)

    async def publish(self, messages: Sequence[OutMessage]) -> None:
        if self.down:
            self.journal.append("publish failed")
            raise ConnectionError("broker down")
        self.journal.append(f"publish {len(messages)}")
        self.messages.extend(messages)


def handler(uow: Recorded, publisher: Any = None) -> SlaHandler:
    return SlaHandler(
        uow=uow,
        lifecycle=Lifecycle(POLICIES, ALWAYS),
        escalator=Escalator(POLICIES, ALWAYS),
        publisher=publisher or RecordingPublisher(),
        clock=FixedClock(at(60)),
    )


DUE = Clock(
    lead_id="l1",
    kind=EscalationKind.FIRST_RESPONSE,
    cycle="a-1",
    policy_id="fr-default",
    owner_id="rep-a",
    team_id="north",
    manager_id="mgr-1",
    started_at=T0,
    next_level=1,
)


async def test_a_batch_is_decoded_by_the_shared_decoder_and_applied_in_one_unit() -> None:
    uow = Recorded()
    good = ActivityRecorded(
        event_id="e-1", lead_id="l1", rep_id="rep-a", kind="call", occurred_at=at(60)
    )
    applied = await handler(uow).handle([("crm.activities", good.model_dump_json().encode())])
    assert applied == 1
    assert [s.event_ids for s in uow.scopes] == [(good.event_id,)]
    # One unit applies the batch, one finds the outbox empty.
    assert uow.units == 2


async def test_an_undecodable_record_raises_before_anything_is_applied() -> None:
    # The agent isolates the record and parks it on sla-monitor.dead-letter (leadloop.poison).
    uow = Recorded()
    good = ActivityRecorded(
        event_id="e-1", lead_id="l1", rep_id="rep-a", kind="call", occurred_at=at(60)
    )
    with pytest.raises(Undecodable):
        await handler(uow).handle(
            [("crm.activities", good.model_dump_json().encode()), ("crm.activities", b"{oops")]
        )
    assert uow.scopes == []
    assert uow.units == 0


async def test_fired_steps_are_committed_before_they_reach_the_broker() -> None:
    uow = Recorded(due_clocks=[DUE])
    publisher = Journaled(uow.journal)
    assert await handler(uow, publisher).fire_due(at(H_AND_A_HALF)) == 2
    assert uow.journal == [
        *("begin", "store 2", "commit"),
        *("begin", "claim 2", "publish 2", "mark 2", "commit"),
    ]
    assert [m.key for m in publisher.messages] == [b"l1", b"l1"]
    (events,) = uow.fired
    assert [e.level for e in events] == [1, 2]


async def test_steps_the_outbox_drain_took_first_are_not_published_again() -> None:
    uow = Recorded(due_clocks=[DUE], drained_first=True)
    publisher = Journaled(uow.journal)
    assert await handler(uow, publisher).fire_due(at(H_AND_A_HALF)) == 2
    assert uow.journal == [*("begin", "store 2", "commit"), *("begin", "claim 0", "commit")]
    assert publisher.messages == []


async def test_a_broker_that_refuses_leaves_the_stored_steps_unmarked_in_the_outbox() -> None:
    """A step never reaches the topic without being stored; one the broker refused
    stays unpublished for the outbox."""
    uow = Recorded(due_clocks=[DUE])
    try:
        await handler(uow, Journaled(uow.journal, down=True)).fire_due(at(H_AND_A_HALF))
    except ConnectionError:
        pass
    else:
        raise AssertionError("the broker's refusal must reach the caller")
    assert uow.journal == [
        *("begin", "store 2", "commit"),
        *("begin", "claim 2", "publish failed", "rollback"),
    ]
