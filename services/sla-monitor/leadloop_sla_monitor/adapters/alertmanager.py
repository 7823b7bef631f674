"""Alertmanager API v2 client: ``POST /api/v2/alerts`` of a batch of alerts.

Any failure (refused connection, timeout, non-2xx answer) raises ``DeliveryFailed``
with a short reason code; the caller keeps the batch and retries with backoff.
"""

from __future__ import annotations

from typing import Any

import aiohttp

from leadloop_sla_monitor.domain.alerts import DeliveryFailed

__all__ = ["AlertmanagerClient"]


class AlertmanagerClient:
    def __init__(self, base_url: str, *, timeout_s: float = 5.0) -> None:
        self._url = base_url.rstrip("/") + "/api/v2/alerts"
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, alerts: list[dict[str, Any]]) -> None:
        if self._session is None or self._session.closed:
            # Created on first use: a session belongs to the running event loop.
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(self._url, json=alerts) as resp:
                if resp.status >= 300:
                    raise DeliveryFailed(f"http_{resp.status}")
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise DeliveryFailed(type(exc).__name__) from None

    async def close(self) -> None:
        if self._session is not None:
            await self._session.close()
