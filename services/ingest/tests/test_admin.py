"""The admin endpoints answer only a request with the right bearer token, and the
settings keep them off the webhook's port."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from leadloop_ingest.adapters.admin import AdminApi
from leadloop_ingest.domain.intake import Position
from leadloop_ingest.handlers import IngestGuard
from leadloop_ingest.settings import IngestSettings

TOKEN = "admin-token-7c1e0b55a2"


def halted() -> IngestGuard:
    guard = IngestGuard(limit=5)
    guard.halted_at = Position("leads.raw", 0, 42)
    return guard


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Bearer",
        "Bearer wrong-token-000000000",
        f"Basic {TOKEN}",
        TOKEN,
        f"Bearer {TOKEN}x",
    ],
)
def test_without_the_token_nothing_happens(authorization: str | None) -> None:
    guard = halted()
    reply = AdminApi(guard, TOKEN.encode()).resume(authorization)
    assert reply.status == 401
    assert reply.body == {"error": "unauthorized"}
    assert reply.headers["WWW-Authenticate"].startswith("Bearer ")
    assert guard.halted_at is not None
    assert not guard._resume.is_set()  # not resumed


def test_with_the_token_a_halted_ingest_resumes() -> None:
    guard = halted()
    api = AdminApi(guard, TOKEN.encode())
    assert api.resume(f"Bearer {TOKEN}").status == 200
    assert api.resume(f"bearer  {TOKEN} ").body == {"status": "resumed"}
    assert AdminApi(IngestGuard(limit=5), TOKEN.encode()).resume(f"Bearer {TOKEN}").status == 409


def test_the_settings_refuse_a_weak_token_and_a_shared_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LEADLOOP_IDENTITY_PEPPER", "pepper-for-the-settings-test")
    monkeypatch.setenv("DATABASE_URL", "postgresql://u@127.0.0.1/db")
    defaults = IngestSettings()
    assert defaults.admin_token is None
    assert (defaults.admin.host, defaults.admin.port) == ("127.0.0.1", 18181)
    for token in ("changeme", "short-token"):
        with pytest.raises(ValidationError, match="LEADLOOP_ADMIN_TOKEN") as caught:
            IngestSettings(admin_token=token)
        assert token not in str(caught.value).split("input_value")[0]
    with pytest.raises(ValidationError, match="must differ"):
        IngestSettings(admin_token=TOKEN, admin={"port": 18081})
