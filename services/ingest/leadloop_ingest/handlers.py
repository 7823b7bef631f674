"""Ingest's use case: load → decide → persist → publish, for one batch of raw records."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

from leadloop.clock import Clock
from leadloop.db import retrying
from leadloop.events import IngestOutcome
from leadloop.logging import get_logger
from leadloop.messaging import OutMessage, Publisher, event_message
from leadloop_ingest.domain.intake import (
    LeadRecord,
    OutcomeRecord,
    RawRecord,
    accepted_event,
    decide,
    outcome_event,
    reject_headers,
)
from leadloop_ingest.domain.scoring import ScoringWeights
from leadloop_ingest.domain.validation import Limits

__all__ = ["IngestHandler", "LeadStorePort", "messages_for"]

log = get_logger(__name__)

Decided = list[tuple[OutcomeRecord, LeadRecord | None]]


class LeadStorePort(Protocol):
    async def apply(self, proposed: Decided) -> Decided:
        """Persist once; return the final outcome of every record (see adapters.postgres)."""
        ...


@dataclass(frozen=True)
class IngestHandler:
    store: LeadStorePort
    publisher: Publisher
    clock: Clock
    limits: Limits
    weights: ScoringWeights
    pepper: bytes

    async def handle(self, records: Sequence[RawRecord]) -> Decided:
        proposed = decide(
            list(records),
            limits=self.limits,
            weights=self.weights,
            pepper=self.pepper,
            now=self.clock.now(),
        )
        # An outage of PostgreSQL pauses here (offsets stay uncommitted) and resumes by itself.
        final = await retrying(lambda: self.store.apply(proposed), what="ingest_batch")
        await self.publisher.publish(messages_for(final, records))
        rejected = sum(1 for o, _ in final if o.outcome is IngestOutcome.REJECTED)
        if rejected:
            log.info("records_rejected", count=rejected, batch=len(final))
        return final


def messages_for(final: Decided, records: Sequence[RawRecord]) -> list[OutMessage]:
    by_position = {r.position: r for r in records}
    out: list[OutMessage] = []
    for outcome, lead in final:
        if outcome.outcome is IngestOutcome.ACCEPTED and lead is not None:
            out.append(event_message(accepted_event(lead), key=lead.lead_id))
        elif outcome.outcome is IngestOutcome.REJECTED:
            raw = by_position[outcome.position]
            out.append(
                OutMessage(
                    topic="leads.rejected",
                    key=raw.key,
                    value=raw.value,
                    headers=tuple(reject_headers(outcome)),
                )
            )
        out.append(event_message(outcome_event(outcome), key=outcome.source))
    return out
