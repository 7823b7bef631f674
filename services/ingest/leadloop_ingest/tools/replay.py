"""``replay``: re-feed selected records of ``leads.rejected`` to ``leads.raw`` after a
fix — never one of an erased person.

An erasure removes a person from PostgreSQL, but their rejected records stay on
``leads.rejected`` for its retention: replayed, one would bring them back as a lead. So
the replay reads the erasure records first (keyed HMACs, ``erasures``) and withholds
every selected record that holds an erased email or phone (``domain.erasure.
erasure_keys_of``); it needs the database and the identity pepper for that, and refuses
to run without them."""

from __future__ import annotations

import asyncio
import contextlib
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any, Final

import asyncpg
import typer
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import AliasChoices, Field, SecretStr, field_validator
from rich.markup import escape
from rich.table import Table

from leadloop import settings as settings_mod
from leadloop.events import RejectReason
from leadloop.settings import KafkaSettings, require_secret
from leadloop.topics import qualified
from leadloop_ingest.domain.erasure import erasure_keys_of
from leadloop_ingest.domain.intake import SOURCE_HEADER
from leadloop_ingest.tools.common import (
    Acks,
    ToolSettings,
    configure_logging,
    console,
    err_console,
    kafka_producer,
    load_limits,
)

__all__ = [
    "REPLAYED_FROM_HEADER",
    "Erased",
    "ReplaySelection",
    "ReplaySettings",
    "ReplaySummary",
    "erased_identities",
    "replay",
    "replay_rejected",
]

#: (record value, its channel) -> whether it holds an erased person's email or phone.
Erased = Callable[[bytes, str | None], bool]

#: Header on a replayed record: where in leads.rejected it was read.
REPLAYED_FROM_HEADER: Final = "replayed-from"
#: A replay that reads nothing for this long while behind the end offsets has stalled.
_REPLAY_STALL_S: Final = 60.0


@dataclass(frozen=True, slots=True)
class ReplaySelection:
    """Which rejects to replay: by ``reject-reason`` and ``rejected-at`` (since
    inclusive, until exclusive)."""

    reasons: frozenset[str]
    since: datetime | None = None
    until: datetime | None = None

    def select(self, headers: Mapping[str, bytes]) -> str | None:
        """The record's reason when it is selected, else None."""
        reason = headers.get("reject-reason", b"").decode("utf-8", "replace")
        if reason not in self.reasons:
            return None
        if self.since is None and self.until is None:
            return reason
        at = _parse_header_time(headers.get("rejected-at"))
        if at is None:  # no time: cannot be shown to lie in the range
            return None
        if self.since is not None and at < self.since:
            return None
        if self.until is not None and at >= self.until:
            return None
        return reason


def _parse_header_time(value: bytes | None) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value.decode("ascii"))
    except (UnicodeDecodeError, ValueError):
        return None
    return at if at.tzinfo is not None else None


class ReplaySettings(ToolSettings):
    """The replay's environment: the tools' own, plus PostgreSQL (ingest's login when
    ``LEADLOOP_INGEST_DATABASE_URL`` is set, else ``DATABASE_URL``) and the identity
    pepper, to withhold erased people's records."""

    database_url: SecretStr = Field(
        validation_alias=AliasChoices("LEADLOOP_INGEST_DATABASE_URL", "DATABASE_URL")
    )
    identity_pepper: SecretStr | None = None

    @field_validator("identity_pepper")
    @classmethod
    def _pepper(cls, v: SecretStr | None) -> SecretStr:
        return require_secret(v, "LEADLOOP_IDENTITY_PEPPER")


async def erased_identities(database_url: str, pepper: bytes, regions: Mapping[str, str]) -> Erased:
    """Whether a record holds an erased email or phone, by the erasure records stored
    now (read once: an erasure made while the replay runs is not seen)."""
    conn = await asyncpg.connect(database_url)
    try:
        rows = await conn.fetch("SELECT subject_email_key, subject_phone_key FROM erasures")
    finally:
        await conn.close()
    erased = {key for row in rows for key in row.values() if key is not None}

    def holds_erased(value: bytes, source: str | None) -> bool:
        region = regions.get(source) if source is not None else None
        return bool(erased) and not erased.isdisjoint(erasure_keys_of(value, pepper, region))

    return holds_erased


@dataclass(slots=True)
class ReplaySummary:
    scanned: int = 0
    selected: Counter[str] = field(default_factory=Counter)
    replayed: Counter[str] = field(default_factory=Counter)
    #: Selected, but holding an erased person's email or phone: never sent.
    withheld: Counter[str] = field(default_factory=Counter)
    dry_run: bool = False

    def table(self, title: str) -> Table:
        table = Table("reason", "selected", "erased (withheld)", "replayed", title=title)
        for reason in sorted(self.selected):
            done = "-" if self.dry_run else str(self.replayed[reason])
            table.add_row(reason, str(self.selected[reason]), str(self.withheld[reason]), done)
        total = "-" if self.dry_run else str(sum(self.replayed.values()))
        withheld = str(sum(self.withheld.values()))
        table.add_row("total", str(sum(self.selected.values())), withheld, total)
        table.caption = f"{self.scanned} rejected records read" + (
            " (dry run: nothing sent)" if self.dry_run else ""
        )
        return table


async def replay_rejected(
    kafka: KafkaSettings,
    selection: ReplaySelection,
    *,
    dry_run: bool = False,
    summary: ReplaySummary | None = None,
    erased: Erased | None = None,
) -> ReplaySummary:
    """Re-produce the selected records of ``leads.rejected`` to ``leads.raw``.

    Reads every partition from the beginning to the end offsets taken at the start,
    so records rejected again while the replay runs are not read again. Each replayed
    record keeps its original value and key, gets ``replayed-from:
    <topic>/<partition>/<offset>`` and keeps its ``leadloop-source`` header. Counts go
    into ``summary`` as they happen, so a caller that passes one keeps partial counts
    when an error propagates. A selected record ``erased`` says holds an erased person's
    data is counted as withheld and never sent.
    """
    summary = summary if summary is not None else ReplaySummary()
    summary.dry_run = dry_run
    source_topic = qualified("leads.rejected", kafka.topic_prefix)
    target_topic = qualified("leads.raw", kafka.topic_prefix)
    consumer = AIOKafkaConsumer(
        **kafka.client_kwargs(),
        group_id=None,  # a replay is a one-off read: no committed offsets, no group
        enable_auto_commit=False,
        auto_offset_reset="earliest",
    )
    # The producer also answers the partition lookup: it waits for the topic's metadata.
    producer = kafka_producer(kafka)
    acks = Acks()
    await consumer.start()
    try:
        await producer.start()
        try:
            if source_topic not in await consumer.topics():
                raise LookupError(f"topic {source_topic!r} does not exist")
            partitions = await producer.partitions_for(source_topic)
            tps = [TopicPartition(source_topic, p) for p in sorted(partitions)]
            consumer.assign(tps)
            ends: dict[TopicPartition, int] = await consumer.end_offsets(tps)
            # An explicit seek: seek_to_beginning() right after assign() can lose the race
            # with the reset that assign() started and leave the consumer at the end.
            for tp, start in (await consumer.beginning_offsets(tps)).items():
                consumer.seek(tp, start)
            async for record in _read_to(consumer, ends):
                summary.scanned += 1
                headers = dict(record.headers or ())
                reason = selection.select(headers)
                if reason is None or record.value is None:
                    continue
                summary.selected[reason] += 1
                source = headers.get(SOURCE_HEADER)
                if erased is not None and erased(
                    record.value, source.decode("utf-8", "replace") if source else None
                ):
                    summary.withheld[reason] += 1
                    continue
                if dry_run:
                    continue
                out_headers = [
                    (
                        REPLAYED_FROM_HEADER,
                        f"{record.topic}/{record.partition}/{record.offset}".encode(),
                    )
                ]
                if SOURCE_HEADER in headers:
                    out_headers.append((SOURCE_HEADER, headers[SOURCE_HEADER]))
                ack = await producer.send(
                    target_topic, record.value, key=record.key, headers=out_headers
                )
                acks.add(reason, ack)
                if len(acks) >= kafka.batch_size:
                    await acks.settle()
            await acks.settle()
        finally:
            await producer.stop()  # flushes what was handed over
            with contextlib.suppress(KafkaError):
                await acks.settle()  # already reported if it failed above
            summary.replayed.update(acks.acknowledged)
    finally:
        await consumer.stop()
    return summary


async def _read_to(consumer: AIOKafkaConsumer, ends: Mapping[TopicPartition, int]) -> Any:
    """Every record before ``ends``, partition by partition as fetched."""
    remaining = {tp for tp, end in ends.items() if await consumer.position(tp) < end}
    loop = asyncio.get_running_loop()
    last_progress = loop.time()
    while remaining:
        batches = await consumer.getmany(*remaining, timeout_ms=500)
        for tp, records in batches.items():
            for record in records:
                if record.offset >= ends[tp]:
                    break
                yield record
            last_progress = loop.time()
        for tp in list(remaining):
            if await consumer.position(tp) >= ends[tp]:
                remaining.discard(tp)
                consumer.pause(tp)
        if remaining and loop.time() - last_progress > _REPLAY_STALL_S:
            raise TimeoutError(
                f"replay read nothing for {_REPLAY_STALL_S:.0f} s on "
                f"{len(remaining)} partition(s) short of their end offsets"
            )


def _rfc3339(value: str | None, option: str) -> datetime | None:
    if value is None:
        return None
    try:
        at = datetime.fromisoformat(value)
    except ValueError:
        raise typer.BadParameter("not an RFC 3339 time", param_hint=option) from None
    if at.tzinfo is None:
        raise typer.BadParameter("needs an offset, e.g. Z or +08:00", param_hint=option)
    return at


def replay(
    reason: Annotated[
        list[RejectReason],
        typer.Option(
            "--reason", help="replay rejects with this reject-reason (repeat for several)"
        ),
    ],
    since: Annotated[
        str | None,
        typer.Option(help="only rejects with rejected-at at or after this RFC 3339 time"),
    ] = None,
    until: Annotated[
        str | None, typer.Option(help="only rejects with rejected-at before this RFC 3339 time")
    ] = None,
    dry_run: Annotated[bool, typer.Option(help="only count what would be replayed")] = False,
) -> None:
    """Re-feed selected records of leads.rejected to leads.raw after a fix.

    Reads leads.rejected from the beginning to its end at the start of the run and
    re-produces each selected record's original bytes and key, with a `replayed-from`
    header. Replaying the same selection twice is harmless: (source, source_lead_id)
    is ingest's idempotency key, so a lead already accepted comes back as a duplicate.
    Rejects for bad_signature are never replayed: their sender was not authenticated.
    Records holding an erased person's email or phone are never replayed either (needs
    the database and LEADLOOP_IDENTITY_PEPPER, as `erase` does).
    """
    if RejectReason.BAD_SIGNATURE in reason:
        raise typer.BadParameter(
            "bad_signature rejects are never replayed: their sender was not authenticated",
            param_hint="--reason",
        )
    selection = ReplaySelection(
        reasons=frozenset(r.value for r in reason),
        since=_rfc3339(since, "--since"),
        until=_rfc3339(until, "--until"),
    )
    configure_logging()
    settings = settings_mod.load(ReplaySettings)
    assert settings.identity_pepper is not None  # enforced by the validator
    kafka = settings.kafka
    regions = load_limits(settings).default_phone_region
    summary = ReplaySummary()
    title = f"replay of {qualified('leads.rejected', kafka.topic_prefix)}"

    async def run() -> None:
        assert settings.identity_pepper is not None
        erased = await erased_identities(
            settings.database_url.get_secret_value(),
            settings.identity_pepper.get_secret_value().encode(),
            regions,
        )
        await replay_rejected(kafka, selection, dry_run=dry_run, summary=summary, erased=erased)

    try:
        asyncio.run(run())
    except LookupError as exc:
        err_console.print(f"[red]{escape(str(exc))}[/red]; run `leadloop topics create`")
        raise typer.Exit(2) from None
    except (OSError, asyncpg.PostgresError) as exc:
        err_console.print(
            f"[red]cannot read the erasures: {type(exc).__name__}[/red]; nothing was replayed "
            "(a record of an erased person must never come back)"
        )
        raise typer.Exit(2) from None
    except (KafkaError, TimeoutError, KeyboardInterrupt) as exc:
        console.print(summary.table(title + " (incomplete)"))
        err_console.print(
            f"[red]replay stopped: {type(exc).__name__} {escape(str(exc))}[/red]; the records "
            "counted as "
            "replayed are on leads.raw. Running the same replay again is harmless."
        )
        raise typer.Exit(1) from None
    console.print(summary.table(title))
