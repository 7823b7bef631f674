"""``erase``: erase people's personal data from ingest's tables (and tombstone them
on any compacted topic keyed by a lead)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Annotated

import asyncpg
import typer
from aiokafka.errors import KafkaError
from pydantic import AliasChoices, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.table import Table

from leadloop import settings as settings_mod
from leadloop.settings import KafkaSettings, require_secret
from leadloop.topics import REGISTRY, TopicSpec
from leadloop_ingest.adapters.erasure import ErasureStore, KafkaTombstones
from leadloop_ingest.domain.erasure import (
    ErasureCounts,
    ErasureSubject,
    InvalidSubject,
    subjects_from_lines,
    tombstone_topics,
)
from leadloop_ingest.tools.common import configure_logging, console, err_console, kafka_producer

__all__ = ["EraseSettings", "erase", "erase_person"]


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
        producer = kafka_producer(kafka)
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


_IN_ARGV = (
    "{flag} would put the person's {what} in the process list and the shell history; "
    "write one person a line (email=..., phone=..., region=CN) to a file and give "
    "--from-file FILE, or pipe the lines on stdin (--from-file -)"
)


def _refuse_in_argv(flag: str, what: str) -> Callable[[str | None], str | None]:
    def refuse(value: str | None) -> str | None:
        if value is not None:
            # typer prints the message, which names the flag, never the value.
            raise typer.BadParameter(_IN_ARGV.format(flag=flag, what=what))
        return value

    return refuse


def _read_identities(from_file: str | None) -> list[str]:
    if from_file is None or from_file == "-":
        if from_file is None and sys.stdin.isatty():
            raise typer.BadParameter(
                "give --from-file FILE, or pipe one person a line on stdin",
                param_hint="--from-file",
            )
        return sys.stdin.read().splitlines()
    try:
        return Path(from_file).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise typer.BadParameter(
            f"cannot read it ({type(exc).__name__})", param_hint="--from-file"
        ) from None


def erase(
    from_file: Annotated[
        str | None,
        typer.Option(
            "--from-file",
            help="file naming the people to erase, one a line: email=..., phone=..., "
            "region=CN, separated by commas (a bare value is an email if it holds @, "
            "else a phone); '-' or no option: read the lines from stdin",
        ),
    ] = None,
    region: Annotated[
        str | None,
        typer.Option(help="region of phones given without a country code, e.g. CN"),
    ] = None,
    email: Annotated[
        str | None,
        typer.Option(hidden=True, callback=_refuse_in_argv("--email", "email address")),
    ] = None,
    phone: Annotated[
        str | None,
        typer.Option(hidden=True, callback=_refuse_in_argv("--phone", "phone number")),
    ] = None,
) -> None:
    """Erase people's personal data: every lead holding their email or phone.

    The people are read from a file or stdin, never from the command line (which other
    users see in the process list and which stays in shell history):

        printf 'email=someone@example.com, phone=+86 139 4417 2288\\n' | ... erase

    For each person, in one PostgreSQL transaction: the leads' contact fields, name,
    company, title, message, attributes and identity keys are cleared (lead ids, source,
    routing attributes, score, owner, stage, assignments and counters stay); merged
    records lose their personal fields; activity outcomes (free text) are cleared.
    Tombstones go to compacted topics keyed by a lead, if any exist. Each request is
    recorded in the `erasures` table with keyed hashes, never the email or phone. Running
    it again changes nothing more. Prints counts only. A line that names nobody stops the
    command before anyone is erased. Needs LEADLOOP_IDENTITY_PEPPER (the one ingest runs
    with) and DATABASE_URL or LEADLOOP_INGEST_DATABASE_URL.
    """
    del email, phone  # refused by their callbacks
    try:
        subjects = subjects_from_lines(_read_identities(from_file), region)
    except InvalidSubject as exc:
        raise typer.BadParameter(str(exc), param_hint="--from-file") from None
    configure_logging()
    settings = settings_mod.load(EraseSettings)
    assert settings.identity_pepper is not None  # enforced by the validator
    for number, subject in enumerate(subjects, start=1):
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
                f"[red]erasure of person {number} of {len(subjects)} failed "
                f"({type(exc).__name__}); it was not committed[/red]"
                + (f" (persons 1 to {number - 1} are erased)" if number > 1 else "")
                + ". Run the same command again."
            )
            raise typer.Exit(1) from None
        table = _erasure_table(counts, REGISTRY)
        if len(subjects) > 1:
            table.title = f"erasure of person {number} of {len(subjects)}"
        console.print(table)
