"""``leadloop dead-letters list|replay --service S``: the records a service parked.

A service parks a record it cannot decode or process on ``<service>.dead-letter``
(``leadloop.kafka.DeadLetters``): the original key and bytes with ``reject-*`` headers.
``list`` shows them (position, reason, detail, attempts, source; never the value: it
may hold personal data on ``ingest.dead-letter``). ``replay`` re-publishes the original
key and bytes to the source topic, acknowledged by every in-sync replica, with a
``replayed-from`` header naming the dead letter. Run it after the fix: every consumer of
the source topic sees the record again, which is harmless because each applies an event
once by its id; a record that still fails is parked again, at a new position.

It needs the right to read the dead-letter topic and to write the source topics: the
operator principal reads the dead letters; writing downstream topics takes the
producing service's principal or an admin (docs/security.md).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Annotated

import typer
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.table import Table

from leadloop import settings as settings_mod
from leadloop.messaging import OutMessage
from leadloop.poison import (
    HEADER_ATTEMPTS,
    HEADER_DETAIL,
    HEADER_REASON,
    HEADER_REJECTED_AT,
    HEADER_REPLAYED_FROM,
    HEADER_SOURCE_OFFSET,
    HEADER_SOURCE_PARTITION,
    HEADER_SOURCE_TOPIC,
)
from leadloop.settings import KafkaSettings
from leadloop.topics import CONSUMING_SERVICES, dead_letter_topic, qualified

__all__ = ["DeadLetter", "app", "parse", "replay_message", "select"]

app = typer.Typer(
    help="Records a service parked on its dead-letter topic: list them, replay them after a fix",
    no_args_is_help=True,
    add_completion=False,
)
console = Console()


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """One parked record: where it sits, why, and where it came from."""

    partition: int
    offset: int
    key: bytes | None
    value: bytes
    reason: str
    detail: str
    attempts: int
    source_topic: str
    source_partition: int
    source_offset: int
    rejected_at: datetime | None


def _int(raw: bytes | None) -> int:
    try:
        return int(raw or b"")
    except ValueError:
        return -1


def _time(raw: bytes | None) -> datetime | None:
    try:
        at = datetime.fromisoformat((raw or b"").decode())
    except ValueError:
        return None
    return at if at.tzinfo is not None else None


def parse(
    partition: int,
    offset: int,
    key: bytes | None,
    value: bytes | None,
    headers: Iterable[tuple[str, bytes]],
) -> DeadLetter:
    """A dead letter from its record; a header that is missing reads as empty (-1)."""
    h = dict(headers)

    def text(name: str) -> str:
        return h.get(name, b"").decode("utf-8", "replace")

    return DeadLetter(
        partition=partition,
        offset=offset,
        key=key,
        value=value or b"",
        reason=text(HEADER_REASON),
        detail=text(HEADER_DETAIL),
        attempts=_int(h.get(HEADER_ATTEMPTS)),
        source_topic=text(HEADER_SOURCE_TOPIC),
        source_partition=_int(h.get(HEADER_SOURCE_PARTITION)),
        source_offset=_int(h.get(HEADER_SOURCE_OFFSET)),
        rejected_at=_time(h.get(HEADER_REJECTED_AT)),
    )


def select(
    letters: Iterable[DeadLetter],
    *,
    since: datetime | None = None,
    reasons: Sequence[str] = (),
    offsets: Sequence[tuple[int, int]] = (),
) -> list[DeadLetter]:
    """The dead letters parked at or after ``since``, with one of ``reasons`` and at
    one of ``offsets`` (partition, offset) of the dead-letter topic; empty: any."""
    return [
        d
        for d in letters
        if (since is None or (d.rejected_at is not None and d.rejected_at >= since))
        and (not reasons or d.reason in reasons)
        and (not offsets or (d.partition, d.offset) in offsets)
    ]


def replay_message(letter: DeadLetter, service: str) -> OutMessage:
    """The original key and bytes for the source topic, marked as a replay."""
    if not letter.source_topic:
        raise ValueError(f"dead letter {letter.partition}:{letter.offset} names no source topic")
    mark = f"{dead_letter_topic(service)}:{letter.partition}:{letter.offset}"
    return OutMessage(
        topic=letter.source_topic,
        key=letter.key,
        value=letter.value,
        headers=((HEADER_REPLAYED_FROM, mark.encode()),),
    )


async def read(kafka: KafkaSettings, service: str, *, within: float = 60) -> list[DeadLetter]:
    """Every record of ``service``'s dead-letter topic, up to its end offsets as they
    were when reading started. No consumer group: nothing is committed."""
    name = qualified(dead_letter_topic(service), kafka.topic_prefix)
    consumer = AIOKafkaConsumer(
        name, enable_auto_commit=False, auto_offset_reset="earliest", **kafka.client_kwargs()
    )
    await consumer.start()
    try:
        deadline = time.monotonic() + within
        while not consumer.assignment():
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: no partitions within {within}s (is it created?)")
            await asyncio.sleep(0.1)
        tps = sorted(consumer.assignment())
        ends = await consumer.end_offsets(tps)
        await consumer.seek_to_beginning(*tps)
        found: list[DeadLetter] = []
        pending = {tp for tp in tps if ends[tp] > 0}
        while pending:
            if time.monotonic() > deadline:
                raise TimeoutError(f"{name}: not read to its end within {within}s")
            batch = await consumer.getmany(*pending, timeout_ms=500)
            for tp, records in batch.items():
                found += [
                    parse(r.partition, r.offset, r.key, r.value, r.headers)
                    for r in records
                    if r.offset < ends[tp]
                ]
            for tp in list(pending):
                if await consumer.position(tp) >= ends[tp]:
                    pending.discard(tp)
        return sorted(found, key=lambda d: (d.partition, d.offset))
    finally:
        await consumer.stop()


async def publish(kafka: KafkaSettings, messages: Sequence[OutMessage]) -> None:
    """Send every message and wait for all acknowledgements (acks=all)."""
    producer = AIOKafkaProducer(**kafka.producer_kwargs())
    await producer.start()
    try:
        futures = [
            await producer.send(
                qualified(m.topic, kafka.topic_prefix),
                m.value,
                key=m.key,
                headers=list(m.headers),
            )
            for m in messages
        ]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


class _Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="LEADLOOP_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    kafka: KafkaSettings = KafkaSettings()


def _kafka() -> KafkaSettings:
    return settings_mod.load(_Settings).kafka


def _service(value: str) -> str:
    if value not in CONSUMING_SERVICES:
        raise typer.BadParameter(f"one of {', '.join(CONSUMING_SERVICES)}")
    return value


def _since(value: str | None) -> datetime | None:
    if value is None:
        return None
    at = _time(value.encode())
    if at is None:
        raise typer.BadParameter("an RFC 3339 time with an offset, e.g. 2026-05-04T00:00:00+00:00")
    return at


def _offsets(values: Sequence[str]) -> list[tuple[int, int]]:
    try:
        return [(int(p), int(o)) for p, o in (v.split(":", 1) for v in values)]
    except ValueError:
        raise typer.BadParameter("PARTITION:OFFSET of the dead-letter topic, e.g. 0:17") from None


Service = Annotated[
    str, typer.Option("--service", callback=_service, help="the service whose dead letters")
]
Since = Annotated[str | None, typer.Option(help="only those parked at or after this RFC 3339 time")]
Reason = Annotated[
    list[str], typer.Option("--reason", help="only this reason (repeat for several)")
]


def _table(letters: Sequence[DeadLetter], title: str) -> Table:
    table = Table(title=title)
    for column in ("at", "parked", "reason", "detail", "attempts", "source"):
        table.add_column(column)
    for d in letters:
        table.add_row(
            f"{d.partition}:{d.offset}",
            d.rejected_at.isoformat() if d.rejected_at else "?",
            d.reason,
            d.detail,
            str(d.attempts),
            f"{d.source_topic} {d.source_partition}:{d.source_offset}",
        )
    return table


@app.command("list")
def list_(service: Service, since: Since = None, reason: Reason = []) -> None:  # noqa: B006 - typer reads the default
    """Show the dead letters (never their values)."""
    letters = select(asyncio.run(read(_kafka(), service)), since=_since(since), reasons=reason)
    console.print(_table(letters, dead_letter_topic(service)))
    console.print(f"{len(letters)} dead letter(s)")


@app.command()
def replay(
    service: Service,
    since: Since = None,
    reason: Reason = [],  # noqa: B006 - typer reads the default
    offset: Annotated[
        list[str],
        typer.Option(help="only the dead letter at PARTITION:OFFSET (repeat for several)"),
    ] = [],  # noqa: B006 - typer reads the default
    dry_run: Annotated[bool, typer.Option(help="show what would be replayed")] = False,
) -> None:
    """Re-publish the original records to their source topics, marked replayed-from."""
    kafka = _kafka()
    letters = select(
        asyncio.run(read(kafka, service)),
        since=_since(since),
        reasons=reason,
        offsets=_offsets(offset),
    )
    console.print(_table(letters, f"{dead_letter_topic(service)}: to replay"))
    if dry_run or not letters:
        console.print(
            f"{len(letters)} dead letter(s) would be replayed" if dry_run else "nothing to replay"
        )
        return
    asyncio.run(publish(kafka, [replay_message(d, service) for d in letters]))
    console.print(f"{len(letters)} dead letter(s) replayed")
