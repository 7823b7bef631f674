"""Kafka plumbing shared by the services: the faust app factory, topic creation from the
registry, acknowledged publishing, and the health endpoints.

Delivery is at-least-once (faust ``processing_guarantee="at_least_once"``); services
make effects exactly-once with idempotent PostgreSQL writes, never with faust's
``exactly_once`` mode. Consumed offsets are committed by faust only after an agent has
moved past an event, and agents move past a batch only after its effects are persisted
and its output acknowledged by the broker (acks=all) — or after a record that cannot be
processed was parked on the service's dead-letter topic (``leadloop.poison``).
"""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar, cast

import faust
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError
from faust.sensors import Sensor
from faust.transport.drivers.aiokafka import Producer as AIOKafkaDriverProducer
from faust.types import TP, Message, ProducerT
from prometheus_client.core import CounterMetricFamily, Metric
from prometheus_client.registry import Collector, CollectorRegistry

from leadloop.batches import batches
from leadloop.consumer_lag import LAG_INTERVAL_S, ConsumerLag, Offsets
from leadloop.db import RETRIES, TRANSIENT_ERRORS
from leadloop.faults import fault_point
from leadloop.logging import get_logger
from leadloop.messaging import OutMessage
from leadloop.poison import (
    PROCESSING_FAILED,
    Failure,
    Streak,
    dead_letter_headers,
    isolate,
)
from leadloop.settings import HttpSettings, KafkaSettings
from leadloop.topics import REGISTRY, TopicSpec, dead_letter_topic, qualified

__all__ = [
    "DEAD_LETTERS_METRIC",
    "DeadLetterCounter",
    "DeadLetters",
    "FaustPublisher",
    "IdempotentProducer",
    "ServiceApp",
    "TopicsNotCreated",
    "batch_agent",
    "create_topics",
    "dead_letters_of",
    "faust_credentials",
    "is_transient",
    "make_app",
    "observe_consumer_lag",
    "process_or_die",
    "raw_topic",
    "register_health",
    "serve_dead_letters",
    "topics_agent",
]

log = get_logger(__name__)
T = TypeVar("T")


#: Records parked on a service's dead-letter topic, by reason (``undecodable``,
#: ``processing_failed``); served on the service's ``/metrics``.
DEAD_LETTERS_METRIC = "leadloop_dead_letters"


class DeadLetterCounter(Collector):
    """``leadloop_dead_letters_total{service,reason}``: both reasons from zero, so that
    the first dead letter is an increase Prometheus can see."""

    def __init__(self, service: str) -> None:
        self.service = service
        self.counts: dict[str, int] = {"undecodable": 0, PROCESSING_FAILED: 0}

    def add(self, reason: str) -> None:
        self.counts[reason] = self.counts.get(reason, 0) + 1

    def collect(self) -> Iterator[Metric]:
        family = CounterMetricFamily(
            DEAD_LETTERS_METRIC,
            "Records parked on the service's dead-letter topic (original bytes and the"
            " reason; replayed with leadloop dead-letters replay)",
            labels=["service", "reason"],
        )
        for reason, count in sorted(self.counts.items()):
            family.add_metric([self.service, reason], float(count))
        yield family


def is_transient(exc: BaseException) -> bool:
    """An outage, not a bad record: PostgreSQL unavailable (``leadloop.db``) or a broker
    error. Left to stop the worker, whose batch is then redelivered."""
    return isinstance(exc, (*TRANSIENT_ERRORS, KafkaError))


class DeadLetters:
    """A service's policy for records its agents cannot process: isolate the record
    (``leadloop.poison.isolate``), then park it on ``<service>.dead-letter`` with its
    original key and bytes and ``reject-*`` headers, count it and move on."""

    def __init__(
        self,
        service: str,
        *,
        prefix: str,
        attempts: int,
        now: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.service = service
        self.prefix = prefix
        self.attempts = attempts
        self.topic = dead_letter_topic(service)
        self.counter = DeadLetterCounter(service)
        self.streak = Streak()
        self._now = now

    def message(self, failure: Failure[faust.EventT[bytes]]) -> OutMessage:
        record = failure.item.message
        return OutMessage(
            topic=self.topic,
            key=record.key,
            value=record.value or b"",
            headers=dead_letter_headers(
                service=self.service,
                topic=self._logical(record.topic),
                partition=record.partition,
                offset=record.offset,
                failure=failure,
                at=self._now(),
            ),
        )

    def _logical(self, topic: str) -> str:
        return topic[len(self.prefix) :] if topic.startswith(self.prefix) else topic

    async def run(
        self,
        app: faust.App,
        events: Sequence[faust.EventT[bytes]],
        handle: Callable[[Sequence[faust.EventT[bytes]]], Awaitable[Any]],
    ) -> None:
        """Handle a batch; park what fails, acknowledged before the batch moves on."""
        failures = await isolate(
            events, handle, attempts=self.attempts, is_transient=is_transient, streak=self.streak
        )
        if not failures:
            return
        await FaustPublisher(app, self.prefix).publish([self.message(f) for f in failures])
        for failure in failures:
            record = failure.item.message
            self.counter.add(failure.reason)
            log.error(
                "dead_lettered",
                service=self.service,
                topic=self._logical(record.topic),
                partition=record.partition,
                offset=record.offset,
                reason=failure.reason,
                detail=failure.detail,
                attempts=failure.attempts,
            )


class IdempotentProducer(AIOKafkaDriverProducer):
    """faust's aiokafka producer with idempotence on outside transactions too.

    faust turns it on only in its ``exactly_once`` mode. Without it, a send the broker
    wrote but whose acknowledgement was lost (a leader change, a timed-out request) is
    retried by the client and written twice; downstream idempotence would absorb the
    copy, but the topic, its lag and every bare consumer would see it."""

    def _settings_extra(self) -> Mapping[str, Any]:
        return {**super()._settings_extra(), "acks": "all", "enable_idempotence": True}


class ServiceApp(faust.App):
    """faust's App with the service's dead-letter policy and consumer lag (set by
    ``make_app``) and an idempotent producer."""

    dead_letters: DeadLetters
    consumer_lag: ConsumerLag

    def _new_producer(self) -> ProducerT:
        return IdempotentProducer(self.transport, loop=self.loop, beacon=self.beacon)


def dead_letters_of(app: faust.App) -> DeadLetters | None:
    """The app's dead-letter policy; None for an app ``make_app`` did not build."""
    return app.dead_letters if isinstance(app, ServiceApp) else None


def serve_dead_letters(app: faust.App, registry: CollectorRegistry) -> None:
    """Put the app's ``leadloop_dead_letters_total`` on the registry its ``/metrics``
    serves (every service that consumes has one), the process's PostgreSQL retries
    (``leadloop_postgres_retrying_seconds``, ``leadloop.db.RETRIES``) and its consumer
    lag (``leadloop.consumer_lag``)."""
    if (dead_letters := dead_letters_of(app)) is not None:
        registry.register(dead_letters.counter)
    if isinstance(app, ServiceApp):
        registry.register(app.consumer_lag)
    registry.register(RETRIES)


class _LagSensor(Sensor):
    """Tells ``ConsumerLag`` which records the agents hold and which they finished."""

    def __init__(self, lag: ConsumerLag) -> None:
        super().__init__()
        self._lag = lag

    def on_message_in(self, tp: TP, offset: int, message: Message) -> None:
        self._lag.received(tp, offset, message.timestamp)

    def on_message_out(self, tp: TP, offset: int, message: Message) -> None:
        self._lag.finished(tp, offset)


async def observe_consumer_lag(app: faust.App, lag: ConsumerLag) -> None:
    """One pass of the lag timer: the broker's high watermarks of the assigned
    partitions and the offsets this worker committed.

    The committed offsets are faust's own record (``Consumer._committed_offset``: read
    from the broker on assignment, updated on every commit), an attribute of the pinned
    faust-streaming that shared/tests/test_consumer_lag.py checks is there. A
    partition that has never committed is behind from its earliest offset
    (``auto_offset_reset=earliest``). A broker that does not answer leaves the last
    observation standing and says so in the log: the worker's work does not depend
    on it (so the series go flat: no stall alert on a broker outage, which alerts on its
    own)."""
    consumer = app.consumer
    try:
        assigned = [tp for tp in consumer.assignment() if tp.topic in lag.topics]
    except Exception:  # the consumer has not started yet: nothing assigned to observe
        return
    try:
        highwaters = await consumer.highwaters(*assigned) if assigned else {}
        done: Mapping[TP, int | None] = getattr(consumer, "_committed_offset", {})
        committed = {tp: done.get(tp) for tp in assigned}
        if never := [tp for tp, offset in committed.items() if offset is None]:
            committed.update(await consumer.earliest_offsets(*never))
    except Exception as exc:  # a metric must never fail the worker whose work it watches
        log.warning("consumer_lag_unavailable", error=type(exc).__name__)
        return
    lag.observe({tp: Offsets(highwaters.get(tp), committed.get(tp)) for tp in assigned})


def make_app(
    service: str,
    kafka: KafkaSettings,
    http: HttpSettings,
    *,
    data_dir: str,
) -> faust.App:
    """The one faust App of a service. Created by its composition root, never at import."""
    servers = ";".join(kafka.bootstrap_servers.split(","))
    datadir = Path(data_dir) / f"{kafka.topic_prefix}{service}"
    datadir.mkdir(parents=True, exist_ok=True)
    app = ServiceApp(
        f"{kafka.topic_prefix}leadloop-{service}",
        broker=f"kafka://{servers}",
        broker_credentials=faust_credentials(kafka),
        store="memory://",
        autodiscover=False,
        processing_guarantee="at_least_once",
        # Topics come from the registry (``leadloop topics create``); a client that
        # declares topics on the fly would hide a missing or misconfigured topic.
        topic_allow_declare=False,
        topic_disable_leader=True,
        producer_acks=-1,
        consumer_auto_offset_reset="earliest",
        broker_commit_interval=kafka.commit_interval_s,
        broker_session_timeout=kafka.session_timeout_s,
        web_enabled=True,
        web_bind=http.host,
        web_host=http.host,
        web_port=http.port,
        web_in_thread=False,
        datadir=str(datadir),
    )
    app.dead_letters = DeadLetters(
        service, prefix=kafka.topic_prefix, attempts=kafka.poison_attempts
    )
    lag = app.consumer_lag = ConsumerLag(
        service,
        topics={qualified(spec.name, kafka.topic_prefix): spec.name for spec in REGISTRY},
        retention_s={
            spec.name: spec.retention_ms / 1000
            for spec in REGISTRY
            if spec.cleanup_policy == "delete"
        },
    )
    app.sensors.add(_LagSensor(lag))
    service_timer(
        app,
        interval=LAG_INTERVAL_S,
        name="consumer-lag",
        run=lambda: observe_consumer_lag(app, lag),
    )
    return app


def faust_credentials(kafka: KafkaSettings) -> faust.SASLCredentials | None:
    """faust's form of ``KafkaSettings.client_kwargs``: with an SSL context the
    credentials select SASL_SSL for every client faust builds (consumer, producer,
    admin); None keeps PLAINTEXT."""
    kwargs = kafka.client_kwargs()
    if kafka.security_protocol == "PLAINTEXT":
        return None
    return faust.SASLCredentials(
        username=kwargs["sasl_plain_username"],
        password=kwargs["sasl_plain_password"],
        ssl_context=kwargs["ssl_context"],
        mechanism=kwargs["sasl_mechanism"],
    )


def raw_topic(app: faust.App, *names: str, prefix: str) -> faust.TopicT:
    """A topic (or several, read as one stream) whose keys and values stay bytes:
    leadloop decodes them itself so that undecodable input becomes a dead letter or a
    logged skip instead of a crashed agent."""
    return app.topic(
        *(qualified(name, prefix) for name in names),
        key_type=bytes,
        value_type=bytes,
        key_serializer="raw",
        value_serializer="raw",
        allow_empty=True,
    )


class FaustPublisher:
    """``Publisher`` over the faust app's producer (acks=all).

    Sends through the producer itself rather than faust's topic objects: the messages
    are plain bytes for topics created up front, and faust's per-message channel
    machinery (futures, callbacks, sensors) cost about 300 µs a message, more than the
    rest of a lead's handling."""

    def __init__(self, app: faust.App, prefix: str) -> None:
        self._app = app
        self._prefix = prefix

    async def publish(self, messages: Sequence[OutMessage]) -> None:
        producer = self._app.producer
        futures = [
            await producer.send(
                qualified(m.topic, self._prefix),
                m.key,
                m.value,
                None,  # partition: the default partitioner, by key
                None,  # timestamp: now
                list(m.headers) or None,
            )
            for m in messages
        ]
        # Every acknowledgement is awaited before the batch is considered done.
        if futures:
            await asyncio.gather(*futures)


def service_timer(
    app: faust.App, *, interval: float, name: str, run: Callable[[], Awaitable[Any]]
) -> None:
    """Run ``run`` every ``interval`` seconds on this worker, standing down once the
    worker is stopping: by then the producer or the pool may be gone, and whatever a
    pass committed but could not publish is left in its table for the next pass after
    a restart (every timer here publishes from a table). A failure while running is a
    bug and fails the worker, as in the agents."""

    async def tick() -> None:
        if app.should_stop:
            return
        try:
            await run()
        except Exception:
            if not app.should_stop:
                raise
            log.info("timer_cut_short_by_shutdown", timer=name)

    tick.__name__ = tick.__qualname__ = name.replace("-", "_")
    app.timer(interval=interval, name=name)(tick)


def batch_agent(
    app: faust.App,
    channel: faust.ChannelT[bytes],
    *,
    name: str,
    handle: Callable[[Sequence[faust.EventT[bytes]]], Awaitable[Any]],
    batch_size: int,
    within: float,
) -> None:
    """Register a writing agent that hands batches of events to ``handle``.

    ``concurrency=1``: one partition's batches are applied in order by one writer.
    ``within`` is always set so a quiet partition never holds a partial batch back.
    A record that ``handle`` cannot process is parked on the service's dead-letter
    topic (``DeadLetters``) and the batch moves on; on an app without a dead-letter
    policy any failure stops the worker.
    """

    after_handler = f"{name}.after_handler"
    dead_letters = dead_letters_of(app)

    async def agent(stream: faust.StreamT[bytes]) -> None:
        # The stream is faust's Stream; its StreamT protocol lacks what batches use.
        async for events in batches(cast(faust.Stream[bytes], stream), batch_size, within):
            work = handle(events) if dead_letters is None else dead_letters.run(app, events, handle)
            await process_or_die(work, what=name)
            # Tests only: effects committed and output acknowledged, offsets not committed.
            fault_point(after_handler)

    app.agent(channel, concurrency=1, name=name)(agent)


def topics_agent(
    app: faust.App,
    names: Sequence[str],
    *,
    prefix: str,
    name: str,
    handle: Callable[[list[tuple[str, bytes]]], Awaitable[Any]],
    batch_size: int,
    within: float,
) -> None:
    """A writing agent over several registry topics that hands ``handle`` batches of
    (logical topic name, value) pairs: the prefix is the adapter's business, not the
    handler's."""

    async def by_topic(events: Sequence[faust.EventT[bytes]]) -> Any:
        return await handle(
            [(e.message.topic[len(prefix) :], e.message.value or b"") for e in events]
        )

    batch_agent(
        app,
        raw_topic(app, *names, prefix=prefix),
        name=name,
        handle=by_topic,
        batch_size=batch_size,
        within=within,
    )


async def process_or_die(work: Awaitable[T], *, what: str) -> T:
    """Run one batch's work so that its events are acknowledged only if it completed.

    ``batches`` acknowledges a batch when the agent's loop moves on, even
    when the body raised or was cancelled. Work that still fails after a bad record was
    parked (``DeadLetters``) — an outage the handler does not retry, a systemic failure —
    stops the worker at once, without acknowledging, and the batch is redelivered after
    the restart.
    On shutdown the batch in flight is finished first.
    """
    task = asyncio.ensure_future(work)
    try:
        return await asyncio.shield(task)
    except asyncio.CancelledError:
        try:
            await asyncio.wait_for(asyncio.shield(task), timeout=30)
        except BaseException:
            log.critical("batch_unfinished_at_shutdown", what=what)
            os._exit(75)
        raise
    except Exception:
        log.critical("batch_failed", what=what, exc_info=True)
        os._exit(70)


class TopicsNotCreated(Exception):
    """The broker refused to create some topics (topic name -> its reason)."""

    def __init__(self, refused: dict[str, str]) -> None:
        super().__init__("; ".join(f"{name}: {why}" for name, why in refused.items()))
        self.refused = refused


async def create_topics(
    kafka: KafkaSettings,
    specs: Sequence[TopicSpec] = REGISTRY,
    *,
    replication_factor: int = 1,
    min_insync_replicas: int | None = None,
) -> list[str]:
    """Create every registered topic that does not exist yet; return those created."""
    extra = {} if min_insync_replicas is None else {"min.insync.replicas": str(min_insync_replicas)}
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [
            NewTopic(
                name=qualified(spec.name, kafka.topic_prefix),
                num_partitions=spec.partitions,
                replication_factor=replication_factor,
                topic_configs={**spec.config(), **extra},
            )
            for spec in specs
            if qualified(spec.name, kafka.topic_prefix) not in existing
        ]
        if not wanted:
            return []
        try:
            response = await admin.create_topics(wanted)
        except TopicAlreadyExistsError:
            # Another starter won the race; the topics then exist, which is the goal.
            return []
        # The broker answers per topic, and aiokafka returns the answer without raising:
        # a topic it refused (a replication factor above the broker count, a bad
        # setting) must not be reported as created.
        refused = {
            name: message or f"error code {code}"
            for name, code, message in response.topic_errors
            if code not in (0, TopicAlreadyExistsError.errno)
        }
        if refused:
            raise TopicsNotCreated(refused)
        return [name for name, code, _ in response.topic_errors if code == 0]
    finally:
        await admin.close()


ReadyCheck = Callable[[], Awaitable[tuple[bool, dict[str, Any]]]]


def register_health(app: faust.App, ready: ReadyCheck) -> None:
    """``GET /healthz`` (the process is alive) and ``GET /readyz`` (connected and caught up)."""

    @app.page("/healthz")
    async def healthz(self: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        return self.json({"status": "ok"})

    @app.page("/readyz")
    async def readyz(self: faust.web.View, request: faust.web.Request) -> faust.web.Response:
        try:
            ok, detail = await ready()
        except Exception as exc:  # readiness must answer, not raise
            ok, detail = False, {"error": type(exc).__name__}
        return self.json({"ready": ok, **detail}, status=200 if ok else 503)
