"""WeCom (企业微信): application messages to a member, and group robot webhooks.

WeCom answers HTTP 200 with ``errcode`` in the body, so the body decides the outcome.

Verified (search of stored public pages, 2026-12-07):
- Global return codes, official page https://developer.work.weixin.qq.com/document/path/90455
  (wrong json shape and "judge by errcode, never errmsg"): -1 busy (retry, at most 3
  times), 40001 bad secret, 40013 bad corpid, 40014 invalid access_token, 40003 invalid
  UserID. 42001 (expired token) and 45009 (call limit exceeded) are from the same table
  as copied by weixin-java-tools ``WxCpErrorMsgEnum`` and wx-rust-common
  (https://docs.rs/crate/wx-rust-common/0.1.0/source/src/error/wx_cp_error_msg_enum.rs).
- 81013 "user & party & tag all invalid" comes back with ``invaliduser`` naming the
  rejected id: observed replies quoted on the WeCom developer forum
  (https://developers.weixin.qq.com/community/personal/oCJUsw2MZgyDt1SITQdpVAUAfgaQ/question).
- 45009 "api freq out of limit" observed in replies (WecomTeam/wecom-openclaw-plugin#48);
  for the robot webhook the over-limit code is still not stated officially (unconfirmed),
  so any 45009/45033 is treated as a rate limit.
- The robot's markdown content limit of 4096 bytes is confirmed by observed replies
  "markdown.content exceed max length 4096" (errcode 40058, dromara/domain-admin#152).
- ``enable_duplicate_check: 1`` with ``duplicate_check_interval`` (seconds, default 1800,
  at most 4 hours): "within the interval, a message with the same content (request
  JSON) is not received again" — page 90236 as mirrored at qiyeweixin.apifox.cn/api-10061693
  (the 4-hour cap from SDK comments, e.g. gitea.codecodify.com golang/tool
  ``services/wecom/message/base.go``). Whether the dropped resend answers errcode 0 is
  not stated; it is treated like any reply.
Not verified here: the internal-app edition of the per-member limit (30/min, 1000/h per
app, excess dropped silently; page 90454 describes the third-party edition). Because the
excess is dropped without an error, callers must queue below ``per_minute``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import httpx

from .base import Message, Sent, delivered, failed, retry
from .token import TokenCache
from .transport import int_field, json_object, send_http, status_outcome, truncate_utf8

__all__ = ["WecomAppChannel", "WecomRobotChannel", "errcode_outcome"]

TEXT_LIMIT = 2048  # bytes, text.content
MARKDOWN_LIMIT = 4096  # bytes, markdown.content

TOKEN_ERRORS = frozenset({40014, 42001, 41001})  # invalid, expired, missing access_token
RATE_LIMITS = frozenset({45009, 45033, 45011})  # call limit, concurrency limit, frequency
BUSY = -1
INVALID_USER = frozenset({81013, 82001, 40003, 40031})
# A per-minute block lasts 60 s (page 90454); WeCom sends no Retry-After.
RATE_LIMIT_BACKOFF_S = 60.0


def errcode_outcome(errcode: int) -> Sent:
    """The outcome of a WeCom errcode other than the token errors handled by the caller."""
    if errcode == 0:
        return delivered()
    if errcode in RATE_LIMITS:
        return retry(f"errcode_{errcode}", RATE_LIMIT_BACKOFF_S)
    if errcode == BUSY:
        return retry("errcode_-1")
    if errcode in INVALID_USER:
        return failed("invalid_user")
    if errcode in TOKEN_ERRORS:
        return failed("token_revoked")
    return failed(f"errcode_{errcode}")


def _content(msgtype: str, message: Message) -> dict[str, Any]:
    if msgtype == "markdown" and message.markdown is not None:
        return {
            "msgtype": "markdown",
            "markdown": {"content": truncate_utf8(message.markdown, MARKDOWN_LIMIT)},
        }
    return {"msgtype": "text", "text": {"content": truncate_utf8(message.text, TEXT_LIMIT)}}


def _reply(response: httpx.Response) -> dict[str, Any] | Sent:
    judged = status_outcome(response)
    if judged is not None:
        return judged
    body = json_object(response)
    if body is None or int_field(body, "errcode") is None:
        return failed("bad_response")
    return body


class WecomRobotChannel:
    """Group robot webhook: ``POST /cgi-bin/webhook/send?key=KEY``; no signature."""

    kind = "wecom_robot"
    per_minute = 20  # per robot, official

    def __init__(
        self, client: httpx.AsyncClient, *, base_url: str, msgtype: str, timeout_s: float
    ) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + "/cgi-bin/webhook/send"
        self._msgtype = msgtype
        self._timeout_s = timeout_s

    async def send(self, address: str, message: Message) -> Sent:
        response = await send_http(
            self._client,
            "POST",
            self._url,
            timeout_s=self._timeout_s,
            params={"key": address},
            json=_content(self._msgtype, message),
        )
        if isinstance(response, Sent):
            return response
        body = _reply(response)
        if isinstance(body, Sent):
            return body
        errcode = int_field(body, "errcode") or 0
        if errcode == 93000:  # invalid webhook url: the key is wrong or the robot removed
            return failed("invalid_webhook")
        return errcode_outcome(errcode)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the composition root."""


class WecomAppChannel:
    """Application message to one member: ``gettoken`` then ``message/send``."""

    kind = "wecom_app"
    per_minute = 30  # per app per member; the excess is dropped silently

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        corp_id: str,
        corp_secret: str,
        agent_id: int,
        msgtype: str,
        timeout_s: float,
        duplicate_check_interval_s: int = 1800,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._base = base_url.rstrip("/")
        self._duplicate_check_interval_s = duplicate_check_interval_s
        self._corp_id = corp_id
        self._corp_secret = corp_secret
        self._agent_id = agent_id
        self._msgtype = msgtype
        self._timeout_s = timeout_s
        self._tokens = TokenCache(self._fetch_token, clock)

    async def _fetch_token(self) -> tuple[str, float] | Sent:
        response = await send_http(
            self._client,
            "GET",
            self._base + "/cgi-bin/gettoken",
            timeout_s=self._timeout_s,
            params={"corpid": self._corp_id, "corpsecret": self._corp_secret},
        )
        if isinstance(response, Sent):
            return response
        body = _reply(response)
        if isinstance(body, Sent):
            return body
        errcode = int_field(body, "errcode") or 0
        if errcode in (40001, 40013, 40091):  # bad secret / corpid: nothing to retry
            return failed("invalid_credentials")
        if errcode != 0:
            return errcode_outcome(errcode)
        token, lifetime = body.get("access_token"), int_field(body, "expires_in")
        if not isinstance(token, str) or not token or lifetime is None or lifetime <= 0:
            return failed("bad_response")
        return token, float(lifetime)

    async def _send_once(self, token: str, payload: dict[str, Any]) -> dict[str, Any] | Sent:
        response = await send_http(
            self._client,
            "POST",
            self._base + "/cgi-bin/message/send",
            timeout_s=self._timeout_s,
            params={"access_token": token},
            json=payload,
        )
        if isinstance(response, Sent):
            return response
        return _reply(response)

    async def send(self, address: str, message: Message) -> Sent:
        # One member per send: "a|b" or "@all" would fan a personal notice out to others.
        if not address or "|" in address or address.startswith("@"):
            return failed("invalid_address")
        payload = {"touser": address, "agentid": self._agent_id, **_content(self._msgtype, message)}
        if message.dedupe_key is not None:
            # WeCom has no idempotency key, only a check of the request JSON: a resend of
            # the same message (byte-identical, as the notifier renders it from its outbox
            # rows) within the interval is not shown again (page 90236).
            payload["enable_duplicate_check"] = 1
            payload["duplicate_check_interval"] = self._duplicate_check_interval_s
        for attempt in range(2):
            token = await self._tokens.get()
            if isinstance(token, Sent):
                return token
            body = await self._send_once(token, payload)
            if isinstance(body, Sent):
                return body
            errcode = int_field(body, "errcode") or 0
            if errcode in TOKEN_ERRORS:
                # Tokens may be invalidated before expires_in: fetch a new one, once.
                self._tokens.invalidate(token)
                if attempt == 0:
                    continue
                return failed("token_revoked")
            if errcode == 0 and _names(body, "invaliduser", address):
                return failed("invalid_user")  # errcode 0 with the only recipient rejected
            if errcode == 0 and _names(body, "unlicenseduser", address):
                return failed("unlicensed_user")
            return errcode_outcome(errcode)
        return failed("token_revoked")  # pragma: no cover - the loop returns on attempt 1

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the composition root."""


def _names(body: dict[str, Any], field: str, address: str) -> bool:
    value = body.get(field)
    return isinstance(value, str) and address in value.split("|")
