"""What every ingest tool needs: its environment, the channels and limits loaded by the
service's own functions (bootstrap), an acks=all producer, and the consoles."""

from __future__ import annotations

import asyncio
from collections import Counter
from pathlib import Path
from typing import Annotated, Any

from aiokafka import AIOKafkaProducer
from pydantic_settings import BaseSettings, SettingsConfigDict
from rich.console import Console

from leadloop.config_file import exit_on_config_error
from leadloop.logging import configure
from leadloop.settings import KafkaSettings
from leadloop_ingest.adapters.channels_file import load_channels
from leadloop_ingest.bootstrap import build_limits
from leadloop_ingest.domain.validation import Limits
from leadloop_ingest.settings import IngestSettings

__all__ = [
    "Acks",
    "ToolSettings",
    "configure_logging",
    "console",
    "err_console",
    "kafka_producer",
    "load_limits",
]

#: Tables and summaries (stdout); problems, progress and the column plan (stderr).
console = Console()
err_console = Console(stderr=True)

_INGEST = IngestSettings.model_fields


class ToolSettings(BaseSettings):
    """The tools' environment (``LEADLOOP_`` prefix, ``__`` for nesting). Unlike the
    service, they need neither the database nor the identity pepper. The channels file
    and the record size limit are the service's own fields (same variables, defaults
    and bounds), so a tool judges records exactly as ingest does."""

    model_config = SettingsConfigDict(
        env_prefix="LEADLOOP_", env_nested_delimiter="__", frozen=True, extra="ignore"
    )

    kafka: KafkaSettings = KafkaSettings()
    channels_file: Annotated[Path, _INGEST["channels_file"]]
    max_record_bytes: Annotated[int, _INGEST["max_record_bytes"]]


def configure_logging() -> None:
    """Warnings and errors only: a tool's output is its table."""
    configure("ingest-tools", "warning")


def load_limits(settings: ToolSettings) -> Limits:
    """The limits ingest validates with, loaded as bootstrap loads them: a channels file
    that cannot be used exits with status 2, naming the file and the field."""
    with exit_on_config_error("ingest-tools"):
        channels = load_channels(settings.channels_file)
    return build_limits(channels, settings.max_record_bytes)


def kafka_producer(kafka: KafkaSettings) -> AIOKafkaProducer:
    return AIOKafkaProducer(
        **kafka.producer_kwargs(),
        linger_ms=10,  # fill batches: thousands of rows go out in a few requests
        max_batch_size=256 * 1024,
    )


class Acks:
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
