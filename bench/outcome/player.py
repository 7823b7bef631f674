"""The reps of :mod:`bench.outcome.model`, played on the real topics.

Reads ``leads.assigned`` (who owns which lead) and ``sla.escalations`` (prompts) from the
end, and publishes what the owners do on ``crm.activities`` and ``crm.stage-changes``,
stamped with the wall clock. The services run on real time with a policy whose limits
were divided by ``scale``, so a simulated delay ``d`` is waited as ``d / scale`` real
seconds and a real interval ``r`` reads as ``r × scale`` simulated seconds.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from bench.outcome import model
from bench.outcome.model import Action

from leadloop.events import (
    ActivityKind,
    ActivityRecorded,
    LossReason,
    Stage,
    StageChanged,
    deterministic_id,
)
from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

__all__ = ["RepPlayer"]


@dataclass
class _Lead:
    lead_id: str
    arrived: datetime
    owner: str | None = None
    action: Action | None = Action.ATTEMPT
    attempts: int = 0
    step: int = 0
    contact_age_s: float = 0.0
    task: asyncio.Task[None] | None = None
    due: float | None = None  # loop time of the scheduled step; None: dormant
    events: int = 0


@dataclass
class RepPlayer:
    kafka: KafkaSettings
    seed: int
    scale: float
    producer: AIOKafkaProducer
    consumer: AIOKafkaConsumer
    leads: dict[str, _Lead] = field(default_factory=dict)
    seen: set[str] = field(default_factory=set)
    counts: Counter[str] = field(default_factory=Counter)
    task: asyncio.Task[None] | None = None

    @classmethod
    async def start(cls, kafka: KafkaSettings, seed: int, scale: float) -> RepPlayer:
        producer = AIOKafkaProducer(**kafka.client_kwargs(), acks="all", linger_ms=2)
        consumer = AIOKafkaConsumer(**kafka.client_kwargs(), enable_auto_commit=False)
        await producer.start()
        await consumer.start()
        tps = []
        for name in ("leads.assigned", "sla.escalations"):
            topic = qualified(name, kafka.topic_prefix)
            partitions = await producer.partitions_for(topic)
            tps += [TopicPartition(topic, p) for p in sorted(partitions)]
        consumer.assign(tps)
        await consumer.seek_to_end(*tps)
        for tp in tps:
            await consumer.position(tp)
        player = cls(kafka, seed, scale, producer, consumer)
        player.task = asyncio.create_task(player._consume(), name="outcome-reps")
        return player

    async def stop(self) -> None:
        tasks = [t for t in (self.task, *(x.task for x in self.leads.values())) if t]
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self.consumer.stop()
        await self.producer.stop()

    async def _consume(self) -> None:
        assigned = qualified("leads.assigned", self.kafka.topic_prefix)
        async for message in self.consumer:
            body = json.loads(message.value or b"{}")
            if message.topic == assigned:
                self._assigned(body)
            else:
                self._escalated(body)

    # -- what the reps hear ------------------------------------------------------------

    def _assigned(self, body: dict[str, Any]) -> None:
        if body["assignment_id"] in self.seen:
            return
        self.seen.add(body["assignment_id"])
        lead = self.leads.get(body["lead_id"])
        if lead is None:
            arrived = datetime.fromisoformat(body["assigned_at"])
            lead = self.leads[body["lead_id"]] = _Lead(body["lead_id"], arrived)
        lead.owner = body.get("owner_id")
        self._schedule(lead, None)
        if lead.owner is None or lead.action is None:
            return  # pooled, or closed already
        rep = model.rep_profile(self.seed, lead.owner)
        backlog = sum(
            1
            for x in self.leads.values()
            if x.owner == lead.owner and x.attempts == 0 and x.action is Action.ATTEMPT
        )
        delay = model.first_touch_delay(self.seed, body["assignment_id"], rep, backlog)
        self.counts["assignments"] += 1
        if delay is not None:
            self._schedule(lead, delay)

    def _escalated(self, body: dict[str, Any]) -> None:
        self.counts[f"escalation:{body['action']}:{body['status']}"] += 1
        lead = self.leads.get(body["lead_id"])
        if (
            body["status"] != "firing"
            or lead is None
            or lead.action is None
            or lead.owner is None
            or lead.owner != body.get("owner_id")
        ):
            return
        rep = model.rep_profile(self.seed, lead.owner)
        delay = model.prompted_delay(self.seed, body["escalation_id"], rep, body["action"])
        if delay is None:
            return
        loop = asyncio.get_running_loop()
        if lead.due is None or loop.time() + delay / self.scale < lead.due:
            self.counts["prompted"] += 1
            self._schedule(lead, delay)

    # -- what the reps do --------------------------------------------------------------

    def _schedule(self, lead: _Lead, delay_s: float | None) -> None:
        if lead.task is not None and lead.task is not asyncio.current_task():
            lead.task.cancel()
        lead.task, lead.due = None, None
        if delay_s is None:
            return
        loop = asyncio.get_running_loop()
        lead.due = loop.time() + delay_s / self.scale
        lead.task = asyncio.create_task(self._act_at(lead, lead.due, lead.owner))

    async def _act_at(self, lead: _Lead, due: float, owner: str | None) -> None:
        await asyncio.sleep(max(0.0, due - asyncio.get_running_loop().time()))
        lead.task, lead.due = None, None
        if owner is None or lead.owner != owner:
            return
        await self._act(lead, owner)

    def _age_s(self, lead: _Lead, now: datetime) -> float:
        return (now - lead.arrived).total_seconds() * self.scale

    async def _act(self, lead: _Lead, owner: str) -> None:
        seed, lid = self.seed, lead.lead_id
        rep = model.rep_profile(seed, owner)
        now = datetime.now(UTC)
        if lead.action is Action.ATTEMPT:
            lead.attempts += 1
            if model.contacted(seed, lid, lead.attempts, self._age_s(lead, now)):
                await self._touch(lead, owner, ActivityKind.CALL, "connected")
                await self._stage(lead, owner, Stage.CONTACTED)
                lead.contact_age_s = self._age_s(lead, now)
                lead.action = Action.QUALIFY
                self._schedule(lead, model.next_step_delay(seed, lid, -1))
                return
            await self._touch(lead, owner, ActivityKind.CALL, "no_answer")
            if lead.attempts >= model.MAX_ATTEMPTS:
                await self._stage(lead, owner, Stage.LOST, loss=LossReason.NO_RESPONSE)
                lead.action = None
                return
            self._schedule(lead, model.retry_delay(seed, lid, lead.attempts, rep))
        elif lead.action is Action.QUALIFY:
            await self._touch(lead, owner, ActivityKind.MEETING, None)
            if not model.qualified(seed, lid, lead.contact_age_s):
                await self._stage(lead, owner, Stage.LOST, loss=LossReason.NOT_A_FIT)
                lead.action = None
                return
            await self._stage(lead, owner, Stage.QUALIFIED)
            lead.action, lead.step = Action.ADVANCE, 0
            self._next_step(lead)
        elif lead.action is Action.ADVANCE:
            await self._touch(lead, owner, ActivityKind.MEETING, None)
            stage, _ = model.advance_odds(lead.step)
            if not model.step_succeeds(seed, lid, lead.step):
                await self._stage(lead, owner, Stage.LOST, loss=LossReason.CHOSE_COMPETITOR)
                lead.action = None
                return
            await self._stage(lead, owner, Stage(stage), amount=10_000.0)
            lead.step += 1
            if lead.step >= len(model.CLIMB):
                lead.action = None
                return
            self._next_step(lead)

    def _next_step(self, lead: _Lead) -> None:
        if model.stalls(self.seed, lead.lead_id, lead.step):
            return  # forgotten until a prompt or a new owner
        self._schedule(lead, model.next_step_delay(self.seed, lead.lead_id, lead.step))

    def _event_id(self, lead: _Lead) -> str:
        lead.events += 1
        return deterministic_id("leadloop-outcome", str(self.seed), lead.lead_id, lead.events)

    async def _touch(
        self, lead: _Lead, owner: str, kind: ActivityKind, outcome: str | None
    ) -> None:
        event = ActivityRecorded(
            event_id=self._event_id(lead),
            lead_id=lead.lead_id,
            rep_id=owner,
            kind=kind,
            occurred_at=datetime.now(UTC),
            outcome=outcome,
        )
        await self._send(ActivityRecorded.topic, lead, event.model_dump_json(exclude_none=True))
        self.counts["activities"] += 1

    async def _stage(
        self,
        lead: _Lead,
        owner: str,
        stage: Stage,
        *,
        amount: float | None = None,
        loss: LossReason | None = None,
    ) -> None:
        event = StageChanged(
            event_id=self._event_id(lead),
            lead_id=lead.lead_id,
            stage=stage,
            occurred_at=datetime.now(UTC),
            rep_id=owner,
            amount=amount,
            loss_reason=loss,
        )
        await self._send(StageChanged.topic, lead, event.model_dump_json(exclude_none=True))
        self.counts[f"stage:{stage.value}"] += 1

    async def _send(self, topic: str, lead: _Lead, value: str) -> None:
        await self.producer.send_and_wait(
            qualified(topic, self.kafka.topic_prefix), value.encode(), key=lead.lead_id.encode()
        )
