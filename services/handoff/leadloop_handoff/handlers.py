"""The hand-off's use cases: record assignments as deliveries, send what is due to each
target, carry erasures to the CRMs, keep the backlog gauges current.

Effect exactly once per (lead, assignment, target): recording is idempotent (one row
per key), a row is marked delivered only after the CRM confirmed, and what a crash
repeats is an upsert keyed by the lead id, which leaves one record in the CRM.
"""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from leadloop.clock import Clock
from leadloop.db import retrying
from leadloop.decoding import InputDecoder
from leadloop.events import LeadAssigned, RepUpdated
from leadloop.faults import fault_point
from leadloop.logging import get_logger
from leadloop_handoff.domain.cards import Attempt, Target
from leadloop_handoff.domain.deliveries import (
    Due,
    Finished,
    TargetPlan,
    build_card,
    owner_crm_id,
    targets_for,
)
from leadloop_handoff.domain.pacing import TokenBucket
from leadloop_handoff.domain.retry import (
    Dead,
    Delivered,
    RetryAt,
    RetryPolicy,
    after_attempt,
    status_class,
)
from leadloop_handoff.ports import DeliveryMetrics, DeliveryRepository

__all__ = ["HandoffHandler", "Lane"]

log = get_logger(__name__)


@dataclass
class Lane:
    """One target's sending side: its connector, limits and pacing."""

    plan: TargetPlan
    target: Target
    policy: RetryPolicy
    max_in_flight: int
    bucket: TokenBucket


@dataclass
class HandoffHandler:
    store: DeliveryRepository
    lanes: Mapping[str, Lane]
    clock: Clock
    metrics: DeliveryMetrics
    #: How long a claimed row is reserved for the worker sending it.
    lease: timedelta = timedelta(seconds=60)
    #: Rows claimed per pass per target.
    claim_batch: int = 100
    jitter: Callable[[], float] = field(default=random.random)
    monotonic: Callable[[], float] = field(default=time.monotonic)
    inputs: InputDecoder = field(default_factory=lambda: InputDecoder("handoff"))

    async def handle(self, messages: Sequence[tuple[str, bytes]]) -> int:
        """Record (logical topic, value) pairs; returns the deliveries newly created."""
        plans = [lane.plan for lane in self.lanes.values()]
        assigned: list[tuple[LeadAssigned, list[str]]] = []
        reps: list[RepUpdated] = []
        for event in self.inputs.decode_all(messages):
            if isinstance(event, LeadAssigned):
                assigned.append((event, [p.name for p in targets_for(event.kind.value, plans)]))
            elif isinstance(event, RepUpdated):
                reps.append(event)
        now = self.clock.now()
        created = await retrying(
            lambda: self.store.record(assigned, reps, now), what="handoff_record"
        )
        fault_point("handoff.after_record")  # tests only: recorded, offsets not committed
        return created

    async def deliver(self, target: str) -> int:
        """One pass for ``target``: claim due rows, send them, store what happened.
        Returns the rows finished (any outcome)."""
        lane = self.lanes[target]
        now = self.clock.now()
        claimed = await retrying(
            lambda: self.store.claim(target, now, self.claim_batch, self.lease),
            what="handoff_claim",
        )
        if not claimed:
            return 0
        # A rolling window of max_in_flight sends: a slow reply holds up only its slot.
        slots = asyncio.Semaphore(lane.max_in_flight)
        held: list[datetime] = []

        async def one(due: Due) -> Finished:
            async with slots:
                if held:
                    # The target is struggling (5xx, 429, timeouts): the rest of the pass
                    # waits with the first retry instead of hammering it, unsent and
                    # uncounted.
                    return _release(due, held[0])
                result = await self._send(lane, due)
                if result.status == "pending":
                    held.append(result.due_at)
                return result

        results = await asyncio.gather(*(one(due) for due in claimed))
        fault_point("handoff.after_send")  # tests only: sent, results not stored
        await retrying(lambda: self.store.finish(results), what="handoff_finish")
        return len(results)

    async def _send(self, lane: Lane, due: Due) -> Finished:
        now = self.clock.now()
        if due.kind != "erase" and (due.lead is None or due.lead.get("erased_at") is not None):
            # Erased (or never known here): nothing about this person goes out.
            self.metrics.attempt(lane.plan.name, "cancelled", "none")
            return Finished(due, "cancelled", False, due.assigned_at, now, None, "erased")
        wait = lane.bucket.take(self.monotonic())
        if wait > 0:
            await asyncio.sleep(wait)
        attempt = await self._attempt(lane, due)
        attempts = due.attempts + 1
        outcome = after_attempt(attempt, attempts, self.clock.now(), lane.policy, self.jitter())
        klass = status_class(attempt.status)
        if isinstance(outcome, Delivered):
            self.metrics.attempt(lane.plan.name, "delivered", klass)
            if due.kind != "erase":
                self.metrics.delivered_after(
                    lane.plan.name, (outcome.at - due.assigned_at).total_seconds()
                )
            return Finished(
                due,
                "delivered",
                True,
                outcome.at,
                outcome.at,
                attempt.status,
                attempt.code,
                attempt.crm_id,
            )
        if isinstance(outcome, RetryAt):
            self.metrics.attempt(lane.plan.name, "retried", klass)
            return Finished(due, "pending", True, outcome.at, None, attempt.status, attempt.code)
        assert isinstance(outcome, Dead)
        self.metrics.attempt(lane.plan.name, "failed", klass)
        log.warning(
            "handoff_dead_letter",
            target=lane.plan.name,
            lead_id=due.lead_id,
            kind=due.kind,
            status=attempt.status,
            code=outcome.code,
            attempts=attempts,
        )
        return Finished(due, "dead", True, now, now, attempt.status, outcome.code[:200])

    async def _attempt(self, lane: Lane, due: Due) -> Attempt:
        try:
            if due.kind == "erase":
                return await lane.target.erase(due.lead_id)
            owner = owner_crm_id(
                lane.plan,
                due.event.get("owner_id"),
                str(due.event["team_id"]),
                due.owner_external_ids,
            )
            return await lane.target.upsert(build_card(due, owner))
        except Exception as exc:  # a connector bug must not stop the other deliveries
            # The type only: an exception's text may quote the request.
            log.error("handoff_connector_error", target=lane.plan.name, error=type(exc).__name__)
            return Attempt("retry", None, f"internal_error:{type(exc).__name__}")

    async def scan_erasures(self) -> int:
        erase = [name for name, lane in self.lanes.items() if lane.plan.supports_erase]
        now = self.clock.now()
        return await retrying(
            lambda: self.store.apply_erasures(erase, now, self.lease), what="handoff_erasures"
        )

    async def refresh(self) -> None:
        self.metrics.backlog(await retrying(self.store.backlog, what="handoff_backlog"))


def _release(due: Due, until: datetime) -> Finished:
    return Finished(due, "pending", False, until, None, None, None)
