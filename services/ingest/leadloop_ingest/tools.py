"""Operator tools for ingest: CSV batch import, replay of rejected records, erasure.

    python -m leadloop_ingest.tools import-csv FILE --source trade_show_csv
    python -m leadloop_ingest.tools replay --reason invalid_phone --since 2025-03-03T00:00:00Z
    python -m leadloop_ingest.tools erase --email someone@example.com --phone +8613900000000

Both produce to ``leads.raw`` with acks=all and count a record as sent only once the
broker acknowledged it. Both are safe to run twice: ingest treats (``source``,
``source_lead_id``) as the idempotency key, so a record sent again is a duplicate,
never a second lead. Their output is counts, never a record's contents.

``erase`` removes a person's personal data from PostgreSQL (see its help); it too is
safe to run twice and prints counts only.

Exit codes: 0 done, 1 Kafka (or, for erase, PostgreSQL) failed part-way (what was
acknowledged is reported; run again), 2 bad arguments, configuration or input file
(nothing was sent).
"""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
from collections import Counter
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Annotated, Any, Final

import asyncpg
import typer
import yaml
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.errors import KafkaError
from pydantic import AliasChoices, Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from leadloop import settings as settings_mod
from leadloop.events import RejectReason
from leadloop.logging import configure
from leadloop.settings import KafkaSettings, require_secret
from leadloop.topics import REGISTRY, TopicSpec, qualified
from leadloop_ingest.adapters.channels_file import load_channels
from leadloop_ingest.adapters.erasure import ErasureStore, KafkaTombstones
from leadloop_ingest.domain.channels import Channels
from leadloop_ingest.domain.csv_rows import ColumnPlan, is_blank, plan_columns, row_to_raw
from leadloop_ingest.domain.erasure import (
    ErasureCounts,
    ErasureSubject,
    InvalidSubject,
    subject_for,
    tombstone_topics,
)
from leadloop_ingest.domain.validation import Limits, Rejection, validate
from leadloop_ingest.settings import IngestSettings

__all__ = [
    "SOURCE_HEADER",
    "EraseSettings",
    "ImportSummary",
    "ReplaySelection",
    "ReplaySummary",
    "ToolSettings",
    "app",
    "build_limits",
    "erase_person",
    "import_rows",
    "replay_rejected",
]

#: Header naming a record's channel, read by ingest to pick the channel's adapter.
SOURCE_HEADER: Final = "leadloop-source"
#: Header on a replayed record: where in leads.rejected it was read.
REPLAYED_FROM_HEADER: Final = "replayed-from"
#: A replay that reads nothing for this long while behind the end offsets has stalled.
_REPLAY_STALL_S: Final = 60.0

app = typer.Typer(
    help="leadloop ingest tools: CSV batch import, replay of rejected records, erasure",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",  # help paragraphs re-flow instead of keeping line breaks
)
console = Console()
err_console = Console(stderr=True)


class ToolSettings(BaseSettings):
    """The tools' environment (``LEADLOOP_`` prefix, ``__`` for nesting). Unlike the
    service, they need neither the database nor the identity pepper."""

    model_config = SettingsConfigDict(
        env_prefix="LEADLOOP_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    kafka: KafkaSettings = KafkaSettings()
    #: The channels ingest accepts (the same file and variable as the service).
    channels_file: Path = IngestSettings.model_fields["channels_file"].default
    max_record_bytes: int = IngestSettings.model_fields["max_record_bytes"].default


def build_limits(settings: ToolSettings, channels: Channels) -> Limits:
    """The limits ingest validates with (see bootstrap): the channels file decides."""
    return Limits(
        max_record_bytes=settings.max_record_bytes,
        sources=frozenset(channels.channels),
        default_phone_region=channels.phone_regions(),
        channels=channels,
    )


def _producer(kafka: KafkaSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **kafka.client_kwargs(),
        acks="all",
        enable_idempotence=True,  # broker-side retries must not add copies
        linger_ms=10,  # fill batches: thousands of rows go out in a few requests
        max_batch_size=256 * 1024,
    )


class _Acks:
    """Sends handed to the producer; a record counts once the broker acknowledged it."""

    def __init__(self) -> None:
        self._pending: list[tuple[str, asyncio.Future[Any]]] = []
        self.acknowledged: Counter[str] = Counter()

    def __len__(self) -> int:
        return len(self._pending)

    def add(self, label: str, ack: asyncio.Future[Any]) -> None:
        self._pending.append((label, ack))

    async def settle(self) -> None:
        """Wait for every pending acknowledgement; raise the first failure."""
        if not self._pending:
            return
        await asyncio.wait([ack for _, ack in self._pending])
        failure: BaseException | None = None
        for label, ack in self._pending:
            if ack.cancelled():
                continue
            if (error := ack.exception()) is None:
                self.acknowledged[label] += 1
            elif failure is None:
                failure = error
        self._pending.clear()
        if failure is not None:
            raise failure


# ------------------------------------------------------------------------------ import-csv


@dataclass(slots=True)
class ImportSummary:
    """What an import did, in counts (no row contents)."""

    rows_read: int = 0
    blank: int = 0
    sent: int = 0
    rejected: Counter[str] = field(default_factory=Counter)
    #: Rows sharing a source_lead_id with an earlier row: ingest keeps the first.
    repeated_ids: int = 0
    interrupted: bool = False

    def table(self, title: str) -> Table:
        table = Table("import", "rows", title=title)
        table.add_row("status", "interrupted" if self.interrupted else "completed")
        table.add_row("read", str(self.rows_read))
        if self.blank:
            table.add_row("blank (skipped)", str(self.blank))
        table.add_row("sent to leads.raw", str(self.sent))
        table.add_row("rejected (not sent)", str(sum(self.rejected.values())))
        for reason, n in sorted(self.rejected.items()):
            table.add_row(f"  {reason}", str(n))
        if self.repeated_ids:
            table.add_row("repeated ids (ingest keeps the first)", str(self.repeated_ids))
        return table


def _data_rows(f: IO[str], delimiter: str) -> tuple[list[str], Iterator[tuple[int, list[str]]]]:
    """The header row and the data rows numbered as a spreadsheet shows them (the
    header is row 1)."""
    reader = csv.reader(f, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise _FileProblem("the file is empty: a header row is required")
    return header, ((n, cells) for n, cells in enumerate(reader, start=2))


class _FileProblem(Exception):
    """The input file cannot be imported; the message names no row contents."""


def _preflight(path: Path, encoding: str, delimiter: str) -> tuple[ColumnPlan, int]:
    """Read the whole file once before anything is sent: a decoding or CSV error found
    half-way would otherwise leave a partial import. Returns the plan and row count."""
    try:
        with path.open(encoding=encoding, newline="") as f:
            header, rows = _data_rows(f, delimiter)
            count = sum(1 for _ in rows)
    except UnicodeDecodeError as exc:
        raise _FileProblem(
            f"not valid {encoding} (byte {exc.start} of a line); try --encoding gb18030 "
            "for files saved by Chinese Excel"
        ) from None
    except csv.Error as exc:
        raise _FileProblem(f"not readable as CSV: {exc}") from None
    except OSError as exc:
        raise _FileProblem(f"cannot read the file: {exc.strerror}") from None
    plan = plan_columns(header)
    if not plan.has_contact:
        raise _FileProblem(
            "no column is an email or a phone, so every row would be rejected; "
            f"columns: {', '.join(plan.headers)}"
        )
    return plan, count


async def import_rows(
    path: Path,
    plan: ColumnPlan,
    *,
    source: str,
    limits: Limits,
    kafka: KafkaSettings,
    encoding: str = "utf-8-sig",
    delimiter: str = ",",
    rate: float = 0.0,
    report: IO[str] | None = None,
    progress: Progress | None = None,
    total: int | None = None,
    summary: ImportSummary | None = None,
) -> ImportSummary:
    """Validate every row of ``path`` and send the valid ones to ``leads.raw``.

    Each record is keyed ``<source>:<source_lead_id>`` and carries the
    ``leadloop-source`` header. Rejected rows are counted and, with ``report``, written
    there as ``row, reason, detail`` followed by the row's own cells. Counts go into
    ``summary`` as they happen, so a caller that passes one keeps the partial counts
    when a Kafka error propagates.
    """
    summary = summary if summary is not None else ImportSummary()
    topic = qualified("leads.raw", kafka.topic_prefix)
    writer = csv.writer(report) if report is not None else None
    if writer is not None:
        writer.writerow(["row", "reason", "detail", *plan.headers])
    task = progress.add_task("importing", total=total) if progress is not None else None
    seen: set[str] = set()
    acks = _Acks()
    loop = asyncio.get_running_loop()
    began = loop.time()
    producer = _producer(kafka)
    await producer.start()
    try:
        with path.open(encoding=encoding, newline="") as f:
            _, rows = _data_rows(f, delimiter)
            for row_number, cells in rows:
                summary.rows_read += 1
                if progress is not None and task is not None:
                    progress.advance(task)
                if is_blank(cells):
                    summary.blank += 1
                    continue
                record = row_to_raw(
                    plan, cells, source=source, file_name=path.name, row_number=row_number
                )
                value = json.dumps(record, ensure_ascii=False).encode("utf-8")
                verdict = validate(value, limits)
                if isinstance(verdict, Rejection):
                    summary.rejected[verdict.reason.value] += 1
                    if writer is not None:
                        writer.writerow([row_number, verdict.reason.value, verdict.detail, *cells])
                    continue
                lead_id = verdict.raw.source_lead_id
                if lead_id in seen:
                    summary.repeated_ids += 1
                seen.add(lead_id)
                if rate > 0:
                    # Paced against the start, so delays do not add up.
                    delay = began + (summary.sent + len(acks)) / rate - loop.time()
                    if delay > 0:
                        await asyncio.sleep(delay)
                ack = await producer.send(
                    topic,
                    value,
                    key=f"{source}:{lead_id}".encode(),
                    headers=[(SOURCE_HEADER, source.encode())],
                )
                acks.add("sent", ack)
                if len(acks) >= kafka.batch_size:
                    await _settle_into(acks, summary)
        await _settle_into(acks, summary)
    finally:
        await producer.stop()  # flushes what was handed over
        await _settle_into(acks, summary, raise_failure=False)
    return summary


async def _settle_into(acks: _Acks, summary: ImportSummary, *, raise_failure: bool = True) -> None:
    try:
        await acks.settle()
    except KafkaError:
        if raise_failure:
            raise
    finally:
        summary.sent += acks.acknowledged.pop("sent", 0)


@app.command("import-csv")
def import_csv(
    file: Annotated[
        Path, typer.Argument(help="CSV file with a header row", exists=True, dir_okay=False)
    ],
    source: Annotated[str, typer.Option(help="channel id of the rows, e.g. trade_show_csv")],
    delimiter: Annotated[str, typer.Option(help="field delimiter (one character)")] = ",",
    encoding: Annotated[
        str,
        typer.Option(help="file encoding; utf-8-sig also reads files with a byte-order mark"),
    ] = "utf-8-sig",
    report: Annotated[
        Path | None,
        typer.Option(
            help="write rejected rows here (CSV: row, reason, detail, then the row's own "
            "cells). It CONTAINS THE ROWS' PERSONAL DATA, copied from your file: keep it "
            "where you keep the file, delete it when done."
        ),
    ] = None,
    rate: Annotated[
        float, typer.Option(min=0, help="rows per second to send (0 = as fast as possible)")
    ] = 0.0,
) -> None:
    """Validate a CSV file of leads row by row and send the valid rows to leads.raw.

    Columns are matched by name in English or Chinese (E-mail/邮箱 -> email,
    Mobile/手机 -> phone, Name/姓名 -> name, Company/公司 -> company, ...); other
    columns become attributes. Rows are validated exactly as ingest will; rejected rows
    are not sent. Without an `id` column, each row's id is derived from the file name
    and row number, so importing the same file again changes nothing (ingest counts
    the rows as duplicates).
    """
    if len(delimiter) != 1:
        raise typer.BadParameter("must be one character", param_hint="--delimiter")
    configure("ingest-tools", "warning")
    settings = settings_mod.load(ToolSettings)
    limits = build_limits(settings, _channels(settings.channels_file))
    if source not in limits.sources:
        err_console.print(
            f"[red]--source {source!r} is not a configured channel[/red] "
            f"(configured: {', '.join(sorted(limits.sources))})"
        )
        raise typer.Exit(2)
    try:
        plan, total = _preflight(file, encoding, delimiter)
    except _FileProblem as exc:
        err_console.print(f"[red]{escape(file.name)}: {escape(str(exc))}[/red]")
        raise typer.Exit(2) from None
    _describe_plan(plan)

    summary = ImportSummary()
    with contextlib.ExitStack() as stack:
        out = (
            stack.enter_context(report.open("w", encoding="utf-8-sig", newline=""))
            if report is not None
            else None
        )
        progress = stack.enter_context(
            Progress(
                TextColumn("[progress.description]{task.description}"),
                BarColumn(),
                MofNCompleteColumn(),
                TimeRemainingColumn(),
                console=err_console,
            )
        )
        failure = _run_import(
            file,
            plan,
            summary=summary,
            source=source,
            limits=limits,
            kafka=settings.kafka,
            encoding=encoding,
            delimiter=delimiter,
            rate=rate,
            report=out,
            progress=progress,
            total=total,
        )
    console.print(summary.table(f"import of {file.name} as {source}"))
    if report is not None and summary.rejected:
        console.print(f"rejected rows written to {report}")
    if failure is not None:
        err_console.print(
            f"[red]Kafka failed: {escape(failure)}[/red]; rows acknowledged so far are sent. "
            "Run the same import again: rows already sent are duplicates and change nothing."
        )
        raise typer.Exit(1)


def _run_import(
    file: Path, plan: ColumnPlan, *, summary: ImportSummary, **kwargs: Any
) -> str | None:
    """Run the import; on a Kafka failure or Ctrl-C the summary keeps partial counts."""
    try:
        asyncio.run(import_rows(file, plan, summary=summary, **kwargs))
    except KafkaError as exc:
        return f"{type(exc).__name__}: {exc}"
    except KeyboardInterrupt:
        summary.interrupted = True
    return None


def _describe_plan(plan: ColumnPlan) -> None:
    # Column names are the operator's own headers, not personal data.
    mapped = ", ".join(f"{h} -> {f}" for h, f in plan.mapped().items())
    err_console.print(f"columns: {mapped}")
    if plan.unmapped():
        err_console.print(f"attributes: {', '.join(plan.unmapped())}")
    if not plan.has_id:
        err_console.print(
            "no id column: ids derive from the file name and row number "
            "(re-importing this file is idempotent; re-sorting or renaming it is not)"
        )


def _channels(path: Path) -> Channels:
    try:
        return load_channels(path)
    except (OSError, yaml.YAMLError, ValidationError) as exc:
        err_console.print(
            f"[red]cannot load channels file {escape(str(path))}: {type(exc).__name__}[/red]"
        )
        err_console.print(str(exc), markup=False)
        raise typer.Exit(2) from None


# ---------------------------------------------------------------------------------- replay


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


@dataclass(slots=True)
class ReplaySummary:
    scanned: int = 0
    selected: Counter[str] = field(default_factory=Counter)
    replayed: Counter[str] = field(default_factory=Counter)
    dry_run: bool = False

    def table(self, title: str) -> Table:
        table = Table("reason", "selected", "replayed", title=title)
        for reason in sorted(self.selected):
            done = "-" if self.dry_run else str(self.replayed[reason])
            table.add_row(reason, str(self.selected[reason]), done)
        total = "-" if self.dry_run else str(sum(self.replayed.values()))
        table.add_row("total", str(sum(self.selected.values())), total)
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
) -> ReplaySummary:
    """Re-produce the selected records of ``leads.rejected`` to ``leads.raw``.

    Reads every partition from the beginning to the end offsets taken at the start,
    so records rejected again while the replay runs are not read again. Each replayed
    record keeps its original value and key, gets ``replayed-from:
    <topic>/<partition>/<offset>`` and keeps its ``leadloop-source`` header. Counts go
    into ``summary`` as they happen, so a caller that passes one keeps partial counts
    when an error propagates.
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
    producer = _producer(kafka)
    acks = _Acks()
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


@app.command()
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
    configure("ingest-tools", "warning")
    kafka = settings_mod.load(ToolSettings).kafka
    summary = ReplaySummary()
    title = f"replay of {qualified('leads.rejected', kafka.topic_prefix)}"
    try:
        asyncio.run(replay_rejected(kafka, selection, dry_run=dry_run, summary=summary))
    except LookupError as exc:
        err_console.print(f"[red]{escape(str(exc))}[/red]; run `leadloop topics create`")
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


# ----------------------------------------------------------------------------------- erase


class EraseSettings(BaseSettings):
    """The erase command's environment. PostgreSQL as ingest's own login when
    ``LEADLOOP_INGEST_DATABASE_URL`` is set (an erasure touches ingest's tables only),
    else ``DATABASE_URL``; the identity pepper ingest runs with (to find the person's
    leads by their identity keys); Kafka, for tombstones."""

    model_config = SettingsConfigDict(
        env_prefix="LEADLOOP_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    database_url: SecretStr = Field(
        validation_alias=AliasChoices("LEADLOOP_INGEST_DATABASE_URL", "DATABASE_URL")
    )
    identity_pepper: SecretStr | None = None
    kafka: KafkaSettings = KafkaSettings()

    @field_validator("identity_pepper")
    @classmethod
    def _pepper(cls, v: SecretStr | None) -> SecretStr:
        return require_secret(v, "LEADLOOP_IDENTITY_PEPPER")


async def erase_person(
    subject: ErasureSubject,
    *,
    database_url: str,
    pepper: bytes,
    kafka: KafkaSettings,
    registry: Sequence[TopicSpec] = REGISTRY,
    now: datetime | None = None,
) -> ErasureCounts:
    """Erase the person's data in one transaction and record the erasure.

    Tombstones go to every compacted topic of ``registry`` keyed by a lead (none in
    the project's registry, so Kafka is not contacted then).
    """
    topics = tombstone_topics(registry)
    at = now or datetime.now(UTC)
    conn = await asyncpg.connect(database_url)
    try:
        store = ErasureStore(conn)
        if not topics:
            return await store.erase(subject, pepper=pepper, now=at)
        producer = _producer(kafka)
        await producer.start()
        try:
            tombstones = KafkaTombstones(producer, topics, kafka.topic_prefix)
            return await store.erase(subject, pepper=pepper, now=at, tombstones=tombstones)
        finally:
            await producer.stop()
    finally:
        await conn.close()


def _erasure_table(counts: ErasureCounts, registry: Sequence[TopicSpec]) -> Table:
    table = Table("erased", "count", title="erasure")
    table.add_row("leads anonymised", str(counts.leads))
    for name, n in sorted(counts.rows.items()):
        table.add_row(f"  rows changed in {name}", str(n))
    topics = tombstone_topics(registry)
    table.add_row(
        "tombstones" + ("" if topics else " (no compacted topic is keyed by a lead)"),
        str(counts.tombstones),
    )
    kept = ", ".join(
        f"{s.name} {s.retention_ms // 86_400_000} days" for s in registry if s.contains_pii
    )
    table.caption = (
        "nothing held this person's data (already erased?); the request is recorded. "
        if not counts.total_rows
        else ""
    ) + f"Records on Kafka topics with personal data expire with their retention ({kept})."
    return table


@app.command()
def erase(
    email: Annotated[
        str | None, typer.Option(help="the person's email (normalised as ingest does)")
    ] = None,
    phone: Annotated[
        str | None,
        typer.Option(help="the person's phone, best in international form (+86 139...)"),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(help="region of a phone given without a country code, e.g. CN"),
    ] = None,
) -> None:
    """Erase a person's personal data: every lead holding their email or phone.

    In one PostgreSQL transaction: the leads' contact fields, name, company, title,
    message, attributes and identity keys are cleared (lead ids, source, routing
    attributes, score, owner, stage, assignments and counters stay); merged records
    lose their personal fields; activity outcomes (free text) are cleared. Tombstones go
    to compacted topics keyed by a lead, if any exist. The request is recorded in the
    `erasures` table with keyed hashes, never the email or phone. Running it again
    changes nothing more. Prints counts only. Needs LEADLOOP_IDENTITY_PEPPER (the one
    ingest runs with) and DATABASE_URL or LEADLOOP_INGEST_DATABASE_URL.
    """
    try:
        subject = subject_for(email, phone, region)
    except InvalidSubject as exc:
        raise typer.BadParameter(str(exc)) from None
    configure("ingest-tools", "warning")
    settings = settings_mod.load(EraseSettings)
    assert settings.identity_pepper is not None  # enforced by the validator
    try:
        counts = asyncio.run(
            erase_person(
                subject,
                database_url=settings.database_url.get_secret_value(),
                pepper=settings.identity_pepper.get_secret_value().encode(),
                kafka=settings.kafka,
            )
        )
    except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, KafkaError) as exc:
        # The type only: an error's text could quote a value.
        err_console.print(
            f"[red]erasure failed ({type(exc).__name__}); nothing was committed[/red]. "
            "Run the same command again."
        )
        raise typer.Exit(1) from None
    console.print(_erasure_table(counts, REGISTRY))


if __name__ == "__main__":
    app()
