"""sla-monitor's use cases: apply input events, fire due steps, drain the outboxes.

Each use case is one unit of work (``ports.UnitOfWork``): load what a batch needs,
let the domain decide (``domain.lifecycle``, ``domain.firing``), save the result. The
round trips per batch are fixed, whatever its size.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from functools import partial
from typing import Any

from leadloop.clock import Clock
from leadloop.db import retrying
from leadloop.decoding import InputDecoder
from leadloop.events import EscalationAction, EscalationRaised
from leadloop.logging import get_logger
from leadloop.messaging import Publisher, event_message
from leadloop_sla_monitor.domain.alerts import Alerting, DeliveryFailed, alert_payload, retry_delay
from leadloop_sla_monitor.domain.firing import Escalator, HeldStep
from leadloop_sla_monitor.domain.lifecycle import Lifecycle
from leadloop_sla_monitor.domain.restraint import Gate, Restraint
from leadloop_sla_monitor.domain.state import Input, scope_of
from leadloop_sla_monitor.ports import NoMetrics, SlaMetrics, UnitOfWork

__all__ = ["FIRE_BATCH", "FIRE_LANES", "SlaHandler"]

#: Firing transactions in flight at once per worker.
FIRE_LANES = 2

#: Clocks fired (and steps published) per transaction.
FIRE_BATCH = 2000

#: On-call deliveries sent per request to Alertmanager.
ALERT_BATCH = 200

log = get_logger(__name__)

AlertSender = Callable[[list[dict[str, Any]]], Awaitable[None]]


@dataclass(frozen=True)
class SlaHandler:
    uow: UnitOfWork
    lifecycle: Lifecycle
    escalator: Escalator
    publisher: Publisher
    clock: Clock
    decoder: InputDecoder = field(default_factory=lambda: InputDecoder("sla-monitor"))
    alerting: Alerting = field(default_factory=Alerting)
    #: Sends alerts to Alertmanager; None when no Alertmanager is configured.
    send_alerts: AlertSender | None = None
    #: Actions whose steps go to Alertmanager (empty: no Alertmanager configured).
    alert_actions: frozenset[EscalationAction] = frozenset()
    #: Holds and caps taking steps on a wall-clock jump (None: fire whatever is due).
    restraint: Restraint | None = None
    #: Seconds on a clock the wall clock's jumps do not move (see ``domain.restraint``).
    monotonic: Callable[[], float] = time.monotonic
    metrics: SlaMetrics = field(default_factory=NoMetrics)

    # --- input events -----------------------------------------------------------------

    async def handle(self, messages: Sequence[tuple[str, bytes]]) -> int:
        """Apply (registry topic, value) pairs; events that cannot be decoded are skipped."""
        inputs = [e for e in self.decoder.decode_all(messages) if isinstance(e, Input)]
        now = self.clock.now()
        applied = await retrying(partial(self.apply, inputs, now), what="sla_apply")
        await self.drain()
        return applied

    async def apply(self, inputs: Sequence[Input], now: datetime) -> int:
        """Apply input events once each, in one transaction; return how many were new."""
        async with self.uow() as repo:
            before = await repo.read(scope_of(inputs), now)
            decision = self.lifecycle.decide(before, inputs, now)
            resolved: list[EscalationRaised] = []
            if decision.stopped:
                for policy_id in self.escalator.gone_policies(decision.stopped):
                    log.warning("policy_gone_cannot_resolve", policy_id=policy_id)
                fired = await repo.fired(self.escalator.fired_ids(decision.stopped))
                resolved = self.escalator.resolve(decision.stopped, fired, now)
            saved = await repo.apply(decision, resolved, self._paged(resolved), now)
        return decision.applied + saved

    # --- the ticker -------------------------------------------------------------------

    async def tick(self) -> int:
        """Fire what is due now and publish it."""
        self._watch_clock()
        # Two lanes claim batches side by side (SKIP LOCKED keeps them apart): while one
        # waits on PostgreSQL or the broker's acknowledgement, the other computes.
        fired = sum(await asyncio.gather(*(self._fire_lane() for _ in range(FIRE_LANES))))
        await self.drain()
        return fired

    async def _fire_lane(self) -> int:
        fired = 0
        while True:
            n = await retrying(self._fire_now, what="sla_fire")
            fired += n
            # A full batch means more may be due. Each batch is published as it fires;
            # the drain after the lanes only catches rows a crash left unpublished and
            # resolved steps.
            if n < FIRE_BATCH:
                return fired

    def _watch_clock(self) -> None:
        """Compare the wall clock with the monotonic one once a tick: a jump holds the
        taking steps it made due (``domain.restraint``)."""
        if self.restraint is None:
            return
        jump = self.restraint.observe(self.clock.now(), self.monotonic())
        if jump is not None:
            log.warning(
                "clock_jump",
                seconds=round(jump.seconds, 3),
                expected=jump.expected.isoformat(),
                read=jump.read.isoformat(),
                hold_seconds=self.restraint.guard.hold.total_seconds(),
            )
            self.metrics.clock_jumped(jump.seconds)

    async def _fire_now(self) -> int:
        now = self.clock.now()
        gate = self.restraint.gate(now, self.monotonic()) if self.restraint else None
        return await self.fire_due(now, gate=gate)

    async def fire_due(
        self, now: datetime, limit: int = FIRE_BATCH, gate: Gate | None = None
    ) -> int:
        """Fire every ladder step due by ``now`` (up to ``limit`` clocks); return how many
        steps fired.

        The steps are stored unpublished in the transaction that advances the clocks,
        and go to the broker only after it commits; a second, short transaction marks
        them published. A step is thus never on the topic unless PostgreSQL holds it:
        publishing before the commit let a rolled-back transaction (a crash, a broker
        outage outlasting PostgreSQL's idle-in-transaction limit, a failed send after
        part of the batch went out) leave steps on ``sla.escalations`` that a touch
        arriving before the retry kept from ever being stored. A crash after the commit
        leaves the steps in the outbox for ``drain``: published again with the same
        event ids, which consumers drop.

        The publishing transaction first claims the steps it fired (locked, still
        unpublished): between the two transactions they are in the outbox, where the
        drain an input batch runs beside the ticker could take them. Whichever claims
        a step publishes it; the other skips it, so it is on the topic once.

        ``gate``: the restraint of this pass; a taking step it holds waits, with the
        rest of its clock's ladder, until the time the gate names.
        """
        async with self.uow() as repo:
            due = await repo.due(now, limit)
            if not due:
                return 0
            firing = self.escalator.fire(due, now, gate)
            await repo.record_fired(firing.events, firing.advances, self._paged(firing.events), now)
        if firing.held:
            self._count_held(firing.held)
        if firing.events:
            async with self.uow() as repo:
                claimed = await repo.claim_unpublished(firing.events)
                if claimed:
                    await self._publish(claimed)
                    await repo.mark_published(claimed)
        return len(firing.events)

    def _count_held(self, held: Sequence[HeldStep]) -> None:
        by = Counter((h.reason.value, h.action.value) for h in held)
        for (reason, action), n in sorted(by.items()):
            self.metrics.actions_held(reason, action, n)
        teams = Counter(h.team_id for h in held)
        log.warning(
            "taking_actions_held",
            held=len(held),
            by_reason=dict(Counter(h.reason.value for h in held)),
            teams=dict(teams.most_common(5)),
        )

    # --- outboxes ---------------------------------------------------------------------

    async def drain(self) -> int:
        total = 0
        while n := await retrying(self._drain_once, what="sla_outbox"):
            total += n
        return total

    async def _drain_once(self, limit: int = FIRE_BATCH) -> int:
        """Publish unpublished steps and mark them; return how many were published.

        The rows stay locked while publishing, and are marked only after the broker
        acknowledged them: a crash in between publishes them again (same event ids).
        """
        async with self.uow() as repo:
            events = await repo.unpublished(limit)
            if not events:
                return 0
            await self._publish(events)
            await repo.mark_published(events)
        return len(events)

    async def deliver_alerts(self) -> int:
        """Send due on-call alerts; stop at the first failed batch (it backs off)."""
        send = self.send_alerts
        if send is None:
            return 0
        total = 0
        while True:
            delivered, failed = await retrying(partial(self._deliver_now, send), what="sla_alerts")
            total += delivered
            if failed:
                log.warning("alert_delivery_failed", alerts=failed)
            if not delivered:
                return total

    async def _deliver_now(self, send: AlertSender) -> tuple[int, int]:
        return await self.deliver_due(send, self.clock.now())

    async def deliver_due(
        self, send: AlertSender, now: datetime, limit: int = ALERT_BATCH
    ) -> tuple[int, int]:
        """Send due alert deliveries to Alertmanager; return (delivered, failed).

        Rows stay locked while sending and are marked delivered only after
        Alertmanager answered 2xx. A failure schedules the next try with backoff; rows
        are never dropped.
        """
        async with self.uow() as repo:
            due = await repo.alerts_due(now, limit)
            if not due:
                return 0, 0
            try:
                await send([alert_payload(d.event, now=now, alerting=self.alerting) for d in due])
            except DeliveryFailed as exc:
                retries = [(d.event, now + retry_delay(d.attempts + 1, self.alerting)) for d in due]
                await repo.alerts_failed(retries, exc.reason)
                return 0, len(due)
            await repo.alerts_delivered([d.event for d in due], now)
        return len(due), 0

    async def _publish(self, events: Sequence[EscalationRaised]) -> None:
        await self.publisher.publish([event_message(e, key=e.lead_id) for e in events])

    def _paged(self, events: Sequence[EscalationRaised]) -> list[EscalationRaised]:
        return [e for e in events if e.action in self.alert_actions]
