"""Poison records: finding the record that fails a batch, and what becomes of it.

A batch handler either completes or raises. A transient outage (PostgreSQL away, the
broker unreachable) is retried inside the handler or stops the worker, and the batch is
redelivered: the record is not to blame. Any other failure may be one bad record that
would fail the batch on every redelivery and block its partition for good. ``isolate``
finds it by running the halves of the failing batch, down to single records; a single
record that fails is attempted ``attempts`` times in all (an ``Undecodable`` one only
once: it cannot get better) and then handed back as a ``Failure`` for the caller to park
on its dead-letter topic, after which the partition moves on.

Re-running part of a batch is safe because every handler's effects are idempotent by
event id (docs/reliability.md, *Exactly-once effects*): what a failed attempt's halves
already committed is a no-op the second time.

Not every failure is a poison record: a handler that fails on every record (a bug of
its own, a missing grant) would otherwise dead-letter the whole stream. When
``SYSTEMIC_STREAK`` records in a row fail with none processed in between (across
batches), the failure is the worker's, not the records': ``SystemicFailure`` is raised
before the batch's records are parked, and the worker stops as before.

Pure apart from awaiting the handler and the injected ``sleep``: no Kafka, no clock.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Generic, TypeVar

__all__ = [
    "HEADER_ATTEMPTS",
    "HEADER_DETAIL",
    "HEADER_REASON",
    "HEADER_REJECTED_AT",
    "HEADER_REPLAYED_FROM",
    "HEADER_SERVICE",
    "HEADER_SOURCE_OFFSET",
    "HEADER_SOURCE_PARTITION",
    "HEADER_SOURCE_TOPIC",
    "PROCESSING_FAILED",
    "SYSTEMIC_STREAK",
    "Failure",
    "Streak",
    "SystemicFailure",
    "dead_letter_headers",
    "describe",
    "isolate",
]

T = TypeVar("T")

#: The reason code of a record whose processing raised (not ``undecodable``).
PROCESSING_FAILED = "processing_failed"

#: Records in a row that failed, with none processed in between, that make a failure
#: the worker's own rather than its records'.
SYSTEMIC_STREAK = 10

#: The headers of a dead letter; the first six are those of ``leads.rejected``.
HEADER_REASON = "reject-reason"
HEADER_DETAIL = "reject-detail"
HEADER_SOURCE_TOPIC = "source-topic"
HEADER_SOURCE_PARTITION = "source-partition"
HEADER_SOURCE_OFFSET = "source-offset"
HEADER_REJECTED_AT = "rejected-at"
HEADER_ATTEMPTS = "reject-attempts"
HEADER_SERVICE = "reject-service"
#: Set on a record the replay command re-published: ``<dead-letter topic>:<partition>:<offset>``.
HEADER_REPLAYED_FROM = "replayed-from"


class SystemicFailure(Exception):
    """Every record failed: the handler or its environment is broken, not the input."""


@dataclass(frozen=True, slots=True)
class Failure(Generic[T]):
    """A record given up on: why (a stable code and a detail without personal data)
    and how often it was attempted on its own."""

    item: T
    reason: str
    detail: str
    attempts: int


def describe(exc: BaseException) -> tuple[str, str]:
    """The reason code and a detail safe to publish. An exception may carry a stable
    ``reason`` of its own (``Undecodable``: its message names only the topic, an error
    count and field names). Any other message may quote the data (asyncpg's details
    hold row values, pydantic's the input), so only the exception's type and, for
    PostgreSQL errors, the SQLSTATE and the constraint's name are kept."""
    reason = getattr(exc, "reason", None)
    if isinstance(reason, str) and reason:
        return reason, str(exc)[:200]
    parts = [type(exc).__name__]
    for attr in ("sqlstate", "constraint_name"):
        value = getattr(exc, attr, None)
        if isinstance(value, str) and value:
            parts.append(f"{attr}={value}")
    return PROCESSING_FAILED, " ".join(parts)[:200]


def _permanent(exc: BaseException) -> bool:
    """Retrying cannot help (the record itself can never be read)."""
    return getattr(exc, "reason", None) == "undecodable"


class Streak:
    """Records that failed processing since the last one that went through, across
    batches: ``limit`` in a row is the worker's failure, not its records'."""

    def __init__(self, limit: int = SYSTEMIC_STREAK) -> None:
        self.limit = limit
        self.count = 0

    def succeeded(self) -> None:
        self.count = 0

    def failed(self, detail: str) -> None:
        self.count += 1
        if self.count >= self.limit:
            raise SystemicFailure(f"{self.count} records in a row failed: {detail}")


async def isolate(
    items: Sequence[T],
    handle: Callable[[Sequence[T]], Awaitable[Any]],
    *,
    attempts: int,
    is_transient: Callable[[BaseException], bool],
    streak: Streak,
    backoff: float = 0.1,
    sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
) -> list[Failure[T]]:
    """Handle ``items`` in order; return the records given up on (none if the batch
    went through). Transient errors propagate at once (the caller's retry or the
    worker's restart deals with them), and so does ``SystemicFailure`` from ``streak``
    (an undecodable record neither breaks nor extends a streak)."""
    if attempts < 1:
        raise ValueError("attempts must be at least 1")
    failures: list[Failure[T]] = []

    async def attempt(part: Sequence[T]) -> BaseException | None:
        try:
            await handle(part)
        except Exception as exc:
            if is_transient(exc):
                raise
            return exc
        streak.succeeded()
        return None

    async def settle(part: Sequence[T]) -> None:
        last = await attempt(part)
        if last is None:
            return
        if len(part) > 1:
            middle = len(part) // 2
            await settle(part[:middle])
            await settle(part[middle:])
            return
        tried = 1
        while tried < attempts and not _permanent(last):
            await sleep(backoff * 2 ** (tried - 1))
            tried += 1
            if (last := await attempt(part)) is None:
                return
        reason, detail = describe(last)
        if not _permanent(last):
            streak.failed(detail)
        failures.append(Failure(part[0], reason, detail, tried))

    await settle(items)
    return failures


def dead_letter_headers(
    *,
    service: str,
    topic: str,
    partition: int,
    offset: int,
    failure: Failure[Any],
    at: datetime,
) -> tuple[tuple[str, bytes], ...]:
    """The headers of a dead letter: those of ``leads.rejected`` (reason, detail, where
    from, when) plus the attempts and the service that gave up."""
    return (
        (HEADER_REASON, failure.reason.encode()),
        (HEADER_DETAIL, failure.detail.encode()),
        (HEADER_SOURCE_TOPIC, topic.encode()),
        (HEADER_SOURCE_PARTITION, str(partition).encode()),
        (HEADER_SOURCE_OFFSET, str(offset).encode()),
        (HEADER_REJECTED_AT, at.isoformat().encode()),
        (HEADER_ATTEMPTS, str(failure.attempts).encode()),
        (HEADER_SERVICE, service.encode()),
    )
