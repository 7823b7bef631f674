"""Delivery channels of the notifier: one transport per vendor behind one port.

``build_channel(cfg, env, client)`` turns a validated `ChannelConfig` into a `Channel`,
reading secrets from ``env`` by the variable names the configuration gives. All HTTP
goes through the ``client`` the composition root owns (and closes). See
docs/notify-channels.md for each channel's fields, address, limits and error mapping.
"""

from __future__ import annotations

from collections.abc import Mapping

import httpx

from .base import Channel, ChannelConfigError, Message, Sent
from .config import (
    ChannelConfig,
    DingtalkRobotConfig,
    EmailConfig,
    FeishuAppConfig,
    FeishuBotConfig,
    SlackConfig,
    SlackWebhookConfig,
    WecomAppConfig,
    WecomRobotConfig,
    parse_channel_config,
    resolve_secret,
)
from .dingtalk import DingtalkRobotChannel
from .email import EmailChannel
from .feishu import FeishuAppChannel, FeishuBotChannel
from .slack import SlackChannel, SlackWebhookChannel
from .wecom import WecomAppChannel, WecomRobotChannel

__all__ = [
    "Channel",
    "ChannelConfig",
    "ChannelConfigError",
    "DingtalkRobotConfig",
    "EmailConfig",
    "FeishuAppConfig",
    "FeishuBotConfig",
    "Message",
    "Sent",
    "SlackConfig",
    "SlackWebhookConfig",
    "WecomAppConfig",
    "WecomRobotConfig",
    "build_channel",
    "parse_channel_config",
]


def _optional_secret(env: Mapping[str, str], kind: str, field: str, name: str | None) -> str | None:
    return None if name is None else resolve_secret(env, kind, field, name)


def build_channel(cfg: ChannelConfig, env: Mapping[str, str], client: httpx.AsyncClient) -> Channel:
    """The channel for ``cfg``; raises `ChannelConfigError` naming a missing secret's variable."""
    match cfg:
        case WecomAppConfig():
            return WecomAppChannel(
                client,
                base_url=cfg.base_url,
                corp_id=cfg.corp_id,
                corp_secret=resolve_secret(env, cfg.kind, "corp_secret_env", cfg.corp_secret_env),
                agent_id=cfg.agent_id,
                msgtype=cfg.msgtype,
                timeout_s=cfg.timeout_s,
                duplicate_check_interval_s=cfg.duplicate_check_interval_s,
            )
        case WecomRobotConfig():
            return WecomRobotChannel(
                client, base_url=cfg.base_url, msgtype=cfg.msgtype, timeout_s=cfg.timeout_s
            )
        case DingtalkRobotConfig():
            return DingtalkRobotChannel(
                client,
                base_url=cfg.base_url,
                secret=_optional_secret(env, cfg.kind, "secret_env", cfg.secret_env),
                msgtype=cfg.msgtype,
                timeout_s=cfg.timeout_s,
            )
        case FeishuBotConfig():
            return FeishuBotChannel(
                client,
                base_url=cfg.base_url,
                secret=_optional_secret(env, cfg.kind, "secret_env", cfg.secret_env),
                msg_type=cfg.msg_type,
                timeout_s=cfg.timeout_s,
            )
        case FeishuAppConfig():
            return FeishuAppChannel(
                client,
                base_url=cfg.base_url,
                app_id=cfg.app_id,
                app_secret=resolve_secret(env, cfg.kind, "app_secret_env", cfg.app_secret_env),
                msg_type=cfg.msg_type,
                timeout_s=cfg.timeout_s,
            )
        case SlackConfig():
            return SlackChannel(
                client,
                base_url=cfg.base_url,
                bot_token=resolve_secret(env, cfg.kind, "bot_token_env", cfg.bot_token_env),
                open_dm=cfg.open_dm,
                timeout_s=cfg.timeout_s,
            )
        case SlackWebhookConfig():
            return SlackWebhookChannel(client, base_url=cfg.base_url, timeout_s=cfg.timeout_s)
        case EmailConfig():
            return EmailChannel(
                host=cfg.host,
                port=cfg.port,
                tls=cfg.tls,
                ca_file=cfg.ca_file,
                username=_optional_secret(env, cfg.kind, "username_env", cfg.username_env),
                password=_optional_secret(env, cfg.kind, "password_env", cfg.password_env),
                sender=cfg.from_address,
                sender_name=cfg.from_name,
                timeout_s=cfg.timeout_s,
                per_minute=cfg.per_minute,
            )
    raise ChannelConfigError(f"unknown channel kind {cfg.kind!r}")  # pragma: no cover
