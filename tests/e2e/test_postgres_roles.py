"""Least privilege in PostgreSQL: one role per service, each denied what it does not use.

Migration 0008 creates the NOLOGIN group roles and grants each exactly its own tables.
These tests give every service a LOGIN user in its group for the test's own database
(as deploy/postgres/pg.sh does for the local stack) and show: the grant matrix is
exactly "own tables, SELECT/INSERT/UPDATE/DELETE"; only ingest reads personal data; no
application role runs DDL or creates temporary tables; authentication is SCRAM and a
wrong password is refused; and the whole loop runs with each service on its own login.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer
from tests.support.kafka import collect, free_port_base
from tests.support.processes import SERVICES, ServiceGroup, service_env
from tests.support.stack import Stack, metric_totals

from leadloop.settings import KafkaSettings
from leadloop.topics import qualified

pytestmark = pytest.mark.integration

#: service -> its group role (migration 0008).
GROUP_ROLES = {
    "ingest": "leadloop_ingest",
    "assignment": "leadloop_assignment",
    "sla-monitor": "leadloop_sla_monitor",
    "metrics": "leadloop_metrics",
    "handoff": "leadloop_handoff",
    "notifier": "leadloop_notifier",
    # migration 0017: `leadloop review` reads the metrics' facts and forecasts only.
    "review": "leadloop_review",
    # migration 0018: `leadloop whatif` reads decisions, the roster, CRM events and steps.
    "whatif": "leadloop_whatif",
}

#: Every table of the schema and the one service that may use it. A new table must be
#: granted by its migration and listed here; the matrix test fails until it is.
OWNER = {
    **dict.fromkeys(
        (
            "leads",
            "ingest_outcomes",
            "lead_merges",
            "lead_activities",
            "lead_stage_changes",
            "lead_ownership",
            "lead_satisfaction",
            "crm_rejects",
            "erasures",
            # migration 0019: the webhook replay cache.
            "webhook_replays",
        ),
        "ingest",
    ),
    **dict.fromkeys(
        (
            "assignments",
            "rotation_cursors",
            "rep_load",
            "rep_daily_intake",
            "weighted_counts",
            "assignment_reps",
            "assignment_leads",
            "assignment_cooldowns",
            "assignment_applied_events",
        ),
        "assignment",
    ),
    **dict.fromkeys(
        (
            "sla_clocks",
            "escalations",
            "sla_lead_touches",
            "sla_applied_events",
            "sla_leads",
            "sla_reps",
            "sla_alert_outbox",
        ),
        "sla-monitor",
    ),
    **dict.fromkeys(
        ("metric_applied_events", "metric_values", "metric_leads", "metric_forecasts"), "metrics"
    ),
    **dict.fromkeys(
        ("handoff_deliveries", "handoff_reps", "handoff_erasure_cursor", "lead_reads"),
        "handoff",
    ),
    **dict.fromkeys(
        (
            "notifier_applied_events",
            "notifier_reps",
            "notifier_leads",
            "notifier_escalations",
            "notifier_outbox",
            "notifier_rate",
            "notifier_digests",
            "notifier_name_reads",
        ),
        "notifier",
    ),
}
#: Read-only table grants beyond a service's own tables (migration 0009): the read API
#: shows a lead's timeline. Column grants (leads, sla_clocks for handoff) are checked by
#: test_handoff_reads_only_card_columns; the notifier's on leads (name, migration 0011)
#: by test_notifier_reads_only_the_name_column.
READ_ONLY = {
    ("handoff", "lead_activities"): {"SELECT"},
    ("handoff", "lead_stage_changes"): {"SELECT"},
    ("handoff", "lead_ownership"): {"SELECT"},
    ("review", "metric_applied_events"): {"SELECT"},
    ("review", "metric_forecasts"): {"SELECT"},
    **{
        ("whatif", t): {"SELECT"}
        for t in (
            "assignments",
            "assignment_leads",
            "assignment_reps",
            "lead_activities",
            "lead_stage_changes",
            "escalations",
        )
    },
}
#: Own tables a service only appends to (migration 0016: a forecast snapshot, once taken,
#: is history).
APPEND_ONLY = {("metrics", "metric_forecasts"): {"SELECT", "INSERT"}}
#: Only the migration runner (the owner) uses it.
OWNER_ONLY = {"schema_migrations"}
PERSONAL_DATA_TABLES = ("leads", "lead_merges")
DML = ("SELECT", "INSERT", "UPDATE", "DELETE")
NEVER = ("TRUNCATE", "REFERENCES", "TRIGGER")


def _with_login(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    host = parts.hostname or "127.0.0.1"
    netloc = f"{user}:{password}@{host}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


async def create_logins(admin_url: str, database_url: str) -> dict[str, str]:
    """A LOGIN user per service, member of its group role; returns service -> URL of
    ``database_url`` as that user. Drop them with ``drop_logins`` (roles are
    cluster-wide, the test's database is not)."""
    tag = uuid.uuid4().hex[:8]
    urls: dict[str, str] = {}
    conn = await asyncpg.connect(admin_url)
    try:
        await conn.execute("SET password_encryption = 'scram-sha-256'")
        for service, group in GROUP_ROLES.items():
            user = f"{group}_t{tag}"
            password = secrets.token_hex(16)  # hex: safe in a SQL literal and a URL
            # Utility statements take no parameters; both values are generated above.
            await conn.execute(f"CREATE ROLE {user} LOGIN IN ROLE {group} PASSWORD '{password}'")
            urls[service] = _with_login(database_url, user, password)
    except BaseException:
        await conn.close()
        await drop_logins(admin_url, urls)
        raise
    await conn.close()
    return urls


async def drop_logins(admin_url: str, urls: dict[str, str]) -> None:
    conn = await asyncpg.connect(admin_url)
    try:
        for url in urls.values():
            await conn.execute(f"DROP ROLE IF EXISTS {urlsplit(url).username}")
    finally:
        await conn.close()


@asynccontextmanager
async def login_roles(admin_url: str, database_url: str) -> AsyncIterator[dict[str, str]]:
    urls = await create_logins(admin_url, database_url)
    try:
        yield urls
    finally:
        await drop_logins(admin_url, urls)


@pytest.fixture
async def logins(stack: Stack, database_url: str) -> AsyncIterator[dict[str, str]]:
    async with login_roles(stack.admin_url, database_url) as urls:
        yield urls


async def test_each_role_holds_exactly_its_own_tables(database_url: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        tables = {
            r["relname"]
            for r in await conn.fetch(
                "SELECT c.relname FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace "
                "WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p', 'v', 'm')"
            )
        }
        unlisted = tables - set(OWNER) - OWNER_ONLY
        assert not unlisted, (
            f"tables no service role is known to own: {sorted(unlisted)}; grant them to their "
            "service's role in their migration and list them in OWNER"
        )
        for table in sorted(tables):
            for service, role in GROUP_ROLES.items():
                held = {
                    p
                    for p in (*DML, *NEVER)
                    if await conn.fetchval("SELECT has_table_privilege($1, $2, $3)", role, table, p)
                }
                own = OWNER.get(table) == service
                if own:
                    want = APPEND_ONLY.get((service, table), set(DML))
                else:
                    want = READ_ONLY.get((service, table), set())
                assert held == want, f"{role} on {table}: holds {sorted(held)}, want {sorted(want)}"
        for role in GROUP_ROLES.values():
            db_create, db_temp, schema_create, connect = await conn.fetchrow(
                "SELECT has_database_privilege($1, current_database(), 'CREATE'), "
                "has_database_privilege($1, current_database(), 'TEMPORARY'), "
                "has_schema_privilege($1, 'public', 'CREATE'), "
                "has_database_privilege($1, current_database(), 'CONNECT')",
                role,
            )
            assert (db_create, db_temp, schema_create) == (False, False, False), role
            assert connect, role
            attrs = await conn.fetchrow(
                "SELECT rolcanlogin, rolsuper, rolcreaterole, rolcreatedb, rolbypassrls "
                "FROM pg_roles WHERE rolname = $1",
                role,
            )
            assert not any(attrs.values()), f"{role}: {dict(attrs)}"
        # Nobody outside the service roles (and the owner) may even connect.
        assert not await conn.fetchval(
            "SELECT has_database_privilege('public', current_database(), 'CONNECT')"
        )
    finally:
        await conn.close()


async def _denied(url: str, sql: str, *args: object) -> str:
    """Run ``sql`` as the URL's user; return PostgreSQL's refusal (fails if it ran)."""
    conn = await asyncpg.connect(url)
    try:
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError) as refused:
            await conn.execute(sql, *args)
        return str(refused.value)
    finally:
        await conn.close()


async def test_denials(logins: dict[str, str], database_url: str) -> None:
    # Personal data: only ingest reads it whole. (The notifier may read leads.name, a
    # column grant for teams that opt into names; `SELECT *` is still refused.)
    for service in ("assignment", "sla-monitor", "metrics", "notifier"):
        for table in PERSONAL_DATA_TABLES:
            message = await _denied(logins[service], f"SELECT * FROM {table}")
            assert f"permission denied for table {table}" in message
    for service in ("assignment", "sla-monitor", "metrics"):
        message = await _denied(logins[service], "SELECT lead_id, name FROM leads")
        assert "permission denied for table leads" in message
    # No DDL for any application role: not in public, not as temporary tables, not on
    # the tables they write every day.
    for url in logins.values():
        await _denied(url, "CREATE TABLE leadloop_should_not_exist (id int)")
        await _denied(url, "CREATE TEMPORARY TABLE leadloop_should_not_exist (id int)")
    message = await _denied(logins["assignment"], "ALTER TABLE assignments ADD COLUMN x int")
    assert "must be owner" in message
    await _denied(logins["sla-monitor"], "DROP TABLE sla_clocks")
    await _denied(logins["metrics"], "TRUNCATE metric_values")
    # Each service writes only its own tables.
    await _denied(
        logins["metrics"],
        "INSERT INTO assignments (assignment_id, lead_id, kind, owner_id, team_id, rule_id, "
        "rule_version, strategy, reason, priority, lead_occurred_at, assigned_at, event_id, "
        "cause_event_id) VALUES ('a', 'l', 'initial', 'r', 't', 'x', '1', 'direct', '{}', "
        "'hot', now(), now(), 'e', 'c')",
    )
    await _denied(logins["metrics"], "UPDATE assignments SET owner_id = 'r-1'")
    await _denied(logins["metrics"], "DELETE FROM assignments")
    await _denied(logins["assignment"], "UPDATE escalations SET published_at = now()")
    await _denied(logins["sla-monitor"], "DELETE FROM metric_values")
    await _denied(logins["ingest"], "DELETE FROM assignments")
    await _denied(logins["ingest"], "SELECT * FROM schema_migrations")

    # SCRAM only, and a wrong password is refused.
    admin = await asyncpg.connect(database_url)
    try:
        verifiers = await admin.fetch(
            "SELECT rolname, rolpassword FROM pg_authid WHERE rolname = ANY($1::text[])",
            [urlsplit(u).username for u in logins.values()],
        )
    finally:
        await admin.close()
    assert len(verifiers) == len(GROUP_ROLES)
    assert all(r["rolpassword"].startswith("SCRAM-SHA-256$") for r in verifiers)
    parts = urlsplit(logins["ingest"])
    wrong = _with_login(logins["ingest"], parts.username or "", "not-the-password")
    with pytest.raises(asyncpg.exceptions.InvalidPasswordError):
        await asyncpg.connect(wrong)


async def test_each_role_does_its_own_work(logins: dict[str, str]) -> None:
    """Representative statements of each service's adapters, sequences included."""
    now = datetime.now(UTC)
    ingest = await asyncpg.connect(logins["ingest"])
    try:
        async with ingest.transaction():
            await ingest.execute(
                "INSERT INTO leads (lead_id, source, source_lead_id, email, score, priority, "
                "occurred_at, accepted_at, accepted_event_id, raw_partition, raw_offset) "
                "VALUES ('lead-1', 'web_form', 's-1', 'a@example.com', 50, 'warm', $1, $1, "
                "'ev-1', 0, 0)",
                now,
            )
            await ingest.execute(
                "INSERT INTO ingest_outcomes (raw_topic, raw_partition, raw_offset, source, "
                "outcome, lead_id, event_id, recorded_at) "
                "VALUES ('leads.raw', 0, 0, 'web_form', 'accepted', 'lead-1', 'o-1', $1)",
                now,
            )
            await ingest.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('k', 0))"
            )  # dedupe's per-person lock
            await ingest.execute("UPDATE leads SET owner_id = 'rep-1' WHERE lead_id = 'lead-1'")
            erasure = await ingest.fetchval(
                "INSERT INTO erasures (subject_email_key, requested_at, rows_erased, "
                "leads_erased) VALUES ('k', $1, '{}', 0) RETURNING erasure_id",
                now,
            )
            assert erasure is not None
        assert await ingest.fetchval("SELECT email FROM leads") == "a@example.com"
    finally:
        await ingest.close()

    assignment = await asyncpg.connect(logins["assignment"])
    try:
        async with assignment.transaction():
            await assignment.execute(
                "INSERT INTO rotation_cursors (team_id, last_rep_id, updated_at) "
                "VALUES ('t', 'r', $1) ON CONFLICT (team_id) DO UPDATE SET updated_at = $1",
                now,
            )
            await assignment.execute("SELECT * FROM rotation_cursors FOR UPDATE")
            await assignment.execute(
                "INSERT INTO rep_load (rep_id, team_id, open_leads) VALUES ('r', 't', 1)"
            )
            await assignment.execute("DELETE FROM assignment_cooldowns WHERE until < now()")
    finally:
        await assignment.close()

    sla = await asyncpg.connect(logins["sla-monitor"])
    try:
        async with sla.transaction():
            await sla.execute(
                "INSERT INTO escalations (escalation_id, status, event_id, lead_id, team_id, "
                "policy_id, kind, level, action, due_at, breached_at, occurred_at) VALUES "
                "('esc-1', 'firing', 'e-1', 'lead-1', 't', 'p', 'first_response', 1, "
                "'page_oncall', $1, $1, $1)",
                now,
            )
            # sla_alert_outbox.seq is a bigserial: the role needs the sequence too.
            seq = await sla.fetchval(
                "INSERT INTO sla_alert_outbox (escalation_id, status, next_attempt_at, "
                "created_at) VALUES ('esc-1', 'firing', $1, $1) RETURNING seq",
                now,
            )
            assert seq is not None
    finally:
        await sla.close()

    metrics = await asyncpg.connect(logins["metrics"])
    try:
        async with metrics.transaction():
            seq = await metrics.fetchval(
                "INSERT INTO metric_applied_events (event_id, applied_at) VALUES ('e', $1) "
                "RETURNING seq",
                now,
            )
            assert seq is not None
            await metrics.execute(
                "INSERT INTO metric_values (metric, labels, value) VALUES ('m', '{}', 1) "
                "ON CONFLICT (metric, labels) DO UPDATE SET value = metric_values.value + 1"
            )
    finally:
        await metrics.close()


# ----------------------------------------------------------------- the loop, one login each


@pytest.fixture
def own_logins(database_url: str, stack: Stack) -> Iterator[dict[str, str]]:
    """Synchronous twin of ``logins`` for the process fixture below."""
    urls = asyncio.run(create_logins(stack.admin_url, database_url))
    try:
        yield urls
    finally:
        asyncio.run(drop_logins(stack.admin_url, urls))


@pytest.fixture
def services(
    own_logins: dict[str, str],
    database_url: str,
    kafka_settings: KafkaSettings,
    tmp_path: Path,
) -> Iterator[dict[str, ServiceGroup]]:
    base = free_port_base()
    groups: dict[str, ServiceGroup] = {}
    try:
        # `leadloop review` and `leadloop whatif` are commands, not running services.
        for name, url in ((n, u) for n, u in own_logins.items() if n in SERVICES):
            # One group per service: each process gets its own DATABASE_URL (as
            # deploy/services.sh does), on the port a single group would give it.
            env = service_env(
                url,
                kafka_settings.bootstrap_servers,
                kafka_settings.topic_prefix,
                tmp_path / "data",
            )
            groups[name] = ServiceGroup(env=env, port_base=base, log_dir=tmp_path)
            groups[name].start(name)
        for name, group in groups.items():
            group.wait_ready(name)
        yield groups
    finally:
        codes = {name: g.stop()[name] for name, g in groups.items()}
    assert codes == dict.fromkeys(codes, 0), f"unclean shutdown: {codes}"


@pytest.mark.e2e
async def test_the_loop_runs_with_one_login_per_service(
    services: dict[str, ServiceGroup],
    kafka_settings: KafkaSettings,
    database_url: str,
) -> None:
    prefix = kafka_settings.topic_prefix
    producer = AIOKafkaProducer(bootstrap_servers=kafka_settings.bootstrap_servers, acks="all")
    await producer.start()
    try:
        for i, country in enumerate(("CN", "US", "US")):
            body = {
                "source": "web_form",
                "source_lead_id": f"roles-{i}",
                "email": f"roles-{i}@example.com",
                "country": country,
            }
            await producer.send_and_wait(
                qualified("leads.raw", prefix),
                json.dumps(body).encode(),
                key=f"web_form:roles-{i}".encode(),
            )
        assigned = [json.loads(r.value) for r in await collect(kafka_settings, "leads.assigned", 3)]
        assert len(assigned) == 3
        won = assigned[0]
        now = datetime.now(UTC).isoformat()
        await producer.send_and_wait(
            qualified("crm.activities", prefix),
            json.dumps(
                {
                    "event_id": str(uuid.uuid4()),
                    "lead_id": won["lead_id"],
                    "rep_id": won["owner_id"],
                    "kind": "call",
                    "occurred_at": now,
                }
            ).encode(),
            key=won["lead_id"].encode(),
        )
        await producer.send_and_wait(
            qualified("crm.stage-changes", prefix),
            json.dumps(
                {
                    "event_id": str(uuid.uuid4()),
                    "lead_id": won["lead_id"],
                    "stage": "won",
                    "occurred_at": now,
                    "rep_id": won["owner_id"],
                    "amount": 1000,
                }
            ).encode(),
            key=won["lead_id"].encode(),
        )
    finally:
        await producer.stop()

    # Every service applied its part, each through its own login, into its own tables.
    conn = await asyncpg.connect(database_url)
    want = {
        "SELECT count(*) FROM leads WHERE stage = 'won'": 1,  # ingest's timeline
        "SELECT count(*) FROM lead_ownership": 3,
        "SELECT count(*) FROM assignments": 3,
        "SELECT count(*) FROM assignment_leads WHERE closed_at IS NOT NULL": 1,
        "SELECT count(DISTINCT lead_id) FROM sla_clocks": 3,
        "SELECT count(*) FROM sla_leads WHERE closed_at IS NOT NULL": 1,
    }
    try:
        deadline = time.monotonic() + 60
        while True:
            got = {sql: await conn.fetchval(sql) for sql in want}
            if got == want or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.5)
    finally:
        await conn.close()
    assert got == want

    metrics = services["metrics"]
    deadline = time.monotonic() + 30
    expected = {
        "leadloop_leads_received_total": 3,
        "leadloop_leads_accepted_total": 3,
        "leadloop_leads_assigned_total": 3,
        "leadloop_leads_won_total": 1,
    }
    while True:
        totals = metric_totals(metrics)
        if all(totals.get(k) == v for k, v in expected.items()) or time.monotonic() > deadline:
            break
        await asyncio.sleep(0.5)
    assert {k: totals.get(k) for k in expected} == expected

    for name, group in services.items():
        assert group.alive(name), f"{name} died:\n{group.log(name)}"
        log = group.log(name, tail=None)
        assert "InsufficientPrivilege" not in log, f"{name} was refused:\n{group.log(name)}"
        assert "permission denied" not in log, f"{name} was refused:\n{group.log(name)}"


async def test_handoff_reads_only_card_columns(logins: dict[str, str]) -> None:
    """The hand-off reads what a CRM card and the read API show, and nothing else: no
    dedupe keys, no merges, no writes to leads, and only the clock columns it shows."""
    conn = await asyncpg.connect(logins["handoff"])
    try:
        rows = await conn.fetch("SELECT lead_id, name, email, phone, erased_at FROM leads")
        assert rows == []  # a fresh database: the grant works, there is nothing to read
        await conn.fetch("SELECT lead_id, due_at FROM sla_clocks")
    finally:
        await conn.close()
    for sql in (
        "SELECT email_key FROM leads",
        "SELECT * FROM leads",
        "SELECT * FROM lead_merges",
        "UPDATE leads SET name = 'x'",
        "SELECT stop_reason FROM sla_clocks",
        "INSERT INTO lead_activities (event_id) VALUES ('x')",
    ):
        message = await _denied(logins["handoff"], sql)
        assert "permission denied" in message, sql


async def test_notifier_reads_only_the_name_column(logins: dict[str, str]) -> None:
    """For teams that opt into names the notifier reads leads.name (with lead_id and
    erased_at to skip erased leads) and audits it; nothing else of a lead, no writes."""
    conn = await asyncpg.connect(logins["notifier"])
    try:
        rows = await conn.fetch("SELECT lead_id, name, erased_at FROM leads")
        assert rows == []  # a fresh database: the grant works, there is nothing to read
        await conn.execute(
            "INSERT INTO notifier_name_reads (lead_id, recipient, read_at) "
            "VALUES ('lead-1', 'rep-1', now())"
        )
    finally:
        await conn.close()
    for sql in (
        "SELECT * FROM leads",
        "SELECT email FROM leads",
        "SELECT phone FROM leads",
        "SELECT company FROM leads",
        "SELECT email_key FROM leads",
        "SELECT phone_key FROM leads",
        "SELECT * FROM lead_merges",
        "UPDATE leads SET name = 'x'",
        "SELECT * FROM assignments",
        "SELECT * FROM lead_reads",
    ):
        message = await _denied(logins["notifier"], sql)
        assert "permission denied" in message, sql
