"""``import-csv``: validate a CSV file of leads row by row and send the valid rows to
``leads.raw``."""

from __future__ import annotations

import asyncio
import contextlib
import csv
import json
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Annotated, Any

import typer
from aiokafka.errors import KafkaError
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn
from rich.table import Table

from leadloop import settings as settings_mod
from leadloop.settings import KafkaSettings
from leadloop.topics import qualified
from leadloop_ingest.domain.csv_rows import (
    ColumnPlan,
    is_blank,
    plan_columns,
    report_row,
    row_to_raw,
    spreadsheet_safe,
)
from leadloop_ingest.domain.intake import SOURCE_HEADER
from leadloop_ingest.domain.validation import Limits, Rejection, validate
from leadloop_ingest.tools.common import (
    Acks,
    ToolSettings,
    configure_logging,
    console,
    err_console,
    kafka_producer,
    load_limits,
)

__all__ = ["ImportSummary", "import_csv", "import_rows"]


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
        writer.writerow(["row", "reason", "detail", *map(spreadsheet_safe, plan.headers)])
    task = progress.add_task("importing", total=total) if progress is not None else None
    seen: set[str] = set()
    acks = Acks()
    loop = asyncio.get_running_loop()
    began = loop.time()
    producer = kafka_producer(kafka)
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
                        writer.writerow(
                            report_row(row_number, verdict.reason.value, verdict.detail, cells)
                        )
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


async def _settle_into(acks: Acks, summary: ImportSummary, *, raise_failure: bool = True) -> None:
    try:
        await acks.settle()
    except KafkaError:
        if raise_failure:
            raise
    finally:
        summary.sent += acks.acknowledged.pop("sent", 0)


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
            "where you keep the file, delete it when done. A cell that starts like a "
            "spreadsheet formula (= + - @) is written with a leading apostrophe."
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
    configure_logging()
    settings = settings_mod.load(ToolSettings)
    limits = load_limits(settings)
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
