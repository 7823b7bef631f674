"""Unit tests of the channel layer's pure parts: configuration, secrets, signatures,
error mapping, the token cache and the public API. No network.

Signature vectors were computed independently with the ``openssl`` command line:
  printf '1577262236757\\nSEC1234567890abcdef' | openssl dgst -sha256 \\
      -hmac 'SEC1234567890abcdef' -binary | base64                           (DingTalk)
  printf '' | openssl dgst -sha256 -mac HMAC \\
      -macopt hexkey:$(printf '1599360473\\nfeishu-secret' | xxd -p) -binary | base64  (Feishu)
"""

from __future__ import annotations

import asyncio
import re
from typing import Any

import httpx
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pydantic import ValidationError

import leadloop_notifier.adapters.channels as channels
from leadloop_notifier.adapters.channels import (
    ChannelConfigError,
    EmailConfig,
    Sent,
    build_channel,
    dingtalk,
    email,
    feishu,
    parse_channel_config,
    slack,
    wecom,
)
from leadloop_notifier.adapters.channels.token import TokenCache
from leadloop_notifier.adapters.channels.transport import parse_retry_after, truncate_utf8

MINIMAL: dict[str, dict[str, Any]] = {
    "wecom_app": {"corp_id": "ww1", "corp_secret_env": "WECOM_SECRET", "agent_id": 1000002},
    "wecom_robot": {},
    "dingtalk_robot": {"secret_env": "DING_SECRET"},
    "feishu_bot": {"secret_env": "FEISHU_SECRET"},
    "feishu_app": {"app_id": "cli_1", "app_secret_env": "FEISHU_APP_SECRET"},
    "slack": {"bot_token_env": "SLACK_BOT_TOKEN"},
    "slack_webhook": {},
    "email": {
        "host": "smtp.example.com",
        "from_address": "leadloop@example.com",
        "username_env": "SMTP_USER",
        "password_env": "SMTP_PASSWORD",
    },
}
ENV = {
    "WECOM_SECRET": "s3cr3t-wecom",
    "DING_SECRET": "SECabc",
    "FEISHU_SECRET": "s3cr3t-feishu",
    "FEISHU_APP_SECRET": "s3cr3t-app",
    "SLACK_BOT_TOKEN": "xoxb-1-2-3",
    "SMTP_USER": "notifier",
    "SMTP_PASSWORD": "s3cr3t-smtp",
}
PER_MINUTE = {
    "wecom_app": 30,
    "wecom_robot": 20,
    "dingtalk_robot": 20,
    "feishu_bot": 100,
    "feishu_app": 60,
    "slack": 60,
    "slack_webhook": 60,
    "email": 60,
}


def test_public_api_is_pinned() -> None:
    assert set(channels.__all__) >= {
        "Channel",
        "ChannelConfig",
        "ChannelConfigError",
        "Message",
        "Sent",
        "build_channel",
    }


@pytest.mark.parametrize("kind", sorted(MINIMAL))
async def test_every_kind_builds_from_minimal_config(kind: str) -> None:
    cfg = parse_channel_config({"kind": kind, **MINIMAL[kind]})
    assert cfg.kind == kind
    async with httpx.AsyncClient() as client:
        channel = build_channel(cfg, ENV, client)
        assert channel.kind == kind
        assert channel.per_minute == PER_MINUTE[kind]
        await channel.aclose()


def test_unknown_kind_and_unknown_fields_are_refused() -> None:
    with pytest.raises(ValidationError):
        parse_channel_config({"kind": "pager"})
    with pytest.raises(ValidationError):
        parse_channel_config({"kind": "slack", "bot_token_env": "T", "bot_token": "xoxb-1"})


@pytest.mark.parametrize(
    "value", ["SECa1b2c3d4e5", "xoxb-123-456", "has space", "lower_case", "", "1STARTS_DIGIT"]
)
def test_secret_fields_take_variable_names_not_values(value: str) -> None:
    with pytest.raises(ValidationError):
        parse_channel_config({"kind": "slack", "bot_token_env": value})


@pytest.mark.parametrize("env", [{}, {"SLACK_BOT_TOKEN": "  "}])
def test_missing_secret_names_field_and_variable(env: dict[str, str]) -> None:
    cfg = parse_channel_config({"kind": "slack", "bot_token_env": "SLACK_BOT_TOKEN"})
    with pytest.raises(ChannelConfigError, match=r"slack\.bot_token_env: .*SLACK_BOT_TOKEN"):
        build_channel(cfg, env, httpx.AsyncClient())


@pytest.mark.parametrize("placeholder", ["changeme", "<your-secret>", "TODO"])
def test_placeholder_secret_is_refused_without_echoing_it(placeholder: str) -> None:
    cfg = parse_channel_config({"kind": "feishu_app", **MINIMAL["feishu_app"]})
    with pytest.raises(ChannelConfigError) as raised:
        build_channel(cfg, {"FEISHU_APP_SECRET": placeholder}, httpx.AsyncClient())
    assert "FEISHU_APP_SECRET" in str(raised.value)
    assert placeholder not in str(raised.value)


def test_email_login_is_a_pair() -> None:
    with pytest.raises(ValidationError, match="together"):
        EmailConfig(kind="email", host="h", from_address="a@b.c", username_env="SMTP_USER")
    assert EmailConfig(kind="email", host="h", from_address="a@b.c").tls == "starttls"


def test_dingtalk_signature_matches_an_independent_vector() -> None:
    expected = "f7qQ1A8KagEZ45y1gasTtKsEq5ERTeDXP9T+WkIqzDk="
    assert dingtalk.sign("SEC1234567890abcdef", 1577262236757) == expected


def test_feishu_signature_matches_an_independent_vector() -> None:
    expected = "GnmU6lMJMtXPkxW7kXxgtXI0SJxjk0TQFnFuz93Dt+0="
    assert feishu.sign("feishu-secret", 1599360473) == expected


@pytest.mark.parametrize(
    ("errcode", "sent"),
    [
        (0, Sent("delivered", "ok")),
        (45009, Sent("retry", "errcode_45009", 60.0)),
        (-1, Sent("retry", "errcode_-1")),
        (81013, Sent("failed", "invalid_user")),
        (42001, Sent("failed", "token_revoked")),
        (40056, Sent("failed", "errcode_40056")),
    ],
)
def test_wecom_errcodes(errcode: int, sent: Sent) -> None:
    assert wecom.errcode_outcome(errcode) == sent


@pytest.mark.parametrize(
    ("errcode", "sent"),
    [
        (0, Sent("delivered", "ok")),
        (130101, Sent("retry", "errcode_130101", 600.0)),
        (310000, Sent("failed", "errcode_310000")),
    ],
)
def test_dingtalk_errcodes(errcode: int, sent: Sent) -> None:
    assert dingtalk.errcode_outcome(errcode) == sent


@pytest.mark.parametrize(
    ("code", "sent"),
    [
        (0, Sent("delivered", "ok")),
        (11232, Sent("retry", "code_11232", 60.0)),
        (19021, Sent("failed", "code_19021")),
        (99991663, Sent("failed", "token_revoked")),
        (230013, Sent("failed", "invalid_user")),
        (19001, Sent("failed", "invalid_webhook")),
    ],
)
def test_feishu_codes(code: int, sent: Sent) -> None:
    assert feishu.code_outcome(code) == sent


@pytest.mark.parametrize(
    ("error", "sent"),
    [
        ("ratelimited", Sent("retry", "ratelimited", 3.0)),
        ("channel_not_found", Sent("failed", "invalid_user")),
        ("not_in_channel", Sent("failed", "not_in_channel")),
        ("invalid_auth", Sent("failed", "token_revoked")),
        ("account_inactive", Sent("failed", "token_revoked")),
        ("token_revoked", Sent("failed", "token_revoked")),
        ("internal_error", Sent("retry", "internal_error", 3.0)),
    ],
)
def test_slack_errors(error: str, sent: Sent) -> None:
    assert slack.error_outcome(error, 3.0) == sent


@given(st.text(max_size=200))
def test_slack_codes_never_echo_arbitrary_text(error: str) -> None:
    code = slack.error_outcome(error).code
    assert re.fullmatch(r"[a-z0-9_]{1,64}", code)
    assert code in {"slack_error", "invalid_user", "token_revoked", "ratelimited"} or code == error


@pytest.mark.parametrize(
    ("code", "sent"),
    [
        (451, Sent("retry", "smtp_451")),
        (452, Sent("retry", "smtp_452")),
        (554, Sent("failed", "smtp_554")),
    ],
)
def test_smtp_reply_codes(code: int, sent: Sent) -> None:
    assert email.reply_outcome(code) == sent


def test_email_message_has_text_and_html_alternatives() -> None:
    msg = channels.Message("主题", "正文", None, "<p>正文</p>")
    mail = email.build_message(
        msg, sender="a@example.com", sender_name="leadloop", recipient="b@example.com"
    )
    assert mail.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in mail.iter_parts()] == ["text/plain", "text/html"]


@given(st.text(max_size=300), st.integers(min_value=8, max_value=400))
def test_truncate_utf8_stays_within_the_byte_limit(text: str, limit: int) -> None:
    cut = truncate_utf8(text, limit)
    assert len(cut.encode()) <= limit
    if len(text.encode()) <= limit:
        assert cut == text
    else:
        assert cut.endswith("…")
        assert text.startswith(cut[:-1])


@pytest.mark.parametrize(
    ("header", "seconds"), [(None, None), ("30", 30.0), (" 1.5 ", 1.5), ("-3", 0.0), ("soon", None)]
)
def test_retry_after(header: str | None, seconds: float | None) -> None:
    assert parse_retry_after(header) == seconds


async def test_token_cache_refetches_on_expiry_and_invalidation() -> None:
    now = [0.0]
    fetched: list[str] = []

    async def fetch() -> tuple[str, float] | Sent:
        await asyncio.sleep(0)
        fetched.append(f"t{len(fetched)}")
        return fetched[-1], 7200.0

    cache = TokenCache(fetch, clock=lambda: now[0])
    tokens = await asyncio.gather(*(cache.get() for _ in range(5)))
    assert tokens == ["t0"] * 5  # one fetch for a burst
    now[0] = 7200 - 301  # still inside the refresh margin
    assert await cache.get() == "t0"
    now[0] = 7200 - 299
    assert await cache.get() == "t1"
    cache.invalidate("t0")  # a stale refusal does not drop the newer token
    assert await cache.get() == "t1"
    cache.invalidate("t1")
    assert await cache.get() == "t2"


async def test_token_cache_passes_fetch_failures_through() -> None:
    async def fetch() -> tuple[str, float] | Sent:
        return Sent("retry", "timeout")

    assert await TokenCache(fetch).get() == Sent("retry", "timeout")
