"""faust wiring for ingest: the leads.raw agent and the lead-timeline agent."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime

import faust

from leadloop.kafka import batch_agent, raw_topic
from leadloop_ingest.domain.intake import SOURCE_HEADER, Position, RawRecord
from leadloop_ingest.handlers import IngestHandler, TimelineHandler

__all__ = ["register_agents"]


def register_agents(
    app: faust.App,
    handler: IngestHandler,
    timeline: TimelineHandler,
    *,
    prefix: str,
    batch_size: int,
    within: float,
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

    async def handle_timeline(events: Sequence[faust.EventT[bytes]]) -> object:
        return await timeline.handle(
            [
                (
                    Position(e.message.topic, e.message.partition, e.message.offset),
                    e.message.topic[len(prefix) :],
                    e.message.key,
                    e.message.value or b"",
                )
                for e in events
            ]
        )

    batch_agent(
        app,
        raw_topic(app, *timeline.inputs.topics, prefix=prefix),
        name="ingest-lead-timeline",
        handle=handle_timeline,
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
        source_hint=_source_header(m.headers),
    )


def _source_header(headers: object) -> str | None:
    items = headers.items() if isinstance(headers, dict) else (headers or [])
    for name, value in items:  # type: ignore[attr-defined]
        if name == SOURCE_HEADER and isinstance(value, bytes):
            try:
                return value.decode("utf-8")
            except UnicodeDecodeError:
                return None
    return None
