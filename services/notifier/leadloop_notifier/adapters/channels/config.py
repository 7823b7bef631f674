"""Typed, frozen channel configuration: one model per channel kind, chosen by ``kind``.

Secrets are never written in configuration files: a field ending in ``_env`` names the
environment variable that holds the secret (``corp_secret_env: WECOM_CORP_SECRET``). The
name must look like an environment variable name, which also catches a secret pasted
into the file by mistake. `resolve_secret` reads it at start-up and refuses a missing,
empty or placeholder value, naming the field and the variable but never the value.
``base_url`` exists so tests and private gateways can point a channel elsewhere.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, model_validator

from .base import ChannelConfigError

__all__ = [
    "ChannelConfig",
    "DingtalkRobotConfig",
    "EmailConfig",
    "FeishuAppConfig",
    "FeishuBotConfig",
    "SlackConfig",
    "SlackWebhookConfig",
    "WecomAppConfig",
    "WecomRobotConfig",
    "parse_channel_config",
    "resolve_secret",
]

EnvName = Annotated[str, Field(pattern=r"^[A-Z_][A-Z0-9_]{0,127}$")]
HttpUrl = Annotated[str, Field(pattern=r"^https?://[^\s?#]+$")]

# Values that mean "somebody forgot to fill this in".
_PLACEHOLDERS = {"changeme", "change-me", "secret", "password", "xxx", "todo", "placeholder"}


class _Base(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    timeout_s: float = Field(default=10.0, gt=0, le=120)


class WecomAppConfig(_Base):
    """WeCom application message; address = the member's WeCom userid."""

    kind: Literal["wecom_app"]
    corp_id: str = Field(min_length=1, max_length=64)
    corp_secret_env: EnvName
    agent_id: int = Field(ge=1)
    msgtype: Literal["markdown", "text"] = "markdown"
    # WeCom drops a message whose request JSON repeats one sent within this many seconds
    # (enable_duplicate_check; default 1800, at most 4 hours): a resend after a crash
    # must come within it to be dropped.
    duplicate_check_interval_s: int = Field(default=1800, ge=1, le=14_400)
    base_url: HttpUrl = "https://qyapi.weixin.qq.com"


class WecomRobotConfig(_Base):
    """WeCom group robot; address = the robot's webhook ``key``."""

    kind: Literal["wecom_robot"]
    msgtype: Literal["markdown", "text"] = "markdown"
    base_url: HttpUrl = "https://qyapi.weixin.qq.com"


class DingtalkRobotConfig(_Base):
    """DingTalk custom robot; address = its ``access_token``; signed when a secret is set."""

    kind: Literal["dingtalk_robot"]
    secret_env: EnvName | None = None
    msgtype: Literal["markdown", "text"] = "markdown"
    base_url: HttpUrl = "https://oapi.dingtalk.com"


class FeishuBotConfig(_Base):
    """Feishu/Lark custom bot; address = the hook id; signed when a secret is set."""

    kind: Literal["feishu_bot"]
    secret_env: EnvName | None = None
    # text is the shape the vendor documents with certainty; post and interactive
    # render richer but their shapes were not confirmed in an official page.
    msg_type: Literal["text", "post", "interactive"] = "text"
    base_url: HttpUrl = "https://open.feishu.cn"


class FeishuAppConfig(_Base):
    """Feishu/Lark app bot messages; address = the user's ``open_id``."""

    kind: Literal["feishu_app"]
    app_id: str = Field(min_length=1, max_length=64)
    app_secret_env: EnvName
    msg_type: Literal["text", "interactive"] = "text"
    base_url: HttpUrl = "https://open.feishu.cn"


class SlackConfig(_Base):
    """Slack ``chat.postMessage``; address = a channel id, or a user id (U…/W…) for a DM."""

    kind: Literal["slack"]
    bot_token_env: EnvName
    # A user id is turned into a DM channel with conversations.open (needs im:write),
    # the documented path; posting to a U… id directly is not documented for bot tokens.
    open_dm: bool = True
    base_url: HttpUrl = "https://slack.com/api"


class SlackWebhookConfig(_Base):
    """Slack incoming webhook; address = the path after ``/services/`` (T…/B…/secret)."""

    kind: Literal["slack_webhook"]
    base_url: HttpUrl = "https://hooks.slack.com/services"


class EmailConfig(_Base):
    """SMTP submission; address = the recipient's email address."""

    kind: Literal["email"]
    host: str = Field(min_length=1, max_length=253)
    port: int = Field(default=587, ge=1, le=65535)
    # starttls: required (refuse to send in clear); starttls_optional: use it when offered;
    # implicit: TLS from the first byte (port 465); none: only for local test servers.
    tls: Literal["starttls", "starttls_optional", "implicit", "none"] = "starttls"
    ca_file: str | None = None  # extra CA bundle, e.g. a private relay's or a test server's
    username_env: EnvName | None = None
    password_env: EnvName | None = None
    from_address: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    from_name: str | None = None
    # No vendor limit applies to SMTP in general; this is the relay's, set per deployment.
    per_minute: int = Field(default=60, ge=1, le=10_000)

    @model_validator(mode="after")
    def _login_pair(self) -> EmailConfig:
        if (self.username_env is None) != (self.password_env is None):
            raise ValueError("username_env and password_env are set together or not at all")
        return self


ChannelConfig = Annotated[
    WecomAppConfig
    | WecomRobotConfig
    | DingtalkRobotConfig
    | FeishuBotConfig
    | FeishuAppConfig
    | SlackConfig
    | SlackWebhookConfig
    | EmailConfig,
    Field(discriminator="kind"),
]

_ADAPTER: TypeAdapter[ChannelConfig] = TypeAdapter(ChannelConfig)


def parse_channel_config(data: object) -> ChannelConfig:
    """Validate one channel's configuration (a mapping from YAML/JSON)."""
    return _ADAPTER.validate_python(data)


def resolve_secret(env: Mapping[str, str], kind: str, field: str, name: str) -> str:
    """The value of environment variable ``name``; refuses missing or placeholder values."""
    value = env.get(name, "")
    if not value.strip():
        raise ChannelConfigError(f"{kind}.{field}: environment variable {name} is not set")
    lowered = value.strip().lower()
    if lowered in _PLACEHOLDERS or (lowered.startswith("<") and lowered.endswith(">")):
        raise ChannelConfigError(f"{kind}.{field}: environment variable {name} holds a placeholder")
    return value
