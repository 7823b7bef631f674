"""faust wiring for ingest: the leads.raw agent. Agent bodies stay a few lines long."""

from __future__ import annotations

from datetime import UTC, datetime

import faust

from leadloop.kafka import process_or_die, raw_topic

from leadloop_ingest.domain.intake import Position, RawRecord
from leadloop_ingest.handlers import IngestHandler

__all__ = ["register_agents"]


def register_agents(
    app: faust.App, handler: IngestHandler, *, prefix: str, batch_size: int, within: float
) -> None:
    source = raw_topic(app, "leads.raw", prefix)

    # concurrency=1: batches of one partition are applied in order by one writer.
    @app.agent(source, concurrency=1, name="ingest-leads-raw")
    async def ingest_raw(stream: faust.StreamT[bytes]) -> None:
        async for events in stream.take_events(batch_size, within=within):
            records = [_record(e) for e in events]
            await process_or_die(handler.handle(records), what="ingest_batch")


def _record(event: faust.EventT[bytes]) -> RawRecord:
    m = event.message
    return RawRecord(
        position=Position(m.topic, m.partition, m.offset),
        key=m.key,
        value=m.value if m.value is not None else b"",
        timestamp=datetime.fromtimestamp(m.timestamp, UTC),
    )
