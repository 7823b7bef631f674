"""PostgreSQL access: a pool helper that waits out outages, the retry of transient
errors (watched: ``RETRIES``), and the migration runner.

Migrations are forward-only SQL files ``NNNN_name.sql`` under
``deploy/postgres/migrations``; each runs once, in order, in its own transaction, under
an advisory lock so concurrent starters do not race. They are applied by
``leadloop migrate`` before any consumer starts; services never create tables.
(A tiny runner instead of a migration framework: the project speaks asyncpg only and
needs nothing beyond ordered SQL files.)
"""

from __future__ import annotations

import asyncio
import hashlib
import itertools
import re
import time
from collections.abc import Awaitable, Callable, Iterator
from pathlib import Path
from typing import TypeVar

import asyncpg
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from leadloop.logging import get_logger
from leadloop.scram import scram_sha256_verifier

__all__ = [
    "RETRIES",
    "RETRYING_GAUGE",
    "SERVICE_ROLES",
    "TRANSIENT_ERRORS",
    "RetryWatch",
    "apply_migrations",
    "create_pool",
    "ensure_logins",
    "migrations_dir",
    "retrying",
]

log = get_logger(__name__)

#: Errors that mean "PostgreSQL is unavailable right now", not "this data is bad".
TRANSIENT_ERRORS: tuple[type[BaseException], ...] = (
    OSError,
    asyncpg.exceptions.ConnectionDoesNotExistError,
    asyncpg.exceptions.CannotConnectNowError,
    asyncpg.exceptions.AdminShutdownError,
    asyncpg.exceptions.CrashShutdownError,
    # Class 53, insufficient resources: a full disk, out of memory, too many
    # connections. The record is fine and the server is up; the operator frees the
    # resource and the same batch goes through. Taken for a bad record, every record
    # would fail until the poison policy stopped the worker.
    asyncpg.exceptions.InsufficientResourcesError,
    asyncpg.exceptions.InterfaceError,
    asyncpg.exceptions.SerializationError,
    asyncpg.exceptions.DeadlockDetectedError,
    # Raised when the server vanished while an operation was in flight on the
    # connection (e.g. a commit as the postmaster is killed); the pool discards that
    # connection and the retry gets a new one. Its subclass TargetServerAttributeNotMatched
    # is a failover in progress: every host of a multi-host URL answered, none read-write.
    asyncpg.exceptions.InternalClientError,
    asyncio.TimeoutError,
)

_MIGRATION_LOCK = 0x1EAD100B
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")

T = TypeVar("T")


def migrations_dir() -> Path:
    """``deploy/postgres/migrations`` of the checkout this package was installed from."""
    here = Path(__file__).resolve()
    for parent in here.parents:
        candidate = parent / "deploy" / "postgres" / "migrations"
        if candidate.is_dir():
            return candidate
    raise FileNotFoundError("deploy/postgres/migrations not found above " + str(here))


async def create_pool(
    url: str, *, min_size: int = 1, max_size: int = 4, attempts: int = 60
) -> asyncpg.Pool:
    """Connect, retrying with backoff while PostgreSQL is starting or unreachable.

    Every statement is planned with its values (``plan_cache_mode``): the services look
    rows up by arrays of keys, and a generic plan cached while a table had no
    statistics yet (a fresh database, until autovacuum analyses it) compares every row
    with every key — 1.5 s instead of 5 ms for 1,000 keys on 30,000 rows
    (tests/e2e/test_plan_cache.py). Planning that lookup with its values took 0.7 ms,
    once per batch."""
    delay = 0.2
    for attempt in range(1, attempts + 1):
        try:
            pool = await asyncpg.create_pool(
                url,
                min_size=min_size,
                max_size=max_size,
                command_timeout=30,
                server_settings={"plan_cache_mode": "force_custom_plan"},
            )
            assert pool is not None
            return pool
        except TRANSIENT_ERRORS as exc:
            if attempt == attempts:
                raise
            log.warning("postgres_unavailable", attempt=attempt, error=type(exc).__name__)
            await asyncio.sleep(delay)
            delay = min(delay * 2, 5.0)
    raise AssertionError("unreachable")


#: Seconds the oldest retry still running of an operation has been retrying.
RETRYING_GAUGE = "leadloop_postgres_retrying_seconds"


class RetryWatch(Collector):
    """``leadloop_postgres_retrying_seconds{what}``: how long the oldest ``retrying`` call
    still failing for ``what`` has been at it; no series while none is.

    ``retrying`` never gives up on a transient error, on purpose: a PostgreSQL outage
    pauses consumption instead of losing work. But "transient" includes a statement that
    always times out (``command_timeout``) and a deadlock that recurs every attempt,
    which never end; the consumer then stalls with only a warning per attempt in its
    log. This makes the stall visible (rules/postgres.yml alerts after five minutes).
    """

    def __init__(self, monotonic: Callable[[], float] = time.monotonic) -> None:
        self._monotonic = monotonic
        self._running: dict[str, dict[int, float]] = {}
        self._tokens = itertools.count()

    def failing(self, what: str) -> int:
        """A retry of ``what`` has started failing; the token ends it."""
        token = next(self._tokens)
        self._running.setdefault(what, {})[token] = self._monotonic()
        return token

    def ended(self, what: str, token: int) -> None:
        running = self._running.get(what, {})
        running.pop(token, None)
        if not running:
            self._running.pop(what, None)

    def stalled(self) -> dict[str, float]:
        now = self._monotonic()
        return {what: now - min(r.values()) for what, r in self._running.items() if r}

    def collect(self) -> Iterator[Metric]:
        family = GaugeMetricFamily(
            RETRYING_GAUGE,
            "Seconds the oldest still-failing PostgreSQL retry of an operation has run",
            labels=["what"],
        )
        for what, seconds in sorted(self.stalled().items()):
            family.add_metric([what], seconds)
        yield family


#: The process's retries (a passive record: no I/O, nothing started). Every service's
#: ``/metrics`` serves it (``leadloop.kafka.serve_dead_letters``).
RETRIES = RetryWatch()


async def retrying(
    op: Callable[[], Awaitable[T]],
    *,
    what: str,
    on_retry: Callable[[int], None] | None = None,
    max_delay: float = 5.0,
    watch: RetryWatch = RETRIES,
) -> T:
    """Run ``op`` until it succeeds, backing off while PostgreSQL is unavailable.

    Only transient errors are retried; anything else propagates. The caller holds its
    input (and its uncommitted Kafka offsets) meanwhile, so an outage pauses
    consumption instead of losing work. While it retries, ``watch`` shows for how long
    (``leadloop_postgres_retrying_seconds{what}``), so a retry that never ends alerts.
    """
    delay = 0.1
    attempt = 0
    token: int | None = None
    try:
        while True:
            try:
                return await op()
            except TRANSIENT_ERRORS as exc:
                attempt += 1
                if token is None:
                    token = watch.failing(what)
                if on_retry is not None:
                    on_retry(attempt)
                log.warning("postgres_retry", what=what, attempt=attempt, error=type(exc).__name__)
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_delay)
    finally:
        if token is not None:
            watch.ended(what, token)


async def apply_migrations(url: str, directory: Path | None = None) -> list[str]:
    """Apply pending migrations; return the names applied. Refuses edited history."""
    directory = directory or migrations_dir()
    files = sorted(p for p in directory.iterdir() if _NAME.match(p.name))
    conn = await asyncpg.connect(url)
    applied: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {
            r["version"]: r["checksum"]
            for r in await conn.fetch("SELECT version, checksum FROM schema_migrations")
        }
        for path in files:
            sql = path.read_text(encoding="utf-8")
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if path.name in done:
                if done[path.name] != checksum:
                    raise RuntimeError(
                        f"migration {path.name} was edited after it was applied; "
                        "migrations are forward-only: add a new file instead"
                    )
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)",
                    path.name,
                    checksum,
                )
            applied.append(path.name)
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()
    return applied


#: Service -> the NOLOGIN group role that migration 0008 grants that service's tables.
SERVICE_ROLES: dict[str, str] = {
    "ingest": "leadloop_ingest",
    "assignment": "leadloop_assignment",
    "sla-monitor": "leadloop_sla_monitor",
    "metrics": "leadloop_metrics",
    "handoff": "leadloop_handoff",
    "notifier": "leadloop_notifier",
}


async def ensure_logins(url: str, passwords: dict[str, str], *, suffix: str = "_app") -> list[str]:
    """Create or update each given service's own LOGIN user (its group role plus
    ``suffix``) with that password — sent as a SCRAM-SHA-256 verifier computed here, never
    as plaintext — and no privilege of its own but membership of the
    group role; returns the login names. Idempotent: run again, it only resets the
    passwords. Needs CREATEROLE (the database owner of a fresh cluster has it)."""
    unknown = set(passwords) - set(SERVICE_ROLES)
    if unknown:
        raise ValueError(f"unknown services: {sorted(unknown)}")
    conn = await asyncpg.connect(url)
    logins: list[str] = []
    try:
        for service, password in passwords.items():
            group, login = SERVICE_ROLES[service], SERVICE_ROLES[service] + suffix
            # Only the verifier goes to the server: statement text and parameters can
            # reach its logs (log_statement, log_min_error_statement, auto_explain).
            verifier = scram_sha256_verifier(password)
            async with conn.transaction():
                # Utility statements take no parameters: format() quotes the names (%I)
                # and the verifier (%L) on the server.
                statements = await conn.fetch(
                    "SELECT 1, format('CREATE ROLE %I NOLOGIN', $1::text) "
                    "WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $1) "
                    "UNION ALL SELECT 2, format('CREATE ROLE %I', $2::text) "
                    "WHERE NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = $2) "
                    "UNION ALL SELECT 3, format('ALTER ROLE %I LOGIN NOSUPERUSER NOCREATEDB "
                    "NOCREATEROLE NOREPLICATION NOBYPASSRLS PASSWORD %L', $2::text, $3::text) "
                    "UNION ALL SELECT 4, format('GRANT %I TO %I', $1::text, $2::text) "
                    "ORDER BY 1",
                    group,
                    login,
                    verifier,
                )
                for _, statement in statements:
                    await conn.execute(statement)
            logins.append(login)
    finally:
        await conn.close()
    return logins
