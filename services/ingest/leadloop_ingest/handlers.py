"""Ingest's use case: load → decide → persist → publish, for one batch of raw records."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from leadloop.clock import Clock
from leadloop.db import retrying
from leadloop.decoding import InputDecoder
from leadloop.events import IngestOutcome
from leadloop.faults import fault_point
from leadloop.logging import get_logger
from leadloop.messaging import OutMessage, Publisher, event_message
from leadloop_ingest.domain.dedupe import (
    Decided,
    in_batch_order,
    replayed_leads,
    resolve,
    settle,
)
from leadloop_ingest.domain.guard import halt_index
from leadloop_ingest.domain.intake import (
    SOURCE_HEADER,
    Position,
    RawRecord,
    accepted_event,
    decide,
    outcome_event,
    reject_headers,
    rejection_headers,
)
from leadloop_ingest.domain.learned_score import LearnedScore
from leadloop_ingest.domain.scoring import ScoringWeights
from leadloop_ingest.domain.timeline import CrmRejection, TimelineEvent, Unusable, parse
from leadloop_ingest.domain.validation import Limits
from leadloop_ingest.ports import LeadRepository, TimelineRepository

__all__ = ["IngestGuard", "IngestHandler", "TimelineHandler", "apply_batch", "messages_for"]

log = get_logger(__name__)


async def apply_batch(store: LeadRepository, proposed: Decided) -> Decided:
    """Persist a batch's proposals once, in one transaction; the final outcome of every
    record, in batch order.

    Records already done (a redelivery) are answered from their stored outcomes; the
    others are resolved against what is stored about their people (read under the
    identity-key locks, so one person gets one lead whichever worker sees them), and a
    lead another partition's worker inserted first makes its record a duplicate.
    """
    async with store.batch() as batch:
        done = await batch.outcomes([o.position for o, _ in proposed])
        fresh = [(o, lead) for o, lead in proposed if o.position not in done]
        resolved = resolve(fresh, await batch.known(fresh)) if fresh else []
        inserted = await batch.insert_leads([lead for _, lead, _ in resolved if lead is not None])
        settled, merges = settle(resolved, inserted)
        await batch.record([o for o, _ in settled], merges)
        replayed = await batch.leads(replayed_leads(done))
        fault_point("ingest.before_commit")  # tests only: everything written, no commit
    return in_batch_order(proposed, settled, done, replayed)


class IngestGuard:
    """Runs of consecutive rejects per partition, and the halt that ends them.

    When a partition's run passes ``limit``, the records from that point on are held:
    ingest stops (its offsets stay uncommitted), reports itself not ready and logs a
    critical alert, until an operator resumes it — after fixing the producer, or to
    dead-letter the held records deliberately.
    """

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self._runs: dict[tuple[str, int], int] = {}
        self._resume = asyncio.Event()
        #: Where ingest stopped, while it is halted.
        self.halted_at: Position | None = None

    def split(self, proposed: Decided) -> tuple[Decided, Decided]:
        """The proposals to apply now and the ones held back by a halt, both in batch
        order (resolving depends on it: an original before its copies)."""
        by_partition: dict[tuple[str, int], list[bool]] = {}
        for outcome, _ in proposed:
            tp = (outcome.position.topic, outcome.position.partition)
            by_partition.setdefault(tp, []).append(outcome.outcome is IngestOutcome.REJECTED)
        cuts: dict[tuple[str, int], int] = {}
        for tp, rejected in by_partition.items():
            cut, run = halt_index(rejected, self._runs.get(tp, 0), self.limit)
            self._runs[tp] = run
            if cut is not None:
                cuts[tp] = cut
        if not cuts:
            return proposed, []
        allowed: Decided = []
        held: Decided = []
        seen: dict[tuple[str, int], int] = {}
        for item in proposed:
            pos = item[0].position
            tp = (pos.topic, pos.partition)
            index = seen.get(tp, 0)
            seen[tp] = index + 1
            if tp in cuts and index >= cuts[tp]:
                held.append(item)
                if self.halted_at is None:
                    self.halted_at = pos
            else:
                allowed.append(item)
        return allowed, held

    async def wait_for_resume(self) -> None:
        await self._resume.wait()
        self._resume.clear()
        self._runs.clear()
        self.halted_at = None

    def resume(self) -> bool:
        """Let a halted ingest go on; True if it was halted."""
        if self.halted_at is None:
            return False
        self._resume.set()
        return True


@dataclass(frozen=True)
class IngestHandler:
    store: LeadRepository
    publisher: Publisher
    clock: Clock
    limits: Limits
    weights: ScoringWeights
    pepper: bytes
    guard: IngestGuard = field(default_factory=lambda: IngestGuard(limit=0))
    #: The learned model in force, if any (``LEADLOOP_SCORE_MODEL_FILE``); the hand-set
    #: ``weights`` score the leads otherwise.
    score_model: Callable[[], LearnedScore | None] = lambda: None

    async def handle(self, records: Sequence[RawRecord]) -> Decided:
        proposed = decide(
            list(records),
            limits=self.limits,
            weights=self.score_model() or self.weights,
            pepper=self.pepper,
            now=self.clock.now(),
        )
        allowed, held = self.guard.split(proposed)
        final = await self._apply(allowed, records)
        if held:
            where = self.guard.halted_at
            log.critical(
                "ingest_halted_consecutive_invalid",
                limit=self.guard.limit,
                partition=where.partition if where else None,
                offset=where.offset if where else None,
                held=len(held),
            )
            await self.guard.wait_for_resume()
            log.warning("ingest_resumed", held=len(held))
            final += await self._apply(held, records)
        return final

    async def _apply(self, proposed: Decided, records: Sequence[RawRecord]) -> Decided:
        if not proposed:
            return []
        # An outage of PostgreSQL pauses here (offsets stay uncommitted) and resumes by itself.
        final = await retrying(lambda: apply_batch(self.store, proposed), what="ingest_batch")
        fault_point("ingest.after_commit")  # tests only: committed, nothing published yet
        await self.publisher.publish(messages_for(final, records))
        rejected = sum(1 for o, _ in final if o.outcome is IngestOutcome.REJECTED)
        if rejected:
            log.info("records_rejected", count=rejected, batch=len(final))
        return final


@dataclass(frozen=True)
class TimelineHandler:
    """Owner, stage and timeline of each lead from leads.assigned and the CRM topics."""

    store: TimelineRepository
    publisher: Publisher
    clock: Clock
    #: The timeline topics: ingest's inputs in the registry, leads.raw aside (read by
    #: the intake agent, with its own dead-letter policy).
    inputs: InputDecoder = field(
        default_factory=lambda: InputDecoder("ingest", exclude=("leads.raw",))
    )

    async def handle(self, records: Sequence[tuple[Position, str, bytes | None, bytes]]) -> int:
        """Apply (position, logical topic, key, value) records; returns how many were used."""
        now = self.clock.now()
        events: list[tuple[Position, TimelineEvent]] = []
        rejected: list[Unusable] = []
        for position, topic, _, value in records:
            parsed = parse(self.inputs.models[topic], value)
            if isinstance(parsed, CrmRejection):
                rejected.append(Unusable(position, parsed, now))
            else:
                events.append((position, parsed))
        unusable = await retrying(
            lambda: self.store.apply(events, rejected, now), what="timeline_batch"
        )
        by_position = {r[0]: r for r in records}
        await self.publisher.publish(
            [
                OutMessage(
                    topic="crm.rejected",
                    key=by_position[u.position][2],
                    value=by_position[u.position][3],
                    headers=tuple(
                        rejection_headers(
                            u.rejection.reason, u.rejection.detail, u.position, u.recorded_at
                        )
                    ),
                )
                for u in unusable
            ]
        )
        if unusable:
            log.info("crm_records_rejected", count=len(unusable), batch=len(records))
        return len(records) - len(unusable)


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
                    headers=tuple(reject_headers(outcome))
                    # Kept so a replayed native payload finds its channel's adapter again.
                    + (((SOURCE_HEADER, raw.source_hint.encode()),) if raw.source_hint else ()),
                )
            )
        out.append(event_message(outcome_event(outcome), key=outcome.source))
    return out
