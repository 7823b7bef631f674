"""faust wiring for ingest: the leads.raw agent. Agent bodies stay a few lines long."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import faust

from leadloop.kafka import batch_agent, raw_topic
from leadloop_ingest.domain.intake import Position, RawRecord
from leadloop_ingest.handlers import IngestHandler

__all__ = ["register_agents"]


def register_agents(
    app: faust.App, handler: IngestHandler, *, prefix: str, batch_size: int, within: float
) -> None:
    async def handle(events: Sequence[faust.EventT[bytes]]) -> object:
        return await handler.handle([_record(e) for e in events])

    batch_agent(
        app,
        raw_topic(app, "leads.raw", prefix=prefix),
        name="ingest-leads-raw",
        handle=handle,
        batch_size=batch_size,
        within=within,
    )


def _record(event: faust.EventT[bytes]) -> RawRecord:
    m = event.message
    return RawRecord(
        position=Position(m.topic, m.partition, m.offset),
        key=m.key,
        value=m.value if m.value is not None else b"",
        timestamp=datetime.fromtimestamp(m.timestamp, UTC),
    )
