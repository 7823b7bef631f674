"""Settings fail fast without echoing secrets; logs never carry personal data; event rules."""

from __future__ import annotations

import json
import logging
import os
import uuid
from datetime import UTC, datetime

import pytest
import structlog
from hypothesis import given, settings
from hypothesis import strategies as st
from pydantic import SecretStr, ValidationError, field_validator

from leadloop.events import LossReason, Stage, StageChanged, deterministic_id
from leadloop.logging import (
    PII_KEYS,
    _redact_processor,  # the processor itself is what configure() installs
    _ScrubStdlib,
    scrub,
)
from leadloop.settings import ConfigError, ServiceSettings, load, require_secret

DB_PASSWORD = "hunter2-Sup3rS3cret"
GOOD_URL = f"postgresql://leadloop:{DB_PASSWORD}@127.0.0.1:5432/leadloop"


class PepperedSettings(ServiceSettings):
    """A service with one required secret of its own, like ingest's identity pepper."""

    pepper: SecretStr | None = None

    @field_validator("pepper")
    @classmethod
    def _pepper(cls, v: SecretStr | None) -> SecretStr:
        return require_secret(v, "LEADLOOP_PEPPER")


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    # The suite may run under `make test`, which exports DATABASE_URL and friends.
    for name in list(os.environ):
        if name.startswith("LEADLOOP_") or name == "DATABASE_URL":
            monkeypatch.delenv(name)


# --- settings ---------------------------------------------------------------------------


def test_a_missing_database_url_exits_naming_the_setting(
    capsys: pytest.CaptureFixture[str],
) -> None:
    with pytest.raises(SystemExit) as exc:
        load(ServiceSettings)
    assert isinstance(exc.value, ConfigError)
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert "DATABASE_URL" in err
    assert "ServiceSettings" in err


@pytest.mark.parametrize(
    "url",
    [
        f"mysql://leadloop:{DB_PASSWORD}@db/leadloop",
        f"{DB_PASSWORD}",
        f"http://{DB_PASSWORD}@example.com",
    ],
)
def test_a_bad_database_url_exits_without_echoing_it(
    url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", url)
    with pytest.raises(SystemExit):
        load(ServiceSettings)
    err = capsys.readouterr().err
    assert "DATABASE_URL" in err
    assert DB_PASSWORD not in err
    assert url not in err


@pytest.mark.parametrize(
    "placeholder", ["changeme", "CHANGE-ME", "  changeme  ", "password", "xxx"]
)
def test_a_placeholder_secret_exits_naming_the_setting_not_the_value(
    placeholder: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", GOOD_URL)
    monkeypatch.setenv("LEADLOOP_PEPPER", placeholder)
    with pytest.raises(SystemExit):
        load(PepperedSettings)
    err = capsys.readouterr().err
    assert "LEADLOOP_PEPPER" in err
    assert "placeholder" in err
    assert placeholder.strip().lower() not in err.lower()
    assert DB_PASSWORD not in err  # a valid secret elsewhere is not echoed either


def test_a_missing_secret_exits(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", GOOD_URL)
    with pytest.raises(SystemExit):
        load(PepperedSettings)
    err = capsys.readouterr().err
    assert "LEADLOOP_PEPPER is missing" in err
    assert DB_PASSWORD not in err


def test_valid_settings_load_and_keep_secrets_hidden(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", GOOD_URL)
    monkeypatch.setenv("LEADLOOP_PEPPER", "a-real-pepper-3f9a")
    monkeypatch.setenv("LEADLOOP_KAFKA__BATCH_SIZE", "250")
    s = load(PepperedSettings)
    assert s.database_url.get_secret_value() == GOOD_URL
    assert s.pepper is not None
    assert s.pepper.get_secret_value() == "a-real-pepper-3f9a"
    assert s.kafka.batch_size == 250
    assert DB_PASSWORD not in repr(s)
    assert "a-real-pepper-3f9a" not in repr(s)
    assert capsys.readouterr().err == ""
    with pytest.raises(ValidationError):
        s.log_level = "debug"  # type: ignore[misc]  # frozen


def test_leadloop_prefixed_database_url_is_honoured(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LEADLOOP_DATABASE_URL", GOOD_URL)
    assert load(ServiceSettings).database_url.get_secret_value() == GOOD_URL


def test_an_invalid_nested_value_exits_naming_its_path(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("DATABASE_URL", GOOD_URL)
    monkeypatch.setenv("LEADLOOP_KAFKA__BATCH_SIZE", "0")
    with pytest.raises(SystemExit):
        load(ServiceSettings)
    err = capsys.readouterr().err
    assert "kafka.batch_size" in err
    assert DB_PASSWORD not in err


# --- scrubbing ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text",
    [
        "call +86 138 0013 8000 today",
        "call (415) 555-0100 today",
        "call 13800138000 today",
        "call +1 (650) 253-0000 today",
        "call 415-555-0100 today",
        "call +8613800138000 today",
        "call 138.0013.8000 today",
    ],
)
def test_scrub_removes_phone_numbers(text: str) -> None:
    out = scrub(text)
    assert "[redacted]" in out
    digits = "".join(c for c in out if c.isdigit())
    assert len(digits) < 4, out
    assert out.startswith("call ")
    assert out.endswith(" today")


@pytest.mark.parametrize(
    "email",
    ["wei.zhang@example.com", "Li.Na+crm@mail.example.co.uk", "x_y-z@qq.com", "张伟@例子.中国"],
)
def test_scrub_removes_email_addresses(email: str) -> None:
    out = scrub(f"lead from {email}, please follow up")
    assert email not in out
    assert "@" not in out
    assert out == "lead from [redacted], please follow up"


@pytest.mark.parametrize(
    "text",
    [
        "batch 500",
        "flushed 500 records in 12.5 s, partition 3, offset 4096",
        "2025-03-03T09:00:00+08:00",
        "2025-03-03T01:00:00Z",
        "2025-03-03T01:00:00.123456+00:00",
        "2025-03-03 01:00:00",
        "breached_at=2025-03-03T09:10:00+08:00 due_at=2025-03-03T09:00:00+08:00",
        "due 2025-03-03",
        "lead 6f1d3c1e-5b1a-4a57-9d62-6c9a3f0e1a10 assigned",
        "score 87, priority hot, level 2",
    ],
)
def test_scrub_leaves_ordinary_numbers_and_timestamps_intact(text: str) -> None:
    assert scrub(text) == text


def test_scrub_finds_a_phone_next_to_a_timestamp() -> None:
    out = scrub("at 2025-03-03T09:00:00+08:00 called 13800138000")
    assert out == "at 2025-03-03T09:00:00+08:00 called [redacted]"


@settings(max_examples=200)
@given(st.datetimes(timezones=st.just(UTC)), st.sampled_from(["seconds", "milliseconds", "auto"]))
def test_scrub_keeps_every_iso_timestamp(when: datetime, spec: str) -> None:
    stamp = when.isoformat(timespec=spec)
    assert scrub(f"occurred_at={stamp}") == f"occurred_at={stamp}"


# --- the structlog processor and the stdlib filter -------------------------------------------


def test_the_redact_processor_replaces_pii_keys_and_scrubs_values() -> None:
    event = {
        "event": "lead_rejected",
        "email": "wei.zhang@example.com",
        "phone": "+8613800138000",
        "name": "张伟",
        "detail": "bad address wei.zhang@example.com",
        "context": {"name": "Wei", "city": "Shanghai", "note": "call 13800138000"},
        "items": ["ok", "li.na@example.com"],
        "count": 3,
        "lead_id": "6f1d3c1e-5b1a-4a57-9d62-6c9a3f0e1a10",
    }
    out = _redact_processor(None, "info", dict(event))
    assert out["email"] == out["phone"] == out["name"] == "[redacted]"
    assert out["detail"] == "bad address [redacted]"
    assert out["context"] == {"name": "[redacted]", "city": "Shanghai", "note": "call [redacted]"}
    assert out["items"] == ["ok", "[redacted]"]
    assert out["count"] == 3
    assert out["lead_id"] == event["lead_id"]
    assert out["event"] == "lead_rejected"
    assert {"email", "phone", "name"} <= PII_KEYS


def test_a_structlog_chain_with_the_processor_renders_no_pii() -> None:
    logger = structlog.wrap_logger(
        structlog.ReturnLogger(),
        processors=[_redact_processor, structlog.processors.JSONRenderer()],
    )
    line = logger.info(
        "lead_saved",
        email="wei.zhang@example.com",
        phone="13800138000",
        name="Wei Zhang",
        note="reach me at li.na@example.com or +86 139 1234 5678",
        at="2025-03-03T09:00:00+08:00",
    )
    assert isinstance(line, str)
    for secret in ("wei.zhang", "13800138000", "Wei Zhang", "li.na@", "139 1234"):
        assert secret not in line
    fields = json.loads(line)
    assert fields["at"] == "2025-03-03T09:00:00+08:00"
    assert fields["event"] == "lead_saved"


def test_the_stdlib_filter_scrubs_formatted_messages() -> None:
    record = logging.LogRecord(
        "aiokafka", logging.WARNING, __file__, 1, "bad record from %s: %s", ("x@y.com", 42), None
    )
    assert _ScrubStdlib().filter(record)
    assert record.getMessage() == "bad record from [redacted]: 42"
    broken = logging.LogRecord("faust", logging.ERROR, __file__, 1, "%d %d", ("one",), None)
    assert _ScrubStdlib().filter(broken)  # a broken format string does not raise


# --- event rules -----------------------------------------------------------------------------


def stage_change(**fields: object) -> StageChanged:
    base: dict[str, object] = {
        "event_id": "ev-1",
        "lead_id": "lead-1",
        "occurred_at": datetime(2025, 3, 3, tzinfo=UTC),
        "rep_id": "rep-1",
    }
    return StageChanged.model_validate({**base, **fields})


def test_a_lost_stage_without_a_loss_reason_is_invalid() -> None:
    with pytest.raises(ValidationError, match="loss_reason is required"):
        stage_change(stage="lost")
    with pytest.raises(ValidationError):
        stage_change(stage="lost", loss_reason="because")
    lost = stage_change(stage="lost", loss_reason="no_budget")
    assert lost.loss_reason is LossReason.NO_BUDGET
    assert stage_change(stage="won", amount=1000).stage is Stage.WON
    assert stage_change(stage="qualified").loss_reason is None


@settings(max_examples=300)
@given(st.lists(st.text() | st.integers(), min_size=1, max_size=5))
def test_deterministic_id_is_the_uuid5_of_its_parts(parts: list[str | int]) -> None:
    namespace = uuid.UUID("6f1d3c1e-5b1a-4a57-9d62-6c9a3f0e1a10")
    name = "\x1f".join(str(p) for p in parts)
    try:
        expected = str(uuid.uuid5(namespace, name))
    except UnicodeEncodeError:  # a lone surrogate: neither can encode it
        with pytest.raises(UnicodeEncodeError):
            deterministic_id(*parts)
        return
    assert deterministic_id(*parts) == expected


def test_deterministic_id_is_stable_and_distinct() -> None:
    a = deterministic_id("lead", "web_form", "wf-1")
    assert a == deterministic_id("lead", "web_form", "wf-1")
    assert a == "b3659a7b-d89a-5bb1-82c2-3d34570a725c"  # pinned: ids must survive upgrades
    assert uuid.UUID(a).version == 5
    assert a != deterministic_id("lead", "web_form", "wf-2")
    assert a != deterministic_id("lead", "wechat", "wf-1")
    assert a != deterministic_id("lead", "web_formwf-1")
    assert deterministic_id("ingest.outcomes", "leads.raw", 0, 7) != deterministic_id(
        "ingest.outcomes", "leads.raw", 0, 8
    )


# The separator itself cannot occur in a part; an empty list would equal [""]. Lone
# surrogates are excluded because validation refuses them before any id is derived.
parts = (
    st.text(alphabet=st.characters(exclude_categories=("Cs",), exclude_characters="\x1f"))
    | st.integers()
)


@settings(max_examples=200)
@given(
    st.lists(parts, min_size=1, max_size=4),
    st.lists(parts, min_size=1, max_size=4),
)
def test_deterministic_id_depends_only_on_the_parts(a: list[str | int], b: list[str | int]) -> None:
    assert deterministic_id(*a) == deterministic_id(*a)
    if [str(p) for p in a] != [str(p) for p in b]:
        assert deterministic_id(*a) != deterministic_id(*b)
