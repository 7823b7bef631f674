"""notifier's use cases: apply input events, send due notices, make digests, bridge alerts."""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from typing import Any, Protocol

from leadloop.calendar import CalendarSet
from leadloop.clock import Clock
from leadloop.db import retrying
from leadloop.decoding import InputDecoder
from leadloop.events import (
    EscalationRaised,
    LeadAccepted,
    LeadAssigned,
    RepUpdated,
    ReviewPublished,
    StageChanged,
)
from leadloop.logging import get_logger
from leadloop_notifier.domain.alerts import alert_notice
from leadloop_notifier.domain.config import ROBOT_KINDS, NotifyConfig
from leadloop_notifier.domain.digest import digest_day, digest_notice
from leadloop_notifier.domain.fold import Input, fold
from leadloop_notifier.domain.routing import plain_text
from leadloop_notifier.domain.sending import (
    MAX_ATTEMPTS,
    MAX_ITEMS,
    Batch,
    Row,
    backoff_seconds,
    destination,
    fallback_for,
    plan,
)
from leadloop_notifier.ports import NotifierRepository
from leadloop_notifier.rendering import Renderer, TemplateError

__all__ = ["Metrics", "NotifierHandler", "Outcome", "Transport"]

log = get_logger(__name__)

_CODE = re.compile(r"^[a-z0-9_.:-]{1,40}$")
#: Rows deleted per statement by the retention pass.
RETENTION_BATCH = 5_000
#: How long a stopping worker waits for its messages in flight to be sent and marked.
SHUTDOWN_GRACE_S = 15.0
#: Room kept per notice for a lead's name (``plain_text``: 64 characters, UTF-8).
NAME_BYTES = 4 * 64 + 1


class Outcome(Protocol):
    """What a transport reports (the channel adapter's ``Sent``)."""

    @property
    def outcome(self) -> str: ...
    @property
    def code(self) -> str: ...
    @property
    def retry_after_s(self) -> float | None: ...


class Transport(Protocol):
    """The send side of the channel adapter's ``Channel`` with the message shape built by
    the caller (``bootstrap`` adapts one to the other)."""

    kind: str
    per_minute: int

    async def deliver(
        self,
        address: str,
        subject: str,
        text: str,
        markdown: str | None,
        html: str | None,
        dedupe_key: str | None = None,
    ) -> Outcome: ...


class Metrics(Protocol):
    def sent(self, channel: str, kind: str, outcome: str, n: int = 1) -> None: ...
    def dead_letter(self, channel: str, code: str) -> None: ...
    def delivered_after(self, channel: str, seconds: float) -> None: ...
    def pending(self, by_channel: Mapping[str, int]) -> None: ...


def bounded_code(code: str) -> str:
    """A vendor code as a label value: stable tokens pass, anything else is ``other``."""
    return code if _CODE.match(code) else "other"


def input_key(event: Input) -> str:
    """The consumer-side dedupe key of an input event."""
    if isinstance(event, RepUpdated) and event.event_id is None:
        return f"rep:{event.rep_id}:{event.updated_at.isoformat()}"
    assert event.event_id is not None
    return event.event_id


@dataclass
class NotifierHandler:
    store: NotifierRepository
    clock: Clock
    config: NotifyConfig
    calendars: CalendarSet
    renderer: Renderer
    transports: Mapping[str, Transport]
    #: Addresses of group recipients (``team:<id>``, ``alert:<route>``), from the env.
    group_addresses: Mapping[str, str]
    metrics: Metrics
    claim_limit: int = 500
    send_concurrency: int = 16
    lease_seconds: float = 60.0
    retention_days: float = 30.0
    inputs: InputDecoder = field(default_factory=lambda: InputDecoder("notifier"))

    # --- inputs ---------------------------------------------------------------------

    async def handle(self, messages: Sequence[tuple[str, bytes]]) -> int:
        """Apply (logical topic, value) pairs; undecodable events are skipped. Returns the
        outbox rows added."""
        events: list[Input] = [
            event
            for event in self.inputs.decode_all(messages)
            if isinstance(
                event,
                LeadAccepted
                | LeadAssigned
                | EscalationRaised
                | StageChanged
                | RepUpdated
                | ReviewPublished,
            )
        ]
        if not events:
            return 0
        return await retrying(lambda: self._apply(events), what="notifier_apply")

    async def _apply(self, events: list[Input]) -> int:
        now = self.clock.now()
        keys = [input_key(e) for e in events]
        async with self.store.transaction() as tx:
            new = await tx.claim_events(keys, now)
            fresh: list[Input] = []
            for key, event in zip(keys, events, strict=True):
                if key in new:
                    new.discard(key)  # a duplicate inside the batch counts once
                    fresh.append(event)
            if not fresh:
                return 0
            reps: set[str] = set()
            roster: set[str] = set()
            leads: set[str] = set()
            steps: set[str] = set()
            managers: dict[str, tuple[str, ...]] = {}
            for e in fresh:
                if isinstance(e, RepUpdated):
                    reps.add(e.rep_id)
                    roster.add(e.rep_id)
                    continue
                if isinstance(e, ReviewPublished):
                    if not managers:
                        managers = await tx.managers()
                        reps.update(managers)
                    continue
                leads.add(e.lead_id)
                if isinstance(e, LeadAssigned):
                    reps.update(r for r in (e.owner_id,) if r)
                elif isinstance(e, EscalationRaised):
                    steps.add(e.escalation_id)
                    reps.update(r for r in (e.owner_id, e.manager_id) if r)
                elif isinstance(e, StageChanged):
                    reps.add(e.rep_id)
            view = await tx.load_view(reps, leads, steps, roster)
            view.managers = managers
            changes = fold(fresh, view, self.config, self.calendars, now)
            return await tx.save(changes, now)

    # --- the sender -----------------------------------------------------------------

    async def send_due(self) -> int:
        """Send what is due now; returns the rows sent. Runs on every worker: rows are
        claimed with SKIP LOCKED and a lease, so two workers never send one row at once."""
        total = 0
        while True:
            batches, contacts, claimed = await retrying(self._claim, what="notifier_claim")
            if batches:
                total += await self._send_all(batches, contacts)
            if claimed < self.claim_limit or not batches:
                return total

    async def _send_all(
        self, batches: list[Batch], contacts: Mapping[str, Mapping[str, str]]
    ) -> int:
        gate = asyncio.Semaphore(self.send_concurrency)

        async def one(b: Batch) -> int:
            async with gate:
                return await self._send(b, contacts)

        work = asyncio.ensure_future(asyncio.gather(*(one(b) for b in batches)))
        try:
            return sum(await asyncio.shield(work))
        except asyncio.CancelledError:
            # Shutdown (SIGTERM) while messages are in flight: let them finish and be
            # marked, so that a deploy does not resend what vendors already accepted.
            # Only a crash leaves the lease to run out (docs/notifier.md).
            try:
                await asyncio.wait_for(asyncio.shield(work), timeout=SHUTDOWN_GRACE_S)
            except (TimeoutError, asyncio.CancelledError):
                log.warning("sends_unfinished_at_shutdown", messages=len(batches))
            raise

    async def _claim(self) -> tuple[list[Batch], dict[str, Mapping[str, str]], int]:
        now = self.clock.now()
        kinds = {name: t.kind for name, t in self.transports.items()}
        per_minute = {name: t.per_minute for name, t in self.transports.items()}
        async with self.store.transaction() as tx:
            robots = [name for name, kind in kinds.items() if kind in ROBOT_KINDS]
            rows = await tx.candidates(now, self.claim_limit, MAX_ITEMS, robots)
            if not rows:
                return [], {}, 0
            dests = {
                destination(kinds.get(r.notice.channel, ""), r.notice.channel, r.notice.recipient)
                for r in rows
            }
            free = await tx.next_free(dests)
            batches, new_free = plan(
                rows,
                now,
                kinds=kinds,
                per_minute=per_minute,
                next_free=free,
                budgets={name: self.config.message_bytes(name) for name in self.transports},
                item_bytes=self._item_bytes,
            )
            await tx.set_next_free({d: t for d, t in new_free.items() if free.get(d) != t})
            await tx.lease(batches, self.lease_seconds)
            people = {
                b.recipient for b in batches if not b.recipient.startswith(("team:", "alert:"))
            }
            contacts = await tx.contacts(people)
        return batches, contacts, len(rows)

    def _template_set(self, recipient: str, team_id: str) -> str:
        if recipient.startswith("alert:"):
            route = self.config.alertmanager.get(recipient[6:])
            return route.templates if route is not None else "en"
        return self.config.team(team_id).templates

    def _shows_names(self, recipient: str, team_id: str) -> bool:
        """Names go to the people of a team that opted in, never to team chats or alerts."""
        if recipient.startswith(("team:", "alert:")):
            return False
        return self.config.team(team_id).include_name

    def _item_bytes(self, row: Row) -> int:
        n = row.notice
        named = n.lead_id is not None and self._shows_names(n.recipient, n.team_id)
        return self.renderer.item_bytes(
            self._template_set(n.recipient, n.team_id),
            n.payload,
            name_bytes=NAME_BYTES if named else 0,
        )

    async def _names(self, batch: Batch) -> dict[str, str]:
        """The lead names a message to an opted-in team shows, read (and audited) now;
        erased leads have none. Names stay in memory: never stored, logged or labelled."""
        if not self._shows_names(batch.recipient, batch.rows[0].notice.team_id):
            return {}
        lead_ids = sorted({r.notice.lead_id for r in batch.rows if r.notice.lead_id})
        if not lead_ids:
            return {}
        now = self.clock.now()

        async def read() -> dict[str, str]:
            async with self.store.transaction() as tx:
                return await tx.read_names(lead_ids, batch.recipient, now)

        raw = await retrying(read, what="notifier_names")
        return {lead: name for lead, value in raw.items() if (name := plain_text(value))}

    async def _send(self, batch: Batch, contacts: Mapping[str, Mapping[str, str]]) -> int:
        transport = self.transports.get(batch.channel)
        if batch.recipient.startswith(("team:", "alert:")):
            address = self.group_addresses.get(batch.recipient)
        else:
            address = contacts.get(batch.recipient, {}).get(batch.channel)
        if transport is None:
            return await self._dead(batch, "unknown_channel")
        if not address:
            return await self._dead(batch, "no_address")
        names = await self._names(batch)
        try:
            message = self.renderer.render(
                self._template_set(batch.recipient, batch.rows[0].notice.team_id),
                [r.notice.payload for r in batch.rows],
                names,
            )
        except TemplateError:
            log.error("template_failed", channel=batch.channel, exc_info=True)
            return await self._dead(batch, "template_error", fall_back=False)
        try:
            # The message id is derived from the rows' keys and the text from their stored
            # payloads: a resend of this message after a crash carries the same key and
            # the same bytes, so vendors that deduplicate show it once.
            sent = await transport.deliver(
                address,
                message.subject,
                message.text,
                message.markdown,
                message.html,
                dedupe_key=batch.message_id,
            )
            outcome, code, after = sent.outcome, sent.code, sent.retry_after_s
        except Exception as exc:  # a transport must not raise; if it does, retry later
            log.warning("transport_raised", channel=batch.channel, error=type(exc).__name__)
            outcome, code, after = "retry", f"raised:{type(exc).__name__.lower()}"[:40], None
        code = bounded_code(code)
        if outcome == "delivered":
            return await self._delivered(batch, code)
        if outcome == "failed":
            return await self._dead(batch, code)
        attempts = max(r.attempts for r in batch.rows) + 1
        if attempts >= MAX_ATTEMPTS:
            return await self._dead(batch, "retries_exhausted")
        wait = backoff_seconds(attempts, after, secrets.randbelow(1000) / 1000)
        not_before = self.clock.now() + timedelta(seconds=wait)
        await retrying(lambda: self._retry_later(batch, not_before, code), what="notifier_mark")
        for r in batch.rows:
            self.metrics.sent(batch.channel, r.notice.kind, "retry")
        return 0

    async def _retry_later(self, batch: Batch, not_before: datetime, code: str) -> None:
        async with self.store.transaction() as tx:
            await tx.mark_retry(batch, not_before, code)

    async def _delivered(self, batch: Batch, code: str) -> int:
        now = self.clock.now()

        async def mark() -> int:
            async with self.store.transaction() as tx:
                return await tx.mark_sent(batch, now, code)

        marked = await retrying(mark, what="notifier_mark")
        for r in batch.rows:
            self.metrics.sent(batch.channel, r.notice.kind, "delivered")
            self.metrics.delivered_after(
                batch.channel, max(0.0, (now - r.notice.origin_at).total_seconds())
            )
        return marked

    async def _dead(self, batch: Batch, code: str, *, fall_back: bool = True) -> int:
        now = self.clock.now()
        fallbacks = [f for r in batch.rows if (f := fallback_for(r, now)) is not None]

        async def mark() -> None:
            async with self.store.transaction() as tx:
                await tx.mark_dead(batch, code)
                if fall_back:
                    await tx.add_notices(fallbacks, now)

        await retrying(mark, what="notifier_mark")
        log.warning("dead_letter", channel=batch.channel, code=code, rows=len(batch.rows))
        for r in batch.rows:
            self.metrics.sent(batch.channel, r.notice.kind, "failed")
            self.metrics.dead_letter(batch.channel, code)
        return 0

    async def refresh_pending(self) -> None:
        async def read() -> dict[str, int]:
            async with self.store.transaction() as tx:
                return await tx.pending_by_channel()

        counts = await retrying(read, what="notifier_pending")
        self.metrics.pending({name: counts.get(name, 0) for name in self.config.channels})

    # --- retention ------------------------------------------------------------------

    async def forget_old(self) -> int:
        """Delete what is older than ``retention_days`` (in batches, short transactions)."""
        before = self.clock.now() - timedelta(days=self.retention_days)

        async def one() -> int:
            async with self.store.transaction() as tx:
                return await tx.forget(before, RETENTION_BATCH)

        total = 0
        while n := await retrying(one, what="notifier_retention"):
            total += n
        return total

    # --- the digest -----------------------------------------------------------------

    async def make_digests(self) -> int:
        """Give every active rep whose working day has begun their digest for that local
        date, once (a row per rep and date)."""
        if not self.config.digest:
            return 0
        return await retrying(self._make_digests, what="notifier_digest")

    async def _make_digests(self) -> int:
        now = self.clock.now()
        async with self.store.transaction() as tx:
            reps = await tx.active_reps()
            days = {}
            for rep in reps:
                day = digest_day(rep, self.calendars.for_team(rep.team_id), now)
                if day is not None:
                    days[rep.rep_id] = day
            done = await tx.digests_made(days) if days else set()
        made = 0
        for rep in reps:
            day = days.get(rep.rep_id)
            if day is None or rep.rep_id in done:
                continue
            calendar = self.calendars.for_team(rep.team_id)
            day_end = datetime.combine(day + timedelta(days=1), time(), tzinfo=calendar.zone)
            async with self.store.transaction() as tx:
                if not await tx.record_digest(rep.rep_id, day, now):
                    continue
                leads, overdue, due = await tx.digest_inputs(rep.rep_id, day_end.astimezone(UTC))
                notice = digest_notice(rep, day, leads, overdue, due, self.config, calendar, now)
                if notice is not None:
                    made += await tx.add_notices([notice], now)
        return made

    # --- the Alertmanager bridge ----------------------------------------------------

    async def alert(self, route_name: str, body: Mapping[str, Any]) -> bool | None:
        """Queue a chat message for an Alertmanager notification; None for an unknown
        route, False when it was a repeat (already queued)."""
        route = self.config.alertmanager.get(route_name)
        if route is None:
            return None
        now = self.clock.now()
        notice = alert_notice(route_name, route.channel, body, now)

        async def add() -> int:
            async with self.store.transaction() as tx:
                return await tx.add_notices([notice], now)

        return bool(await retrying(add, what="notifier_alert"))
