"""Test tiers and the real-stack fixtures.

Unit tests (no marker) never touch a broker or a database: a test that asks for a
real-stack fixture without the ``integration`` or ``e2e`` marker fails loudly instead of
quietly depending on a running stack. Integration and end-to-end tests each get their
own topic prefix and their own PostgreSQL database, created here and migrated with the
project's forward-only migrations, so tests never see each other's data. The stack's
pieces come from the harness, ``tests.support.stack``, which the benchmarks use too.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiokafka import AIOKafkaProducer
from tests.support.stack import Stack, create_database, drop_database

from leadloop.kafka import create_topics
from leadloop.settings import KafkaSettings

REAL_STACK_FIXTURES = {"stack", "database_url", "kafka_settings", "topic_prefix"}


def pytest_runtest_setup(item: pytest.Item) -> None:
    uses = REAL_STACK_FIXTURES & set(getattr(item, "fixturenames", ()))
    marked = item.get_closest_marker("integration") or item.get_closest_marker("e2e")
    if uses and not marked:
        pytest.fail(
            f"{item.nodeid} uses {sorted(uses)} but is not marked integration or e2e",
            pytrace=False,
        )


def running_stack() -> Stack:
    """The running Kafka broker and PostgreSQL server (started by `make test`)."""
    stack = Stack.from_env()
    if stack is None:
        pytest.fail(
            "DATABASE_URL is not set: run the suite with `make test`, which starts Kafka and "
            "PostgreSQL and exports the connection settings"
        )
    return stack


@pytest.fixture(scope="session")
def stack() -> Stack:
    return running_stack()


@pytest.fixture
def database_url(stack: Stack) -> Iterator[str]:
    """A fresh, migrated database for one test; dropped afterwards."""
    url = asyncio.run(create_database(stack.admin_url))
    yield url
    asyncio.run(drop_database(stack.admin_url, url))


@pytest.fixture
def topic_prefix() -> str:
    return f"t{uuid.uuid4().hex[:10]}."


@pytest.fixture
async def kafka_settings(stack: Stack, topic_prefix: str) -> KafkaSettings:
    """Kafka settings with a private topic prefix; every registered topic exists."""
    settings = stack.kafka(topic_prefix)
    await create_topics(settings)
    return settings


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A producer on the test's broker that waits for every in-sync replica."""
    p = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    await p.start()
    yield p
    await p.stop()
