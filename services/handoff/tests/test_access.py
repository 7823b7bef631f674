"""Read-API clients: the clients file, bearer tokens, scopes and the rate limiter."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st

from leadloop.config_file import ConfigFileError, load_yaml
from leadloop_handoff.domain.access import (
    CONTACT,
    SUMMARY,
    Client,
    ClientEntry,
    Clients,
    ClientsFile,
    RateLimiter,
    Refusal,
    authorize,
    bearer_token,
    token_digest,
)
from leadloop_handoff.tokens import create_entry, main

REPO = Path(__file__).resolve().parents[3]
TOKEN = "summary-token-0123456789"
CONTACT_TOKEN = "contact-token-0123456789"
IDLE_TOKEN = "idle-token-0123456789"


def _clients(rate: int = 60, burst: int | None = None) -> Clients:
    return Clients(
        [
            ClientEntry(
                client_id="dash",
                scopes=(SUMMARY,),
                token_sha256=token_digest(TOKEN),
                rate_per_minute=rate,
                burst=burst,
            ),
            ClientEntry(
                client_id="crm-widget",
                scopes=(SUMMARY, CONTACT),
                token_sha256=token_digest(CONTACT_TOKEN),
            ),
            ClientEntry(client_id="idle", scopes=(), token_sha256=token_digest(IDLE_TOKEN)),
        ]
    )


def parse_clients(text: str, path: Path) -> ClientsFile:
    """The clients file of ``text``, written to ``path`` and loaded as the service does."""
    path.write_text(text, encoding="utf-8")
    return load_yaml(path, ClientsFile)


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


# -- the clients file -------------------------------------------------------------------


def test_shipped_file_lets_nobody_read() -> None:
    path = REPO / "config" / "api-clients.yaml"
    assert load_yaml(path, ClientsFile).clients == ()


def test_error_names_file_and_field_and_not_the_value(tmp_path: Path) -> None:
    text = yaml.safe_dump(
        {"clients": [{"client_id": "a", "scopes": [SUMMARY], "token_sha256": "NOT-A-HASH"}]}
    )
    path = tmp_path / "api-clients.yaml"
    with pytest.raises(ConfigFileError) as err:
        parse_clients(text, path)
    message = str(err.value)
    assert message.startswith(f"{path}: ")
    assert "clients.0.token_sha256" in message
    assert "NOT-A-HASH" not in message


@pytest.mark.parametrize(
    ("clients", "expected"),
    [
        ([{"client_id": "a", "scopes": ["leads:write"], "token_sha256": "0" * 64}], "unknown"),
        ([{"client_id": "A b", "scopes": [], "token_sha256": "0" * 64}], "client_id"),
        ([{"client_id": "a", "scopes": [], "token_sha256": "0" * 64, "x": 1}], "clients.0.x"),
        (
            [{"client_id": "a", "scopes": [], "token_sha256": "0" * 64, "rate_per_minute": 0}],
            "rate",
        ),
        (
            [
                {"client_id": "a", "scopes": [], "token_sha256": "0" * 64},
                {"client_id": "b", "scopes": [], "token_sha256": "0" * 64},
            ],
            "token_sha256 values must be unique",
        ),
        (
            [
                {"client_id": "a", "scopes": [], "token_sha256": "0" * 64},
                {"client_id": "a", "scopes": [], "token_sha256": "1" * 64},
            ],
            "client_id values must be unique",
        ),
    ],
)
def test_invalid_clients_are_refused(
    tmp_path: Path, clients: list[dict[str, object]], expected: str
) -> None:
    with pytest.raises(ConfigFileError, match=expected):
        parse_clients(yaml.safe_dump({"clients": clients}), tmp_path / "f.yaml")


@pytest.mark.parametrize("text", ["", "clients: [", "- a\n- b\n", "clients: {}"])
def test_a_file_that_is_not_a_clients_file_is_refused(tmp_path: Path, text: str) -> None:
    path = tmp_path / "f.yaml"
    with pytest.raises(ConfigFileError) as err:
        parse_clients(text, path)
    assert str(err.value).startswith(f"{path}: ")


# -- tokens ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("headers", "expected"),
    [
        ({}, None),
        ({"authorization": "Bearer abc"}, "abc"),
        ({"AUTHORIZATION": "bearer  abc "}, "abc"),
        ({"Authorization": "Basic abc"}, None),
        ({"Authorization": "Bearer"}, ""),
        ({"Authorization": "Bearer a b"}, ""),
        ({"Authorization": "Bearer " + "a" * 513}, ""),
        ({"Authorization": "Bearer abc=="}, "abc=="),
    ],
)
def test_bearer_token(headers: dict[str, str], expected: str | None) -> None:
    assert bearer_token(headers) == expected


def test_missing_token_gets_the_bare_challenge() -> None:
    refusal = authorize({}, _clients(), 0.0)
    assert refusal == Refusal(401, "missing_token", {"WWW-Authenticate": 'Bearer realm="leadloop"'})


@pytest.mark.parametrize("token", ["wrong-token", "a b", ""])
def test_unknown_or_malformed_token_is_invalid(token: str) -> None:
    refusal = authorize({"Authorization": f"Bearer {token}"}, _clients(), 0.0)
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.code) == (401, "invalid_token")
    assert refusal.headers["WWW-Authenticate"] == 'Bearer realm="leadloop", error="invalid_token"'
    assert token not in str(refusal) or token == ""


def test_clients_and_their_scopes() -> None:
    clients = _clients()
    summary = authorize(_bearer(TOKEN), clients, 0.0)
    assert isinstance(summary, Client)
    assert (summary.client_id, summary.reads_contact) == ("dash", False)
    contact = authorize(_bearer(CONTACT_TOKEN), clients, 0.0)
    assert isinstance(contact, Client)
    assert (contact.client_id, contact.reads_contact) == ("crm-widget", True)


def test_a_client_without_scopes_is_forbidden() -> None:
    refusal = authorize(_bearer(IDLE_TOKEN), _clients(), 0.0)
    assert isinstance(refusal, Refusal)
    assert (refusal.status, refusal.code, refusal.client_id) == (403, "insufficient_scope", "idle")
    assert 'error="insufficient_scope"' in refusal.headers["WWW-Authenticate"]


def test_rate_limited_with_retry_after() -> None:
    clients = _clients(rate=60, burst=2)
    assert isinstance(authorize(_bearer(TOKEN), clients, 100.0), Client)
    assert isinstance(authorize(_bearer(TOKEN), clients, 100.0), Client)
    refusal = authorize(_bearer(TOKEN), clients, 100.0)
    assert refusal == Refusal(429, "rate_limited", {"Retry-After": "1"}, client_id="dash")
    # Another client's bucket is its own.
    assert isinstance(authorize(_bearer(CONTACT_TOKEN), clients, 100.0), Client)
    # One token a second comes back.
    assert isinstance(authorize(_bearer(TOKEN), clients, 101.0), Client)


def test_default_burst_is_ten_seconds_of_the_rate() -> None:
    clients = _clients(rate=60)
    granted = sum(isinstance(authorize(_bearer(TOKEN), clients, 5.0), Client) for _ in range(20))
    assert granted == 10


# -- the rate limiter ---------------------------------------------------------------------------


@settings(max_examples=300, deadline=None)
@given(
    capacity=st.integers(1, 20),
    per_minute=st.integers(1, 600),
    gaps=st.lists(st.floats(0, 5, allow_nan=False), min_size=1, max_size=200),
)
def test_never_more_than_the_bucket_allows_in_any_window(
    capacity: int, per_minute: int, gaps: list[float]
) -> None:
    rate = per_minute / 60
    limiter = RateLimiter(capacity, rate, 0.0)
    now, granted = 0.0, []
    for gap in gaps:
        now += gap
        wait = limiter.take(now)
        assert wait >= 0
        if wait == 0:
            granted.append(now)
    for i, start in enumerate(granted):
        for j in range(i, len(granted)):
            assert j - i + 1 <= capacity + rate * (granted[j] - start) + 1e-6


@settings(max_examples=200, deadline=None)
@given(capacity=st.integers(1, 20), per_minute=st.integers(1, 600), burst=st.integers(1, 50))
def test_a_refused_client_gets_in_after_the_wait_it_was_told(
    capacity: int, per_minute: int, burst: int
) -> None:
    limiter = RateLimiter(capacity, per_minute / 60, 0.0)
    wait = 0.0
    for _ in range(burst):
        wait = limiter.take(0.0)
    if wait > 0:
        assert limiter.take(0.0) == pytest.approx(wait)  # a refusal took nothing
        assert limiter.take(wait + 1e-9) == 0.0


def test_time_going_backwards_refills_nothing() -> None:
    limiter = RateLimiter(1, 1.0, 10.0)
    assert limiter.take(10.0) == 0.0
    assert limiter.take(5.0) > 0
    assert limiter.take(11.0) == 0.0


# -- the token tool -----------------------------------------------------------------------------


def test_created_entry_matches_its_token_and_parses(tmp_path: Path) -> None:
    token, entry = create_entry("crm-widget", [SUMMARY, CONTACT], 30)
    assert len(token) >= 43
    parsed = parse_clients("clients:\n" + entry, tmp_path / "f.yaml")
    assert parsed.clients[0].token_sha256 == token_digest(token)
    assert parsed.clients[0].rate_per_minute == 30
    client = authorize(_bearer(token), Clients.from_file(parsed), 0.0)
    assert isinstance(client, Client)
    assert client.reads_contact


def test_tool_prints_token_once_and_the_entry(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["create", "--client", "crm-widget", "--scopes", f"{SUMMARY},{CONTACT}"]) == 0
    out = capsys.readouterr().out
    token = next(line for line in out.splitlines() if line and not line.startswith(("#", "-", " ")))
    assert out.count(token) == 1
    assert token_digest(token) in out
    assert main(["create", "--client", "crm-widget", "--scopes", "leads:write"]) == 2
    assert "unknown scopes" in capsys.readouterr().err
