"""A fake Feishu / Lark: custom bot webhooks and app messages with tenant tokens.

Custom bot (open.feishu.cn …/bot-v3/add-custom-bot): ``POST
/open-apis/bot/v2/hook/{hook_id}``; a hook with 签名校验 requires ``timestamp`` (seconds,
a string, within 3600 s) and ``sign`` = Base64(HMAC-SHA256(key=f"{timestamp}\\n{secret}",
msg=b"")) in the JSON body, recomputed with the fake's own HMAC; failure answers 19021.
Unknown hook: 19001; bad shape: 9499 "Bad Request"; body over 20 KB: 9499; more than 100
a minute or 5 a second per hook: 11232. Success: ``{"code":0,"data":{},"msg":"success"}``.

App (…/auth-v3/auth/tenant_access_token_internal, …/im-v1/message/create):
``tenant_access_token/internal`` checks app_id/app_secret (10014, unconfirmed) and
issues ``t-…`` tokens living ``token_ttl_s``; ``im/v1/messages`` needs ``Authorization:
Bearer`` with a live token (HTTP 400 + 99991663 otherwise, code from SDK tables),
``receive_id_type=open_id``, a known ``receive_id`` (HTTP 400 + 230013 "Bot has NO
availability to this user", unconfirmed), ``msg_type`` text|interactive|post and
``content`` as a JSON *string*; more than ``user_per_minute`` messages to one user answers
HTTP 429 with code 99991400 (gateway frequency limit, code from SDK tables). A request
repeating the ``uuid`` (≤ 50 characters) of a message sent within the hour is answered
with that first message and sends nothing ("持有相同 uuid 的请求，在 1 小时内至多成功发送一条
消息"); it is kept in ``duplicates``.
"""

from __future__ import annotations

import base64
import json
import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .vendor_server import FakeVendor, Window, hmac_sha256

__all__ = ["FakeFeishu"]

BODY_LIMIT = 20 * 1024
UUID_WINDOW_S = 3600.0


def _reply(code: int, msg: str, status: int = 200, **extra: Any) -> web.Response:
    return web.json_response({"code": code, "msg": msg, **extra}, status=status)


class FakeFeishu(FakeVendor):
    def __init__(
        self,
        *,
        hooks: dict[str, str | None] | None = None,
        app_id: str = "cli_test_app",
        app_secret: str = "app-secret-for-tests",
        users: set[str] | None = None,
        token_ttl_s: float = 7200.0,
        hook_per_minute: int = 100,
        hook_per_second: int = 5,
        user_per_minute: int = 60,
        clock: Callable[[], float] = time.monotonic,
        wall_clock: Callable[[], float] = time.time,
    ) -> None:
        super().__init__(wall_clock)
        self.hooks = hooks if hooks is not None else {"hook-1": "feishu-secret"}
        self.app_id, self.app_secret = app_id, app_secret
        self.users = users if users is not None else {"ou_zhangsan", "ou_lisi"}
        self.token_ttl_s = token_ttl_s
        self.clock = clock
        self.tokens: dict[str, float] = {}
        self.tokens_issued = 0
        self.refuse_tokens = False  # fault: every token is refused, fresh ones too
        self._minute = Window(hook_per_minute, clock=clock)
        self._second = Window(hook_per_second, seconds=1.0, clock=clock)
        self._user = Window(user_per_minute, clock=clock)
        self.duplicates: list[tuple[str, str]] = []  # (receive_id, uuid) not sent again
        self._uuids: dict[str, tuple[float, dict[str, Any]]] = {}  # uuid -> (at, data)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/open-apis/bot/v2/hook/{hook_id}", self._hook),
            web.post("/open-apis/auth/v3/tenant_access_token/internal", self._token),
            web.post("/open-apis/im/v1/messages", self._message),
        ]

    def revoke_tokens(self) -> None:
        self.tokens.clear()

    async def _json(self, request: web.Request) -> dict[str, Any] | None:
        raw = await request.read()
        if len(raw) > BODY_LIMIT:
            return None
        try:
            body = json.loads(raw)
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    def _signature_ok(self, secret: str, body: dict[str, Any]) -> bool:
        timestamp, sign = body.get("timestamp"), body.get("sign")
        if not isinstance(timestamp, str) or not timestamp.isdigit() or not isinstance(sign, str):
            return False
        if abs(int(self.wall_clock()) - int(timestamp)) > 3600:
            return False
        digest = hmac_sha256(f"{timestamp}\n{secret}".encode(), b"")
        return base64.b64encode(digest).decode() == sign

    @staticmethod
    def _bot_content(body: dict[str, Any]) -> tuple[str, str] | None:
        msg_type, content = body.get("msg_type"), body.get("content")
        if msg_type == "text" and isinstance(content, dict):
            text = content.get("text")
            return ("", text) if isinstance(text, str) and text else None
        if msg_type == "post" and isinstance(content, dict):
            post = content.get("post")
            lang = next(iter(post.values()), None) if isinstance(post, dict) and post else None
            if isinstance(lang, dict) and isinstance(lang.get("content"), list):
                texts = [
                    str(el.get("text", ""))
                    for line in lang["content"]
                    if isinstance(line, list)
                    for el in line
                    if isinstance(el, dict)
                ]
                return str(lang.get("title", "")), "".join(texts)
            return None
        if msg_type == "interactive":
            return _card_text(body.get("card"))
        return None

    async def _hook(self, request: web.Request) -> web.Response:
        hook_id = request.match_info["hook_id"]
        if hook_id not in self.hooks:
            return _reply(19001, "param invalid: incoming webhook access token invalid")
        body = await self._json(request)
        if body is None:
            return _reply(9499, "Bad Request")
        secret = self.hooks[hook_id]
        if secret is not None and not self._signature_ok(secret, body):
            return _reply(
                19021, "sign match fail or timestamp is not within one hour from current time"
            )
        parsed = self._bot_content(body)
        if parsed is None:
            return _reply(9499, "Bad Request")
        if not (self._second.allow(hook_id) and self._minute.allow(hook_id)):
            return _reply(11232, "frequency limited")
        self.record("feishu_bot", hook_id, *parsed)
        return _reply(0, "success", data={})

    async def _token(self, request: web.Request) -> web.Response:
        body = await self._json(request)
        if (
            body is None
            or body.get("app_id") != self.app_id
            or body.get("app_secret") != self.app_secret
        ):
            return _reply(10014, "app secret invalid")
        token = "t-" + secrets.token_hex(20)
        self.tokens[token] = self.clock() + self.token_ttl_s
        self.tokens_issued += 1
        return _reply(0, "ok", tenant_access_token=token, expire=int(self.token_ttl_s))

    async def _message(self, request: web.Request) -> web.Response:
        auth = request.headers.get("Authorization", "")
        token = auth.removeprefix("Bearer ") if auth.startswith("Bearer ") else ""
        expiry = self.tokens.get(token)
        if expiry is None or self.clock() >= expiry or self.refuse_tokens:
            return _reply(99991663, "Invalid access token for authorization.", status=400)
        if request.query.get("receive_id_type") != "open_id":
            return _reply(230001, "invalid receive_id_type", status=400)
        body = await self._json(request)
        if body is None:
            return _reply(230001, "invalid request body", status=400)
        receive_id, msg_type, content = (
            body.get("receive_id"),
            body.get("msg_type"),
            body.get("content"),
        )
        if not isinstance(content, str):
            return _reply(230001, "content must be a JSON string", status=400)
        try:
            decoded = json.loads(content)
        except ValueError:
            return _reply(230001, "invalid content", status=400)
        text = decoded.get("text") if isinstance(decoded, dict) else None
        if msg_type == "text" and isinstance(text, str):
            parsed: tuple[str, str] | None = ("", text)
        elif msg_type == "interactive":
            parsed = _card_text(decoded)
        else:
            parsed = None
        if parsed is None:
            return _reply(230001, "invalid msg_type or content", status=400)
        if receive_id not in self.users:
            return _reply(230013, "Bot has NO availability to this user.", status=400)
        assert isinstance(receive_id, str)
        uuid = body.get("uuid")
        if uuid is not None and (not isinstance(uuid, str) or len(uuid) > 50):
            return _reply(230001, "invalid uuid", status=400)
        first = self._uuids.get(uuid) if uuid else None
        if first is not None and self.clock() - first[0] < UUID_WINDOW_S:
            self.duplicates.append((receive_id, str(uuid)))
            return _reply(0, "success", data=first[1])
        if not self._user.allow(receive_id):
            return web.json_response(
                {"code": 99991400, "msg": "request trigger frequency limit"},
                status=429,
                headers={"Retry-After": str(int(self._user.retry_after(receive_id)) + 1)},
            )
        self.record("feishu_app", receive_id, *parsed)
        data = {"message_id": "om_" + secrets.token_hex(8)}
        if uuid:
            self._uuids[uuid] = (self.clock(), data)
        return _reply(0, "success", data=data)


def _card_text(card: object) -> tuple[str, str] | None:
    if not isinstance(card, dict) or not isinstance(card.get("elements"), list):
        return None
    header = card.get("header")
    title = header.get("title") if isinstance(header, dict) else None
    subject = title.get("content", "") if isinstance(title, dict) else ""
    texts = [
        str(el.get("content", ""))
        for el in card["elements"]
        if isinstance(el, dict) and el.get("tag") == "markdown"
    ]
    return (str(subject), "\n".join(texts)) if texts else None
