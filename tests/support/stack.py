"""The running stack and what a test or a benchmark gets on it: where the broker and the
database server are, a fresh migrated database, topics under a prefix of its own, and a
test's services on them, started, ready, and stopped again at the end.

Tests (``tests/conftest.py``'s fixtures, e2e and faults) and benchmarks (``bench/``) both
start the stack's pieces from here; ``make test`` and ``make bench`` start Kafka and
PostgreSQL themselves and export ``.state/env``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from tests.support.ports import free_port_base
from tests.support.processes import ROOT, ServiceGroup, service_env

from leadloop.db import apply_migrations
from leadloop.kafka import create_topics
from leadloop.settings import KafkaSettings

__all__ = [
    "Stack",
    "create_database",
    "delete_topics",
    "drop_database",
    "fresh_database",
    "fresh_topics",
    "metric_totals",
    "reconcile_metrics",
    "running",
    "sla_monitor",
    "stack_env",
    "unique_prefix",
]


@dataclass(frozen=True)
class Stack:
    """Where the running Kafka broker and PostgreSQL server are (``.state/env``)."""

    bootstrap: str
    admin_url: str

    @classmethod
    def from_env(cls) -> Stack | None:
        """The stack this process's environment names; None without ``DATABASE_URL``
        (the caller says how to start it: ``make test`` or ``make bench``)."""
        url = os.environ.get("DATABASE_URL")
        if not url:
            return None
        return cls(
            bootstrap=os.environ.get("LEADLOOP_KAFKA__BOOTSTRAP_SERVERS", "127.0.0.1:19092"),
            admin_url=url,
        )

    def kafka(self, topic_prefix: str) -> KafkaSettings:
        """Settings for this broker with topics under ``topic_prefix``."""
        return KafkaSettings(bootstrap_servers=self.bootstrap, topic_prefix=topic_prefix)


def _with_database(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def create_database(admin_url: str, name: str | None = None) -> str:
    """A new database on the server, migrated with the project's forward-only
    migrations; returns its URL. ``name`` defaults to ``leadloop_test_<random>``; a
    database whose migrations fail is dropped again."""
    name = name or f"leadloop_test_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(admin_url)
    try:
        # The name is built by the harness from a constant and a uuid, never from input.
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    url = _with_database(admin_url, name)
    try:
        await apply_migrations(url)
    except BaseException:
        await drop_database(admin_url, url)
        raise
    return url


async def drop_database(admin_url: str, url: str) -> None:
    """Drop the database at ``url``; FORCE: a service that did not stop must not keep
    it alive."""
    name = urlsplit(url).path.lstrip("/")
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@contextlib.asynccontextmanager
async def fresh_database(stack: Stack, purpose: str) -> AsyncIterator[str]:
    """A new migrated database named ``bench_<purpose>_<random>``; dropped afterwards.

    A fresh database per run keeps table and index sizes equal between runs: a table
    that already holds the previous run's leads makes every insert slower."""
    url = await create_database(stack.admin_url, f"bench_{purpose}_{uuid.uuid4().hex[:10]}")
    try:
        yield url
    finally:
        await drop_database(stack.admin_url, url)


def unique_prefix(purpose: str) -> str:
    """A topic prefix no other run uses; the time part sorts leftovers by age."""
    return f"bench-{purpose}-{time.strftime('%Y%m%d%H%M%S')}-{uuid.uuid4().hex[:6]}."


@contextlib.asynccontextmanager
async def fresh_topics(stack: Stack, prefix: str) -> AsyncIterator[KafkaSettings]:
    """Every registered topic under ``prefix``, created from the registry (same partition
    counts and configs as production); deleted afterwards so runs do not fill the disk."""
    kafka = stack.kafka(prefix)
    await create_topics(kafka)
    try:
        yield kafka
    finally:
        await delete_topics(kafka)


async def delete_topics(kafka: KafkaSettings) -> list[str]:
    """Delete every topic whose name starts with the settings' prefix."""
    if not kafka.topic_prefix:
        # An empty prefix would match the production topics of a shared broker.
        raise ValueError("refusing to delete topics without a prefix")
    admin = AIOKafkaAdminClient(**kafka.client_kwargs())
    await admin.start()
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(kafka.topic_prefix)]
        if doomed:
            await admin.delete_topics(doomed)
        return doomed
    finally:
        await admin.close()


def stack_env(
    database_url: str, kafka: KafkaSettings, scratch: Path, **extra: str
) -> dict[str, str]:
    """``service_env`` for the test's database and topics, data under ``scratch/data``."""
    return service_env(
        database_url, kafka.bootstrap_servers, kafka.topic_prefix, scratch / "data", **extra
    )


@contextmanager
def running(
    env: dict[str, str],
    log_dir: Path,
    *names: str,
    ready_timeout: float = 90,
    clean_exit: bool = True,
) -> Iterator[ServiceGroup]:
    """``names`` (all four when none) started and ready; stopped on leaving, and then,
    with ``clean_exit``, every one of them must have exited 0."""
    group = ServiceGroup(env=env, port_base=free_port_base(), log_dir=log_dir)
    group.start(*names)
    try:
        group.wait_ready(*names, timeout=ready_timeout)
        yield group
    finally:
        codes = group.stop()
    if clean_exit:
        unclean = [name for name, code in codes.items() if code != 0]
        logs = "".join(f"\n--- {name}\n{group.log(name)}" for name in unclean)
        assert codes == dict.fromkeys(codes, 0), f"unclean shutdown: {codes}{logs}"


@contextmanager
def sla_monitor(
    database_url: str,
    kafka: KafkaSettings,
    tmp_path: Path,
    policy: str,
    *,
    tick: str = "0.1",
    ready_timeout: float = 90,
    **extra: str,
) -> Iterator[ServiceGroup]:
    """The sla-monitor alone on ``policy`` (YAML text), ticking every ``tick`` seconds;
    it must exit 0 when stopped."""
    path = tmp_path / "sla.yaml"
    path.write_text(policy)
    env = stack_env(
        database_url,
        kafka,
        tmp_path,
        LEADLOOP_POLICIES_FILE=str(path),
        LEADLOOP_TICK_SECONDS=tick,
        **extra,
    )
    with running(env, tmp_path, "sla-monitor", ready_timeout=ready_timeout) as group:
        yield group


def metric_totals(group: ServiceGroup) -> dict[str, float]:
    """The metrics service's /metrics: each metric's samples summed over its labels."""
    with urllib.request.urlopen(group.url("metrics", "/metrics"), timeout=5) as r:
        text = r.read().decode()
    totals: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            name_labels, value = line.rsplit(" ", 1)
            name = name_labels.split("{", 1)[0]
            totals[name] = totals.get(name, 0.0) + float(value)
    return totals


async def reconcile_metrics(
    group: ServiceGroup, env: dict[str, str], within: float
) -> subprocess.CompletedProcess[str]:
    """``leadloop_metrics.tools reconcile`` (the stored facts replayed and compared with
    what the group's metrics service serves), run with ``env``, for ``within`` seconds at most."""
    return await asyncio.to_thread(
        subprocess.run,
        [
            sys.executable,
            "-m",
            "leadloop_metrics.tools",
            "reconcile",
            "--url",
            group.url("metrics", "/metrics"),
        ],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=within,
        check=False,
    )
