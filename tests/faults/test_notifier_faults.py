"""The notifier under `kill -9`: killed twice in the middle of a burst of notices, then
an independent checker reconciles what people received with what the input topics ask
for.

The burst is ``LEADLOOP_NOTIFIER_FAULT_NOTICES`` new-lead notices (default: a fiftieth
of ``LEADLOOP_FAULT_SCALE``, at least 2,000; the soak runs more) to 40 reps on WeCom,
plus a reminder for every third lead, produced in waves while the notifier is killed.
The WeCom fake answers slowly (50 ms), so kills land between a send and its mark.

The checker shares no code with the service: it reads the roster, the assignments and
the escalations back from the topics with its own consumer, derives the expected
(notice, person) pairs itself, and parses the fake's received log (what each person's
WeCom showed). It asserts: every expected notice reached its person; nothing else did;
no message was dropped by the vendor's per-member limit; and no person saw a notice twice.
Resends still happen — rows whose send succeeded but whose mark was lost with the
process go out again, at most kills × the rows one worker has in flight (its claim
limit) — but the notifier sends them as the same message (same rows, same text) with
WeCom's duplicate check on, so the fake drops them (``duplicates``, counted here) and
each notice is delivered exactly once in effect.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import signal
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from tests.e2e.test_notifier import Producer, fetch, notifier, until
from tests.support.kafka import collect

from leadloop.settings import KafkaSettings

pytestmark = pytest.mark.e2e

SCALE = int(os.environ.get("LEADLOOP_FAULT_SCALE", "100000"))
NOTICES = int(os.environ.get("LEADLOOP_NOTIFIER_FAULT_NOTICES", str(max(2000, SCALE // 50))))
REPS = 40
KILL_AFTER_WAVES = (2, 5)
KILLS = len(KILL_AFTER_WAVES)
CLAIM_LIMIT = 200
WAVES = 8
LINE = re.compile(r"(New lead|Reminder: lead) (F\d+)\b")


async def read_topic(kafka: KafkaSettings, topic: str, want: int) -> list[dict[str, Any]]:
    """The ``want`` records of ``topic`` (and any extra), decoded: the checker's own read."""
    return [json.loads(r.value or b"{}") for r in await collect(kafka, topic, want)]


async def expected_pairs(
    kafka: KafkaSettings, reps: int, assignments: int, escalations: int
) -> Counter[tuple[str, str, str]]:
    """(WeCom user, notice, lead) the topics ask for, each once."""
    contacts = {
        str(r["rep_id"]): str(r["contacts"]["wecom_app"])
        for r in await read_topic(kafka, "crm.reps", reps)
    }
    want: set[tuple[str, str, str]] = set()
    for a in await read_topic(kafka, "leads.assigned", assignments):
        want.add((contacts[str(a["owner_id"])], "New lead", str(a["lead_id"])))
    for e in await read_topic(kafka, "sla.escalations", escalations):
        want.add((contacts[str(e["owner_id"])], "Reminder: lead", str(e["lead_id"])))
    return Counter(want)


def received_pairs(received: list[object]) -> Counter[tuple[str, str, str]]:
    got: Counter[tuple[str, str, str]] = Counter()
    for r in received:
        for what, lead in LINE.findall(r.text):  # type: ignore[attr-defined]
            got[(r.address, what, lead)] += 1  # type: ignore[attr-defined]
    return got


async def test_kill_9_mid_burst_delivers_every_notice_exactly_once_in_effect(
    database_url: str,
    kafka_settings: KafkaSettings,
    tmp_path: Path,
    producer: object,
) -> None:
    produce = Producer(producer, kafka_settings)  # type: ignore[arg-type]
    users = {f"u{i}" for i in range(REPS)}
    async with notifier(
        database_url,
        kafka_settings,
        tmp_path,
        coalesce=0.5,
        wecom_users=users,
        LEADLOOP_LEASE_SECONDS="3",
        LEADLOOP_CLAIM_LIMIT=str(CLAIM_LIMIT),
    ) as n:
        n.wecom.faults.delay_s = 0.05
        for i in range(REPS):
            await produce.rep(f"rep-{i}", {"wecom_app": f"u{i}"})
        await until("roster", lambda: _reps(database_url, REPS))

        kills = 0
        per_wave = NOTICES // WAVES
        produced = 0
        for wave in range(WAVES):
            sends = []
            for j in range(wave * per_wave, (wave + 1) * per_wave):
                lead, owner = f"F{j}", f"rep-{j % REPS}"
                sends.append(produce.assigned(lead, owner))
                if j % 3 == 0:
                    sends.append(produce.escalation(lead, owner, due=datetime.now(UTC)))
            await asyncio.gather(*sends)
            produced += len(sends)
            if wave in KILL_AFTER_WAVES:
                # Mid-burst: half of what was produced so far has arrived, the rest is
                # being sent (or coalescing, or waiting for its rate-limit slot).
                half = produced // 2
                await until(
                    "half delivered",
                    lambda: sum(received_pairs(n.received()).values()) >= half,  # noqa: B023
                    within=120,
                )
                n.group.signal("notifier", signal.SIGKILL)
                await asyncio.to_thread(n.group.procs["notifier"].wait)
                kills += 1
                n.group.start("notifier")
                await asyncio.to_thread(n.group.wait_ready, "notifier")

        leads = per_wave * WAVES
        reminders = len(range(0, leads, 3))
        want = await expected_pairs(kafka_settings, REPS, leads, reminders)
        assert len(want) == produced == leads + reminders

        # Done when every expected notice arrived and nothing is left to send.
        await until(
            "every notice delivered",
            lambda: not (set(want) - set(received_pairs(n.received()))),
            within=300,
        )
        await until("the outbox drained", lambda: _drained(database_url), within=60)

        got = received_pairs(n.received())
        assert kills == KILLS
        assert set(got) == set(want), sorted(set(got) ^ set(want))[:10]
        duplicates = sum(c - 1 for c in got.values())
        # Raw resends: notices in messages the vendor accepted again and did not show.
        resent = sum(len(LINE.findall(content)) for _user, content in n.wecom.duplicates)
        print(
            f"notifier faults: {len(want)} notices, {kills} kills, {resent} notices resent "
            f"({len(n.wecom.duplicates)} messages), {duplicates} duplicates in effect"
        )
        assert duplicates == 0, [p for p, c in got.items() if c > 1][:10]
        assert resent <= kills * CLAIM_LIMIT
        assert n.wecom.dropped == []  # never over WeCom's 30 a minute per member
        messages = len(n.wecom.received)
        assert messages < len(want) / 2  # coalesced (the waves come 0.5 s apart at most)


async def _reps(database_url: str, want: int) -> bool:
    rows = await fetch(database_url, "SELECT count(*) AS n FROM notifier_reps")
    return bool(rows[0]["n"] >= want)


async def _drained(database_url: str) -> bool:
    rows = await fetch(
        database_url, "SELECT count(*) AS n FROM notifier_outbox WHERE status = 'pending'"
    )
    return rows[0]["n"] == 0
