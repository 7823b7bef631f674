"""A fake Slack: the Web API methods chat.postMessage and conversations.open, and
incoming webhooks.

From docs.slack.dev (chat.postMessage, conversations.open, rate limits) and the
incoming-webhook error changelog: a bot token comes as ``Authorization: Bearer``
(``not_authed`` without, ``invalid_auth`` unknown, ``token_revoked`` after
`revoke_token`); errors are HTTP 200 ``{"ok": false, "error": …}``; ``channel`` must be a
known conversation (``channel_not_found``; a bare ``U…`` user id is refused the same way
because posting to it is not documented for bot tokens), one the bot is in
(``not_in_channel``) and not archived (``is_archived``); ``text`` or ``blocks`` is
required (``no_text``). More than ``per_second`` posts a second to one channel answer
HTTP 429 with ``Retry-After``. Webhooks answer plain text: ``ok``, 400
``invalid_payload``, 404 ``no_service`` for an unknown URL, 410 ``channel_is_archived``.
"""

from __future__ import annotations

import secrets
import time
from collections.abc import Callable
from typing import Any

from aiohttp import web

from .vendor_server import FakeVendor, Window

__all__ = ["FakeSlack"]


def _error(error: str) -> web.Response:
    return web.json_response({"ok": False, "error": error})


class FakeSlack(FakeVendor):
    def __init__(
        self,
        *,
        bot_token: str = "xoxb-test-token",
        channels: set[str] | None = None,
        member_of: set[str] | None = None,
        archived: set[str] | None = None,
        users: set[str] | None = None,
        webhooks: set[str] | None = None,
        archived_webhooks: set[str] | None = None,
        per_second: int = 1,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        super().__init__()
        self.bot_token = bot_token
        self.revoked = False
        self.channels = channels if channels is not None else {"C0LEADS", "C0OTHER", "C0OLD"}
        self.member_of = member_of if member_of is not None else {"C0LEADS", "C0OLD"}
        self.archived = archived if archived is not None else {"C0OLD"}
        self.users = users if users is not None else {"U0ZHANG", "U0LI"}
        self.webhooks = webhooks if webhooks is not None else {"T000/B000/hooksecret"}
        self.archived_webhooks = archived_webhooks or set()
        self.dms: dict[str, str] = {}  # user -> D… channel
        self._window = Window(per_second, seconds=1.0, clock=clock)

    def routes(self) -> list[web.RouteDef]:
        return [
            web.post("/api/chat.postMessage", self._post_message),
            web.post("/api/conversations.open", self._open),
            web.post("/services/{path:.+}", self._webhook),
        ]

    @property
    def api_url(self) -> str:
        return self.base_url + "/api"

    @property
    def hooks_url(self) -> str:
        return self.base_url + "/services"

    def revoke_token(self) -> None:
        self.revoked = True

    def _auth_error(self, request: web.Request) -> str | None:
        auth = request.headers.get("Authorization", "")
        if not auth.startswith("Bearer "):
            return "not_authed"
        if auth.removeprefix("Bearer ") != self.bot_token:
            return "invalid_auth"
        return "token_revoked" if self.revoked else None

    @staticmethod
    async def _json(request: web.Request) -> dict[str, Any] | None:
        if not request.content_type.startswith("application/json"):
            return None
        try:
            body = await request.json()
        except ValueError:
            return None
        return body if isinstance(body, dict) else None

    async def _open(self, request: web.Request) -> web.Response:
        error = self._auth_error(request)
        if error:
            return _error(error)
        body = await self._json(request)
        users = body.get("users") if body else None
        if not isinstance(users, str) or users not in self.users:
            return _error("user_not_found")
        dm = self.dms.setdefault(users, "D" + secrets.token_hex(4).upper())
        return web.json_response({"ok": True, "channel": {"id": dm}})

    async def _post_message(self, request: web.Request) -> web.Response:
        error = self._auth_error(request)
        if error:
            return _error(error)
        body = await self._json(request)
        if body is None:
            return _error("invalid_arguments")
        channel = body.get("channel")
        dm_owner = next((u for u, d in self.dms.items() if d == channel), None)
        if not isinstance(channel, str) or (channel not in self.channels and dm_owner is None):
            return _error("channel_not_found")
        if dm_owner is None and channel not in self.member_of:
            return _error("not_in_channel")
        if channel in self.archived:
            return _error("is_archived")
        text, blocks = body.get("text"), body.get("blocks")
        if not (isinstance(text, str) and text) and not (isinstance(blocks, list) and blocks):
            return _error("no_text")
        if not self._window.allow(channel):
            return web.json_response(
                {"ok": False, "error": "ratelimited"}, status=429, headers={"Retry-After": "1"}
            )
        subject = ""
        if isinstance(blocks, list) and blocks and isinstance(blocks[0], dict):
            head = blocks[0].get("text")
            subject = str(head.get("text", "")) if isinstance(head, dict) else ""
        self.record("slack", dm_owner or channel, subject, str(text or ""))
        ts = f"{time.time():.6f}"
        return web.json_response({"ok": True, "channel": channel, "ts": ts})

    async def _webhook(self, request: web.Request) -> web.Response:
        path = request.match_info["path"]
        if path in self.archived_webhooks:
            return web.Response(status=410, text="channel_is_archived")
        if path not in self.webhooks:
            return web.Response(status=404, text="no_service")
        body = await self._json(request)
        text = body.get("text") if body else None
        if not isinstance(text, str) or not text:
            return web.Response(status=400, text="invalid_payload")
        if not self._window.allow("hook:" + path):
            return web.Response(status=429, text="rate_limited", headers={"Retry-After": "1"})
        self.record("slack_webhook", path, "", text)
        return web.Response(text="ok")
