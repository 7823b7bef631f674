"""The consumer lag a worker serves on /metrics (the real case, a stalled worker seen by
a real Prometheus, runs in tests/e2e/test_consumer_stall_alert.py)."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from pathlib import Path
from types import SimpleNamespace
from typing import Any, cast

import faust
from aiokafka.errors import KafkaTimeoutError
from faust.transport.consumer import Consumer
from faust.types import TP
from prometheus_client import CollectorRegistry, generate_latest
from prometheus_client.parser import text_string_to_metric_families

from leadloop.consumer_lag import ConsumerLag, Offsets, partition_lag
from leadloop.kafka import ServiceApp, make_app, observe_consumer_lag, serve_dead_letters
from leadloop.settings import HttpSettings, KafkaSettings

ACCEPTED = TP("p.leads.accepted", 0)
ACCEPTED_1 = TP("p.leads.accepted", 1)
RAW = TP("p.leads.raw", 0)
CHANGELOG = TP("p.leadloop-metrics-funnel-changelog", 0)


class Clock:
    def __init__(self, at: float) -> None:
        self.at = at

    def __call__(self) -> float:
        return self.at


def watch(clock: Clock) -> ConsumerLag:
    return ConsumerLag(
        "metrics",
        topics={"p.leads.accepted": "leads.accepted", "p.leads.raw": "leads.raw"},
        retention_s={"leads.accepted": 604_800.0, "leads.raw": 259_200.0},
        now=clock,
    )


def served(lag: ConsumerLag) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    registry = CollectorRegistry()
    registry.register(lag)
    text = generate_latest(registry).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def series(name: str, topic: str, *, service: str | None = "metrics") -> Any:
    labels = {"topic": topic} if service is None else {"service": service, "topic": topic}
    return (name, tuple(sorted(labels.items())))


def test_partition_lag_is_highwater_minus_committed_and_zero_when_unknown() -> None:
    assert partition_lag(Offsets(highwater=120, committed=100)) == 20
    assert partition_lag(Offsets(highwater=100, committed=100)) == 0
    # A committed offset past a watermark read a moment earlier is not negative lag.
    assert partition_lag(Offsets(highwater=99, committed=100)) == 0
    assert partition_lag(Offsets(highwater=None, committed=100)) == 0
    assert partition_lag(Offsets(highwater=120, committed=None)) == 0


def test_lag_records_sum_over_the_assigned_partitions_of_each_topic() -> None:
    lag = watch(Clock(1_000.0))
    lag.observe(
        {
            ACCEPTED: Offsets(120, 100),
            ACCEPTED_1: Offsets(50, 45),
            RAW: Offsets(7, 7),
            # Not a registry topic: faust writes changelogs, it does not consume them.
            CHANGELOG: Offsets(10_000, 0),
        }
    )
    out = served(lag)
    assert out[series("leadloop_consumer_lag_records", "leads.accepted")] == 25
    assert out[series("leadloop_consumer_lag_records", "leads.raw")] == 0
    assert not any("changelog" in str(key) for key in out)


def test_a_stuck_batch_ages_by_its_oldest_record_timestamp() -> None:
    clock = Clock(1_000.0)
    lag = watch(clock)
    # The agent took offsets 100..102 (produced at 900, 905, 990) and is stuck on them.
    for offset, produced in ((100, 900.0), (101, 905.0), (102, 990.0)):
        lag.received(ACCEPTED, offset, produced)
    lag.observe({ACCEPTED: Offsets(110, 100)})
    assert served(lag)[series("leadloop_consumer_lag_seconds", "leads.accepted")] == 100

    clock.at = 1_060.0
    lag.observe({ACCEPTED: Offsets(130, 100)})
    out = served(lag)
    assert out[series("leadloop_consumer_lag_seconds", "leads.accepted")] == 160
    assert out[series("leadloop_consumer_lag_records", "leads.accepted")] == 30
    assert out[series("leadloop_consumer_progress_total", "leads.accepted")] == 0


def test_a_slowly_consumed_backlog_keeps_the_age_of_its_records() -> None:
    # The offset moves every pass, yet the records waiting are a day old: the age the
    # retention alert needs, which "time since the offset moved" would reset.
    clock = Clock(100_000.0)
    lag = watch(clock)
    for offset in range(10):
        lag.received(ACCEPTED, offset, 13_600.0 + offset)
    for offset in range(5):
        lag.finished(ACCEPTED, offset)
    lag.observe({ACCEPTED: Offsets(1_000, 5)})
    out = served(lag)
    assert out[series("leadloop_consumer_lag_seconds", "leads.accepted")] == 100_000 - 13_605
    assert out[series("leadloop_consumer_progress_total", "leads.accepted")] == 5


def test_a_caught_up_worker_has_no_lag_and_forgets_what_it_held() -> None:
    clock = Clock(1_000.0)
    lag = watch(clock)
    lag.received(ACCEPTED, 5, 10.0)
    lag.finished(ACCEPTED, 5)
    lag.observe({ACCEPTED: Offsets(6, 6), RAW: Offsets(0, None)})
    out = served(lag)
    assert out[series("leadloop_consumer_lag_records", "leads.accepted")] == 0
    assert out[series("leadloop_consumer_lag_seconds", "leads.accepted")] == 0
    # Progress is served from zero for an assigned topic nothing was read from yet.
    assert out[series("leadloop_consumer_progress_total", "leads.raw")] == 0
    assert out[series("leadloop_consumer_progress_total", "leads.accepted")] == 1


def test_records_below_the_committed_offset_are_not_outstanding() -> None:
    # Offsets 3 and 4 were taken before a rebalance and never finished here; another
    # worker processed them and the committed offset is past them.
    clock = Clock(1_000.0)
    lag = watch(clock)
    lag.received(ACCEPTED, 3, 1.0)
    lag.received(ACCEPTED, 4, 2.0)
    lag.received(ACCEPTED, 40, 970.0)
    lag.observe({ACCEPTED: Offsets(45, 40)})
    assert served(lag)[series("leadloop_consumer_lag_seconds", "leads.accepted")] == 30


def test_behind_with_nothing_held_counts_from_the_last_time_it_was_clear() -> None:
    clock = Clock(1_000.0)
    lag = watch(clock)
    lag.observe({ACCEPTED: Offsets(10, 10)})
    clock.at = 1_004.0
    lag.observe({ACCEPTED: Offsets(12, 10)})
    assert served(lag)[series("leadloop_consumer_lag_seconds", "leads.accepted")] == 4


def test_a_topic_no_longer_assigned_is_not_behind_and_keeps_its_progress() -> None:
    lag = watch(Clock(1_000.0))
    lag.received(ACCEPTED, 0, 999.0)
    lag.finished(ACCEPTED, 0)
    lag.observe({ACCEPTED: Offsets(50, 1)})
    lag.observe({RAW: Offsets(3, 3)})
    out = served(lag)
    assert out[series("leadloop_consumer_lag_records", "leads.accepted")] == 0
    assert out[series("leadloop_consumer_progress_total", "leads.accepted")] == 1


def test_retention_is_served_for_the_topics_seen_and_labels_are_bounded() -> None:
    lag = watch(Clock(1_000.0))
    lag.received(RAW, 0, 999.0)
    lag.observe({RAW: Offsets(1, 0)})
    out = served(lag)
    assert out[series("leadloop_topic_retention_seconds", "leads.raw", service=None)] == 259_200
    assert not any(k[0] == "leadloop_topic_retention_seconds" and "accepted" in str(k) for k in out)
    assert {name for key in out for name, _ in key[1]} <= {"service", "topic"}


def test_the_faust_attribute_read_for_committed_offsets_exists() -> None:
    # observe_consumer_lag reads faust's own record of committed offsets; a faust
    # upgrade that renames it must fail here, not silently report no lag.
    assert "_committed_offset" in Consumer.__annotations__


class FakeConsumer:
    def __init__(
        self,
        assigned: set[TP],
        highwaters: Mapping[TP, int],
        committed: Mapping[TP, int | None],
        earliest: Mapping[TP, int],
    ) -> None:
        self._assigned = assigned
        self._highwaters = highwaters
        self._committed_offset = dict(committed)
        self._earliest = earliest
        self.fail: BaseException | None = None

    def assignment(self) -> set[TP]:
        return self._assigned

    async def highwaters(self, *tps: TP) -> Mapping[TP, int]:
        if self.fail is not None:
            raise self.fail
        return {tp: self._highwaters[tp] for tp in tps}

    async def earliest_offsets(self, *tps: TP) -> Mapping[TP, int]:
        return {tp: self._earliest[tp] for tp in tps}


def test_the_timer_reads_watermarks_and_committed_offsets_from_the_earliest() -> None:
    lag = watch(Clock(1_000.0))
    consumer = FakeConsumer(
        {ACCEPTED, RAW, CHANGELOG},
        highwaters={ACCEPTED: 30, RAW: 9, CHANGELOG: 500},
        # leads.raw never committed: behind from its earliest retained offset.
        committed={ACCEPTED: 20, RAW: None},
        earliest={RAW: 4, CHANGELOG: 0},
    )
    app = cast(faust.App, SimpleNamespace(consumer=consumer))
    asyncio.run(observe_consumer_lag(app, lag))
    out = served(lag)
    assert out[series("leadloop_consumer_lag_records", "leads.accepted")] == 10
    assert out[series("leadloop_consumer_lag_records", "leads.raw")] == 5

    # The broker does not answer: the last observation stands, the worker goes on.
    consumer.fail = KafkaTimeoutError()
    consumer._highwaters = {ACCEPTED: 90, RAW: 9, CHANGELOG: 500}
    asyncio.run(observe_consumer_lag(app, lag))
    assert served(lag)[series("leadloop_consumer_lag_records", "leads.accepted")] == 10


def test_a_consumer_not_started_is_not_observed() -> None:
    lag = watch(Clock(1_000.0))

    def not_started() -> set[TP]:
        raise RuntimeError("not started")

    app = cast(faust.App, SimpleNamespace(consumer=SimpleNamespace(assignment=not_started)))
    asyncio.run(observe_consumer_lag(app, lag))
    assert not any(s for family in lag.collect() for s in family.samples)


def test_every_service_app_serves_its_lag_with_its_dead_letters(tmp_path: Path) -> None:
    app = make_app(
        "ingest",
        KafkaSettings(bootstrap_servers="127.0.0.1:1", topic_prefix="p."),
        HttpSettings(port=1),
        data_dir=str(tmp_path),
    )
    assert isinstance(app, ServiceApp)
    assert app.consumer_lag.topics["p.leads.raw"] == "leads.raw"
    assert any(type(s).__name__ == "_LagSensor" for s in app.sensors)
    registry = CollectorRegistry()
    serve_dead_letters(app, registry)
    app.consumer_lag.observe({TP("p.leads.raw", 0): Offsets(3, 1)})
    text = generate_latest(registry).decode()
    assert 'leadloop_consumer_lag_records{service="ingest",topic="leads.raw"} 2.0' in text
    assert 'leadloop_topic_retention_seconds{topic="leads.raw"} 259200.0' in text
