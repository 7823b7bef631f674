"""Test tiers and the real-stack fixtures.

Unit tests (no marker) never touch a broker or a database: a test that asks for a
real-stack fixture without the ``integration`` or ``e2e`` marker fails loudly instead of
quietly depending on a running stack. Integration and end-to-end tests each get their
own topic prefix and their own PostgreSQL database, created here and migrated with the
project's forward-only migrations, so tests never see each other's data.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from leadloop.db import apply_migrations
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


@dataclass(frozen=True)
class Stack:
    """The running Kafka broker and PostgreSQL server (started by `make test`)."""

    bootstrap: str
    admin_url: str


def running_stack() -> Stack:
    url = os.environ.get("DATABASE_URL")
    if not url:
        pytest.fail(
            "DATABASE_URL is not set: run the suite with `make test`, which starts Kafka and "
            "PostgreSQL and exports the connection settings"
        )
    return Stack(
        bootstrap=os.environ.get("LEADLOOP_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
        admin_url=url,
    )


@pytest.fixture(scope="session")
def stack() -> Stack:
    return running_stack()


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


async def create_database(admin_url: str) -> str:
    """A fresh database on the suite's server, migrated; returns its URL."""
    name = f"leadloop_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = _with_database(admin_url, name)
    await apply_migrations(url)
    return url


async def drop_database(admin_url: str, url: str) -> None:
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


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
    settings = KafkaSettings(bootstrap_servers=stack.bootstrap, topic_prefix=topic_prefix)
    await create_topics(settings)
    return settings


@pytest.fixture
async def producer(kafka_settings: KafkaSettings) -> AsyncIterator[AIOKafkaProducer]:
    """A producer on the test's broker that waits for every in-sync replica."""
    p = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    await p.start()
    yield p
    await p.stop()
