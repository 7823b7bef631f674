"""sla-monitor's use cases over a recording repository: one unit of work per batch,
decoding through the shared decoder, and a broker that does not acknowledge in time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from leadloop.calendar import CalendarSet
from leadloop.clock import FixedClock
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
    fired: list[tuple[tuple[EscalationRaised, ...], bool]] = field(default_factory=list)

    @asynccontextmanager
    async def __call__(self) -> AsyncIterator[ClockRepository]:
        self.units += 1
        yield _Repo(self)


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
        *,
        published: bool,
    ) -> None:
        self.log.fired.append((tuple(events), published))

    async def unpublished(self, limit: int) -> list[EscalationRaised]:
        return []

    async def mark_published(self, events: Sequence[EscalationRaised]) -> None:
        raise AssertionError("nothing to mark")

    async def alerts_due(self, now: datetime, limit: int) -> list[AlertDue]:
        return []

    async def alerts_delivered(self, events: Sequence[EscalationRaised], now: datetime) -> None:
        raise AssertionError("nothing delivered")

    async def alerts_failed(
        self, retries: Sequence[tuple[EscalationRaised, datetime]], reason: str
    ) -> None:
        raise AssertionError("nothing failed")


class Hanging:
    async def publish(self, messages: Sequence[OutMessage]) -> None:
        await asyncio.Event().wait()


def handler(uow: Recorded, publisher: Any = None, within: float = 10.0) -> SlaHandler:
    return SlaHandler(
        uow=uow,
        lifecycle=Lifecycle(POLICIES, ALWAYS),
        escalator=Escalator(POLICIES, ALWAYS),
        publisher=publisher or RecordingPublisher(),
        clock=FixedClock(at(60)),
        publish_within=within,
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
    applied = await handler(uow).handle(
        [("crm.activities", good.model_dump_json().encode()), ("crm.activities", b"{oops")]
    )
    assert applied == 1
    assert [s.event_ids for s in uow.scopes] == [(good.event_id,)]
    # One unit applies the batch, one finds the outbox empty.
    assert uow.units == 2


async def test_steps_the_broker_acknowledged_are_stored_published() -> None:
    uow = Recorded(due_clocks=[DUE])
    publisher = RecordingPublisher()
    assert await handler(uow, publisher).fire_due(at(H_AND_A_HALF)) == 2
    ((events, published),) = uow.fired
    assert published
    assert [m.key for m in publisher.messages] == [b"l1", b"l1"]
    assert [e.level for e in events] == [1, 2]


async def test_steps_the_broker_has_not_acknowledged_in_time_wait_in_the_outbox() -> None:
    uow = Recorded(due_clocks=[DUE])
    assert await handler(uow, Hanging(), within=0.05).fire_due(at(H_AND_A_HALF)) == 2
    ((events, published),) = uow.fired
    assert not published
    assert len(events) == 2
