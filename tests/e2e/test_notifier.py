"""The notifier end to end: the real process on the real broker and database, its input
topics written by the test, its channels the real transports talking to the vendor
fakes (tests/fakes: WeCom app and robot, DingTalk robot).

What a person would have seen is the fakes' ``received`` log; every assertion is on it
(and on the outbox where the schedule itself is the point), with lead ids parsed out of
the message text.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import urllib.request
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.fakes.dingtalk import FakeDingtalk
from tests.fakes.vendor_server import Received
from tests.fakes.wecom import FakeWecom
from tests.support.ports import free_port_base
from tests.support.processes import ROOT, ServiceGroup
from tests.support.stack import stack_env

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

pytestmark = pytest.mark.e2e

WECOM_SECRET = "corp-secret-for-tests"
DING_SECRET = "SECtest-secret"
DING_TOKEN = "ding-token-1"
ROBOT_KEY = "robot-key-1"
BRIDGE_TOKEN = "bridge-token-for-tests"
USERS = {"zhangsan", "lisi", "wangwu", "zhaoliu", "sunqi"}
#: Lead ids in message text (not inside the CRM links, which repeat them).
LEAD = re.compile(r"(?<![/\w])([A-Z]{1,2}\d{1,6})\b")

ALWAYS = """
default: always
calendars:
  always:
    timezone: UTC
    weekly:
""" + "".join(
    f'      {d}: ["00:00-24:00"]\n'
    for d in ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")
)


def notify_yaml(
    wecom: FakeWecom,
    ding: FakeDingtalk,
    *,
    coalesce: float,
    digest: bool,
    reminders: list[dict[str, Any]] | None = None,
) -> str:
    team = {
        "templates": "en",
        "coalesce_seconds": coalesce,
        "crm_link": "https://crm.test/leads/{lead_id}",
        "person_channels": ["wecom_app", "dingtalk"],
    }
    return json.dumps(
        {
            "channels": {
                "wecom_app": {
                    "kind": "wecom_app",
                    "corp_id": "ww-test-corp",
                    "corp_secret_env": "E2E_WECOM_SECRET",
                    "agent_id": 1000002,
                    "msgtype": "markdown",
                    "base_url": wecom.base_url,
                },
                "wecom_robot": {
                    "kind": "wecom_robot",
                    "msgtype": "text",
                    "base_url": wecom.base_url,
                },
                "dingtalk": {
                    "kind": "dingtalk_robot",
                    "secret_env": "E2E_DING_SECRET",
                    "msgtype": "text",
                    "base_url": ding.base_url,
                },
            },
            "default": team,
            "teams": {
                "north": {
                    **team,
                    "pool_channel": {"channel": "wecom_robot", "address_env": "E2E_POOL_KEY"},
                },
                "team-cn": {**team, "templates": "zh-CN"},
                "named": {**team, "include_name": True},
            },
            "alertmanager": {
                "oncall": {"channel": "dingtalk", "address_env": "E2E_ONCALL_TOKEN"},
            },
            "digest": digest,
            "reminders": reminders or [],
        }
    )


@dataclass
class Notifier:
    group: ServiceGroup
    wecom: FakeWecom
    ding: FakeDingtalk
    database_url: str

    def received(self) -> list[Received]:
        return [*self.wecom.received, *self.ding.received]

    def url(self, path: str) -> str:
        return self.group.url("notifier", path)


@asynccontextmanager
async def notifier(
    database_url: str,
    kafka: KafkaSettings,
    tmp_path: Path,
    *,
    coalesce: float = 1.0,
    digest: bool = False,
    reminders: list[dict[str, Any]] | None = None,
    calendars: str = ALWAYS,
    wecom_users: set[str] = USERS,
    **extra: str,
) -> AsyncIterator[Notifier]:
    """The notifier as a child process with its channels on fresh fakes."""
    async with (
        FakeWecom(users=set(wecom_users), robot_keys={ROBOT_KEY}) as wecom,
        FakeDingtalk(robots={DING_TOKEN: DING_SECRET}) as ding,
    ):
        notify = tmp_path / "notify.yaml"
        notify.write_text(
            notify_yaml(wecom, ding, coalesce=coalesce, digest=digest, reminders=reminders)
        )
        cal = tmp_path / "calendars.yaml"
        cal.write_text(calendars)
        env = stack_env(
            database_url,
            kafka,
            tmp_path,
            LEADLOOP_NOTIFY_FILE=str(notify),
            LEADLOOP_CALENDARS_FILE=str(cal),
            LEADLOOP_TICK_SECONDS="0.1",
            E2E_WECOM_SECRET=WECOM_SECRET,
            E2E_DING_SECRET=DING_SECRET,
            E2E_POOL_KEY=ROBOT_KEY,
            E2E_ONCALL_TOKEN=DING_TOKEN,
            **extra,
        )
        group = ServiceGroup(env=env, port_base=free_port_base(), log_dir=tmp_path)
        group.start("notifier")
        try:
            await asyncio.to_thread(group.wait_ready, "notifier")
            yield Notifier(group, wecom, ding, database_url)
        finally:
            codes = await asyncio.to_thread(group.stop)
        assert codes.get("notifier") == 0, group.log("notifier")


class Producer:
    """Writes the notifier's input topics as the other services and the CRM would."""

    def __init__(self, producer: AIOKafkaProducer, kafka: KafkaSettings) -> None:
        self._p = producer
        self._prefix = kafka.topic_prefix
        self.sent: list[tuple[str, dict[str, Any]]] = []

    async def send(self, topic: str, key: str, body: dict[str, Any]) -> None:
        self.sent.append((topic, body))
        await self._p.send_and_wait(
            qualified(topic, self._prefix), json.dumps(body).encode(), key=key.encode()
        )

    async def resend_all(self) -> None:
        for topic, body in list(self.sent):
            key = body.get("lead_id") or body["rep_id"]
            await self._p.send_and_wait(
                qualified(topic, self._prefix), json.dumps(body).encode(), key=key.encode()
            )

    async def rep(
        self, rep_id: str, contacts: dict[str, str], *, team: str = "north", manager: str = "mgr"
    ) -> None:
        await self.send(
            "crm.reps",
            rep_id,
            {
                "event_id": str(uuid.uuid4()),
                "rep_id": rep_id,
                "team_id": team,
                "manager_id": manager,
                "timezone": "UTC",
                "updated_at": datetime.now(UTC).isoformat(),
                "contacts": contacts,
            },
        )

    async def assigned(
        self, lead: str, owner: str | None, *, team: str = "north", at: datetime | None = None
    ) -> None:
        when = (at or datetime.now(UTC)).isoformat()
        await self.send(
            "leads.assigned",
            lead,
            {
                "event_id": str(uuid.uuid4()),
                "occurred_at": when,
                "assignment_id": str(uuid.uuid4()),
                "lead_id": lead,
                "owner_id": owner,
                "team_id": team,
                "rule_id": "r1",
                "rule_version": "1",
                "strategy": "round_robin" if owner else "pool",
                "kind": "initial" if owner else "pooled",
                "reason": "test",
                "lead_occurred_at": when,
                "assigned_at": when,
                "priority": "hot",
            },
        )

    async def escalation(
        self,
        lead: str,
        owner: str,
        *,
        action: str = "remind_owner",
        level: int = 1,
        status: str = "firing",
        due: datetime | None = None,
        occurred: datetime | None = None,
        team: str = "north",
    ) -> None:
        due = due or datetime.now(UTC)
        await self.send(
            "sla.escalations",
            lead,
            {
                "event_id": str(uuid.uuid4()),
                "occurred_at": (occurred or due).isoformat(),
                "escalation_id": f"esc-{lead}-{level}",
                "lead_id": lead,
                "owner_id": owner,
                "team_id": team,
                "manager_id": "mgr",
                "policy_id": "fr",
                "kind": "first_response",
                "level": level,
                "action": action,
                "due_at": due.isoformat(),
                "breached_at": due.isoformat(),
                "status": status,
            },
        )


@pytest.fixture
def produce(producer: AIOKafkaProducer, kafka_settings: KafkaSettings) -> Producer:
    return Producer(producer, kafka_settings)


async def until(what: str, check: Callable[[], Any], within: float = 60) -> Any:
    """Poll ``check`` (sync or async) until it returns something truthy."""
    deadline = time.monotonic() + within
    while True:
        got = check()
        if asyncio.iscoroutine(got):
            got = await got
        if got:
            return got
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


async def fetch(database_url: str, sql: str, *args: Any) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return list(await conn.fetch(sql, *args))
    finally:
        await conn.close()


def items(received: list[Received], address: str) -> list[list[str]]:
    """Per message to ``address``, in arrival order: the lead ids it mentions, in order."""
    return [LEAD.findall(r.text) for r in received if r.address == address]


async def lag(n: Notifier) -> int | None:
    def read() -> int | None:
        try:
            with urllib.request.urlopen(n.url("/readyz"), timeout=2) as r:
                return int(json.loads(r.read())["lag"])
        except Exception:
            return None

    return await asyncio.to_thread(read)


async def roster(produce: Producer, n: Notifier, reps: dict[str, dict[str, str]]) -> None:
    for rep_id, contacts in reps.items():
        await produce.rep(rep_id, contacts)
    # The roster is a compacted topic of its own; wait until it is applied before
    # events that need it (in production it is there long before).
    await until(
        "roster applied",
        lambda: _count(n.database_url, "notifier_reps", len(reps)),
    )


async def sent(n: Notifier, want: int) -> bool:
    """At least ``want`` outbox rows sent (the vendor accepted them)."""
    rows = await fetch(
        n.database_url, "SELECT count(*) AS n FROM notifier_outbox WHERE status = 'sent'"
    )
    return bool(rows[0]["n"] >= want)


async def _count(database_url: str, table: str, want: int) -> bool:
    rows = await fetch(database_url, f"SELECT count(*) AS n FROM {table}")
    return bool(rows[0]["n"] >= want)


REPS = {
    "rep-a": {"wecom_app": "zhangsan"},
    "rep-b": {"wecom_app": "lisi"},
    # Unknown to WeCom (81013): falls back to the next channel in the team's order.
    "rep-c": {"wecom_app": "ghost", "dingtalk": DING_TOKEN},
    "rep-d": {"wecom_app": "zhaoliu"},
    "mgr": {"wecom_app": "wangwu"},
}


async def test_who_gets_what_in_which_order(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path, produce: Producer
) -> None:
    async with notifier(database_url, kafka_settings, tmp_path) as n:
        await roster(produce, n, REPS)

        # New leads: owners, the pool, and a fallback when the first channel refuses.
        for lead, owner in (("N1", "rep-a"), ("N2", "rep-b"), ("N3", "rep-c"), ("N5", "rep-a")):
            await produce.assigned(lead, owner)
        await produce.assigned("N4", None)
        await until("new-lead notices", lambda: sent(n, 5))

        # Escalations: N1 untouched (owner reminded, then the manager), N2 touched late
        # (reminded, then resolved 12 minutes after it was due), N5 touched in time
        # (no escalation at all).
        due = datetime.now(UTC) - timedelta(minutes=1)
        await produce.escalation("N1", "rep-a", due=due)
        await produce.escalation("N2", "rep-b", due=due)
        await until("reminders", lambda: len(items(n.received(), "lisi")) >= 2)
        await produce.escalation("N1", "rep-a", action="notify_manager", level=2, due=due)
        await produce.escalation(
            "N2", "rep-b", status="resolved", due=due, occurred=due + timedelta(minutes=12)
        )
        await until("follow-ups", lambda: sent(n, 9))

        got = n.received()
        zhangsan = [lead for message in items(got, "zhangsan") for lead in message]
        assert sorted(zhangsan) == ["N1", "N1", "N5"]
        assert zhangsan[-1] == "N1"  # the reminder after the new-lead notices
        assert items(got, "lisi") == [["N2"], ["N2"], ["N2"]]
        lisi = [r.text for r in got if r.address == "lisi"]
        assert "New lead N2" in lisi[0]
        assert "Reminder" in lisi[1]
        assert "Resolved" in lisi[2]
        assert "12 min late" in lisi[2]
        assert items(got, "wangwu") == [["N1"]]
        assert "Escalation" in next(r.text for r in got if r.address == "wangwu")
        assert items(got, ROBOT_KEY) == [["N4"]]
        assert items(got, DING_TOKEN) == [["N3"]]  # the fallback
        assert not any(r.address == "ghost" for r in got)
        assert not any("@" in r.text for r in got)
        dead = await fetch(
            database_url,
            "SELECT recipient, channel, last_code FROM notifier_outbox WHERE status = 'dead'",
        )
        assert [tuple(r) for r in dead] == [("rep-c", "wecom_app", "invalid_user")]

        # Coalescing: twenty reminders for one rep within a second are one message.
        await asyncio.gather(
            *(produce.escalation(f"C{i:02d}", "rep-d", due=due) for i in range(20))
        )
        await until("the coalesced message", lambda: items(n.received(), "zhaoliu"))
        await asyncio.sleep(1.5)  # longer than the coalescing window: nothing else comes
        # One message; its order is arrival order, which across partitions is any order.
        [coalesced] = items(n.received(), "zhaoliu")
        assert sorted(coalesced) == [f"C{i:02d}" for i in range(20)]
        ids = await fetch(
            database_url,
            "SELECT count(DISTINCT message_id) AS m, count(*) AS r FROM notifier_outbox "
            "WHERE recipient = 'rep-d' AND status = 'sent'",
        )
        assert (ids[0]["m"], ids[0]["r"]) == (1, 20)

        # Redelivery of every input changes nothing.
        before = len(n.received())
        await produce.resend_all()
        await until("redelivered inputs consumed", lambda: _caught_up(n), within=30)
        await asyncio.sleep(1.5)
        assert len(n.received()) == before

        # A vendor failing twice (HTTP 500): retried with backoff, delivered once.
        n.wecom.faults.paths = ("/cgi-bin/message/send",)
        n.wecom.faults.fail_next = 2
        await produce.assigned("R1", "rep-b")
        await until("the retried notice", lambda: len(items(n.received(), "lisi")) >= 4)
        assert items(n.received(), "lisi")[-1] == ["R1"]
        [retried] = await fetch(
            database_url,
            "SELECT attempts, status FROM notifier_outbox WHERE lead_id = 'R1'",
        )
        assert (retried["attempts"], retried["status"]) == (3, "sent")

        # A new hire's first lead overtakes their roster entry: held, then delivered.
        await produce.assigned("H1", "rep-e")
        await until(
            "the held notice",
            lambda: fetch(
                database_url, "SELECT 1 FROM notifier_outbox WHERE lead_id = 'H1' AND channel = ''"
            ),
        )
        assert not items(n.received(), "sunqi")
        await produce.rep("rep-e", {"wecom_app": "sunqi"})
        await until("the released notice", lambda: items(n.received(), "sunqi"))
        assert items(n.received(), "sunqi") == [["H1"]]

        # Metrics on the notifier's own /metrics. The fake records H1 before the notifier
        # has marked it sent and counted it: wait for the count, then read the rest.
        sent_new = 'channel="wecom_app",kind="new_lead",outcome="delivered"} 5.0'

        async def counted() -> bool:
            page = await asyncio.to_thread(_get, n.url("/metrics"))
            return f"leadloop_notifier_sent_total{{{sent_new}" in page

        await until("H1 counted as delivered", counted)
        text = await asyncio.to_thread(_get, n.url("/metrics"))
        retries = 'channel="wecom_app",kind="new_lead",outcome="retry"} 2.0'
        assert f"leadloop_notifier_sent_total{{{retries}" in text
        dead_line = 'channel="wecom_app",code="invalid_user"} 1.0'
        assert f"leadloop_notifier_dead_letters_total{{{dead_line}" in text
        assert "leadloop_notifier_delivery_seconds_bucket" in text


async def _caught_up(n: Notifier) -> bool:
    return await lag(n) == 0


def _get(url: str) -> str:
    with urllib.request.urlopen(url, timeout=5) as r:
        return str(r.read().decode())


SHANGHAI = ZoneInfo("Asia/Shanghai")


async def test_quiet_hours_digest_and_the_alertmanager_bridge(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path, produce: Producer
) -> None:
    # Service time starts on Tuesday 2025-03-04 at 03:00 in Shanghai and runs an hour a
    # second: the shipped China calendar's working day begins six seconds in.
    origin = datetime(2025, 3, 4, 3, 0, tzinfo=SHANGHAI)
    calendars = (ROOT / "config" / "calendars.yaml").read_text(encoding="utf-8")
    async with notifier(
        database_url,
        kafka_settings,
        tmp_path,
        calendars=calendars,
        digest=True,
        LEADLOOP_TEST_TIME_ORIGIN=origin.isoformat(),
        LEADLOOP_TEST_TIME_SCALE="3600",
        LEADLOOP_DIGEST_SECONDS="0.2",
        LEADLOOP_ALERTMANAGER_TOKEN=BRIDGE_TOKEN,
    ) as n:
        for rep_id in ("rep-a", "mgr"):
            await produce.rep(rep_id, REPS[rep_id], team="team-cn")
        await until("roster", lambda: _count(database_url, "notifier_reps", 2))

        # A page at night goes at once (no quiet hours for the bridge), once.
        alert = {
            "version": "4",
            "groupKey": '{}:{alertname="LeadOverdue"}',
            "status": "firing",
            "receiver": "leadloop",
            "alerts": [
                {
                    "status": "firing",
                    "labels": {"alertname": "LeadOverdue", "team": "team-cn", "lead_id": "Q9"},
                    "annotations": {"summary": "first response overdue"},
                    "startsAt": "2025-03-03T19:00:00Z",
                    "fingerprint": "1a30ba71cca2921f",
                }
            ],
        }
        assert await asyncio.to_thread(_post, n.url("/v1/alertmanager/oncall"), alert) == 202
        assert await asyncio.to_thread(_post, n.url("/v1/alertmanager/oncall"), alert) == 202
        assert await asyncio.to_thread(_post, n.url("/v1/alertmanager/nope"), alert) == 404
        assert await asyncio.to_thread(_post, n.url("/v1/alertmanager/oncall"), alert, None) == 401
        assert await asyncio.to_thread(_post, n.url("/v1/alertmanager/oncall"), alert, "x") == 401
        await until("the page", lambda: items(n.received(), DING_TOKEN))
        [page] = await fetch(
            database_url,
            "SELECT due_at, created_at, sent_at FROM notifier_outbox WHERE kind = 'alert'",
        )
        assert page["due_at"] == page["created_at"]
        assert page["sent_at"] < datetime(2025, 3, 4, 9, 0, tzinfo=SHANGHAI)

        # A reminder at night waits for 09:00.
        await produce.assigned("Q1", "rep-a", team="team-cn", at=origin)
        await produce.escalation("Q1", "rep-a", team="team-cn", due=origin)
        await until("the notices and the digest", lambda: sent(n, 4))
        rows = await fetch(
            database_url,
            "SELECT kind, due_at, sent_at FROM notifier_outbox WHERE recipient = 'rep-a' "
            "AND kind IN ('new_lead', 'remind_owner') ORDER BY kind",
        )
        nine = datetime(2025, 3, 4, 9, 0, tzinfo=SHANGHAI)
        for row in rows:
            assert row["due_at"] == nine, row
            assert row["sent_at"] >= nine, row
        # The digest of that working day: one per rep and date, listing the open lead and
        # the overdue one.
        digests = [r.text for r in n.received() if "今日概览" in r.text and "2025-03-04" in r.text]
        assert len(digests) == 1
        assert "Q1" in digests[0]
        made = await fetch(
            database_url, "SELECT rep_id, local_date FROM notifier_digests ORDER BY rep_id"
        )
        assert ("rep-a", "2025-03-04") in [(r["rep_id"], str(r["local_date"])) for r in made]
        assert items(n.received(), DING_TOKEN) == [["Q9"]]  # the page, once


def _post(url: str, body: dict[str, Any], token: str | None = BRIDGE_TOKEN) -> int:
    headers = {"Content-Type": "application/json"}
    if token is not None:
        headers["Authorization"] = f"Bearer {token}"
    request = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers=headers, method="POST"
    )
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            return int(r.status)
    except urllib.error.HTTPError as exc:
        return int(exc.code)


async def test_node_reminders_wait_for_the_team_calendar_unless_the_lead_moved_on(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path, produce: Producer
) -> None:
    # Service time starts Monday 2025-03-03 18:30 in Shanghai, after work, and runs an
    # hour a second: Tuesday's working day begins 14.5 seconds in.
    origin = datetime(2025, 3, 3, 18, 30, tzinfo=SHANGHAI)
    calendars = (ROOT / "config" / "calendars.yaml").read_text(encoding="utf-8")
    reminders = [
        {"name": "qualify_confirm", "stage": "qualified"},
        {"name": "proposal_followup", "stage": "proposal", "after_business_days": 1},
        {"name": "negotiation_followup", "stage": "negotiation", "after_business_hours": 2},
    ]
    async with notifier(
        database_url,
        kafka_settings,
        tmp_path,
        calendars=calendars,
        reminders=reminders,
        LEADLOOP_TEST_TIME_ORIGIN=origin.isoformat(),
        LEADLOOP_TEST_TIME_SCALE="3600",
    ) as n:
        await produce.rep("rep-a", REPS["rep-a"], team="team-cn")
        await until("roster", lambda: _count(database_url, "notifier_reps", 1))
        monday = datetime(2025, 3, 3, tzinfo=SHANGHAI)
        for lead, stage, at in (
            ("P1", "proposal", monday.replace(hour=16)),
            ("P2", "proposal", monday.replace(hour=16)),
            ("P2", "negotiation", monday.replace(hour=16, minute=30)),  # P2 moved on
            ("P3", "qualified", monday.replace(hour=17)),
        ):
            await produce.send(
                "crm.stage-changes",
                lead,
                {
                    "event_id": str(uuid.uuid4()),
                    "lead_id": lead,
                    "stage": stage,
                    "occurred_at": at.isoformat(),
                    "rep_id": "rep-a",
                },
            )
        await until("three node reminders", lambda: sent(n, 3), within=90)
        rows = await fetch(
            database_url,
            "SELECT lead_id, payload->>'node' AS node, status, due_at, sent_at, created_at "
            "FROM notifier_outbox WHERE kind = 'node_reminder'",
        )
        # They were made in the evening: every one waited for Tuesday's working hours.
        assert all(r["created_at"] < datetime(2025, 3, 4, 9, tzinfo=SHANGHAI) for r in rows)
        tuesday = datetime(2025, 3, 4, tzinfo=SHANGHAI)
        made = {(r["lead_id"], r["node"]): (r["status"], r["due_at"]) for r in rows}
        # Moved on to negotiation: the proposal reminder is cancelled (or, when both
        # changes came in one batch, never made).
        assert made.pop(("P2", "proposal_followup"), ("cancelled",))[0] == "cancelled"
        assert made == {
            # One business day after Monday: Tuesday at the start of the working day.
            ("P1", "proposal_followup"): ("sent", tuesday.replace(hour=9)),
            # Two business hours from Monday 16:30: 1.5 h on Monday, 0.5 h on Tuesday.
            ("P2", "negotiation_followup"): ("sent", tuesday.replace(hour=9, minute=30)),
            # On entering, in the evening: at the next working moment.
            ("P3", "qualify_confirm"): ("sent", tuesday.replace(hour=9)),
        }
        for r in rows:
            if r["status"] == "sent":
                assert r["sent_at"] >= r["due_at"], r
        got = [lead for message in items(n.received(), "zhangsan") for lead in message]
        assert sorted(got) == ["P1", "P2", "P3"]
        assert all("节点提醒" in r.text for r in n.received())


async def test_a_graceful_stop_finishes_the_messages_in_flight(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path, produce: Producer
) -> None:
    async with notifier(database_url, kafka_settings, tmp_path, coalesce=0) as n:
        await roster(produce, n, {"rep-a": REPS["rep-a"]})
        n.wecom.faults.paths = ("/cgi-bin/message/send",)
        n.wecom.faults.delay_s = 2.0
        before = n.wecom.requests
        await produce.assigned("G1", "rep-a")
        await until("the send in flight", lambda: n.wecom.requests > before)
        codes = await asyncio.to_thread(n.group.stop)  # SIGTERM mid-send
        assert codes == {"notifier": 0}
        [row] = await fetch(
            database_url, "SELECT status, lease_until FROM notifier_outbox WHERE lead_id = 'G1'"
        )
        # Accepted by the vendor and marked before the process exited: nothing to resend.
        assert row["status"] == "sent"
        assert items(n.received(), "zhangsan") == [["G1"]]
        n.group.start("notifier")  # the context manager stops it again
        await asyncio.to_thread(n.group.wait_ready, "notifier")


async def insert_lead(database_url: str, lead: str, name: str, *, erased: bool = False) -> None:
    """A lead as ingest keeps it in PostgreSQL (the system of record)."""
    now = datetime.now(UTC)
    conn = await asyncpg.connect(database_url)
    try:
        await conn.execute(
            "INSERT INTO leads (lead_id, source, source_lead_id, email, phone, name, score, "
            "priority, occurred_at, accepted_at, accepted_event_id, raw_partition, raw_offset, "
            "erased_at) VALUES ($1, 'web_form', $1, $2, '+8613800001111', $3, 50, 'hot', $4, "
            "$4, $1, 0, 0, $5)",
            lead,
            f"{lead.lower()}@example.com",
            None if erased else name,
            now,
            now if erased else None,
        )
    finally:
        await conn.close()


async def test_a_team_that_opts_in_sees_the_lead_name_and_each_read_is_audited(
    database_url: str, kafka_settings: KafkaSettings, tmp_path: Path, produce: Producer
) -> None:
    await insert_lead(database_url, "M1", "张三")
    await insert_lead(database_url, "M2", "Li <b>Si</b>")
    await insert_lead(database_url, "M3", "王五", erased=True)
    await insert_lead(database_url, "M4", "赵六")
    async with notifier(database_url, kafka_settings, tmp_path, coalesce=0.3) as n:
        await produce.rep("rep-n", {"wecom_app": "zhangsan"}, team="named")
        await produce.rep("rep-o", {"wecom_app": "lisi"}, team="north")
        await until("roster applied", lambda: _count(database_url, "notifier_reps", 2))
        for lead in ("M1", "M2", "M3"):
            await produce.assigned(lead, "rep-n", team="named")
        await produce.assigned("M4", "rep-o")
        await until("four notices", lambda: sent(n, 4))

        named = " ".join(r.text for r in n.received() if r.address == "zhangsan")
        assert "M1 张三" in named
        assert "M2 Li b Si /b" in named  # markup removed, like every web-form fact
        assert "<" not in named
        assert "王五" not in named  # erased: rendered without a name
        assert sorted(lead for m in items(n.received(), "zhangsan") for lead in m) == [
            "M1",
            "M2",
            "M3",
        ]
        other = [r.text for r in n.received() if r.address == "lisi"]
        assert other
        assert "赵六" not in " ".join(other)  # the team did not opt in
        assert not any("@" in r.text or "13800001111" in r.text for r in n.received())

        reads = await fetch(
            database_url,
            "SELECT lead_id, recipient, read_at FROM notifier_name_reads ORDER BY lead_id",
        )
        # One row per name put in a message: not for the erased lead, not for the team
        # that did not opt in.
        assert [(r["lead_id"], r["recipient"]) for r in reads] == [
            ("M1", "rep-n"),
            ("M2", "rep-n"),
        ]
        assert all(r["read_at"] is not None for r in reads)
        # The name is not copied into the notifier's own tables.
        copied = await fetch(
            database_url,
            "SELECT count(*) AS n FROM notifier_outbox WHERE payload::text LIKE '%张三%' "
            "OR payload::text LIKE '%Si%'",
        )
        assert copied[0]["n"] == 0
    log = (tmp_path / "notifier.log").read_text()
    assert "张三" not in log
    assert "\\u5f20\\u4e09" not in log
