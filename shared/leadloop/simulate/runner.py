"""The run: send the generated leads to ``leads.raw`` and play the reps, over aiokafka.

With ``cfg.roster_file`` :func:`run` first publishes the roster on ``crm.reps``
(:mod:`leadloop.simulate.roster`: every rep and manager of the rules file, with demo
addresses), as a CRM's roster sync would. It paces the leads at ``cfg.rate`` and counts
a record only once the broker acknowledged it. With ``cfg.reps`` it reads
``leads.assigned`` from the end and publishes each owner's plan
(:func:`leadloop.simulate.reps.plan_followup`), waiting ``delay / time_scale`` real
seconds before each event. :class:`SimulationSummary` reports what was sent.
"""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from functools import partial
from itertools import islice
from pathlib import Path
from typing import Annotated, Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
)
from rich.table import Table

from leadloop.events import Stage
from leadloop.logging import get_logger
from leadloop.settings import KafkaSettings
from leadloop.simulate.reps import PlannedEvent, plan_followup
from leadloop.simulate.roster import DEMO_CONTACTS, load_rules, roster_from_rules
from leadloop.simulate.traffic import SIMULATION_EPOCH, RecordKind, SimulatedRecord, iter_records
from leadloop.topics import qualified

__all__ = ["SimulationConfig", "SimulationSummary", "run"]

log = get_logger(__name__)

#: Set to a rules file (config/rules.yaml) to publish its roster at start; `make demo`
#: sets it. An environment variable because the ``leadloop simulate`` command builds
#: the config from its options and has none for this yet.
ROSTER_ENV = "LEADLOOP_SIMULATE_ROSTER"


def _roster_file_from_env() -> Path | None:
    value = os.environ.get(ROSTER_ENV, "").strip()
    return Path(value) if value else None


class SimulationConfig(BaseModel):
    """What to simulate. Built once (CLI, tests); invalid values fail at construction."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    leads: Annotated[int, Field(ge=0)] = 1000
    #: Leads per real second; 0 sends as fast as the broker acknowledges, in batches.
    rate: Annotated[float, Field(ge=0)] = 50.0
    seed: int = 7
    #: Also play the reps: answer assignments on ``crm.activities`` / ``crm.stage-changes``.
    reps: bool = True
    #: Simulated seconds per real second for the reps' delays.
    time_scale: Annotated[float, Field(gt=0)] = 60.0
    #: Real seconds from the start after which the reps stop (sending always finishes
    #: first). None: the reps play until the run is cancelled (Ctrl-C).
    duration_s: Annotated[float, Field(ge=0)] | None = None
    #: Only these reps are played (empty: every owner); others are left to real people.
    rep_ids: tuple[str, ...] = ()
    #: Start of the simulated timeline of ``occurred_at``; fixed so a seed is reproducible.
    start: AwareDatetime = SIMULATION_EPOCH
    #: Publish a ``crm.reps`` entry per rep and manager of this rules file at start, with
    #: ``roster_contacts`` as addresses. None (the default unless the environment
    #: variable LEADLOOP_SIMULATE_ROSTER names a file): no roster is published.
    roster_file: Path | None = Field(default_factory=_roster_file_from_env)
    #: Channel name -> address template, ``{rep_id}`` replaced by the person's id.
    roster_contacts: dict[str, str] = Field(default_factory=lambda: dict(DEMO_CONTACTS))


@dataclass(slots=True)
class SimulationSummary:
    """Counts of what a run sent; no personal data. Printable with rich."""

    leads_planned: int = 0
    roster_published: int = 0
    sent_by_source: Counter[str] = field(default_factory=Counter)
    malformed_by_defect: Counter[str] = field(default_factory=Counter)
    redeliveries: int = 0
    returning: int = 0
    assignments_played: int = 0
    assignments_unreadable: int = 0
    activities: int = 0
    stage_changes: Counter[str] = field(default_factory=Counter)
    rep_events_failed: int = 0
    interrupted: bool = False
    elapsed_s: float = 0.0

    @property
    def sent(self) -> int:
        return sum(self.sent_by_source.values())

    @property
    def malformed(self) -> int:
        return sum(self.malformed_by_defect.values())

    @property
    def duplicates(self) -> int:
        return self.redeliveries + self.returning

    def count_sent(self, record: SimulatedRecord) -> None:
        self.sent_by_source[record.channel] += 1
        if record.defect is not None:
            self.malformed_by_defect[record.defect] += 1
        elif record.kind is RecordKind.REDELIVERY:
            self.redeliveries += 1
        elif record.kind is RecordKind.RETURNING:
            self.returning += 1

    def count_rep_event(self, event: PlannedEvent) -> None:
        if event.stage is None:
            self.activities += 1
        else:
            self.stage_changes[event.stage] += 1

    def rows(self) -> list[tuple[str, str]]:
        status = "interrupted" if self.interrupted else "completed"
        rows = [("status", status)]
        if self.roster_published:
            rows.append(("roster entries published (crm.reps)", str(self.roster_published)))
        rows.append(("leads sent", f"{self.sent} of {self.leads_planned}"))
        rows += [(f"  {source}", str(n)) for source, n in sorted(self.sent_by_source.items())]
        rows.append(("malformed sent", str(self.malformed)))
        rows += [(f"  {defect}", str(n)) for defect, n in sorted(self.malformed_by_defect.items())]
        rows += [
            ("duplicates sent", str(self.duplicates)),
            ("  redeliveries (same source_lead_id)", str(self.redeliveries)),
            ("  returning people (new source_lead_id)", str(self.returning)),
            ("assignments played", str(self.assignments_played)),
            ("activities produced", str(self.activities)),
            ("stage changes produced", str(sum(self.stage_changes.values()))),
        ]
        rows += [(f"  {s}", str(self.stage_changes[s])) for s in Stage if s in self.stage_changes]
        if self.assignments_unreadable or self.rep_events_failed:
            rows.append(("assignments unreadable", str(self.assignments_unreadable)))
            rows.append(("rep events failed", str(self.rep_events_failed)))
        rows.append(("elapsed", f"{self.elapsed_s:.1f} s"))
        return rows

    def __rich__(self) -> Table:
        table = Table("simulation", "count", title="leadloop simulate")
        for label, value in self.rows():
            table.add_row(label, value)
        return table

    def __str__(self) -> str:
        return "\n".join(f"{label}: {value}" for label, value in self.rows())


async def _sleep_until(loop: asyncio.AbstractEventLoop, when: float) -> None:
    delay = when - loop.time()
    if delay > 0:
        await asyncio.sleep(delay)


class _Outbox:
    """Records handed to the producer; counted once the broker acknowledged them."""

    def __init__(self, summary: SimulationSummary) -> None:
        self._summary = summary
        self._pending: list[tuple[SimulatedRecord, asyncio.Future[Any]]] = []

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, record: SimulatedRecord, ack: asyncio.Future[Any]) -> None:
        self._pending.append((record, ack))

    async def settle(self) -> None:
        """Wait for every acknowledgement; a failed send fails the run."""
        if not self._pending:
            return
        # asyncio.wait, not gather: cancelling the run must not cancel the producer's
        # own futures; its flush on stop still resolves them.
        await asyncio.wait([ack for _, ack in self._pending])
        failures = [
            error
            for _, ack in self._pending
            if not ack.cancelled() and (error := ack.exception()) is not None
        ]
        self.count_acknowledged()
        if failures:
            raise failures[0]

    def count_acknowledged(self) -> None:
        """Count what the broker acknowledged and forget the rest (after the producer
        stopped, nothing is still in flight)."""
        for record, ack in self._pending:
            if ack.done() and not ack.cancelled() and ack.exception() is None:
                self._summary.count_sent(record)
        self._pending.clear()


async def _publish_roster(
    producer: AIOKafkaProducer, kafka: KafkaSettings, cfg: SimulationConfig
) -> int:
    """The roster of ``cfg.roster_file`` on ``crm.reps`` (key: rep id); how many entries.
    Read before anything is sent, so a bad file stops the run at once."""
    if cfg.roster_file is None:
        return 0
    entries = roster_from_rules(
        load_rules(cfg.roster_file), at=datetime.now(UTC), contacts=cfg.roster_contacts
    )
    topic = qualified("crm.reps", kafka.topic_prefix)
    acks = [
        await producer.send(
            topic, e.model_dump_json(exclude_none=True).encode(), key=e.rep_id.encode()
        )
        for e in entries
    ]
    for ack in acks:
        await ack  # a refused entry fails the run: the notices would reach nobody
    log.info("simulate.roster_published", entries=len(entries), rules=str(cfg.roster_file))
    return len(entries)


async def _send_leads(
    producer: AIOKafkaProducer,
    topic: str,
    records: Iterable[SimulatedRecord],
    cfg: SimulationConfig,
    outbox: _Outbox,
    batch_size: int,
) -> None:
    loop = asyncio.get_running_loop()
    began = loop.time()
    for i, record in enumerate(records):
        if cfg.rate > 0:
            # Paced against the start, not the previous send, so delays do not add up.
            await _sleep_until(loop, began + i / cfg.rate)
        outbox.add(record, await producer.send(topic, record.value, key=record.key))
        if len(outbox) >= batch_size:
            await outbox.settle()
    await outbox.settle()


# The contract's id limits, so that an id the CRM events could not carry is refused here.
_Id = Annotated[str, StringConstraints(min_length=1, max_length=128)]


class _AssignmentView(BaseModel):
    """What the reps read from a ``leads.assigned`` event. Unknown fields are ignored so
    that an extension of the contract does not stop the simulator."""

    model_config = ConfigDict(frozen=True, extra="ignore")

    assignment_id: _Id
    lead_id: _Id
    owner_id: _Id | None
    assigned_at: AwareDatetime


class _RepPlayer:
    """Reads assignments and plays each owner's plan against the real clock."""

    def __init__(
        self,
        consumer: AIOKafkaConsumer,
        producer: AIOKafkaProducer,
        kafka: KafkaSettings,
        cfg: SimulationConfig,
        summary: SimulationSummary,
    ) -> None:
        self._consumer, self._producer = consumer, producer
        self._prefix, self._cfg, self._summary = kafka.topic_prefix, cfg, summary
        self._plans: dict[str, asyncio.Task[None]] = {}
        self._seen: set[str] = set()
        self.task: asyncio.Task[None] | None = None

    @classmethod
    async def start(
        cls,
        kafka: KafkaSettings,
        cfg: SimulationConfig,
        producer: AIOKafkaProducer,
        summary: SimulationSummary,
    ) -> _RepPlayer:
        consumer = AIOKafkaConsumer(
            **kafka.client_kwargs(),
            group_id=f"{kafka.topic_prefix}leadloop-simulator",
            enable_auto_commit=True,
            auto_offset_reset="latest",
        )
        await consumer.start()
        try:
            topic = qualified("leads.assigned", kafka.topic_prefix)
            await _assign_from_end(consumer, producer, topic)
        except BaseException:
            await consumer.stop()
            raise
        player = cls(consumer, producer, kafka, cfg, summary)
        player.task = asyncio.create_task(player._consume(), name="simulator-reps")
        return player

    async def _consume(self) -> None:
        loop = asyncio.get_running_loop()
        async for message in self._consumer:
            self._handle(message.value, loop.time(), message.partition, message.offset)

    def _handle(self, value: bytes, received_at: float, partition: int, offset: int) -> None:
        try:
            view = _AssignmentView.model_validate_json(value)
        except ValidationError as exc:
            self._summary.assignments_unreadable += 1
            log.warning(
                "simulate.assignment_unreadable",
                partition=partition,
                offset=offset,
                errors=exc.error_count(),
            )
            return
        if view.assignment_id in self._seen:
            return  # a redelivered assignment: its plan is already playing
        self._seen.add(view.assignment_id)
        previous = self._plans.pop(view.lead_id, None)
        if previous is not None:
            previous.cancel()  # the previous owner no longer owns the lead
        owner = view.owner_id
        if owner is None or (self._cfg.rep_ids and owner not in self._cfg.rep_ids):
            return
        self._summary.assignments_played += 1
        plan = plan_followup(
            self._cfg.seed,
            assignment_id=view.assignment_id,
            lead_id=view.lead_id,
            owner_id=owner,
            assigned_at=view.assigned_at,
        )
        if plan:
            task = asyncio.create_task(self._play(plan, received_at))
            self._plans[view.lead_id] = task
            task.add_done_callback(partial(self._forget, view.lead_id))

    def _forget(self, lead_id: str, task: asyncio.Task[None]) -> None:
        if self._plans.get(lead_id) is task:
            del self._plans[lead_id]

    async def _play(self, plan: list[PlannedEvent], received_at: float) -> None:
        loop = asyncio.get_running_loop()
        for event in plan:
            await _sleep_until(loop, received_at + event.delay_s / self._cfg.time_scale)
            try:
                await self._producer.send_and_wait(
                    qualified(event.topic, self._prefix), event.value, key=event.key
                )
            except KafkaError as exc:
                # The rest of this lead's plan would contradict what the CRM topics show.
                self._summary.rep_events_failed += 1
                log.warning(
                    "simulate.rep_event_failed", topic=event.topic, error=type(exc).__name__
                )
                return
            self._summary.count_rep_event(event)

    async def stop(self) -> None:
        tasks = [*self._plans.values(), *([self.task] if self.task else [])]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        await self._consumer.stop()


async def _assign_from_end(
    consumer: AIOKafkaConsumer, producer: AIOKafkaProducer, topic: str
) -> None:
    """Read only assignments made from now on, whatever the group committed before."""
    # The producer's lookup waits for the topic's metadata; the consumer's does not.
    partitions = await producer.partitions_for(topic)
    if not partitions:
        raise RuntimeError(f"topic {topic!r} does not exist; run `leadloop topics create`")
    tps = [TopicPartition(topic, p) for p in sorted(partitions)]
    consumer.assign(tps)
    await consumer.seek_to_end(*tps)
    for tp in tps:
        # Resolve the end offsets now, before the first lead is sent; a lazy seek
        # could skip the assignments of the first leads.
        await consumer.position(tp)


async def _reps_until_done(reps: _RepPlayer | None, cfg: SimulationConfig, started: float) -> None:
    """After the last lead: let the reps play until ``duration_s`` or cancellation."""
    if reps is None or reps.task is None:
        return
    loop = asyncio.get_running_loop()
    timeout = None if cfg.duration_s is None else max(0.0, started + cfg.duration_s - loop.time())
    await asyncio.wait([reps.task], timeout=timeout)
    if reps.task.done() and not reps.task.cancelled():
        reps.task.result()  # the consumer failed: surface it rather than idle


async def run(kafka: KafkaSettings, cfg: SimulationConfig) -> SimulationSummary:
    """Send the generated leads to ``leads.raw`` and, with ``cfg.reps``, play the reps.

    Returns what was sent. Cancellation (Ctrl-C under ``asyncio.run``) ends the run
    early and still returns the summary so far, marked interrupted, instead of
    re-raising: the CLI prints it either way. Kafka errors propagate.
    """
    loop = asyncio.get_running_loop()
    started = loop.time()
    summary = SimulationSummary(leads_planned=cfg.leads)
    # Drawn lazily: a long run does not hold all its records in memory.
    records = islice(iter_records(cfg.seed, start=cfg.start), cfg.leads)
    log.info(
        "simulate.started",
        leads=cfg.leads,
        rate=cfg.rate,
        seed=cfg.seed,
        reps=cfg.reps,
        time_scale=cfg.time_scale,
        topic_prefix=kafka.topic_prefix,
        roster=str(cfg.roster_file) if cfg.roster_file else None,
    )
    producer = AIOKafkaProducer(
        **kafka.client_kwargs(),
        acks="all",
        enable_idempotence=True,  # broker-side retries must not add copies we did not plan
        linger_ms=5,
    )
    outbox = _Outbox(summary)
    reps: _RepPlayer | None = None
    await producer.start()
    try:
        summary.roster_published = await _publish_roster(producer, kafka, cfg)
        if cfg.reps:
            reps = await _RepPlayer.start(kafka, cfg, producer, summary)
        topic = qualified("leads.raw", kafka.topic_prefix)
        await _send_leads(producer, topic, records, cfg, outbox, kafka.batch_size)
        log.info(
            "simulate.leads_sent",
            sent=summary.sent,
            malformed=summary.malformed,
            duplicates=summary.duplicates,
        )
        await _reps_until_done(reps, cfg, started)
    except asyncio.CancelledError:
        summary.interrupted = True
        log.info("simulate.interrupted")
    finally:
        if reps is not None:
            await reps.stop()
        await producer.stop()  # flushes what was handed over
        outbox.count_acknowledged()
        summary.elapsed_s = loop.time() - started
    log.info(
        "simulate.finished",
        sent=summary.sent,
        activities=summary.activities,
        stage_changes=sum(summary.stage_changes.values()),
        interrupted=summary.interrupted,
    )
    return summary
