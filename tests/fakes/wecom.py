"""A fake WeCom (企业微信): gettoken, application messages and group robot webhooks.

Written from developer.work.weixin.qq.com pages 91039 (gettoken), 90236 (message/send),
90313/90455 (global codes), 91770 (group robot) and 90454 (limits):
- ``gettoken`` checks corpid (40013) and corpsecret (40001) and issues a token that
  lives ``token_ttl_s``; `revoke_tokens` / `expire_tokens` make issued tokens answer
  40014 / 42001, as WeCom does when a token is invalidated early.
- ``message/send`` requires a known ``access_token`` (41001 missing), ``agentid`` of the
  app (40056), ``msgtype`` text|markdown (40008) with non-empty content (44004) within
  2048/4096 bytes (40058); unknown ``touser`` ids come back in ``invaliduser`` with
  errcode 0, or 81013 when every recipient is unknown. Past 30 messages a minute to one
  member the message is accepted and silently dropped (``dropped``), as page 90454 says;
  ``api_per_minute`` bounds calls of the app per minute with 45009. With
  ``enable_duplicate_check: 1`` a request whose JSON repeats one accepted within
  ``duplicate_check_interval`` seconds (default 1800) is answered errcode 0 and not
  shown again ("同样内容(请求json)的消息，不会重复收到"); it is kept in ``duplicates``.
- The robot checks its ``key`` (93000), the same shapes, and 20 messages a minute per
  robot (45009 "api freq out of limit").
"""

from __future__ import annotations

import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .vendor_server import FakeVendor, Window

__all__ = ["FakeWecom"]

LIMITS = {"text": 2048, "markdown": 4096}


def _reply(errcode: int, errmsg: str, **extra: Any) -> web.Response:
    return web.json_response({"errcode": errcode, "errmsg": errmsg, **extra})


class FakeWecom(FakeVendor):
    def __init__(
        self,
        *,
        corp_id: str = "ww-test-corp",
        corp_secret: str = "corp-secret-for-tests",
        agent_id: int = 1000002,
        users: set[str] | None = None,
        robot_keys: set[str] | None = None,
        token_ttl_s: float = 7200.0,
        member_per_minute: int = 30,
        robot_per_minute: int = 20,
        api_per_minute: int = 10_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.corp_id, self.corp_secret, self.agent_id = corp_id, corp_secret, agent_id
        self.users = users if users is not None else {"zhangsan", "lisi"}
        self.robot_keys = robot_keys if robot_keys is not None else {"robot-key-1"}
        self.token_ttl_s = token_ttl_s
        self.clock = clock
        self.tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.expired: set[str] = set()
        self.tokens_issued = 0
        self.refuse_tokens = False  # fault: every token is answered 40014, fresh ones too
        self.dropped: list[tuple[str, str]] = []  # (userid, content) silently dropped
        # (touser, content) of resends dropped by the duplicate check: raw resends that
        # nobody saw twice
        self.duplicates: list[tuple[str, str]] = []
        self._checked: dict[str, float] = {}  # request JSON -> when it was accepted
        self._member = Window(member_per_minute, clock=clock)
        self._robot = Window(robot_per_minute, clock=clock)
        self._api = Window(api_per_minute, clock=clock)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/cgi-bin/gettoken", self._gettoken),
            web.post("/cgi-bin/message/send", self._message_send),
            web.post("/cgi-bin/webhook/send", self._webhook_send),
        ]

    def revoke_tokens(self) -> None:
        """Invalidate every issued token early (40014 from now on)."""
        self.tokens.clear()

    def expire_tokens(self) -> None:
        """Make every issued token expired (42001 from now on)."""
        self.expired.update(self.tokens)
        self.tokens.clear()

    async def _gettoken(self, request: web.Request) -> web.Response:
        if request.query.get("corpid") != self.corp_id:
            return _reply(40013, "invalid corpid")
        if request.query.get("corpsecret") != self.corp_secret:
            return _reply(40001, "invalid credential")
        token = secrets.token_urlsafe(32)
        self.tokens[token] = self.clock() + self.token_ttl_s
        self.tokens_issued += 1
        return _reply(0, "ok", access_token=token, expires_in=int(self.token_ttl_s))

    def _check_token(self, token: str | None) -> web.Response | None:
        if not token:
            return _reply(41001, "access_token missing")
        if self.refuse_tokens:
            return _reply(40014, "invalid access_token")
        expiry = self.tokens.get(token)
        if token in self.expired or (expiry is not None and self.clock() >= expiry):
            return _reply(42001, "access_token expired")
        if expiry is None:
            return _reply(40014, "invalid access_token")
        return None

    @staticmethod
    async def _body(request: web.Request) -> dict[str, Any] | None:
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    @staticmethod
    def _content(body: dict[str, Any]) -> tuple[str, str] | web.Response:
        msgtype = body.get("msgtype")
        if msgtype not in LIMITS:
            return _reply(40008, "invalid message type")
        part = body.get(msgtype)
        content = part.get("content") if isinstance(part, dict) else None
        if not isinstance(content, str) or not content:
            return _reply(44004, "empty content")
        if len(content.encode()) > LIMITS[msgtype]:
            return _reply(40058, f"{msgtype}.content exceed max length {LIMITS[msgtype]}")
        return msgtype, content

    async def _message_send(self, request: web.Request) -> web.Response:
        refused = self._check_token(request.query.get("access_token"))
        if refused is not None:
            return refused
        body = await self._body(request)
        if body is None:
            return _reply(40035, "Warning: wrong json format.")
        if not self._api.allow("message/send"):
            return _reply(45009, "api freq out of limit")
        agentid = body.get("agentid")
        if isinstance(agentid, bool) or agentid != self.agent_id:
            return _reply(40056, "invalid agentid")
        content = self._content(body)
        if isinstance(content, web.Response):
            return content
        touser = body.get("touser")
        if not isinstance(touser, str) or not touser:
            return _reply(40031, "invalid userid list")
        wanted = touser.split("|")
        invalid = [u for u in wanted if u not in self.users]
        if len(invalid) == len(wanted):
            return _reply(81013, "user & party & tag all invalid", invaliduser="|".join(invalid))
        if self._repeated(body):
            self.duplicates.append((touser, content[1]))
            return _reply(0, "ok", invaliduser="", invalidparty="", invalidtag="", msgid="")
        for user in wanted:
            if user in invalid:
                continue
            if self._member.allow(user):
                self.record("wecom_app", user, "", content[1])
            else:
                self.dropped.append((user, content[1]))
        return _reply(
            0,
            "ok",
            invaliduser="|".join(invalid),
            invalidparty="",
            invalidtag="",
            unlicenseduser="",
            msgid=secrets.token_hex(8),
        )

    def _repeated(self, body: dict[str, Any]) -> bool:
        """The duplicate check: the same request JSON accepted within the interval."""
        if body.get("enable_duplicate_check") != 1:
            return False
        interval = body.get("duplicate_check_interval", 1800)
        if not isinstance(interval, int) or isinstance(interval, bool):
            interval = 1800
        key = json.dumps(body, sort_keys=True, ensure_ascii=False)
        now = self.clock()
        first = self._checked.get(key)
        if first is not None and now - first < min(interval, 14_400):
            return True
        self._checked[key] = now
        return False

    async def _webhook_send(self, request: web.Request) -> web.Response:
        key = request.query.get("key", "")
        if key not in self.robot_keys:
            return _reply(93000, "invalid webhook url")
        body = await self._body(request)
        if body is None:
            return _reply(40035, "Warning: wrong json format.")
        content = self._content(body)
        if isinstance(content, web.Response):
            return content
        if not self._robot.allow(key):
            return _reply(45009, "api freq out of limit")
        self.record("wecom_robot", key, "", content[1])
        return _reply(0, "ok")
