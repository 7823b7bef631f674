"""Feishu / Lark: custom bot webhooks (signed) and app messages to a user.

Verified (search of stored public pages, 2026-12-07):
- Custom bot signature: ``timestamp + "\\n" + secret`` is the HMAC-SHA256 *key*, the
  message is empty, the digest is Base64 (no URL-encoding); ``timestamp`` (seconds, as a
  string) and ``sign`` go in the JSON body; a timestamp more than one hour (3600 s) from
  the server's time is refused. The official Python 3 sample is reproduced in copies of
  the official page (https://m.down10s.com/jiaocheng/5605312225.html,
  http://www.createh5.com/post/277.html); the refusal is
  ``{"code":19021,"msg":"sign match fail or timestamp is not within one hour from current
  time"}`` (quoted at https://damodev.csdn.net/68230044a5baf817cf4af7cf.html).
  Official page: https://open.feishu.cn/document/client-docs/bot-v3/add-custom-bot.
- tenant_access_token for a self-built app: ``POST
  /open-apis/auth/v3/tenant_access_token/internal`` with ``app_id``/``app_secret`` →
  ``{"code":0,"tenant_access_token":"t-…","expire":7200}``, at most 2 hours; with under 30
  minutes left the endpoint hands out a new one (official page
  https://open.larkoffice.com/document/ukTMukTMukTM/ukDNz4SO0MjL5QzM/auth-v3/auth/tenant_access_token_internal.md).
- App messages go to ``POST /open-apis/im/v1/messages?receive_id_type=open_id`` with
  ``Authorization: Bearer <tenant_access_token>`` (official page "调用 API",
  https://open.larkoffice.com/document/ukTMukTMukTM/ukDNz4SO0MjL5QzM/get-.md); 230001 is a
  parameter error such as ``invalid receive_id`` (official troubleshooting page
  https://open.larkoffice.com/document/uAjLw4CM/ugTN1YjL4UTN24CO1UjN/trouble-shooting/how-to-resolve-error-230001.md).
- ``uuid`` in the im/v1 message body (at most 50 characters): "requests with the same
  uuid send at most one message within 1 hour" — the field description of the official
  "发送消息" page as copied into SDK doc comments (larksuite oapi SDKs and ports).
Unconfirmed (SDK enums, not an official page): token codes 99991661/99991663/99991668/
99991677, open_id invalid 99992352, frequency limit 99991400 and 230020, bot not
available to the user 230013. The bot limits (100/min and 5/s per bot, 11232 when
throttled) are as stated in the vendor notes; the app-message limit per user was not
found, so ``feishu_app.per_minute`` is a conservative 60 (one a second).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from collections.abc import Callable
from typing import Any

import httpx

from .base import Message, Sent, delivered, failed, retry
from .token import TokenCache
from .transport import int_field, json_object, send_http, status_outcome, truncate_utf8

__all__ = ["FeishuAppChannel", "FeishuBotChannel", "sign"]

UUID_LIMIT = 50  # characters of im/v1 ``uuid``
BODY_LIMIT = 18_000  # bytes of message text; the whole request must stay under 20 KB
TOKEN_ERRORS = frozenset({99991661, 99991663, 99991668, 99991677})
RATE_LIMITS = frozenset({11232, 99991400, 230020})
INVALID_USER = frozenset({99992352, 230013})
RATE_LIMIT_BACKOFF_S = 60.0
_HOOK_ID = re.compile(r"[A-Za-z0-9_-]{1,128}")


def sign(secret: str, timestamp_s: int) -> str:
    """Base64 HMAC-SHA256 keyed with ``"{timestamp_s}\\n{secret}"`` over an empty message."""
    key = f"{timestamp_s}\n{secret}".encode()
    return base64.b64encode(hmac.new(key, b"", hashlib.sha256).digest()).decode()


def code_outcome(code: int) -> Sent:
    if code == 0:
        return delivered()
    if code in RATE_LIMITS:
        return retry(f"code_{code}", RATE_LIMIT_BACKOFF_S)
    if code in INVALID_USER:
        return failed("invalid_user")
    if code in TOKEN_ERRORS:
        return failed("token_revoked")
    if code == 19001:  # incoming webhook access token invalid: the hook id is wrong or gone
        return failed("invalid_webhook")
    return failed(f"code_{code}")


def _card(message: Message) -> dict[str, Any]:
    return {
        "header": {"title": {"tag": "plain_text", "content": message.subject}},
        "elements": [
            {
                "tag": "markdown",
                "content": truncate_utf8(message.markdown or message.text, BODY_LIMIT),
            }
        ],
    }


def _judge(response: httpx.Response) -> Sent:
    """Feishu replies carry ``code`` (older bots ``StatusCode``), also on some HTTP 4xx."""
    body = json_object(response)
    code = None
    if body is not None:
        code = int_field(body, "code")
        if code is None:
            code = int_field(body, "StatusCode")
    if response.status_code == 429 or response.status_code >= 500 or code is None:
        judged = status_outcome(response)
        if judged is not None:
            return judged
        if code is None:
            return failed("bad_response")
    assert code is not None
    return code_outcome(code)


class FeishuBotChannel:
    """Custom bot: ``POST /open-apis/bot/v2/hook/{hook_id}``, signed in the body."""

    kind = "feishu_bot"
    per_minute = 100  # per bot; also at most 5 per second

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        secret: str | None,
        msg_type: str,
        timeout_s: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/") + "/open-apis/bot/v2/hook/"
        self._secret = secret
        self._msg_type = msg_type
        self._timeout_s = timeout_s
        self._wall_clock = wall_clock

    def _payload(self, message: Message) -> dict[str, Any]:
        if self._msg_type == "interactive":
            return {"msg_type": "interactive", "card": _card(message)}
        if self._msg_type == "post":
            text = truncate_utf8(message.text, BODY_LIMIT)
            post = {"title": message.subject, "content": [[{"tag": "text", "text": text}]]}
            return {"msg_type": "post", "content": {"post": {"zh_cn": post}}}
        return {"msg_type": "text", "content": {"text": truncate_utf8(message.text, BODY_LIMIT)}}

    async def send(self, address: str, message: Message) -> Sent:
        if not _HOOK_ID.fullmatch(address):
            return failed("invalid_address")  # a path segment, nothing else
        payload = self._payload(message)
        if self._secret is not None:
            timestamp_s = int(self._wall_clock())
            payload = {
                "timestamp": str(timestamp_s),
                "sign": sign(self._secret, timestamp_s),
                **payload,
            }
        response = await send_http(
            self._client, "POST", self._base + address, timeout_s=self._timeout_s, json=payload
        )
        if isinstance(response, Sent):
            return response
        return _judge(response)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the composition root."""


class FeishuAppChannel:
    """App bot message to one user by ``open_id``, with a cached tenant_access_token."""

    kind = "feishu_app"
    per_minute = 60  # unverified per-user limit; kept well below the bot's 5/s

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        app_id: str,
        app_secret: str,
        msg_type: str,
        timeout_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._app_id = app_id
        self._app_secret = app_secret
        self._msg_type = msg_type
        self._timeout_s = timeout_s
        self._tokens = TokenCache(self._fetch_token, clock)

    async def _fetch_token(self) -> tuple[str, float] | Sent:
        response = await send_http(
            self._client,
            "POST",
            self._base + "/open-apis/auth/v3/tenant_access_token/internal",
            timeout_s=self._timeout_s,
            json={"app_id": self._app_id, "app_secret": self._app_secret},
        )
        if isinstance(response, Sent):
            return response
        body = json_object(response)
        code = None if body is None else int_field(body, "code")
        if body is None or code is None:
            return status_outcome(response) or failed("bad_response")
        if code != 0:
            judged = code_outcome(code)
            # Any other refusal of app_id/app_secret cannot be fixed by retrying.
            return judged if judged.outcome == "retry" else failed("invalid_credentials")
        token, lifetime = body.get("tenant_access_token"), int_field(body, "expire")
        if not isinstance(token, str) or not token or lifetime is None or lifetime <= 0:
            return failed("bad_response")
        return token, float(lifetime)

    def _payload(self, address: str, message: Message) -> dict[str, Any]:
        if self._msg_type == "interactive":
            content = json.dumps(_card(message), ensure_ascii=False)
        else:
            content = json.dumps(
                {"text": truncate_utf8(message.text, BODY_LIMIT)}, ensure_ascii=False
            )
        # im/v1 takes ``content`` as a JSON *string*, not an object.
        payload = {"receive_id": address, "msg_type": self._msg_type, "content": content}
        if message.dedupe_key is not None:
            # Requests with the same uuid send at most one message within an hour.
            payload["uuid"] = message.dedupe_key[:UUID_LIMIT]
        return payload

    async def send(self, address: str, message: Message) -> Sent:
        payload = self._payload(address, message)
        for attempt in range(2):
            token = await self._tokens.get()
            if isinstance(token, Sent):
                return token
            response = await send_http(
                self._client,
                "POST",
                self._base + "/open-apis/im/v1/messages",
                timeout_s=self._timeout_s,
                params={"receive_id_type": "open_id"},
                headers={"Authorization": f"Bearer {token}"},
                json=payload,
            )
            if isinstance(response, Sent):
                return response
            outcome = _judge(response)
            if outcome.code == "token_revoked":
                self._tokens.invalidate(token)
                if attempt == 0:
                    continue
            return outcome
        return failed("token_revoked")  # pragma: no cover - the loop returns on attempt 1

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the composition root."""
