"""DingTalk (钉钉) custom robot webhook, optionally signed (加签).

Verified (search of stored public pages, 2026-12-07):
- 加签: ``string_to_sign = f"{timestamp}\\n{secret}"`` with the timestamp in
  milliseconds, HmacSHA256 keyed with the secret, Base64, then URL-encoded; ``timestamp``
  and ``sign`` go in the query string; the timestamp must be within one hour of the
  server's time. The official Python sample (``quote_plus(b64encode(hmac(secret,
  string_to_sign)))``) is reproduced in copies of the official page, e.g.
  https://apifox.com/apidoc/docs-site/467052/doc-3550006 and
  https://www.mihaoyun.com/wordpress/?p=391 (official pages
  https://help.dingtalk.io/open/dingstart/customize-robot-security-settings).
  `sign` returns the Base64 text; httpx URL-encodes the query, which equals quote_plus.
- 20 messages per minute per robot, throttled for 10 minutes when exceeded:
  https://gitbook.curiouser.top/origin/dingding-customrobot.html (copy of the official text).
- 130101 "send too fast, exceed 20 times per minute": observed in replies quoted in
  ccfos/nightingale#369 and opengoofy/hippo4j#217 (still not in an official page).
- ``msgUuid`` in the body: the idempotency key of a retried send, per the vendor notes
  (example ``"msgUuid":"lead-42-r1"``); not found in an official page or SDK here
  (unconfirmed), so a robot that ignores it keeps the resend window.
Unconfirmed: 310000 is observed (not official) for failed security checks; 300001 and
other codes are not documented here; they are failed with their errcode.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import Callable
from typing import Any

import httpx

from .base import Message, Sent, delivered, failed, retry
from .transport import int_field, json_object, send_http, status_outcome

__all__ = ["DingtalkRobotChannel", "sign"]

RATE_LIMITED = 130101
SECURITY_CHECK_FAILED = 310000  # sign mismatch, keyword missing, IP not allowed
THROTTLE_S = 600.0  # the robot is throttled for 10 minutes


def sign(secret: str, timestamp_ms: int) -> str:
    """Base64 HMAC-SHA256 of ``"{timestamp_ms}\\n{secret}"`` keyed with the secret."""
    digest = hmac.new(
        secret.encode(), f"{timestamp_ms}\n{secret}".encode(), hashlib.sha256
    ).digest()
    return base64.b64encode(digest).decode()


def _payload(msgtype: str, message: Message) -> dict[str, Any]:
    payload: dict[str, Any]
    if msgtype == "markdown" and message.markdown is not None:
        payload = {
            "msgtype": "markdown",
            "markdown": {"title": message.subject, "text": message.markdown},
        }
    else:
        payload = {"msgtype": "text", "text": {"content": message.text}}
    if message.dedupe_key is not None:
        payload["msgUuid"] = message.dedupe_key  # the idempotency key for retries
    return payload


def errcode_outcome(errcode: int) -> Sent:
    if errcode == 0:
        return delivered()
    if errcode == RATE_LIMITED:
        return retry(f"errcode_{errcode}", THROTTLE_S)
    if errcode == -1:
        return retry("errcode_-1")
    return failed(f"errcode_{errcode}")


class DingtalkRobotChannel:
    """``POST /robot/send?access_token=…[&timestamp=…&sign=…]`` with a JSON message."""

    kind = "dingtalk_robot"
    per_minute = 20  # per robot, official; exceeding it throttles the robot for 10 min

    def __init__(
        self,
        client: httpx.AsyncClient,
        *,
        base_url: str,
        secret: str | None,
        msgtype: str,
        timeout_s: float,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        self._client = client
        self._url = base_url.rstrip("/") + "/robot/send"
        self._secret = secret
        self._msgtype = msgtype
        self._timeout_s = timeout_s
        self._wall_clock = wall_clock

    async def send(self, address: str, message: Message) -> Sent:
        params: dict[str, str] = {"access_token": address}
        if self._secret is not None:
            timestamp_ms = int(self._wall_clock() * 1000)
            params["timestamp"] = str(timestamp_ms)
            params["sign"] = sign(self._secret, timestamp_ms)
        response = await send_http(
            self._client,
            "POST",
            self._url,
            timeout_s=self._timeout_s,
            params=params,
            json=_payload(self._msgtype, message),
        )
        if isinstance(response, Sent):
            return response
        judged = status_outcome(response)
        if judged is not None:
            return judged
        body = json_object(response)
        errcode = None if body is None else int_field(body, "errcode")
        if errcode is None:
            return failed("bad_response")
        return errcode_outcome(errcode)

    async def aclose(self) -> None:
        """Nothing to release: the HTTP client belongs to the composition root."""
