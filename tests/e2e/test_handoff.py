"""The hand-off on the real stack with all four CRM connectors at once, and the read API
through the running service.

ingest, assignment and the hand-off run as child processes on the real broker and
database; the generic signed webhook, Salesforce, HubSpot and 简道云 fakes each serve on
a thread of their own. Leads enter on leads.raw: those of campaign ``pool-me`` wait in
team-x's pool (``kind: pooled``, no owner), the others go round-robin to three reps of
team-y. The checks read leads.assigned from the beginning (asserting how many records
they read) and compare it with each fake's own records and log of accepted writes:
every assignment reached every target that should get it (a pooled lead only those
with a pool), one record per lead, with the contact details, the owner mapped to the
CRM's user id (or Salesforce's pool queue) and the leadloop lead id in the external-id
field. A roster event then gives one rep a Salesforce id of its own, which later leads
carry. The read API is asked through the service's port with two clients' tokens, the
contact reads are counted in ``lead_reads``, and the hand-off's ``/metrics`` must agree
with what the fakes received.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import secrets
import time
import urllib.error
import urllib.request
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.fakes.crm_webhook import WebhookFake
from tests.fakes.hubspot import HubSpotFake
from tests.fakes.jiandaoyun import JiandaoyunFake
from tests.fakes.salesforce import SalesforceFake
from tests.support.events import escalation
from tests.support.kafka import collect
from tests.support.observe import handoff_stack, send_raw, until, web_form_lead
from tests.support.processes import ServiceGroup
from tests.support.threaded import in_thread

from leadloop.events import EscalationAction, RepUpdated
from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

pytestmark = pytest.mark.e2e

LEADS = 60
#: Every fifth of the first LEADS leads is of the campaign team-x pools.
POOL_EVERY = 5
#: Leads sent after the roster event gave rep-y1 its own Salesforce id.
LATE_LEADS = 6
REPS = ("rep-y1", "rep-y2", "rep-y3")

HOOK_SECRET = "crm-hook-" + secrets.token_hex(16)
SF_ID, SF_SECRET = "3MVG9-" + secrets.token_hex(12), "sf-secret-" + secrets.token_hex(12)
HS_TOKEN = "pat-eu1-" + secrets.token_hex(16)
JDY_KEY = "jdy-key-" + secrets.token_hex(16)
APP_ID, ENTRY_ID = "59264073a2a60c0c08e20bfb", "59264073a2a60c0c08e20bfd"
W_LEAD, W_NAME, W_EMAIL, W_OWNER, W_SCORE, W_TEAM = (
    f"_widget_14327286514{n:02d}" for n in range(6)
)
SF_QUEUE = "00G000000000042AAA"
SF_USERS = {rep: f"0055g0000000{n:03d}AAA" for n, rep in enumerate(REPS, 1)}
SF_ROSTER_ID = "0055g0000000999AAA"
HS_OWNERS = {rep: str(7001 + n) for n, rep in enumerate(REPS)}
JDY_MEMBERS = {rep: f"member-{rep}" for rep in REPS}
HOOK_USERS = {rep: f"hook-user-{rep}" for rep in REPS}

RULES = (
    'version: "handoff-e2e"\n'
    "teams:\n"
    "  - team_id: team-x\n"
    "    manager_id: mgr-x\n"
    "  - team_id: team-y\n"
    "    manager_id: mgr-y\n"
    "    reps:\n"
    + "".join(f"      - {{rep_id: {r}, capacity: 100000}}\n" for r in REPS)
    + "rules:\n"
    "  - rule_id: pool-me\n"
    "    when:\n"
    "      campaign: {equals: pool-me}\n"
    "    team: team-x\n"
    "    strategy: pool\n"
    "  - rule_id: everyone-else\n"
    "    team: team-y\n"
    "    strategy: round_robin\n"
)


def _map(ids: dict[str, str]) -> str:
    return "{" + ", ".join(f"{k}: '{v}'" for k, v in ids.items()) + "}"


def crm_yaml(hook: WebhookFake, sf: SalesforceFake, hs: HubSpotFake, jdy: JiandaoyunFake) -> str:
    common = "    rate_per_s: 200\n    max_in_flight: 8\n    timeout_s: 5\n"
    return (
        "targets:\n"
        "  - name: hook\n"
        "    kind: webhook\n"
        f"    url: {hook.endpoint}\n"
        "    secret_env: LEADLOOP_TEST_HOOK_SECRET\n"
        f"    owner_ids: {_map(HOOK_USERS)}\n" + common + "  - name: sf\n"
        "    kind: salesforce\n"
        f"    login_url: {sf.url}\n"
        f"    instance_url: {sf.url}\n"
        "    client_id_env: LEADLOOP_TEST_SF_CLIENT_ID\n"
        "    client_secret_env: LEADLOOP_TEST_SF_CLIENT_SECRET\n"
        f"    pool: {{team-x: '{SF_QUEUE}'}}\n"
        f"    owner_ids: {_map(SF_USERS)}\n" + common + "  - name: hs\n"
        "    kind: hubspot\n"
        f"    base_url: {hs.url}\n"
        "    token_env: LEADLOOP_TEST_HS_TOKEN\n"
        f"    owner_ids: {_map(HS_OWNERS)}\n" + common + "  - name: jdy\n"
        "    kind: jiandaoyun\n"
        f"    base_url: {jdy.url}\n"
        "    api_key_env: LEADLOOP_TEST_JDY_KEY\n"
        f"    app_id: '{APP_ID}'\n"
        f"    entry_id: '{ENTRY_ID}'\n"
        f"    fields: {{lead_id: {W_LEAD}, name: {W_NAME}, email: {W_EMAIL}, owner: {W_OWNER},"
        f" score: {W_SCORE}, team: {W_TEAM}}}\n"
        f"    owner_ids: {_map(JDY_MEMBERS)}\n" + common
    )


def clients_yaml(summary_token: str, contact_token: str) -> str:
    def entry(client_id: str, scopes: str, token: str) -> str:
        digest = hashlib.sha256(token.encode()).hexdigest()
        return (
            f"  - client_id: {client_id}\n"
            f"    scopes: [{scopes}]\n"
            f"    token_sha256: {digest}\n"
            "    rate_per_minute: 600\n"
        )

    return (
        "clients:\n"
        + entry("dashboard", "leads:read-summary", summary_token)
        + entry("crm-widget", "leads:read-summary, leads:read-contact", contact_token)
    )


def email(i: int) -> str:
    return f"four.crms.{i}@example.com"


def name(i: int) -> str:
    return f"Person {i}"


def raw_lead(i: int) -> tuple[bytes, bytes]:
    campaign = "pool-me" if i < LEADS and i % POOL_EVERY == 0 else "spring"
    return web_form_lead(f"f-{i}", email(i), name(i), campaign=campaign)


def http_get(url: str, token: str | None = None) -> tuple[int, Any]:
    headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=5) as r:
            status, raw = r.status, r.read()
    except urllib.error.HTTPError as exc:
        status, raw = exc.code, exc.read()
    text = raw.decode()
    try:
        return status, json.loads(text)
    except ValueError:
        return status, text


def handoff_metrics(group: ServiceGroup) -> dict[tuple[str, str], float]:
    """(metric name, target) -> the sum over the other labels, for delivered attempts and
    the pending gauge."""
    status, text = http_get(group.url("handoff", "/metrics"))
    assert status == 200, text
    totals: Counter[tuple[str, str]] = Counter()
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        series, value = line.rsplit(" ", 1)
        metric, _, labels_text = series.partition("{")
        labels = dict(
            part.split("=", 1) for part in labels_text.rstrip("}").split(",") if "=" in part
        )
        labels = {k: v.strip('"') for k, v in labels.items()}
        if metric == "leadloop_handoff_deliveries_total" and labels["outcome"] == "delivered":
            totals["delivered", labels["target"]] += float(value)
        elif metric == "leadloop_handoff_pending":
            totals["pending", labels["target"]] += float(value)
    return dict(totals)


@pytest.mark.timeout(300)
async def test_every_assignment_reaches_four_crms_and_the_read_api_serves_it(
    database_url: str, kafka_settings: KafkaSettings, producer: AIOKafkaProducer, tmp_path: Path
) -> None:
    prefix = kafka_settings.topic_prefix
    summary_token, contact_token = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    widgets: dict[str, type] = {
        W_LEAD: str, W_NAME: str, W_EMAIL: str, W_OWNER: str, W_SCORE: int, W_TEAM: str,
    }  # fmt: skip
    hook = WebhookFake(HOOK_SECRET.encode())
    sf = SalesforceFake(SF_ID, SF_SECRET)
    hs = HubSpotFake(HS_TOKEN)
    jdy = JiandaoyunFake(JDY_KEY, APP_ID, ENTRY_ID, widgets, lead_widget=W_LEAD)
    with in_thread(hook), in_thread(sf), in_thread(hs), in_thread(jdy):
        (tmp_path / "api-clients.yaml").write_text(clients_yaml(summary_token, contact_token))
        _, group = handoff_stack(
            database_url,
            kafka_settings,
            tmp_path,
            rules=RULES,
            crm=crm_yaml(hook, sf, hs, jdy),
            LEADLOOP_API_CLIENTS_FILE=str(tmp_path / "api-clients.yaml"),
            LEADLOOP_TEST_HOOK_SECRET=HOOK_SECRET,
            LEADLOOP_TEST_SF_CLIENT_ID=SF_ID,
            LEADLOOP_TEST_SF_CLIENT_SECRET=SF_SECRET,
            LEADLOOP_TEST_HS_TOKEN=HS_TOKEN,
            LEADLOOP_TEST_JDY_KEY=JDY_KEY,
            LEADLOOP_TICK_SECONDS="0.1",
        )
        owner_db = await asyncpg.connect(database_url)
        try:
            group.start("ingest", "assignment", "handoff")
            await asyncio.to_thread(
                group.wait_ready, "ingest", "assignment", "handoff", timeout=120
            )

            async def send(lo: int, hi: int) -> None:
                await send_raw(producer, prefix, map(raw_lead, range(lo, hi)))

            # 1. Sixty leads: one in five pooled in team-x, the rest owned in team-y.
            await send(0, LEADS)
            records = await collect(kafka_settings, "leads.assigned", LEADS, within=120)
            events = [json.loads(r.value) for r in records]
            assert len(events) == LEADS, f"read {len(events)} assignments of {LEADS}"
            by_lead = {e["lead_id"]: e for e in events}
            assert len(by_lead) == LEADS, "one assignment per lead"
            pooled = {k for k, e in by_lead.items() if e["kind"] == "pooled"}
            owned = set(by_lead) - pooled
            assert len(pooled) == LEADS // POOL_EVERY
            assert all(by_lead[k]["owner_id"] is None for k in pooled)
            assert all(by_lead[k]["team_id"] == "team-x" for k in pooled)
            assert {by_lead[k]["owner_id"] for k in owned} == set(REPS)
            assert all(by_lead[k]["kind"] == "initial" for k in owned)

            # Pooled leads go only where a pool exists (the webhook and Salesforce);
            # every owned lead goes to all four.
            def arrived() -> bool:
                return (
                    set(hook.records) == set(by_lead)
                    and set(sf.records) == set(by_lead)
                    and set(hs.contacts) == owned
                    and {e[W_LEAD] for e in list(jdy.entries.values())} == owned
                )

            await until(arrived, "every assignment in every CRM that should get it", 90, group)
            # Contact details (read from PostgreSQL by the ingest's lead id), owners.
            lead_email = await _emails_by_lead(owner_db)
            assert set(lead_email) == set(by_lead)
            for lead_id, event in by_lead.items():
                i = int(event_source_index(lead_email[lead_id]))
                rep = event["owner_id"]
                held = hook.records[lead_id]
                assert (held["contact"]["email"], held["contact"]["name"]) == (email(i), name(i))
                assert (held["kind"], held["owner_id"]) == (event["kind"], rep)
                assert held["owner_crm_id"] == (HOOK_USERS[rep] if rep else None)
                lead = sf.records[lead_id]
                assert (lead["Email"], lead["FirstName"], lead["LastName"]) == (
                    email(i),
                    "Person",
                    str(i),
                )
                assert lead["OwnerId"] == (SF_USERS[rep] if rep else SF_QUEUE)
                assert lead["Leadloop_Rule__c"] == event["rule_id"]
                if rep is None:
                    continue
                props = hs.contacts[lead_id]["properties"]
                assert props["leadloop_lead_id"] == lead_id
                assert (props["email"], props["firstname"], props["lastname"]) == (
                    email(i),
                    "Person",
                    str(i),
                )
                assert (props["hubspot_owner_id"], props["leadloop_team"]) == (
                    HS_OWNERS[rep],
                    "team-y",
                )
                (entry,) = jdy.by_lead(lead_id)
                assert (entry[W_EMAIL], entry[W_NAME], entry[W_OWNER], entry[W_TEAM]) == (
                    email(i),
                    name(i),
                    JDY_MEMBERS[rep],
                    "team-y",
                )
            # The external id: Salesforce's path segment is the record key (the fake
            # keys records by it); an upsert never named it in the body.
            assert all("Leadloop_Lead_Id__c" not in r for r in sf.records.values())
            # Exactly one write per delivery, no repeats in a run without faults.
            assert Counter(r.lead_id for r in hook.received) == Counter(list(by_lead))
            assert Counter(r.lead_id for r in sf.received) == Counter(list(by_lead))
            assert Counter(r.lead_id for r in hs.received) == Counter(list(owned))
            assert [r.op for r in jdy.received] == ["create"] * len(owned)
            assert sorted(r.key or "" for r in hook.received) == sorted(
                f"{k}:{e['assignment_id']}" for k, e in by_lead.items()
            )
            assert (sf.token_requests, hook.rejected, sf.rejected, hs.rejected) == (
                1,
                Counter(),
                Counter(),
                Counter(),
            )
            assert jdy.rejected == Counter()

            # 2. The roster gives rep-y1 its own Salesforce id; later leads carry it.
            roster = RepUpdated(
                event_id="rep-y1-sf",
                rep_id="rep-y1",
                team_id="team-y",
                capacity=100000,
                updated_at=datetime.now(UTC),
                external_ids={"sf": SF_ROSTER_ID},
            )
            await producer.send_and_wait(
                qualified("crm.reps", prefix), roster.model_dump_json().encode(), key=b"rep-y1"
            )
            deadline = time.monotonic() + 60
            while not await owner_db.fetchval(
                "SELECT external_ids ->> 'sf' FROM handoff_reps WHERE rep_id = 'rep-y1'"
            ):
                assert time.monotonic() < deadline, "the hand-off never recorded the roster"
                await asyncio.sleep(0.2)
            await send(LEADS, LEADS + LATE_LEADS)
            records = await collect(
                kafka_settings, "leads.assigned", LEADS + LATE_LEADS, within=120
            )
            late = {
                e["lead_id"]: e
                for e in (json.loads(r.value) for r in records)
                if e["lead_id"] not in by_lead
            }
            assert len(records) == LEADS + LATE_LEADS, f"read {len(records)} assignments"
            assert len(late) == LATE_LEADS
            assert Counter(e["owner_id"] for e in late.values()) == dict.fromkeys(REPS, 2)
            everyone = {**by_lead, **late}
            await until(
                lambda: (
                    set(sf.records) == set(everyone)
                    and set(hook.records) == set(everyone)
                    and set(hs.contacts) == owned | set(late)
                    and len(jdy.entries) == len(owned) + LATE_LEADS
                ),
                "the later leads in every CRM",
                60,
                group,
            )
            for lead_id, event in late.items():
                rep = event["owner_id"]
                want = SF_ROSTER_ID if rep == "rep-y1" else SF_USERS[rep]
                assert sf.records[lead_id]["OwnerId"] == want, (rep, sf.records[lead_id])
                # The roster named Salesforce only: the other CRMs keep their maps.
                assert hs.contacts[lead_id]["properties"]["hubspot_owner_id"] == HS_OWNERS[rep]
                assert hook.records[lead_id]["owner_crm_id"] == HOOK_USERS[rep]
            # Earlier leads of rep-y1 were not sent again.
            assert len(sf.received) == LEADS + LATE_LEADS

            # 3. A reassignment (an escalation asks for it): the same record in each CRM
            # is updated to the new owner, none is added.
            moved = sorted(o for o in owned if by_lead[o]["owner_id"] == "rep-y2")[0]
            step = escalation(
                moved, "rep-y2", "team-y", datetime.now(UTC), event_id="esc-moved",
                escalation_id=f"esc-{moved}", action=EscalationAction.REASSIGN, manager="mgr-y",
            )  # fmt: skip
            await producer.send_and_wait(
                qualified("sla.escalations", prefix),
                step.model_dump_json().encode(),
                key=moved.encode(),
            )
            want = LEADS + LATE_LEADS + 1
            records = await collect(kafka_settings, "leads.assigned", want, within=60)
            assert len(records) == want, f"read {len(records)} assignments, expected {want}"
            (move,) = [
                e
                for e in (json.loads(r.value) for r in records)
                if e["lead_id"] == moved and e["kind"] == "reassigned"
            ]
            new_rep = move["owner_id"]
            assert new_rep in REPS
            assert new_rep != "rep-y2"
            await until(
                lambda: (
                    hook.records[moved]["owner_id"] == new_rep
                    and len(sf.received) == LEADS + LATE_LEADS + 1
                    and len(hs.received) == len(owned) + LATE_LEADS + 1
                    and len(jdy.received) == len(owned) + LATE_LEADS + 1
                ),
                "the reassignment in every CRM",
                60,
                group,
            )
            new_sf = SF_ROSTER_ID if new_rep == "rep-y1" else SF_USERS[new_rep]
            assert sf.records[moved]["OwnerId"] == new_sf
            assert hs.contacts[moved]["properties"]["hubspot_owner_id"] == HS_OWNERS[new_rep]
            (entry,) = jdy.by_lead(moved)
            assert entry[W_OWNER] == JDY_MEMBERS[new_rep]
            assert jdy.received[-1].op == "update"
            assert (hook.records[moved]["kind"], hook.records[moved]["sequence"]) == (
                "reassigned",
                move["sequence"],
            )
            assert hook.records[moved]["previous_owner_id"] == "rep-y2"
            assert hook.received[-1].key == f"{moved}:{move['assignment_id']}"
            assert len(sf.records) == len(hook.records) == LEADS + LATE_LEADS
            assert len(hs.contacts) == len(jdy.entries) == len(owned) + LATE_LEADS

            # 4. The read API through the running service.
            some = sorted(o for o in owned if o != moved)[0]
            pooled_one = sorted(pooled)[0]
            url = group.url("handoff", f"/v1/leads/{some}")

            def owned_timeline() -> bool:
                status, body = http_get(url, summary_token)
                return status == 200 and bool(body["timeline"])

            await until(owned_timeline, "the lead's timeline in PostgreSQL", 60, group)
            status, summary = await asyncio.to_thread(http_get, url, summary_token)
            assert status == 200, summary
            assert "contact" not in summary
            assert "@" not in json.dumps(summary)
            event = by_lead[some]
            assert (summary["lead_id"], summary["owner_id"], summary["stage"]) == (
                some,
                event["owner_id"],
                "assigned",
            )
            assert [(t["kind"], t["rep"], t["detail"]) for t in summary["timeline"]] == [
                ("ownership", event["owner_id"], "initial")
            ]
            assert summary["routing"]["campaign"] == "spring"
            i = int(event_source_index(lead_email[some]))
            status, full = await asyncio.to_thread(http_get, url, contact_token)
            assert status == 200, full
            assert (full["contact"]["email"], full["contact"]["name"]) == (email(i), name(i))
            assert {k: v for k, v in full.items() if k != "contact"} == summary
            pool_url = group.url("handoff", f"/v1/leads/{pooled_one}")
            await until(
                lambda: http_get(pool_url, summary_token)[1].get("timeline") != [],
                "the pooled lead's timeline",
                60,
                group,
            )
            status, pooled_view = await asyncio.to_thread(http_get, pool_url, contact_token)
            assert status == 200, pooled_view
            assert (pooled_view["owner_id"], pooled_view["stage"]) == (None, "new")
            assert [(t["rep"], t["detail"]) for t in pooled_view["timeline"]] == [(None, "pooled")]
            moved_url = group.url("handoff", f"/v1/leads/{moved}")
            await until(
                lambda: len(http_get(moved_url, summary_token)[1].get("timeline", [])) == 2,
                "the reassignment in the moved lead's timeline",
                60,
                group,
            )
            status, moved_view = await asyncio.to_thread(http_get, moved_url, summary_token)
            assert (status, moved_view["owner_id"]) == (200, new_rep)
            assert [(t["rep"], t["detail"]) for t in moved_view["timeline"]] == [
                ("rep-y2", "initial"),
                (new_rep, "reassigned"),
            ]
            assert (await asyncio.to_thread(http_get, url))[0] == 401
            status, body = await asyncio.to_thread(http_get, url, "not-a-known-token")
            assert (status, body) == (401, {"error": "invalid_token"})
            unknown = group.url("handoff", "/v1/leads/no-such-lead")
            status, body = await asyncio.to_thread(http_get, unknown, contact_token)
            assert (status, body) == (404, {"error": "not_found"})
            audit = await owner_db.fetch(
                "SELECT client_id, lead_id, scope FROM lead_reads ORDER BY read_at"
            )
            assert [tuple(r) for r in audit] == [
                ("crm-widget", some, "leads:read-contact"),
                ("crm-widget", pooled_one, "leads:read-contact"),
            ]

            # 5. The hand-off's own metrics agree with what each fake received.
            received = {
                "hook": len(hook.received),
                "sf": len(sf.received),
                "hs": len(hs.received),
                "jdy": len(jdy.received),
            }
            assert received == {
                "hook": LEADS + LATE_LEADS + 1,
                "sf": LEADS + LATE_LEADS + 1,
                "hs": len(owned) + LATE_LEADS + 1,
                "jdy": len(owned) + LATE_LEADS + 1,
            }

            def metrics_agree() -> bool:
                m = handoff_metrics(group)
                return all(
                    m.get(("delivered", t)) == n and m.get(("pending", t)) == 0
                    for t, n in received.items()
                )

            await until(metrics_agree, f"metrics equal to the fakes' {received}", 30, group)
            log_text = group.log("handoff", tail=None)
            assert "@example.com" not in log_text
            assert summary_token not in log_text
            assert contact_token not in log_text
        finally:
            await owner_db.close()
            codes = await asyncio.to_thread(group.stop)
    assert codes == dict.fromkeys(codes, 0), codes


async def _emails_by_lead(conn: asyncpg.Connection) -> dict[str, str]:
    rows = await conn.fetch("SELECT lead_id, email FROM leads")
    return {r["lead_id"]: r["email"] for r in rows}


def event_source_index(address: str) -> str:
    """The test's lead number from its email address."""
    return address.removeprefix("four.crms.").removesuffix("@example.com")
