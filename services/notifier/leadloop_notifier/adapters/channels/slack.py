"""Slack: ``chat.postMessage`` with a bot token, and incoming webhooks.

Verified (search of stored public docs, 2026-12-07):
- Rate limits, https://docs.slack.dev/apis/web-api/rate-limits (and
  https://api.slack.com/docs/rate-limits): chat.postMessage is a special tier, "generally
  allows posting one message per second per channel" plus a workspace-wide limit;
  over the limit the reply is HTTP 429 with ``Retry-After`` in seconds; incoming
  webhooks are covered by the same page.
- ``chat.postMessage`` (https://docs.slack.dev/reference/methods/chat.postMessage):
  ``channel`` is an encoded id or name of a channel, private group or IM channel; the
  token goes in the ``Authorization`` header; callers must check ``ok`` because errors
  come back as ``{"ok": false, "error": "..."}``; the error list of the sibling method
  (https://api.slack.com/methods/chat.meMessage) includes channel_not_found,
  not_in_channel, is_archived, rate_limited, account_inactive, invalid_auth.
- Posting to a ``U…`` id directly is documented only for the deprecated
  ``conversations.app_home:create`` scope (https://api.slack.com/scopes/conversations.app_home:create),
  so a user id is first opened as a DM with ``conversations.open`` (``users=U…``), the
  documented path, and the ``D…`` id is cached.
Unconfirmed: the body of a 429 (reported as ``{"ok":false,"error":"ratelimited"}``); the
status and ``Retry-After`` decide, the body is not read. Webhook error bodies are plain
text (https://api.slack.com/changelog/2016-05-17-changes-to-errors-for-incoming-webhooks).
"""

from __future__ import annotations

import re
from typing import Any

import httpx

from .base import Message, Sent, delivered, failed, retry
from .transport import json_object, send_http, status_outcome

__all__ = ["SlackChannel", "SlackWebhookChannel", "error_outcome"]

TEXT_LIMIT = 39_000  # characters; Slack truncates above 40,000
SECTION_LIMIT = 3000  # characters of a section block's text
HEADER_LIMIT = 150  # characters of a header block's plain text

INVALID_USER = frozenset({"channel_not_found", "user_not_found", "user_disabled", "cannot_dm_bot"})
REVOKED = frozenset(
    {"invalid_auth", "not_authed", "account_inactive", "token_revoked", "token_expired"}
)
RATE_LIMITED = frozenset({"ratelimited", "rate_limited"})
TRANSIENT = frozenset({"internal_error", "fatal_error", "service_unavailable", "request_timeout"})
_SAFE_CODE = re.compile(r"^[a-z0-9_]{1,64}$")
_WEBHOOK_PATH = re.compile(r"[A-Za-z0-9_-]{1,64}(/[A-Za-z0-9_-]{1,64}){2}")
_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,}$")


def error_outcome(error: str, retry_after: float | None = None) -> Sent:
    """The outcome of a Slack error string (Web API ``error`` or webhook body)."""
    if error in RATE_LIMITED:
        return retry("ratelimited", retry_after)
    if error in TRANSIENT:
        return retry(error, retry_after)
    if error in INVALID_USER:
        return failed("invalid_user")
    if error in REVOKED:
        return failed("token_revoked")
    # Slack error names are stable snake_case tokens; anything else is not echoed.
    return failed(error if _SAFE_CODE.match(error) else "slack_error")


def _blocks(message: Message) -> list[dict[str, Any]] | None:
    if message.markdown is None or len(message.markdown) > SECTION_LIMIT:
        return None
    return [
        {
            "type": "header",
            "text": {"type": "plain_text", "text": message.subject[:HEADER_LIMIT]},
        },
        {"type": "section", "text": {"type": "mrkdwn", "text": message.markdown}},
    ]


def _payload(message: Message) -> dict[str, Any]:
    # ``text`` stays the notification fallback when blocks are present.
    payload: dict[str, Any] = {"text": message.text[:TEXT_LIMIT]}
    blocks = _blocks(message)
    if blocks is not None:
        payload["blocks"] = blocks
    return payload


class SlackChannel:
    """``chat.postMessage`` with a bot token; user ids become DMs via ``conversations.open``."""

    kind = "slack"
    per_minute = 60  # about one message per second per channel

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        bot_token: str,
        open_dm: bool,
        timeout_s: float,
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._headers = {"Authorization": f"Bearer {bot_token}"}
        self._open_dm = open_dm
        self._timeout_s = timeout_s
        self._dm_channels: dict[str, str] = {}

    async def _call(self, method: str, body: dict[str, Any]) -> dict[str, Any] | Sent:
        response = await send_http(
            self._client,
            "POST",
            f"{self._base}/{method}",
            timeout_s=self._timeout_s,
            headers=self._headers,
            json=body,
        )
        if isinstance(response, Sent):
            return response
        judged = status_outcome(response)
        if judged is not None:
            return judged
        reply = json_object(response)
        if reply is None or not isinstance(reply.get("ok"), bool):
            return failed("bad_response")
        if not reply["ok"]:
            error = reply.get("error")
            return error_outcome(error if isinstance(error, str) else "")
        return reply

    async def _channel_for(self, address: str) -> str | Sent:
        if not (self._open_dm and _USER_ID.match(address)):
            return address
        cached = self._dm_channels.get(address)
        if cached is not None:
            return cached
        reply = await self._call("conversations.open", {"users": address})
        if isinstance(reply, Sent):
            return reply
        channel = reply.get("channel")
        channel_id = channel.get("id") if isinstance(channel, dict) else None
        if not isinstance(channel_id, str) or not channel_id:
            return failed("bad_response")
        self._dm_channels[address] = channel_id
        return channel_id

    async def send(self, address: str, message: Message) -> Sent:
        channel = await self._channel_for(address)
        if isinstance(channel, Sent):
            return channel
        reply = await self._call("chat.postMessage", {"channel": channel, **_payload(message)})
        if isinstance(reply, Sent):
            if reply.code == "invalid_user":
                self._dm_channels.pop(address, None)
            return reply
        return delivered()

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the composition root."""


class SlackWebhookChannel:
    """Incoming webhook: ``POST {base}/{address}``; success is the plain-text body ``ok``."""

    kind = "slack_webhook"
    per_minute = 60  # one per second, as for posting messages

    def __init__(self, client: httpx.AsyncClient, *, base_url: str, timeout_s: float) -> None:
        self._client = client
        self._base = base_url.rstrip("/") + "/"
        self._timeout_s = timeout_s

    async def send(self, address: str, message: Message) -> Sent:
        if not _WEBHOOK_PATH.fullmatch(address):
            return failed("invalid_address")  # T…/B…/secret, nothing that could leave the path
        response = await send_http(
            self._client,
            "POST",
            self._base + address,
            timeout_s=self._timeout_s,
            json=_payload(message),
        )
        if isinstance(response, Sent):
            return response
        if response.status_code == 200:
            return delivered()
        judged = status_outcome(response)
        assert judged is not None
        if judged.outcome == "retry":
            return judged
        if response.status_code in (404, 410):
            # channel_not_found / channel_is_archived, or a webhook that no longer exists.
            return failed(f"http_{response.status_code}")
        error = response.text.strip()
        return error_outcome(error) if _SAFE_CODE.match(error) else judged

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the composition root."""
