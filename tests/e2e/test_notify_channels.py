"""Every notifier channel against its vendor fake: real HTTP and SMTP on loopback.

The fakes (tests/fakes/) issue their own tokens, recompute signatures with their own
HMAC and answer limits with the vendors' codes, so these tests show the adapters speak
the documented protocols — not that they agree with themselves. Channels are built the
way the service builds them: configuration dict → `parse_channel_config` →
`build_channel` with an environment mapping.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.fakes.dingtalk import FakeDingtalk
from tests.fakes.feishu import FakeFeishu
from tests.fakes.slack import FakeSlack
from tests.fakes.smtp import FakeSmtp
from tests.fakes.wecom import FakeWecom
from tests.support.ports import free_ports

from leadloop_notifier.adapters.channels import (
    Channel,
    Message,
    Sent,
    build_channel,
    parse_channel_config,
)

pytestmark = pytest.mark.integration

MSG = Message(
    subject="线索 L-42 超时",
    text="线索 L-42 已超时 2 小时，请尽快跟进",
    markdown="**线索 L-42 超时**\n> 已超时 2h",
    html="<p><b>线索 L-42</b> 已超时 2 小时</p>",
)
PLAIN = Message(subject="Lead L-7", text="Lead L-7 is waiting", markdown=None, html=None)
KEYED = Message(
    subject="Lead L-8", text="Lead L-8 is waiting", markdown=None, html=None, dedupe_key="m-8"
)


@pytest.fixture
async def client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as c:
        yield c


def channel(client: httpx.AsyncClient, env: dict[str, str] | None = None, **cfg: Any) -> Channel:
    return build_channel(parse_channel_config(cfg), env or {}, client)


def closed_url() -> str:
    return f"http://127.0.0.1:{free_ports(1)[0]}"


# --- WeCom -----------------------------------------------------------------------------

WECOM_ENV = {"WECOM_SECRET": "corp-secret-for-tests"}


def wecom_app(client: httpx.AsyncClient, fake: FakeWecom, **extra: Any) -> Channel:
    cfg = {
        "kind": "wecom_app",
        "corp_id": fake.corp_id,
        "corp_secret_env": "WECOM_SECRET",
        "agent_id": fake.agent_id,
        "base_url": fake.base_url,
        "timeout_s": 0.5,
        **extra,
    }
    return channel(client, WECOM_ENV, **cfg)


async def test_wecom_app_delivers_markdown_and_reuses_its_token(client: httpx.AsyncClient) -> None:
    async with FakeWecom() as fake:
        ch = wecom_app(client, fake)
        assert ch.kind == "wecom_app"
        assert ch.per_minute == 30
        assert await ch.send("zhangsan", MSG) == Sent("delivered", "ok")
        assert await ch.send("lisi", PLAIN) == Sent("delivered", "ok")
        assert fake.tokens_issued == 1
        assert [(r.kind, r.address, r.text) for r in fake.received] == [
            ("wecom_app", "zhangsan", MSG.markdown),
            ("wecom_app", "lisi", PLAIN.text),
        ]


@pytest.mark.parametrize("invalidate", ["revoke_tokens", "expire_tokens"])
async def test_wecom_app_refetches_a_token_the_vendor_refuses(
    client: httpx.AsyncClient, invalidate: str
) -> None:
    async with FakeWecom() as fake:
        ch = wecom_app(client, fake)
        assert (await ch.send("zhangsan", PLAIN)).outcome == "delivered"
        getattr(fake, invalidate)()  # 40014 / 42001 for the cached token
        assert await ch.send("zhangsan", PLAIN) == Sent("delivered", "ok")
        assert fake.tokens_issued == 2
        assert len(fake.received) == 2


async def test_wecom_app_gives_up_when_fresh_tokens_are_refused(client: httpx.AsyncClient) -> None:
    async with FakeWecom() as fake:
        fake.refuse_tokens = True
        ch = wecom_app(client, fake)
        assert await ch.send("zhangsan", PLAIN) == Sent("failed", "token_revoked")
        assert fake.tokens_issued == 2
        assert fake.received == []


async def test_wecom_app_bad_secret_and_unknown_user_fail(client: httpx.AsyncClient) -> None:
    async with FakeWecom() as fake:
        ch = wecom_app(client, fake)
        assert await ch.send("nobody", PLAIN) == Sent("failed", "invalid_user")
        for fan_out in ("@all", "zhangsan|lisi", ""):
            assert await ch.send(fan_out, PLAIN) == Sent("failed", "invalid_address")
        assert fake.received == []
        bad = build_channel(
            parse_channel_config(
                {
                    "kind": "wecom_app",
                    "corp_id": fake.corp_id,
                    "corp_secret_env": "WECOM_SECRET",
                    "agent_id": fake.agent_id,
                    "base_url": fake.base_url,
                }
            ),
            {"WECOM_SECRET": "wrong"},
            client,
        )
        assert await bad.send("zhangsan", PLAIN) == Sent("failed", "invalid_credentials")


async def test_wecom_app_rate_limit_retries_after_a_minute(client: httpx.AsyncClient) -> None:
    async with FakeWecom(api_per_minute=1) as fake:
        ch = wecom_app(client, fake)
        assert (await ch.send("zhangsan", PLAIN)).outcome == "delivered"
        assert await ch.send("zhangsan", PLAIN) == Sent("retry", "errcode_45009", 60.0)


async def test_wecom_app_member_limit_drops_silently(client: httpx.AsyncClient) -> None:
    """Why per_minute matters: past 30 a minute WeCom says ok and drops the message."""
    async with FakeWecom(member_per_minute=2) as fake:
        ch = wecom_app(client, fake)
        outcomes = [(await ch.send("zhangsan", PLAIN)).outcome for _ in range(3)]
        assert outcomes == ["delivered"] * 3
        assert len(fake.received) == 2
        assert len(fake.dropped) == 1


async def test_wecom_app_resend_of_a_keyed_message_is_dropped_by_the_duplicate_check(
    client: httpx.AsyncClient,
) -> None:
    """A message with a dedupe key turns WeCom's duplicate check on: the same request
    within the interval is answered ok and not shown again; without a key it is."""
    async with FakeWecom() as fake:
        ch = wecom_app(client, fake, msgtype="text", duplicate_check_interval_s=600)
        assert await ch.send("zhangsan", KEYED) == Sent("delivered", "ok")
        assert await ch.send("zhangsan", KEYED) == Sent("delivered", "ok")
        assert await ch.send("lisi", KEYED) == Sent("delivered", "ok")  # another member
        assert [r.address for r in fake.received] == ["zhangsan", "lisi"]
        assert fake.duplicates == [("zhangsan", KEYED.text)]
        await ch.send("zhangsan", PLAIN)
        await ch.send("zhangsan", PLAIN)  # no key, no check: shown twice
        assert [r.address for r in fake.received][2:] == ["zhangsan", "zhangsan"]
        assert len(fake.duplicates) == 1


async def test_wecom_app_transient_trouble_retries(client: httpx.AsyncClient) -> None:
    async with FakeWecom() as fake:
        ch = wecom_app(client, fake)
        assert (await ch.send("zhangsan", PLAIN)).outcome == "delivered"
        fake.faults.fail_next, fake.faults.fail_status = 1, 503
        assert await ch.send("zhangsan", PLAIN) == Sent("retry", "http_503")
        fake.faults.delay_s = 1.0
        assert await ch.send("zhangsan", PLAIN) == Sent("retry", "timeout")
        fake.faults.delay_s = 0.0
        assert (await ch.send("zhangsan", PLAIN)).outcome == "delivered"
    ch = channel(
        client,
        WECOM_ENV,
        kind="wecom_app",
        corp_id="c",
        corp_secret_env="WECOM_SECRET",
        agent_id=1,
        base_url=closed_url(),
    )
    assert await ch.send("zhangsan", PLAIN) == Sent("retry", "connect_error")


async def test_wecom_robot(client: httpx.AsyncClient) -> None:
    async with FakeWecom(robot_per_minute=2) as fake:
        ch = channel(client, kind="wecom_robot", base_url=fake.base_url)
        assert ch.per_minute == 20
        long = Message("s", "t", "长" * 2000, None)  # 6000 bytes: cut to the 4096-byte limit
        assert await ch.send("robot-key-1", MSG) == Sent("delivered", "ok")
        assert await ch.send("robot-key-1", long) == Sent("delivered", "ok")
        assert len(fake.received[1].text.encode()) <= 4096
        assert await ch.send("robot-key-1", MSG) == Sent("retry", "errcode_45009", 60.0)
        assert await ch.send("no-such-key", MSG) == Sent("failed", "invalid_webhook")
        fake.faults.fail_next = 1
        assert await ch.send("robot-key-1", MSG) == Sent("retry", "http_500")


# --- DingTalk --------------------------------------------------------------------------


async def test_dingtalk_signed_robot(client: httpx.AsyncClient) -> None:
    async with FakeDingtalk(robots={"tok": "SECright", "open": None}, per_minute=2) as fake:
        ch = channel(
            client,
            {"DING_SECRET": "SECright"},
            kind="dingtalk_robot",
            secret_env="DING_SECRET",
            base_url=fake.base_url,
        )
        assert await ch.send("tok", MSG) == Sent("delivered", "ok")
        assert fake.received[0].subject == MSG.subject
        assert fake.received[0].text == MSG.markdown
        assert await ch.send("open", PLAIN) == Sent("delivered", "ok")  # unsigned robot
        assert await ch.send("tok", PLAIN) == Sent("delivered", "ok")
        # third message in a minute: 130101, and the robot stays throttled for 10 minutes
        assert await ch.send("tok", PLAIN) == Sent("retry", "errcode_130101", 600.0)
        assert await ch.send("missing", PLAIN) == Sent("failed", "errcode_300001")


async def test_dingtalk_repeated_msg_uuid_is_acknowledged_once_delivered(
    client: httpx.AsyncClient,
) -> None:
    async with FakeDingtalk(robots={"tok": None}) as fake:
        ch = channel(client, kind="dingtalk_robot", msgtype="text", base_url=fake.base_url)
        assert await ch.send("tok", KEYED) == Sent("delivered", "ok")
        assert await ch.send("tok", KEYED) == Sent("delivered", "ok")
        assert [r.text for r in fake.received] == [KEYED.text]
        assert fake.duplicates == [("tok", "m-8")]


async def test_dingtalk_refuses_a_wrong_or_stale_signature(client: httpx.AsyncClient) -> None:
    async with FakeDingtalk(robots={"tok": "SECright"}) as fake:
        wrong = channel(
            client,
            {"DING_SECRET": "SECwrong"},
            kind="dingtalk_robot",
            secret_env="DING_SECRET",
            base_url=fake.base_url,
        )
        assert await wrong.send("tok", PLAIN) == Sent("failed", "errcode_310000")
        # a clock two hours behind the vendor's: outside the one-hour window
        fake.wall_clock = lambda: time.time() + 7200
        right = channel(
            client,
            {"DING_SECRET": "SECright"},
            kind="dingtalk_robot",
            secret_env="DING_SECRET",
            base_url=fake.base_url,
        )
        assert await right.send("tok", PLAIN) == Sent("failed", "errcode_310000")
        fake.wall_clock = lambda: time.time() + 1800  # within the hour: accepted
        assert await right.send("tok", PLAIN) == Sent("delivered", "ok")
        fake.faults.fail_next, fake.faults.fail_status = 1, 502
        assert await right.send("tok", PLAIN) == Sent("retry", "http_502")


# --- Feishu ----------------------------------------------------------------------------


@pytest.mark.parametrize("msg_type", ["text", "post", "interactive"])
async def test_feishu_bot_signed(client: httpx.AsyncClient, msg_type: str) -> None:
    async with FakeFeishu(hooks={"h1": "fs-secret"}) as fake:
        ch = channel(
            client,
            {"FS_SECRET": "fs-secret"},
            kind="feishu_bot",
            secret_env="FS_SECRET",
            msg_type=msg_type,
            base_url=fake.base_url,
        )
        assert await ch.send("h1", MSG) == Sent("delivered", "ok")
        got = fake.received[0]
        assert got.kind == "feishu_bot"
        assert got.address == "h1"
        assert got.text == (MSG.markdown if msg_type == "interactive" else MSG.text)


async def test_feishu_bot_refusals_and_limits(client: httpx.AsyncClient) -> None:
    async with FakeFeishu(hooks={"h1": "fs-secret"}, hook_per_second=2) as fake:
        wrong = channel(
            client,
            {"FS_SECRET": "other"},
            kind="feishu_bot",
            secret_env="FS_SECRET",
            base_url=fake.base_url,
        )
        assert await wrong.send("h1", PLAIN) == Sent("failed", "code_19021")
        ch = channel(
            client,
            {"FS_SECRET": "fs-secret"},
            kind="feishu_bot",
            secret_env="FS_SECRET",
            base_url=fake.base_url,
        )
        fake.wall_clock = lambda: time.time() - 3700
        assert await ch.send("h1", PLAIN) == Sent("failed", "code_19021")
        fake.wall_clock = time.time
        assert await ch.send("gone", PLAIN) == Sent("failed", "invalid_webhook")
        assert await ch.send("../../im/v1/messages", PLAIN) == Sent("failed", "invalid_address")
        assert (await ch.send("h1", PLAIN)).outcome == "delivered"
        assert (await ch.send("h1", PLAIN)).outcome == "delivered"
        assert await ch.send("h1", PLAIN) == Sent("retry", "code_11232", 60.0)


FS_ENV = {"FS_APP_SECRET": "app-secret-for-tests"}


def feishu_app(client: httpx.AsyncClient, fake: FakeFeishu, **extra: Any) -> Channel:
    cfg = {
        "kind": "feishu_app",
        "app_id": fake.app_id,
        "app_secret_env": "FS_APP_SECRET",
        "base_url": fake.base_url,
        "timeout_s": 0.5,
        **extra,
    }
    return channel(client, FS_ENV, **cfg)


async def test_feishu_app_delivers_with_a_cached_token(client: httpx.AsyncClient) -> None:
    async with FakeFeishu() as fake:
        ch = feishu_app(client, fake)
        assert await ch.send("ou_zhangsan", PLAIN) == Sent("delivered", "ok")
        card = feishu_app(client, fake, msg_type="interactive")
        assert await card.send("ou_lisi", MSG) == Sent("delivered", "ok")
        assert await ch.send("ou_zhangsan", PLAIN) == Sent("delivered", "ok")
        assert fake.tokens_issued == 2  # one per channel instance
        assert [(r.address, r.subject) for r in fake.received] == [
            ("ou_zhangsan", ""),
            ("ou_lisi", MSG.subject),
            ("ou_zhangsan", ""),
        ]


async def test_feishu_app_repeated_uuid_within_the_hour_sends_once(
    client: httpx.AsyncClient,
) -> None:
    now = [1000.0]
    async with FakeFeishu(clock=lambda: now[0]) as fake:
        ch = feishu_app(client, fake)
        assert await ch.send("ou_zhangsan", KEYED) == Sent("delivered", "ok")
        assert await ch.send("ou_zhangsan", KEYED) == Sent("delivered", "ok")
        assert len(fake.received) == 1
        assert fake.duplicates == [("ou_zhangsan", "m-8")]
        now[0] += 3601  # the key is kept for an hour
        assert await ch.send("ou_zhangsan", KEYED) == Sent("delivered", "ok")
        assert len(fake.received) == 2


async def test_feishu_app_token_refresh_and_refusals(client: httpx.AsyncClient) -> None:
    async with FakeFeishu(user_per_minute=2) as fake:
        ch = feishu_app(client, fake)
        assert (await ch.send("ou_zhangsan", PLAIN)).outcome == "delivered"
        fake.revoke_tokens()
        assert await ch.send("ou_zhangsan", PLAIN) == Sent("delivered", "ok")
        assert fake.tokens_issued == 2
        limited = await ch.send("ou_zhangsan", PLAIN)
        assert limited.outcome == "retry"
        assert limited.code == "ratelimited"
        assert limited.retry_after_s is not None
        assert 0 < limited.retry_after_s <= 61
        assert await ch.send("ou_nobody", PLAIN) == Sent("failed", "invalid_user")
        fake.faults.delay_s = 1.0
        assert await ch.send("ou_lisi", PLAIN) == Sent("retry", "timeout")
    async with FakeFeishu() as fake:
        fake.refuse_tokens = True
        assert await feishu_app(client, fake).send("ou_lisi", PLAIN) == Sent(
            "failed", "token_revoked"
        )
    async with FakeFeishu(app_secret="another") as fake:
        assert await feishu_app(client, fake).send("ou_lisi", PLAIN) == Sent(
            "failed", "invalid_credentials"
        )


# --- Slack -----------------------------------------------------------------------------


def slack(client: httpx.AsyncClient, fake: FakeSlack, token: str = "xoxb-test-token") -> Channel:
    return channel(
        client,
        {"SLACK_BOT_TOKEN": token},
        kind="slack",
        bot_token_env="SLACK_BOT_TOKEN",
        base_url=fake.api_url,
        timeout_s=0.5,
    )


async def test_slack_posts_to_channels_and_dms(client: httpx.AsyncClient) -> None:
    async with FakeSlack(per_second=1) as fake:
        ch = slack(client, fake)
        assert ch.per_minute == 60
        assert await ch.send("C0LEADS", MSG) == Sent("delivered", "ok")
        assert await ch.send("U0ZHANG", MSG) == Sent("delivered", "ok")  # via conversations.open
        assert [(r.address, r.subject, r.text) for r in fake.received] == [
            ("C0LEADS", MSG.subject, MSG.text),
            ("U0ZHANG", MSG.subject, MSG.text),
        ]
        limited = await ch.send("C0LEADS", PLAIN)  # second post within a second
        assert limited == Sent("retry", "ratelimited", 1.0)


async def test_slack_error_mapping(client: httpx.AsyncClient) -> None:
    async with FakeSlack() as fake:
        ch = slack(client, fake)
        assert await ch.send("C0NOPE", PLAIN) == Sent("failed", "invalid_user")
        assert await ch.send("U0NOBODY", PLAIN) == Sent("failed", "invalid_user")
        assert await ch.send("C0OTHER", PLAIN) == Sent("failed", "not_in_channel")
        assert await ch.send("C0OLD", PLAIN) == Sent("failed", "is_archived")
        assert await slack(client, fake, "xoxb-wrong").send("C0LEADS", PLAIN) == Sent(
            "failed", "token_revoked"
        )
        fake.faults.fail_next, fake.faults.fail_status = 1, 503
        assert await ch.send("C0LEADS", PLAIN) == Sent("retry", "http_503")
        fake.faults.delay_s = 1.0
        assert await ch.send("C0LEADS", PLAIN) == Sent("retry", "timeout")
        fake.faults.delay_s = 0.0
        fake.revoke_token()
        assert await ch.send("C0LEADS", PLAIN) == Sent("failed", "token_revoked")


async def test_slack_webhook(client: httpx.AsyncClient) -> None:
    async with FakeSlack(archived_webhooks={"T1/B1/old"}) as fake:
        ch = channel(client, kind="slack_webhook", base_url=fake.hooks_url)
        assert await ch.send("T000/B000/hooksecret", MSG) == Sent("delivered", "ok")
        assert fake.received[0].text == MSG.text
        assert await ch.send("T000/B000/hooksecret", MSG) == Sent("retry", "ratelimited", 1.0)
        assert await ch.send("T9/B9/unknown", MSG) == Sent("failed", "http_404")
        assert await ch.send("T1/B1/old", MSG) == Sent("failed", "http_410")
        assert await ch.send("T1/../../api/x", MSG) == Sent("failed", "invalid_address")
        fake.faults.fail_next = 1
        assert await ch.send("T000/B000/hooksecret", MSG) == Sent("retry", "http_500")


# --- Email -----------------------------------------------------------------------------


def email_channel(smtp: FakeSmtp, password: str | None = None, **extra: Any) -> Channel:
    cfg: dict[str, Any] = {
        "kind": "email",
        "host": "127.0.0.1",
        "port": smtp.port,
        "ca_file": str(smtp.cert_file),
        "username_env": "SMTP_USER",
        "password_env": "SMTP_PASSWORD",
        "from_address": "leadloop@example.com",
        "from_name": "leadloop",
        "timeout_s": 5,
        **extra,
    }
    env = {"SMTP_USER": smtp.username, "SMTP_PASSWORD": password or smtp.password}
    return build_channel(parse_channel_config(cfg), env, httpx.AsyncClient())


async def test_email_starttls_auth_and_both_parts(tmp_path: Path) -> None:
    async with FakeSmtp(tmp_path) as smtp:
        ch = email_channel(smtp)
        assert await ch.send("zhangsan@example.com", MSG) == Sent("delivered", "ok")
        [mail] = smtp.messages
        assert mail.tls
        assert mail.login == smtp.username
        assert mail.rcpt_tos == ("zhangsan@example.com",)
        assert mail.message["Subject"] == MSG.subject
        assert mail.message.get_content_type() == "multipart/alternative"
        text = mail.message.get_body(("plain",))
        html = mail.message.get_body(("html",))
        assert text is not None
        assert html is not None
        assert text.get_content().strip() == MSG.text
        assert html.get_content().strip() == MSG.html
        assert await ch.send("li@example.com", PLAIN) == Sent("delivered", "ok")
        assert smtp.messages[1].message.get_content_type() == "text/plain"


async def test_email_refusals(tmp_path: Path) -> None:
    async with FakeSmtp(tmp_path) as smtp:
        smtp.reject.add("gone@example.com")
        smtp.tempfail.add("busy@example.com")
        ch = email_channel(smtp)
        assert await ch.send("gone@example.com", MSG) == Sent("failed", "invalid_user")
        assert await ch.send("busy@example.com", MSG) == Sent("retry", "smtp_451")
        bad = email_channel(smtp, password="wrong-password")
        assert await bad.send("zhangsan@example.com", MSG) == Sent("failed", "auth_failed")
        untrusted = email_channel(smtp, ca_file=None)  # self-signed: verification fails
        assert await untrusted.send("zhangsan@example.com", MSG) == Sent("failed", "tls_error")
        assert smtp.messages == []


# aiosmtpd warns about AUTH without STARTTLS even when the session is implicit TLS.
@pytest.mark.filterwarnings("ignore:Requiring AUTH while not requiring TLS")
async def test_email_tls_modes(tmp_path: Path) -> None:
    async with FakeSmtp(tmp_path, starttls=False) as plain:
        required = email_channel(plain)
        assert await required.send("a@example.com", PLAIN) == Sent("failed", "starttls_unavailable")
        local = build_channel(
            parse_channel_config(
                {
                    "kind": "email",
                    "host": "127.0.0.1",
                    "port": plain.port,
                    "tls": "none",
                    "from_address": "leadloop@example.com",
                }
            ),
            {},
            httpx.AsyncClient(),
        )
        assert await local.send("a@example.com", PLAIN) == Sent("delivered", "ok")
        assert plain.messages[0].tls is False
    async with FakeSmtp(tmp_path, implicit_tls=True) as implicit:
        ch = email_channel(implicit, tls="implicit")
        assert await ch.send("a@example.com", MSG) == Sent("delivered", "ok")
        assert implicit.messages[0].login == implicit.username
    async with FakeSmtp(tmp_path) as smtp:
        optional = email_channel(smtp, tls="starttls_optional")
        assert await optional.send("a@example.com", MSG) == Sent("delivered", "ok")
        assert smtp.messages[0].tls
    closed = free_ports(1)[0]
    gone = build_channel(
        parse_channel_config(
            {"kind": "email", "host": "127.0.0.1", "port": closed, "from_address": "l@example.com"}
        ),
        {},
        httpx.AsyncClient(),
    )
    assert await gone.send("a@example.com", PLAIN) == Sent("retry", "connect_error")
