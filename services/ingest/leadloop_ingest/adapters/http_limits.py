"""Limits on ingest's public listener (the webhook's port, often reachable from the
internet), below the endpoints' own (body size, read timeout, sends in flight):

- **Per-client rate limit** on the API (``/v1/…``: lead webhook, Meta, CRM feedback,
  vendor hooks): a token bucket per client address (``domain.rate_limit``); beyond it,
  ``429 {"error": "rate_limited"}`` with ``Retry-After``. Probes and scrapes
  (``/healthz``, ``/readyz``, ``/metrics``) are not limited. The address is the TCP
  peer's: ``X-Forwarded-For`` is not trusted (anyone can send it), so behind a proxy
  every request counts as the proxy's — limit at the proxy then, or raise the rate.
- **Connection cap**: at most ``max_connections`` open connections per worker
  (keep-alive and slow ones count until they close). One more is answered
  ``429 {"error": "busy"}`` with ``Retry-After`` and ``Connection: close`` at once,
  before its request is read, so an idle or slow flood cannot take every socket.

Logs carry the reason and counts, never the client's address.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, cast

import faust
from aiohttp import web
from aiohttp.web_protocol import RequestHandler
from faust.web.drivers.aiohttp import Web as AiohttpWeb

from leadloop.logging import get_logger
from leadloop_ingest.domain.rate_limit import RateLimiter

__all__ = ["BUSY_RESPONSE", "LIMITED_PREFIX", "CappedRunner", "install_http_limits"]

log = get_logger(__name__)

#: Paths the rate limit applies to.
LIMITED_PREFIX = "/v1/"
RETRY_AFTER_BUSY_S = 1
_BUSY_BODY = b'{"error": "busy"}'
#: Written to a connection over the cap before it is closed: a complete HTTP answer.
BUSY_RESPONSE = (
    b"HTTP/1.1 429 Too Many Requests\r\n"
    b"Content-Type: application/json\r\n"
    b"Retry-After: " + str(RETRY_AFTER_BUSY_S).encode() + b"\r\n"
    b"Content-Length: " + str(len(_BUSY_BODY)).encode() + b"\r\n"
    b"Connection: close\r\n\r\n" + _BUSY_BODY
)

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def rate_limit_middleware(
    limiter: RateLimiter, monotonic: Callable[[], float] = time.monotonic
) -> Any:
    @web.middleware
    async def rate_limited(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path.startswith(LIMITED_PREFIX):
            wait = limiter.take(request.remote or "unknown", monotonic())
            if wait is not None:
                log.info("http_rate_limited", status=429, retry_after=wait)
                return web.json_response(
                    {"error": "rate_limited"},
                    status=429,
                    headers={"Retry-After": str(wait), "Connection": "close"},
                )
        return await handler(request)

    return rate_limited


class CappedRunner(web.AppRunner):
    """An ``AppRunner`` whose server refuses connections beyond ``max_connections``."""

    def __init__(self, app: web.Application, *, max_connections: int, **kwargs: Any) -> None:
        super().__init__(app, **kwargs)
        self._max_connections = max_connections
        self.refused = 0

    async def _make_server(self) -> web.Server:
        server = await super()._make_server()
        made = server.connection_made

        # aiohttp's protocol reports each new connection to its server here, before
        # reading anything from it.
        def connection_made(handler: RequestHandler, transport: asyncio.Transport) -> None:
            made(handler, transport)
            if len(server.connections) > self._max_connections:
                self.refused += 1
                log.warning("http_connection_refused", reason="busy", open=len(server.connections))
                transport.write(BUSY_RESPONSE)
                transport.close()

        server.connection_made = connection_made  # type: ignore[method-assign]
        return server


def install_http_limits(
    app: faust.App,
    *,
    limiter: RateLimiter,
    max_connections: int,
    monotonic: Callable[[], float] = time.monotonic,
) -> None:
    """Put the rate limit and the connection cap on ``app``'s web server. Call it from
    ``wire``, before the worker starts (aiohttp freezes its middlewares then)."""
    web_driver = cast(AiohttpWeb, app.web)  # faust's web driver is aiohttp
    web_driver.web_app.middlewares.append(rate_limit_middleware(limiter, monotonic))
    # faust builds its runner in the driver's constructor and keeps it in ``_runner``;
    # the capped one serves the same application with the same options.
    web_driver._runner = CappedRunner(
        web_driver.web_app, access_log=None, max_connections=max_connections
    )
