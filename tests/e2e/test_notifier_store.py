"""The notifier's sender on real PostgreSQL, in process: several workers' sender passes
side by side never send a row twice (SKIP LOCKED claims and leases), a crash between send
and mark is taken over once the lease runs out, and a redelivered batch adds nothing.

The handler is the service's own; its transports are recording doubles (tests only).
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import subprocess
import sys
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from services.notifier.tests.factories import CALENDARS, config

from leadloop.clock import FixedClock
from leadloop_notifier.adapters.postgres import NotifierStore
from leadloop_notifier.handlers import NotifierHandler
from leadloop_notifier.rendering import Renderer

pytestmark = pytest.mark.integration

T0 = datetime(2025, 3, 3, 2, 0, tzinfo=UTC)  # Monday 10:00 in Shanghai


@dataclass(frozen=True)
class Sent:
    outcome: str
    code: str
    retry_after_s: float | None = None


@dataclass
class Recording:
    """A transport that gives every message ``answer`` (accepted, by default) after
    ``delay`` and records what it got."""

    kind: str = "wecom_app"
    per_minute: int = 1000
    delay: float = 0.0
    answer: Sent = Sent("delivered", "ok")
    got: list[tuple[str, str]] = field(default_factory=list)
    keys: list[str | None] = field(default_factory=list)  # the dedupe key of each send

    async def deliver(
        self,
        address: str,
        subject: str,
        text: str,
        markdown: str | None,
        html: str | None,
        dedupe_key: str | None = None,
    ) -> Sent:
        await asyncio.sleep(self.delay)
        self.got.append((address, text))
        self.keys.append(dedupe_key)
        return self.answer


class NullMetrics:
    def sent(self, channel: str, kind: str, outcome: str, n: int = 1) -> None: ...
    def dead_letter(self, channel: str, code: str) -> None: ...
    def delivered_after(self, channel: str, seconds: float) -> None: ...
    def pending(self, by_channel: Any) -> None: ...


def handler(
    pool: asyncpg.Pool, transport: Recording, clock: FixedClock, **kw: Any
) -> NotifierHandler:
    return NotifierHandler(
        store=NotifierStore(pool),
        clock=clock,
        config=config(),
        calendars=CALENDARS,
        renderer=Renderer(),
        transports={"wecom_app": transport},
        group_addresses={},
        metrics=NullMetrics(),
        **kw,
    )


def rep(rep_id: str) -> tuple[str, bytes]:
    return (
        "crm.reps",
        json.dumps(
            {
                "event_id": f"rep-{rep_id}",
                "rep_id": rep_id,
                "team_id": "team-cn",
                "updated_at": T0.isoformat(),
                "contacts": {"wecom_app": f"wx-{rep_id}"},
            }
        ).encode(),
    )


def assigned(lead: str, owner: str) -> tuple[str, bytes]:
    return (
        "leads.assigned",
        json.dumps(
            {
                "event_id": f"a-{lead}",
                "occurred_at": T0.isoformat(),
                "assignment_id": f"as-{lead}",
                "lead_id": lead,
                "owner_id": owner,
                "team_id": "team-cn",
                "rule_id": "r",
                "rule_version": "1",
                "strategy": "round_robin",
                "kind": "initial",
                "reason": "t",
                "lead_occurred_at": T0.isoformat(),
                "assigned_at": T0.isoformat(),
                "priority": "hot",
            }
        ).encode(),
    )


def leads_in(got: list[tuple[str, str]]) -> Counter[str]:
    return Counter(m for _, text in got for m in re.findall(r"(?<![/\w])L\d+\b", text))


@pytest.fixture
async def pool(database_url: str) -> Any:
    p = await asyncpg.create_pool(database_url, min_size=1, max_size=12)
    yield p
    await p.close()


async def test_workers_side_by_side_send_each_row_once(pool: asyncpg.Pool) -> None:
    clock = FixedClock(T0)
    transports = [Recording(delay=0.01) for _ in range(4)]
    workers = [handler(pool, t, clock, claim_limit=50) for t in transports]
    reps = [rep(f"r{i}") for i in range(30)]
    leads = [assigned(f"L{i}", f"r{i % 30}") for i in range(600)]
    assert await workers[0].handle([*reps, *leads]) == 600
    # A redelivered batch adds nothing.
    assert await workers[1].handle([*reps, *leads]) == 0
    clock.advance(timedelta(minutes=2))  # past the coalescing window
    for _ in range(50):
        await asyncio.gather(*(w.send_due() for w in workers))
        pending = await pool.fetchval(
            "SELECT count(*) FROM notifier_outbox WHERE status = 'pending'"
        )
        if not pending:
            break
        clock.advance(timedelta(seconds=1))  # rate-limit slots free up
    got = leads_in([g for t in transports for g in t.got])
    assert got == Counter({f"L{i}": 1 for i in range(600)})
    assert sum(1 for t in transports if t.got) > 1  # the work was actually shared
    rows = await pool.fetch("SELECT status, count(*) AS n FROM notifier_outbox GROUP BY status")
    assert {r["status"]: r["n"] for r in rows} == {"sent": 600}


async def test_a_crash_between_send_and_mark_is_resent_once_the_lease_runs_out(
    pool: asyncpg.Pool,
) -> None:
    clock = FixedClock(T0)
    crashed = Recording()
    survivor = Recording()
    a = handler(pool, crashed, clock, lease_seconds=1.0)
    b = handler(pool, survivor, clock, lease_seconds=1.0)
    await a.handle([rep("r1"), assigned("L1", "r1")])
    clock.advance(timedelta(minutes=2))
    # Worker a claims and sends, then "dies" before marking: the claim is all it did.
    batches, _, _ = await a._claim()
    assert len(batches) == 1
    # Meanwhile another notice for the same person becomes due.
    await a.handle([assigned("L2", "r1")])
    clock.advance(timedelta(minutes=2))  # past the slot the crashed send took, L2 ripe
    assert await b.send_due() == 1  # leased: only L2 goes, alone
    await asyncio.sleep(1.2)  # the lease (real time, the database's clock) runs out
    clock.advance(timedelta(seconds=1))
    assert await b.send_due() == 1
    assert leads_in(survivor.got) == Counter({"L1": 1, "L2": 1})
    assert await b.send_due() == 0  # marked now: once
    # The resend is the crashed message as it was (L1 alone, not coalesced with L2) with
    # the same idempotency key, which deduplicating vendors drop.
    assert survivor.keys[1] == batches[0].message_id
    assert leads_in(survivor.got[1:]) == Counter({"L1": 1})


async def test_retention_forgets_finished_rows_only(pool: asyncpg.Pool) -> None:
    clock = FixedClock(T0)
    w = handler(pool, Recording(), clock, retention_days=30)
    await w.handle([rep("r1"), assigned("L1", "r1"), assigned("L2", "unknown-rep")])
    clock.advance(timedelta(minutes=2))
    assert await w.send_due() == 1  # L1 sent; L2 held for a rep not in the roster
    clock.advance(timedelta(days=31))
    assert await w.forget_old() == 4  # the sent row and three applied-event ids
    rows = await pool.fetch("SELECT lead_id, channel, status FROM notifier_outbox")
    assert [tuple(r) for r in rows] == [("L2", "", "pending")]  # still held, kept
    assert await pool.fetchval("SELECT count(*) FROM notifier_applied_events") == 0
    assert await w.forget_old() == 0


#: The vendor refuses for good (a user id it does not know): a dead letter.
REFUSED = Sent("failed", "invalid_user")


def tools(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """The operator's command, as a process of its own on the test's database."""
    env = {k: v for k, v in os.environ.items() if not k.endswith("DATABASE_URL")}
    return subprocess.run(
        [sys.executable, "-m", "leadloop_notifier.tools", *args],
        env={**env, "DATABASE_URL": database_url},
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )


async def test_an_operator_lists_dead_letters_and_replays_them_once(
    pool: asyncpg.Pool, database_url: str
) -> None:
    clock = FixedClock(T0)
    refused = Recording(answer=REFUSED)
    await handler(pool, refused, clock).handle(
        [rep("r1"), assigned("L1", "r1"), assigned("L2", "r1")]
    )
    clock.advance(timedelta(minutes=2))
    assert await handler(pool, refused, clock).send_due() == 0
    assert leads_in(refused.got) == Counter({"L1": 1, "L2": 1})  # one coalesced message

    listed = tools(database_url, "dead-letters", "--channel", "wecom_app").stdout
    rows = [json.loads(line) for line in listed.splitlines()]
    assert sorted(r["lead_id"] for r in rows) == ["L1", "L2"]
    assert {(r["recipient"], r["last_code"]) for r in rows} == {("r1", "invalid_user")}
    assert "wx-r1" not in listed, "the listing carries no address"

    # Fixed at the vendor; one lead replayed, then the rest: each reaches r1 once.
    assert tools(database_url, "replay", "--lead", "L2").stdout == "replayed: 1\n"
    fixed = Recording()
    clock.advance(timedelta(minutes=2))  # past the pacing slot the refused message took
    assert await handler(pool, fixed, clock).send_due() == 1
    assert leads_in(fixed.got) == Counter({"L2": 1})
    assert tools(database_url, "replay", "--code", "invalid_user").stdout == "replayed: 1\n"
    assert tools(database_url, "replay").stdout == "replayed: 0\n"
    clock.advance(timedelta(minutes=2))  # past the pacing slot the first resend took
    assert await handler(pool, fixed, clock).send_due() == 1
    assert leads_in(fixed.got) == Counter({"L1": 1, "L2": 1})
    assert await pool.fetchval("SELECT count(*) FROM notifier_outbox WHERE status = 'sent'") == 2


async def test_a_replay_leaves_a_notice_that_reached_its_recipient_on_a_fallback(
    pool: asyncpg.Pool,
) -> None:
    clock = FixedClock(T0)
    await handler(pool, Recording(answer=REFUSED), clock).handle([rep("r1"), assigned("L1", "r1")])
    clock.advance(timedelta(minutes=2))
    await handler(pool, Recording(answer=REFUSED), clock).send_due()
    # As the fallback does: the same notice on the recipient's next channel, sent there.
    await pool.execute(
        "INSERT INTO notifier_outbox (notice_key, recipient, channel, kind, team_id, "
        "lead_id, payload, origin_at, due_at, created_at, status) "
        "SELECT notice_key, recipient, 'email', kind, team_id, lead_id, payload, "
        "origin_at, due_at, created_at, 'sent' FROM notifier_outbox WHERE lead_id = 'L1'"
    )
    assert await NotifierStore(pool).replay(None, None, None, None) == 0
    assert await pool.fetchval(
        "SELECT status FROM notifier_outbox WHERE lead_id = 'L1' AND channel = 'wecom_app'"
    ) == ("dead")
