"""``retrying`` never gives up on a transient error; ``RetryWatch`` makes one that never
ends visible: ``leadloop_postgres_retrying_seconds{what}`` while it fails, no series
once it succeeds (deploy/prometheus/rules/postgres.yml alerts on it)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import CollectorRegistry, generate_latest

from leadloop.db import RetryWatch, retrying


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def test_a_failing_retry_shows_its_age_and_vanishes_on_success() -> None:
    ticks = Ticks()
    watch = RetryWatch(monotonic=ticks)
    seen: list[dict[str, float]] = []
    failures = 3

    async def op() -> str:
        nonlocal failures
        seen.append(watch.stalled())
        ticks.now += 60
        if failures:
            failures -= 1
            raise TimeoutError
        return "done"

    got = await retrying(op, what="ingest_batch", max_delay=0.001, watch=watch)
    assert got == "done"
    # Before the first failure nothing; then the age of the first failure, growing.
    assert seen == [{}, {"ingest_batch": 0.0}, {"ingest_batch": 60.0}, {"ingest_batch": 120.0}]
    assert watch.stalled() == {}


async def test_the_oldest_of_concurrent_retries_counts_and_errors_end_it() -> None:
    ticks = Ticks()
    watch = RetryWatch(monotonic=ticks)
    first = watch.failing("sla_apply")
    ticks.now += 100
    second = watch.failing("sla_apply")
    ticks.now += 50
    assert watch.stalled() == {"sla_apply": 150.0}
    watch.ended("sla_apply", first)
    assert watch.stalled() == {"sla_apply": 50.0}
    watch.ended("sla_apply", second)
    assert watch.stalled() == {}

    async def broken() -> None:
        raise asyncio.TimeoutError if watch.stalled() == {} else ValueError("not transient")

    with pytest.raises(ValueError, match="not transient"):
        await retrying(broken, what="pool_check", max_delay=0.001, watch=watch)
    assert watch.stalled() == {}


def test_exposed_as_a_gauge_per_operation() -> None:
    ticks = Ticks()
    watch = RetryWatch(monotonic=ticks)
    registry = CollectorRegistry()
    registry.register(watch)
    watch.failing("handoff_claim")
    ticks.now += 42
    text = generate_latest(registry).decode()
    assert 'leadloop_postgres_retrying_seconds{what="handoff_claim"} 42.0' in text
