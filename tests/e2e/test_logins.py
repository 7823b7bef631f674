"""``leadloop logins`` on the real PostgreSQL: each service's own login can do its
service's work and nothing else, a rerun resets the password, placeholders are refused.

Logins are cluster-wide, so the test makes its own (a random suffix instead of the
stack's ``_app``) and drops them afterwards.
"""

from __future__ import annotations

import os
import secrets
import uuid
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

import asyncpg
import pytest
from tests.support.processes import leadloop
from tests.support.stack import Stack

from leadloop.db import SERVICE_ROLES, ensure_logins

pytestmark = pytest.mark.integration


def _as(url: str, user: str, password: str) -> str:
    parts = urlsplit(url)
    netloc = f"{user}:{password}@{parts.hostname}" + (f":{parts.port}" if parts.port else "")
    return urlunsplit(parts._replace(netloc=netloc))


@pytest.fixture
async def suffix(stack: Stack) -> AsyncIterator[str]:
    tag = f"_t{uuid.uuid4().hex[:8]}"
    yield tag
    conn = await asyncpg.connect(stack.admin_url)
    try:
        for group in SERVICE_ROLES.values():
            await conn.execute(f"DROP ROLE IF EXISTS {group}{tag}")
    finally:
        await conn.close()


async def test_a_login_does_its_own_services_work_only(database_url: str, suffix: str) -> None:
    password = secrets.token_hex(16)

    made = await ensure_logins(database_url, {"metrics": password}, suffix=suffix)

    assert made == [f"leadloop_metrics{suffix}"]
    conn = await asyncpg.connect(_as(database_url, made[0], password))
    try:
        assert await conn.fetchval("SELECT count(*) FROM metric_values") == 0
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.fetchval("SELECT count(*) FROM leads")
        with pytest.raises(asyncpg.exceptions.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE t (x int)")
        attrs = await conn.fetchrow(
            "SELECT rolsuper, rolcreaterole, rolcreatedb, rolbypassrls FROM pg_roles "
            "WHERE rolname = current_user"
        )
        assert not any(attrs.values())
    finally:
        await conn.close()


async def test_a_rerun_resets_the_password_and_keeps_one_login(
    database_url: str, suffix: str
) -> None:
    first, second = secrets.token_hex(16), secrets.token_hex(16)
    await ensure_logins(database_url, {"ingest": first}, suffix=suffix)

    await ensure_logins(database_url, {"ingest": second}, suffix=suffix)

    login = f"leadloop_ingest{suffix}"
    with pytest.raises(asyncpg.exceptions.InvalidPasswordError):
        await asyncpg.connect(_as(database_url, login, first))
    conn = await asyncpg.connect(_as(database_url, login, second))
    try:
        assert await conn.fetchval("SELECT pg_has_role('leadloop_ingest', 'MEMBER')")
        assert await conn.fetchval("SELECT count(*) FROM pg_roles WHERE rolname = $1", login) == 1
    finally:
        await conn.close()


def test_the_command_refuses_a_placeholder_without_printing_it(
    database_url: str, suffix: str
) -> None:
    good = secrets.token_hex(16)
    env = {
        **{k: v for k, v in os.environ.items() if not k.endswith("_DB_PASSWORD")},
        "DATABASE_URL": database_url,
        "LEADLOOP_ASSIGNMENT_DB_PASSWORD": "changeme",
        "LEADLOOP_SLA_MONITOR_DB_PASSWORD": good,
    }

    refused = leadloop("logins", "--suffix", suffix, env=env)
    env.pop("LEADLOOP_ASSIGNMENT_DB_PASSWORD")
    made = leadloop("logins", "--suffix", suffix, env=env)

    assert refused.returncode == 2
    assert "LEADLOOP_ASSIGNMENT_DB_PASSWORD" in refused.stderr
    assert "changeme" not in refused.stdout + refused.stderr
    assert made.returncode == 0, made.stdout + made.stderr
    assert f"leadloop_sla_monitor{suffix}" in made.stdout
    assert good not in made.stdout + made.stderr


@pytest.mark.parametrize("kind", ["ascii", "unicode"])
async def test_no_plaintext_password_reaches_the_server(
    stack: Stack, database_url: str, suffix: str, kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every statement text and parameter sent holds a SCRAM verifier, never the password
    (server logs may keep both), and the login works with the password: the verifier
    computed here is the one PostgreSQL checks, SASLprep included."""
    password = secrets.token_hex(16) if kind == "ascii" else f"Pässwörd\u00ad{secrets.token_hex(4)}"
    sent: list[str] = []
    for method in ("execute", "fetch", "fetchval", "fetchrow"):
        original = getattr(asyncpg.Connection, method)

        def recording(
            self: Any, query: str, *args: Any, _original: Any = original, **kw: Any
        ) -> Any:
            sent.append(query)
            sent.extend(str(a) for a in args)
            return _original(self, query, *args, **kw)

        monkeypatch.setattr(asyncpg.Connection, method, recording)

    made = await ensure_logins(database_url, {"handoff": password}, suffix=suffix)
    monkeypatch.undo()

    assert sent, "nothing was recorded"
    assert not [text for text in sent if password in text]
    assert any(text.startswith("ALTER ROLE") and "SCRAM-SHA-256$4096:" in text for text in sent)
    admin = await asyncpg.connect(stack.admin_url)
    try:
        stored = await admin.fetchval(
            "SELECT rolpassword FROM pg_authid WHERE rolname = $1", made[0]
        )
    finally:
        await admin.close()
    assert any(stored in text for text in sent), "the server stores the verifier sent"
    conn = await asyncpg.connect(_as(database_url, made[0], quote(password)))
    try:
        assert await conn.fetchval("SELECT current_user") == made[0]
    finally:
        await conn.close()
