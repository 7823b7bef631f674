"""Operator endpoints of ingest (resuming after the broken-producer guard halted it), on
a listener of their own, behind a bearer token.

The webhook's port faces the channels, often the internet; an endpoint that changes how
ingest runs must not be reachable there. So the admin endpoints are served by a second
aiohttp server on ``LEADLOOP_ADMIN__HOST:LEADLOOP_ADMIN__PORT`` (127.0.0.1 by default),
and each request must carry ``Authorization: Bearer <LEADLOOP_ADMIN_TOKEN>``. Without a
token the listener is not started at all.
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass, field
from typing import Any

import faust
import mode
from aiohttp import web

from leadloop.logging import get_logger
from leadloop.settings import HttpSettings
from leadloop_ingest.handlers import IngestGuard

__all__ = ["PATH_RESUME", "AdminApi", "AdminReply", "register_admin"]

log = get_logger(__name__)

PATH_RESUME = "/v1/admin/resume"
REALM = "leadloop-admin"


@dataclass(frozen=True, slots=True)
class AdminReply:
    status: int
    body: dict[str, Any]
    headers: dict[str, str] = field(default_factory=dict)


class AdminApi:
    """The admin endpoints' decisions, independent of the web framework."""

    def __init__(self, guard: IngestGuard, token: bytes) -> None:
        if not token:
            raise ValueError("an admin token is required")
        self._guard = guard
        self._token = token

    def authorized(self, authorization: str | None) -> bool:
        """Whether the header is ``Bearer <token>``; compared in constant time."""
        scheme, _, given = (authorization or "").strip().partition(" ")
        if scheme.lower() != "bearer":
            return False
        return hmac.compare_digest(given.strip().encode("utf-8", "replace"), self._token)

    def resume(self, authorization: str | None) -> AdminReply:
        if not self.authorized(authorization):
            log.warning("admin_refused", path=PATH_RESUME, reason="unauthorized")
            return AdminReply(
                401, {"error": "unauthorized"}, {"WWW-Authenticate": f'Bearer realm="{REALM}"'}
            )
        if self._guard.resume():
            log.info("admin_resumed")
            return AdminReply(200, {"status": "resumed"})
        return AdminReply(409, {"status": "not halted"})


def admin_application(api: AdminApi) -> web.Application:
    async def resume(request: web.Request) -> web.Response:
        reply = api.resume(request.headers.get("Authorization"))
        return web.json_response(reply.body, status=reply.status, headers=reply.headers)

    application = web.Application(client_max_size=1024)
    application.router.add_post(PATH_RESUME, resume)
    return application


def register_admin(app: faust.App, api: AdminApi | None, listen: HttpSettings) -> None:
    """Serve the admin endpoints on ``listen`` for as long as ``app`` runs; nothing when
    ``api`` is None (no token configured)."""
    if api is None:
        log.info("admin_off", reason="LEADLOOP_ADMIN_TOKEN is not set")
        return
    application = admin_application(api)

    @app.service
    class AdminListener(mode.Service):
        _runner: web.AppRunner | None = None

        async def on_start(self) -> None:
            self._runner = web.AppRunner(application, access_log=None)
            await self._runner.setup()
            await web.TCPSite(self._runner, listen.host, listen.port).start()
            log.info("admin_listening", host=listen.host, port=listen.port)

        async def on_stop(self) -> None:
            if self._runner is not None:
                await self._runner.cleanup()
