"""An app access token, fetched once and shared until shortly before it expires.

WeCom (``gettoken``) and Feishu (``tenant_access_token``) both throttle token issuance
and both may invalidate a token early, so the cache refetches on expiry and when the
vendor says the token is bad (`invalidate`). One lock keeps a burst of sends from
fetching a burst of tokens. Time comes from an injected monotonic clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

from .base import Sent

__all__ = ["Fetch", "TokenCache"]

#: Returns (token, lifetime in seconds) or the `Sent` that explains why there is none.
Fetch = Callable[[], Awaitable[tuple[str, float] | Sent]]

# Refresh this long before the stated expiry so a token never expires in flight.
_MARGIN_S = 300.0


class TokenCache:
    def __init__(self, fetch: Fetch, clock: Callable[[], float] = time.monotonic) -> None:
        self._fetch = fetch
        self._clock = clock
        self._token: str | None = None
        self._expires_at = 0.0
        self._lock = asyncio.Lock()

    async def get(self) -> str | Sent:
        """A token believed valid, or the outcome of a failed fetch."""
        async with self._lock:
            if self._token is not None and self._clock() < self._expires_at:
                return self._token
            got = await self._fetch()
            if isinstance(got, Sent):
                return got
            token, lifetime = got
            margin = min(_MARGIN_S, lifetime / 2)
            self._token, self._expires_at = token, self._clock() + lifetime - margin
            return token

    def invalidate(self, token: str) -> None:
        """Forget ``token`` (the vendor refused it); a newer token fetched meanwhile stays."""
        if self._token == token:
            self._token = None
