"""Sending due outbox rows: coalescing, rate limits by scheduling, retries, fallback.

Pure: the sender loop (handlers) claims rows, asks ``plan`` which go out now and as
which messages, sends, and asks ``after_retry`` / ``fallback_for`` what to do with a
failure.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

from leadloop_notifier.domain.config import ROBOT_KINDS
from leadloop_notifier.domain.model import Notice

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_ITEMS",
    "Batch",
    "Row",
    "backoff_seconds",
    "destination",
    "fallback_for",
    "message_id",
    "plan",
]

#: Rows listed in one message at most; more go in the next message.
MAX_ITEMS = 50
#: Room kept in a message for its subject and numbering.
HEADER_BYTES = 160
#: Sends of one row before it is dead-lettered ("retries_exhausted") and falls back.
MAX_ATTEMPTS = 12
_BACKOFF_BASE_S = 2.0
_BACKOFF_CAP_S = 900.0
_NS = uuid.UUID("b6a0f6a4-3f5e-4d39-9b7e-1d1f3c2a7e55")


@dataclass(frozen=True, slots=True)
class Row:
    """A pending outbox row as the sender sees it."""

    notice: Notice
    attempts: int
    not_before: datetime | None
    seq: int
    #: The message the row was last sent in (leased or retried), None if never sent.
    message_id: str | None = None

    @property
    def ready_at(self) -> datetime:
        """When the row may go: its due time, or later after a retry."""
        nb = self.not_before
        return self.notice.due_at if nb is None or nb < self.notice.due_at else nb


@dataclass(frozen=True, slots=True)
class Batch:
    """Rows for one (recipient, channel) sent as one message."""

    recipient: str
    channel: str
    rows: tuple[Row, ...]
    message_id: str


def destination(kind: str, channel: str, recipient: str) -> str:
    """What a vendor's rate limit counts: a robot (a group chat) whoever it talks about,
    otherwise one person on one channel."""
    return channel if kind in ROBOT_KINDS else f"{channel}\x1f{recipient}"


def message_id(rows: Sequence[Row]) -> str:
    """Deterministic over the rows' keys: a group resent after a crash has the same id
    (the idempotency key a vendor that supports one is given)."""
    keys = sorted("\x1f".join(r.notice.key) for r in rows)
    return str(uuid.uuid5(_NS, "\x1e".join(keys)))


def plan(
    rows: Sequence[Row],
    now: datetime,
    *,
    kinds: Mapping[str, str],
    per_minute: Mapping[str, int],
    next_free: Mapping[str, datetime],
    budgets: Mapping[str, int] | None = None,
    item_bytes: Callable[[Row], int] = lambda row: 0,
) -> tuple[list[Batch], dict[str, datetime]]:
    """Which rows go out now, as which messages, and the destinations' new next-free times.

    Coalescing: the rows of one (recipient, channel) wait until the earliest of them has
    been ready for its coalescing window, then every row of the pair ready by ``now``
    goes in one message (in due order, at most ``MAX_ITEMS`` rows and ``budgets[channel]``
    bytes, counting ``item_bytes`` of each row: no transport has to truncate a batch).
    Rows already sent once in a message (``message_id``) are sent again in the same
    grouping, before new rows (exactly once in effect with deduplicating vendors).
    Rate limits: a destination takes one message per ``60 / per_minute`` seconds; a batch
    whose destination is not free yet waits (it is never dropped). ``kinds``,
    ``per_minute`` and ``budgets`` are by channel name.
    """
    groups: dict[tuple[str, str], list[Row]] = {}
    for row in sorted(rows, key=lambda r: (r.ready_at, r.seq)):
        if row.ready_at <= now:
            groups.setdefault((row.notice.recipient, row.notice.channel), []).append(row)
    free = dict(next_free)
    batches: list[Batch] = []
    for (recipient, channel), members in groups.items():
        ripe = min(r.ready_at + timedelta(seconds=r.notice.coalesce_s) for r in members)
        if ripe > now:
            continue
        kind = kinds.get(channel, "")
        dest = destination(kind, channel, recipient)
        budget = (budgets or {}).get(channel, 2048) - HEADER_BYTES
        # Several messages may be due for one destination: each one takes a slot.
        for chunk in _regrouped(members, budget, item_bytes):
            slot = free.get(dest)
            if slot is not None and slot > now:
                break
            gap = timedelta(seconds=60 / max(1, per_minute.get(channel, 60)))
            free[dest] = max(now, slot or now) + gap
            batches.append(Batch(recipient, channel, chunk, message_id(chunk)))
    return batches, free


def _regrouped(
    rows: Sequence[Row], budget: int, item_bytes: Callable[[Row], int]
) -> list[tuple[Row, ...]]:
    """Rows that went out before (a lease that ran out after a crash, a retry) go out
    again exactly as they were grouped, first: the same rows make the same message id
    and the same text, which is what vendors deduplicate on. New rows are chunked after
    them."""
    again: dict[str, list[Row]] = {}
    fresh: list[Row] = []
    for row in rows:
        if row.message_id is None:
            fresh.append(row)
        else:
            again.setdefault(row.message_id, []).append(row)
    return [tuple(g) for g in again.values()] + _chunks(fresh, budget, item_bytes)


def _chunks(
    rows: Sequence[Row], budget: int, item_bytes: Callable[[Row], int]
) -> list[tuple[Row, ...]]:
    """``rows`` in order, cut into messages of at most ``MAX_ITEMS`` rows and ``budget``
    bytes (a single row over the budget still goes, alone)."""
    chunks: list[tuple[Row, ...]] = []
    current: list[Row] = []
    used = 0
    for row in rows:
        size = item_bytes(row)
        if current and (len(current) >= MAX_ITEMS or used + size > budget):
            chunks.append(tuple(current))
            current, used = [], 0
        current.append(row)
        used += size
    if current:
        chunks.append(tuple(current))
    return chunks


def backoff_seconds(attempts: int, retry_after_s: float | None, jitter: float) -> float:
    """Exponential backoff with jitter after the ``attempts``-th failed send; never sooner
    than the vendor's ``retry_after_s``. ``jitter`` in [0, 1) (a random draw) spreads
    retries over the upper half of the step."""
    step = min(_BACKOFF_CAP_S, _BACKOFF_BASE_S * 2 ** max(0, attempts - 1))
    wait = step * (0.5 + 0.5 * jitter)
    return max(wait, retry_after_s or 0.0)


def fallback_for(row: Row, now: datetime) -> Notice | None:
    """After a permanent failure (dead letter) of ``row``: the same notice on the
    recipient's next channel in their order, due now; None when there is none left.
    Made once: its key (notice, recipient, next channel) is unique in the outbox."""
    notice = row.notice
    if not notice.fallbacks:
        return None
    payload: dict[str, Any] = {**notice.payload, "fallback_from": notice.channel}
    return replace(
        notice,
        channel=notice.fallbacks[0],
        fallbacks=notice.fallbacks[1:],
        payload=payload,
        due_at=max(now, notice.due_at),
    )
