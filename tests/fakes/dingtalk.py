"""A fake DingTalk (钉钉) custom robot.

Written from the custom-robot pages (help.dingtalk.io …/custom-robots-send-group-messages,
…/customize-robot-security-settings): ``POST /robot/send?access_token=…``; a robot with
加签 requires ``timestamp`` (milliseconds, within one hour of the server's clock) and
``sign`` = Base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")) in the query string,
recomputed here with the fake's own HMAC; failures answer 310000 (observed). ``msgtype``
text needs ``text.content``, markdown ``markdown.title`` and ``markdown.text``. More
than 20 messages a minute to one robot answers 130101 "send too fast" and throttles the
robot for 10 minutes. An unknown access_token answers 300001 (unconfirmed code).
``msgUuid`` is the idempotency key of retries: a message repeating a robot's earlier
``msgUuid`` is acknowledged (errcode 0) and not delivered again; it is kept in
``duplicates`` (how long DingTalk remembers a key is not documented: the fake forever).
"""

from __future__ import annotations

import base64
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .vendor_server import FakeVendor, Window, hmac_sha256

__all__ = ["FakeDingtalk"]

WINDOW_MS = 3_600_000
THROTTLE_S = 600.0


def _reply(errcode: int, errmsg: str) -> web.Response:
    return web.json_response({"errcode": errcode, "errmsg": errmsg})


class FakeDingtalk(FakeVendor):
    def __init__(
        self,
        *,
        robots: dict[str, str | None] | None = None,
        per_minute: int = 20,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(wall_clock)
        # access_token -> signing secret (None: the robot uses keywords/IP, not 加签)
        self.robots = robots if robots is not None else {"ding-token-1": "SECtest-secret"}
        self.clock = clock
        self._window = Window(per_minute, clock=clock)
        self._throttled_until: dict[str, float] = {}
        self.duplicates: list[tuple[str, str]] = []  # (access_token, msgUuid) acknowledged
        self._uuids: set[tuple[str, str]] = set()

    def routes(self) -> list[web.RouteDef]:
        return [web.post("/robot/send", self._send)]

    def _signature_ok(self, secret: str, query: Any) -> bool:
        timestamp, sign = query.get("timestamp", ""), query.get("sign", "")
        if not timestamp.isdigit() or not sign:
            return False
        if abs(int(self.wall_clock() * 1000) - int(timestamp)) > WINDOW_MS:
            return False
        digest = hmac_sha256(secret.encode(), f"{timestamp}\n{secret}".encode())
        return base64.b64encode(digest).decode() == sign

    async def _send(self, request: web.Request) -> web.Response:
        token = request.query.get("access_token", "")
        if token not in self.robots:
            return _reply(300001, "token is not exist")
        secret = self.robots[token]
        if secret is not None and not self._signature_ok(secret, request.query):
            return _reply(310000, "sign not match")
        try:
            body = await request.json()
        except ValueError:
            body = None
        if not isinstance(body, dict):
            return _reply(40035, "缺少参数 json")
        parsed = self._content(body)
        if parsed is None:
            return _reply(40035, "缺少参数 msgtype/content")
        msg_uuid = body.get("msgUuid")
        if isinstance(msg_uuid, str) and (token, msg_uuid) in self._uuids:
            self.duplicates.append((token, msg_uuid))
            return _reply(0, "ok")
        if self.clock() < self._throttled_until.get(token, 0.0):
            return _reply(130101, "send too fast, exceed 20 times per minute")
        if not self._window.allow(token):
            self._throttled_until[token] = self.clock() + THROTTLE_S
            return _reply(130101, "send too fast, exceed 20 times per minute")
        if isinstance(msg_uuid, str) and msg_uuid:
            self._uuids.add((token, msg_uuid))
        self.record("dingtalk_robot", token, *parsed)
        return _reply(0, "ok")

    @staticmethod
    def _content(body: dict[str, Any]) -> tuple[str, str] | None:
        msgtype = body.get("msgtype")
        if msgtype == "text":
            text = body.get("text")
            content = text.get("content") if isinstance(text, dict) else None
            return ("", content) if isinstance(content, str) and content else None
        if msgtype == "markdown":
            md = body.get("markdown")
            if not isinstance(md, dict):
                return None
            title, text_ = md.get("title"), md.get("text")
            if isinstance(title, str) and title and isinstance(text_, str) and text_:
                return title, text_
        return None
